"""Real AWS on the first try: vCPU quotas explained before they bite, capacity found through EC2 Fleet.

End to end on the sandbox (moto + its capacity pools and Service Quotas): ec2kit's own Cloud,
the `inv` command line as a subprocess, and spot-run. Calls are counted through botocore's
event hooks on ec2kit's client (observation only, responses untouched).
"""

from __future__ import annotations

import itertools
import json
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from cli_helpers import assert_clean_error, run_inv

from ec2kit import sandbox as sb
from ec2kit.aws.models import LAUNCH_TAG, MANAGED_TAG
from ec2kit.context import Context
from ec2kit.errors import NoCapacity, NotFound, QuotaExceeded
from ec2kit.spotrun import SpotRunOptions, spot_run
from ec2kit.spotrun.lifecycle import RUN_TAG

G_ON_DEMAND, G_SPOT = "L-DB2E81BA", "L-3819A6DF"
FAST = dict(pull_interval=0.5, poll_interval=0.3, notice_poll=0.5, pull_wait=15)


@pytest.fixture
def ctx(sandbox_reset):
    with Context(sandbox_reset.settings, quiet=True) as c:
        yield c


def count_calls(ctx: Context, operation: str) -> list[dict]:
    """The parameters of each ``operation`` call ec2kit's EC2 client makes from now on."""
    seen: list[dict] = []
    ctx.cloud.ec2.meta.events.register(f"before-parameter-build.ec2.{operation}", lambda **kw: seen.append(dict(kw["params"])))
    return seen


def zones(sandbox) -> list[str]:
    return sorted(z["ZoneName"] for z in sandbox.ec2.describe_availability_zones()["AvailabilityZones"])


def empty(sandbox, instance_type: str, *, market: str | None = "spot", only: list[str] | None = None) -> None:
    for zone in only or zones(sandbox):
        sb.set_capacity(sandbox.info, instance_type, zone, False, market=market)


def live_instances(sandbox, name: str) -> list[dict]:
    found = sandbox.ec2.describe_instances(
        Filters=[
            {"Name": "tag:Name", "Values": [name]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        ]
    )
    return [i for r in found["Reservations"] for i in r["Instances"]]


def ec2kit_templates(sandbox) -> list[str]:
    return [t["LaunchTemplateName"] for t in sandbox.ec2.describe_launch_templates()["LaunchTemplates"]]


# capacity through one fleet call -----------------------------------------------------------------
def test_with_the_first_pools_empty_one_fleet_call_launches_another_type_in_another_zone(ctx, sandbox_reset):
    sandbox = sandbox_reset
    empty(sandbox, "t3.micro")
    empty(sandbox, "t3.small", only=["us-east-1a"])
    fleets = count_calls(ctx, "CreateFleet")
    inst = ctx.cloud.launch("fleet1", type="t3.micro", types=["t3.small"], spot=True)
    assert (inst.type, inst.lifecycle, inst.state) == ("t3.small", "spot", "running") and inst.zone != "us-east-1a"
    assert inst.hourly_price is not None and inst.hourly_price > 0  # the pool's spot price (moto: a fixed one)
    assert len(fleets) == 1
    call = fleets[0]
    assert call["Type"] == "instant" and call["SpotOptions"] == {"AllocationStrategy": "price-capacity-optimized"}
    zone_of = {s["SubnetId"]: s["AvailabilityZone"] for s in sandbox.ec2.describe_subnets()["Subnets"]}  # pools name subnets
    pools = {(o["InstanceType"], zone_of[o["SubnetId"]]) for o in call["LaunchTemplateConfigs"][0]["Overrides"]}
    assert pools <= set(itertools.product(["t3.micro", "t3.small"], zones(sandbox))) and len(pools) >= 10
    assert ("t3.micro", "us-east-1a") in pools and ("t3.small", "us-east-1b") in pools
    # tagged at creation, instance and volumes; the launch template is gone
    assert inst.tags["Name"] == "fleet1" and inst.tags[MANAGED_TAG] == "1" and inst.tags[LAUNCH_TAG]
    volumes = sandbox.ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [inst.id]}])["Volumes"]
    assert volumes and all({"Key": LAUNCH_TAG, "Value": inst.tags[LAUNCH_TAG]} in v["Tags"] for v in volumes)
    assert not [t for t in ec2kit_templates(sandbox) if t.startswith("ec2kit-")]
    assert ctx.cloud.spot_request_for(inst)  # found and tagged, so terminate cancels it


def test_every_pool_empty_is_a_capacity_error_naming_the_pools_and_launches_nothing(sandbox_reset):
    sandbox, home = sandbox_reset, sandbox_reset.settings.home
    empty(sandbox, "t3.micro")
    empty(sandbox, "t3.small")
    result = run_inv("launch", "full", "--spot", "--type", "t3.micro", "--types", "t3.small", "--no-wait", home=home)
    assert_clean_error(result, "no capacity", "t3.micro in us-east-1a", "t3.small in", "--on-demand-fallback")
    assert live_instances(sandbox, "full") == [] and not [t for t in ec2kit_templates(sandbox) if t.startswith("ec2kit-")]


def test_with_on_demand_fallback_every_empty_spot_pool_ends_in_an_on_demand_instance(sandbox_reset):
    sandbox, home = sandbox_reset, sandbox_reset.settings.home
    empty(sandbox, "t3.micro")
    empty(sandbox, "t3.small")
    result = run_inv(
        "launch", "od", "--spot", "--type", "t3.micro", "--types", "t3.small", "--on-demand-fallback", "--no-wait", "--json",
        home=home,
    )  # fmt: skip
    assert result.code == 0, result
    shown = json.loads(result.out[result.out.index("{") :])
    assert shown["lifecycle"] == "on-demand" and shown["type"] == "t3.micro"
    assert [i.get("InstanceLifecycle", "on-demand") for i in live_instances(sandbox, "od")] == ["on-demand"]


def test_an_error_that_is_not_about_capacity_stops_with_its_own_message(ctx, sandbox_reset):
    plan = ctx.cloud.plan_launch("badimage", type="t3.micro", spot=True)
    with pytest.raises(NotFound) as caught:
        ctx.cloud.launch(replace(plan, image_id="ami-0000000000dead000"), types=["t3.small"], on_demand_fallback=True)
    assert not isinstance(caught.value, NoCapacity) and "capacity" not in str(caught.value).lower()
    assert "No image named 'ami-0000000000dead000'" in str(caught.value) and "InvalidAMIID.NotFound" in str(caught.value)
    assert live_instances(sandbox_reset, "badimage") == []


def test_check_sends_the_create_fleet_call_with_dry_run_and_launches_nothing(ctx, sandbox_reset):
    fleets = count_calls(ctx, "CreateFleet")
    plan = ctx.cloud.plan_fleet(ctx.cloud.plan_launch("dry", type="t3.micro", spot=True), types=["t3.small"])
    assert ctx.cloud.check(plan) is True
    assert [c.get("DryRun") for c in fleets] == [True]
    assert fleets[0]["LaunchTemplateConfigs"][0]["Overrides"] == plan.overrides()
    assert live_instances(sandbox_reset, "dry") == [] and ec2kit_templates(sandbox_reset) == []


def test_inv_launch_check_names_create_fleet_and_launches_nothing(sandbox_reset):
    result = run_inv(
        "launch", "dry2", "--spot", "--type", "t3.micro", "--types", "t3.small", "--check", home=sandbox_reset.settings.home
    )
    assert result.code == 0, result
    assert "ec2.create_fleet with DryRun: would succeed" in result.out and "t3.small in us-east-1a, us-east-1b" in result.out
    assert live_instances(sandbox_reset, "dry2") == []


def test_a_recipe_launch_task_in_check_mode_dry_runs_create_fleet(sandbox_reset, tmp_path):
    recipe = tmp_path / "gpu.toml"
    recipe.write_text(
        textwrap.dedent(
            """
            description = "launch a spot machine"
            [[step]]
            name = "machine"
            task = "launch"
            instance = "rc1"
            spot = true
            type = "t3.micro"
            types = ["t3.small"]
            """
        )
    )
    result = run_inv("recipe", str(recipe), "--check", home=sandbox_reset.settings.home)
    assert result.code == 0, result
    assert "ec2.create_fleet (DryRun: would succeed)" in result.out
    assert live_instances(sandbox_reset, "rc1") == []


# quotas -----------------------------------------------------------------------------------------
def test_a_gpu_launch_past_its_quota_stops_before_any_paid_call_with_the_g_and_vt_quota(sandbox_reset):
    sandbox, home = sandbox_reset, sandbox_reset.settings.home
    sb.set_quota(sandbox.info, G_ON_DEMAND, 0)
    result = run_inv("launch", "gpu1", "--type", "g5.xlarge", "--no-wait", home=home)
    assert_clean_error(
        result,
        "'Running On-Demand G and VT instances' (L-DB2E81BA)",
        "its limit is 0 vCPUs",
        "0 are in use",
        "this launch needs 4 (g5.xlarge)",
        "aws service-quotas request-service-quota-increase --service-code ec2 --quota-code L-DB2E81BA --desired-value 4 --region us-east-1",
    )
    assert "Standard" not in result.text
    assert live_instances(sandbox, "gpu1") == []
    assert sandbox.ec2.describe_key_pairs()["KeyPairs"] == []  # stopped before anything was set up


def test_a_spot_gpu_launch_counts_running_spot_vcpus_against_the_spot_quota(ctx, sandbox_reset):
    sb.set_quota(sandbox_reset.info, G_SPOT, 8)
    ctx.cloud.launch("g-a", type="g5.xlarge", spot=True)  # 4 of 8
    fleets = count_calls(ctx, "CreateFleet")
    ctx.cloud.launch("g-b", type="g5.xlarge", spot=True)  # 8 of 8
    with pytest.raises(QuotaExceeded) as caught:
        ctx.cloud.launch("g-c", type="g5.xlarge", spot=True)
    text = str(caught.value)
    assert "'All G and VT Spot Instance Requests' (L-3819A6DF)" in text and "8 are in use" in text
    assert "--quota-code L-3819A6DF --desired-value 12 --region us-east-1" in text
    assert len(fleets) == 1  # the third launch made no fleet call


def test_a_batch_asks_the_fleet_only_for_as_many_instances_as_the_vcpu_quota_lets_run(ctx, sandbox_reset):
    sb.set_quota(sandbox_reset.info, G_SPOT, 12)
    ctx.cloud.launch("g-busy", type="g5.xlarge", spot=True)  # 4 of 12 in use: room for 2 more of 4 vCPUs
    fleets = count_calls(ctx, "CreateFleet")
    said: list[str] = []
    plan = ctx.cloud.plan_launch("g-batch", type="g5.xlarge", spot=True)
    got = ctx.cloud.launch_many(plan, 5, progress=said.append)
    assert len(got) == 2 and len(fleets) == 1
    assert fleets[0]["TargetCapacitySpecification"]["TotalTargetCapacity"] == 2
    assert any("the vCPU quota lets 2 of 5 instances run now" in line for line in said), said


def test_a_type_over_its_quota_is_left_out_of_the_fleet_and_another_type_launches(ctx, sandbox_reset):
    sb.set_quota(sandbox_reset.info, G_SPOT, 0)
    fleets = count_calls(ctx, "CreateFleet")
    inst = ctx.cloud.launch("mixed", type="g5.xlarge", types=["t3.micro"], spot=True)
    assert inst.type == "t3.micro"
    assert {o["InstanceType"] for o in fleets[0]["LaunchTemplateConfigs"][0]["Overrides"]} == {"t3.micro"}


def test_a_command_reads_each_quota_once_and_running_instances_once_per_launch(ctx, sandbox_reset):
    read: list[str] = []
    quotas = ctx.cloud.client("service-quotas")
    quotas.meta.events.register(
        "before-parameter-build.service-quotas.GetServiceQuota", lambda **kw: read.append(kw["params"]["QuotaCode"])
    )
    ctx.cloud.launch("q1", type="t3.micro", types=["t3.small", "g5.xlarge"], spot=True, on_demand_fallback=True)
    described = count_calls(ctx, "DescribeInstances")
    ctx.cloud.launch("q2", type="g5.xlarge", types=["t3.micro"], spot=True)
    assert sorted(read) == sorted(["L-34B43A08", G_SPOT, "L-1216C47A", G_ON_DEMAND])  # each once, for both launches
    # the name check, then the quota usage, then the name claimed (one launch of q2 at a time keeps the name)
    assert len([c for c in described if not c.get("InstanceIds")]) <= 3


def test_when_quotas_cannot_be_read_the_launch_goes_ahead(ctx, sandbox_reset):
    sb.deny_quota_access(sandbox_reset.info)
    inst = ctx.cloud.launch("noread", type="g5.xlarge")  # G quota 0 by default, but nothing enforces it
    assert inst.state == "running" and inst.type == "g5.xlarge"


def test_vcpu_limit_exceeded_from_aws_names_the_quota_of_the_right_family(ctx, sandbox_reset):
    sb.set_quota(sandbox_reset.info, G_ON_DEMAND, 4)
    sb.deny_quota_access(sandbox_reset.info)  # ec2kit cannot look first: AWS refuses the launch
    ctx.cloud.launch("g-one", type="g5.xlarge")
    with pytest.raises(QuotaExceeded) as caught:
        ctx.cloud.launch("g-two", type="g5.xlarge")
    text = str(caught.value)
    assert "'Running On-Demand G and VT instances' (L-DB2E81BA)" in text and "VcpuLimitExceeded" in text
    assert "its limit is 4 vCPUs" in text and "4 are in use" in text and "Standard" not in text
    assert "--quota-code L-DB2E81BA --desired-value 8 --region us-east-1" in text
    assert live_instances(sandbox_reset, "g-two") == []


def test_max_spot_instance_count_exceeded_is_a_quota_not_capacity(ctx, sandbox_reset):
    sb.set_quota(sandbox_reset.info, G_SPOT, 0)
    sb.deny_quota_access(sandbox_reset.info)
    with pytest.raises(QuotaExceeded) as caught:
        ctx.cloud.launch("g-spot", type="g5.xlarge", spot=True, on_demand_fallback=True)
    text = str(caught.value)
    assert "'All G and VT Spot Instance Requests' (L-3819A6DF)" in text and "MaxSpotInstanceCountExceeded" in text
    assert "capacity" not in text.lower()
    assert live_instances(sandbox_reset, "g-spot") == []  # no on-demand fallback either: not a capacity error


# spot-run -----------------------------------------------------------------------------------------
def job(tmp_path: Path, body: str) -> str:
    path = tmp_path / "job.sh"
    path.write_text("#!/bin/bash\n" + textwrap.dedent(body))
    return str(path)


def run_options(tmp_path: Path, script: str, name: str, lines: list[str], **kw) -> SpotRunOptions:
    return SpotRunOptions(
        script=script, name=name, results=str(tmp_path / "results"), out=lines.append, say=lines.append, **{**FAST, **kw}
    )


def test_spot_run_records_the_type_and_zone_the_fleet_obtained(ctx, sandbox_reset, tmp_path):
    empty(sandbox_reset, "t3.micro")
    fleets = count_calls(ctx, "CreateFleet")
    lines: list[str] = []
    script = job(tmp_path, 'echo "$HOSTNAME" > "$EC2KIT_RESULTS/done.txt"\n')
    rec = spot_run(ctx, run_options(tmp_path, script, "fleet-run", lines, type="t3.micro", types=["t3.small"]))
    assert rec.state == "succeeded", lines
    assert rec.instance_type == "t3.small" and rec.zone and rec.zone.startswith("us-east-1")
    assert rec.options["market"] == "spot" and len(fleets) == 1 and rec.hourly_price is not None
    assert any("got spot t3.small in " + rec.zone in line for line in lines), lines
    assert (tmp_path / "results" / "done.txt").exists()


def test_spot_run_says_quota_not_capacity_and_tries_nothing_else(ctx, sandbox_reset, tmp_path):
    sb.set_quota(sandbox_reset.info, G_SPOT, 0)
    sb.deny_quota_access(sandbox_reset.info)
    lines: list[str] = []
    with pytest.raises(QuotaExceeded, match="All G and VT Spot Instance Requests"):
        spot_run(ctx, run_options(tmp_path, job(tmp_path, "true\n"), "quota-run", lines, type="g5.xlarge", types=["g6.xlarge"]))
    assert not [line for line in lines if "capacity" in line.lower() or "next type" in line], lines


def test_spot_run_recovers_from_an_interruption_through_the_same_fleet_call(ctx, sandbox_reset, tmp_path):
    import threading

    from cli_helpers import wait_for

    from ec2kit.runs import Runs

    fleets = count_calls(ctx, "CreateFleet")
    lines: list[str] = []
    script = job(
        tmp_path,
        """
        echo "$EC2KIT_ATTEMPT" >> "$EC2KIT_RESULTS/attempts.txt"
        if [ "$EC2KIT_ATTEMPT" = 1 ]; then sleep 60; fi
        """,
    )

    def interrupt_once_running() -> None:
        rec = wait_for(lambda: (r := Runs(sandbox_reset.settings.runs_db).find("int-fleet")) and r.state == "running" and r, 60)
        wait_for(lambda: (tmp_path / "results" / "attempts.txt").exists(), 30, "the first attempt's results")
        sb.interrupt(sandbox_reset.settings, rec.instance_id, delay=1.0)

    thread = threading.Thread(target=interrupt_once_running, daemon=True)
    thread.start()
    opts = run_options(tmp_path, script, "int-fleet", lines, type="t3.micro", types=["t3.small"], retries=1)
    rec = spot_run(ctx, opts)
    thread.join(5)
    assert rec.state == "succeeded" and rec.attempt == 2, lines
    assert len(fleets) == 2 and all(c["Type"] == "instant" for c in fleets)
    for call in fleets:  # every attempt offers AWS every type, not the next one in a home-made loop
        assert {o["InstanceType"] for o in call["LaunchTemplateConfigs"][0]["Overrides"]} == {"t3.micro", "t3.small"}
    tagged = sandbox_reset.ec2.describe_instances(Filters=[{"Name": f"tag:{RUN_TAG}", "Values": ["int-fleet"]}])
    assert len([i for r in tagged["Reservations"] for i in r["Instances"]]) == 2


def test_spot_run_with_no_capacity_anywhere_fails_cleanly_naming_the_pools(ctx, sandbox_reset, tmp_path):
    empty(sandbox_reset, "t3.micro")
    lines: list[str] = []
    with pytest.raises(NoCapacity, match="t3.micro in us-east-1a"):
        spot_run(ctx, run_options(tmp_path, job(tmp_path, "true\n"), "nocap-run", lines, type="t3.micro"))
    from ec2kit.runs import Runs

    assert Runs(sandbox_reset.settings.runs_db).get("nocap-run").state == "failed"
    assert live_instances(sandbox_reset, "nocap-run") == []
