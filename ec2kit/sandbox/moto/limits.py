"""What an account may launch, checked as AWS does: vCPU quotas and capacity pools, with AWS's wording.

Read by the RunInstances/spot-request patches (``aws_behaviours``) and the CreateFleet patch (``fleets``).
"""

from __future__ import annotations

from typing import Any

from .account import ACCOUNT, ACCOUNT_ID, REGION, quota_for

LIVE = ("pending", "running")


def ec2_backend() -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[ACCOUNT_ID][REGION]


def vcpus(instance_type: str) -> int:
    """Default vCPUs of ``instance_type`` from moto's DescribeInstanceTypes data (1 if unknown)."""
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    return int(INSTANCE_TYPES.get(instance_type, {}).get("VCpuInfo", {}).get("DefaultVCpus", 1))


def zones(backend: Any) -> list[str]:
    return sorted(z.name for z in backend.describe_availability_zones())


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _error(code: str, message: str) -> Exception:
    from moto.ec2.exceptions import EC2ClientError

    return EC2ClientError(code, message)


# messages, as AWS words them ---------------------------------------------------------
def vcpu_limit_message(limit: float) -> str:
    return (
        f"You have requested more vCPU capacity than your current vCPU limit of {_number(limit)} allows for the "
        "instance bucket that the specified instance type belongs to. Please visit "
        "http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit."
    )


SPOT_LIMIT_MESSAGE = "Max spot instance count exceeded"
NO_SPOT_CAPACITY = "There is no Spot capacity available that matches your request."


def no_capacity_message(instance_type: str, zone: str | None, others: list[str]) -> str:
    if zone is None:
        return (
            f"We currently do not have sufficient {instance_type} capacity in the Region you requested. "
            "Our system will be working on provisioning additional capacity."
        )
    text = (
        f"We currently do not have sufficient {instance_type} capacity in the Availability Zone you requested ({zone}). "
        "Our system will be working on provisioning additional capacity."
    )
    if others:
        text += (
            f" You can currently get {instance_type} capacity by not specifying an Availability Zone in your request "
            f"or choosing {', '.join(others)}."
        )
    return text


# checks ----------------------------------------------------------------------------
def running_vcpus(backend: Any, quota_code: str, market: str) -> int:
    """vCPUs of pending/running instances that count against ``quota_code``."""
    total = 0
    for instance in backend.all_instances():
        lifecycle = "spot" if getattr(instance, "lifecycle", None) == "spot" else "on-demand"
        if instance._state.name in LIVE and lifecycle == market:
            quota = quota_for(instance.instance_type, market)
            if quota is not None and quota.code == quota_code:
                total += vcpus(instance.instance_type)
    return total


def check_quota(backend: Any, instance_type: str, count: int, market: str) -> None:
    """Raise AWS's error when ``count`` more ``instance_type`` would pass an enforced vCPU quota."""
    limit = ACCOUNT.enforced_limit(instance_type, market)
    if limit is None:
        return
    quota, value = limit
    if running_vcpus(backend, quota.code, market) + vcpus(instance_type) * count > value:
        if market == "spot":
            raise _error("MaxSpotInstanceCountExceeded", SPOT_LIMIT_MESSAGE)
        raise _error("VcpuLimitExceeded", vcpu_limit_message(value))


def choose_zone(backend: Any, instance_type: str, zone: str | None, market: str) -> str | None:
    """The zone to launch in (``zone`` itself, or one with capacity); raises when there is none."""
    if zone is not None:
        if ACCOUNT.has_capacity(instance_type, zone, market):
            return zone
        others = [z for z in zones(backend) if z != zone and ACCOUNT.has_capacity(instance_type, z, market)]
        raise _error(
            "InsufficientInstanceCapacity",
            NO_SPOT_CAPACITY if market == "spot" else no_capacity_message(instance_type, zone, others),
        )
    every = zones(backend)
    if all(ACCOUNT.has_capacity(instance_type, z, market) for z in every):
        return None  # moto's own default placement
    for candidate in every:
        if ACCOUNT.has_capacity(instance_type, candidate, market):
            return candidate
    raise _error(
        "InsufficientInstanceCapacity", NO_SPOT_CAPACITY if market == "spot" else no_capacity_message(instance_type, None, [])
    )


def require_default_subnet(backend: Any, zone: str | None) -> None:
    """AWS places an instance given only a zone in the default VPC's default subnet there; with none it refuses."""
    if not zone:
        return
    defaults = [s for s in backend.describe_subnets(filters={"default-for-az": ["true"]}) if s.availability_zone == zone]
    if not defaults:
        raise _error("InvalidInput", f"No default subnet for availability zone: '{zone}'.")


def subnet_zone(backend: Any, subnet_id: str | None) -> str | None:
    if not subnet_id:
        return None
    try:
        return backend.get_subnet(subnet_id).availability_zone
    except Exception:
        return None
