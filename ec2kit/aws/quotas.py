"""EC2 vCPU quotas (Service Quotas), checked before a launch and explained when AWS enforces them.

    cloud.check_quotas("g5.xlarge", "on-demand")   # QuotaExceeded before any paid call, or None
    quota_for("g5.xlarge", "spot")                  # (quota_table.py) VcpuQuota("L-3819A6DF", …)

AWS counts running vCPUs per *family bucket* and market: one quota for Standard (A, C, D, H, I,
M, R, T, Z) on-demand instances, one for G and VT, one for P, … and the same buckets again for
spot requests. A young account has 5 Standard vCPUs and 0 of everything else, so the first GPU
launch fails with ``VcpuLimitExceeded`` (on-demand) or ``MaxSpotInstanceCountExceeded`` (spot).
ec2kit reads the limit (GetServiceQuota, once per quota per command), the vCPUs the launch needs
(DescribeInstanceTypes' ``VCpuInfo``) and those already running in the bucket (DescribeInstances),
and says what to ask AWS for. When Service Quotas cannot be read (no permission, not offered in
the region) the launch goes ahead, and AWS's own error gets the same explanation.
"""

from __future__ import annotations

from ..errors import QuotaExceeded
from .errors import error_code, is_aws_exception
from .instance_types import InstanceTypes
from .instances import Instances
from .models import Instance
from .quota_table import VcpuQuota, limit_in, quota_error, quota_for
from .session import AwsSession

__all__ = ["Quotas"]


class Quotas:
    """vCPU quota checks over one session (limits read once per quota per command)."""

    def __init__(self, aws: AwsSession, types: InstanceTypes, instances: Instances) -> None:
        self.aws = aws
        self.types = types
        self.instances = instances
        self._limits: dict[str, float | None] = {}

    def quota_limit(self, quota: VcpuQuota) -> float | None:
        """The quota's value from Service Quotas (cached), or None when it cannot be read."""
        if quota.code not in self._limits:
            try:
                answer = self.aws.client("service-quotas").get_service_quota(ServiceCode="ec2", QuotaCode=quota.code)
                self._limits[quota.code] = float(answer["Quota"]["Value"])
            except Exception as err:  # noqa: BLE001 - no permission, not in this region, no network: AWS will say
                if not is_aws_exception(err):
                    raise
                self._limits[quota.code] = None
        return self._limits[quota.code]

    def vcpus_in_use(self, quota: VcpuQuota, running: list[Instance] | None = None) -> int:
        """vCPUs of pending and running instances (``running``, else looked up) that count against ``quota``."""
        found = self.instances.live_instances() if running is None else running
        mine = [i for i in found if quota_for(i.type, "spot" if i.lifecycle == "spot" else "on-demand") == quota]
        self.types.describe({i.type for i in mine})
        return sum(self._vcpus_of(i) for i in mine)

    def _vcpus_of(self, instance: Instance) -> int:
        cpu = instance.raw.get("CpuOptions") or {}
        if cpu.get("CoreCount") and cpu.get("ThreadsPerCore"):
            return int(cpu["CoreCount"]) * int(cpu["ThreadsPerCore"])
        return self.types.vcpus(instance.type)

    def check_quotas(
        self, instance_type: str, market: str, *, action: str = "launch it", running: list[Instance] | None = None
    ) -> QuotaExceeded | None:
        """The QuotaExceeded a launch of one ``instance_type`` on ``market`` would meet, or None (fits, or unknown).

        ``running``: the live instances, when the caller checks several types at once (one DescribeInstances).
        """
        quota = quota_for(instance_type, market)
        if quota is None:
            return None
        limit = self.quota_limit(quota)
        if limit is None:
            return None
        needed = self.types.vcpus(instance_type)
        used = self.vcpus_in_use(quota, running)
        if used + needed <= limit:
            return None
        return quota_error(
            quota, instance_type=instance_type, region=self.aws.region, action=action, needed=needed, used=used, limit=limit
        )

    def explain_quota(
        self, instance_type: str, market: str, *, action: str, code: str = "", said: str = ""
    ) -> QuotaExceeded | None:
        """AWS refused a launch with a quota error: the same message as :meth:`check_quotas`, as far as it can be read."""
        quota = quota_for(instance_type, market)
        if quota is None:
            return None
        limit = self.quota_limit(quota)
        if limit is None:
            limit = limit_in(said)
        try:
            used: int | None = self.vcpus_in_use(quota)
        except Exception as err:  # noqa: BLE001 - the explanation must not hide AWS's refusal
            if not error_code(err):
                raise
            used = None
        return quota_error(
            quota,
            instance_type=instance_type,
            region=self.aws.region,
            action=action,
            needed=self.types.vcpus(instance_type),
            used=used,
            limit=limit,
            code=code,
            said=said,
        )
