"""What instances cost: on-demand prices from the AWS Pricing API, spot prices from EC2.

    on_demand_prices("m5", "us-east-1")   # {"m5.large": 0.096, "m5.xlarge": 0.192, …}
    spot_prices("m5", cloud)              # {"m5.large": {"us-east-1a": 0.035, …}, …}
    price_table("m5", cloud)              # rows for `inv prices m5`
    rates(cloud, types=, pools=)          # Rates: what `inv costs` and a launch's estimate multiply

Storage prices (EBS, snapshots, IPv4) live in :mod:`ebs_prices`, the Pricing API and its cache in :mod:`price_api`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .ebs_prices import StoragePrices as StoragePrices
from .ebs_prices import storage_prices as storage_prices
from .errors import translated, translating
from .price_api import LIST_PRICE_TTL as LIST_PRICE_TTL
from .price_api import get_products, read_cache, write_cache
from .price_api import unit_prices as unit_prices
from .regions import find_region
from .session import Ec2Api

LINUX = "Linux/UNIX"


def size_key(instance_type: str) -> tuple[str, int, str]:
    """Sort key for instance types: family, then nano < … < large < xlarge < 2xlarge < … < metal."""
    family, _, size = instance_type.partition(".")
    order = ["nano", "micro", "small", "medium", "large", "xlarge"]
    if size in order:
        rank = order.index(size)
    elif size.endswith("xlarge") and size[:-6].isdigit():
        rank = len(order) + int(size[:-6])
    elif size.startswith("metal"):
        rank = 10_000
    else:
        rank = 5_000
    return (family, rank, size)


def sort_types(types: Iterable[str]) -> list[str]:
    """Instance types ordered by family then size: m5.large, m5.xlarge, m5.2xlarge, …, m5.metal."""
    return sorted(types, key=size_key)


def _check_family(family: str) -> str:
    family = family.strip()
    if not family or not all(c.isalnum() or c in ".-" for c in family):
        raise ConfigError(
            f"'{family}' is not an instance family or type.", hint="Give a family like m5 or g4dn, or a type like m5.large."
        )
    return family


def _matches(family: str, instance_type: str) -> bool:
    if not family:  # every type (a query by instance family, e.g. the GPU instances)
        return bool(instance_type)
    return instance_type == family if "." in family else instance_type.startswith(f"{family}.")


def pricing_filters(family: str, region: str, *, category: str | None = None) -> list[dict[str, str]]:
    """GetProducts filters for shared-tenancy Linux on-demand prices of a family (or one type) in a region,
    or of a whole ``category`` (the Pricing API's instanceFamily, e.g. "GPU instance") when ``family`` is ''."""
    fixed = {
        "regionCode": region,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "licenseModel": "No License required",
    }
    filters = [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in fixed.items()]
    if category:
        filters.append({"Type": "TERM_MATCH", "Field": "instanceFamily", "Value": category})
    elif "." in family:
        filters.append({"Type": "TERM_MATCH", "Field": "instanceType", "Value": family})
    else:  # "m5." matches m5.large … but not m5d.large
        filters.append({"Type": "CONTAINS", "Field": "instanceType", "Value": f"{family}."})
    return filters


def parse_price_list(price_list: Iterable[str | dict[str, Any]], family: str) -> dict[str, float]:
    """Hourly USD on-demand price per instance type from GetProducts PriceList entries (JSON strings)."""
    prices: dict[str, float] = {}
    for entry in price_list:
        product = json.loads(entry) if isinstance(entry, str) else entry
        itype = product.get("product", {}).get("attributes", {}).get("instanceType", "")
        if not _matches(family, itype):
            continue
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dim in term.get("priceDimensions", {}).values():
                usd = dim.get("pricePerUnit", {}).get("USD")
                if usd is None or dim.get("unit", "Hrs") not in ("Hrs", "Hours"):
                    continue
                price = float(usd)
                if price > 0 and (itype not in prices or price < prices[itype]):
                    prices[itype] = price
    return {t: prices[t] for t in sort_types(prices)}


def on_demand_prices(
    family: str, region: str, *, endpoint_url: str | None = None, session: Any = None, credentials: dict[str, str] | None = None
) -> dict[str, float]:
    """On-demand Linux prices (USD/hour) of a family ("m5") or one type ("m5.large") in a region.

    ``region`` may be a code or part of its name ("Ohio"). Uses the Pricing API in us-east-1
    (``endpoint_url`` overrides it); ``session`` is a boto3 Session (default: a new one).
    """
    family, region = _check_family(family), find_region(region)
    return parse_price_list(_price_list(family, region, endpoint_url, session, credentials), family)


def gpu_on_demand_prices(region: str, *, session: Any = None, endpoint_url: str | None = None) -> dict[str, float]:
    """On-demand Linux prices (USD/hour) of every GPU instance type in a region: one Pricing API query."""
    region = find_region(region)
    return parse_price_list(_price_list("GPU instances", region, endpoint_url, session, None, category="GPU instance"), "")


@translated("look up on-demand prices of {family} in {region}")
def _price_list(
    family: str,
    region: str,
    endpoint_url: str | None,
    session: Any,
    credentials: dict[str, str] | None,
    category: str | None = None,
) -> list[str]:
    return get_products("AmazonEC2", pricing_filters(family, region, category=category), endpoint_url, session, credentials)


def on_demand_prices_of(
    types: Iterable[str],
    region: str,
    *,
    endpoint_url: str | None = None,
    session: Any = None,
    cache: Path | None = None,
) -> dict[str, float]:
    """On-demand Linux prices (USD/hour) of several instance types in ``region``: one GetProducts (ANY_OF) for
    those ``cache`` (a JSON file, kept :data:`LIST_PRICE_TTL` s: list prices change a few times a year) lacks."""
    wanted = sorted({_check_family(t) for t in types if t})
    if not wanted:
        return {}
    region = find_region(region)
    scope = f"{endpoint_url or 'aws'} {region} on-demand"
    known = read_cache(cache, scope)
    found = {t: float(known[t]) for t in wanted if isinstance(known.get(t), (int, float))}
    missing = [t for t in wanted if t not in found]
    if missing:
        entries = _types_price_list(missing, region, endpoint_url, session)
        fresh: dict[str, float] = {}
        for itype in missing:
            fresh.update(parse_price_list(entries, itype))
        found.update(fresh)
        write_cache(cache, scope, fresh)
    return found


@translated("look up on-demand prices of {0} in {1}")
def _types_price_list(types: list[str], region: str, endpoint_url: str | None, session: Any) -> list[str]:
    filters = [f for f in pricing_filters(types[0], region) if f["Field"] != "instanceType"]
    filters.append({"Type": "ANY_OF", "Field": "instanceType", "Value": ",".join(types)})
    return get_products("AmazonEC2", filters, endpoint_url, session)


@dataclass
class Rates:
    """The prices a cost figure multiplies: on-demand by type, spot by (type, zone), storage (None: not looked up)."""

    region: str
    on_demand: dict[str, float] = field(default_factory=dict)
    spot: dict[tuple[str, str], float] = field(default_factory=dict)
    storage: StoragePrices | None = None
    notes: list[str] = field(default_factory=list)  # prices that could not be read, and what stands in for them


def rates(
    cloud: Ec2Api,
    *,
    types: Iterable[str] = (),
    pools: Iterable[tuple[str, str]] = (),
    storage: bool = False,
    endpoint_url: str | None = None,
    cache: Path | None = None,
) -> Rates:
    """On-demand prices of ``types``, current spot prices of ``pools`` ((type, zone)), and storage prices when asked
    (list prices from ``cache`` while it is fresh; spot prices always asked). What cannot be read (no
    ``pricing:GetProducts`` permission, throttling) is said in ``notes``, never raised: instances stay unpriced,
    storage is priced from the us-east-1 table (``ebs_prices.storage_prices_or_fallback``)."""
    from ..errors import Ec2kitError
    from .ebs_prices import storage_prices_or_fallback

    found = Rates(cloud.region)
    try:
        found.on_demand.update(
            on_demand_prices_of(types, cloud.region, endpoint_url=endpoint_url, session=cloud.session, cache=cache)
        )
    except Ec2kitError as err:
        found.notes.append(f"On-demand prices could not be read ({_first_line(err)}): those instances are not counted.")
    try:
        found.spot.update(current_spot_prices(pools, cloud))
    except Ec2kitError as err:
        found.notes.append(f"Spot prices could not be read ({_first_line(err)}): those instances are not counted.")
    if storage:
        found.storage = storage_prices_or_fallback(cloud.region, endpoint_url=endpoint_url, session=cloud.session, cache=cache)
        if found.storage.fallback:
            found.notes.append(f"Storage priced at {found.storage.fallback}.")
    return found


def _first_line(err: Exception) -> str:
    return str(err).split("\n")[0].rstrip(".")


def spot_prices(family: str, cloud: Ec2Api) -> dict[str, dict[str, float]]:
    """Current spot prices (USD/hour, Linux) per type and zone in the cloud's region: ``{type: {zone: price}}``."""
    family = _check_family(family)
    return _latest(_spot_history(family, cloud))


@translated("look up spot prices in {cloud.region}")
def spot_prices_of(types: list[str], cloud: Ec2Api) -> dict[str, dict[str, float]]:
    """Current spot prices (USD/hour, Linux) of these types by zone: ``{type: {zone: price}}`` (one paginated call)."""
    if not types:
        return {}
    now = datetime.now(timezone.utc)
    history = cloud.paginate(
        "describe_spot_price_history", "SpotPriceHistory[]", InstanceTypes=types, ProductDescriptions=[LINUX], StartTime=now
    )
    return _latest(history)


def _latest(history: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    latest: dict[tuple[str, str], tuple[Any, float]] = {}
    for rec in history:
        key = (rec["InstanceType"], rec["AvailabilityZone"])
        stamp = rec.get("Timestamp")
        if key not in latest or (stamp and latest[key][0] and stamp > latest[key][0]):
            latest[key] = (stamp, float(rec["SpotPrice"]))
    result: dict[str, dict[str, float]] = {}
    for (itype, zone), (_, price) in sorted(latest.items()):
        result.setdefault(itype, {})[zone] = price
    return {t: result[t] for t in sort_types(result)}


@translated("look up spot prices of {family} in {cloud.region}")
def _spot_history(family: str, cloud: Ec2Api) -> list[dict[str, Any]]:
    types = [t["InstanceType"] for t in _describe_types(family, cloud)]
    if not types:
        return []
    now = datetime.now(timezone.utc)
    return cloud.paginate(
        "describe_spot_price_history", "SpotPriceHistory[]", InstanceTypes=types, ProductDescriptions=[LINUX], StartTime=now
    )


@translated("look up current spot prices")
def current_spot_prices(pools: Iterable[tuple[str, str]], cloud: Ec2Api) -> dict[tuple[str, str], float]:
    """The current spot price (USD/h, Linux) of each (type, zone) pool that has one: one DescribeSpotPriceHistory."""
    wanted = {(t, z) for t, z in pools if t and z}
    if not wanted:
        return {}
    now = datetime.now(timezone.utc)
    history = cloud.paginate(
        "describe_spot_price_history",
        "SpotPriceHistory[]",
        InstanceTypes=sorted({t for t, _ in wanted}),
        ProductDescriptions=[LINUX],
        StartTime=now,
    )
    latest: dict[tuple[str, str], tuple[Any, float]] = {}
    for rec in history:
        key = (rec["InstanceType"], rec["AvailabilityZone"])
        stamp = rec.get("Timestamp")
        if key in wanted and (key not in latest or (stamp and latest[key][0] and stamp > latest[key][0])):
            latest[key] = (stamp, float(rec["SpotPrice"]))
    return {key: price for key, (_, price) in latest.items()}


@translated("look up the spot price of {instance_type} in {zone}")
def spot_price(instance_type: str, zone: str, cloud: Ec2Api) -> float | None:
    """The current spot price of ``instance_type`` in ``zone`` (USD/hour, Linux), or None if AWS has none."""
    history = cloud.ec2.describe_spot_price_history(
        InstanceTypes=[instance_type], AvailabilityZone=zone, ProductDescriptions=[LINUX], MaxResults=1
    ).get("SpotPriceHistory", [])
    return float(history[0]["SpotPrice"]) if history else None


@translated("list the instance types of {family} in {cloud.region}")
def describe_family(family: str, cloud: Ec2Api) -> list[dict[str, Any]]:
    """DescribeInstanceTypes records of a family ("g5") or one type, by size (one filtered call)."""
    return _describe_types(_check_family(family), cloud)


def _describe_types(family: str, cloud: Ec2Api) -> list[dict[str, Any]]:
    pattern = family if "." in family else f"{family}.*"
    found = cloud.paginate("describe_instance_types", "InstanceTypes[]", Filters=[{"Name": "instance-type", "Values": [pattern]}])
    return sorted((t for t in found if _matches(family, t["InstanceType"])), key=lambda t: size_key(t["InstanceType"]))


@dataclass
class PriceRow:
    """One line of `inv prices`: size, on-demand price and spot price by zone."""

    type: str
    vcpus: int
    memory_gib: float
    on_demand: float | None
    spot: dict[str, float] = field(default_factory=dict)

    @property
    def cheapest_spot(self) -> tuple[str, float] | None:
        """(zone, price) of the lowest current spot price, or None."""
        return min(self.spot.items(), key=lambda zp: zp[1]) if self.spot else None


def price_table(
    family: str, cloud: Ec2Api, *, pricing_endpoint_url: str | None = None, with_on_demand: bool = True
) -> list[PriceRow]:
    """Rows for every type of a family in the cloud's region: vCPUs, memory, on-demand and spot prices."""
    family = _check_family(family)
    with translating(f"list {family} instance types"):
        described = _describe_types(family, cloud)
    if not described:
        raise ConfigError(
            f"EC2 offers no instance types in family '{family}' in {cloud.region}.",
            hint="Check the family name (e.g. m5, c6i, g4dn, t3).",
        )
    on_demand = (
        on_demand_prices(family, cloud.region, endpoint_url=pricing_endpoint_url, session=cloud.session) if with_on_demand else {}
    )
    spot = spot_prices(family, cloud)
    return [
        PriceRow(
            type=t["InstanceType"],
            vcpus=t.get("VCpuInfo", {}).get("DefaultVCpus", 0),
            memory_gib=t.get("MemoryInfo", {}).get("SizeInMiB", 0) / 1024,
            on_demand=on_demand.get(t["InstanceType"]),
            spot=spot.get(t["InstanceType"], {}),
        )
        for t in described
    ]
