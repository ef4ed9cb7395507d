"""A launch's network interface as AWS settles it and moto does not: the primary interface's groups
are the instance's, and its public IPv4 follows ``AssociatePublicIpAddress``, else the subnet's
``MapPublicIpOnLaunch`` (shared by the RunInstances and CreateFleet patches)."""

from __future__ import annotations

from typing import Any


def primary_interface(data: dict[str, Any]) -> dict[str, Any]:
    """The launch template's interface at DeviceIndex 0 ({} when it names none)."""
    for nic in data.get("NetworkInterfaces") or []:
        if int(nic.get("DeviceIndex", 0)) == 0:
            return dict(nic)
    return {}


def settle_public_ip(backend: Any, instance: Any, nic: dict[str, Any]) -> None:
    """A public IPv4 as AWS decides it: the interface's AssociatePublicIpAddress, else the subnet's MapPublicIpOnLaunch."""
    from moto.ec2.utils import random_public_ip

    primary = instance.nics.get(0)
    if primary is None:
        return
    wanted = nic.get("AssociatePublicIpAddress")
    if wanted is None:
        subnet = backend.get_subnet(instance.subnet_id) if instance.subnet_id else None
        wanted = subnet is None or subnet.map_public_ip_on_launch is True
    if wanted and not primary.public_ip:
        primary.public_ip = random_public_ip()
    elif not wanted and primary.public_ip:
        primary.public_ip = None


def interface_groups(instance: Any) -> None:
    """AWS reports the primary interface's groups as the instance's (moto leaves them on the interface)."""
    primary = instance.nics.get(0)
    if primary is not None and not instance.security_groups and primary._group_set:
        instance.security_groups = list(primary._group_set)
