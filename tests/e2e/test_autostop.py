"""Idle autostop on sandbox instances: the watcher script runs inside the instance (the sandbox's loop stands in
for the systemd timer), powers it off by itself, and the instance's shutdown behaviour decides stop or terminate.

EC2KIT_IDLE_CHECK=1 makes the watcher look every second, so windows of a few seconds are allowed.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from cli_helpers import instance_dir, run_inv

FAST = {"EC2KIT_IDLE_CHECK": "1"}
WINDOW = 6  # seconds


def _stamp(line: str):  # noqa: ANN202
    from datetime import datetime

    return datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%SZ")


def state_of(sandbox, name: str) -> dict:
    found = sandbox.ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [name]}])
    [inst] = [i for r in found["Reservations"] for i in r["Instances"] if i["State"]["Name"] != "terminated"] or [
        i for r in found["Reservations"] for i in r["Instances"]
    ][-1:]
    return inst


def wait_for_state(sandbox, name: str, state: str, timeout: float) -> float:
    """Seconds until the instance reached ``state`` (fails after ``timeout``)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if state_of(sandbox, name)["State"]["Name"] == state:
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"{name} is {state_of(sandbox, name)['State']['Name']} after {timeout}s, not {state}")


def wait_for_log(log: Path, needle: str, timeout: float) -> str:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        text = log.read_text() if log.exists() else ""
        if needle in text:
            return text
        time.sleep(0.3)
    raise AssertionError(f"{needle!r} not in {log} after {timeout}s:\n{log.read_text() if log.exists() else '(none)'}")


@pytest.fixture
def idle_launch(sandbox):
    """``host = idle_launch("name", "--idle", "6s")``: launched with the fast watcher; terminated afterwards."""
    home, made = sandbox.settings.home, []

    def launch(name: str, *flags: str) -> Path:
        result = run_inv("launch", name, *flags, home=home, env=FAST)
        assert result.code == 0, result
        made.append(name)
        return instance_dir(home, name)

    yield launch
    for name in made:
        run_inv("terminate", name, home=home)


def ssh_argv(sandbox, name: str, command: str, *, tty: bool = False) -> list[str]:
    """The ssh argv ec2kit itself uses for NAME (pinned key), running ``command``."""
    from ec2kit import EC2

    ec2 = EC2(home=str(sandbox.settings.home), sandbox=True, quiet=True)
    argv = ec2.ssh_command(name, command=command)
    return [argv[0], "-tt", *argv[1:]] if tty else argv


def test_an_idle_instance_stops_itself_within_its_window_and_logs_why(sandbox, idle_launch):
    host = idle_launch("idle-stops", "--idle", f"{WINDOW}s")
    wait_for_state(sandbox, "idle-stops", "stopped", timeout=WINDOW + 40)
    log = (host / "autostop" / "autostop.log").read_text()
    [armed] = [line for line in log.splitlines() if "ec2kit: stop after" in line]
    [acted] = [line for line in log.splitlines() if "idle for" in line]
    seconds = (_stamp(acted) - _stamp(armed)).total_seconds()
    assert WINDOW <= seconds <= WINDOW + 5, f"powered off {seconds}s after it was armed, window {WINDOW}s:\n{log}"
    inst = state_of(sandbox, "idle-stops")
    assert inst["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert tags["ec2kit:idle"] == f"{WINDOW}s stop"
    attr = sandbox.ec2.describe_instance_attribute(InstanceId=inst["InstanceId"], Attribute="instanceInitiatedShutdownBehavior")
    assert attr["InstanceInitiatedShutdownBehavior"]["Value"] == "stop"
    assert "no SSH session, no tmux client, no process above 10% CPU" in log and ": stop (" in log
    # the disk is kept: the home directory is still there, and it starts again with the window restarted
    assert (host / "home").is_dir()


def arm(sandbox, name: str, *flags: str) -> None:
    result = run_inv("autostop", name, *flags, home=sandbox.settings.home, env=FAST)
    assert result.code == 0, result


def test_an_open_ssh_session_keeps_it_running_and_closing_it_lets_it_stop(sandbox, launched):
    host = launched("idle-ssh")["idle-ssh"]
    log = host / "autostop" / "autostop.log"
    session = subprocess.Popen(
        ssh_argv(sandbox, "idle-ssh", "sleep 120", tty=True),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        arm(sandbox, "idle-ssh", f"{WINDOW}s")
        wait_for_log(log, "active: SSH session", timeout=20)
        time.sleep(WINDOW + 3)  # a whole window with the session open
        assert state_of(sandbox, "idle-ssh")["State"]["Name"] == "running"
    finally:
        session.kill()
        session.wait()
    wait_for_state(sandbox, "idle-ssh", "stopped", timeout=WINDOW + 40)
    assert "last work: SSH session" in log.read_text()


def test_a_busy_process_keeps_it_running_until_it_ends(sandbox, launched):
    host = launched("idle-busy")["idle-busy"]
    log = host / "autostop" / "autostop.log"
    start_busy = "nohup sh -c 'while :; do :; done' >/dev/null 2>&1 & echo $! >busy.pid"
    assert subprocess.run(ssh_argv(sandbox, "idle-busy", start_busy), capture_output=True, timeout=30).returncode == 0
    arm(sandbox, "idle-busy", f"{WINDOW}s")
    text = wait_for_log(log, "% CPU", timeout=20)
    assert "active: process" in text
    time.sleep(WINDOW + 3)
    assert state_of(sandbox, "idle-busy")["State"]["Name"] == "running"
    assert subprocess.run(ssh_argv(sandbox, "idle-busy", "kill $(cat busy.pid)"), capture_output=True, timeout=30).returncode == 0
    wait_for_state(sandbox, "idle-busy", "stopped", timeout=WINDOW + 40)


def test_autostop_off_disarms_the_watcher_and_arming_again_stops_it(sandbox, launched):
    home = sandbox.settings.home
    host = launched("idle-off")["idle-off"]
    arm(sandbox, "idle-off", "1m")
    off = run_inv("autostop", "idle-off", "off", home=home, env=FAST)
    assert off.code == 0, off
    assert "idle-off: autostop off" in off.out
    time.sleep(2 * WINDOW + 2)
    assert state_of(sandbox, "idle-off")["State"]["Name"] == "running"
    assert "ec2kit: off" in (host / "autostop" / "autostop.log").read_text()
    armed = run_inv("autostop", "idle-off", f"{WINDOW}s", "--action", "terminate", "--json", home=home, env=FAST)
    assert armed.code == 0, armed
    assert json.loads(armed.out)["action"] == "terminate"
    wait_for_state(sandbox, "idle-off", "terminated", timeout=WINDOW + 40)


def test_instances_shows_the_autostop_and_the_idle_time_without_resetting_it(sandbox, idle_launch):
    home = sandbox.settings.home
    idle_launch("idle-list", "--idle", "10m")
    first = run_inv("instances", home=home, env=FAST)
    assert first.code == 0, first
    [row] = [line for line in first.out.splitlines() if line.startswith("idle-list ")]
    assert "10m stop" in row
    time.sleep(3)
    second = run_inv("instances", home=home, env=FAST)
    [row] = [line for line in second.out.splitlines() if line.startswith("idle-list ")]
    assert row.split()[-1].endswith("s") and int(row.split()[-1].rstrip("s")) >= 3  # the listing's own SSH did not count
    listed = run_inv("instances", "--json", home=home, env=FAST)
    [item] = [i for i in json.loads(listed.out) if i["name"] == "idle-list"]
    assert item["tags"]["ec2kit:idle"] == "10m stop" and item["idle_seconds"] >= 3


def test_shutdown_on_a_sandbox_machine_stops_or_terminates_it_by_its_shutdown_behaviour(sandbox, launched):
    launched("halt-me")
    out = subprocess.run(
        ssh_argv(sandbox, "halt-me", "command -v shutdown; shutdown -h now"), capture_output=True, text=True, timeout=30
    )
    assert out.stdout.strip().endswith("/bin/shutdown"), out
    assert "/sandbox/hosts/" in out.stdout
    wait_for_state(sandbox, "halt-me", "stopped", timeout=30)
    assert state_of(sandbox, "halt-me")["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"


@pytest.mark.parametrize("collect", ["pull", "stop-run"])
def test_a_finished_detached_run_stops_itself_and_inv_pull_brings_everything_home_and_terminates(sandbox, tmp_path, collect):
    home = sandbox.settings.home
    run = f"park-{collect}"
    env = {"EC2KIT_STOP_UNPULLED_AFTER": "3s"}
    script = tmp_path / "job.sh"
    script.write_text(
        '#!/bin/bash\nmkdir -p "$EC2KIT_RESULTS/sub"\necho model >"$EC2KIT_RESULTS/model.bin"\n'
        'echo deep >"$EC2KIT_RESULTS/sub/deep.txt"\necho done\n'
    )
    results = tmp_path / "results"
    started = run_inv(
        "spot-run", "--script", str(script), "--name", run, "--detach", "--results", str(results),
        home=home, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert started.code == 0, started
    found = sandbox.ec2.describe_instances(Filters=[{"Name": "tag:ec2kit:run", "Values": [run]}])
    [inst] = [i for r in found["Reservations"] for i in r["Instances"]]
    instance_id = inst["InstanceId"]

    def state() -> str:
        return sandbox.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]

    deadline = time.monotonic() + 60
    while state() != "stopped" and time.monotonic() < deadline:
        time.sleep(0.5)
    described = sandbox.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert described["State"]["Name"] == "stopped", described["State"]
    assert described["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"
    assert not (results / "model.bin").exists()  # nothing pulled it: the results are on the stopped disk only

    runs = run_inv("runs", "--json", home=home, env=env, cwd=tmp_path)
    assert runs.code == 0, runs
    [row] = [r for r in json.loads(runs.out) if r["name"] == run]
    assert row["note"] == f"stopped, results on disk; `inv pull {run}`"
    assert row["options"]["stopped_unpulled"] is True

    pulled = run_inv(collect, run, home=home, env=env, cwd=tmp_path, timeout=300)
    assert pulled.code == 0, pulled
    assert "starting it" in pulled.out + pulled.err
    assert (results / "model.bin").read_text() == "model\n"
    assert (results / "sub" / "deep.txt").read_text() == "deep\n"
    deadline = time.monotonic() + 60
    while state() not in ("terminated", "shutting-down") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert state() in ("terminated", "shutting-down")


def test_a_running_ec2kit_run_counts_as_work_with_nobody_connected(sandbox, launched):
    host = launched("idle-run")["idle-run"]
    log = host / "autostop" / "autostop.log"
    # what the spot-run/exec wrapper keeps: ~/ec2kit/RUN/status (running) and a fresh ~/ec2kit/RUN/.beat
    run_dir = host / "home" / "ec2kit" / "job1"
    run_dir.mkdir(parents=True)
    (run_dir / "status").write_text('{"run": "job1", "state": "running", "exit_code": null}\n')
    (run_dir / ".beat").write_text(str(int(time.time())))
    arm(sandbox, "idle-run", f"{WINDOW}s")
    wait_for_log(log, "active: run job1 is running", timeout=20)
    time.sleep(WINDOW + 3)
    assert state_of(sandbox, "idle-run")["State"]["Name"] == "running"
    (run_dir / "status").write_text('{"run": "job1", "state": "succeeded", "exit_code": 0}\n')  # the script ended
    wait_for_state(sandbox, "idle-run", "stopped", timeout=WINDOW + 40)
    assert "last work: run job1 is running" in log.read_text()


def test_an_attached_tmux_client_counts_as_work_without_an_ssh_terminal(sandbox, launched):
    host = launched("idle-tmux")["idle-tmux"]
    log = host / "autostop" / "autostop.log"
    # a tmux client on a terminal of its own (script(1) gives it one), started by a command without a terminal
    attach = "export TERM=xterm; nohup script -qfc 'tmux -L idle-test new-session -s t sleep 600' /dev/null </dev/null >/dev/null 2>&1 & sleep 1"
    assert subprocess.run(ssh_argv(sandbox, "idle-tmux", attach), capture_output=True, timeout=30).returncode == 0
    arm(sandbox, "idle-tmux", f"{WINDOW}s")
    wait_for_log(log, "active: tmux client on pts/", timeout=20)
    time.sleep(WINDOW + 3)
    assert state_of(sandbox, "idle-tmux")["State"]["Name"] == "running"
    detach = "tmux -L idle-test detach-client -a 2>/dev/null; tmux -L idle-test detach-client; true"
    assert subprocess.run(ssh_argv(sandbox, "idle-tmux", detach), capture_output=True, timeout=30).returncode == 0
    wait_for_state(sandbox, "idle-tmux", "stopped", timeout=WINDOW + 40)
    assert "last work: tmux client" in log.read_text()


def test_a_one_time_spot_instance_can_only_terminate_when_idle(sandbox, idle_launch):
    home = sandbox.settings.home
    refused = run_inv("launch", "idle-spot", "--spot", "--idle", f"{WINDOW}s", "--idle-action", "stop", home=home, env=FAST)
    assert refused.code != 0 and "one-time spot instance cannot stop" in refused.err + refused.out
    assert not sandbox.ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["idle-spot"]}])["Reservations"]
    idle_launch("idle-spot", "--spot", "--idle", "10m")  # the action defaults to terminate, and says so
    inst = state_of(sandbox, "idle-spot")
    assert {t["Key"]: t["Value"] for t in inst["Tags"]}["ec2kit:idle"] == "10m terminate"
    arm(sandbox, "idle-spot", f"{WINDOW}s")
    wait_for_state(sandbox, "idle-spot", "terminated", timeout=WINDOW + 40)


def test_a_watcher_that_cannot_be_installed_is_a_clear_error_and_no_tag_claims_it(sandbox, launched):
    host = launched("idle-broken")["idle-broken"]
    (host / "autostop").write_text("a file where the watcher's directory goes\n")  # mkdir -p fails on the machine
    result = run_inv("autostop", "idle-broken", "10m", "--action", "terminate", home=sandbox.settings.home, env=FAST)
    assert result.code != 0 and "Traceback" not in result.err
    assert "Could not set the autostop of idle-broken" in result.err and "`inv autostop idle-broken 10m`" in result.err
    attr = sandbox.ec2.describe_instance_attribute(
        InstanceId=state_of(sandbox, "idle-broken")["InstanceId"], Attribute="instanceInitiatedShutdownBehavior"
    )
    assert attr["InstanceInitiatedShutdownBehavior"]["Value"] == "stop"  # put back: no watcher, no terminate
    tags = {t["Key"]: t["Value"] for t in state_of(sandbox, "idle-broken")["Tags"]}
    assert "ec2kit:idle" not in tags
