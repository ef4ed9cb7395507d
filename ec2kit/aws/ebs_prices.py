"""What storage costs in a region: EBS volumes by type, snapshots, public IPv4 addresses (the AWS Pricing API).

    storage_prices("us-west-1", cache=…)       # StoragePrices(ebs={"gp3": 0.096, …}, snapshot=0.055, ipv4=0.005)
    storage_prices_or_fallback("us-west-1", …)  # the same, or FALLBACK_STORAGE_PRICES saying why

``inv costs``, a launch's estimate, ``inv cleanup`` and ``inv delete-*`` all price storage from here, with the
same day-long cache (``~/.ec2kit/prices.json``), so they show the same figure for the same volume or snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import translated
from .price_api import get_products, read_cache, unit_prices, write_cache

#: AWS's public IPv4 price (USD per address-hour, every region since February 2024): used when the Pricing API has none
PUBLIC_IPV4_HOUR = 0.005


@dataclass
class StoragePrices:
    """A region's EBS prices: USD per GB-month by volume type, per snapshot GB-month, per public IPv4 address-hour.
    ``fallback`` says why these are :data:`FALLBACK_STORAGE_PRICES` rather than the region's (empty: the region's)."""

    ebs: dict[str, float]
    snapshot: float | None
    ipv4: float
    fallback: str = ""


#: USD per GB-month, us-east-1 list prices (Dec 2026): used only when the Pricing API cannot be reached (no
#: pricing:GetProducts permission, no network), and said so. Snapshots: the standard tier.
FALLBACK_STORAGE_PRICES = StoragePrices(
    ebs={"gp3": 0.08, "gp2": 0.10, "io1": 0.125, "io2": 0.125, "st1": 0.045, "sc1": 0.015, "standard": 0.05},
    snapshot=0.05,
    ipv4=PUBLIC_IPV4_HOUR,
)


@translated("look up EBS and public IPv4 prices in {region}")
def storage_prices(
    region: str,
    *,
    endpoint_url: str | None = None,
    session: Any = None,
    credentials: dict[str, str] | None = None,
    cache: Path | None = None,
) -> StoragePrices:
    """EBS volume prices by type, the snapshot price and the public IPv4 price in ``region`` (three GetProducts
    calls, or none while ``cache`` holds them)."""
    scope = f"{endpoint_url or 'aws'} {region} storage"
    known = read_cache(cache, scope)
    if isinstance(known.get("ebs"), dict) and isinstance(known.get("ipv4"), (int, float)):
        snap = known.get("snapshot")
        return StoragePrices(
            {str(k): float(v) for k, v in known["ebs"].items()}, float(snap) if snap is not None else None, float(known["ipv4"])
        )
    found = _storage_prices(region, endpoint_url, session, credentials)
    write_cache(cache, scope, {"ebs": found.ebs, "snapshot": found.snapshot, "ipv4": found.ipv4})
    return found


def storage_prices_or_fallback(
    region: str, *, endpoint_url: str | None = None, session: Any = None, cache: Path | None = None
) -> StoragePrices:
    """:func:`storage_prices`, or :data:`FALLBACK_STORAGE_PRICES` with ``fallback`` saying why when the Pricing
    API cannot be reached (a cleanup never fails for a price)."""
    from ..errors import Ec2kitError

    try:
        return storage_prices(region, endpoint_url=endpoint_url, session=session, cache=cache)
    except Ec2kitError as err:
        reason = str(err).split("\n")[0].rstrip(".")
        return replace(FALLBACK_STORAGE_PRICES, fallback=f"us-east-1 list prices of Dec 2026, not {region}'s ({reason})")


def _storage_prices(region: str, endpoint_url: str | None, session: Any, credentials: dict[str, str] | None) -> StoragePrices:

    def where(family: str) -> list[dict[str, str]]:
        return [
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
            {"Type": "TERM_MATCH", "Field": "productFamily", "Value": family},
        ]

    ebs: dict[str, float] = {}
    for attrs, usd in unit_prices(get_products("AmazonEC2", where("Storage"), endpoint_url, session, credentials), "GB-Mo"):
        vtype = attrs.get("volumeApiName", "")
        if vtype and (vtype not in ebs or usd < ebs[vtype]):
            ebs[vtype] = usd
    snaps = get_products("AmazonEC2", where("Storage Snapshot"), endpoint_url, session, credentials)
    snapshot = [usd for attrs, usd in unit_prices(snaps, "GB-Mo") if attrs.get("usagetype", "").endswith("EBS:SnapshotUsage")]
    ipv4_filters = [
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
        {"Type": "TERM_MATCH", "Field": "group", "Value": "VPCPublicIPv4Address"},
    ]
    ipv4 = [
        usd
        for attrs, usd in unit_prices(get_products("AmazonVPC", ipv4_filters, endpoint_url, session, credentials), "Hrs")
        if attrs.get("usagetype", "").endswith("PublicIPv4:InUseAddress")
    ]
    return StoragePrices(ebs=ebs, snapshot=min(snapshot) if snapshot else None, ipv4=min(ipv4) if ipv4 else PUBLIC_IPV4_HOUR)
