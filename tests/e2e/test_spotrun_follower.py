"""The follower against a real sshd host: log lines, incremental results, final pull."""

from __future__ import annotations

import os
import textwrap
import threading
import time
from pathlib import Path

import pytest
from cli_helpers import wait_for

from ec2kit.spotrun.commands import kill_command, render_wrapper, start_command
from ec2kit.spotrun.follower import Follower
from ec2kit.ssh import SshTarget, Transport, connect


@pytest.fixture
def host(sshd_host, user_key, tmp_path):
    target = SshTarget("127.0.0.1", sshd_host.port, sshd_host.user, user_key, "i-follower", tmp_path / "known_hosts", "box")
    with connect(target) as h:
        yield h


def start(host: Transport, sshd_host, run: str, script: str, **opts) -> Path:
    d = sshd_host.home / "ec2kit" / run
    d.mkdir(parents=True)
    (d / "job.sh").write_text(script)
    (d / "wrapper.sh").write_text(render_wrapper(run, "job.sh", poll=0.5, **opts))
    host.run(start_command(run, 1, env={"EC2KIT_POWEROFF": "true", "EC2KIT_IMDS": "http://127.0.0.1:9"}))
    return d


def test_follow_prints_the_log_pulls_results_and_ends_with_the_status(host, sshd_host, tmp_path):
    script = "#!/bin/bash\nfor i in 1 2 3; do echo step $i; echo $i > $EC2KIT_RESULTS/r$i.txt; sleep 0.3; done\n"
    d = start(host, sshd_host, "fol1", script, pull_wait=20)
    lines: list[str] = []
    f = Follower(
        host, "fol1", tmp_path / "results", local_log=tmp_path / "log", out=lines.append, pull_interval=0.5, poll_interval=0.2
    )
    status = f.follow()
    assert status["state"] == "succeeded"
    assert [l for l in lines if l.startswith("step")] == ["step 1", "step 2", "step 3"]
    assert f.finish()
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["r1.txt", "r2.txt", "r3.txt"]
    assert (d / "pulled").exists()
    # The local copy holds the log up to the end (the wrapper writes its last line before the status says
    # "ended"); only what the wrapper says after the final pull ("powering off") may be missing.
    remote = (d / "log").read_text()
    last = remote.index("waiting up to 20s for the final pull")
    assert (tmp_path / "log").read_text() == remote[: remote.index("\n", last) + 1]


def test_results_written_while_running_arrive_with_the_next_pull(host, sshd_host, tmp_path):
    d = start(host, sshd_host, "lag1", "#!/bin/bash\nsleep 30\n", pull_wait=0)
    f = Follower(host, "lag1", tmp_path / "results", out=lambda _l: None, pull_interval=1.0, poll_interval=0.5)
    stop = threading.Event()
    thread = threading.Thread(target=f.follow, kwargs={"should_stop": stop.is_set})
    thread.start()
    try:
        wait_for(lambda: f.pulls >= 1, what="the first pull")
        (d / "results" / "late.txt").write_text("x")
        pulls_when_written = f.pulls
        wait_for(lambda: (tmp_path / "results" / "late.txt").exists(), timeout=20, what="late.txt to arrive")
        pulls_when_arrived = f.pulls
    finally:
        stop.set()
        thread.join()
        host.run(kill_command("lag1"), check=False)
    # the pull under way when it was written may miss it; the one after must bring it
    assert pulls_when_arrived <= pulls_when_written + 2


def test_push_sends_local_results_back_to_the_instance(host, sshd_host, tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "checkpoint.json").write_text('{"step": 4}')
    f = Follower(host, "push1", tmp_path / "results")
    f.push()
    assert (sshd_host.home / "ec2kit" / "push1" / "results" / "checkpoint.json").read_text() == '{"step": 4}'


def test_pull_failure_is_reported_not_raised(sshd_host, user_key, tmp_path):
    target = SshTarget("127.0.0.1", 9, sshd_host.user, user_key, "i-gone", tmp_path / "kh", "gone")
    f = Follower(connect(target), "x", tmp_path / "results")
    f.host._home = "/nonexistent"  # skip the round trip to a host that is not there
    assert f.pull() is False


def test_pulls_of_one_run_take_turns_the_follower_skips_and_inv_pull_waits(host, sshd_host, tmp_path):
    from ec2kit.fsutil import file_lock

    remote = sshd_host.home / "ec2kit" / "turns1" / "results"
    remote.mkdir(parents=True)
    (remote / "model.ckpt").write_bytes(b"x" * 4096)
    follower = Follower(host, "turns1", tmp_path / "results", out=lambda _l: None)
    user = Follower(host, "turns1", tmp_path / "results", out=lambda _l: None)
    told = threading.Event()
    user.busy = told.set
    done: dict = {}
    with file_lock(follower.lock_path()):  # a pull of this run is under way (held as every pull holds it)
        assert follower.pull(wait=False) is True and follower.pulls == 0  # the follower's periodic pull skips its turn
        waiting = threading.Thread(target=lambda: done.update(ok=user.pull()))
        waiting.start()
        assert told.wait(20), "inv pull never said it waits for the other pull"
        assert waiting.is_alive() and user.pulls == 0 and not (tmp_path / "results" / "model.ckpt").exists()
    waiting.join(30)
    assert done == {"ok": True} and user.pulls == 1
    assert (tmp_path / "results" / "model.ckpt").read_bytes() == b"x" * 4096


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small filesystem in the host's mount namespace")
def test_a_run_directory_on_a_full_disk_still_ends_with_a_status_that_says_so(host, sshd_host, tmp_path):
    run = "full1"
    d = f"$HOME/ec2kit/{run}"
    # The whole run directory (status, log, results) on a 1.2 MiB filesystem: once the script fills it,
    # nothing can be written there except with the 1 MiB the wrapper kept aside.
    host.run(f'mkdir -p "{d}" && mount -t tmpfs -o size=1200k ec2kit-full "{d}"')
    try:
        host.put_bytes(
            b'#!/bin/bash\necho before > "$EC2KIT_RESULTS/before.txt"\nhead -c 4M /dev/zero > big\nsleep 300\n',
            f"ec2kit/{run}/job.sh",
            mode=0o755,
        )
        host.put_bytes(render_wrapper(run, "job.sh", poll=0.5, pull_wait=20).encode(), f"ec2kit/{run}/wrapper.sh", mode=0o755)
        host.run(start_command(run, 1, env={"EC2KIT_POWEROFF": "true", "EC2KIT_IMDS": "http://127.0.0.1:9"}))
        lines: list[str] = []
        f = Follower(host, run, tmp_path / "results", out=lines.append, pull_interval=0.5, poll_interval=0.3)
        give_up = time.monotonic() + 90  # without the fix the status says "running" for ever
        status = f.follow(should_stop=lambda: time.monotonic() > give_up)
        assert (status["state"], status.get("why")) == ("failed", "disk-full"), status
        assert any(l.startswith("=== ec2kit: the instance's disk is full (") for l in lines), lines
        assert f.finish()
        assert (tmp_path / "results" / "before.txt").read_text() == "before\n"
    finally:
        host.run(kill_command(run), check=False)
        host.run(f'cd / && umount -l "{d}"; rm -rf "{d}"', check=False)


def torn(data: bytes) -> str | None:
    """Why ``data`` is not one complete checkpoint of the writer below (None: it is complete)."""
    if not data.startswith(b"BEGIN ") or not data.endswith(b"\n"):
        return f"{len(data)} bytes, starts {data[:12]!r}, ends {data[-12:]!r}"
    step = data.split(b"\n", 1)[0][6:]
    if not data.endswith(b"END " + step + b"\n") or len(data) != 6 + len(step) + 1 + 1024 * 1024 + 4 + len(step) + 1:
        return f"step {step!r}: {len(data)} bytes, ends {data[-12:]!r}"
    return None


def test_a_checkpoint_rewritten_in_place_during_pulls_never_comes_home_torn(host, sshd_host, tmp_path):
    # As torch.save(path) does: open, truncate, write in pieces (here 1 MiB in 16 slow pieces), close.
    writer = textwrap.dedent("""\
        import os, sys, time
        path = os.path.join(os.environ["EC2KIT_RESULTS"], "model.ckpt")
        for step in range(1, 11):
            with open(path, "wb") as f:
                f.write(b"BEGIN %d\\n" % step)
                for _ in range(16):
                    f.write(b"x" * 65536); f.flush(); time.sleep(0.02)
                f.write(b"END %d\\n" % step)
            time.sleep(0.5)  # a checkpoint every 0.8 s, written for 0.3 s of it
    """)
    d = start(host, sshd_host, "tear1", f"#!/bin/bash\nexec python3 - <<'EOF'\n{writer}EOF\n", pull_wait=20)
    local = tmp_path / "results" / "model.ckpt"
    f = Follower(host, "tear1", tmp_path / "results", out=lambda _l: None, pull_interval=0.1, poll_interval=0.2)
    seen: list[str] = []
    kept_back: list[str] = []
    done = threading.Event()

    def watch_home() -> None:  # the home copy as often as it can be read, during pulls too
        while not done.is_set():
            try:
                data = local.read_bytes()
            except FileNotFoundError:
                continue
            seen.append(torn(data) or "complete")

    watcher = threading.Thread(target=watch_home)
    watcher.start()
    try:
        assert f.follow(should_stop=lambda: kept_back.extend(f.torn) and False)["state"] == "succeeded"
        assert f.finish()
    finally:
        done.set()
        watcher.join()
    bad = [s for s in seen if s != "complete"]
    assert not bad, bad[:5]
    assert len(seen) >= 10 and kept_back, (len(seen), kept_back)  # pulls met the writer mid-file and kept it back
    assert local.read_bytes() == (d / "results" / "model.ckpt").read_bytes()  # the last one, complete


def test_a_log_appended_to_all_the_time_still_comes_home_as_it_grows(host, sshd_host, tmp_path):
    # A metrics line every 0.1 s (examples/train.py writes one per step): most pulls meet an append.
    script = '#!/bin/bash\nfor i in $(seq 1 80); do echo "step $i" >> $EC2KIT_RESULTS/metrics.log; sleep 0.1; done\n'
    d = start(host, sshd_host, "grow1", script, pull_wait=20)
    log = tmp_path / "results" / "metrics.log"
    sizes: list[int] = []

    def look() -> bool:  # between pulls: how much of the log is home
        if log.exists():
            sizes.append(log.stat().st_size)
        return False

    f = Follower(host, "grow1", tmp_path / "results", out=lambda _l: None, pull_interval=0.2, poll_interval=0.2)
    assert f.follow(should_stop=look)["state"] == "succeeded"
    assert f.finish()
    grown = sorted(set(sizes))
    assert len(grown) >= 3, grown  # it came home while it was written, not only at the end
    assert log.read_text() == (d / "results" / "metrics.log").read_text()
