"""What ec2kit's resources cost now, and what a launch would cost: pure arithmetic over prices (no API call).

    items = cost_items(instances, volumes, snapshots, images, rates, now=now)   # [Cost]
    summary = CostSummary.of(items)                                           # per hour, per month, spent
    estimate = launch_estimate("m5.large", rates, spot=True, count=4, max_hours=2)

A month is AWS's 730 hours. Instances are billed while pending or running (by the second); volumes by
their provisioned size whatever their state; a snapshot is priced at the full size of the volume it
was taken from, an upper bound (AWS bills only the blocks it changed from the snapshot before);
an image costs its snapshots; every public IPv4 address costs by the hour.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .ebs_prices import StoragePrices
from .models import Image, Instance, Snapshot, Volume
from .prices import Rates

HOURS_PER_MONTH = 730
BILLED_STATES = ("pending", "running")


@dataclass
class Cost:
    """One thing that costs money: its kind, name, id, what it is, its rate and (instances) its spending so far."""

    kind: str  # instance | volume | snapshot | image | ipv4
    name: str
    id: str
    what: str  # "m5.large spot us-east-1a", "gp3 10 GB", …
    hourly: float | None  # USD/h (None: no price found)
    since: datetime | None = None
    spent: float | None = None  # USD since ``since`` at today's rate
    upper_bound: bool = False  # snapshots: priced at their volume's full size
    note: str = ""

    @property
    def monthly(self) -> float | None:
        """USD per 730-hour month at this rate."""
        return None if self.hourly is None else self.hourly * HOURS_PER_MONTH

    def as_dict(self) -> dict[str, Any]:
        """This cost as JSON-ready data (``inv costs --json``)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "id": self.id,
            "what": self.what,
            "hourly": self.hourly,
            "monthly": self.monthly,
            "since": self.since.isoformat() if self.since else None,
            "spent": self.spent,
            "upper_bound": self.upper_bound,
            "note": self.note,
        }


@dataclass
class CostSummary:
    """Totals of some costs: USD per hour and per month, spent so far (instances), and what could not be priced."""

    hourly: float
    monthly: float
    spent: float
    unpriced: list[str] = field(default_factory=list)
    upper_bound: bool = False

    @classmethod
    def of(cls, items: Iterable[Cost]) -> CostSummary:
        """The totals of ``items`` (an unpriced item is listed in ``unpriced``, never counted as 0 silently)."""
        items = list(items)
        hourly = sum(c.hourly for c in items if c.hourly is not None)
        return cls(
            hourly=hourly,
            monthly=hourly * HOURS_PER_MONTH,
            spent=sum(c.spent or 0.0 for c in items),
            unpriced=[f"{c.kind} {c.name or c.id}" for c in items if c.hourly is None],
            upper_bound=any(c.upper_bound for c in items),
        )

    def as_dict(self) -> dict[str, Any]:
        """The totals as JSON-ready data."""
        return {
            "hourly": self.hourly,
            "monthly": self.monthly,
            "spent": self.spent,
            "unpriced": self.unpriced,
            "upper_bound": self.upper_bound,
        }


def instance_rate(inst: Instance, rates: Rates) -> float | None:
    """USD/h of an instance now: its pool's spot price, or its type's on-demand price (None: unknown)."""
    if inst.lifecycle == "spot":
        return rates.spot.get((inst.type, inst.zone), inst.hourly_price)
    return rates.on_demand.get(inst.type)


def _aware(stamp: Any) -> datetime | None:
    if isinstance(stamp, datetime):
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    if isinstance(stamp, str) and stamp:
        try:
            return _aware(datetime.fromisoformat(stamp.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def volume_type(volume: Volume) -> str:
    """The EBS type of a volume (gp3 when EC2 did not say)."""
    return volume.type or "gp3"


def storage_monthly(size_gb: int, kind: str, storage: StoragePrices | None) -> float | None:
    """USD per month of ``size_gb`` of an EBS volume type (``gp3``, …) or of ``snapshot`` at these prices (None: no
    price for it). What ``inv costs`` and ``inv cleanup`` both show for a volume, snapshot or image."""
    if storage is None:
        return None
    per_gb = storage.snapshot if kind == "snapshot" else storage.ebs.get(kind)
    return None if per_gb is None else size_gb * per_gb


def _hourly(monthly: float | None) -> float | None:
    return None if monthly is None else monthly / HOURS_PER_MONTH


def cost_items(
    instances: Iterable[Instance],
    volumes: Iterable[Volume],
    snapshots: Iterable[Snapshot],
    images: Iterable[Image],
    rates: Rates,
    *,
    now: datetime,
) -> list[Cost]:
    """Every cost among these resources (pass ec2kit's own): billed instances, volumes, snapshots not held by an
    image, images (their snapshots' sizes), and one public IPv4 per billed instance that has one."""
    storage = rates.storage
    items: list[Cost] = []
    billed = [i for i in instances if i.state in BILLED_STATES]
    for inst in billed:
        rate = instance_rate(inst, rates)
        since = _aware(inst.launch_time)
        hours = max(0.0, (now - since).total_seconds() / 3600) if since else None
        market = f"spot {inst.zone}" if inst.lifecycle == "spot" else "on-demand"
        items.append(
            Cost(
                "instance",
                inst.name,
                inst.id,
                f"{inst.type} {market}",
                rate,
                since=since,
                spent=rate * hours if rate is not None and hours is not None else None,
                note="" if rate is not None else f"no {market.split()[0]} price found for {inst.type}",
            )
        )
    for vol in volumes:
        vtype = volume_type(vol)
        monthly = storage_monthly(vol.size, vtype, storage)
        items.append(
            Cost(
                "volume",
                vol.name,
                vol.id,
                f"{vtype} {vol.size} GB" + (f" on {vol.attached_to}" if vol.attached_to else ""),
                _hourly(monthly),
                note="" if monthly is not None else f"no price found for EBS {vtype}",
            )
        )
    snap_price = storage.snapshot if storage else None
    held = {sid for image in images for sid in image.snapshot_ids}
    for snap in snapshots:
        if snap.id in held:
            continue  # priced with its image
        items.append(
            Cost(
                "snapshot",
                snap.name,
                snap.id,
                f"{snap.size} GB (at most)",
                _hourly(storage_monthly(snap.size, "snapshot", storage)),
                since=_aware(snap.start_time),
                upper_bound=True,
                note="" if snap_price is not None else "no snapshot price found",
            )
        )
    for image in images:
        size = image.size
        items.append(
            Cost(
                "image",
                image.name,
                image.id,
                f"{len(image.snapshot_ids)} snapshot(s), {size} GB (at most)",
                _hourly(storage_monthly(size, "snapshot", storage)),
                since=_aware(image.creation_date),
                upper_bound=True,
                note="" if snap_price is not None else "no snapshot price found",
            )
        )
    ipv4 = storage.ipv4 if storage else None
    for inst in billed:
        if inst.public_ip:
            items.append(Cost("ipv4", inst.name, inst.id, f"public IPv4 {inst.public_ip}", ipv4))
    return items


@dataclass
class Estimate:
    """What a launch is expected to cost: USD/h per instance and in all, and the worst case over ``max_hours``."""

    type: str
    market: str  # spot | on-demand
    count: int
    per_instance: float | None  # USD/h
    disk_gb: int = 0
    disk_hourly: float = 0.0  # USD/h per instance for its root disk
    max_hours: float | None = None
    runs: int = 1
    basis: str = ""  # where the price comes from
    unknown: str = ""  # why prices could not be read, when they could not

    @property
    def hourly(self) -> float | None:
        """USD/h while ``count`` instances run (instance + root disk)."""
        if self.per_instance is None:
            return None
        return (self.per_instance + self.disk_hourly) * self.count

    @property
    def worst_case(self) -> float | None:
        """USD if every run takes ``max_hours`` (None without a limit or a price)."""
        if self.per_instance is None or self.max_hours is None:
            return None
        return (self.per_instance + self.disk_hourly) * self.max_hours * self.runs

    def line(self) -> str:
        """One sentence for the terminal: 'Expected cost: $0.0960/h (m5.large on-demand, …)'."""
        if self.hourly is None:
            return f"Expected cost: unknown ({self.unknown or f'no {self.market} price found for {self.type}'})."
        many = f"{self.count} × " if self.count != 1 else ""
        disk = f" + {self.disk_gb} GB disk" if self.disk_gb else ""
        text = f"Expected cost: {dollars(self.hourly)}/h ({many}{self.type} {self.market}{disk}; {self.basis})"
        if self.worst_case is not None:
            text += f"; at most {dollars(self.worst_case)} if all {self.runs} run(s) take {self.max_hours:g} h"
        return text + "."

    def as_dict(self) -> dict[str, Any]:
        """The estimate as JSON-ready data."""
        return {
            "type": self.type,
            "market": self.market,
            "count": self.count,
            "per_instance": self.per_instance,
            "disk_gb": self.disk_gb,
            "hourly": self.hourly,
            "max_hours": self.max_hours,
            "runs": self.runs,
            "worst_case": self.worst_case,
            "basis": self.basis,
        }


def launch_estimate(
    types: list[str],
    rates: Rates,
    *,
    spot: bool,
    count: int = 1,
    disk_gb: int | None = None,
    max_hours: float | None = None,
    runs: int = 1,
) -> Estimate:
    """The expected hourly cost of ``count`` instances of the dearest of ``types`` (spot: the dearest zone now, as
    EC2 Fleet may pick any pool), with a ``disk_gb`` gp3 root disk each; worst case ``max_hours`` × ``runs``."""
    if spot:
        prices = [p for (t, _), p in rates.spot.items() if t in types]
        basis = "the dearest spot price now among its pools"
    else:
        prices = [rates.on_demand[t] for t in types if t in rates.on_demand]
        basis = "on-demand list price"
    per_gb = rates.storage.ebs.get("gp3") if rates.storage else None
    disk = disk_gb or 0
    return Estimate(
        type=types[0] if len(types) == 1 else "/".join(types),
        market="spot" if spot else "on-demand",
        count=count,
        per_instance=max(prices) if prices else None,
        disk_gb=disk,
        disk_hourly=disk * per_gb / HOURS_PER_MONTH if per_gb is not None else 0.0,
        max_hours=max_hours,
        runs=runs,
        basis=basis,
    )


def dollars(value: float | None) -> str:
    """$70.08, $0.0960 or $0.000012: enough digits to tell small prices apart ('' when unknown)."""
    if value is None:
        return ""
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}" if value >= 0.001 or value == 0 else f"${value:.6f}"
