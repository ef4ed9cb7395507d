"""CreateFleet as AWS's instant fleet does it, on top of moto's (``patch_fleets()``, daemon only).

moto launches the whole target from one launch spec, ignores the overrides' zones and the
template's security groups, and never reports errors. Patched here: the overrides are tried in
order (lowest ``SpotPrice``/``Priority`` first when given) until the target is met; an override
whose (type, zone, market) pool has no capacity, or whose launch would pass a vCPU quota, is
skipped and reported in the response's ``Errors`` (``InsufficientInstanceCapacity``,
``VcpuLimitExceeded``, ``MaxSpotInstanceCountExceeded``; an image that does not exist:
``InvalidAMIID.NotFound``; a zone with no default subnet in the default VPC: ``InvalidInput``, as moto words it for RunInstances)
with its ``LaunchTemplateAndOverrides``;
when every pool fails the response has no instances and only errors. Spot instances honour
``SpotOptions.InstanceInterruptionBehavior`` (fleet) or the template's ``InstanceMarketOptions``.
"""

from __future__ import annotations

import math
from typing import Any

from .account import ACCOUNT
from .interfaces import interface_groups, primary_interface, settle_public_ip
from .limits import check_quota, choose_zone, require_default_subnet, subnet_zone


def template_data(backend: Any, spec: Any) -> dict[str, Any]:
    """The launch template version data behind a fleet launch spec ({} when there is none)."""
    lt = spec.launch_template_spec or {}
    try:
        template = backend.get_launch_template(template_id=lt["LaunchTemplateId"])
        return dict(template.get_version(lt.get("Version") or template.default_version_number).data)
    except Exception:
        return {}


def spec_zone(backend: Any, spec: Any, data: dict[str, Any]) -> str | None:
    overrides = spec.overrides or {}
    return (
        overrides.get("AvailabilityZone")
        or subnet_zone(backend, spec.subnet_id)
        or (data.get("Placement") or {}).get("AvailabilityZone")
    )


def ordered_specs(fleet: Any, market: str) -> list[Any]:
    """Launch specs in the order AWS would try them: by Priority, else by price, else as given."""

    def key(spec: Any) -> tuple[float, float]:
        overrides = spec.overrides or {}
        priority = float(overrides.get("Priority", math.inf))
        price = float(spec.spot_price or math.inf) if market == "spot" else math.inf
        return (priority, price)

    return sorted(fleet.launch_specs, key=key)


def interruption_behavior(fleet: Any, data: dict[str, Any]) -> str | None:
    spot = (data.get("InstanceMarketOptions") or {}).get("SpotOptions") or {}
    return (fleet.spot_options or {}).get("InstanceInterruptionBehavior") or spot.get("InstanceInterruptionBehavior")


def fleet_error(spec: Any, market: str, code: str, message: str) -> dict[str, Any]:
    item: dict[str, Any] = {"LaunchTemplateSpecification": spec.launch_template_spec}
    if spec.overrides:
        item["Overrides"] = spec.overrides
    return {"LaunchTemplateAndOverrides": item, "Lifecycle": market, "ErrorCode": code, "ErrorMessage": message}


def launch(fleet: Any, weight_to_add: float, market: str) -> None:
    """Fill ``weight_to_add`` of ``market`` capacity from the first pools that can take it."""
    from moto.ec2.exceptions import EC2ClientError

    backend = fleet.ec2_backend
    errors: list[dict[str, Any]] = fleet.__dict__.setdefault("sandbox_errors", [])
    remaining = weight_to_add
    for spec in ordered_specs(fleet, market):
        if remaining <= 0:
            break
        data = template_data(backend, spec)
        nic = primary_interface(data)  # a template that asks for a public IPv4 holds subnet and groups on its interface
        groups = list(spec.group_set or data.get("SecurityGroupIds") or nic.get("Groups") or [])
        subnet_id = spec.subnet_id or nic.get("SubnetId")
        count = max(1, math.ceil(remaining / spec.weighted_capacity))
        try:
            with ACCOUNT.lock:
                backend.describe_images(ami_ids=[spec.image_id])  # AWS: InvalidAMIID.NotFound for that pool
                if not subnet_id:
                    require_default_subnet(backend, spec_zone(backend, spec, data))
                zone = choose_zone(
                    backend, spec.instance_type, subnet_zone(backend, subnet_id) or spec_zone(backend, spec, data), market
                )
                check_quota(backend, spec.instance_type, count, market)
                if market == "spot":
                    requests = backend.request_spot_instances(
                        price=spec.spot_price,
                        image_id=spec.image_id,
                        count=count,
                        spot_instance_type="one-time" if fleet.fleet_type == "instant" else "persistent",
                        valid_from=None,
                        valid_until=None,
                        launch_group=None,
                        availability_zone_group=None,
                        key_name=spec.key_name,
                        security_groups=groups,
                        user_data=spec.user_data,
                        instance_type=spec.instance_type,
                        placement=zone,
                        kernel_id=None,
                        ramdisk_id=None,
                        monitoring_enabled=spec.monitoring_enabled,
                        subnet_id=subnet_id,
                        spot_fleet_id=fleet.id,
                        tags=spec.tag_specifications,
                        instance_interruption_behaviour=interruption_behavior(fleet, data),
                        launch_spec=spec,
                    )
                    fleet.spot_requests.extend(r for r in requests if r.instance is not None)
                    for r in requests:
                        if r.instance is not None:
                            settle_public_ip(backend, r.instance, nic)
                            interface_groups(r.instance)
                else:
                    reservation = backend.run_instances(
                        image_id=spec.image_id,
                        count=count,
                        instance_type=spec.instance_type,
                        is_instance_type_default=False,
                        key_name=spec.key_name,
                        security_group_names=[],
                        security_group_ids=groups,
                        user_data=spec.user_data,
                        placement=zone,
                        kernel_id=None,
                        ramdisk_id=None,
                        monitoring_enabled=spec.monitoring,
                        subnet_id=subnet_id,
                        fleet_id=fleet.id,
                        tags=spec.tag_specifications,
                    )
                    for i in reservation.instances:
                        settle_public_ip(backend, i, nic)
                        interface_groups(i)
                    fleet.on_demand_instances.extend(
                        {"id": reservation.id, "instance": i, "launch_spec": spec} for i in reservation.instances
                    )
        except EC2ClientError as err:
            error = fleet_error(spec, market, err.code, err.message)
            if error not in errors:
                errors.append(error)
            continue
        added = count * spec.weighted_capacity
        fleet.fulfilled_capacity += added
        remaining -= added


def patch_fleets() -> None:
    """Replace moto's fleet launching and add ``Errors`` to CreateFleet's response."""
    from moto.ec2.models.fleets import Fleet
    from moto.ec2.responses.fleets import Fleets

    original_response = Fleets.create_fleet

    def create_spot_requests(self: Any, weight_to_add: float) -> list[Any]:
        launch(self, weight_to_add, "spot")
        return self.spot_requests

    def create_on_demand_requests(self: Any, weight_to_add: float) -> None:
        launch(self, weight_to_add, "on-demand")

    def create_fleet_response(self: Any) -> Any:
        result = original_response(self)
        body = getattr(result, "result", None)
        if isinstance(body, dict) and body.get("FleetId"):
            fleet = self.ec2_backend.get_fleet(body["FleetId"])
            errors = getattr(fleet, "sandbox_errors", None) if fleet is not None else None
            if errors and fleet.fleet_type == "instant":
                body["Errors"] = errors
            if fleet is not None and fleet.fleet_type == "instant":
                body["Instances"] = fleet.instances or []
        return result

    Fleet.create_spot_requests = create_spot_requests  # type: ignore[method-assign]
    Fleet.create_on_demand_requests = create_on_demand_requests  # type: ignore[method-assign]
    Fleets.create_fleet = create_fleet_response  # type: ignore[method-assign]
