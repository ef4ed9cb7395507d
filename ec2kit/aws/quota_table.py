"""EC2's vCPU quotas as data (pure): which quota a type counts against, and the one message for a quota in the way.

    quota_for("g5.xlarge", "spot")   # VcpuQuota("L-3819A6DF", "All G and VT Spot Instance Requests", …)
    quota_error(quota, instance_type="g5.xlarge", region="us-east-1", action="launch it", needed=4, used=0, limit=0)

AWS counts running vCPUs per *family bucket* and market: one quota for Standard (A, C, D, H, I,
M, R, T, Z) on-demand instances, one for G and VT, one for P, … and the same buckets again for
spot requests. :mod:`~ec2kit.aws.quotas` reads the limits and usage; :mod:`~ec2kit.aws.errors`
explains AWS's own quota errors with :func:`quota_error`. No AWS call here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import QuotaExceeded

__all__ = [
    "QUOTAS",
    "QUOTA_ERRORS",
    "QUOTA_MARKETS",
    "NO_SPOT",
    "NO_VCPU_QUOTA",
    "VcpuQuota",
    "family_of",
    "limit_in",
    "quota_error",
    "quota_for",
    "request_command",
]

#: AWS error code -> the market whose vCPU quota it is about
QUOTA_MARKETS = {"MaxSpotInstanceCountExceeded": "spot", "VcpuLimitExceeded": "on-demand", "InstanceLimitExceeded": "on-demand"}
QUOTA_ERRORS = tuple(QUOTA_MARKETS)


@dataclass(frozen=True)
class VcpuQuota:
    """One EC2 vCPU quota of Service Quotas (``ServiceCode="ec2"``)."""

    code: str
    name: str
    market: str  # on-demand | spot
    families: tuple[str, ...]  # the letters before the generation digit: g5.xlarge -> "g", im4gn.large -> "im"


# Every family botocore's InstanceType list has (tests/test_aws_second_pass.py checks it), named one by one: a
# family added later must be placed by hand, never guessed from its first letter (hpc is not H, inf not I).
_STANDARD = ("a", "c", "cc", "cg", "cr", "d", "h", "hi", "hs", "i", "im", "is", "m", "r", "t", "z")
_G = ("g", "gr", "vt")
#: families with no vCPU quota at all: Mac instances run on Dedicated Hosts (a quota of hosts, not vCPUs)
NO_VCPU_QUOTA = ("mac",)
#: families AWS does not sell as spot (no spot quota exists for them)
NO_SPOT = ("hpc", "mac", "u")
QUOTAS = (
    VcpuQuota("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "on-demand", _STANDARD),
    VcpuQuota("L-DB2E81BA", "Running On-Demand G and VT instances", "on-demand", _G),
    VcpuQuota("L-417A185B", "Running On-Demand P instances", "on-demand", ("p",)),
    VcpuQuota("L-1945791B", "Running On-Demand Inf instances", "on-demand", ("inf",)),
    VcpuQuota("L-74FC7D96", "Running On-Demand F instances", "on-demand", ("f",)),
    VcpuQuota("L-7295265B", "Running On-Demand X instances", "on-demand", ("x",)),
    VcpuQuota("L-6E869C2A", "Running On-Demand DL instances", "on-demand", ("dl",)),
    VcpuQuota("L-2C3B7624", "Running On-Demand Trn instances", "on-demand", ("trn",)),
    VcpuQuota("L-43DA4232", "Running On-Demand High Memory instances", "on-demand", ("u",)),
    VcpuQuota("L-F7808C92", "Running On-Demand HPC instances", "on-demand", ("hpc",)),
    VcpuQuota("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", "spot", _STANDARD),
    VcpuQuota("L-3819A6DF", "All G and VT Spot Instance Requests", "spot", _G),
    VcpuQuota("L-7212CCBC", "All P Spot Instance Requests", "spot", ("p",)),
    VcpuQuota("L-B5D1601B", "All Inf Spot Instance Requests", "spot", ("inf",)),
    VcpuQuota("L-88CF9481", "All F Spot Instance Requests", "spot", ("f",)),
    VcpuQuota("L-E3A00192", "All X Spot Instance Requests", "spot", ("x",)),
    VcpuQuota("L-85EED4F7", "All DL Spot Instance Requests", "spot", ("dl",)),
    VcpuQuota("L-6B0D517C", "All Trn Spot Instance Requests", "spot", ("trn",)),
)
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
