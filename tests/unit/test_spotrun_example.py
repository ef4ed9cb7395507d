"""examples/train.py: checkpoints every step and resumes to the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

TRAIN = Path(__file__).resolve().parents[2] / "examples" / "train.py"


def train(results: Path, attempt: int, steps: int = 12, step_seconds: float = 0.0) -> subprocess.Popen:
    env = {
        **os.environ,
        "EC2KIT_RESULTS": str(results),
        "EC2KIT_ATTEMPT": str(attempt),
        "TRAIN_STEPS": str(steps),
        "TRAIN_STEP_SECONDS": str(step_seconds),
    }
    return subprocess.Popen([sys.executable, str(TRAIN)], env=env, stdout=subprocess.PIPE, text=True)


def test_interrupted_training_resumes_to_the_same_result_as_an_uninterrupted_one(tmp_path):
    straight = train(tmp_path / "a", 1)
    straight.wait()
    expected = json.loads((tmp_path / "a" / "final.json").read_text())

    first = train(tmp_path / "b", 1, step_seconds=0.05)
    while (
        not (tmp_path / "b" / "checkpoint.json").exists()
        or json.loads((tmp_path / "b" / "checkpoint.json").read_text())["step"] < 3
    ):
        time.sleep(0.02)
    first.send_signal(signal.SIGTERM)
    assert first.wait() == 143
    assert not (tmp_path / "b" / "final.json").exists()
    second = train(tmp_path / "b", 2)
    assert "resuming from step" in second.communicate()[0]
    final = json.loads((tmp_path / "b" / "final.json").read_text())
    assert final["weight"] == expected["weight"] and final["attempts"] == [1, 2]
    steps = [int(line.split(",")[0]) for line in (tmp_path / "b" / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 13))
