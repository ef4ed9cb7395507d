"""GPUs by name end to end on the sandbox: `inv gpus`, and --gpus / --gpu-memory on launch, spot-run and sweep."""

from __future__ import annotations

import json

import pytest
from cli_helpers import assert_clean_error, run_inv


def calls(sandbox) -> list[str]:
    """Every API call made to the sandbox so far by anyone but the daemon (its request log)."""
    path = sandbox.info.dir / "requests.log"
    return path.read_text().splitlines() if path.exists() else []


def launched_type(home, name: str) -> str:
    result = run_inv("instances", "--json", home=home)
    assert result.code == 0, result
    [inst] = [i for i in json.loads(result.out) if i["name"] == name and i["state"] == "running"]
    return inst["type"]


@pytest.fixture
def launch(sandbox):
    """``launch("name", "--gpus", "A10G")``: `inv launch` in the sandbox; every instance is terminated afterwards."""
    home, made = sandbox.settings.home, []

    def run(name: str, *args: str):
        made.append(name)
        return run_inv("launch", name, *args, home=home)

    yield run
    for name in made:
        run_inv("terminate", name, home=home)


def test_gpus_lists_the_sandbox_region_s_types_from_gpu_info_and_a_second_listing_asks_no_describe(sandbox):
    home = sandbox.settings.home
    (home / "gpu-types.json").unlink(missing_ok=True)
    before = len(calls(sandbox))
    first = run_inv("gpus", "--json", home=home)
    assert first.code == 0, first
    first_calls = calls(sandbox)[before:]
    assert first_calls.count("DescribeInstanceTypes") >= 1 and "DescribeInstanceTypeOfferings" in first_calls
    rows = {r["type"]: r for r in json.loads(first.out)}
    assert (rows["g5.xlarge"]["model"], rows["g5.xlarge"]["count"], rows["g5.xlarge"]["gpu_memory_gb"]) == ("A10G", 1, 24)
    assert (rows["g6.xlarge"]["model"], rows["g6.xlarge"]["gpu_memory_gb"]) == ("L4", 24)
    assert (rows["p4d.24xlarge"]["model"], rows["p4d.24xlarge"]["count"], rows["p4d.24xlarge"]["gpu_memory_gb"]) == (
        "A100",
        8,
        40,
    )
    assert (rows["p3.2xlarge"]["model"], rows["p3.2xlarge"]["gpu_memory_gb"]) == ("V100", 16)  # taught: moto lacks p3
    assert (rows["g4dn.xlarge"]["model"], rows["g4dn.xlarge"]["gpu_memory_gb"]) == ("T4", 16)
    assert rows["g6e.xlarge"]["model"] == "L40S" and rows["p5.48xlarge"]["model"] == "H100"
    assert not {"m5.large", "t3.medium", "c5.xlarge"} & set(rows)  # no GpuInfo, no row
    assert all(r["spot"] is not None and r["vcpus"] > 0 and r["memory_gib"] > 0 for r in rows.values())
    assert (rows["g5.xlarge"]["on_demand"], rows["g6.xlarge"]["on_demand"]) == (1.006, 0.8048)  # the sandbox's price list
    assert "no Pricing API" not in first.err
    stamp = (home / "gpu-types.json").stat().st_mtime_ns

    before = len(calls(sandbox))
    second = run_inv("gpus", "--model", "a10g", home=home)
    assert second.code == 0, second
    second_calls = calls(sandbox)[before:]
    assert "DescribeInstanceTypes" not in second_calls and "DescribeInstanceTypeOfferings" not in second_calls, second_calls
    assert "DescribeSpotPriceHistory" in second_calls  # the current spot price is asked each time
    assert (home / "gpu-types.json").stat().st_mtime_ns == stamp
    table = second.out.splitlines()
    assert any(line.startswith("g5.xlarge ") and "A10G" in line and "24GB" in line for line in table), second.out
    assert not any(line.startswith("g6.") for line in table)


def test_gpus_with_an_unknown_model_lists_the_models_offered(sandbox):
    result = run_inv("gpus", "--model", "H300", home=sandbox.settings.home)
    assert_clean_error(result, "'H300'", "Models offered:", "A10G", "L4", "A100", "V100")


def test_launch_gpus_a10g_gets_a_g5_and_l4_a_g6(sandbox, launch):
    home = sandbox.settings.home
    a10g = launch("gpu-a10g", "--gpus", "A10G")
    assert a10g.code == 0, a10g
    assert "gpu image because g5.xlarge has an NVIDIA A10G" in a10g.text, a10g
    assert launched_type(home, "gpu-a10g") == "g5.xlarge"
    l4 = launch("gpu-l4", "--gpus", "l4:1")
    assert l4.code == 0, l4
    assert "GPUs 1× L4: g6.xlarge" in l4.text
    assert launched_type(home, "gpu-l4") == "g6.xlarge"


def test_launch_gpus_a100_times_8_gets_a_p4d_24xlarge(sandbox, launch):
    result = launch("gpu-a100", "--gpus", "A100:8", "--yes")  # $32/h: above confirm_above
    assert result.code == 0, result
    assert launched_type(sandbox.settings.home, "gpu-a100") == "p4d.24xlarge"


def test_launch_gpu_memory_alone_picks_a_one_gpu_type_with_enough_memory(sandbox, launch):
    result = launch("gpu-mem", "--gpu-memory", "24GB", "--json")
    assert result.code == 0, result
    assert launched_type(sandbox.settings.home, "gpu-mem") in {"g5.xlarge", "g6.xlarge"}


def test_spot_launch_with_gpus_offers_every_fitting_type_to_one_fleet(sandbox):
    result = run_inv("launch", "gpu-spot", "--gpus", "A10G", "--spot", "--check", home=sandbox.settings.home)
    assert result.code == 0, result
    pools = [line.split()[0] for line in result.out.splitlines() if line.startswith("  ")]
    assert pools == ["g5.xlarge", "g5.2xlarge", "g5.4xlarge", "g5.8xlarge", "g5.16xlarge"], result.out
    assert "ec2.create_fleet with DryRun: would succeed" in result.out


def test_either_of_two_gpu_models_launches_the_cheaper_and_a_spot_fleet_gets_both(sandbox, launch):
    home = sandbox.settings.home
    either = launch("gpu-either", "--gpus", "a10g,L4")
    assert either.code == 0, either
    assert "GPUs 1× A10G or L4: g6.xlarge" in either.text, either  # L4's g6.xlarge is cheaper than A10G's g5.xlarge
    assert launched_type(home, "gpu-either") == "g6.xlarge"
    fleet = run_inv("launch", "gpu-either-spot", "--gpus", "L4,A10G", "--spot", "--check", home=home)
    assert fleet.code == 0, fleet
    pools = [line.split()[0] for line in fleet.out.splitlines() if line.startswith("  ")]
    assert {"g5.xlarge", "g6.xlarge"} <= set(pools) and all(p.startswith(("g5.", "g6.")) for p in pools), fleet.out
    unknown = run_inv("launch", "gpu-either-bad", "--gpus", "A10G,H300", home=home)
    assert unknown.code != 0 and "--gpus H300" in unknown.err and "Traceback" not in unknown.err, unknown


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["launch", "gpu-bad", "--gpus", "A10G:0"], ["--gpus A10G:0", "at least 1"]),
        (["launch", "gpu-bad", "--gpus", "A10G:x"], ["--gpus A10G:x", "MODEL[,MODEL…][:COUNT]"]),
        (["launch", "gpu-bad", "--gpu-memory", "abc"], ["--gpu-memory abc", "24GB"]),
        (["launch", "gpu-bad", "--gpus", "A10G", "--type", "g5.2xlarge"], ["--gpus", "drop --type"]),
        (["spot-run", "--script", "x.sh", "--gpus", "A10G:0"], ["--gpus A10G:0"]),
        (["sweep", "--script", "x.sh", "--grid", "lr=1", "--gpu-memory", "lots"], ["--gpu-memory lots"]),
    ],
)
def test_bad_gpu_input_fails_before_any_aws_call(sandbox, args, needles):
    before = len(calls(sandbox))
    result = run_inv(*args, home=sandbox.settings.home)
    assert_clean_error(result, *needles)
    assert calls(sandbox)[before:] == []  # not even a describe: nothing was launched


def test_launch_with_an_unknown_gpu_model_lists_the_models_and_launches_nothing(sandbox):
    before = len(calls(sandbox))
    result = run_inv("launch", "gpu-nope", "--gpus", "A10:1", home=sandbox.settings.home)
    assert_clean_error(result, "--gpus A10", "Models offered:", "A10G", "L4", "T4")
    assert not {"RunInstances", "CreateFleet"} & set(calls(sandbox)[before:])


def test_spot_run_with_gpus_runs_on_a_type_of_that_gpu(sandbox, tmp_path):
    script = tmp_path / "gpu.sh"
    script.write_text("#!/bin/bash\nmkdir -p results && echo ok > results/done.txt\n")
    result = run_inv(
        "spot-run", "--script", str(script), "--gpus", "T4", "--name", "gpu-run", "--json",
        "--results", str(tmp_path / "out"), home=sandbox.settings.home, cwd=tmp_path, timeout=240,
    )  # fmt: skip
    assert result.code == 0, result
    start = 0 if result.out.startswith("{") else result.out.index("\n{") + 1  # the log's lines come first
    record = json.loads(result.out[start : result.out.rindex("}") + 1])
    assert record["instance_type"] == "g4dn.xlarge", record
    assert record["options"]["types"] == ["g4dn.2xlarge", "g4dn.4xlarge", "g4dn.8xlarge", "g4dn.16xlarge"]
    assert (tmp_path / "out" / "done.txt").read_text() == "ok\n"


def test_prices_has_a_gpu_column_from_gpu_info(sandbox):
    result = run_inv("prices", "g5", "--json", home=sandbox.settings.home)
    assert result.code == 0, result
    rows = json.loads(result.out)
    assert rows["g5.xlarge"]["gpu"] == "1× A10G 24GB" and rows["g5.48xlarge"]["gpu"] == "8× A10G 24GB"
    plain = run_inv("prices", "m5", "--json", home=sandbox.settings.home)
    assert plain.code == 0 and {r["gpu"] for r in json.loads(plain.out).values()} == {""}, plain


def test_sweep_with_gpus_asks_one_fleet_over_every_fitting_type(sandbox, tmp_path):
    (tmp_path / "train.sh").write_text("#!/bin/bash\nmkdir -p results && echo loss,1 > results/metrics.csv\n")
    result = run_inv(
        "sweep", "--script", "train.sh", "--grid", "lr=1", "--parallel", "1", "--gpus", "T4", "--json",
        home=sandbox.settings.home, cwd=tmp_path, timeout=240,
    )  # fmt: skip
    assert result.code == 0, result
    assert "EC2 Fleet for 1 spot instance(s) (g4dn.xlarge, g4dn.2xlarge, g4dn.4xlarge, g4dn.8xlarge, g4dn.16xlarge)" in result.err
    done = json.loads(result.out[result.out.index("{") : result.out.rindex("}") + 1])
    assert (done["sweep"]["options"]["type"], done["sweep"]["options"]["types"][-1]) == ("g4dn.xlarge", "g4dn.16xlarge")
    assert [row["instance_type"] for row in done["rows"]] == ["g4dn.xlarge"]
