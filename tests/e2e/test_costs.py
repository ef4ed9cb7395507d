"""What it costs, on the sandbox: `inv costs` against figures worked out by hand from the sandbox's price
table (ec2kit/sandbox/moto/pricelist.py), and the estimate launch, spot-run and sweep show before paying:
asked on a terminal, refused without one, passed with --yes, a bad confirm_above refused."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import pytest
from cli_helpers import ROOT, assert_clean_error, run_inv
from pty_helpers import answer_on_terminal, inv_argv

pytestmark = pytest.mark.timeout(600)

HOURS_PER_MONTH = 730
# the sandbox's table, as AWS lists them in us-east-1 (USD): on-demand per hour, EBS and snapshots per GB-month
T3_MEDIUM = 0.0416
M5_LARGE = 0.096
G5_12XLARGE = 5.672
SPOT_FACTOR_C = 0.33  # us-east-1c: 33% of on-demand
SPOT_FACTOR_D = 0.40  # us-east-1d, the dearest zone moto offers m5.large and g5 in
GP2, GP3, IO2, SNAPSHOT = 0.10, 0.08, 0.125, 0.05
IPV4 = 0.005


def names_of(ec2, name: str) -> list[str]:
    """Ids of the not-terminated instances called ``name``."""
    found = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [name]}])["Reservations"]
    return [i["InstanceId"] for r in found for i in r["Instances"] if i["State"]["Name"] != "terminated"]


def test_costs_totals_equal_the_figure_worked_out_by_hand(sandbox_reset):
    home, ec2 = sandbox_reset.settings.home, sandbox_reset.ec2
    before = datetime.now(timezone.utc)
    for argv in (
        ["launch", "cost-od", "--no-wait"],
        ["launch", "cost-spot", "--spot", "--type", "m5.large", "--zone", "us-east-1c", "--no-wait"],
    ):
        made = run_inv(*argv, home=home)
        assert made.code == 0, made
    [od] = names_of(ec2, "cost-od")
    roots = ec2.describe_volumes()["Volumes"]
    assert sorted((v["VolumeType"], v["Size"]) for v in roots) == [("gp2", 8), ("gp2", 8)]  # moto's root disks
    managed = [{"Key": "ec2kit:managed", "Value": "1"}]
    data = ec2.create_volume(
        Size=10, VolumeType="gp3", AvailabilityZone="us-east-1a",
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "cost-data"}, *managed]}],
    )  # fmt: skip
    ec2.create_volume(
        Size=4, VolumeType="io2", Iops=100, AvailabilityZone="us-east-1a",
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "cost-fast"}, *managed]}],
    )  # fmt: skip
    ec2.create_volume(Size=50, AvailabilityZone="us-east-1a")  # not ec2kit's: not counted
    ec2.create_snapshot(
        VolumeId=data["VolumeId"],
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "Name", "Value": "cost-snap"}, *managed]}],
    )

    result = run_inv("costs", "--json", home=home)
    assert result.code == 0, result
    report = json.loads(result.out)
    after = datetime.now(timezone.utc)

    spot_rate = round(M5_LARGE * SPOT_FACTOR_C, 4)  # 0.0317
    by_name = {(i["kind"], i["name"]): i for i in report["items"]}
    assert by_name["instance", "cost-od"]["hourly"] == pytest.approx(T3_MEDIUM)
    assert by_name["instance", "cost-spot"]["hourly"] == pytest.approx(spot_rate)
    assert by_name["instance", "cost-spot"]["what"] == "m5.large spot us-east-1c"
    assert by_name["volume", "cost-data"]["monthly"] == pytest.approx(10 * GP3)
    assert by_name["volume", "cost-fast"]["monthly"] == pytest.approx(4 * IO2)
    assert by_name["snapshot", "cost-snap"]["monthly"] == pytest.approx(10 * SNAPSHOT)
    assert by_name["snapshot", "cost-snap"]["upper_bound"] is True
    assert sorted(i["kind"] for i in report["items"]) == ["instance"] * 2 + ["ipv4"] * 2 + ["snapshot"] + ["volume"] * 4

    by_hand = (
        T3_MEDIUM + spot_rate  # the two instances
        + (2 * 8 * GP2 + 10 * GP3 + 4 * IO2 + 10 * SNAPSHOT) / HOURS_PER_MONTH  # two root disks, two volumes, a snapshot
        + 2 * IPV4  # two public addresses
    )  # fmt: skip
    assert report["total"]["hourly"] == pytest.approx(by_hand)
    assert report["total"]["monthly"] == pytest.approx(by_hand * HOURS_PER_MONTH)
    assert report["total"]["unpriced"] == []
    longest = (after - before).total_seconds() / 3600
    assert 0 < report["total"]["spent"] <= (T3_MEDIUM + spot_rate) * longest
    assert by_name["instance", "cost-od"]["since"] is not None and od

    listed = run_inv("instances", "--json", home=home)  # the same rates in the instances' $/h column
    assert {i["name"]: i["hourly_price"] for i in json.loads(listed.out)} == pytest.approx(
        {"cost-od": T3_MEDIUM, "cost-spot": spot_rate}
    )
    plain = run_inv("instances", home=home)
    assert "$/h" in plain.out and f"${T3_MEDIUM:.4f}" in plain.out and f"${spot_rate:.4f}" in plain.out

    table = run_inv("costs", home=home)
    assert table.code == 0, table
    assert f"In all: ${by_hand:.4f}/h, ${by_hand * HOURS_PER_MONTH:,.2f} a month" in table.out, table.out
    assert "upper bound" in table.err


def test_costs_of_an_empty_account_say_nothing_costs_money(sandbox_reset):
    result = run_inv("costs", home=sandbox_reset.settings.home)
    assert result.code == 0, result
    assert "Nothing of ec2kit's costs money" in result.out + result.err
    assert json.loads(run_inv("costs", "--json", home=sandbox_reset.settings.home).out)["total"]["hourly"] == 0


def test_a_launch_above_confirm_above_is_refused_without_a_terminal(sandbox):
    result = run_inv("launch", "cost-big-1", "--type", "g5.12xlarge", "--no-wait", home=sandbox.settings.home, stdin="")
    assert_clean_error(result, "Not launched: instance cost-big-1", f"${G5_12XLARGE:.2f}/h", "confirm_above = $2.00/h", "--yes")
    assert f"Expected cost: ${G5_12XLARGE:.2f}/h (g5.12xlarge on-demand" in result.err
    assert names_of(sandbox.ec2, "cost-big-1") == []


def test_a_launch_above_confirm_above_asks_on_a_terminal_and_a_no_launches_nothing(sandbox):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(EC2KIT_HOME=str(sandbox.settings.home), EC2KIT_SANDBOX="1", PYTHONPATH=str(ROOT))
    argv = inv_argv("launch", "cost-big-2", "--type", "g5.12xlarge", "--no-wait")
    code, lines, asked = answer_on_terminal(argv, prompt="Go ahead? [y/N]", answer="n", env=env)
    assert asked, lines
    assert code != 0 and any("was not confirmed" in line for line in lines), lines
    assert names_of(sandbox.ec2, "cost-big-2") == []
    code, lines, asked = answer_on_terminal(argv, prompt="Go ahead? [y/N]", answer="y", env=env)
    assert asked and code == 0, lines
    assert len(names_of(sandbox.ec2, "cost-big-2")) == 1
    run_inv("terminate", "cost-big-2", home=sandbox.settings.home)


def test_yes_launches_above_confirm_above_without_asking(sandbox):
    result = run_inv("launch", "cost-big-3", "--type", "g5.12xlarge", "--no-wait", "--yes", home=sandbox.settings.home, stdin="")
    assert result.code == 0, result
    assert "Expected cost: $5.67/h" in result.err and "Go ahead?" not in result.out
    assert len(names_of(sandbox.ec2, "cost-big-3")) == 1
    run_inv("terminate", "cost-big-3", home=sandbox.settings.home)


def test_check_shows_the_estimate_and_launches_nothing(sandbox):
    result = run_inv("launch", "cost-big-4", "--type", "g5.12xlarge", "--check", home=sandbox.settings.home, stdin="")
    assert result.code == 0, result
    assert f"Expected cost: ${G5_12XLARGE:.2f}/h" in result.out + result.err
    assert names_of(sandbox.ec2, "cost-big-4") == []


def test_a_sweep_shows_its_worst_case_and_is_refused_above_the_limit_without_a_terminal(sandbox, tmp_path):
    script = tmp_path / "train.sh"
    script.write_text("echo hi\n")
    result = run_inv(
        "sweep", "--script", str(script), "--grid", "lr=1,2,3", "--parallel", "2", "--type", "m5.large", "--max-hours", "2",
        "--name", "cost-sweep", home=sandbox.settings.home, env={"EC2KIT_CONFIRM_ABOVE": "0.05"}, stdin="",
    )  # fmt: skip
    dearest = round(M5_LARGE * SPOT_FACTOR_D, 4)  # 0.0384: EC2 Fleet may land in any pool
    assert_clean_error(result, "this sweep (3 runs, 2 at a time)", f"${2 * dearest:.4f}/h", "confirm_above = $0.0500/h")
    assert f"at most ${dearest * 2 * 3:.4f}" in result.err  # --max-hours × runs
    assert not (sandbox.settings.home / "sweeps" / "cost-sweep.json").exists()


def test_a_sweep_of_thousands_of_runs_without_a_budget_is_asked_about_however_cheap_an_hour_is(sandbox, tmp_path):
    script = tmp_path / "train.sh"
    script.write_text("echo hi\n")
    grid = ["--grid", "a=" + ",".join(map(str, range(100))), "--grid", "b=" + ",".join(map(str, range(100)))]
    result = run_inv(
        "sweep", "--script", str(script), *grid, "--type", "t3.micro", "--name", "huge-sweep",
        home=sandbox.settings.home, stdin="",
    )  # fmt: skip
    assert_clean_error(result, "this sweep has 10000 runs and no --max-cost", "nothing bounds what it spends", "--yes")
    assert not (sandbox.settings.home / "sweeps" / "huge-sweep.json").exists()
    bounded = run_inv(
        "sweep", "--script", str(script), *grid, "--type", "t3.micro", "--name", "huge-sweep", "--max-cost", "5",
        home=sandbox.settings.home, env={"EC2KIT_CONFIRM_ABOVE": "0.000001"}, stdin="",
    )  # fmt: skip
    assert_clean_error(bounded, "above confirm_above")  # refused for its rate only: a budget is a bound
    assert "nothing bounds" not in bounded.err, bounded
    assert not (sandbox.settings.home / "sweeps" / "huge-sweep.json").exists()


def test_a_spot_run_above_the_limit_is_refused_without_a_terminal(sandbox, tmp_path):
    script = tmp_path / "train.sh"
    script.write_text("echo hi\n")
    before = len(sandbox.ec2.describe_instances()["Reservations"])
    result = run_inv(
        "spot-run", "--script", str(script), "--type", "g5.12xlarge", "--name", "cost-run",
        home=sandbox.settings.home, stdin="",
    )  # fmt: skip
    dearest = round(G5_12XLARGE * SPOT_FACTOR_D, 4)
    assert_clean_error(result, "this spot run", f"${dearest:.2f}/h", "--yes")
    assert len(sandbox.ec2.describe_instances()["Reservations"]) == before


@pytest.mark.parametrize(
    ("where", "setting"),
    [("file", "confirm_above = -1\n"), ("env", "-1")],
)
def test_a_negative_confirm_above_is_a_clear_error_before_any_launch(sandbox, tmp_path, where, setting):
    env = {}
    if where == "file":
        (tmp_path / "ec2kit.toml").write_text('type = "t3.micro"\n' + setting)
    else:
        env["EC2KIT_CONFIRM_ABOVE"] = setting
    result = run_inv("launch", "cost-bad", "--no-wait", home=sandbox.settings.home, cwd=tmp_path, env=env, stdin="")
    where_said = f"{tmp_path / 'ec2kit.toml'}:2" if where == "file" else "environment EC2KIT_CONFIRM_ABOVE"
    assert_clean_error(result, where_said, "confirm_above", "confirm_above = 2.5")
    assert names_of(sandbox.ec2, "cost-bad") == []


def test_the_python_face_refuses_above_the_limit_without_yes_and_names_yes_true(sandbox):
    from ec2kit import EC2
    from ec2kit.errors import WrongState

    ec2 = EC2(sandbox=True, home=sandbox.settings.home, quiet=True)
    with pytest.raises(WrongState, match=r"yes=True"):
        ec2.launch("cost-big-5", type="g5.12xlarge", wait=False)  # pytest's stdin is no terminal
    assert names_of(sandbox.ec2, "cost-big-5") == []
    small = ec2.launch("cost-small", type="t3.micro", wait=False)  # $0.0104/h: below the limit, no question
    found = ec2.costs()
    [mine] = [c for c in found if c.kind == "instance" and c.name == "cost-small"]
    assert mine.hourly == pytest.approx(0.0104) and mine.what == "t3.micro on-demand"
    assert found.total.hourly == pytest.approx(sum(c.hourly or 0 for c in found))
    assert "total" in found._text()
    small.terminate()


def test_an_unknown_price_is_said_and_blocks_nothing_unless_confirm_above_is_zero(sandbox):
    home = sandbox.settings.home
    zero = run_inv(
        "launch", "cost-unpriced", "--type", "t3a.micro", "--no-wait", home=home, env={"EC2KIT_CONFIRM_ABOVE": "0"}, stdin=""
    )
    assert_clean_error(zero, "the cost of instance cost-unpriced is unknown", "confirm_above = 0 asks before every launch")
    assert names_of(sandbox.ec2, "cost-unpriced") == []
    done = run_inv("launch", "cost-unpriced", "--type", "t3a.micro", "--no-wait", home=home, stdin="")
    assert done.code == 0, done
    assert "Expected cost: unknown (no on-demand price found for t3a.micro)" in done.err
    assert len(names_of(sandbox.ec2, "cost-unpriced")) == 1
    run_inv("terminate", "cost-unpriced", home=home)


def test_list_prices_are_asked_once_a_day_and_spot_prices_every_time(sandbox_reset):
    home = sandbox_reset.settings.home
    (home / "prices.json").unlink(missing_ok=True)
    made = run_inv("launch", "cost-cache", "--no-wait", home=home)
    assert made.code == 0, made
    log = sandbox_reset.info.dir / "requests.log"

    def listing() -> tuple[dict, list[str]]:
        before = len(log.read_text().splitlines())
        shown = run_inv("instances", "--json", home=home)
        assert shown.code == 0, shown
        [row] = [i for i in json.loads(shown.out) if i["name"] == "cost-cache"]
        return row, log.read_text().splitlines()[before:]

    cached = json.loads((home / "prices.json").read_text())  # the launch's estimate asked for it
    assert any(entry["prices"].get("t3.medium") == pytest.approx(T3_MEDIUM) for entry in cached.values())
    first, asked = listing()
    assert first["hourly_price"] == pytest.approx(T3_MEDIUM)
    assert "AWSPriceListService.GetProducts" not in asked, asked  # the list price came from the cache
    for entry in cached.values():
        entry["at"] -= 2 * 86400  # two days later: asked again
    (home / "prices.json").write_text(json.dumps(cached))
    second, asked = listing()
    assert second["hourly_price"] == pytest.approx(T3_MEDIUM) and "AWSPriceListService.GetProducts" in asked


# us-west-1 (N. California) in the sandbox's table, as AWS lists it: dearer storage than us-east-1
WEST1_GP3, WEST1_ST1, WEST1_SNAPSHOT = 0.096, 0.054, 0.055
ST1 = 0.045


def _ec2_in(sandbox, region: str):
    import boto3

    from ec2kit.sandbox import SANDBOX_CREDENTIALS

    return boto3.client("ec2", endpoint_url=sandbox.info.endpoint_url, region_name=region, **SANDBOX_CREDENTIALS)


def _unused_storage_in(sandbox, region: str) -> dict[str, str]:
    """An ec2kit gp3 volume of 12 GB, an st1 one of 125 GB and a snapshot of the first in ``region``: {name: id}."""
    ec2 = _ec2_in(sandbox, region)
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    managed = [{"Key": "ec2kit:managed", "Value": "1"}]
    ids = {}
    for name, vtype, size in (("cl-gp3", "gp3", 12), ("cl-st1", "st1", 125)):
        made = ec2.create_volume(
            Size=size, VolumeType=vtype, AvailabilityZone=zone,
            TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": name}, *managed]}],
        )  # fmt: skip
        ids[name] = made["VolumeId"]
    snap = ec2.create_snapshot(
        VolumeId=ids["cl-gp3"],
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "Name", "Value": "cl-snap"}, *managed]}],
    )
    ids["cl-snap"] = snap["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[ids["cl-snap"]], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return ids


def test_cleanup_shows_the_monthly_cost_inv_costs_shows_at_the_regions_own_prices(sandbox_reset):
    """Issue: cleanup priced storage from a us-east-1 table; it now uses the rates of `inv costs` for the region."""
    from ec2kit.aws.costs import dollars

    home = sandbox_reset.settings.home
    by_hand = {
        "us-east-1": {"cl-gp3": 12 * GP3, "cl-st1": 125 * ST1, "cl-snap": 12 * SNAPSHOT},
        "us-west-1": {"cl-gp3": 12 * WEST1_GP3, "cl-st1": 125 * WEST1_ST1, "cl-snap": 12 * WEST1_SNAPSHOT},
    }
    shown = {}
    for region, expected in by_hand.items():
        ids = _unused_storage_in(sandbox_reset, region)
        costs = run_inv("costs", "--json", "--region", region, home=home)
        assert costs.code == 0, costs
        cost_monthly = {i["id"]: i["monthly"] for i in json.loads(costs.out)["items"]}
        cleanup = run_inv("cleanup", "--json", "--older-than", "0", "--region", region, home=home)
        assert cleanup.code == 0, cleanup
        assert "Storage priced at" not in cleanup.err, cleanup  # the region's own prices, no fallback
        cleanup_monthly = {x["id"]: x["monthly"] for x in json.loads(cleanup.out)}
        for name, usd in expected.items():
            assert cleanup_monthly.get(ids[name]) == pytest.approx(usd), (region, name, cleanup.out)
            assert cost_monthly[ids[name]] == pytest.approx(usd), (region, name, costs.out)
        table = run_inv("cleanup", "--older-than", "0", "--region", region, home=home, stdin="")
        costs_table = run_inv("costs", "--region", region, home=home)
        for name, usd in expected.items():  # the very same text in both tables
            assert dollars(usd) in table.out and dollars(usd) in costs_table.out, (region, name, table.out, costs_table.out)
        assert f"costs up to {dollars(sum(expected.values()))} a month" in table.out, table.out
        shown[region] = cleanup_monthly[ids["cl-gp3"]], cleanup_monthly[ids["cl-snap"]]
    assert shown["us-west-1"][0] > shown["us-east-1"][0] and shown["us-west-1"][1] > shown["us-east-1"][1]


def test_cleanup_says_it_uses_the_us_east_1_table_when_the_pricing_api_cannot_be_reached(sandbox_reset):
    from ec2kit.sandbox import knobs

    home = sandbox_reset.settings.home
    (home / "prices.json").unlink(missing_ok=True)  # nothing cached: the Pricing API must answer
    ids = _unused_storage_in(sandbox_reset, "us-west-1")
    knobs.throttle(sandbox_reset.settings, 300, actions=["GetProducts"])
    try:
        cleanup = run_inv("cleanup", "--json", "--older-than", "0", "--region", "us-west-1", home=home, timeout=300)
        refused = knobs.throttled(sandbox_reset.settings)["refused"]
    finally:
        knobs.throttle(sandbox_reset.settings, 0)
    assert cleanup.code == 0 and "Traceback" not in cleanup.text, cleanup
    assert "GetProducts" in refused, refused  # the Pricing API was asked, and failed
    assert "Storage priced at us-east-1 list prices of Dec 2026, not us-west-1's" in cleanup.err, cleanup
    assert "throttling requests" in cleanup.err and "<?xml" not in cleanup.err, cleanup  # and why, in words
    monthly = {x["id"]: x["monthly"] for x in json.loads(cleanup.out)}
    assert monthly[ids["cl-gp3"]] == pytest.approx(12 * GP3) and monthly[ids["cl-snap"]] == pytest.approx(12 * SNAPSHOT)
    assert not (home / "prices.json").exists() or "us-west-1 storage" not in (home / "prices.json").read_text()


def test_costs_without_the_pricing_api_still_lists_everything_and_says_what_is_not_priced(sandbox_reset, launched):
    from ec2kit.sandbox import knobs

    home = sandbox_reset.settings.home
    launched("cost-np")
    ids = _unused_storage_in(sandbox_reset, "us-east-1")
    (home / "prices.json").unlink(missing_ok=True)  # nothing cached: the Pricing API must answer
    knobs.throttle(sandbox_reset.settings, 300, actions=["GetProducts"])  # as for an IAM user without pricing:GetProducts
    try:
        shown = run_inv("costs", "--json", home=home, timeout=300)
        table = run_inv("costs", home=home, timeout=300)
        refused = knobs.throttled(sandbox_reset.settings)["refused"]
    finally:
        knobs.throttle(sandbox_reset.settings, 0)
    assert shown.code == 0 and table.code == 0 and "Traceback" not in shown.text + table.text, (shown, table)
    assert "GetProducts" in refused, refused
    found = json.loads(shown.out)
    rows = {(item["kind"], item["name"]): item for item in found["items"]}
    assert rows[("instance", "cost-np")]["hourly"] is None  # the instance is listed, unpriced ...
    assert rows[("volume", "cl-gp3")]["monthly"] == pytest.approx(12 * GP3)  # ... storage at the us-east-1 table ...
    assert ids["cl-gp3"] in {item["id"] for item in found["items"]}
    assert any("On-demand prices could not be read" in n for n in found["notes"]), found["notes"]  # ... and both said
    assert any("Storage priced at us-east-1 list prices" in n for n in found["notes"]), found["notes"]
    assert "On-demand prices could not be read" in table.err and "Storage priced at" in table.err, table.err
