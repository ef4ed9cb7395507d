"""Spot runs that survive what AWS and the machine throw at them, injected for real on the sandbox.

EC2 throttling (the sandbox answers 503 RequestLimitExceeded for a window), a full instance disk (a
small filesystem as the run's results), SIGTERM / SIGHUP to the `inv spot-run` process, and two pulls
of one run at once. Nothing is mocked: moto's EC2 API, one sshd per instance, tmux, rsync.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from cli_helpers import run_inv
from cli_helpers import wait_for as wait_until
from test_spotrun_attempt import instance_state
from test_spotrun_faults import runs_note
from test_spotrun_sandbox import options, run_resources, script

from ec2kit.context import Context
from ec2kit.runs import Runs
from ec2kit.sandbox import knobs
from ec2kit.spotrun import spot_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ctx(sandbox):
    with Context(sandbox.settings, quiet=True) as c:
        yield c


def record(sandbox, name: str):
    return Runs(sandbox.settings.runs_db).find(name)


def steps_script(tmp_path: Path, steps: int, secs: float) -> str:
    """Writes results/step-N atomically each step (N = 1..steps)."""
    return script(
        tmp_path,
        f"""\
        for i in $(seq 1 {steps}); do
            sleep {secs}; echo "step $i" > "$EC2KIT_RESULTS/.s" && mv "$EC2KIT_RESULTS/.s" "$EC2KIT_RESULTS/step-$i"
        done
    """,
    )


# ------------------------------------------------------------------ EC2 throttling (issue 19 item 2)


def test_throttling_for_longer_than_botocore_retries_never_ends_a_healthy_run(ctx, sandbox, tmp_path):
    events: list[str] = []
    s = steps_script(tmp_path, steps=12, secs=1.0)
    results = tmp_path / "results"
    seen: dict = {}

    def throttle_mid_run() -> None:
        wait_until(lambda: (results / "step-2").exists(), 90, "step 2 at home")
        # From here to well past the script's end: the follower's DescribeInstances and the final
        # TerminateInstances both meet it (botocore gives up after 2 tries in the sandbox).
        knobs.throttle(sandbox.settings, 25)
        seen["started"] = time.monotonic()

    thread = threading.Thread(target=throttle_mid_run, daemon=True)
    thread.start()
    try:
        rec = spot_run(ctx, options(tmp_path, s, "throttled", events))
    finally:
        log = knobs.throttled(sandbox.settings)
        knobs.throttle(sandbox.settings, 0)
    thread.join(5)
    assert rec.state == "succeeded", events
    assert sorted(p.name for p in results.glob("step-*")) == sorted(f"step-{i}" for i in range(1, 13))
    assert "DescribeInstances" in log["refused"], log  # the follower's check met the throttle ...
    released = [a for a in log["refused"] if a in ("CancelSpotInstanceRequests", "TerminateInstances")]
    assert released, log  # ... and so did the release of the instance ...
    assert released[0] in log["passed"], log  # ... which retried until AWS answered
    assert any("EC2 is throttling (RequestLimitExceeded)" in e for e in events), events
    assert run_resources(sandbox, "throttled") == {}
    assert not rec.options.get("leftovers")


RELEASE = ("TerminateInstances", "CancelSpotInstanceRequests")  # AWS throttles by action: only the release's


def test_a_throttled_release_of_an_attached_run_leaves_nothing_billing_the_instance_powers_itself_off(
    ctx, sandbox, tmp_path, monkeypatch
):
    monkeypatch.setenv("EC2KIT_RELEASE_PATIENCE", "3")  # 600 s by default: the same path, shorter
    events: list[str] = []
    s = steps_script(tmp_path, steps=3, secs=0.5)
    knobs.throttle(sandbox.settings, 600, actions=RELEASE)
    try:
        rec = spot_run(ctx, options(tmp_path, s, "stuck", events))
        log = knobs.throttled(sandbox.settings)
    finally:
        knobs.throttle(sandbox.settings, 0)
    assert rec.state == "succeeded", events
    assert sorted(p.name for p in (tmp_path / "results").glob("step-*")) == ["step-1", "step-2", "step-3"]
    assert "CancelSpotInstanceRequests" in log["refused"], log  # the release met the throttle ...
    # ... but once its results were home the wrapper powered the instance off (its shutdown behaviour: terminate)
    wait_until(lambda: run_resources(sandbox, "stuck") == {}, 60, "the instance to power itself off")
    assert instance_state(sandbox, rec.instance_id) in ("shutting-down", "terminated")
    assert not any(rec.instance_id in left for left in rec.options.get("leftovers") or []), (rec.options, events)


def test_a_pull_whose_release_is_throttled_past_its_patience_leaves_a_leftover_that_inv_cleanup_removes(sandbox, tmp_path):
    # A detached (resumable) run's instance belongs to a persistent request and waits for `inv pull`, which
    # terminates it: if AWS refuses that for longer than the patience, the instance stays, recorded.
    name = "stuck-detached"
    s = steps_script(tmp_path, steps=2, secs=0.5)
    started = run_inv(
        "spot-run",
        "--script",
        s,
        "--name",
        name,
        "--type",
        "t3.micro",
        "--detach",
        "--results",
        str(tmp_path / "results"),
        home=sandbox.settings.home,
    )
    assert started.code == 0, started

    def finished() -> bool:  # `inv runs` looks at a detached run's instance (nothing else follows it)
        return run_inv("runs", home=sandbox.settings.home).code == 0 and record(sandbox, name).awaiting_pull

    wait_until(finished, 120, "the detached run to finish")
    instance = record(sandbox, name).instance_id
    knobs.throttle(sandbox.settings, 600, actions=RELEASE)
    try:
        pulled = run_inv("pull", name, home=sandbox.settings.home, env={"EC2KIT_RELEASE_PATIENCE": "3"})
        log = knobs.throttled(sandbox.settings)
    finally:
        knobs.throttle(sandbox.settings, 0)
    assert sorted(p.name for p in (tmp_path / "results").glob("step-*")) == ["step-1", "step-2"]
    assert "TerminateInstances" in log["refused"] and "TerminateInstances" not in log["passed"], log
    assert "Traceback" not in pulled.text and instance in pulled.text and "inv cleanup" in pulled.text, pulled.err
    assert run_resources(sandbox, name).get("instances") == [instance]  # still there, and said
    assert "inv cleanup" in runs_note(sandbox, name)
    listed = run_inv("cleanup", "--json", home=sandbox.settings.home)
    assert listed.code == 0 and instance in {x["id"] for x in json.loads(listed.out)}, listed
    removed = run_inv("cleanup", "--yes", home=sandbox.settings.home)
    assert removed.code == 0, removed
    assert run_resources(sandbox, name) == {}
    assert instance_state(sandbox, instance) in ("shutting-down", "terminated")


def test_a_bad_release_patience_is_refused_before_anything_is_launched(sandbox, tmp_path):
    s = script(tmp_path, "true\n")
    out = run_inv(
        "spot-run", "--script", s, "--name", "never", home=sandbox.settings.home, env={"EC2KIT_RELEASE_PATIENCE": "ten"}
    )
    assert out.code != 0 and "EC2KIT_RELEASE_PATIENCE='ten'" in out.err and "Traceback" not in out.err, out
    assert run_resources(sandbox, "never") == {}


# ------------------------------------------------------------------ SIGTERM / SIGHUP (issue 19 item 6)


def signalled_run(sandbox, tmp_path: Path, name: str, signum: int) -> tuple[str, int]:
    """Start a spot run as its own process, send ``signum`` once its first result is home; (its output, exit code)."""
    from test_spotrun_faults import spot_run_process

    s = script(tmp_path, 'echo early > "$EC2KIT_RESULTS/early.txt"\nsleep 300\n')
    proc = spot_run_process(sandbox, tmp_path, s, name)
    try:
        wait_until(lambda: (tmp_path / "results" / "early.txt").exists() or proc.poll() is not None, 90, "the first result")
        assert proc.poll() is None, (tmp_path / "out").read_text()
        proc.send_signal(signum)
        code = proc.wait(90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return (tmp_path / "out").read_text(), code


def test_sigterm_to_spot_run_pulls_the_results_and_removes_every_resource_as_ctrl_c_does(sandbox, tmp_path):
    out, code = signalled_run(sandbox, tmp_path, "sigterm-run", signal.SIGTERM)
    assert "interrupted (SIGTERM): pulling results and cleaning up" in out, out
    assert "final state cancelled" in out and code == 0, out
    assert "Traceback" not in out
    assert (tmp_path / "results" / "early.txt").read_text() == "early\n"
    assert run_resources(sandbox, "sigterm-run") == {}
    assert record(sandbox, "sigterm-run").state == "cancelled"


def test_sighup_to_spot_run_leaves_a_detached_run_that_inv_runs_names_and_inv_pull_collects(sandbox, tmp_path):
    out, code = signalled_run(sandbox, tmp_path, "sighup-run", signal.SIGHUP)
    assert "final state running" in out and code == 0, out
    assert "Traceback" not in out
    rec = record(sandbox, "sighup-run")
    assert rec.live and rec.options.get("detach"), rec
    assert run_resources(sandbox, "sighup-run").get("instances"), "the run must go on"
    shown = run_inv("runs", home=sandbox.settings.home)
    assert shown.code == 0 and "its terminal closed (SIGHUP)" in shown.out, shown
    stopped = run_inv("stop-run", "sighup-run", home=sandbox.settings.home)
    assert stopped.code == 0, stopped
    assert run_resources(sandbox, "sighup-run") == {}


# ------------------------------------------------------------------ a full instance disk (issue 19 item 3)


@pytest.mark.skipif(os.geteuid() != 0, reason="the instance mounts a small filesystem: the sandbox must run as root")
def test_a_full_instance_disk_ends_the_run_says_so_and_brings_home_what_is_there(ctx, sandbox, tmp_path):
    lines: list[str] = []
    # The script's results live on a 1 MiB filesystem of the instance's own (its mount namespace); it keeps
    # writing and ignores the failures, as a training loop that logs and carries on would.
    s = script(
        tmp_path,
        """\
        mount -t tmpfs -o size=1m ec2kit-small "$EC2KIT_RESULTS" || exit 99
        echo first > "$EC2KIT_RESULTS/first.txt"
        i=0
        while :; do i=$((i+1)); head -c 65536 /dev/zero > "$EC2KIT_RESULTS/chunk-$i" 2>/dev/null; sleep 0.05; done
    """,
    )
    rec = spot_run(ctx, options(tmp_path, s, "diskfull", lines, max_hours=0.03))  # without the fix: a timeout at 108 s
    assert rec.state == "failed", lines
    assert rec.options["note"].startswith("the instance's disk is full: the script was stopped"), rec.options
    assert any("the instance's disk is full" in l for l in lines), lines
    assert (tmp_path / "results" / "first.txt").read_text() == "first\n"  # what was there came home
    assert len(list((tmp_path / "results").glob("chunk-*"))) >= 10
    log = (sandbox.settings.home / "runs" / "diskfull" / "log").read_text()
    assert "the instance's disk is full (1.0M used of 1.0M on " in log, log
    assert run_resources(sandbox, "diskfull") == {}


# ------------------------------------------------------------------ two pulls of one run (issue 19 item 8)


def test_inv_pull_while_another_pull_of_the_run_is_under_way_says_so_waits_then_pulls(ctx, sandbox, tmp_path):
    import subprocess
    import sys

    from cli_helpers import ROOT as CHECKOUT

    from ec2kit.fsutil import file_lock
    from ec2kit.spotrun.follower import Follower

    s = script(tmp_path, 'echo one > "$EC2KIT_RESULTS/one.txt"\nsleep 300\n')
    spot_run(ctx, options(tmp_path, s, "two-pulls", detach=True))
    lock = Follower(None, "two-pulls", tmp_path / "results").lock_path()  # type: ignore[arg-type]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(EC2KIT_SANDBOX="1", COLUMNS="200", PYTHONPATH=str(CHECKOUT), EC2KIT_HOME=str(sandbox.settings.home))
    argv = [sys.executable, "-m", "invoke", "--search-root", str(CHECKOUT), "pull", "two-pulls"]
    try:
        with file_lock(lock):  # the run's follower (or another `inv pull`) is pulling right now
            second = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=CHECKOUT)
            said = ""
            while "another pull of this run is under way" not in said:
                line = second.stdout.readline()
                assert line, f"inv pull ended without waiting: {said}"
                said += line
            assert second.poll() is None and not (tmp_path / "results" / "one.txt").exists()
        out = said + second.communicate(timeout=120)[0]
        assert second.returncode == 0, out
        assert "rsync" not in out and "Traceback" not in out, out
        assert (tmp_path / "results" / "one.txt").read_text() == "one\n"
    finally:
        stopped = run_inv("stop-run", "two-pulls", home=sandbox.settings.home)
    assert stopped.code == 0, stopped
    assert run_resources(sandbox, "two-pulls") == {}
