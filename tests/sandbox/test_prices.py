"""Prices: recorded GetProducts responses served over real HTTP, spot history from moto."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ec2kit.aws.cloud import Cloud
from ec2kit.aws.prices import on_demand_prices, parse_price_list, price_table, sort_types, spot_prices
from ec2kit.errors import ConfigError, CredentialsError
from ec2kit.settings import Settings

DATA = Path(__file__).parent.parent / "data" / "pricing"
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
M5_TOKEN = json.loads((DATA / "m5-us-east-1-page1.json").read_text())["NextToken"]


class PricingHandler(BaseHTTPRequestHandler):
    """Answers AWSPriceListService.GetProducts (JSON 1.1) with the recorded responses."""

    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append({"target": self.headers.get("X-Amz-Target"), **body})
        filters = {f["Field"]: f["Value"] for f in body.get("Filters", [])}
        status, answer = 200, {"FormatVersion": "aws_v1", "PriceList": []}
        if filters.get("regionCode") == "ap-south-1":
            status, answer = (
                400,
                {"__type": "AccessDeniedException", "message": "User is not authorized to perform: pricing:GetProducts"},
            )
        elif (filters.get("instanceType"), filters.get("regionCode")) == ("m5.", "us-east-1"):
            page = "page2" if body.get("NextToken") == M5_TOKEN else "page1"
            answer = json.loads((DATA / f"m5-us-east-1-{page}.json").read_text())
        elif (filters.get("instanceType"), filters.get("regionCode")) == ("t3.", "eu-central-1"):
            answer = json.loads((DATA / "t3-eu-central-1.json").read_text())
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def pricing_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), PricingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def seen():
    PricingHandler.requests.clear()
    return PricingHandler.requests


def test_on_demand_prices_follow_next_token_and_sort_by_size(pricing_endpoint, seen):
    prices = on_demand_prices("m5", "us-east-1", endpoint_url=pricing_endpoint, credentials=CREDS)
    assert list(prices) == [
        "m5.large",
        "m5.xlarge",
        "m5.2xlarge",
        "m5.4xlarge",
        "m5.8xlarge",
        "m5.12xlarge",
        "m5.16xlarge",
        "m5.24xlarge",
        "m5.metal",
    ]
    assert prices["m5.large"] == 0.096 and prices["m5.24xlarge"] == 4.608
    assert [r.get("NextToken") for r in seen] == [None, M5_TOKEN]
    assert seen[0]["target"] == "AWSPriceListService.GetProducts" and seen[0]["ServiceCode"] == "AmazonEC2"


def test_on_demand_request_filters_linux_shared_tenancy_in_the_region(pricing_endpoint, seen):
    on_demand_prices("t3", "Frankfurt", endpoint_url=pricing_endpoint, credentials=CREDS)
    filters = {f["Field"]: (f["Type"], f["Value"]) for f in seen[0]["Filters"]}
    assert filters["regionCode"] == ("TERM_MATCH", "eu-central-1")
    assert filters["operatingSystem"] == ("TERM_MATCH", "Linux")
    assert filters["tenancy"] == ("TERM_MATCH", "Shared")
    assert filters["preInstalledSw"] == ("TERM_MATCH", "NA")
    assert filters["capacitystatus"] == ("TERM_MATCH", "Used")
    assert filters["instanceType"] == ("CONTAINS", "t3.")


def test_on_demand_prices_of_a_single_page_region_given_by_name(pricing_endpoint):
    prices = on_demand_prices("t3", "Frankfurt", endpoint_url=pricing_endpoint, credentials=CREDS)
    assert list(prices)[:3] == ["t3.nano", "t3.micro", "t3.small"] and prices["t3.medium"] == 0.048


def test_reserved_terms_are_ignored_when_parsing():
    page = json.loads((DATA / "m5-us-east-1-page1.json").read_text())
    assert any('"Reserved"' in entry for entry in page["PriceList"])
    assert parse_price_list(page["PriceList"], "m5")["m5.large"] == 0.096
    assert parse_price_list(page["PriceList"], "m5.large") == {"m5.large": 0.096}


def test_pricing_permission_errors_are_translated(pricing_endpoint):
    with pytest.raises(CredentialsError, match="not allowed to look up on-demand prices of m5 in ap-south-1"):
        on_demand_prices("m5", "ap-south-1", endpoint_url=pricing_endpoint, credentials=CREDS)


def test_bad_family_and_region_are_refused_before_any_call(seen):
    with pytest.raises(ConfigError, match="not an instance family"):
        on_demand_prices("m5; rm", "us-east-1", endpoint_url="http://127.0.0.1:9", credentials=CREDS)
    with pytest.raises(ConfigError, match="No AWS region matches 'Mars'"):
        on_demand_prices("m5", "Mars", endpoint_url="http://127.0.0.1:9", credentials=CREDS)
    assert seen == []


def test_types_sort_by_size_not_alphabetically():
    assert sort_types(["m5.metal", "m5.2xlarge", "m5.large", "m5.12xlarge", "m5.xlarge", "t3.nano"]) == [
        "m5.large",
        "m5.xlarge",
        "m5.2xlarge",
        "m5.12xlarge",
        "m5.metal",
        "t3.nano",
    ]


@pytest.fixture
def cloud(moto_reset, tmp_path) -> Cloud:
    return Cloud(Settings(home=tmp_path), endpoint_url=moto_reset, credentials=CREDS, region="us-east-1")


def test_spot_prices_are_latest_per_type_and_zone(cloud):
    prices = spot_prices("m5", cloud)
    assert list(prices)[:3] == ["m5.large", "m5.xlarge", "m5.2xlarge"]
    assert "m5d.large" not in prices
    assert all(zone.startswith("us-east-1") and price > 0 for zones in prices.values() for zone, price in zones.items())


def test_price_table_joins_sizes_on_demand_and_spot(cloud, pricing_endpoint):
    rows = price_table("m5", cloud, pricing_endpoint_url=pricing_endpoint)
    large = rows[0]
    assert (large.type, large.vcpus, large.memory_gib, large.on_demand) == ("m5.large", 2, 8.0, 0.096)
    assert large.cheapest_spot is not None and large.cheapest_spot[0].startswith("us-east-1")
    with pytest.raises(ConfigError, match="no instance types in family 'zz9'"):
        price_table("zz9", cloud, pricing_endpoint_url=pricing_endpoint)
