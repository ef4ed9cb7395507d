"""Spot capacity through EC2 Fleet: one instant CreateFleet over every type × zone, AWS picks the pool.

    fleet = cloud.plan_fleet(plan, types=["g5.xlarge", "g6.xlarge"], on_demand_fallback=True)
    cloud.check(fleet)                      # the same CreateFleet with DryRun=True
    cloud.launch_fleet(fleet, spec, tags)   # (launch() calls it for spot plans)

The launch template is made per launch (``ec2kit-<launch token>``, tagged like the instance) and
deleted as soon as CreateFleet answers: an instant fleet's instances do not need it afterwards.
It carries the tags for the instance and its volumes (TagSpecifications), so a crash mid-launch
leaves only tagged things. The overrides are every type × every zone it is offered in (or the
plan's zone); ``price-capacity-optimized`` lets AWS choose the pool with capacity at a low price.

On-demand fallback is a *second* instant fleet, made only when the spot fleet reported nothing
but capacity errors. One mixed fleet cannot say "spot, else on-demand": its target is split
between the two markets up front, so with a target of one instance it would launch one or the
other by the split, never try on-demand *because* spot was short.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

from ..errors import AwsError, ConfigError, Ec2kitError, NoCapacity
from .errors import error_code, translate_code, translating
from .instance_types import InstanceTypes
from .instances import Instances
from .models import LAUNCH_TAG, MANAGED_TAG, SPOT_REQUEST_TAG, Instance, filters, tag_list
from .plans import FleetPlan, LaunchPlan, replace_types
from .prices import spot_price
from .quota_table import QUOTA_ERRORS, quota_for
from .quotas import Quotas
from .session import AwsSession, Plan, Progress, eventually

__all__ = ["CAPACITY_ERRORS", "FleetPlan", "Fleets"]

CAPACITY_ERRORS = (
    "InsufficientInstanceCapacity",
    "InsufficientHostCapacity",
    "InsufficientCapacity",
    "InsufficientCapacityOnHost",
    "capacity-not-available",
    "UnfulfillableCapacity",
)
_NOT_OFFERED = ("Unsupported", "InvalidFleetConfiguration")  # a type not offered in a zone: a pool to skip


class Fleets:
    """EC2 Fleet verbs over one session (the Cloud forwards ``cloud.plan_fleet(…)``, ``cloud.check(…)``, … here)."""

    def __init__(self, aws: AwsSession, types: InstanceTypes, instances: Instances, quotas: Quotas) -> None:
        self.aws = aws
        self.types = types
        self.instances = instances
        self.quotas = quotas

    def plan_fleet(
        self, plan: LaunchPlan, *, types: list[str] | tuple[str, ...] = (), on_demand_fallback: bool = False
    ) -> FleetPlan:
        """The instant fleet for a spot ``plan``: ``plan.type`` then ``types`` (each checked) × the zones they are offered in."""
        if not plan.spot:
            raise ConfigError(
                f"Instance {plan.name} is not a spot launch, so it does not go through EC2 Fleet.",
                hint="Add --spot to try several types (--types) and --on-demand-fallback.",
            )
        every = tuple(dict.fromkeys([plan.type, *types]))
        for type_ in every[1:]:
            self.types.info(type_)
        # a plan that names a subnet places the instance there (whatever the plan calls the field, its spec says SubnetId)
        subnet = plan.subnet_id
        subnets: tuple[str, ...] = (str(subnet),) if subnet else ()
        zones: tuple[str, ...] = () if subnets else ((plan.zone,) if plan.zone else self.zones())
        zone_subnets: dict[str, str] = {}
        skipped: tuple[str, ...] = ()
        if zones:  # the default VPC: each pool names its zone's default subnet (a zone added later may have none)
            zone_subnets = self._default_subnets()
            skipped = tuple(z for z in zones if z not in zone_subnets)
            zones = tuple(z for z in zones if z in zone_subnets)
            if not zones:
                raise ConfigError(
                    f"The default VPC in {self.aws.region} has no default subnet in "
                    f"{'zone ' + plan.zone if plan.zone else 'any of its zones'}, so instance {plan.name} has nowhere to go.",
                    hint=f"Create one with `aws ec2 create-default-subnet --availability-zone {skipped[0]} "
                    f"--region {self.aws.region}`, or pass --subnet.",
                )
        offered = {} if subnets else self._offered(every, zones)
        return replace_types(
            FleetPlan(
                launch=plan,
                types=every,
                zones=zones,
                subnets=subnets,
                offered=offered,
                zone_subnets=zone_subnets,
                skipped_zones=skipped,
            ),
            spot=every,
            on_demand=every if on_demand_fallback else (),
        )

    def zones(self) -> tuple[str, ...]:
        """The region's available availability zones (not Local or Wavelength zones), sorted."""
        answer = self.aws.ec2.describe_availability_zones(Filters=filters(state="available"))["AvailabilityZones"]
        return tuple(sorted(z["ZoneName"] for z in answer if z.get("ZoneType", "availability-zone") == "availability-zone"))

    def _default_subnets(self) -> dict[str, str]:
        """Zone -> the default VPC's default subnet there (DescribeSubnets ``default-for-az``)."""
        rows = self.aws.paginate("describe_subnets", "Subnets[]", Filters=filters(**{"default-for-az": "true"}))
        return {str(r["AvailabilityZone"]): str(r["SubnetId"]) for r in sorted(rows, key=lambda r: str(r["SubnetId"]))}

    def _offered(self, types: tuple[str, ...], zones: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        """Zones each type is offered in (DescribeInstanceTypeOfferings); a type AWS lists nowhere keeps every zone."""
        try:
            rows = self.aws.paginate(
                "describe_instance_type_offerings",
                "InstanceTypeOfferings[]",
                LocationType="availability-zone",
                Filters=filters(**{"instance-type": list(types)}),
            )
        except Exception as err:  # noqa: BLE001 - the offerings only trim the overrides; AWS still decides
            if not error_code(err):
                raise
            rows = []
        offered: dict[str, tuple[str, ...]] = {}
        for type_ in types:
            where = tuple(z for z in zones if {"InstanceType": type_, "Location": z} in _slim(rows))
            offered[type_] = where or zones
        return offered

    def fit_quotas(self, fleet: FleetPlan, *, progress: Progress | None = None) -> FleetPlan:
        """Drop the types whose vCPU quota the launch would pass; QuotaExceeded when no market has one left."""
        refused: list[Ec2kitError] = []
        running: list[Instance] = []
        looked: list[bool] = []

        def live() -> list[Instance]:  # one DescribeInstances for every type and market, only if a quota is readable
            if not looked:
                running.extend(self.instances.live_instances())
                looked.append(True)
            return running

        def fitting(types: tuple[str, ...], market: str) -> tuple[str, ...]:
            kept = []
            for type_ in types:
                quota = quota_for(type_, market)
                if quota is None or self.quotas.quota_limit(quota) is None:
                    kept.append(type_)
                    continue
                problem = self.quotas.check_quotas(type_, market, action=f"launch {market} instance {fleet.name}", running=live())
                if problem is None:
                    kept.append(type_)
                else:
                    refused.append(problem)
                    if progress:
                        progress(f"instance {fleet.name}: skipping {market} {type_} (vCPU quota)")
            return tuple(kept)

        spot, on_demand = fitting(fleet.types, "spot"), fitting(fleet.on_demand_types, "on-demand")
        if not spot and not on_demand:
            raise refused[0]
        return replace_types(fleet, spot=spot, on_demand=on_demand)

    def quota_room(self, fleet: FleetPlan, count: int) -> int:
        """How many of ``count`` instances the vCPU quotas let run now (at least 1: :meth:`fit_quotas`
        kept only types of which one fits): the most of any type the fleet may choose. Unreadable
        quotas do not limit it (AWS then decides)."""
        if count <= 1:
            return count
        running = self.instances.live_instances()
        most = 0
        for types, market in ((fleet.types, "spot"), (fleet.on_demand_types, "on-demand")):
            for type_ in types:
                quota = quota_for(type_, market)
                limit = self.quotas.quota_limit(quota) if quota is not None else None
                if quota is None or limit is None:
                    return count
                most = max(most, int((limit - self.quotas.vcpus_in_use(quota, running)) // max(1, self.types.vcpus(type_))))
        return max(1, min(count, most))

    def check(self, plan: Plan) -> bool:
        """DryRun ``plan``; a FleetPlan sends its CreateFleet against a launch template made for the check and deleted after."""
        if not isinstance(plan, FleetPlan):
            return self.aws.check(plan)
        name = f"ec2kit-check-{uuid.uuid4().hex[:12]}"
        with translating(plan.purpose, instance_type=plan.launch.type):
            self._create_template(name, plan.template_data(plan.launch.spec(), plan.launch.tags), plan.launch.tags)
            try:
                self.aws.ec2.create_fleet(
                    DryRun=True, **plan.fleet_params("spot" if plan.types else "on-demand", template_name=name)
                )
            except Exception as err:
                if error_code(err) != "DryRunOperation":
                    raise
            finally:
                self._delete_template(name)
        return True

    def launch_fleet(
        self, fleet: FleetPlan, spec: dict[str, Any], tags: dict[str, str], progress: Progress | None = None
    ) -> Instance:
        """Launch one instance through instant fleets (spot, then on-demand if planned); wait until it is running."""
        return self.launch_fleet_instances(fleet, spec, tags, progress)[0]

    def launch_fleet_instances(
        self, fleet: FleetPlan, spec: dict[str, Any], tags: dict[str, str], progress: Progress | None = None
    ) -> list[Instance]:
        """Up to ``fleet.count`` instances from one instant fleet call per market (spot, then on-demand if
        planned and spot had no capacity at all); each waited for until it is running."""
        token = tags[LAUNCH_TAG]
        name = f"ec2kit-{token}"
        self._create_template(name, fleet.template_data(spec, tags), tags)
        try:
            instance_ids, market = self._fill(fleet, name, token, progress)
        finally:
            self._delete_template(name)
        found = []
        for instance_id in instance_ids:
            launched = Instance.from_raw({"InstanceId": instance_id})
            if market == "spot":
                request = self.instances.spot_request_for(launched)
                if request:  # how spot-run and terminate find the request to cancel
                    # a just-launched id may answer InvalidInstanceID.NotFound for a while
                    eventually(
                        partial(self.aws.ec2.create_tags, Resources=[instance_id], Tags=tag_list({SPOT_REQUEST_TAG: request}))
                    )
            found.append(launched)
        running = [self.instances.wait(launched, "running", progress=progress) for launched in found]
        for inst in running:
            if market == "spot":
                inst.hourly_price = self._spot_price(inst)
        return running

    def _spot_price(self, inst: Instance) -> float | None:
        """The spot price of the pool AWS chose (informative: None when it cannot be read)."""
        try:
            return spot_price(inst.type, inst.zone, self.aws)
        except Exception as err:  # noqa: BLE001 - a price is shown, never needed
            if not error_code(err) and not isinstance(err, Ec2kitError):
                raise
            return None

    def _fill(self, fleet: FleetPlan, template: str, token: str, progress: Progress | None) -> tuple[list[str], str]:
        """(instance ids, market) from the first fleet that launches; capacity errors move on, others stop."""
        tried: list[tuple[str, list[tuple[str, str]]]] = []
        if progress and fleet.skipped_zones:
            progress(
                f"instance {fleet.name}: skipping {', '.join(fleet.skipped_zones)} (no default subnet in the default VPC; "
                f"`aws ec2 create-default-subnet --availability-zone {fleet.skipped_zones[0]}` adds one)"
            )
        for market in ("spot", "on-demand"):
            pools = fleet.pools(market)
            if not pools:
                continue
            if progress:
                kinds = sorted({t for t, _ in pools})
                progress(f"instance {fleet.name}: {market} fleet over {len(pools)} pools ({', '.join(kinds)})")
            with translating(fleet.purpose, instance_type=fleet.launch.type):
                answer = self.aws.ec2.create_fleet(**fleet.fleet_params(market, template_name=template, token=token))
            ids = [i for item in answer.get("Instances") or [] for i in item.get("InstanceIds") or []]
            if ids:
                return ids[: fleet.count], market
            errors = answer.get("Errors") or []
            self._stop_unless_capacity(fleet, market, errors)
            tried.append((market, pools))
            if progress and market == "spot" and fleet.on_demand_types:
                progress(f"instance {fleet.name}: no spot capacity in any pool; trying on-demand")
        raise _no_capacity(fleet, tried)

    def _stop_unless_capacity(self, fleet: FleetPlan, market: str, errors: list[dict[str, Any]]) -> None:
        """Raise the first error that is not about capacity (quota: explained with the right family)."""
        for error in errors:
            code, message = error.get("ErrorCode", ""), error.get("ErrorMessage", "")
            type_ = ((error.get("LaunchTemplateAndOverrides") or {}).get("Overrides") or {}).get(
                "InstanceType"
            ) or fleet.launch.type
            if code in QUOTA_ERRORS:
                raise self.quotas.explain_quota(
                    type_, market, action=f"launch {market} instance {fleet.name}", code=code, said=message
                ) or AwsError(message, code=code)
        others = [e for e in errors if e.get("ErrorCode") not in CAPACITY_ERRORS + _NOT_OFFERED]
        if others or (errors and all(e.get("ErrorCode") in _NOT_OFFERED for e in errors)):
            first = (others or errors)[0]
            type_ = ((first.get("LaunchTemplateAndOverrides") or {}).get("Overrides") or {}).get("InstanceType")
            translated = translate_code(first.get("ErrorCode", ""), first.get("ErrorMessage", ""), fleet.purpose, type_)
            raise translated or AwsError(f"AWS refused to {fleet.purpose}.", code=first.get("ErrorCode", ""))

    def _create_template(self, name: str, data: dict[str, Any], tags: dict[str, str]) -> None:
        self.aws.ec2.create_launch_template(
            LaunchTemplateName=name,
            LaunchTemplateData=data,
            TagSpecifications=[{"ResourceType": "launch-template", "Tags": tag_list({**tags, MANAGED_TAG: "1"})}],
        )

    def _delete_template(self, name: str) -> None:
        try:
            self.aws.ec2.delete_launch_template(LaunchTemplateName=name)
        except Exception as err:  # noqa: BLE001 - tagged with the launch token: cleanup_launch finds it
            if not error_code(err):
                raise

    def stale_launch_templates(self, *, older_than: float = 600) -> list[dict[str, Any]]:
        """ec2kit's launch templates older than ``older_than`` s: each lives for one CreateFleet call, so these are
        what a launch killed mid-way (power cut, SIGKILL) left; ``inv cleanup`` lists and deletes them."""
        import datetime as dt

        now = dt.datetime.now(dt.timezone.utc)
        found = self.aws.paginate("describe_launch_templates", "LaunchTemplates[]", Filters=filters(**{"tag-key": LAUNCH_TAG}))
        stale = []
        for template in found:
            created = template.get("CreateTime")
            if isinstance(created, dt.datetime) and created.tzinfo is None:
                created = created.replace(tzinfo=dt.timezone.utc)
            if not isinstance(created, dt.datetime) or (now - created).total_seconds() >= older_than:
                stale.append(template)
        return stale

    def delete_launch_template(self, name: str) -> None:
        """Delete one launch template by name (gone already: fine)."""
        self._delete_template(name)

    def delete_launch_templates(self, token: str) -> list[str]:
        """Delete the launch templates a launch made (by its token tag); returns their names."""
        found = self.aws.paginate(
            "describe_launch_templates", "LaunchTemplates[]", Filters=filters(**{f"tag:{LAUNCH_TAG}": token})
        )
        names = [t["LaunchTemplateName"] for t in found]
        for name in names:
            self._delete_template(name)
        return names


def _slim(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"InstanceType": r.get("InstanceType", ""), "Location": r.get("Location", "")} for r in rows]


def _no_capacity(fleet: FleetPlan, tried: list[tuple[str, list[tuple[str, str]]]]) -> NoCapacity:
    """AWS had no capacity in any pool: name them, per market and type."""
    parts = []
    for market, pools in tried:
        by_type: dict[str, list[str]] = {}
        for type_, place in pools:
            by_type.setdefault(type_, []).append(place)
        parts.append(f"{market} " + "; ".join(f"{t} in {', '.join(p)}" for t, p in by_type.items()))
    hint = "Add instance types with --types (several families help most), allow another zone"
    hint += (
        ", or retry in a few minutes."
        if fleet.on_demand_types
        else ", allow on-demand with --on-demand-fallback, or retry in a few minutes."
    )
    return NoCapacity(
        f"AWS has no capacity right now to {fleet.purpose} in any pool tried: {' | '.join(parts)}.",
        code="InsufficientInstanceCapacity",
        hint=hint,
    )
