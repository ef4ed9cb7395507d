"""`inv exec NAME --script S`: runs on an instance you already have, recorded like spot runs, never ending it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cli_helpers import assert_clean_error, run_inv, wait_for

JOB = """#!/bin/bash
echo "exec job on $(hostname) attempt $EC2KIT_ATTEMPT"
echo step,loss > "$EC2KIT_RESULTS/metrics.csv"
for i in 1 2 3; do echo "$i,$(( 10 - i ))" >> "$EC2KIT_RESULTS/metrics.csv"; echo "step $i"; sleep 0.3; done
echo 42 > "$EC2KIT_RESULTS/answer.txt"
echo done
"""


def _script(tmp_path: Path, text: str = JOB, name: str = "job.sh") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _state(home: Path, name: str) -> str:
    listed = json.loads(run_inv("instances", "--json", home=home).out)
    return next(i["state"] for i in listed if i["name"] == name and i["state"] != "terminated")


def _record(home: Path, run: str) -> dict:
    return next(r for r in json.loads(run_inv("runs", "--json", home=home).out) if r["name"] == run)


def test_an_attached_exec_run_brings_its_results_home_and_leaves_the_instance_running(sandbox, launched, tmp_path):
    home = sandbox.settings.home
    dirs = launched("ex-att")
    res = tmp_path / "res"
    done = run_inv(
        "exec", "ex-att", "--script", str(_script(tmp_path)), "--run", "ex-att-1", "--results", str(res), home=home, timeout=180
    )
    assert done.code == 0, done
    assert (res / "answer.txt").read_text() == "42\n"
    assert (res / "metrics.csv").read_text().splitlines()[-1] == "3,7"
    assert "step 3" in done.out and "done" in done.out
    rec = _record(home, "ex-att-1")
    assert rec["state"] == "succeeded" and rec["exit_code"] == 0
    assert rec["created"].get("instances", []) == [] and rec["options"]["existing"] == rec["instance_id"]
    assert _state(home, "ex-att") == "running"
    # the wrapper ended without powering off, and the instance carries no run tag (nothing may release it)
    assert "powering off" not in (dirs["ex-att"] / "home" / "ec2kit" / "ex-att-1" / "log").read_text()
    tags = json.loads(run_inv("instances", "--json", home=home).out)
    [inst] = [i for i in tags if i["name"] == "ex-att"]
    assert "ec2kit:run" not in inst["tags"]
    # its cost is its share of the machine's time at the machine's rate (the sandbox's t3 list price), not "unknown"
    rate = json.loads(run_inv("instances", "--json", home=home).out)
    hourly = next(i["hourly_price"] for i in rate if i["name"] == "ex-att")
    assert hourly and rec["hourly_price"] == hourly, (rec, hourly)
    assert "cost unknown" not in done.text and f"· ${rec['hourly_price'] * rec['instance_hours']:.4f}" in done.text, done.text


def test_a_detached_exec_run_is_followed_pulled_plotted_and_listed_on_its_instance(sandbox, launched, tmp_path):
    home = sandbox.settings.home
    launched("ex-det")
    res = tmp_path / "res"
    started = run_inv(
        "exec", "ex-det", "--script", str(_script(tmp_path)), "--run", "ex-det-1", "--results", str(res), "--detach",
        home=home, timeout=180,
    )  # fmt: skip
    assert started.code == 0, started
    assert "keeps running" in started.text
    follow = run_inv("logs", "ex-det-1", "--follow", home=home, timeout=120)
    assert follow.code == 0, follow
    assert "step 3" in follow.out and "done" in follow.out
    assert not (res / "answer.txt").exists()  # nothing follows a detached run: its results wait for the pull
    pulled = run_inv("pull", "ex-det-1", home=home)
    assert pulled.code == 0, pulled
    assert (res / "answer.txt").read_text() == "42\n"
    plotted = run_inv("plot", "ex-det-1", "--json", home=home)
    assert plotted.code == 0, plotted
    doc = json.loads(plotted.out)
    assert doc["run"] == "ex-det-1" and doc["metrics"]["loss"]["points"] == [[1, 9], [2, 8], [3, 7]]
    on = json.loads(run_inv("runs", "--on", "ex-det", "--json", home=home).out)
    assert [r["name"] for r in on] == ["ex-det-1"] and on[0]["state"] == "succeeded"
    assert _state(home, "ex-det") == "running"


def test_stop_run_of_an_exec_run_stops_the_script_and_leaves_the_instance_running(sandbox, launched, tmp_path):
    home = sandbox.settings.home
    dirs = launched("ex-stop")
    job = _script(tmp_path, '#!/bin/bash\necho $$ > "$EC2KIT_RESULTS/pid"\necho started\nsleep 300\n')
    res = tmp_path / "res"
    started = run_inv(
        "exec", "ex-stop", "--script", str(job), "--run", "ex-stop-1", "--results", str(res), "--detach", home=home, timeout=180
    )
    assert started.code == 0, started
    run_dir = dirs["ex-stop"] / "home" / "ec2kit" / "ex-stop-1"
    wait_for(lambda: "started" in (run_dir / "log").read_text(errors="replace"), timeout=30, what="the script to start")
    stopped = run_inv("stop-run", "ex-stop-1", home=home, timeout=120)
    assert stopped.code == 0, stopped
    pid = int((res / "pid").read_text())  # the final pull came first
    assert _record(home, "ex-stop-1")["state"] == "cancelled"
    assert _state(home, "ex-stop") == "running"
    # the script is gone from the instance, which still answers commands
    ps = run_inv("connect", "ex-stop", "--", f"[ -d /proc/{pid} ] && echo alive || echo gone", home=home)
    assert ps.code == 0 and ps.out.strip().endswith("gone"), ps
    cleaned = run_inv("cleanup", "--yes", home=home)
    assert cleaned.code == 0, cleaned
    assert _state(home, "ex-stop") == "running"


def test_queued_exec_runs_take_turns_and_side_by_side_runs_overlap(sandbox, launched, tmp_path):
    home = sandbox.settings.home
    dirs = launched("ex-q")
    # each run waits for a go file (so every run is started before the first one can end), then takes 1 s
    job = _script(
        tmp_path, '#!/bin/bash\necho "$EC2KIT_RUN start" >> "$HOME/order.txt"\n'
        'until [ -e "$HOME/go" ]; do sleep 0.1; done\nsleep 1\necho "$EC2KIT_RUN end" >> "$HOME/order.txt"\n'
    )  # fmt: skip
    order, go = dirs["ex-q"] / "home" / "order.txt", dirs["ex-q"] / "home" / "go"
    for run, extra in (("q1", []), ("q2", ["--queue"]), ("q3", ["--queue"])):
        done = run_inv("exec", "ex-q", "--script", str(job), "--run", run, "--detach", *extra, home=home, timeout=180)
        assert done.code == 0, done
    log = dirs["ex-q"] / "home" / "ec2kit"
    wait_for(lambda: "queued: waiting" in (log / "q3" / "log").read_text(), timeout=30, what="q3 to queue")
    assert order.read_text() == "q1 start\n"  # the queued ones wait for q1
    go.touch()
    wait_for(lambda: order.read_text().count(" end") == 3, timeout=60, what="three runs to end")
    events = order.read_text().split("\n")[:-1]
    assert events[:2] == ["q1 start", "q1 end"] and sorted(events[2:]) == sorted(["q2 start", "q2 end", "q3 start", "q3 end"])
    assert events[3] == events[2].replace("start", "end"), events  # one at a time
    assert "queued: waiting" in (log / "q2" / "log").read_text()
    order.unlink()
    go.unlink()
    for run in ("s1", "s2"):
        done = run_inv("exec", "ex-q", "--script", str(job), "--run", run, "--detach", home=home, timeout=180)
        assert done.code == 0, done
    wait_for(lambda: order.exists() and order.read_text().count("start") == 2, timeout=30, what="both to start")
    go.touch()
    wait_for(lambda: order.read_text().count(" end") == 2, timeout=60, what="two runs to end")
    assert "queued" not in (log / "s2" / "log").read_text()
    assert _state(home, "ex-q") == "running"


def test_exec_on_a_missing_instance_or_without_a_script_is_a_clean_error(sandbox, tmp_path):
    home = sandbox.settings.home
    missing = run_inv("exec", "no-such-box", "--script", str(_script(tmp_path)), home=home)
    assert_clean_error(missing, "no-such-box")
    bare = run_inv("exec", "no-such-box", home=home)
    assert_clean_error(bare, "--script")
    nothing = run_inv("exec", "no-such-box", "--script", str(tmp_path / "nope.sh"), home=home)
    assert_clean_error(nothing, "nope.sh", "does not exist")


def test_the_python_api_runs_exec_on_an_instance_object(sandbox, launched, tmp_path):
    from ec2kit import EC2

    launched("ex-api")
    with EC2(sandbox=True, home=sandbox.settings.home, quiet=True) as ec2:
        inst = ec2.instance("ex-api")
        run = inst.exec(_script(tmp_path), run="ex-api-1", results=tmp_path / "res")
        assert run.snapshot.state == "succeeded"
        assert (tmp_path / "res" / "answer.txt").read_text() == "42\n"
        assert [r.name for r in ec2.runs(on=inst)] == ["ex-api-1"]
        assert inst.refresh().state == "running"
    time.sleep(0)  # nothing to wait for: the run returned when its results were home


def test_an_exec_run_whose_wrapper_died_is_settled_lost_and_its_instance_keeps_running(sandbox, launched, tmp_path):
    from ec2kit.spotrun.commands import tmux

    home = sandbox.settings.home
    dirs = launched("ex-dead")
    job = _script(tmp_path, '#!/bin/bash\necho 1 > "$EC2KIT_RESULTS/step"\nsleep 300\n')
    res = tmp_path / "res"
    started = run_inv(
        "exec", "ex-dead", "--script", str(job), "--run", "ex-dead-1", "--results", str(res), "--detach", home=home, timeout=180
    )
    assert started.code == 0, started
    run_dir = dirs["ex-dead"] / "home" / "ec2kit" / "ex-dead-1"
    wait_for(lambda: (run_dir / "results" / "step").exists(), timeout=30, what="the script to start")
    killed = run_inv("connect", "ex-dead", "--", f"{tmux('ex-dead-1')} kill-server", home=home)
    assert killed.code == 0, killed

    def settled() -> dict | None:
        rec = _record(home, "ex-dead-1")
        return rec if rec["state"] == "lost" else None

    rec = wait_for(settled, timeout=90, what="inv runs to notice the dead wrapper")
    assert "left running (it is yours)" in rec["options"]["note"]
    assert (res / "step").read_text() == "1\n"  # the final pull came before the run was settled
    assert _state(home, "ex-dead") == "running"
