"""EC2 vCPU quotas (Service Quotas), checked before a launch and explained when AWS enforces them.

    cloud.check_quotas("g5.xlarge", "on-demand")   # QuotaExceeded before any paid call, or None
    quota_for("g5.xlarge", "spot")                  # VcpuQuota("L-3819A6DF", "All G and VT Spot Instance Requests", …)

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

import re
from dataclasses import dataclass
from typing import Any

from ..errors import QuotaExceeded
from .errors import is_aws_exception
from .instances import Instances
from .models import Instance, filters
from .session import error_code

__all__ = [
    "QUOTAS",
    "QUOTA_ERRORS",
    "Quotas",
    "VcpuQuota",
    "family_of",
    "limit_in",
    "quota_error",
    "quota_for",
    "request_command",
]

QUOTA_ERRORS = ("VcpuLimitExceeded", "MaxSpotInstanceCountExceeded", "InstanceLimitExceeded")


@dataclass(frozen=True)
class VcpuQuota:
    """One EC2 vCPU quota of Service Quotas (``ServiceCode="ec2"``)."""

    code: str
    name: str
    market: str  # on-demand | spot
    families: tuple[str, ...]  # the letters before the generation digit: g5.xlarge -> "g"


_STANDARD = ("a", "c", "d", "h", "i", "m", "r", "t", "z")
QUOTAS = (
    VcpuQuota("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "on-demand", _STANDARD),
    VcpuQuota("L-DB2E81BA", "Running On-Demand G and VT instances", "on-demand", ("g", "vt")),
    VcpuQuota("L-417A185B", "Running On-Demand P instances", "on-demand", ("p",)),
    VcpuQuota("L-1945791B", "Running On-Demand Inf instances", "on-demand", ("inf",)),
    VcpuQuota("L-74FC7D96", "Running On-Demand F instances", "on-demand", ("f",)),
    VcpuQuota("L-7295265B", "Running On-Demand X instances", "on-demand", ("x",)),
    VcpuQuota("L-6E869C2A", "Running On-Demand DL instances", "on-demand", ("dl",)),
    VcpuQuota("L-2C3B7624", "Running On-Demand Trn instances", "on-demand", ("trn",)),
    VcpuQuota("L-43DA4232", "Running On-Demand High Memory instances", "on-demand", ("u",)),
    VcpuQuota("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", "spot", _STANDARD),
    VcpuQuota("L-3819A6DF", "All G and VT Spot Instance Requests", "spot", ("g", "vt")),
    VcpuQuota("L-7212CCBC", "All P Spot Instance Requests", "spot", ("p",)),
    VcpuQuota("L-B5D1601B", "All Inf Spot Instance Requests", "spot", ("inf",)),
    VcpuQuota("L-88CF9481", "All F Spot Instance Requests", "spot", ("f",)),
    VcpuQuota("L-E3A00192", "All X Spot Instance Requests", "spot", ("x",)),
    VcpuQuota("L-85EED4F7", "All DL Spot Instance Requests", "spot", ("dl",)),
    VcpuQuota("L-6B0D517C", "All Trn Spot Instance Requests", "spot", ("trn",)),
)
_LIVE = ("pending", "running")
_LIMIT_RE = re.compile(r"vCPU limit of (\d+(?:\.\d+)?)")


def family_of(instance_type: str) -> str:
    """The letters before the generation digit: ``g5.xlarge`` → ``g``, ``u-6tb1.metal`` → ``u``."""
    match = re.match(r"[a-z]+", instance_type.lower())
    return match.group() if match else ""


def quota_for(instance_type: str, market: str) -> VcpuQuota | None:
    """The vCPU quota a launch of ``instance_type`` on ``market`` (on-demand | spot) counts against."""
    family = family_of(instance_type)
    return next((q for q in QUOTAS if q.market == market and family in q.families), None)


def limit_in(message: str) -> float | None:
    """The limit VcpuLimitExceeded's message states ("…your current vCPU limit of 8 allows…"), if any."""
    found = _LIMIT_RE.search(message or "")
    return float(found.group(1)) if found else None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def request_command(quota: VcpuQuota, desired: float, region: str) -> str:
    """The AWS CLI command that asks for ``desired`` vCPUs of ``quota``."""
    command = (
        f"aws service-quotas request-service-quota-increase --service-code ec2 --quota-code {quota.code} "
        f"--desired-value {_number(desired)}"
    )
    return f"{command} --region {region}" if region else command


def quota_error(
    quota: VcpuQuota,
    *,
    instance_type: str,
    region: str,
    action: str,
    needed: int | None = None,
    used: int | None = None,
    limit: float | None = None,
    code: str = "",
    said: str = "",
) -> QuotaExceeded:
    """The one message for a vCPU quota in the way: which quota, usage, limit, need, and the request command.

    Unknown numbers (Service Quotas not readable, or AWS's error alone) are left out of the sentence.
    """
    facts = []
    if limit is not None:
        facts.append(f"its limit is {_number(limit)} vCPUs")
    if used is not None:
        facts.append(f"{used} {'is' if used == 1 else 'are'} in use")
    if needed is not None:
        facts.append(f"this launch needs {needed} ({instance_type})")
    where = f" in {region}" if region else ""
    message = f"Your account's {quota.market} vCPU quota '{quota.name}' ({quota.code}){where} does not allow you to {action}" + (
        f": {', '.join(facts)}." if facts else f" ({instance_type})."
    )
    if code:
        message += f" AWS said {code}" + (f": {said}" if said else ".")
    desired = max((used or 0) + (needed or 0), limit or 0, needed or 0)
    if limit is not None and desired <= limit:
        desired = limit + (needed or 1)
    hint = (
        "Stop or terminate instances of that family you no longer need, or ask AWS for more (a person at AWS reviews it; "
        f"new accounts often wait a day): {request_command(quota, desired, region)}"
    )
    return QuotaExceeded(message, code=code or "QuotaExceeded", hint=hint)


class Quotas(Instances):
    """vCPU quota checks of :class:`~ec2kit.aws.cloud.Cloud` (limits read once per quota per command)."""

    _quota_limits: dict[str, float | None]

    def quota_limit(self, quota: VcpuQuota) -> float | None:
        """The quota's value from Service Quotas (cached), or None when it cannot be read."""
        cache: dict[str, float | None] = self.__dict__.setdefault("_quota_limits", {})
        if quota.code not in cache:
            try:
                answer = self.client("service-quotas").get_service_quota(ServiceCode="ec2", QuotaCode=quota.code)
                cache[quota.code] = float(answer["Quota"]["Value"])
            except Exception as err:  # noqa: BLE001 - no permission, not in this region, no network: AWS will say
                if not is_aws_exception(err):
                    raise
                cache[quota.code] = None
        return cache[quota.code]

    def vcpus(self, instance_type: str) -> int:
        """Default vCPUs of ``instance_type`` (DescribeInstanceTypes, cached)."""
        return int(self.instance_type(instance_type).get("VCpuInfo", {}).get("DefaultVCpus", 1))

    def live_instances(self) -> list[Instance]:
        """Pending and running instances: what counts against vCPU quotas (one DescribeInstances)."""
        lifecycle = filters(**{"instance-state-name": list(_LIVE)})
        return [
            Instance.from_raw(r) for r in self.paginate("describe_instances", "Reservations[].Instances[]", Filters=lifecycle)
        ]

    def vcpus_in_use(self, quota: VcpuQuota, running: list[Instance] | None = None) -> int:
        """vCPUs of pending and running instances (``running``, else looked up) that count against ``quota``."""
        found = self.live_instances() if running is None else running
        mine = [i for i in found if quota_for(i.type, "spot" if i.lifecycle == "spot" else "on-demand") == quota]
        self._describe_types({i.type for i in mine})
        return sum(self._vcpus_of(i) for i in mine)

    def _vcpus_of(self, instance: Instance) -> int:
        cpu = instance.raw.get("CpuOptions") or {}
        if cpu.get("CoreCount") and cpu.get("ThreadsPerCore"):
            return int(cpu["CoreCount"]) * int(cpu["ThreadsPerCore"])
        return self.vcpus(instance.type)

    def _describe_types(self, types: set[str]) -> None:
        """Fill the type cache for ``types`` with one call per 100 (unknown types are skipped)."""
        missing = sorted(t for t in types if t not in self._type_cache)
        for start in range(0, len(missing), 100):
            try:
                answer: list[dict[str, Any]] = self.paginate(
                    "describe_instance_types", "InstanceTypes[]", InstanceTypes=missing[start : start + 100]
                )
            except Exception as err:  # noqa: BLE001 - one unknown type fails the batch: look them up one by one
                if not error_code(err):
                    raise
                continue
            for info in answer:
                self._type_cache[info["InstanceType"]] = info

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
        needed = self.vcpus(instance_type)
        used = self.vcpus_in_use(quota, running)
        if used + needed <= limit:
            return None
        return quota_error(
            quota, instance_type=instance_type, region=self.region, action=action, needed=needed, used=used, limit=limit
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
            region=self.region,
            action=action,
            needed=self.vcpus(instance_type),
            used=used,
            limit=limit,
            code=code,
            said=said,
        )
