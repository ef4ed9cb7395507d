"""The cost model (pure arithmetic over prices), the estimate a launch shows, and the sandbox's price list."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from ec2kit.aws.costs import HOURS_PER_MONTH, CostSummary, cost_items, dollars, launch_estimate
from ec2kit.aws.models import Image, Instance, Snapshot, Volume
from ec2kit.aws.prices import Rates, StoragePrices, parse_price_list, unit_prices
from ec2kit.config import load
from ec2kit.errors import ConfigError
from ec2kit.sandbox.moto import pricelist

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
STORAGE = StoragePrices(ebs={"gp3": 0.08, "gp2": 0.10}, snapshot=0.05, ipv4=0.005)


def instance(
    name: str, type_: str, *, state: str = "running", spot: bool = False, zone: str = "us-east-1a", ip: str | None = "1.2.3.4"
) -> Instance:
    return Instance(
        id=f"i-{name}", name=name, type=type_, state=state, lifecycle="spot" if spot else "on-demand", public_ip=ip,
        private_ip="10.0.0.1", launch_time=NOW - timedelta(hours=3), zone=zone, image_id="ami-1", key_name="ec2kit",
    )  # fmt: skip


def volume(name: str, size: int, vtype: str = "gp3") -> Volume:
    return Volume(
        id=f"vol-{name}", name=name, size=size, state="available", zone="us-east-1a", attached_to=None, device=None,
        snapshot_id=None, type=vtype,
    )  # fmt: skip


def test_running_instances_cost_their_rate_since_launch_and_stopped_ones_nothing():
    rates = Rates("us-east-1", on_demand={"m5.large": 0.096}, spot={("g5.xlarge", "us-east-1b"): 0.35}, storage=STORAGE)
    found = cost_items(
        [instance("a", "m5.large"), instance("b", "g5.xlarge", spot=True, zone="us-east-1b", ip=None), instance("c", "m5.large", state="stopped")],
        [], [], [], rates, now=NOW,
    )  # fmt: skip
    assert [(c.kind, c.name, c.hourly) for c in found] == [
        ("instance", "a", 0.096),
        ("instance", "b", 0.35),
        ("ipv4", "a", 0.005),
    ]
    assert found[0].spent == pytest.approx(3 * 0.096) and found[1].spent == pytest.approx(3 * 0.35)
    assert found[1].what == "g5.xlarge spot us-east-1b"


def test_volumes_cost_size_times_their_types_price_and_an_images_snapshot_is_counted_once():
    snap = Snapshot(id="snap-1", name="img-root", state="completed", progress="100%", size=30, volume_id=None, start_time=NOW)
    loose = Snapshot(id="snap-2", name="data", state="completed", progress="100%", size=20, volume_id=None, start_time=NOW)
    image = Image(
        id="ami-2", name="base", state="available", creation_date="2026-12-01T00:00:00.000Z", snapshot_ids=["snap-1"],
        raw={"BlockDeviceMappings": [{"Ebs": {"SnapshotId": "snap-1", "VolumeSize": 30}}]},
    )  # fmt: skip
    found = cost_items(
        [], [volume("d", 10), volume("e", 5, "gp2")], [snap, loose], [image], Rates("us-east-1", storage=STORAGE), now=NOW
    )
    monthly = {(c.kind, c.name): c.monthly for c in found}
    assert monthly == pytest.approx(
        {("volume", "d"): 10 * 0.08, ("volume", "e"): 5 * 0.10, ("snapshot", "data"): 20 * 0.05, ("image", "base"): 30 * 0.05}
    )
    total = CostSummary.of(found)
    assert total.monthly == pytest.approx(10 * 0.08 + 5 * 0.10 + 20 * 0.05 + 30 * 0.05)
    assert total.hourly == pytest.approx(total.monthly / HOURS_PER_MONTH) and total.upper_bound


def test_a_resource_without_a_price_is_listed_as_unpriced_not_counted_as_free():
    found = cost_items([instance("x", "z9.huge")], [volume("f", 10, "io9")], [], [], Rates("us-east-1", storage=STORAGE), now=NOW)
    total = CostSummary.of(found)
    assert total.unpriced == ["instance x", "volume f"]
    assert total.hourly == pytest.approx(0.005)  # only the public address has a price


def test_a_spot_estimate_takes_the_dearest_pool_and_a_sweeps_worst_case_is_max_hours_times_runs():
    rates = Rates("us-east-1", spot={("m5.large", "us-east-1a"): 0.03, ("m5.large", "us-east-1b"): 0.04}, storage=STORAGE)
    estimate = launch_estimate(["m5.large"], rates, spot=True, count=2, disk_gb=73, max_hours=3, runs=5)
    per = 0.04 + 73 * 0.08 / HOURS_PER_MONTH
    assert estimate.hourly == pytest.approx(2 * per)
    assert estimate.worst_case == pytest.approx(per * 3 * 5)
    assert "at most" in estimate.line() and "2 × m5.large spot + 73 GB disk" in estimate.line()
    assert launch_estimate(["m5.large"], Rates("us-east-1"), spot=False).hourly is None


def test_dollars_keep_enough_digits_to_tell_prices_apart():
    assert [dollars(v) for v in (70.08, 0.096, 0.0000123, None, 1234.5)] == ["$70.08", "$0.0960", "$0.000012", "", "$1,234.50"]


@pytest.mark.parametrize("bad", ["-1", "nan", '"lots"', "true"])
def test_a_bad_confirm_above_names_the_file_and_line(tmp_path, bad):
    (tmp_path / "config.toml").write_text(f'type = "t3.micro"\nconfirm_above = {bad}\n')
    with pytest.raises(ConfigError, match=r"config.toml:2: confirm_above = .* is not valid"):
        load(tmp_path, cwd=tmp_path, environ={})


def test_confirm_above_defaults_to_two_dollars_an_hour_and_zero_is_allowed(tmp_path):
    assert load(tmp_path, cwd=tmp_path, environ={}).values["confirm_above"] == 2.0
    assert load(tmp_path, cwd=tmp_path, environ={"EC2KIT_CONFIRM_ABOVE": "0"}).values["confirm_above"] == 0.0


def test_the_sandbox_price_list_answers_filters_as_aws_does_and_pages():
    filters = [
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"},
        {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "linux"},  # case-insensitive, as AWS
        {"Type": "CONTAINS", "Field": "instanceType", "Value": "m5."},
    ]
    first = pricelist.get_products({"ServiceCode": "AmazonEC2", "Filters": filters, "MaxResults": 5})
    assert len(first["PriceList"]) == 5 and first["NextToken"] == "5"
    rest = pricelist.get_products({"ServiceCode": "AmazonEC2", "Filters": filters, "NextToken": first["NextToken"]})
    prices = parse_price_list(first["PriceList"] + rest["PriceList"], "m5")
    assert prices["m5.large"] == 0.096 and prices["m5.24xlarge"] == pytest.approx(48 * 0.096) and "m5d.large" not in prices
    storage = pricelist.get_products(
        {"ServiceCode": "AmazonEC2", "Filters": [{"Type": "TERM_MATCH", "Field": "productFamily", "Value": "Storage"},
                                                 {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-2"}]}
    )  # fmt: skip
    assert {a["volumeApiName"]: usd for a, usd in unit_prices(storage["PriceList"], "GB-Mo")}["gp3"] == 0.08
    vpc = pricelist.get_products({"ServiceCode": "AmazonVPC", "Filters": []})
    assert {usd for _, usd in unit_prices(vpc["PriceList"], "Hrs")} == {0.005}
    assert json.loads(vpc["PriceList"][0])["product"]["attributes"]["group"] == "VPCPublicIPv4Address"


def test_sandbox_spot_prices_differ_by_zone_and_stay_below_on_demand():
    prices = {z: pricelist.spot_price("g5.xlarge", f"us-east-1{z}") for z in "abcdf"}
    assert len(set(prices.values())) == 5 and max(p for p in prices.values() if p) < 1.006
    assert prices["c"] == round(1.006 * 0.33, 4)
    assert pricelist.spot_price("x9.nothing", "us-east-1a") is None
