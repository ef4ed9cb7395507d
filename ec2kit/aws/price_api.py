"""The AWS Pricing API (GetProducts) and the day-long cache of list prices both price modules share.

    get_products("AmazonEC2", filters, endpoint_url, session)   # PriceList entries (JSON strings)
    unit_prices(entries, "GB-Mo")                               # [(attributes, USD)]
    read_cache(cache, scope) / write_cache(cache, scope, prices)

The Pricing API lives in us-east-1 whatever region you ask about; ``endpoint_url`` points it at
the sandbox (whose stand-in answers GetProducts on moto's port, as EC2 does).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .session import paginate

PRICING_REGION = "us-east-1"
LIST_PRICE_TTL = 86400.0  # seconds a cached on-demand or storage list price is used


def read_cache(cache: Path | None, scope: str) -> dict[str, Any]:
    """The fresh entries of ``scope`` in the price cache ({} without one, or when it cannot be read)."""
    if cache is None:
        return {}
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    entry = data.get(scope) if isinstance(data, dict) else None
    if not isinstance(entry, dict) or not 0 <= time.time() - float(entry.get("at", 0)) < LIST_PRICE_TTL:
        return {}
    values = entry.get("prices")
    return values if isinstance(values, dict) else {}


def write_cache(cache: Path | None, scope: str, prices: dict[str, Any]) -> None:
    """Add ``prices`` to ``scope`` in the cache (a scope's clock restarts when it was stale); a failed write costs a lookup."""
    if cache is None or not prices:
        return
    from ..fsutil import atomic_write, file_lock

    try:
        with file_lock(cache.with_suffix(".lock")):
            try:
                data = json.loads(cache.read_text())
            except (OSError, ValueError):
                data = {}
            data = data if isinstance(data, dict) else {}
            kept = read_cache(cache, scope)
            old = data.get(scope)
            entry: dict[str, Any] = old if isinstance(old, dict) else {}
            data[scope] = {"at": entry.get("at", time.time()) if kept else time.time(), "prices": {**kept, **prices}}
            atomic_write(cache, json.dumps(data), fsync=False)
    except OSError:
        pass


def get_products(
    service: str, filters: list[dict[str, str]], endpoint_url: str | None, session: Any, credentials: dict[str, str] | None = None
) -> list[str]:
    """Every GetProducts PriceList entry of ``service`` matching ``filters`` (the Pricing API in us-east-1)."""
    if session is None:
        import boto3

        kwargs: dict[str, Any] = dict(credentials or {})
        session = boto3.Session(**kwargs)
    client = session.client("pricing", region_name=PRICING_REGION, endpoint_url=endpoint_url)
    return paginate(
        client, "get_products", "PriceList[]", ServiceCode=service, Filters=filters, FormatVersion="aws_v1", MaxResults=100
    )


def unit_prices(price_list: Iterable[str | dict[str, Any]], unit: str) -> list[tuple[dict[str, str], float]]:
    """(attributes, USD) of every OnDemand price dimension billed per ``unit`` ("GB-Mo", "Hrs") in PriceList entries."""
    found = []
    for entry in price_list:
        product = json.loads(entry) if isinstance(entry, str) else entry
        attributes = product.get("product", {}).get("attributes", {})
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dim in term.get("priceDimensions", {}).values():
                usd = dim.get("pricePerUnit", {}).get("USD")
                if usd is not None and dim.get("unit") == unit and float(usd) > 0:
                    found.append((attributes, float(usd)))
    return found
