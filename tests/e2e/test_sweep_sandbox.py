"""Sweeps end to end on the sandbox: EC2 Fleet batches, reuse, an interruption, a failing run, --max-cost,
Ctrl-C, detach and settle."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from aws_helpers import count_calls
from cli_helpers import ROOT, interruptible, run_inv
from cli_helpers import wait_for as wait_until
from pty_helpers import answer_on_terminal, inv_argv

from ec2kit.context import Context
from ec2kit.errors import WrongState
from ec2kit.runs import Runs
from ec2kit.spotrun import logs, pull
from ec2kit.sweep import SweepOptions, prepare, run
from ec2kit.sweep.records import SWEEP_TAG, Sweeps

FAST = dict(pull_interval=0.5, poll_interval=0.3, notice_poll=0.5, pull_wait=15)
LIVE = ["pending", "running", "stopping", "stopped", "shutting-down"]


@pytest.fixture
def ctx(sandbox):
    with Context(sandbox.settings, quiet=True) as c:
        yield c


def script(tmp_path: Path, text: str, name: str = "train.sh") -> str:
    path = tmp_path / name
    path.write_text("#!/bin/bash\n" + textwrap.dedent(text))
    return str(path)


def sweep_instances(sandbox, sweep: str) -> list[str]:
    """Live instances of the sweep (by its ec2kit:sweep tag)."""
    found = sandbox.ec2.describe_instances(
        Filters=[{"Name": f"tag:{SWEEP_TAG}", "Values": [sweep]}, {"Name": "instance-state-name", "Values": LIVE}]
    )
    return [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]


def fleets_of(sandbox, sweep: str) -> list[dict]:
    """The sandbox's CreateFleet record for this sweep: one fleet per call, with the capacity it asked for."""
    fleets = sandbox.ec2.describe_fleets()["Fleets"]
    return [f for f in fleets if {"Key": SWEEP_TAG, "Value": sweep} in (f.get("Tags") or [])]


def summary(results: Path, sweep: str) -> list[dict]:
    with open(results / sweep / "summary.csv") as f:
        return list(csv.DictReader(f))


def test_launch_many_asks_one_create_fleet_call_for_the_whole_batch(ctx, sandbox):
    fleet_calls = count_calls(ctx.cloud, "CreateFleet")
    plan = ctx.cloud.plan_launch("batch3", type="t3.micro", spot=True, tags={SWEEP_TAG: "batch3"})
    got = ctx.cloud.launch_many(plan, 3, types=["t3.small"])
    try:
        assert len(fleet_calls) == 1 and fleet_calls[0]["TargetCapacitySpecification"]["TotalTargetCapacity"] == 3
        assert len({i.id for i in got}) == 3 and all(i.state == "running" and i.lifecycle == "spot" for i in got)
        assert sorted(sweep_instances(sandbox, "batch3")) == sorted(i.id for i in got)
    finally:
        for inst in got:
            ctx.cloud.terminate(inst.id)
    assert sweep_instances(sandbox, "batch3") == []


def test_a_six_run_grid_on_three_instances_survives_an_interruption_and_a_failing_run(ctx, sandbox, tmp_path):
    from ec2kit import sandbox as sb

    s = script(
        tmp_path,
        """\
        if [ "$LR" = 0.001 ] && [ "$SEED" = 2 ]; then echo "diverged" >&2; exit 3; fi
        export TRAIN_STEPS=16 TRAIN_STEP_SECONDS=0.3
        [ "$LR" = 0.1 ] && [ "$SEED" = 1 ] && export TRAIN_STEPS=30  # the run to interrupt: long enough to be mid-run
        exec python3 train.py
    """,
    )
    results = tmp_path / "runs"
    said: list[str] = []
    opts = SweepOptions(
        script=s,
        files=str(ROOT / "examples" / "train.py"),
        grid=["lr=0.1,0.01,0.001", "seed=1,2"],
        name="sw6",
        parallel=3,
        retries=1,
        type="t3.micro",
        results=str(results),
        objective="loss",
        say=said.append,
        **FAST,
    )
    fleet_calls = count_calls(ctx.cloud, "CreateFleet")
    record, plan = prepare(ctx, opts)
    interrupted: dict = {}

    def interrupt_mid_run() -> None:
        checkpoint = results / "sw6" / "sw6-01" / "checkpoint.json"

        def step() -> int:
            try:
                return json.loads(checkpoint.read_text())["step"]
            except (OSError, ValueError, KeyError):
                return 0

        wait_until(lambda: step() >= 3, 90, "a pulled checkpoint of sw6-01")
        rec = Runs(sandbox.settings.runs_db).get("sw6-01")
        assert rec.state == "running", rec  # still mid-run: its instance serves no other run yet
        interrupted.update(step=step(), instance=rec.instance_id)
        sb.interrupt(sandbox.settings, rec.instance_id, delay=1.0)

    thread = threading.Thread(target=interrupt_mid_run, daemon=True)
    thread.start()
    final = run(ctx, opts, record, plan)
    thread.join(5)
    print("\n".join(said))  # shown whole when the test fails (an assertion's message is cut)
    runs = {r.name: r for r in Runs(sandbox.settings.runs_db).all() if r.options.get("sweep") == "sw6"}

    assert interrupted, said
    assert final.state == "failed", said  # one run failed: the sweep says not all succeeded
    states = {name: r.state for name, r in runs.items()}
    notes = {name: r.options.get("note") for name, r in runs.items() if r.options.get("note")}
    said.append(f"notes: {notes}")
    assert states == {f"sw6-0{i}": "succeeded" for i in (1, 2, 3, 4, 5)} | {"sw6-06": "failed"}, said
    assert runs["sw6-06"].exit_code == 3 and runs["sw6-01"].attempt == 2
    resumed = json.loads((results / "sw6" / "sw6-01" / "final.json").read_text())
    assert resumed["attempts"] == [1, 2] and resumed["steps"] == 30
    steps = [int(l.split(",")[0]) for l in (results / "sw6" / "sw6-01" / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 31)), "a checkpointed step was lost or repeated"
    assert runs["sw6-02"].options["env"] == {"LR": "0.1", "SEED": "2", "EC2KIT_SWEEP": "sw6"}

    # one CreateFleet per batch: the first asks for all three places at once, the interruption's replacement for one
    assert fleet_calls[0]["TargetCapacitySpecification"]["TotalTargetCapacity"] == 3
    assert (
        fleet_calls[0]["Type"] == "instant" and fleet_calls[0]["SpotOptions"]["AllocationStrategy"] == "price-capacity-optimized"
    )
    assert len(fleet_calls) == final.fleet_calls == len(fleets_of(sandbox, "sw6")) >= 2
    assert final.launched == sum(c["TargetCapacitySpecification"]["TotalTargetCapacity"] for c in fleet_calls) < 6
    assert final.reused >= 2  # instances took the next run instead of a new launch
    assert final.launched <= 4  # three, and at most one replacement for the interrupted instance
    assert not [m for m in said if "went away" in m and "sw6-01" not in m], said  # no reused instance powered itself off
    assert sweep_instances(sandbox, "sw6") == []

    rows = summary(results, "sw6")
    assert [r["run"] for r in rows][-1] == "sw6-06"  # no loss: sorted last
    losses = [float(r["loss"]) for r in rows if r["loss"]]
    assert losses == sorted(losses) and len(losses) == 5
    by_run = {r["run"]: r for r in rows}
    assert by_run["sw6-06"]["state"] == "failed" and by_run["sw6-06"]["exit_code"] == "3"
    assert (by_run["sw6-03"]["lr"], by_run["sw6-03"]["seed"], by_run["sw6-03"]["state"]) == ("0.01", "1", "succeeded")
    assert by_run["sw6-01"]["attempts"] == "2" and by_run["sw6-01"]["cost_usd"]
    # a finished run of the sweep is read from home, not from the instance that went on to other runs
    lines: list[str] = []
    logs(ctx, "sw6-02", out=lines.append)
    assert any("attempt 1 of run sw6-02 started" in l for l in lines), lines
    with pytest.raises(WrongState, match="pulled into"):
        pull(ctx, "sw6-02")
    print(f"\nsweep sw6: {final.fleet_calls} CreateFleet calls, {final.launched} instances, {final.reused} reuses")


def test_max_cost_launches_what_fits_and_starts_no_more_runs(ctx, sandbox, tmp_path):
    from ec2kit.sandbox.moto.pricelist import spot_price

    s = script(tmp_path, 'echo "$LR" > "$EC2KIT_RESULTS/lr.txt"\n')
    said: list[str] = []
    dearest = max(p for z in "abcdf" if (p := spot_price("t3.micro", f"us-east-1{z}")) is not None)  # 0.0104 × 0.40
    opts = SweepOptions(
        script=s,
        grid=["lr=1,2,3"],
        name="swcost",
        parallel=3,
        type="t3.micro",
        results=str(tmp_path / "runs"),
        max_cost=2.5 * dearest,  # an hour of two instances fits, of a third would pass it
        say=said.append,
        **FAST,
    )
    fleet_calls = count_calls(ctx.cloud, "CreateFleet")
    record, plan = prepare(ctx, opts)
    assert opts.price_estimate == pytest.approx(dearest)
    final = run(ctx, opts, record, plan)
    assert [c["TargetCapacitySpecification"]["TotalTargetCapacity"] for c in fleet_calls] == [2]
    outcomes = {r["name"]: r["outcome"] for r in final.runs}
    assert outcomes == {"swcost-01": "succeeded", "swcost-02": "succeeded", "swcost-03": "skipped"}, said
    assert any(f"--max-cost ${2.5 * dearest:g}" in m and "starting no more runs (1 left unstarted)" in m for m in said), said
    assert final.state == "failed" and "--max-cost" in final.note
    assert Runs(sandbox.settings.runs_db).find("swcost-03") is None
    assert {r["run"]: r["state"] for r in summary(tmp_path / "runs", "swcost")}["swcost-03"] == "skipped"
    assert sweep_instances(sandbox, "swcost") == []


def test_no_capacity_in_any_pool_skips_the_runs_and_says_why(sandbox_reset, tmp_path):
    from ec2kit import sandbox as sb

    with Context(sandbox_reset.settings, quiet=True) as c:
        for zone in c.cloud._zones():
            sb.set_capacity(sandbox_reset.settings, "t3.micro", zone, available=False)
        said: list[str] = []
        opts = SweepOptions(
            script=script(tmp_path, "true\n"), grid=["seed=1,2"], name="swnocap", parallel=2, type="t3.micro",
            results=str(tmp_path / "runs"), say=said.append, **FAST,
        )  # fmt: skip
        record, plan = prepare(c, opts)
        final = run(c, opts, record, plan)
    assert final.state == "failed" and final.fleet_calls == 1 and final.launched == 0, said
    assert [r["outcome"] for r in final.runs] == ["skipped", "skipped"]
    assert "no instance could be launched" in final.note and "capacity" in final.note, final.note
    assert sweep_instances(sandbox_reset, "swnocap") == []


def inv_process(sandbox, tmp_path: Path, *args: str) -> subprocess.Popen:
    """`inv ARGS` as a user runs it (its own process group), output in tmp_path/out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(EC2KIT_SANDBOX="1", EC2KIT_HOME=str(sandbox.settings.home), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    out = open(tmp_path / "out", "w")
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
        cwd=tmp_path,
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        preexec_fn=interruptible,
    )


@pytest.mark.parametrize("to", ["process", "group"])
def test_ctrl_c_stops_the_whole_sweep_pulls_every_result_and_leaves_no_instance(sandbox, tmp_path, to):
    name = f"swint-{to}"
    s = script(tmp_path, 'echo "early $LR" > "$EC2KIT_RESULTS/early.txt"\nsleep 120\n')
    proc = inv_process(
        sandbox,
        tmp_path,
        "sweep",
        "--script",
        s,
        "--grid",
        "lr=1,2,3",
        "--parallel",
        "2",
        "--type",
        "t3.micro",
        "--name",
        name,
    )
    results = tmp_path / "runs" / name
    try:
        wait_until(lambda: (results / f"{name}-01" / "early.txt").exists() or proc.poll() is not None, 120, "a pulled result")
        assert proc.poll() is None, (tmp_path / "out").read_text()
        assert len(sweep_instances(sandbox, name)) == 2
        if to == "group":
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground group, ssh and rsync too
        else:
            proc.send_signal(signal.SIGINT)
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = (tmp_path / "out").read_text()
    assert code == 130 and "Traceback" not in out, out
    assert sweep_instances(sandbox, name) == [], out
    assert (results / f"{name}-01" / "early.txt").read_text() == "early 1\n"
    wait_until(
        lambda: (results / f"{name}-02" / "early.txt").exists(), 5, "the other started run's result"
    )  # pulled before release
    record = Sweeps(sandbox.settings.home).get(name)
    assert record.state == "cancelled" and [r["outcome"] for r in record.runs] == ["cancelled", "cancelled", "cancelled"]
    states = {r.name: r.state for r in Runs(sandbox.settings.runs_db).all() if r.options.get("sweep") == name}
    assert states == {f"{name}-01": "cancelled", f"{name}-02": "cancelled"}
    assert len(fleets_of(sandbox, name)) == 1


def test_a_detached_sweep_runs_on_its_own_and_inv_sweeps_settles_it_when_its_process_dies(sandbox, tmp_path):
    quick = script(tmp_path, 'echo "$SEED" > "$EC2KIT_RESULTS/seed.txt"\n', name="quick.sh")
    home = sandbox.settings.home
    started = run_inv(
        "sweep", "--script", quick, "--grid", "seed=1,2", "--parallel", "2", "--type", "t3.micro", "--name", "swdet",
        "--detach", home=home, cwd=tmp_path,
    )  # fmt: skip
    assert started.code == 0 and "runs in the background" in started.out, started

    def state(name: str) -> str:
        shown = run_inv("sweeps", "--json", home=home, cwd=tmp_path)
        assert shown.code == 0 and "Traceback" not in shown.text, shown
        return next(s["state"] for s in json.loads(shown.out) if s["name"] == name)

    wait_until(lambda: state("swdet") == "succeeded", 120, "the detached sweep to finish")
    assert (tmp_path / "runs" / "swdet" / "swdet-02" / "seed.txt").read_text() == "2\n"
    shown = run_inv("sweep-status", "swdet", "--json", home=home, cwd=tmp_path)
    assert shown.code == 0 and [r["state"] for r in json.loads(shown.out)["rows"]] == ["succeeded", "succeeded"], shown

    # a detached sweep whose process is killed: `inv sweeps` settles it, `inv pull` and `inv stop-run` take its name
    slow = script(tmp_path, 'echo "$SEED" > "$EC2KIT_RESULTS/seed.txt"\nsleep 300\n', name="slow.sh")
    started = run_inv(
        "sweep", "--script", slow, "--grid", "seed=1,2,3", "--parallel", "2", "--type", "t3.micro", "--name", "swdie",
        "--detach", home=home, cwd=tmp_path,
    )  # fmt: skip
    assert started.code == 0, started
    results = tmp_path / "runs" / "swdie"
    wait_until(
        lambda: (results / "swdie-01" / "seed.txt").exists() and (results / "swdie-02" / "seed.txt").exists(), 120, "both runs"
    )
    pid = Sweeps(home).get("swdie").owner["pid"]
    os.killpg(pid, signal.SIGKILL)  # the sweep's background process dies without cleaning up
    wait_until(
        lambda: not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower(), 10, "death"
    )
    assert state("swdie") == "orphaned"
    record = Sweeps(home).get("swdie")
    assert "is gone" in record.note and "inv pull swdie" in record.note, record
    assert [r["outcome"] for r in record.runs][2] == "skipped"
    assert len(sweep_instances(sandbox, "swdie")) == 2  # the started runs go on, detached
    pulled = run_inv("pull", "swdie", home=home, cwd=tmp_path)
    assert pulled.code == 0 and "Results of sweep swdie" in pulled.out, pulled
    stopped = run_inv("stop-run", "swdie", home=home, cwd=tmp_path)
    assert stopped.code == 0 and "Traceback" not in stopped.text, stopped
    assert sweep_instances(sandbox, "swdie") == []
    assert (tmp_path / "runs" / "swdie" / "summary.csv").exists()


def test_a_sweep_whose_process_was_killed_resumes_only_its_never_started_runs(sandbox, tmp_path):
    """Issue 19 #9: `inv sweep --resume SWEEP` starts the runs the killed sweep never started, with its recorded
    options, and nothing else; a second resume has nothing left to start."""
    body = 'echo "$SEED" > "$EC2KIT_RESULTS/seed.txt"\nif [ "$SEED" != 3 ]; then sleep 300; fi\n'
    slow = script(tmp_path, body, name="resumable.sh")
    home = sandbox.settings.home
    started = run_inv(
        "sweep", "--script", slow, "--grid", "seed=1,2,3", "--parallel", "2", "--type", "t3.micro", "--name", "swres",
        "--detach", home=home, cwd=tmp_path,
    )  # fmt: skip
    assert started.code == 0, started
    results = tmp_path / "runs" / "swres"
    wait_until(
        lambda: (results / "swres-01" / "seed.txt").exists() and (results / "swres-02" / "seed.txt").exists(), 120, "both runs"
    )
    pid = Sweeps(home).get("swres").owner["pid"]
    os.killpg(pid, signal.SIGKILL)
    wait_until(
        lambda: not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower(), 10, "death"
    )
    busy = run_inv("sweep", "--resume", "swres", "--script", slow, home=home, cwd=tmp_path)
    assert busy.code != 0 and "leave out --script" in busy.err and "Traceback" not in busy.text, busy
    stopped = run_inv("stop-run", "swres", home=home, cwd=tmp_path)
    assert stopped.code == 0, stopped
    assert sweep_instances(sandbox, "swres") == []
    fleets_before = len(fleets_of(sandbox, "swres"))
    assert not (results / "swres-03").exists()

    # the estimate and the question of a fresh sweep, for the one run left (t3.micro in its dearest spot pool)
    history = sandbox.ec2.describe_spot_price_history(InstanceTypes=["t3.micro"], ProductDescriptions=["Linux/UNIX"])
    dearest = max(float(p["SpotPrice"]) for p in history["SpotPriceHistory"])
    low = {"EC2KIT_CONFIRM_ABOVE": "0.0001"}
    refused = run_inv("sweep", "--resume", "swres", home=home, cwd=tmp_path, env=low, stdin="")
    assert refused.code != 0 and "Traceback" not in refused.text, refused
    assert f"Expected cost: ${dearest:.4f}/h (t3.micro spot;" in refused.err, refused
    assert f"resuming sweep swres (1 run(s) left, 1 at a time) is expected to cost ${dearest:.4f}/h" in refused.err, refused
    assert "there is no terminal to ask" in refused.err and "--yes" in refused.err, refused
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(EC2KIT_HOME=str(home), EC2KIT_SANDBOX="1", PYTHONPATH=str(ROOT), **low)
    code, lines, asked = answer_on_terminal(inv_argv("sweep", "--resume", "swres"), prompt="Go ahead? [y/N]", answer="n", env=env)
    assert asked and code != 0 and any("was not confirmed" in line for line in lines), lines
    assert len(fleets_of(sandbox, "swres")) == fleets_before and not (results / "swres-03").exists()  # nothing started

    resumed = run_inv("sweep", "--resume", "swres", "--yes", home=home, cwd=tmp_path, env=low)
    assert f"Expected cost: ${dearest:.4f}/h" in resumed.err, resumed  # --yes: shown, not asked
    assert "Traceback" not in resumed.text, resumed
    assert (results / "swres-03" / "seed.txt").read_text() == "3\n", resumed
    record = Sweeps(home).get("swres")
    outcomes = [r["outcome"] for r in record.runs]
    assert outcomes[2] == "succeeded" and outcomes[:2] != ["succeeded", "succeeded"], record
    new_fleets = fleets_of(sandbox, "swres")[fleets_before:]
    assert [f["TargetCapacitySpecification"]["TotalTargetCapacity"] for f in new_fleets] == [1], "only the third run launched"
    assert resumed.code == 3 and "2 of 3 runs did not succeed" in resumed.err, resumed  # the stopped two stay as they were
    assert sweep_instances(sandbox, "swres") == []

    again = run_inv("sweep", "--resume", "swres", home=home, cwd=tmp_path)
    assert again.code != 0 and "no run left to start" in again.err and "Traceback" not in again.text, again
    unknown = run_inv("sweep", "--resume", "swrez", home=home, cwd=tmp_path)
    assert unknown.code != 0 and "Did you mean 'swres'" in unknown.err, unknown
