"""Spot runs under faults, end to end on the sandbox: each test injects one fault for real.

A killed ``inv spot-run``, a dead wrapper, a frozen link, an rsync killed mid-pull, a follower that
dies, a detached run interrupted (stopped, then restarted), concurrent ``inv runs``/``inv pull``,
and a special file where results land. Nothing is mocked: moto's EC2 API, one sshd per instance,
tmux, rsync.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from cli_helpers import interruptible, run_inv
from cli_helpers import wait_for as wait_until
from test_spotrun_sandbox import FAST, checkpoint_step, options, run_resources, script, train_script

from ec2kit.context import Context
from ec2kit.errors import ConfigError, RemoteError, RunError
from ec2kit.runs import Runs
from ec2kit.spotrun import list_runs, pull, refresh, spot_run
from ec2kit.spotrun.commands import tmux

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ctx(sandbox):
    with Context(sandbox.settings, quiet=True) as c:
        yield c


def record(sandbox, name: str):
    return Runs(sandbox.settings.runs_db).find(name)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def spot_run_process(sandbox, tmp_path: Path, script_path: str, name: str, **kw) -> subprocess.Popen:
    """`inv spot-run` as its own process group (so a test can kill -9 all of it), output in tmp_path/out."""
    extra = ", ".join(f"{k}={v!r}" for k, v in {**FAST, **kw}.items())
    code = textwrap.dedent(f"""
        from pathlib import Path
        from ec2kit.context import Context
        from ec2kit.settings import Settings
        from ec2kit.spotrun import SpotRunOptions, spot_run
        ctx = Context(Settings(home=Path({str(sandbox.settings.home)!r}), sandbox=True), quiet=True)
        rec = spot_run(ctx, SpotRunOptions(script={script_path!r}, name={name!r}, type="t3.micro",
                                           results={str(tmp_path / "results")!r}, say=print, {extra}))
        print("final state", rec.state, flush=True)
    """)
    out = open(tmp_path / "out", "w")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
        preexec_fn=interruptible,
    )


def runs_note(sandbox, name: str) -> str:
    """The note `inv runs --json` shows for run ``name`` (what the table says beside its state)."""
    shown = run_inv("runs", "--json", home=sandbox.settings.home)
    assert shown.code == 0 and "Traceback" not in shown.text, shown
    return next((r.get("note") or "" for r in json.loads(shown.out) if r["name"] == name), "")


def kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


# ------------------------------------------------------------------ 1. a crash during launch


def test_a_spot_run_killed_right_after_its_instance_runs_is_settled_and_cleaned_up(sandbox, tmp_path):
    s = script(tmp_path, 'echo never > "$EC2KIT_RESULTS/x"\nsleep 300\n')
    proc = spot_run_process(sandbox, tmp_path, s, "crash-launch")
    try:
        wait_until(lambda: (r := record(sandbox, "crash-launch")) and r.instance_id, 90, "the instance in the record")
        kill_group(proc)  # kill -9 of the whole `inv spot-run` process group, mid-prepare
    finally:
        if proc.poll() is None:
            kill_group(proc)
    assert run_resources(sandbox, "crash-launch").get("instances"), "the fault left nothing to find"
    shown = run_inv("runs", home=sandbox.settings.home)
    assert shown.code == 0 and "Traceback" not in shown.text, shown
    assert "died before the script started" in shown.out, shown
    rec = record(sandbox, "crash-launch")
    assert rec.state == "failed" and not rec.live
    removed = run_inv("cleanup", "--yes", home=sandbox.settings.home)
    assert removed.code == 0, removed
    assert run_resources(sandbox, "crash-launch") == {}


def test_stop_run_finds_a_runs_resources_by_tag_when_the_record_lost_them(ctx, sandbox, tmp_path):
    s = script(tmp_path, 'echo one > "$EC2KIT_RESULTS/one.txt"\nsleep 300\n')
    proc = spot_run_process(sandbox, tmp_path, s, "crash-tag")
    try:
        wait_until(lambda: (tmp_path / "results" / "one.txt").exists(), 120, "the first pulled result")
        kill_group(proc)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    runs = Runs(sandbox.settings.runs_db)
    rec = runs.get("crash-tag")
    rec.instance_id, rec.request_id, rec.created = None, None, {}  # as if the crash came before they were written
    runs.save(rec)
    shown = run_inv("runs", home=sandbox.settings.home)
    assert "goes on" in shown.out, shown  # the script runs on: it is a detached run now
    stopped = run_inv("stop-run", "crash-tag", home=sandbox.settings.home)
    assert stopped.code == 0, stopped
    assert run_resources(sandbox, "crash-tag") == {}


# ------------------------------------------------------------------ 2. a dead wrapper


def test_a_dead_wrapper_is_noticed_and_the_run_resumes_on_a_new_instance(ctx, sandbox, tmp_path):
    s, train = train_script(tmp_path, steps=20, step_seconds=0.4)
    events: list[str] = []
    opts = options(tmp_path, s, "dead-wrapper", events, files=train, retries=1)
    results = tmp_path / "results"

    def kill_tmux() -> None:
        wait_until(lambda: checkpoint_step(results) >= 5, 90, "a pulled checkpoint")
        iid = record(sandbox, "dead-wrapper").instance_id
        ctx.connect(iid).run(f"{tmux('dead-wrapper')} kill-server", check=False)

    thread = threading.Thread(target=kill_tmux, daemon=True)
    thread.start()
    rec = spot_run(ctx, opts)
    thread.join(5)
    assert rec.state == "succeeded" and rec.attempt == 2, events
    assert any("wrapper" in e and "died" in e for e in events), events
    final = json.loads((results / "final.json").read_text())
    assert final["steps"] == 20
    assert run_resources(sandbox, "dead-wrapper") == {}


def test_a_dead_wrapper_without_retries_releases_the_instance_after_a_final_pull(ctx, sandbox, tmp_path):
    s = script(
        tmp_path,
        'for i in $(seq 1 200); do echo $i > "$EC2KIT_RESULTS/.step" && mv "$EC2KIT_RESULTS/.step" "$EC2KIT_RESULTS/step"; sleep 0.2; done\n',
    )
    events: list[str] = []
    results = tmp_path / "results"

    def kill_tmux() -> None:
        wait_until(lambda: (results / "step").exists(), 90, "a pulled result")
        iid = record(sandbox, "dead-wrapper-0").instance_id
        ctx.connect(iid).run(f"{tmux('dead-wrapper-0')} kill-server", check=False)

    thread = threading.Thread(target=kill_tmux, daemon=True)
    thread.start()
    with pytest.raises(RunError, match="lost its wrapper"):
        spot_run(ctx, options(tmp_path, s, "dead-wrapper-0", events))
    thread.join(5)
    assert int((results / "step").read_text()) > 1
    assert run_resources(sandbox, "dead-wrapper-0") == {}


def test_a_detached_run_whose_wrapper_died_is_settled_by_inv_runs_after_a_final_pull(ctx, sandbox, tmp_path):
    s = script(
        tmp_path,
        'for i in $(seq 1 300); do echo $i > "$EC2KIT_RESULTS/.step" && mv "$EC2KIT_RESULTS/.step" "$EC2KIT_RESULTS/step"; sleep 0.2; done\n',
    )
    rec = spot_run(ctx, options(tmp_path, s, "dead-wrapper-d", detach=True))
    host = ctx.connect(rec.instance_id)
    wait_until(lambda: host.run("cat ~/ec2kit/dead-wrapper-d/results/step", check=False).stdout.strip(), 60, "a result")
    host.run(f"{tmux('dead-wrapper-d')} kill-server", check=False)
    note = wait_until(lambda: refresh(ctx, list_runs(ctx)).get("dead-wrapper-d", "").startswith("wrapper died"), 90, "it noticed")
    assert note
    stored = record(sandbox, "dead-wrapper-d")
    assert stored.state == "lost" and "wrapper" in stored.options["note"]
    assert int((tmp_path / "results" / "step").read_text()) > 1
    assert run_resources(sandbox, "dead-wrapper-d") == {}


# ------------------------------------------------------------------ 3. a link outage


def sshd_processes(sandbox, instance_id: str) -> list[int]:
    """The pids of the instance's sshd (listener and per-connection), not the sessions it started."""
    from ec2kit import sandbox as sb

    [host] = [h for h in sb.status(sandbox.settings)["hosts"] if h["instance_id"] == instance_id]
    pids, todo = [], [int(host["pid"])]
    while todo:
        pid = todo.pop()
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("sshd"):
            pids.append(pid)
        todo += [int(c) for c in children]
    return pids


def test_a_link_outage_longer_than_the_old_budget_never_kills_a_healthy_run(ctx, sandbox, tmp_path):
    s = script(tmp_path, 'for i in $(seq 1 30); do echo $i > "$EC2KIT_RESULTS/r$i"; sleep 1; done\n')
    events: list[str] = []
    results = tmp_path / "results"
    frozen: list[int] = []
    freeze_for = 75.0  # the old follower gave up after ~6 failed polls (a 30 s timeout, then 5 reconnects of ≤ 11 s)

    def freeze_link() -> None:
        wait_until(lambda: (results / "r3").exists(), 90, "a pulled result")
        iid = record(sandbox, "outage").instance_id
        frozen.extend(sshd_processes(sandbox, iid))
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        wait_until(lambda: any("lost contact" in e for e in events), 60, "the follower to notice")
        time.sleep(freeze_for)
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)

    thread = threading.Thread(target=freeze_link, daemon=True)
    thread.start()
    try:
        rec = spot_run(ctx, options(tmp_path, s, "outage", events))
    finally:
        thread.join(freeze_for + 60)
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert frozen
    assert rec.state == "succeeded", events
    assert sorted(int(p.name[1:]) for p in results.glob("r*")) == list(range(1, 31))
    said = "\n".join(events)
    assert "EC2 says it is running; retrying in" in said and "is back after" in said, said
    assert "may still be booting" not in said and "Traceback" not in said
    assert run_resources(sandbox, "outage") == {}


def test_ctrl_c_during_an_outage_leaves_a_detached_run_for_inv_pull(ctx, sandbox, tmp_path):
    s = script(tmp_path, 'for i in $(seq 1 10); do echo $i > "$EC2KIT_RESULTS/r$i"; sleep 1; done\n')
    proc = spot_run_process(sandbox, tmp_path, s, "outage-ctrl-c")
    frozen: list[int] = []
    try:
        wait_until(lambda: (tmp_path / "results" / "r2").exists(), 120, "a pulled result")
        frozen = sshd_processes(sandbox, record(sandbox, "outage-ctrl-c").instance_id)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        wait_until(lambda: "lost contact" in (tmp_path / "out").read_text(), 150, "the follower to notice")  # slow when loaded
        os.killpg(proc.pid, signal.SIGINT)  # the user gives up waiting
        proc.wait(60)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        if proc.poll() is None:
            kill_group(proc)
    out = (tmp_path / "out").read_text()
    assert "goes on as a detached run" in out and "Traceback" not in out, out
    rec = record(sandbox, "outage-ctrl-c")
    assert rec.live and rec.options.get("detach"), rec
    assert run_resources(sandbox, "outage-ctrl-c").get("instances"), "the run was destroyed"
    wait_until(lambda: runs_note(sandbox, "outage-ctrl-c") == "waiting for `inv pull outage-ctrl-c`", 90, "end")
    got = run_inv("pull", "outage-ctrl-c", home=sandbox.settings.home)
    assert got.code == 0, got
    assert sorted(int(p.name[1:]) for p in (tmp_path / "results").glob("r*")) == list(range(1, 11))
    wait_until(lambda: run_resources(sandbox, "outage-ctrl-c") == {}, 60, "power-off after the pull")


# ------------------------------------------------------------------ 4. rsync killed mid-pull


def test_a_pull_killed_midway_keeps_the_last_complete_checkpoint(sshd_host, user_key, tmp_path):
    from ec2kit.spotrun.follower import PARTIAL_DIR, Follower
    from ec2kit.ssh import SshTarget, connect

    remote = sshd_host.home / "ec2kit" / "ckpt-run" / "results"
    remote.mkdir(parents=True)
    (remote / "model.ckpt").write_bytes(os.urandom(4 << 20))
    target = SshTarget("127.0.0.1", sshd_host.port, sshd_host.user, user_key, "i-ckpt", tmp_path / "known_hosts", "box")
    with connect(target) as host:
        f = Follower(host, "ckpt-run", tmp_path / "results", out=lambda _l: None)
        assert f.pull()
        local = tmp_path / "results" / "model.ckpt"
        good = sha(local)
        (remote / "model.ckpt").write_bytes(os.urandom(160 << 20))  # the script rewrites its checkpoint
        rsync = subprocess.Popen(f.pull_argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
        partial = tmp_path / "results" / PARTIAL_DIR

        def midway() -> bool:  # the new version is arriving (rsync's temp file [.]model.ckpt.XXXXXX, under PARTIAL_DIR)
            temps = [*partial.rglob("*model.ckpt.*"), *local.parent.glob(".model.ckpt.*")]
            return any(p.stat().st_size > 0 for p in temps if p.exists())

        wait_until(lambda: midway() or rsync.poll() is not None, 60, "a partial file")
        assert rsync.poll() is None, "the pull finished before it could be cut"
        children = Path(f"/proc/{rsync.pid}/task/{rsync.pid}/children").read_text().split()
        [ssh] = [int(c) for c in children if Path(f"/proc/{c}/comm").read_text().strip() == "ssh"]
        os.kill(ssh, signal.SIGKILL)  # the link drops mid-transfer: rsync itself sees it and ends
        rsync.wait(30)
        assert sha(local) == good, "a cut pull replaced the last good checkpoint"
        assert [p.name for p in local.parent.iterdir()] == ["model.ckpt", PARTIAL_DIR] or sorted(
            p.name for p in local.parent.iterdir()
        ) == sorted(["model.ckpt", PARTIAL_DIR]), "a half-written file beside the results"
        f.push()  # what goes back to a replacement: complete files only, never the partial dir
        assert not (remote / PARTIAL_DIR).exists()
        assert f.pull() and sha(local) == sha(remote / "model.ckpt")


# ------------------------------------------------------------------ 5. the follower dies


def test_an_attached_run_whose_process_dies_keeps_its_results_for_inv_pull(ctx, sandbox, tmp_path):
    s = script(tmp_path, 'echo early > "$EC2KIT_RESULTS/early"\nsleep 4\necho late > "$EC2KIT_RESULTS/late"\n')
    proc = spot_run_process(sandbox, tmp_path, s, "dead-follower", pull_wait=5)
    try:
        wait_until(lambda: (tmp_path / "results" / "early").exists(), 120, "the first pulled result")
        kill_group(proc)  # the follower dies; the script goes on
    finally:
        if proc.poll() is None:
            kill_group(proc)
    iid = record(sandbox, "dead-follower").instance_id
    wait_until(
        lambda: "succeeded" in ctx.connect(iid).run("cat ~/ec2kit/dead-follower/status", check=False).stdout, 60, "script end"
    )
    # Longer than the attached pull wait: the instance must still hold the results.
    wait_until(
        lambda: "nothing follows the run" in ctx.connect(iid).run("cat ~/ec2kit/dead-follower/log", check=False).stdout,
        60,
        "the wrapper to see its follower gone",
    )
    assert ctx.cloud.instance(iid).state == "running"
    assert runs_note(sandbox, "dead-follower") == "waiting for `inv pull dead-follower`"
    got = run_inv("pull", "dead-follower", home=sandbox.settings.home)
    assert got.code == 0, got
    assert (tmp_path / "results" / "late").read_text() == "late\n"
    ctx.forget_host(iid)
    wait_until(lambda: run_resources(sandbox, "dead-follower") == {}, 60, "the instance to power off after the pull")
    assert [r.state for r in list_runs(ctx) if r.name == "dead-follower"] == ["succeeded"]
    after = runs_note(sandbox, "dead-follower")  # issue 19 item 9: once pulled, it no longer "waits for `inv pull`"
    assert "inv pull" not in after and after == f"its results were pulled into {tmp_path / 'results'}", after


# ------------------------------------------------------------------ 6. a detached run interrupted


def test_an_interrupted_detached_run_stops_restarts_and_finishes(ctx, sandbox, tmp_path):
    from ec2kit import sandbox as sb

    s, train = train_script(tmp_path, steps=20, step_seconds=0.4)
    rec = spot_run(ctx, options(tmp_path, s, "resume-run", files=train, detach=True))
    iid = rec.instance_id
    host = ctx.connect(iid)

    def remote_step() -> int:
        out = host.run("cat ~/ec2kit/resume-run/results/checkpoint.json 2>/dev/null", check=False).stdout
        try:
            return json.loads(out)["step"]
        except ValueError:
            return 0

    wait_until(lambda: remote_step() >= 5, 90, "a checkpoint on the instance")
    sb.interrupt(sandbox.settings, iid, delay=6)
    note = wait_until(lambda: refresh(ctx, list_runs(ctx)).get("resume-run", "").startswith("interrupted"), 30, "the notice")
    assert note
    notes = refresh(ctx, list_runs(ctx))
    assert "`inv pull resume-run` within" in notes["resume-run"] and "saves the latest results" in notes["resume-run"]
    ctx.forget_host(iid)
    wait_until(lambda: ctx.cloud.instance(iid).state == "stopped", 60, "the instance to stop")
    assert "resumes" in refresh(ctx, list_runs(ctx))["resume-run"]
    assert record(sandbox, "resume-run").live
    sb.capacity_returns(sandbox.settings, iid)
    wait_until(
        lambda: refresh(ctx, list_runs(ctx)).get("resume-run") == "waiting for `inv pull resume-run`", 120, "the resumed end"
    )
    where = pull(ctx, "resume-run")
    final = json.loads((where / "final.json").read_text())
    assert final["steps"] == 20 and final["attempts"][-1] == 2, final
    steps = [int(l.split(",")[0]) for l in (where / "metrics.csv").read_text().splitlines()[1:]]
    assert sorted(set(steps)) == list(range(1, 21))
    assert record(sandbox, "resume-run").attempt == 2
    assert run_resources(sandbox, "resume-run") == {}


# ------------------------------------------------------------------ 7. concurrent inv runs / inv pull


def test_concurrent_inv_runs_and_inv_pull_never_lose_each_others_changes(ctx, sandbox, tmp_path):
    s = script(tmp_path, 'echo done > "$EC2KIT_RESULTS/r.txt"\n')
    rec = spot_run(ctx, options(tmp_path, s, "race-run", detach=True))
    wait_until(
        lambda: "succeeded" in ctx.connect(rec.instance_id).run("cat ~/ec2kit/race-run/status", check=False).stdout, 60, "end"
    )
    errors: list[BaseException] = []

    def lister() -> None:
        try:
            with Context(sandbox.settings, quiet=True) as other:
                for _ in range(3):
                    refresh(other, list_runs(other))
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=lister) for _ in range(2)]
    for t in threads:
        t.start()
    with Context(sandbox.settings, quiet=True) as other:
        pull(other, "race-run")
    for t in threads:
        t.join(120)
    assert not errors, errors
    stored = record(sandbox, "race-run")
    assert stored.state == "succeeded" and stored.exit_code == 0 and stored.options.get("pulled") is True
    assert not stored.awaiting_pull


# ------------------------------------------------------------------ 10. special files


def test_a_fifo_in_the_results_dir_is_a_located_error_before_anything_is_launched(ctx, sandbox, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    os.mkfifo(results / "canary")
    s = script(tmp_path, 'echo x > "$EC2KIT_RESULTS/canary"\n')
    with pytest.raises(ConfigError, match="canary.*FIFO"):
        spot_run(ctx, options(tmp_path, s, "fifo-run"))
    assert (results / "canary").is_fifo()
    assert run_resources(sandbox, "fifo-run") == {}


def test_a_pull_never_writes_over_or_into_a_fifo(sshd_host, user_key, tmp_path):
    from ec2kit.spotrun.follower import Follower
    from ec2kit.ssh import SshTarget, connect

    remote = sshd_host.home / "ec2kit" / "fifo-pull" / "results"
    remote.mkdir(parents=True)
    (remote / "canary").write_text("data\n")
    os.mkfifo(remote / "remote-fifo")
    local = tmp_path / "results"
    local.mkdir()
    target = SshTarget("127.0.0.1", sshd_host.port, sshd_host.user, user_key, "i-fifo", tmp_path / "known_hosts", "box")
    with connect(target) as host:
        f = Follower(host, "fifo-pull", local, local_log=tmp_path / "log", out=lambda _l: None)
        assert f.pull()
        assert not (local / "remote-fifo").exists()  # specials never travel
        (local / "canary").unlink()
        os.mkfifo(local / "canary")
        assert not f.pull()  # the run goes on; the pull names what is in the way
        assert "canary" in f.last_error and "FIFO" in f.last_error
        assert (local / "canary").is_fifo()
        os.mkfifo(tmp_path / "log")
        with pytest.raises(ConfigError, match="log"):
            f._emit("line\n")
        assert (tmp_path / "log").is_fifo()


def test_a_results_directory_that_is_a_link_on_the_instance_is_neither_followed_nor_pushed_into(sshd_host, user_key, tmp_path):
    """Issue 20 #14: rsync's trailing slash follows a linked results directory; the remote side refuses first."""
    from ec2kit.spotrun.follower import Follower
    from ec2kit.ssh import SshTarget, connect

    elsewhere = sshd_host.home / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "private.key").write_text("not a result\n")
    run_dir = sshd_host.home / "ec2kit" / "linked-pull"
    run_dir.mkdir(parents=True)
    (run_dir / "results").symlink_to(elsewhere)
    local = tmp_path / "results"
    local.mkdir()
    (local / "mine.txt").write_text("a local result\n")
    target = SshTarget("127.0.0.1", sshd_host.port, sshd_host.user, user_key, "i-link", tmp_path / "known_hosts", "box")
    with connect(target) as host:
        f = Follower(host, "linked-pull", local, local_log=tmp_path / "log", out=lambda _l: None)
        assert not f.pull()
        assert "symbolic link" in f.last_error and "linked-pull" in f.last_error
        assert sorted(p.name for p in local.iterdir()) == ["mine.txt"], "nothing of the link's target came home"
        with pytest.raises(RemoteError, match="symbolic link"):
            f.push()
        assert sorted(p.name for p in elsewhere.iterdir()) == ["private.key"], "nothing was pushed through the link"

        (run_dir / "results").unlink()
        (run_dir / "results").mkdir()
        (run_dir / "results" / "metrics.csv").write_text("step,loss\n1,0.5\n")
        assert f.pull(), f.last_error
        assert (local / "metrics.csv").read_text() == "step,loss\n1,0.5\n"


# ------------------------------------------------------------------ 8. messages during faults


def test_a_link_that_never_answers_gives_a_message_and_no_paramiko_traceback(user_key, tmp_path):
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the backlog; no SSH banner ever comes, as on a frozen link
    code = textwrap.dedent(f"""
        import threading, paramiko
        from pathlib import Path
        from ec2kit.errors import RemoteError
        from ec2kit.ssh import SshTarget
        from ec2kit.ssh.fabric import FabricTransport
        target = SshTarget("127.0.0.1", {silent.getsockname()[1]}, "ubuntu", Path({str(user_key)!r}), "i-silent",
                           Path({str(tmp_path / "known_hosts")!r}), "silent")
        try:
            FabricTransport(target, connect_timeout=1).run("true")
        except RemoteError as err:
            print("said:", err, err.hint)
        for t in threading.enumerate():  # paramiko's transport thread logs after the caller has its exception
            if isinstance(t, paramiko.Transport):
                t.join(10)
    """)
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        silent.close()
    assert "said: Cannot connect to silent" in done.stdout, done
    assert "Traceback" not in done.stderr, done.stderr
    assert "may still be booting" not in done.stdout
