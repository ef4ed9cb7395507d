"""The sandbox's prices through boto3's own clients: the Pricing API stand-in on moto's port, spot prices per zone."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from ec2kit.aws.prices import on_demand_prices, on_demand_prices_of, spot_prices, storage_prices
from ec2kit.sandbox.moto.pricelist import ON_DEMAND, spot_price


def test_boto3s_pricing_client_reaches_the_sandbox_at_the_ec2_endpoint(sandbox):
    pricing = sandbox.info.client("pricing")
    answer = pricing.get_products(
        ServiceCode="AmazonEC2",
        Filters=[
            {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "g5.xlarge"},
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"},
        ],
        FormatVersion="aws_v1",
    )
    [product] = [json.loads(p) for p in answer["PriceList"]]
    assert product["product"]["attributes"]["instanceType"] == "g5.xlarge"
    [term] = product["terms"]["OnDemand"].values()
    [dim] = term["priceDimensions"].values()
    assert (dim["unit"], float(dim["pricePerUnit"]["USD"])) == ("Hrs", ON_DEMAND["g5.xlarge"])


def test_an_operation_the_stand_in_lacks_is_a_clear_error(sandbox):
    with pytest.raises(ClientError, match="has no DescribeServices"):
        sandbox.info.client("pricing").describe_services(ServiceCode="AmazonEC2")


def test_ec2kits_price_readers_get_the_tables_prices_from_the_sandbox(sandbox):
    from ec2kit.aws.cloud import Cloud
    from ec2kit.sandbox import SANDBOX_CREDENTIALS

    cloud = Cloud(sandbox.settings, endpoint_url=sandbox.info.endpoint_url, credentials=SANDBOX_CREDENTIALS, region="us-east-1")
    assert on_demand_prices("c6i", "us-east-1", endpoint_url=cloud.endpoint_url, session=cloud.session)["c6i.large"] == 0.085
    several = on_demand_prices_of(
        ["t3.medium", "g5.xlarge", "t3.medium", "x9.none"], "us-east-1", endpoint_url=cloud.endpoint_url, session=cloud.session
    )
    assert several == {"t3.medium": ON_DEMAND["t3.medium"], "g5.xlarge": ON_DEMAND["g5.xlarge"]}  # one GetProducts, ANY_OF
    storage = storage_prices("us-east-1", endpoint_url=cloud.endpoint_url, session=cloud.session)
    assert (storage.ebs["gp3"], storage.ebs["io2"], storage.snapshot, storage.ipv4) == (0.08, 0.125, 0.05, 0.005)
    zones = spot_prices("g4dn.xlarge", cloud)["g4dn.xlarge"]
    assert zones == {z: spot_price("g4dn.xlarge", z) for z in zones} and len(set(zones.values())) == len(zones) > 1
    assert cloud.spot_price("g4dn.xlarge", "us-east-1d") == spot_price("g4dn.xlarge", "us-east-1d")  # AvailabilityZone honoured
