"""The sandbox's prices: a Pricing API stand-in (``GetProducts``) and spot prices per zone.

AWS answers prices from two places, and so does the sandbox:

- the Pricing API (``pricing`` client, JSON protocol, target ``AWSPriceListService.GetProducts``):
  ``PriceList`` is a list of JSON strings, one product each, with its attributes and its OnDemand
  terms. ``PriceList`` is a WSGI middleware in front of moto (which has no Pricing API) that answers
  those calls on moto's own port, so boto3's normal ``pricing`` client reaches it with the same
  endpoint URL as EC2. Filters are AWS's: TERM_MATCH/EQUALS (case-insensitive), CONTAINS, ANY_OF, NONE_OF.
- EC2's ``DescribeSpotPriceHistory``: :func:`spot_price` per (type, zone), patched into moto (which
  answers $0.00001 everywhere and ignores ``AvailabilityZone``).

The table holds the us-east-1 list prices of the common families (Linux, shared tenancy; the same in
us-east-2 and us-west-2), EBS by volume type (USD per GB-month), EBS snapshots (USD per GB-month)
and a public IPv4 address (USD per hour). us-west-1 (N. California) is dearer, as on AWS: its own EBS
and snapshot prices (:data:`REGIONAL_STORAGE`, AWS's list prices) and on-demand prices
:data:`REGIONAL_FACTOR` times us-east-1's (m5.large $0.112, as AWS lists it; other types approximately).
Spot prices are us-east-1's in every region. Tests compute their expected figures from these constants.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

REGIONS = ("us-east-1", "us-east-2", "us-west-2", "us-west-1")
LOCATIONS = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-2": "US West (Oregon)",
    "us-west-1": "US West (N. California)",
}
USAGE_PREFIX = {"us-east-1": "", "us-east-2": "USE2-", "us-west-2": "USW2-", "us-west-1": "USW1-"}

#: sizes of the general-purpose, compute and memory families, in units of a .large (whose price doubles per step)
UNITS = {"large": 1, "xlarge": 2, "2xlarge": 4, "4xlarge": 8, "8xlarge": 16, "9xlarge": 18, "12xlarge": 24,
         "16xlarge": 32, "18xlarge": 36, "24xlarge": 48, "32xlarge": 64, "48xlarge": 96}  # fmt: skip
#: USD per hour of a .large, and the size a .metal equals (AWS prices these families linearly in size)
LINEAR = {"m5": (0.096, "24xlarge"), "m6i": (0.096, "32xlarge"), "m7i": (0.1008, "48xlarge"),
          "c5": (0.085, "24xlarge"), "c6i": (0.085, "32xlarge"), "r5": (0.126, "24xlarge")}  # fmt: skip


def _linear() -> dict[str, float]:
    table = {
        f"{family}.{size}": round(large * units, 4) for family, (large, _) in LINEAR.items() for size, units in UNITS.items()
    }
    table.update({f"{family}.metal": table[f"{family}.{metal}"] for family, (_, metal) in LINEAR.items()})
    return table


#: USD per hour, on-demand, Linux, shared tenancy (AWS's us-east-1 list prices)
ON_DEMAND: dict[str, float] = {
    **{f"t3.{s}": p for s, p in zip(["nano", "micro", "small", "medium", "large", "xlarge", "2xlarge"],
                                      [0.0052, 0.0104, 0.0208, 0.0416, 0.0832, 0.1664, 0.3328])},
    **_linear(),
    **{f"g4dn.{s}": p for s, p in zip(["xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "metal"],
                                      [0.526, 0.752, 1.204, 2.176, 3.912, 4.352, 7.824])},
    **{f"g5.{s}": p for s, p in zip(["xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"],
                                    [1.006, 1.212, 1.624, 2.448, 5.672, 4.096, 8.144, 16.288])},
    **{f"g6.{s}": p for s, p in zip(["xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"],
                                    [0.8048, 0.9776, 1.3232, 2.0144, 4.6016, 3.3968, 6.6752, 13.3504])},
    **{f"p3.{s}": p for s, p in zip(["2xlarge", "8xlarge", "16xlarge"], [3.06, 12.24, 24.48])},
    "p3dn.24xlarge": 31.212,
    "p4d.24xlarge": 32.7726,
}  # fmt: skip

#: the spot price of a type in a zone is its on-demand price times the zone's factor, rounded to 4 places
SPOT_FACTOR: dict[str, float] = {
    "a": 0.35,
    "b": 0.38,
    "c": 0.33,
    "d": 0.40,
    "e": 0.45,
    "f": 0.36,
}

#: USD per GB-month by EBS volume type (the provisioned size is billed, used or not)
EBS_GB_MONTH: dict[str, float] = {
    "gp3": 0.08,
    "gp2": 0.10,
    "io2": 0.125,
    "io1": 0.125,
    "st1": 0.045,
    "sc1": 0.015,
    "standard": 0.05,
}
SNAPSHOT_GB_MONTH = 0.05  # standard tier
PUBLIC_IPV4_HOUR = 0.005

#: regions whose storage prices differ from the tables above: (USD per GB-month by EBS type, per snapshot GB-month)
REGIONAL_STORAGE: dict[str, tuple[dict[str, float], float]] = {
    "us-west-1": (
        {"gp3": 0.096, "gp2": 0.12, "io2": 0.138, "io1": 0.138, "st1": 0.054, "sc1": 0.018, "standard": 0.08},
        0.055,
    ),
}
#: regions whose on-demand prices are a multiple of ON_DEMAND's (rounded to 4 places)
REGIONAL_FACTOR: dict[str, float] = {"us-west-1": 0.112 / 0.096}


def ebs_prices(region: str) -> tuple[dict[str, float], float]:
    """(USD per GB-month by EBS volume type, USD per snapshot GB-month) in a region of the sandbox's price list."""
    return REGIONAL_STORAGE.get(region, (EBS_GB_MONTH, SNAPSHOT_GB_MONTH))


def on_demand_price(instance_type: str, region: str) -> float | None:
    """The sandbox's on-demand price of a type in a region (USD/h), or None when the table has no such type."""
    usd = ON_DEMAND.get(instance_type)
    return None if usd is None else round(usd * REGIONAL_FACTOR.get(region, 1.0), 4)


def spot_price(instance_type: str, zone: str) -> float | None:
    """The sandbox's spot price of a type in a zone (USD/h), or None when the table has no such type."""
    on_demand = ON_DEMAND.get(instance_type)
    factor = SPOT_FACTOR.get(zone[-1:]) if zone else None
    if on_demand is None or factor is None:
        return None
    return round(on_demand * factor, 4)


# -- products -------------------------------------------------------------------------------------


def _product(sku: str, service: str, family: str, attributes: dict[str, str], usd: float, unit: str) -> dict[str, Any]:
    term = f"{sku}.JRTCKXETXF"
    return {
        "product": {"productFamily": family, "attributes": {"servicecode": service, **attributes}, "sku": sku},
        "serviceCode": service,
        "terms": {
            "OnDemand": {
                term: {
                    "sku": sku,
                    "offerTermCode": "JRTCKXETXF",
                    "effectiveDate": "2026-11-01T00:00:00Z",
                    "priceDimensions": {
                        f"{term}.6YS6EN2CT7": {
                            "unit": unit,
                            "pricePerUnit": {"USD": f"{usd:.10f}"},
                            "description": f"${usd} per {unit}",
                            "rateCode": f"{term}.6YS6EN2CT7",
                        }
                    },
                }
            }
        },
        "version": "20261101000000",
        "publicationDate": "2026-11-01T00:00:00Z",
    }


def instance_family(itype: str) -> str:
    """The Pricing API's ``instanceFamily`` of a type, as AWS names it ("GPU instance" for g* and p*)."""
    return {"g": "GPU instance", "p": "GPU instance", "c": "Compute optimized", "r": "Memory optimized"}.get(
        itype[:1], "General purpose"
    )


def products() -> list[dict[str, Any]]:
    """Every product of the sandbox's price list (AmazonEC2 instances, EBS, snapshots; AmazonVPC public IPv4)."""
    found: list[dict[str, Any]] = []
    for region in REGIONS:
        where = {"regionCode": region, "location": LOCATIONS[region], "locationType": "AWS Region"}
        prefix = USAGE_PREFIX[region]
        ebs, snapshot = ebs_prices(region)
        for n, itype in enumerate(sorted(ON_DEMAND)):
            usd = on_demand_price(itype, region) or 0.0
            attrs = {
                **where,
                "instanceType": itype,
                "instanceFamily": instance_family(itype),
                "operatingSystem": "Linux",
                "tenancy": "Shared",
                "preInstalledSw": "NA",
                "capacitystatus": "Used",
                "licenseModel": "No License required",
                "usagetype": f"{prefix}BoxUsage:{itype}",
            }
            found.append(_product(f"I{region[-3:]}{n:04d}", "AmazonEC2", "Compute Instance", attrs, usd, "Hrs"))
        for vtype, usd in ebs.items():
            attrs = {**where, "volumeApiName": vtype, "usagetype": f"{prefix}EBS:VolumeUsage.{vtype}"}
            found.append(_product(f"V{region[-3:]}{vtype}", "AmazonEC2", "Storage", attrs, usd, "GB-Mo"))
        attrs = {**where, "usagetype": f"{prefix}EBS:SnapshotUsage", "storageMedia": "Amazon S3"}
        found.append(_product(f"S{region[-3:]}", "AmazonEC2", "Storage Snapshot", attrs, snapshot, "GB-Mo"))
        attrs = {**where, "group": "VPCPublicIPv4Address", "usagetype": f"{prefix}PublicIPv4:InUseAddress"}
        found.append(_product(f"P{region[-3:]}", "AmazonVPC", "VPC Public IPv4 Address", attrs, PUBLIC_IPV4_HOUR, "Hrs"))
    return found


def _matches(product: dict[str, Any], service: str, filters: Iterable[dict[str, str]]) -> bool:
    if product["serviceCode"] != service:
        return False
    attrs = {k.lower(): str(v) for k, v in product["product"]["attributes"].items()}
    attrs["productfamily"] = product["product"]["productFamily"]
    for f in filters:
        kind, field, value = f.get("Type", "TERM_MATCH"), f.get("Field", "").lower(), str(f.get("Value", ""))
        have = attrs.get(field)
        if kind in ("TERM_MATCH", "EQUALS"):
            ok = have is not None and have.lower() == value.lower()
        elif kind == "CONTAINS":
            ok = have is not None and value.lower() in have.lower()
        elif kind == "ANY_OF":
            ok = have is not None and have.lower() in {v.strip().lower() for v in value.split(",")}
        elif kind == "NONE_OF":
            ok = have is None or have.lower() not in {v.strip().lower() for v in value.split(",")}
        else:
            raise ValueError(f"Unknown filter type {kind}")
        if not ok:
            return False
    return True


def get_products(request: dict[str, Any]) -> dict[str, Any]:
    """GetProducts' answer: the matching products as JSON strings, ``MaxResults`` a page, ``NextToken`` an offset."""
    service = request.get("ServiceCode", "")
    matched = [p for p in products() if _matches(p, service, request.get("Filters") or [])]
    start = int(request.get("NextToken") or 0)
    size = max(1, min(int(request.get("MaxResults") or 100), 100))
    page = matched[start : start + size]
    answer: dict[str, Any] = {"FormatVersion": "aws_v1", "PriceList": [json.dumps(p) for p in page]}
    if start + size < len(matched):
        answer["NextToken"] = str(start + size)
    return answer


class PriceList:
    """WSGI middleware: answers ``AWSPriceListService.*`` calls (the Pricing API); everything else goes to moto."""

    TARGET = "AWSPriceListService."

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(self.TARGET):
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b"{}"
        operation = target[len(self.TARGET) :]
        status, answer = "200 OK", {}
        try:
            request = json.loads(body or b"{}")
            if operation != "GetProducts":
                raise NotImplementedError(operation)
            answer = get_products(request)
        except NotImplementedError:
            status = "400 Bad Request"
            answer = {"__type": "InvalidParameterException", "Message": f"The sandbox's Pricing API has no {operation}."}
        except (ValueError, TypeError) as err:
            status = "400 Bad Request"
            answer = {"__type": "InvalidParameterException", "Message": str(err)}
        payload = json.dumps(answer).encode()
        start_response(status, [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(payload)))])
        return [payload]


def patch_spot_price_history() -> None:
    """DescribeSpotPriceHistory answers the table's price per (type, zone) and honours ``AvailabilityZone``."""
    from moto.core.responses import ActionResult
    from moto.ec2.responses.spot_instances import SpotInstances

    def describe_spot_price_history(self: Any) -> Any:
        zone = self._get_param("AvailabilityZone")
        offers = self.ec2_backend.describe_spot_price_history(
            self._get_param("InstanceTypes", []), self._filters_from_querystring()
        )
        history = []
        for offer in offers:
            if zone and offer["Location"] != zone:
                continue
            price = spot_price(offer["InstanceType"], offer["Location"])
            history.append(
                {
                    "InstanceType": offer["InstanceType"],
                    "ProductDescription": "Linux/UNIX",
                    "SpotPrice": "0.00001" if price is None else f"{price:.6f}",
                    "AvailabilityZone": offer["Location"],
                    "Timestamp": "2026-12-01T00:00:00.000Z",
                }
            )
        max_results = self._get_param("MaxResults")
        return ActionResult({"SpotPriceHistory": history[: int(max_results)] if max_results else history})

    SpotInstances.describe_spot_price_history = describe_spot_price_history  # type: ignore[method-assign]
