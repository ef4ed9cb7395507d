"""Spot runs end to end on the sandbox: moto's EC2 API plus a real sshd per instance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ec2kit.context import Context
from ec2kit.spotrun import SpotRunOptions, cleanup, list_runs, pull, spot_run, stop_run
from ec2kit.spotrun.lifecycle import RUN_TAG

ROOT = Path(__file__).resolve().parent.parent
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
    return SpotRunOptions(script=script_path, name=name, type="t3.micro", results=str(tmp_path / "results"),
                          out=sink.append, say=sink.append, **{**FAST, **kw})


def run_resources(sandbox, run: str) -> dict[str, list[str]]:
    """What the run still holds in the sandbox account: live instances, volumes, open requests."""
    ec2 = sandbox.ec2
    tag = [{"Name": f"tag:{RUN_TAG}", "Values": [run]}]
    live = ["pending", "running", "stopping", "stopped", "shutting-down"]
    instances = [i["InstanceId"] for r in ec2.describe_instances(Filters=tag + [{"Name": "instance-state-name", "Values": live}])["Reservations"] for i in r["Instances"]]
    volumes = [v["VolumeId"] for v in ec2.describe_volumes(Filters=tag)["Volumes"]]
    requests = [r["SpotInstanceRequestId"] for r in ec2.describe_spot_instance_requests(Filters=tag)["SpotInstanceRequests"] if r["State"] in ("open", "active")]
    return {k: v for k, v in {"instances": instances, "volumes": volumes, "requests": requests}.items() if v}


def test_successful_run_brings_results_home_and_leaves_nothing_behind(ctx, sandbox, tmp_path):
    lines: list[str] = []
    s = script(tmp_path, """\
        echo "hello from attempt $EC2KIT_ATTEMPT"
        cat data.txt
        echo 42 > "$EC2KIT_RESULTS/answer.txt"
        mkdir -p "$EC2KIT_RESULTS/sub" && echo deep > "$EC2KIT_RESULTS/sub/file"
    """)
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
    s = script(tmp_path, """\
        echo partial > "$EC2KIT_RESULTS/partial.txt"
        echo "something went wrong" >&2
        exit 3
    """)
    rec = spot_run(ctx, options(tmp_path, s, "fail-run", lines))
    assert rec.state == "failed" and rec.exit_code == 3
    assert (tmp_path / "results" / "partial.txt").read_text() == "partial\n"
    assert any("something went wrong" in l and "Last lines" in l for l in lines)
    assert run_resources(sandbox, "fail-run") == {}
