"""Where an instance goes and who it is: subnet (id or Name tag), extra security groups, IAM instance profile.

    net = cloud.network(subnet="training-a", security_groups=["sg-0abc", "efs-clients"])
    net.vpc_id, net.subnet_id, net.group_ids
    cloud.instance_profile("ec2kit-s3")   # checked with IAM, before anything is paid for

Without a subnet, instances go to the region's default VPC (a clear error when it has none).
ec2kit's own ``ec2kit-ssh`` group is made in whichever VPC that is (:mod:`~ec2kit.aws.access`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError, NotFound
from .access import Access
from .errors import error_code, translated
from .models import filters, tags_of
from .session import AwsSession

__all__ = ["Network", "Networks"]


@dataclass(frozen=True)
class Network:
    """The VPC, subnet (None: the default VPC's choice) and extra security group ids of a launch."""

    vpc_id: str
    subnet_id: str | None = None
    subnet_name: str = ""
    zone: str | None = None  # the subnet's availability zone
    group_ids: tuple[str, ...] = ()
    public_ip_on_launch: bool = True  # the subnet's MapPublicIpOnLaunch (default subnets: yes)


class Networks:
    """Subnet, security group and instance profile look-ups (the Cloud forwards ``cloud.network(…)``, … here)."""

    def __init__(self, aws: AwsSession, access: Access) -> None:
        self.aws = aws
        self.access = access

    @translated("find subnet {0}")
    def subnet(self, name_or_id: str) -> dict[str, object]:
        """A subnet by id or Name tag (describe_subnets record); NotFound lists the names there are."""
        if re.fullmatch(r"subnet-[0-9a-f]+", name_or_id):
            try:
                found = self.aws.ec2.describe_subnets(SubnetIds=[name_or_id]).get("Subnets", [])
            except Exception as err:
                if "NotFound" not in error_code(err):
                    raise
                found = []
        else:
            found = self.aws.paginate("describe_subnets", "Subnets[]", Filters=filters(**{"tag:Name": name_or_id}))
        if len(found) > 1:
            raise ConfigError(
                f"{len(found)} subnets are named '{name_or_id}': {', '.join(s['SubnetId'] for s in found)}.",
                hint="Pass the subnet id with --subnet instead.",
            )
        if not found:
            named = sorted({n for s in self.aws.paginate("describe_subnets", "Subnets[]") if (n := tags_of(s).get("Name", ""))})
            known = f"Subnets with a Name tag in {self.aws.region}: {', '.join(named[:10])}. " if named else ""
            raise NotFound(
                "subnet",
                name_or_id,
                hint=f"{known}--subnet takes an id or a Name tag; list them with `aws ec2 describe-subnets --region {self.aws.region}`.",
            )
        return dict(found[0])

    @translated("find security groups")
    def security_group_ids(self, names: list[str] | tuple[str, ...], vpc_id: str) -> tuple[str, ...]:
        """Ids of the groups ``names`` (ids or group names) in ``vpc_id``; a group elsewhere is refused."""
        wanted = [n for n in names if n]
        if not wanted:
            return ()
        ids = [n for n in wanted if re.fullmatch(r"sg-[0-9a-f]+", n)]
        by_name = [n for n in wanted if n not in ids]
        found: dict[str, dict[str, object]] = {}
        if ids:
            try:
                for g in self.aws.paginate("describe_security_groups", "SecurityGroups[]", GroupIds=ids):
                    found[g["GroupId"]] = g
            except Exception as err:
                if "NotFound" not in error_code(err):
                    raise
        if by_name:
            flt = filters(**{"group-name": by_name, "vpc-id": vpc_id})
            for g in self.aws.paginate("describe_security_groups", "SecurityGroups[]", Filters=flt):
                found[g["GroupName"]] = g
        out = []
        for name in wanted:
            group = found.get(name)
            if group is None:
                raise NotFound(
                    "security group",
                    name,
                    hint=f"--security-group takes a group id (sg-…) or a group name in VPC {vpc_id}; "
                    f"list them with `aws ec2 describe-security-groups --region {self.aws.region}`.",
                )
            if group.get("VpcId") != vpc_id:
                raise ConfigError(
                    f"Security group {name} is in VPC {group.get('VpcId')}, but the instance goes to VPC {vpc_id}.",
                    hint="Pick a group of that VPC, or a --subnet in the group's VPC.",
                )
            out.append(str(group["GroupId"]))
        return tuple(dict.fromkeys(out))

    def network(
        self, *, subnet: str | None = None, security_groups: list[str] | tuple[str, ...] = (), zone: str | None = None
    ) -> Network:
        """Resolve ``--subnet`` / ``--security-group`` (default VPC without a subnet); checks the zone fits."""
        if not subnet:
            vpc_id = self.access.default_vpc()
            return Network(vpc_id, group_ids=self.security_group_ids(security_groups, vpc_id))
        raw = self.subnet(subnet)
        vpc_id, subnet_zone = str(raw["VpcId"]), str(raw.get("AvailabilityZone") or "")
        if zone and subnet_zone and zone != subnet_zone:
            raise ConfigError(
                f"Subnet {subnet} is in {subnet_zone}, but --zone asks for {zone}.",
                hint="Drop --zone (the subnet decides it) or pick a subnet in that zone.",
            )
        return Network(
            vpc_id,
            str(raw["SubnetId"]),
            tags_of(raw).get("Name", ""),
            subnet_zone or None,
            self.security_group_ids(security_groups, vpc_id),
            bool(raw.get("MapPublicIpOnLaunch")),
        )

    @translated("find instance profile {0}")
    def instance_profile(self, name: str) -> str:
        """Check IAM knows instance profile ``name`` (skipped when you may not ask); returns it."""
        if name.startswith("arn:"):
            raise ConfigError(
                f"--instance-profile takes a profile name, not an ARN ({name}).",
                hint="Use the last part: …:instance-profile/NAME.",
            )
        try:
            self.aws.client("iam").get_instance_profile(InstanceProfileName=name)
        except Exception as err:
            code = error_code(err)
            if code == "NoSuchEntity":
                raise NotFound(
                    "instance profile",
                    name,
                    hint="List them with `aws iam list-instance-profiles`; an instance profile wraps the IAM role "
                    "the instance acts as.",
                ) from None
            if code not in ("AccessDenied", "AccessDeniedException"):
                raise
        return name
