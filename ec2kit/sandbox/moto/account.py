"""What the sandbox's pretend AWS account is like: the caller's public IP, vCPU quotas, capacity.

One :class:`Account` lives in the daemon; the control server changes it (tests call the
functions in ``ec2kit.sandbox.knobs``) and ``aws_behaviours``' moto patches read it. Stdlib only.

Defaults, those of a young account as a first-time user meets it:

- the caller's public IPv4 is ``198.51.100.7`` (TEST-NET-2, never routed);
- security groups gate SSH, as on AWS: ec2kit's launches admit the caller's public address /32
  (learnt from the checkip URL); a test may turn the gate off (``enforce_ssh_rules(info, False)``);
- vCPU quotas: 5 for Standard (A, C, D, H, I, M, R, T, Z) on-demand and spot, 0 for every other
  family (G and VT, P, Inf, F, X, DL, Trn, High Memory). Launches are checked only against
  quotas a test set (or all, once enforced), and ``GetServiceQuota`` agrees: it answers a set
  value, the defaults once all are enforced, else a roomy 1024 (so a client that checks quotas
  before launching sees what is enforced);
- every (instance type, zone, market) pool has capacity, and no pool interrupts its spot
  instances by itself (``interrupt_pools``: a pool marked so has each spot instance launched
  into it interrupted that many seconds after launch, with AWS's 2-minute notice or less);
- eventual consistency: a just-created instance, security group, volume or image answers NotFound
  to its first lookup by id (``fresh_lookups``, see ``consistency.py``);
- a new snapshot is ``pending`` for ``snapshot_seconds`` (2 s) and CreateVolume from it fails with
  ``IncorrectState`` meanwhile; CreateImage takes every attached EBS volume into the image unless
  its BlockDeviceMappings say ``NoDevice`` (``image_takes_volumes``; see ``storage_behaviours.py``).
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..client.info import SANDBOX_REGION

DEFAULT_CALLER_IP = "198.51.100.7"
DEFAULT_SNAPSHOT_SECONDS = 2.0  # AWS: minutes; long enough here for a client that does not wait to meet it
ROOMY_QUOTA = 1024.0  # vCPUs GetServiceQuota reports for a quota nobody set or enforced
ACCOUNT_ID = "123456789012"  # moto's default account
REGION = SANDBOX_REGION


@dataclass(frozen=True)
class Quota:
    """An EC2 vCPU quota of Service Quotas (``ServiceCode="ec2"``)."""

    code: str
    name: str
    market: str  # on-demand | spot
    families: tuple[str, ...]  # instance type prefixes (letters before the generation digit)
    default: float


STANDARD = ("a", "c", "d", "h", "i", "m", "r", "t", "z")
QUOTAS = (
    Quota("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "on-demand", STANDARD, 5.0),
    Quota("L-DB2E81BA", "Running On-Demand G and VT instances", "on-demand", ("g", "vt"), 0.0),
    Quota("L-417A185B", "Running On-Demand P instances", "on-demand", ("p",), 0.0),
    Quota("L-1945791B", "Running On-Demand Inf instances", "on-demand", ("inf",), 0.0),
    Quota("L-74FC7D96", "Running On-Demand F instances", "on-demand", ("f",), 0.0),
    Quota("L-7295265B", "Running On-Demand X instances", "on-demand", ("x",), 0.0),
    Quota("L-6E869C2A", "Running On-Demand DL instances", "on-demand", ("dl",), 0.0),
    Quota("L-2C3B7624", "Running On-Demand Trn instances", "on-demand", ("trn",), 0.0),
    Quota("L-43DA4232", "Running On-Demand High Memory instances", "on-demand", ("u",), 0.0),
    Quota("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", "spot", STANDARD, 5.0),
    Quota("L-3819A6DF", "All G and VT Spot Instance Requests", "spot", ("g", "vt"), 0.0),
    Quota("L-7212CCBC", "All P Spot Instance Requests", "spot", ("p",), 0.0),
    Quota("L-B5D1601B", "All Inf Spot Instance Requests", "spot", ("inf",), 0.0),
    Quota("L-88CF9481", "All F Spot Instance Requests", "spot", ("f",), 0.0),
    Quota("L-E3A00192", "All X Spot Instance Requests", "spot", ("x",), 0.0),
    Quota("L-85EED4F7", "All DL Spot Instance Requests", "spot", ("dl",), 0.0),
    Quota("L-6B0D517C", "All Trn Spot Instance Requests", "spot", ("trn",), 0.0),
)
QUOTAS_BY_CODE = {q.code: q for q in QUOTAS}


def family_of(instance_type: str) -> str:
    """The letters before the generation digit: ``g5.xlarge`` -> ``g``, ``u-6tb1.metal`` -> ``u``."""
    match = re.match(r"[a-z]+", instance_type.lower())
    return match.group() if match else ""


def quota_for(instance_type: str, market: str) -> Quota | None:
    """The vCPU quota a launch of ``instance_type`` on ``market`` (on-demand | spot) counts against."""
    family = family_of(instance_type)
    for quota in QUOTAS:
        if quota.market == market and family in quota.families:
            return quota
    return None


def quota_record(quota: Quota, value: float) -> dict[str, Any]:
    """The ``Quota`` structure of GetServiceQuota."""
    return {
        "ServiceCode": "ec2",
        "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
        "QuotaArn": f"arn:aws:servicequotas:{REGION}:{ACCOUNT_ID}:ec2/{quota.code}",
        "QuotaCode": quota.code,
        "QuotaName": quota.name,
        "Value": float(value),
        "Unit": "None",
        "Adjustable": True,
        "GlobalQuota": False,
        "UsageMetric": {
            "MetricNamespace": "AWS/Usage",
            "MetricName": "ResourceCount",
            "MetricDimensions": {
                "Class": f"{'Standard' if quota.families == STANDARD else quota.families[0].upper()}/"
                f"{'OnDemand' if quota.market == 'on-demand' else 'Spot'}",
                "Resource": "vCPU",
                "Service": "EC2",
                "Type": "Resource",
            },
            "MetricStatisticRecommendation": "Maximum",
        },
    }


def cidr_contains(cidr: str, ip: str) -> bool:
    """True when ``ip`` lies in ``cidr`` (False for anything unparsable)."""
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


@dataclass
class Account:
    """The daemon's knobs; every field is reset by :meth:`reset` (``POST /reset``)."""

    caller_ip: str = DEFAULT_CALLER_IP
    enforce_ssh: bool = True
    quota_values: dict[str, float] = field(default_factory=dict)  # set by tests; else the default
    enforced_quotas: set[str] = field(default_factory=set)
    enforce_all_quotas: bool = False
    quota_access_denied: bool = False
    boot_scripts: bool = True  # instances run /var/lib/cloud/scripts/per-boot/* when started again (cloud-init)
    no_capacity: set[tuple[str, str, str]] = field(default_factory=set)  # (type, zone, market or "*")
    interrupt_pools: dict[tuple[str, str], float] = field(default_factory=dict)  # (type, zone) -> s after launch
    fresh_lookups: int = 1  # eventual consistency: a new id's first N lookups answer NotFound (0: off)
    snapshot_seconds: float = DEFAULT_SNAPSHOT_SECONDS  # a new snapshot is pending this long
    image_takes_volumes: bool = True  # CreateImage maps every attached EBS volume, as AWS does
    on_spot_launch: Callable[[str, float], None] | None = field(default=None, repr=False, compare=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def reset(self) -> None:
        with self.lock:
            fresh = Account()
            for name in (
                "caller_ip",
                "enforce_ssh",
                "quota_values",
                "enforced_quotas",
                "enforce_all_quotas",
                "fresh_lookups",
                "snapshot_seconds",
                "image_takes_volumes",
            ):
                setattr(self, name, getattr(fresh, name))
            self.quota_access_denied = False
            self.boot_scripts = True
            self.no_capacity = set()
            self.interrupt_pools = {}

    # quotas ---------------------------------------------------------------------
    def quota_value(self, code: str) -> float:
        quota = QUOTAS_BY_CODE[code]
        return self.quota_values.get(code, quota.default)

    def reported_value(self, code: str) -> float:
        """What GetServiceQuota answers: a value a test set, the young-account default once every
        quota is enforced, else ``ROOMY_QUOTA`` (an account whose quotas are not in the way, so
        ec2kit's own quota check agrees with what the sandbox enforces)."""
        if code in self.quota_values:
            return self.quota_values[code]
        return self.quota_value(code) if self.enforce_all_quotas else ROOMY_QUOTA

    def set_quota(self, code: str, value: float, *, enforce: bool = True) -> None:
        if code not in QUOTAS_BY_CODE:
            raise KeyError(f"unknown EC2 quota code {code!r} (known: {', '.join(QUOTAS_BY_CODE)})")
        with self.lock:
            self.quota_values[code] = float(value)
            (self.enforced_quotas.add if enforce else self.enforced_quotas.discard)(code)

    def enforced_limit(self, instance_type: str, market: str) -> tuple[Quota, float] | None:
        """(quota, its value) when launches of this type/market are checked now, else None."""
        quota = quota_for(instance_type, market)
        if quota is None or not (self.enforce_all_quotas or quota.code in self.enforced_quotas):
            return None
        return quota, self.quota_value(quota.code)

    # capacity -------------------------------------------------------------------
    def set_capacity(self, instance_type: str, zone: str, available: bool, market: str | None = None) -> None:
        key = (instance_type, zone, market or "*")
        with self.lock:
            if available:
                self.no_capacity.discard(key)
                if market is None:  # "available" without a market frees both markets
                    self.no_capacity -= {(instance_type, zone, "spot"), (instance_type, zone, "on-demand")}
            else:
                self.no_capacity.add(key)

    def has_capacity(self, instance_type: str, zone: str, market: str) -> bool:
        return not ({(instance_type, zone, "*"), (instance_type, zone, market)} & self.no_capacity)

    def snapshot(self) -> dict[str, Any]:
        """The knobs as JSON (``GET /account``)."""
        with self.lock:
            return {
                "caller_ip": self.caller_ip,
                "enforce_ssh": self.enforce_ssh,
                "quotas": {q.code: self.quota_value(q.code) for q in QUOTAS},
                "enforced_quotas": "all" if self.enforce_all_quotas else sorted(self.enforced_quotas),
                "quota_access_denied": self.quota_access_denied,
                "boot_scripts": self.boot_scripts,
                "no_capacity": sorted(list(k) for k in self.no_capacity),
                "interrupt_pools": [[t, z, s] for (t, z), s in sorted(self.interrupt_pools.items())],
                "fresh_lookups": self.fresh_lookups,
                "snapshot_seconds": self.snapshot_seconds,
                "image_takes_volumes": self.image_takes_volumes,
            }


ACCOUNT = Account()  # the daemon's one account
