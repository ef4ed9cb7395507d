"""Launching: plan it (:class:`LaunchPlan`, what ``--check`` asks EC2 about), then do it.

    plan = cloud.plan_launch("base", disk=60, type="m5.xlarge")   # validated, nothing created
    cloud.check(plan)                                               # EC2 DryRun
    cloud.launch(plan)                                              # or cloud.launch("base", disk=60, …)

Everything a launch creates is tagged with a launch token, so a failure or Ctrl-C part-way
finds and removes it (:meth:`Launcher.cleanup_launch`).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from ..defaults import LAUNCH_TYPE
from ..errors import AlreadyExists, AwsError, ConfigError
from ..tags import NAME_CLAIM_TAG
from .access import Access
from .aliases import ImageChoice
from .errors import error_code, translated
from .fleet import Fleets
from .instance_types import InstanceTypes
from .instances import Instances
from .models import LAUNCH_TAG, LIVE_STATES, MANAGED_TAG, Instance, filters
from .network import Network, Networks
from .plans import LaunchPlan
from .quota_table import QUOTA_ERRORS, QUOTA_MARKETS
from .quotas import Quotas
from .session import AwsSession, Progress

__all__ = ["LaunchPlan", "Launcher"]

#: states in which an instance holds its name (one that is shutting down has given it up)
CLAIMING_STATES = ("pending", "running", "stopping", "stopped")


class Launcher:
    """Launch verbs: plan (checking names against AWS), then launch through the services it is given."""

    def __init__(
        self,
        aws: AwsSession,
        *,
        types: InstanceTypes,
        instances: Instances,
        images: ImageChoice,
        networks: Networks,
        access: Access,
        quotas: Quotas,
        fleets: Fleets,
    ) -> None:
        self.aws = aws
        self.types = types
        self.instances = instances
        self.images = images
        self.networks = networks
        self.access = access
        self.quotas = quotas
        self.fleets = fleets

    @translated("launch instance {0}")
    def plan_launch(
        self,
        name: str,
        *,
        image: str | None = None,
        disk: int | None = None,
        type: str = LAUNCH_TYPE,
        spot: bool = False,
        max_price: float | str | None = None,
        zone: str | None = None,
        tags: dict[str, str] | None = None,
        user_data: str | None = None,
        shutdown_behavior: str | None = None,
        open_ssh: bool = False,
        subnet: str | None = None,
        security_groups: list[str] | tuple[str, ...] = (),
        instance_profile: str | None = None,
        interruption: str | None = None,
    ) -> LaunchPlan:
        """Check the arguments (name free, image, type, subnet, groups and profile known) and return
        what :meth:`launch` would do.

        ``image``: alias (``ubuntu``, ``ubuntu-22.04``, ``gpu``), name or id (default: ``gpu`` for a
        type with an NVIDIA GPU, else ``ubuntu``, for the type's architecture); ``disk``: root size
        in GiB (gp3); ``spot``: one-time spot request (``max_price`` in USD/hour, default up to
        on-demand); ``subnet``: id or Name tag (default: the default VPC); ``security_groups``:
        extra groups (ids or names in that VPC); ``instance_profile``: IAM instance profile name.
        """
        if shutdown_behavior not in (None, "stop", "terminate"):
            raise ConfigError(f"Shutdown behaviour '{shutdown_behavior}' is not understood.", hint="Use 'stop' or 'terminate'.")
        if interruption not in (None, "stop") or (interruption and not spot):
            raise ConfigError(f"Interruption behaviour '{interruption}' is not understood.", hint="Use 'stop', with spot.")
        if spot and shutdown_behavior == "stop":
            raise ConfigError(
                "A one-time spot instance can only terminate when it shuts down.",
                hint="Drop the shutdown behaviour 'stop' or launch on demand.",
            )
        existing = self.instances.instances(tags={"Name": name})
        if existing:
            raise AlreadyExists(
                f"An instance named '{name}' already exists ({existing[0].id}, {existing[0].state}).",
                hint="Choose another name, or terminate it first with `inv terminate " + name + "`.",
            )
        self.types.info(type)
        img, image_note = self.images.choose_image(image, type)
        root_gb = _root_size(img.raw)
        if disk is not None and root_gb and disk < root_gb:
            raise ConfigError(
                f"--disk {disk}: image {img.name or img.id} has a {root_gb} GB root disk, and the disk cannot be smaller.",
                hint=f"Give --disk {root_gb} or more (or leave it out for {root_gb} GB).",
            )
        net = self.networks.network(subnet=subnet, security_groups=security_groups, zone=zone)
        if instance_profile:
            self.networks.instance_profile(instance_profile)
        private_subnet = bool(net.subnet_id) and not net.public_ip_on_launch
        return LaunchPlan(
            name=name,
            image_id=img.id,
            image_name=img.name,
            root_device=img.raw.get("RootDeviceName") or "/dev/sda1",
            type=type,
            disk=disk,
            zone=zone,
            spot=spot,
            max_price=None if max_price is None else str(max_price),
            tags={"Name": name, MANAGED_TAG: "1", **(tags or {})},
            user_data=user_data,
            shutdown_behavior=shutdown_behavior,
            open_ssh=open_ssh and not self.aws.settings.ssh_cidr,  # EC2KIT_SSH_CIDR / ssh_cidr still decide
            vpc_id=net.vpc_id,
            subnet_id=net.subnet_id,
            security_group_ids=net.group_ids,
            associate_public_ip=private_subnet and self.aws.settings.ssh_address != "private",
            network_note=_network_note(net, private_subnet, self.aws.settings.ssh_address),
            instance_profile=instance_profile,
            image_note=image_note,
            interruption=interruption,
        )

    @translated("launch instance {0}")
    def launch(
        self,
        name: str | LaunchPlan,
        *,
        progress: Progress | None = None,
        types: list[str] | tuple[str, ...] = (),
        on_demand_fallback: bool = False,
        **options: Any,
    ) -> Instance:
        """Launch one instance and wait until it is running: ``launch(plan)`` or ``launch(name, **plan_launch options)``.

        Spot launches go through one instant EC2 Fleet over ``plan.type`` and ``types`` × zones
        (``on_demand_fallback``: then an on-demand fleet when spot has no capacity). vCPU quotas
        are checked first (:mod:`ec2kit.aws.quotas`), then the key pair and security group are set
        up. Ctrl-C or a failure part-way terminates what was created.
        """
        plan = name if isinstance(name, LaunchPlan) else self.plan_launch(name, **options)
        return self._launch(plan, 1, progress=progress, types=types, on_demand_fallback=on_demand_fallback, claim=True)[0]

    def launch_many(
        self,
        plan: LaunchPlan,
        count: int,
        *,
        progress: Progress | None = None,
        types: list[str] | tuple[str, ...] = (),
        on_demand_fallback: bool = False,
    ) -> list[Instance]:
        """Up to ``count`` spot instances of ``plan`` from ONE instant CreateFleet (a sweep's batch), each running.

        AWS may fill less than the target (the list is then shorter); no capacity at all raises NoCapacity.
        """
        if not plan.spot or plan.interruption:
            raise ConfigError(f"Launching several instances of '{plan.name}' at once needs a one-time spot plan.")
        return self._launch(plan, max(1, count), progress=progress, types=types, on_demand_fallback=on_demand_fallback)

    def _launch(
        self,
        plan: LaunchPlan,
        count: int,
        *,
        progress: Progress | None,
        types: list[str] | tuple[str, ...],
        on_demand_fallback: bool,
        claim: bool = False,
    ) -> list[Instance]:
        # A spot launch that must survive interruptions stopped (plan.interruption) is one RunInstances with
        # persistent SpotOptions: an instant fleet's requests are one-time.
        fleet = (
            self.fleets.plan_fleet(plan, types=types, on_demand_fallback=on_demand_fallback)
            if plan.spot and not plan.interruption
            else None
        )
        if (types or on_demand_fallback) and fleet is None:
            raise ConfigError(
                "--types and --on-demand-fallback choose among spot capacity pools, and this launch is on-demand.",
                hint="Add --spot, or drop --types / --on-demand-fallback.",
            )
        if fleet is not None:
            fleet = self.fleets.fit_quotas(fleet, progress=progress)  # quotas: before any paid call
            room = self.fleets.quota_room(fleet, count)
            if room < count and progress:
                progress(f"instance {plan.name}: the vCPU quota lets {room} of {count} instances run now")
            fleet = replace(fleet, count=room)
        else:
            refused = self.quotas.check_quotas(
                plan.type, "spot" if plan.spot else "on-demand", action=f"launch instance {plan.name}"
            )
            if refused is not None:
                raise refused
        self.access.ensure_key_pair()
        group_ids = (self.access.ensure_security_group(open_ssh=plan.open_ssh, vpc_id=plan.vpc_id),)
        if progress and (note := self.access.pruned_note()):
            progress(f"instance {plan.name}: {note}")
        spec = plan.spec(key_name=self.aws.settings.key_name, group_ids=group_ids)
        token = uuid.uuid4().hex[:16]
        tags = {**plan.tags, LAUNCH_TAG: token}  # finds what this launch created, even if Ctrl-C lost the response
        try:
            if fleet is not None:
                made = [self._require_imdsv2(i) for i in self.fleets.launch_fleet_instances(fleet, spec, tags, progress)]
            else:
                made = [self._launch_on_demand(plan, spec, tags, progress)]
            if claim and made:
                self._claim_name(plan.name, made[0])
            return made
        except BaseException as err:
            left = self.cleanup_launch(token)
            if left:
                raise AwsError(
                    f"Launching '{plan.name}' failed ({err or type(err).__name__}) and ec2kit could not remove what it "
                    f"created: {', '.join(left)}.",
                    hint="Remove them in the AWS console or with `inv terminate ID`, then retry.",
                ) from err
            raise

    def _claim_name(self, name: str, mine: Instance) -> None:
        """Two launches of one name at once both pass :meth:`plan_launch`'s check. Once running, each looks
        again: an instance of that name that already claimed it wins; otherwise the earliest launch (then the
        lowest id) does and tags itself claimed, within milliseconds of its look, while a rival only looks once
        its own instance runs, seconds later. The loser raises, and its launch is cleaned up like any failed
        one: one name, one instance."""
        claims = {i.id: i for i in self.instances.instances(states=CLAIMING_STATES, tags={"Name": name}) if i.id != mine.id}
        if not claims:
            self.instances.tag(mine.id, {NAME_CLAIM_TAG: "1"})
            return
        held = [i for i in claims.values() if i.tags.get(NAME_CLAIM_TAG) == "1"]
        first = held[0] if held else min([*claims.values(), mine], key=lambda i: (str(i.launch_time), i.id))
        if first.id == mine.id:
            self.instances.tag(mine.id, {NAME_CLAIM_TAG: "1"})
            return
        raise AlreadyExists(
            f"Another launch of '{name}' ran at the same time and keeps the name ({first.id}); this one ({mine.id}) is removed.",
            hint=f"Use that instance (`inv connect {name}`), or launch this one under another name.",
        )

    def _require_imdsv2(self, inst: Instance) -> Instance:
        """Make sure IMDSv2 is required on ``inst``: the launch template asks for it, and where the
        answer shows otherwise (moto's fleets drop template metadata options) it is set now."""
        wanted = LaunchPlan.METADATA_OPTIONS
        options = inst.raw.get("MetadataOptions") or {}
        if all(options.get(k) == v for k, v in wanted.items() if k != "HttpEndpoint"):
            return inst
        self.aws.ec2.modify_instance_metadata_options(InstanceId=inst.id, **wanted)
        inst.raw["MetadataOptions"] = {**options, **wanted}  # keep what the fleet learnt (price, market)
        return inst

    def _launch_on_demand(
        self, plan: LaunchPlan, spec: dict[str, Any], tags: dict[str, str], progress: Progress | None
    ) -> Instance:
        if progress:
            progress(f"instance {plan.name}: launching")
        try:
            market = {"InstanceMarketOptions": plan.params["InstanceMarketOptions"]} if plan.spot else {}
            resp = self.aws.ec2.run_instances(
                MinCount=1,
                MaxCount=1,
                ClientToken=tags[LAUNCH_TAG],
                **spec,
                **market,
                TagSpecifications=plan.tag_specifications(tags),
            )
        except Exception as err:
            if error_code(err) not in QUOTA_ERRORS:
                raise
            said = getattr(err, "response", {}).get("Error", {}).get("Message", "")
            code = error_code(err)  # MaxSpotInstanceCountExceeded: a spot quota, even from RunInstances (a resumable launch)
            quota_market = QUOTA_MARKETS.get(code) or ("spot" if plan.spot else "on-demand")
            explained = self.quotas.explain_quota(plan.type, quota_market, action=plan.purpose, code=code, said=said)
            if explained is None:
                raise
            raise explained from err
        return self.instances.wait(Instance.from_raw(resp["Instances"][0]), "running", progress=progress)

    def cleanup_launch(self, token: str) -> list[str]:
        """After a failed or interrupted launch: cancel its spot request, terminate its instance, delete its launch template.

        Finds them by the launch's token tag; returns the ids it could not remove (best effort).
        """
        found: list[str] = []
        instance_ids: set[str] = set()
        try:
            reqs = self.aws.paginate(
                "describe_spot_instance_requests", "SpotInstanceRequests[]", Filters=filters(**{f"tag:{LAUNCH_TAG}": token})
            )
            instance_ids |= {r["InstanceId"] for r in reqs if r.get("InstanceId")}
            live = filters(**{f"tag:{LAUNCH_TAG}": token, "instance-state-name": list(LIVE_STATES)})
            instance_ids |= {
                i["InstanceId"] for i in self.aws.paginate("describe_instances", "Reservations[].Instances[]", Filters=live)
            }
            if instance_ids:  # a fleet's spot requests carry no tags of their own: found through their instances
                reqs += self.aws.paginate(
                    "describe_spot_instance_requests",
                    "SpotInstanceRequests[]",
                    Filters=filters(**{"instance-id": sorted(instance_ids)}),
                )
            found += sorted({r["SpotInstanceRequestId"] for r in reqs if r.get("State") in ("open", "active")})
            if found:
                self.aws.ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=found)
            found = []
            if instance_ids:
                self.aws.ec2.terminate_instances(InstanceIds=sorted(instance_ids))
            self.fleets.delete_launch_templates(token)
            return []
        except BaseException:
            return found + sorted(instance_ids) or [f"anything tagged {LAUNCH_TAG}={token}"]


def _root_size(raw: dict[str, Any]) -> int | None:
    """The image's root volume size in GB (its root device's snapshot), when it says."""
    root = raw.get("RootDeviceName")
    for mapping in raw.get("BlockDeviceMappings", []):
        if mapping.get("DeviceName") == root and mapping.get("Ebs", {}).get("VolumeSize"):
            return int(mapping["Ebs"]["VolumeSize"])
    return None


def _network_note(net: Network, private_subnet: bool, ssh_address: str) -> str:
    """What the plan says about a subnet that assigns no public IPv4 ('' for one that does)."""
    if not private_subnet:
        return ""
    subnet = f"subnet {net.subnet_name or net.subnet_id}"
    if ssh_address == "private":
        return f"{subnet} assigns no public IPv4 and EC2KIT_SSH_ADDRESS=private: the instance is private-only, reached from inside its VPC"
    return (
        f"{subnet} assigns no public IPv4 by itself: ec2kit asks AWS for one, so this machine can reach it "
        "(it also needs a route to an internet gateway; EC2KIT_SSH_ADDRESS=private keeps it private)"
    )
