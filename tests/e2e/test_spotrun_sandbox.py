"""Spot runs end to end on the sandbox: moto's EC2 API plus a real sshd per instance."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cli_helpers import interruptible
from cli_helpers import wait_for as wait_until

from ec2kit.context import Context
from ec2kit.spotrun import SpotRunOptions, cleanup, list_runs, pull, refresh, spot_run, stop_run
from ec2kit.spotrun.lifecycle import RUN_TAG

ROOT = Path(__file__).resolve().parents[2]
FAST = dict(pull_interval=0.5, poll_interval=0.3, notice_poll=0.5, pull_wait=15)


@pytest.fixture
def ctx(sandbox):
    with Context(sandbox.settings, quiet=True) as c:
        yield c


def script(tmp_path: Path, text: str, name: str = "job.sh") -> str:
    path = tmp_path / name
    path.write_text("#!/bin/bash\n" + textwrap.dedent(text))
    return str(path)


def options(tmp_path: Path, script_path: str, name: str, lines: list[str] | None = None, **kw) -> SpotRunOptions:
    sink = lines if lines is not None else []
    return SpotRunOptions(
        script=script_path,
        name=name,
        type="t3.micro",
        results=str(tmp_path / "results"),
        out=sink.append,
        say=sink.append,
        **{**FAST, **kw},
    )


def run_resources(sandbox, run: str) -> dict[str, list[str]]:
    """What the run still holds in the sandbox account: live instances, volumes, open requests."""
    ec2 = sandbox.ec2
    tag = [{"Name": f"tag:{RUN_TAG}", "Values": [run]}]
    live = ["pending", "running", "stopping", "stopped", "shutting-down"]
    instances = [
        i["InstanceId"]
        for r in ec2.describe_instances(Filters=tag + [{"Name": "instance-state-name", "Values": live}])["Reservations"]
        for i in r["Instances"]
    ]
    volumes = [v["VolumeId"] for v in ec2.describe_volumes(Filters=tag)["Volumes"]]
    requests = [
        r["SpotInstanceRequestId"]
        for r in ec2.describe_spot_instance_requests(Filters=tag)["SpotInstanceRequests"]
        if r["State"] in ("open", "active")
    ]
    return {k: v for k, v in {"instances": instances, "volumes": volumes, "requests": requests}.items() if v}


def test_successful_run_brings_results_home_and_leaves_nothing_behind(ctx, sandbox, tmp_path):
    lines: list[str] = []
    s = script(
        tmp_path,
        """\
        echo "hello from attempt $EC2KIT_ATTEMPT"
        cat data.txt
        echo 42 > "$EC2KIT_RESULTS/answer.txt"
        mkdir -p "$EC2KIT_RESULTS/sub" && echo deep > "$EC2KIT_RESULTS/sub/file"
    """,
    )
    files = tmp_path / "files"
    files.mkdir()
    (files / "data.txt").write_text("uploaded data\n")
    rec = spot_run(ctx, options(tmp_path, s, "ok-run", lines, files=str(files)))
    assert rec.state == "succeeded" and rec.exit_code == 0 and rec.attempt == 1
    assert (tmp_path / "results" / "answer.txt").read_text() == "42\n"
    assert (tmp_path / "results" / "sub" / "file").read_text() == "deep\n"
    assert "hello from attempt 1" in lines and "uploaded data" in lines
    assert run_resources(sandbox, "ok-run") == {}
    assert [r.state for r in list_runs(ctx) if r.name == "ok-run"] == ["succeeded"]


def test_failing_script_is_failed_with_its_log_tail_and_results_still_pulled(ctx, sandbox, tmp_path):
    lines: list[str] = []
    s = script(
        tmp_path,
        """\
        echo partial > "$EC2KIT_RESULTS/partial.txt"
        echo "something went wrong" >&2
        exit 3
    """,
    )
    rec = spot_run(ctx, options(tmp_path, s, "fail-run", lines))
    assert rec.state == "failed" and rec.exit_code == 3
    assert (tmp_path / "results" / "partial.txt").read_text() == "partial\n"
    assert any("something went wrong" in l and "Last lines" in l for l in lines)
    assert run_resources(sandbox, "fail-run") == {}


def train_script(tmp_path: Path, steps: int = 20, step_seconds: float = 0.25) -> tuple[str, str]:
    s = script(
        tmp_path,
        f"""\
        export TRAIN_STEPS={steps} TRAIN_STEP_SECONDS={step_seconds}
        exec python3 train.py
    """,
        name="train.sh",
    )
    return s, str(ROOT / "examples" / "train.py")


def checkpoint_step(results: Path) -> int:
    try:
        return json.loads((results / "checkpoint.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.parametrize("notice", [2.0, 0.0], ids=["with-notice", "no-notice"])
def test_interrupted_run_is_replaced_and_resumes_from_its_checkpoint(ctx, sandbox, tmp_path, notice):
    import threading

    from ec2kit import sandbox as sb
    from ec2kit.runs import Runs

    s, train = train_script(tmp_path)
    events: list[tuple[float, str]] = []
    opts = options(tmp_path, s, "int-run", files=train, retries=1)
    opts.say = lambda m: events.append((time.monotonic(), m))
    results = tmp_path / "results"
    interrupted: dict = {}

    def interrupt_mid_run() -> None:
        wait_until(lambda: checkpoint_step(results) >= 5, 60, "a pulled checkpoint")
        rec = Runs(sandbox.settings.runs_db).get("int-run")
        interrupted.update(at=time.monotonic(), step=checkpoint_step(results), instance=rec.instance_id)
        sb.interrupt(sandbox.settings, rec.instance_id, delay=notice)

    thread = threading.Thread(target=interrupt_mid_run, daemon=True)
    thread.start()
    rec = spot_run(ctx, opts)
    thread.join(5)
    assert rec.state == "succeeded" and rec.attempt == 2, events
    final = json.loads((results / "final.json").read_text())
    assert final["attempts"] == [1, 2] and final["steps"] == 20
    steps = [int(l.split(",")[0]) for l in (results / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 21)), "a checkpointed step was lost or repeated"
    restarted = [t for t, m in events if "script started" in m][-1]
    print(
        f"\nrecovery: interruption at step {interrupted['step']} -> script running again in {restarted - interrupted['at']:.1f}s"
    )
    assert run_resources(sandbox, "int-run") == {}


def test_sigint_during_the_run_pulls_results_and_removes_every_resource(sandbox, tmp_path):
    from ec2kit.runs import Runs

    s = script(
        tmp_path,
        """\
        echo early > "$EC2KIT_RESULTS/early.txt"
        sleep 120
    """,
    )
    code = textwrap.dedent(f"""
        import faulthandler, signal, time
        from pathlib import Path
        from ec2kit.context import Context
        from ec2kit.settings import Settings
        from ec2kit.spotrun import SpotRunOptions, spot_run
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks for a stack dump if it hangs
        t0 = time.monotonic()
        say = lambda m: print(f"{{time.monotonic() - t0:6.2f}} {{m}}", flush=True)
        ctx = Context(Settings(home=Path({str(sandbox.settings.home)!r}), sandbox=True), quiet=True)
        rec = spot_run(ctx, SpotRunOptions(script={s!r}, name="sigint-run", type="t3.micro", results={str(tmp_path / "results")!r},
                                           pull_interval=0.5, poll_interval=0.3, notice_poll=0.5, say=say))
        say(f"final state {{rec.state}}")
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        wait_until(
            lambda: (tmp_path / "results" / "early.txt").exists() or proc.poll() is not None, 60, "the first pulled result"
        )
        assert proc.poll() is None, proc.stdout.read()
        assert run_resources(sandbox, "sigint-run").get("instances")
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
            proc.kill()
            pytest.fail("still running 60 s after Ctrl-C; its output and threads:\n" + proc.communicate()[0][-8000:])
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "final state cancelled" in out, out
    assert "Traceback" not in out
    assert run_resources(sandbox, "sigint-run") == {}
    assert Runs(sandbox.settings.runs_db).get("sigint-run").state == "cancelled"


def test_detached_run_can_be_pulled_then_stopped(ctx, sandbox, tmp_path):
    s = script(
        tmp_path,
        """\
        echo one > "$EC2KIT_RESULTS/one.txt"
        sleep 120
    """,
    )
    rec = spot_run(ctx, options(tmp_path, s, "detach-run", detach=True))
    assert rec.state == "running"
    where = wait_until(lambda: (pull(ctx, "detach-run") / "one.txt").exists() and pull(ctx, "detach-run"), 20, "one.txt")
    assert (where / "one.txt").read_text() == "one\n"
    stopped = stop_run(ctx, "detach-run")
    assert stopped.state == "cancelled"
    assert run_resources(sandbox, "detach-run") == {}
    assert cleanup(ctx, dry_run=True) == [] or all(l.name != "detach-run" for l in cleanup(ctx, dry_run=True))


def test_snapshot_becomes_a_data_volume_at_mnt_data_and_is_deleted_after(ctx, sandbox, tmp_path):
    from ec2kit import actions

    base = ctx.cloud.launch("snap-src", type="t3.micro")
    try:
        actions.wait_ssh(ctx, base)
        vol = actions.make_volume(ctx, base.id, size=1, name="spotrun-data-src")
        ctx.connect(base).run("echo dataset-v1 > /mnt/data/dataset.txt && sync")
        snap = actions.snapshot(ctx, vol.id, name="spotrun-data", wait=True)
    finally:
        ctx.forget_host(base.id)
        ctx.cloud.terminate(base.id)
    s = script(tmp_path, 'cp /mnt/data/dataset.txt "$EC2KIT_RESULTS/seen.txt"\n')
    rec = spot_run(ctx, options(tmp_path, s, "data-run", snapshot=snap.id))
    assert rec.state == "succeeded", rec
    assert (tmp_path / "results" / "seen.txt").read_text() == "dataset-v1\n"
    assert run_resources(sandbox, "data-run") == {}
    assert ctx.cloud.snapshot(snap.id).id == snap.id  # the user's snapshot is never touched


def test_monitor_mode_sends_results_to_the_monitor_and_revokes_the_run_key(ctx, sandbox, tmp_path):
    monitor = ctx.cloud.launch("od1-test", type="t3.micro")
    try:
        from ec2kit import actions

        actions.wait_ssh(ctx, monitor)
        s = script(tmp_path, 'echo via-monitor > "$EC2KIT_RESULTS/m.txt"\nsleep 1\n')
        rec = spot_run(ctx, options(tmp_path, s, "mon-run", monitor="od1-test"))
        assert rec.state == "succeeded", rec
        host = ctx.connect(monitor)
        assert host.run("cat ~/ec2kit-runs/mon-run/m.txt").stdout == "via-monitor\n"
        assert "ec2kit-run:mon-run" not in host.run("cat ~/.ssh/authorized_keys").stdout
        assert not (tmp_path / "results" / "m.txt").exists()
    finally:
        assert run_resources(sandbox, "mon-run") == {}
        ctx.forget_host(monitor.id)
        ctx.cloud.terminate(monitor.id)


def test_a_detached_monitor_run_pushes_its_last_results_then_powers_off(ctx, sandbox, tmp_path):
    from ec2kit import actions

    monitor = ctx.cloud.launch("od1-detach", type="t3.micro")
    try:
        actions.wait_ssh(ctx, monitor)
        s = script(tmp_path, 'sleep 2\necho last-words > "$EC2KIT_RESULTS/last.txt"\n')
        rec = spot_run(ctx, options(tmp_path, s, "mon-detach", monitor="od1-detach", detach=True))
        assert rec.state == "running"
        # nobody pulls: the instance pushes the final results to the monitor itself, then goes
        wait_until(lambda: "instances" not in run_resources(sandbox, "mon-detach"), 60, "self power-off")
        host = ctx.connect(monitor)
        assert host.run("cat ~/ec2kit-runs/mon-detach/last.txt").stdout == "last-words\n"
        assert refresh(ctx, list_runs(ctx)).get("mon-detach") is None
        [record] = [r for r in list_runs(ctx) if r.name == "mon-detach"]
        assert (record.state, record.exit_code) == ("succeeded", 0)
        assert "ec2kit-run:mon-detach" not in host.run("cat ~/.ssh/authorized_keys").stdout
    finally:
        ctx.forget_host(monitor.id)
        ctx.cloud.terminate(monitor.id)


def test_failed_monitor_push_falls_back_to_pulling_here(ctx, sandbox, tmp_path):
    import threading

    from ec2kit.runs import Runs

    monitor = ctx.cloud.launch("od1-fallback", type="t3.micro")
    from ec2kit import actions

    actions.wait_ssh(ctx, monitor)

    def lose_the_monitor() -> None:  # once the script runs, the monitor goes away
        wait_until(lambda: (r := Runs(sandbox.settings.runs_db).find("monfb-run")) and r.state == "running", 60, "running")
        ctx.cloud.terminate(monitor.id)

    thread = threading.Thread(target=lose_the_monitor, daemon=True)
    thread.start()
    s = script(tmp_path, 'sleep 3\necho kept > "$EC2KIT_RESULTS/k.txt"\n')
    lines: list[str] = []
    t0 = time.monotonic()
    o = options(tmp_path, s, "monfb-run", lines, monitor="od1-fallback")
    o.say = lambda m: (lines.append(m), print(f"{time.monotonic() - t0:5.1f} {m}"))
    rec = spot_run(ctx, o)
    thread.join(5)
    assert rec.state == "succeeded"
    assert (tmp_path / "results" / "k.txt").read_text() == "kept\n"
    assert any("instead" in l for l in lines), lines
    assert run_resources(sandbox, "monfb-run") == {}


def test_stop_run_from_another_terminal_ends_a_followed_run_without_a_replacement(ctx, sandbox, tmp_path):
    import threading

    from ec2kit.runs import Runs

    s = script(tmp_path, 'echo before > "$EC2KIT_RESULTS/before.txt"\nsleep 120\n')

    def stop_when_running() -> None:
        wait_until(lambda: (tmp_path / "results" / "before.txt").exists(), 60, "first result")
        with Context(sandbox.settings, quiet=True) as other:
            stop_run(other, "stopped-run")

    thread = threading.Thread(target=stop_when_running, daemon=True)
    thread.start()
    rec = spot_run(ctx, options(tmp_path, s, "stopped-run", retries=2))
    thread.join(30)
    assert rec.state == "cancelled" and rec.attempt == 1
    assert Runs(sandbox.settings.runs_db).get("stopped-run").state == "cancelled"
    assert run_resources(sandbox, "stopped-run") == {}


def test_max_hours_ends_the_run_as_timeout_and_cleans_up(ctx, sandbox, tmp_path):
    s = script(tmp_path, "sleep 60\n")
    rec = spot_run(ctx, options(tmp_path, s, "slow-run", max_hours=2 / 3600))
    assert rec.state == "timeout"
    assert run_resources(sandbox, "slow-run") == {}


def test_cleanup_lists_and_removes_resources_of_runs_that_are_gone_but_not_the_users_own(ctx, sandbox):
    ghost = ctx.cloud.create_volume(size=1, name="ghost-run-data", tags={RUN_TAG: "ghost-run"})
    mine = ctx.cloud.create_volume(size=1, name="my-own-data")
    found = cleanup(ctx, dry_run=True)
    assert [(l.kind, l.id) for l in found if l.id in (ghost.id, mine.id)] == [("volume", ghost.id)]
    cleanup(ctx, dry_run=False)
    ids = {v.id for v in ctx.cloud.volumes()}
    assert ghost.id not in ids and mine.id in ids
    ctx.cloud.delete_volume(mine.id)


def test_logs_of_a_finished_run_come_from_the_local_copy(ctx, sandbox, tmp_path):
    from ec2kit.spotrun import logs

    s = script(tmp_path, "echo line-for-logs\n")
    spot_run(ctx, options(tmp_path, s, "logs-run"))
    printed: list[str] = []
    logs(ctx, "logs-run", out=printed.append)
    assert "line-for-logs" in printed and any("attempt 1 of run logs-run started" in l for l in printed)


def test_detached_run_waits_for_the_final_pull_then_powers_itself_off(ctx, sandbox, tmp_path):
    from ec2kit import actions

    base = ctx.cloud.launch("detach-src", type="t3.micro")
    try:
        actions.wait_ssh(ctx, base)
        vol = actions.make_volume(ctx, base.id, size=1, name="detach-data-src")
        snap = actions.snapshot(ctx, vol.id, name="detach-data", wait=True)
    finally:
        ctx.forget_host(base.id)
        ctx.cloud.terminate(base.id)
    s = script(tmp_path, 'sleep 1; echo final > "$EC2KIT_RESULTS/final.txt"\n')
    rec = spot_run(ctx, options(tmp_path, s, "detach-end", detach=True, snapshot=snap.id))
    assert rec.state == "running"
    instance_id = rec.instance_id
    # The script ends, but the instance holds the results until someone pulls them, however long that takes.
    wait_until(
        lambda: ctx.connect(instance_id).run("cat ~/ec2kit/detach-end/status", check=False).stdout.count("succeeded"),
        30,
        "script end",
    )
    assert [r.state for r in list_runs(ctx) if r.name == "detach-end"] == ["running"]  # nobody has looked yet
    notes = refresh(ctx, list_runs(ctx))  # what `inv runs` does
    assert notes["detach-end"] == "waiting for `inv pull detach-end`"
    [record] = [r for r in list_runs(ctx) if r.name == "detach-end"]
    assert (record.state, record.exit_code, record.awaiting_pull) == ("succeeded", 0, True)
    assert all(l.id != instance_id for l in cleanup(ctx, dry_run=True))  # cleanup leaves it to the pull
    time.sleep(FAST["pull_wait"] + 2)  # longer than an attached run would wait
    assert ctx.cloud.instance(instance_id).state == "running"
    where = pull(ctx, "detach-end")
    assert (where / "final.txt").read_text() == "final\n"
    # The pull told the instance it may go: it powers off, and its data volume goes with it.
    ctx.forget_host(instance_id)
    wait_until(lambda: "instances" not in run_resources(sandbox, "detach-end"), 30, "self power-off")
    assert run_resources(sandbox, "detach-end") == {}
    assert [r.state for r in list_runs(ctx) if r.name == "detach-end"] == ["succeeded"]
    assert refresh(ctx, list_runs(ctx)).get("detach-end") is None  # pulled: nothing left to say


def test_a_detached_run_whose_instance_vanished_is_shown_lost(ctx, sandbox, tmp_path):
    from cli_helpers import run_inv

    s = script(tmp_path, "sleep 120\n")
    rec = spot_run(ctx, options(tmp_path, s, "detach-lost", detach=True))
    ctx.forget_host(rec.instance_id)
    ctx.cloud.terminate(rec.instance_id)  # a spot interruption while the laptop was closed
    shown = run_inv("runs", home=sandbox.settings.home)
    assert shown.code == 0, shown
    assert "lost" in shown.out and "spot interruption" in shown.out
    [record] = [r for r in list_runs(ctx) if r.name == "detach-lost"]
    assert record.state == "lost" and not record.live and record.ended_at
    assert run_resources(sandbox, "detach-lost") == {}


def test_a_finished_detached_run_whose_instance_vanished_before_the_pull_says_so_once(ctx, sandbox, tmp_path):
    s = script(tmp_path, 'echo done > "$EC2KIT_RESULTS/r.txt"\n')
    rec = spot_run(ctx, options(tmp_path, s, "detach-gone", detach=True))
    instance_id = rec.instance_id
    wait_until(
        lambda: ctx.connect(instance_id).run("cat ~/ec2kit/detach-gone/status", check=False).stdout.count("succeeded"),
        30,
        "script end",
    )
    assert refresh(ctx, list_runs(ctx))["detach-gone"] == "waiting for `inv pull detach-gone`"
    ctx.forget_host(instance_id)
    ctx.cloud.terminate(instance_id)  # interrupted while it waited for the pull
    assert refresh(ctx, list_runs(ctx))["detach-gone"] == "instance gone before `inv pull`"
    [record] = [r for r in list_runs(ctx) if r.name == "detach-gone"]
    assert record.state == "succeeded" and not record.awaiting_pull
    assert "before `inv pull` collected the final results" in record.options["note"]
    assert "detach-gone" not in refresh(ctx, list_runs(ctx))  # said once; no describe call for it any more
