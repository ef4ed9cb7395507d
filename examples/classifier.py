#!/usr/bin/env python3
"""A small training script shaped like real work: an MLP classifier with checkpoints, resume and metrics.csv.

Uses PyTorch when it is installed (``--backend auto``, the default); without it the same model (2 -> hidden,
tanh -> 1, logistic loss, SGD with momentum) runs in plain Python, so it also runs on a bare instance and in
ec2kit's tests. The data is a synthetic two-moons set made from ``--seed``, so nothing is downloaded.

Results (into ``--results``, default ``$EC2KIT_RESULTS`` or ./results, which ec2kit brings home):
  metrics.csv       epoch,train_loss,val_loss,val_acc,lr,seconds,attempt (one row per epoch)
  checkpoint.pt     (torch) or checkpoint.json (plain Python): weights, optimizer, RNG state, epoch;
                    written whole every epoch (beside its name, then renamed), so a pull never sees half of one
  final.json        the last epoch's numbers
Resumes by itself when ``--results`` holds a checkpoint (a spot run's next attempt after an interruption
gets its results back first), or from ``--resume PATH``: it continues at the next epoch, with the same
shuffles as a run that was never stopped.

Every option also reads an environment variable, so a sweep's grid (``LR=0.1 HIDDEN=32``) reaches it::

    inv spot-run --script examples/classifier.sh --files examples --retries 2
    inv sweep --script examples/classifier.sh --files examples --grid-file examples/classifier-grid.toml
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

COLUMNS = ["epoch", "train_loss", "val_loss", "val_acc", "lr", "seconds", "attempt"]


def options(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--epochs", type=int, default=int(env("EPOCHS", "20")), help="train until this epoch (EPOCHS)")
    p.add_argument("--lr", type=float, default=float(env("LR", "0.3")), help="learning rate (LR)")
    p.add_argument("--hidden", type=int, default=int(env("HIDDEN", "16")), help="hidden units (HIDDEN)")
    p.add_argument("--batch-size", type=int, default=int(env("BATCH_SIZE", "32")), help="(BATCH_SIZE)")
    p.add_argument("--samples", type=int, default=int(env("SAMPLES", "400")), help="training examples (SAMPLES)")
    p.add_argument("--seed", type=int, default=int(env("SEED", "0")), help="data, init and shuffles (SEED)")
    p.add_argument("--backend", choices=["auto", "torch", "python"], default=env("BACKEND", "auto"), help="(BACKEND)")
    p.add_argument("--results", type=Path, default=Path(env("EC2KIT_RESULTS", "results")), help="output directory")
    p.add_argument("--resume", type=Path, default=None, help="start from this checkpoint (default: one in --results)")
    p.add_argument("--epoch-seconds", type=float, default=float(env("EPOCH_SECONDS", "0")), help="pause per epoch (demos)")
    return p.parse_args(argv)


def moons(n: int, rng: random.Random) -> list[tuple[float, float, int]]:
    """Two interleaved half circles with noise: (x, y, label)."""
    points = []
    for i in range(n):
        label = i % 2
        t = math.pi * rng.random()
        x, y = (math.cos(t), math.sin(t)) if label == 0 else (1 - math.cos(t), 0.5 - math.sin(t))
        points.append((x + rng.gauss(0, 0.15), y + rng.gauss(0, 0.15), label))
    return points


def write_whole(path: Path, data: bytes) -> None:
    """Write beside ``path`` and rename: readers (ec2kit's pulls, the next attempt) see all of it or none."""
    tmp = path.with_name(path.name + ".ec2kit-tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -- the model in plain Python: 2 -> hidden (tanh) -> 1 logit


class PythonModel:
    def __init__(self, hidden: int, rng: random.Random) -> None:
        scale = 1 / math.sqrt(2)
        self.w1 = [[rng.uniform(-scale, scale) for _ in range(2)] for _ in range(hidden)]
        self.b1 = [0.0] * hidden
        self.w2 = [rng.uniform(-1 / math.sqrt(hidden), 1 / math.sqrt(hidden)) for _ in range(hidden)]
        self.b2 = 0.0
        self.velocity: dict[str, Any] = {}

    def params(self) -> dict[str, Any]:
        return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}

    def load(self, state: dict[str, Any]) -> None:
        self.w1, self.b1, self.w2, self.b2 = state["w1"], state["b1"], state["w2"], state["b2"]
        self.velocity = state.get("velocity", {})

    def forward(self, x: float, y: float) -> tuple[list[float], float]:
        h = [math.tanh(w[0] * x + w[1] * y + b) for w, b in zip(self.w1, self.b1)]
        return h, sum(a * b for a, b in zip(self.w2, h)) + self.b2

    def loss(self, data: list[tuple[float, float, int]]) -> tuple[float, float]:
        total, right = 0.0, 0
        for x, y, label in data:
            z = self.forward(x, y)[1]
            total += max(z, 0) - z * label + math.log1p(math.exp(-abs(z)))
            right += int((z > 0) == bool(label))
        return total / len(data), right / len(data)

    def step(self, batch: list[tuple[float, float, int]], lr: float, momentum: float = 0.9) -> float:
        hidden = len(self.b1)
        g_w1 = [[0.0, 0.0] for _ in range(hidden)]
        g_b1, g_w2, g_b2, total = [0.0] * hidden, [0.0] * hidden, 0.0, 0.0
        for x, y, label in batch:
            h, z = self.forward(x, y)
            total += max(z, 0) - z * label + math.log1p(math.exp(-abs(z)))
            dz = (1 / (1 + math.exp(-z)) - label) / len(batch)
            g_b2 += dz
            for j in range(hidden):
                g_w2[j] += dz * h[j]
                dh = dz * self.w2[j] * (1 - h[j] * h[j])
                g_b1[j] += dh
                g_w1[j][0] += dh * x
                g_w1[j][1] += dh * y
        grads = {"w1": g_w1, "b1": g_b1, "w2": g_w2, "b2": g_b2}
        for name, grad in grads.items():
            v = self.velocity.get(name)
            if isinstance(grad, float):
                v = momentum * (v or 0.0) + grad
                setattr(self, name, getattr(self, name) - lr * v)
            elif isinstance(grad[0], list):
                v = v or [[0.0, 0.0] for _ in grad]
                v = [[momentum * a + g for a, g in zip(vr, gr)] for vr, gr in zip(v, grad)]
                setattr(self, name, [[p - lr * a for p, a in zip(pr, vr)] for pr, vr in zip(getattr(self, name), v)])
            else:
                v = [momentum * a + g for a, g in zip(v or [0.0] * len(grad), grad)]
                setattr(self, name, [p - lr * a for p, a in zip(getattr(self, name), v)])
            self.velocity[name] = v
        return total / len(batch)


def main(argv: list[str] | None = None) -> int:
    opts = options(argv)
    backend = opts.backend
    if backend in ("auto", "torch"):
        try:
            import torch  # noqa: F401
        except ImportError:
            if backend == "torch":
                sys.exit("--backend torch: PyTorch is not installed here (pip install torch), or use --backend python.")
            backend = "python"
        else:
            backend = "torch"
    results = opts.results
    results.mkdir(parents=True, exist_ok=True)
    attempt = int(os.environ.get("EC2KIT_ATTEMPT", "1"))
    rng = random.Random(opts.seed)
    data = moons(opts.samples + opts.samples // 4, rng)
    train, val = data[: opts.samples], data[opts.samples :]

    ckpt_path = results / ("checkpoint.pt" if backend == "torch" else "checkpoint.json")
    resume = opts.resume or (ckpt_path if ckpt_path.exists() else None)
    if backend == "torch":
        trainer: Any = TorchTrainer(opts, rng)
    else:
        trainer = PythonTrainer(opts, rng)
    start = 1
    if resume is not None:
        start = trainer.load(resume) + 1
        print(f"resumed from {resume} at epoch {start - 1} (attempt {attempt})", flush=True)
    metrics = results / "metrics.csv"
    kept = _rows_up_to(metrics, start - 1)  # rows past the checkpoint were never saved in it: drop them
    with metrics.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(kept)
    print(f"training {backend} MLP (hidden {opts.hidden}, lr {opts.lr}) epochs {start}..{opts.epochs}", flush=True)
    row: list[Any] = []
    for epoch in range(start, opts.epochs + 1):
        began = time.monotonic()
        train_loss = trainer.epoch(train)
        val_loss, val_acc = trainer.evaluate(val)
        time.sleep(opts.epoch_seconds)
        row = [epoch, f"{train_loss:.6f}", f"{val_loss:.6f}", f"{val_acc:.4f}", opts.lr, f"{time.monotonic() - began:.3f}", attempt]
        with metrics.open("a", newline="") as f:
            csv.writer(f).writerow(row)
        trainer.save(ckpt_path, epoch)
        print(f"epoch {epoch}: train_loss {train_loss:.4f} val_loss {val_loss:.4f} val_acc {val_acc:.3f}", flush=True)
    if row:
        final = dict(zip(COLUMNS, row)) | {"backend": backend, "hidden": opts.hidden}
        write_whole(results / "final.json", json.dumps(final, indent=1).encode())
    return 0


def _rows_up_to(metrics: Path, epoch: int) -> list[list[str]]:
    if epoch < 1 or not metrics.exists():
        return []
    with metrics.open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    return [r for r in rows if r and r[0].isdigit() and int(r[0]) <= epoch]


class PythonTrainer:
    def __init__(self, opts: argparse.Namespace, rng: random.Random) -> None:
        self.opts, self.rng = opts, rng
        self.model = PythonModel(opts.hidden, rng)

    def epoch(self, train: list[tuple[float, float, int]]) -> float:
        order = list(train)
        self.rng.shuffle(order)
        size = self.opts.batch_size
        losses = [self.model.step(order[i : i + size], self.opts.lr) for i in range(0, len(order), size)]
        return sum(losses) / len(losses)

    def evaluate(self, val: list[tuple[float, float, int]]) -> tuple[float, float]:
        return self.model.loss(val)

    def save(self, path: Path, epoch: int) -> None:
        version, state, gauss = self.rng.getstate()
        doc = {"epoch": epoch, "model": self.model.params() | {"velocity": self.model.velocity}, "rng": [version, list(state), gauss]}
        write_whole(path, json.dumps(doc).encode())

    def load(self, path: Path) -> int:
        doc = json.loads(path.read_text())
        self.model.load(doc["model"])
        version, state, gauss = doc["rng"]
        self.rng.setstate((version, tuple(state), gauss))
        return int(doc["epoch"])


class TorchTrainer:
    def __init__(self, opts: argparse.Namespace, rng: random.Random) -> None:
        import torch

        self.torch, self.opts, self.rng = torch, opts, rng
        torch.manual_seed(opts.seed)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = torch.nn.Sequential(
            torch.nn.Linear(2, opts.hidden), torch.nn.Tanh(), torch.nn.Linear(opts.hidden, 1)
        ).to(self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=opts.lr, momentum=0.9)
        self.loss_fn = torch.nn.BCEWithLogitsLoss()

    def _tensors(self, data: list[tuple[float, float, int]]) -> tuple[Any, Any]:
        t = self.torch
        x = t.tensor([[a, b] for a, b, _ in data], dtype=t.float32, device=self.device)
        y = t.tensor([[float(c)] for _, _, c in data], dtype=t.float32, device=self.device)
        return x, y

    def epoch(self, train: list[tuple[float, float, int]]) -> float:
        order = list(train)
        self.rng.shuffle(order)
        self.model.train()
        losses = []
        for i in range(0, len(order), self.opts.batch_size):
            x, y = self._tensors(order[i : i + self.opts.batch_size])
            self.optimizer.zero_grad()
            loss = self.loss_fn(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        return sum(losses) / len(losses)

    def evaluate(self, val: list[tuple[float, float, int]]) -> tuple[float, float]:
        self.model.eval()
        with self.torch.no_grad():
            x, y = self._tensors(val)
            logits = self.model(x)
            acc = ((logits > 0).float() == y).float().mean().item()
            return self.loss_fn(logits, y).item(), acc

    def save(self, path: Path, epoch: int) -> None:
        import io

        version, state, gauss = self.rng.getstate()
        buffer = io.BytesIO()
        self.torch.save(
            {"epoch": epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
             "rng": [version, list(state), gauss], "torch_rng": self.torch.get_rng_state()},
            buffer,
        )  # fmt: skip
        write_whole(path, buffer.getvalue())

    def load(self, path: Path) -> int:
        doc = self.torch.load(path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(doc["model"])
        self.optimizer.load_state_dict(doc["optimizer"])
        version, state, gauss = doc["rng"]
        self.rng.setstate((version, tuple(state), gauss))
        self.torch.set_rng_state(doc["torch_rng"])
        return int(doc["epoch"])


if __name__ == "__main__":
    sys.exit(main())
