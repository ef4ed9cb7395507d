"""What EC2 says about instance types (DescribeInstanceTypes), asked once per type per command.

``info("g5.xlarge")`` is the type's record (NotFound with where to look when AWS does not offer
it), ``vcpus("g5.xlarge")`` its default vCPUs, ``describe(types)`` fills the cache with one call
per 100 types (quota checks count the vCPUs of every running instance).
"""

from __future__ import annotations

from typing import Any

from ..errors import NotFound
from .errors import error_code, translated
from .session import AwsSession

__all__ = ["InstanceTypes"]


class InstanceTypes:
    """DescribeInstanceTypes answers by type, cached for the session's life (one command)."""

    def __init__(self, aws: AwsSession) -> None:
        self.aws = aws
        self._cache: dict[str, dict[str, Any]] = {}

    @translated("check instance type {0}")
    def info(self, type: str) -> dict[str, Any]:
        """Describe an instance type (cached); NotFound with where to look if AWS does not offer it."""
        if type not in self._cache:
            try:
                found = self.aws.ec2.describe_instance_types(InstanceTypes=[type])["InstanceTypes"]
            except Exception as err:
                if error_code(err) not in ("InvalidInstanceType", "InvalidParameterValue"):
                    raise
                found = []
            if not found:
                family = type.split(".")[0]
                raise NotFound(
                    "instance type",
                    type,
                    hint=f"AWS offers no such type in {self.aws.region}; "
                    f"see `inv prices {family}` or the EC2 instance types page (e.g. t3.medium, m5.xlarge).",
                )
            self._cache[type] = found[0]
        return dict(self._cache[type])

    def vcpus(self, instance_type: str) -> int:
        """Default vCPUs of ``instance_type`` (DescribeInstanceTypes, cached)."""
        return int(self.info(instance_type).get("VCpuInfo", {}).get("DefaultVCpus", 1))

    def describe(self, types: set[str]) -> None:
        """Fill the cache for ``types`` with one call per 100 (a batch with an unknown type is skipped:
        :meth:`info` then asks for each alone)."""
        missing = sorted(t for t in types if t not in self._cache)
        for start in range(0, len(missing), 100):
            try:
                answer: list[dict[str, Any]] = self.aws.paginate(
                    "describe_instance_types", "InstanceTypes[]", InstanceTypes=missing[start : start + 100]
                )
            except Exception as err:  # noqa: BLE001 - one unknown type fails the batch: look them up one by one
                if not error_code(err):
                    raise
                continue
            for info in answer:
                self._cache[info["InstanceType"]] = info
