"""The instance-side wrapper, run for real in tmux on a plain sshd host.

The metadata service is a tiny local HTTP endpoint of our own (IMDSv2 token +
spot/instance-action), and EC2KIT_POWEROFF records the power-off in a file.
"""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_helpers import wait_for

from ec2kit.spotrun.commands import kill_command, parse_poll, poll_command, render_wrapper, start_command, tmux


class Imds:
    """An IMDSv2-shaped endpoint: 404 on spot/instance-action until ``notice()``."""

    def __init__(self) -> None:
        self.noticed = False
        self.action_polls = 0  # authenticated reads of spot/instance-action
        imds = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_PUT(self):
                ok = self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
                self._send(200 if ok else 400, b"token123")

            def do_GET(self):
                if self.headers.get("X-aws-ec2-metadata-token") != "token123":
                    return self._send(401, b"")
                if self.path == "/latest/meta-data/spot/instance-action":
                    imds.action_polls += 1
                    if imds.noticed:
                        return self._send(200, b'{"action": "terminate", "time": "2026-11-26T00:00:00Z"}')
                self._send(404, b"")

            def _send(self, code, body):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def notice(self) -> None:
        self.noticed = True


@pytest.fixture
def imds():
    server = Imds()
    yield server
    server.server.shutdown()


def ssh(host, key: Path, command: str) -> subprocess.CompletedProcess:
    argv = [
        "ssh",
        "-i",
        str(key),
        "-p",
        str(host.port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "BatchMode=yes",
        f"{host.user}@127.0.0.1",
        command,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def start(host, key, tmp_path, imds, run, script_text, **wrapper_opts) -> Path:
    """Lay out ~/ec2kit/RUN on the host, start the wrapper in tmux; return the run dir."""
    d = host.home / "ec2kit" / run
    d.mkdir(parents=True)
    (d / "job.sh").write_text(script_text)
    (d / "wrapper.sh").write_text(render_wrapper(run, "job.sh", poll=0.2, **wrapper_opts))
    env = {"EC2KIT_IMDS": imds.url, "EC2KIT_POWEROFF": f"touch {tmp_path}/poweroff"}
    result = ssh(host, key, start_command(run, 1, env=env))
    assert result.returncode == 0, result.stderr
    return d


def wrapper_exited(host, key, run: str) -> bool:
    """True once the run's tmux session (the wrapper) is gone: nothing of it can act any more."""
    return ssh(host, key, f"{tmux(run)} has-session -t {run} 2>/dev/null").returncode != 0


def status(d: Path) -> dict:
    try:
        return json.loads((d / "status").read_text())
    except (OSError, ValueError):
        return {}


def test_successful_script_gets_its_env_and_powers_off_after_the_final_pull(sshd_host, user_key, tmp_path, imds):
    script = '#!/bin/bash\necho "attempt=$EC2KIT_ATTEMPT run=$EC2KIT_RUN cwd=$PWD"\necho done > "$EC2KIT_RESULTS/out.txt"\n'
    d = start(sshd_host, user_key, tmp_path, imds, "ok1", script, pull_wait=30)
    wait_for(lambda: status(d).get("state") == "succeeded")
    assert status(d)["exit_code"] == 0 and status(d)["attempt"] == 1
    assert (d / "results" / "out.txt").read_text() == "done\n"
    log = (d / "log").read_text()
    assert f"attempt=1 run=ok1 cwd={d}" in log and "attempt 1 of run ok1 started" in log
    wait_for(lambda: "waiting up to 30s for the final pull" in (d / "log").read_text())
    assert not (tmp_path / "poweroff").exists(), "powered off before the local side pulled"
    (d / "pulled").touch()
    wait_for(lambda: (tmp_path / "poweroff").exists())


def test_failing_script_is_recorded_as_failed_with_its_exit_code(sshd_host, user_key, tmp_path, imds):
    d = start(sshd_host, user_key, tmp_path, imds, "fail1", "#!/bin/bash\necho oops\nexit 3\n", pull_wait=0)
    wait_for(lambda: status(d).get("state") == "failed")
    assert status(d)["exit_code"] == 3 and status(d)["ended_at"]
    wait_for(lambda: (tmp_path / "poweroff").exists())


def test_interruption_notice_stops_the_script_and_leaves_the_instance_to_ec2kit(sshd_host, user_key, tmp_path, imds):
    script = "#!/bin/bash\ntrap 'echo got-term > \"$EC2KIT_RESULTS/term\"; exit 143' TERM\nwhile true; do sleep 0.1; done\n"
    d = start(sshd_host, user_key, tmp_path, imds, "int1", script, pull_wait=0)
    wait_for(lambda: status(d).get("state") == "running")
    polls = imds.action_polls
    wait_for(lambda: imds.action_polls >= polls + 2, what="two more polls of spot/instance-action")
    assert status(d)["state"] == "running"  # polled with no notice: still running
    imds.notice()
    wait_for(lambda: status(d).get("state") == "interrupted" and status(d).get("ended_at"))
    assert (d / "results" / "term").read_text() == "got-term\n"
    assert "spot interruption notice" in (d / "log").read_text()
    wait_for(lambda: wrapper_exited(sshd_host, user_key, "int1"), what="the wrapper to exit")
    assert not (tmp_path / "poweroff").exists()


def test_max_hours_stops_the_script_and_powers_off_even_when_kept(sshd_host, user_key, tmp_path, imds):
    d = start(sshd_host, user_key, tmp_path, imds, "slow1", "#!/bin/bash\nsleep 60\n", max_hours=1 / 3600, keep=True, pull_wait=0)
    wait_for(lambda: status(d).get("state") == "timeout" and status(d).get("ended_at"))
    wait_for(lambda: (tmp_path / "poweroff").exists())


def test_kept_run_does_not_power_off(sshd_host, user_key, tmp_path, imds):
    d = start(sshd_host, user_key, tmp_path, imds, "keep1", "#!/bin/bash\necho hi\n", keep=True, pull_wait=0)
    wait_for(lambda: status(d).get("state") == "succeeded")
    wait_for(lambda: wrapper_exited(sshd_host, user_key, "keep1"), what="the wrapper to exit")
    assert not (tmp_path / "poweroff").exists()


def test_poll_returns_status_and_only_new_log_bytes(sshd_host, user_key, tmp_path, imds):
    d = start(sshd_host, user_key, tmp_path, imds, "poll1", "#!/bin/bash\necho line-one\nsleep 0.5\necho line-two\n", keep=True)
    wait_for(lambda: status(d).get("state") == "succeeded")
    first = parse_poll(ssh(sshd_host, user_key, poll_command("poll1", 0)).stdout, 0)
    assert first.status["state"] == "succeeded"
    assert "line-one" in first.text and "line-two" in first.text
    assert first.offset == (d / "log").stat().st_size
    again = parse_poll(ssh(sshd_host, user_key, poll_command("poll1", first.offset)).stdout, first.offset)
    assert again.text == "" and again.offset == first.offset


def _local_env(home: Path) -> dict[str, str]:
    return {"HOME": str(home), "PATH": "/usr/bin:/bin"}


def _lay_out(home: Path, run: str, wrapper: str) -> None:
    d = home / "ec2kit" / run
    d.mkdir(parents=True)
    (d / "wrapper.sh").write_text(wrapper + "\n")


def test_start_survives_a_tmux_server_that_is_exiting_as_it_connects(tmp_path):
    # A session that ends within a few ms, then a start: the start often connects
    # while the server (its last session gone) is exiting, and bare tmux then fails
    # with "server exited unexpectedly" (19 of 100 here). A restart after a spot
    # interruption, or a second run on the same instance, meets the same race.
    home = tmp_path / "h"
    failures = []
    for i in range(100):
        _lay_out(home, f"short{i}", f"sleep {(i % 20) * 0.001}")
        _lay_out(home, f"next{i}", "exit 0")
        both = f"{start_command(f'short{i}', 1)} && {start_command(f'next{i}', 1)}"
        result = subprocess.run(["bash", "-c", both], capture_output=True, text=True, env=_local_env(home), timeout=30)
        if result.returncode != 0:
            failures.append(result.stderr.strip())
    assert failures == []


def test_start_reports_a_real_tmux_failure_as_it_is(tmp_path):
    home = tmp_path / "h"
    _lay_out(home, "dup", "sleep 30")
    start = ["bash", "-c", start_command("dup", 1)]
    first = subprocess.run(start, capture_output=True, text=True, env=_local_env(home), timeout=30)
    try:
        assert first.returncode == 0, first.stderr
        second = subprocess.run(start, capture_output=True, text=True, env=_local_env(home), timeout=30)
        assert second.returncode == 1
        assert second.stderr.strip() == "duplicate session: dup"
    finally:
        subprocess.run(["bash", "-c", kill_command("dup")], env=_local_env(home), timeout=30)


def test_many_runs_starting_and_ending_at_once_all_start(tmp_path):
    # Runs that start while others end, concurrently: each run has a tmux server of its own, so
    # no start can meet another run's exiting server.
    home = tmp_path / "h"
    for i in range(24):
        _lay_out(home, f"burst{i}", f"sleep {(i % 6) * 0.002}")
    procs = [
        subprocess.Popen(["bash", "-c", start_command(f"burst{i}", 1)], stderr=subprocess.PIPE, text=True, env=_local_env(home))
        for i in range(24)
    ]
    errors = [(p.wait(timeout=60), p.stderr.read().strip() if p.stderr else "") for p in procs]
    assert [e for e in errors if e[0] != 0] == []


def test_the_heartbeat_is_fresh_while_the_wrapper_lives_and_goes_stale_when_tmux_is_killed(sshd_host, user_key, tmp_path, imds):
    start(sshd_host, user_key, tmp_path, imds, "beat1", "#!/bin/bash\nsleep 60\n", pull_wait=0)

    def beat_age() -> float | None:
        return parse_poll(ssh(sshd_host, user_key, poll_command("beat1", 0)).stdout, 0).beat_age

    wait_for(lambda: (beat_age() or 99) <= 2, what="a fresh heartbeat")
    ssh(sshd_host, user_key, f"{tmux('beat1')} kill-server")  # as the OOM killer or a reboot would
    wait_for(lambda: (beat_age() or 0) >= 3, timeout=30, what="the heartbeat to go stale")
    ssh(sshd_host, user_key, kill_command("beat1"))
