"""examples/classifier.py (plain-Python backend): metrics.csv, a checkpoint every epoch, resume to the same result."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "classifier.py"


def train(results: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--results", str(results), "--backend", "python", "--samples", "120", *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout


def _rows(results: Path) -> list[dict[str, str]]:
    with (results / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_a_run_stopped_and_resumed_from_its_checkpoint_ends_where_an_unbroken_run_does(tmp_path):
    train(tmp_path / "straight", "--epochs", "8")
    train(tmp_path / "broken", "--epochs", "3")
    assert json.loads((tmp_path / "broken" / "checkpoint.json").read_text())["epoch"] == 3
    said = train(tmp_path / "broken", "--epochs", "8")
    assert "resumed from" in said and "epochs 4..8" in said
    straight, broken = _rows(tmp_path / "straight"), _rows(tmp_path / "broken")
    assert [r["epoch"] for r in broken] == [str(e) for e in range(1, 9)]
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in broken] == [
        {k: v for k, v in r.items() if k not in drop} for r in straight
    ]
    assert json.loads((tmp_path / "broken" / "final.json").read_text())["val_acc"] == straight[-1]["val_acc"]


def test_metrics_rows_past_the_checkpoint_are_dropped_on_resume(tmp_path):
    results = tmp_path / "r"
    train(results, "--epochs", "2")
    with (results / "metrics.csv").open("a") as f:
        f.write("3,9,9,0.1,0.3,0.0,1\n")  # written, then interrupted before its checkpoint
    train(results, "--epochs", "4")
    rows = _rows(results)
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"] and rows[2]["train_loss"] != "9"


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed here")
def test_asking_for_torch_where_it_is_missing_is_a_clear_error(tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--results", str(tmp_path), "--backend", "torch"], capture_output=True, text=True
    )
    assert done.returncode != 0 and "PyTorch is not installed" in done.stderr and "Traceback" not in done.stderr


def test_the_example_grid_file_makes_four_combinations_and_one_longer_run():
    from ec2kit.sweep.grid import expand, load_file

    runs = expand([], load_file(str(EXAMPLE.with_name("classifier-grid.toml"))))
    assert [(r["lr"], r["hidden"]) for r in runs[:4]] == [("0.3", "8"), ("0.3", "32"), ("0.1", "8"), ("0.1", "32")]
    assert runs[4] == {"lr": "0.03", "hidden": "32", "epochs": "60"}
