"""examples/classifier.sh through `inv spot-run` on the sandbox: metrics.csv and a checkpoint come home every few
seconds, and after a spot interruption the next attempt resumes from the checkpoint (plain-Python backend: no torch)."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from cli_helpers import ROOT, run_inv, wait_for

EXAMPLES = ROOT / "examples"
TINY = "export EPOCHS=16 SAMPLES=120 EPOCH_SECONDS=0.6 BACKEND=python\nexec bash classifier.sh\n"


def _epoch(results: Path) -> int:
    try:
        return int(json.loads((results / "checkpoint.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def test_the_classifier_example_survives_a_spot_interruption_and_resumes_from_its_checkpoint(sandbox, tmp_path):
    from ec2kit import sandbox as sb
    from ec2kit.runs import Runs

    home = sandbox.settings.home
    files = tmp_path / "files"
    files.mkdir()
    for name in ("classifier.py", "classifier.sh"):
        shutil.copy(EXAMPLES / name, files / name)
    script = tmp_path / "tiny.sh"
    script.write_text("#!/bin/bash\n" + TINY)
    results = tmp_path / "results"
    finished: dict = {}

    def spot_run() -> None:
        finished["result"] = run_inv(
            "spot-run", "--script", str(script), "--files", str(files), "--name", "cls-run", "--type", "t3.micro",
            "--results", str(results), "--retries", "1", "--yes", home=home, timeout=300,
        )  # fmt: skip

    thread = threading.Thread(target=spot_run, daemon=True)
    thread.start()
    wait_for(lambda: _epoch(results) >= 3, 120, "a checkpoint pulled home")
    at = _epoch(results)
    sb.interrupt(sandbox.settings, Runs(sandbox.settings.runs_db).get("cls-run").instance_id, delay=0)
    thread.join(300)
    done = finished["result"]
    assert done.code == 0, done
    resumed = re.search(r"resumed from \S*checkpoint\.json at epoch (\d+) \(attempt 2\)", done.out)
    assert resumed and int(resumed[1]) >= at, done.out  # the second attempt found the checkpoint pushed back
    with (results / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 17)), "an epoch was lost or repeated"
    attempts = [r["attempt"] for r in rows]
    assert attempts[0] == "1" and attempts[-1] == "2" and attempts == sorted(attempts)
    assert int(next(r["epoch"] for r in rows if r["attempt"] == "2")) == int(resumed[1]) + 1  # continued there
    assert _epoch(results) == 16 and json.loads((results / "final.json").read_text())["epoch"] == 16
    # the resumed run learns exactly what an unbroken one does (same shuffles, weights and momentum)
    straight = tmp_path / "straight"
    subprocess.run(
        [sys.executable, str(EXAMPLES / "classifier.py"), "--results", str(straight), "--epochs", "16", "--samples", "120",
         "--backend", "python"], check=True, capture_output=True,
    )  # fmt: skip
    with (straight / "metrics.csv").open() as f:
        expected = [r["val_loss"] for r in csv.DictReader(f)]
    assert [r["val_loss"] for r in rows] == expected


def test_the_example_grid_file_sweeps_the_classifier_and_each_run_trains_its_own_settings(sandbox, tmp_path):
    home = sandbox.settings.home
    files = tmp_path / "files"
    files.mkdir()
    for name in ("classifier.py", "classifier.sh"):
        shutil.copy(EXAMPLES / name, files / name)
    script = tmp_path / "tiny.sh"  # the grid's EPOCHS (60 for its [[runs]] entry) wins over this default
    script.write_text("#!/bin/bash\nexport SAMPLES=80 BACKEND=python EPOCHS=${EPOCHS:-3}\nexec bash classifier.sh\n")
    done = run_inv(
        "sweep", "--script", str(script), "--files", str(files), "--grid-file", str(EXAMPLES / "classifier-grid.toml"),
        "--parallel", "3", "--type", "t3.micro", "--name", "clsw", "--results", str(tmp_path / "runs"), "--yes",
        home=home, timeout=400,
    )  # fmt: skip
    assert done.code == 0, done
    runs = tmp_path / "runs" / "clsw"
    finals = {p.parent.name: json.loads(p.read_text()) for p in sorted(runs.glob("clsw-*/final.json"))}
    assert [(f["lr"], f["hidden"], f["epoch"]) for f in finals.values()] == [
        (0.3, 8, 3), (0.3, 32, 3), (0.1, 8, 3), (0.1, 32, 3), (0.03, 32, 60)
    ]  # fmt: skip
    with (runs / "summary.csv").open() as f:
        summary = list(csv.DictReader(f))
    assert len(summary) == 5 and all(row["state"] == "succeeded" for row in summary), summary
