#!/usr/bin/env python3
"""A tiny pure-Python training loop for trying spot runs: fits y = 3x + 1 by SGD.

Writes into $EC2KIT_RESULTS (default ./results): checkpoint.json after every step
(with ec2kit's checkpoint.save: written beside, then renamed whole, so neither a pull nor an
interruption ever sees half a checkpoint; do the same with torch.save), metrics.csv
(step,loss,weight,bias,attempt) and, at the end, final.json. Resumes from the
checkpoint when one exists (a later attempt after a spot interruption).

Environment: TRAIN_STEPS (default 30), TRAIN_STEP_SECONDS (default 0.2).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

RESULTS = Path(os.environ.get("EC2KIT_RESULTS", "results"))
STEPS = int(os.environ.get("TRAIN_STEPS", "30"))
STEP_SECONDS = float(os.environ.get("TRAIN_STEP_SECONDS", "0.2"))
ATTEMPT = int(os.environ.get("EC2KIT_ATTEMPT", "1"))


try:
    from ec2kit.checkpoint import save
except ImportError:  # on the instance: a spot run ships it beside the script
    from ec2kit_checkpoint import save  # type: ignore[no-redef]


def save_json(path: Path, data: dict) -> None:
    """Write atomically: a reader sees the old file or the new one, never a mix."""
    save(path, lambda tmp: Path(tmp).write_text(json.dumps(data)))


def load_checkpoint() -> dict:
    path = RESULTS / "checkpoint.json"
    if path.exists():
        return json.loads(path.read_text())
    return {"step": 0, "weight": 0.0, "bias": 0.0, "attempts": []}


def trim_metrics(upto: int) -> None:
    """Drop metric rows after the checkpoint (written by an attempt that was cut short)."""
    path = RESULTS / "metrics.csv"
    if not path.exists():
        path.write_text("step,loss,weight,bias,attempt\n")
        return
    lines = path.read_text().splitlines()
    kept = [lines[0]] + [l for l in lines[1:] if l and int(l.split(",")[0]) <= upto]
    path.write_text("\n".join(kept) + "\n")


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    RESULTS.mkdir(parents=True, exist_ok=True)
    state = load_checkpoint()
    state["attempts"] = state.get("attempts", []) + [ATTEMPT]
    trim_metrics(state["step"])
    if state["step"]:
        print(f"resuming from step {state['step']} (attempt {ATTEMPT})", flush=True)
    rng = random.Random(42)
    data = [(x, 3 * x + 1) for x in (rng.uniform(-1, 1) for _ in range(64))]
    w, b = state["weight"], state["bias"]
    for step in range(state["step"] + 1, STEPS + 1):
        gw = sum(2 * (w * x + b - y) * x for x, y in data) / len(data)
        gb = sum(2 * (w * x + b - y) for x, y in data) / len(data)
        w, b = w - 0.3 * gw, b - 0.3 * gb
        loss = sum((w * x + b - y) ** 2 for x, y in data) / len(data)
        time.sleep(STEP_SECONDS)
        with open(RESULTS / "metrics.csv", "a") as f:
            f.write(f"{step},{loss:.6f},{w:.6f},{b:.6f},{ATTEMPT}\n")
        state.update(step=step, weight=w, bias=b)
        save_json(RESULTS / "checkpoint.json", state)
        print(f"step {step}/{STEPS} loss {loss:.6f}", flush=True)
    save_json(RESULTS / "final.json", {"steps": STEPS, "weight": w, "bias": b, "attempts": state["attempts"]})
    print(f"finished: w={w:.4f} b={b:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
