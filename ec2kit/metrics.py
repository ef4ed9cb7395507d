"""A run's metrics, read from its results directory: series per metric, latest values, sparklines.

A script writes ``metrics.csv`` (a header row, then one row per step; a ``step`` or ``epoch``
column is the x axis, else the row number) or ``metrics.jsonl`` (one JSON object per line, the
same keys). Both may be read while the run writes them: blank lines, non-numeric cells, a
half-written last line and keys that come and go are skipped, never an error.

Pure functions over text, plus :func:`load` to find and read the file. No third-party imports.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILES = ("metrics.csv", "metrics.jsonl")
X_COLUMNS = ("step", "epoch")  # the first one present is the x axis
ROW = "row"  # the x axis name when there is no step or epoch column
BARS = "▁▂▃▄▅▆▇█"
TREND_POINTS = 20


@dataclass
class Series:
    """One metric: x values (steps) and y values, in file order."""

    name: str
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)

    def add(self, x: float, y: float) -> None:
        self.xs.append(x)
        self.ys.append(y)

    @property
    def latest(self) -> float | None:
        """The last value written, or None for an empty series."""
        return self.ys[-1] if self.ys else None


@dataclass
class Metrics:
    """Every metric of one file: ``x`` names the x axis (``step``, ``epoch`` or ``row``)."""

    x: str = ROW
    series: dict[str, Series] = field(default_factory=dict)
    rows: int = 0  # data rows read (after skipping blank and unreadable lines)
    source: str = ""  # the file read, when read from disk

    @property
    def names(self) -> list[str]:
        """Metric names, in column (or first-seen) order."""
        return list(self.series)

    def latest(self) -> dict[str, float]:
        """The last value of each metric that has one."""
        return {name: s.ys[-1] for name, s in self.series.items() if s.ys}

    def last_x(self) -> float | None:
        """The largest x seen (the step the run has reached)."""
        xs = [s.xs[-1] for s in self.series.values() if s.xs]
        return max(xs) if xs else None


def number(value: Any) -> float | None:
    """A finite float from a cell or JSON value, or None (text, booleans, NaN, inf, empty)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def complete_lines(text: str) -> tuple[list[str], str]:
    """Split ``text`` into its finished lines and the unterminated tail ('' when it ends with a newline)."""
    lines = text.split("\n")
    tail = lines.pop()
    return [line.rstrip("\r") for line in lines], tail.rstrip("\r")


def parse_csv(text: str) -> Metrics:
    """Metrics from ``metrics.csv`` text. An unterminated last line counts only with every cell present."""
    lines, tail = complete_lines(text)
    lines = [line for line in lines if line.strip()]
    if not lines:
        return Metrics()
    header = [h.strip() for h in next(csv.reader([lines[0]]))]
    body = list(csv.reader(lines[1:]))
    if tail.strip():
        cells = next(csv.reader([tail]))
        if len(cells) >= len(header) and all(c.strip() for c in cells[: len(header)]):
            body.append(cells)
    lowered = [h.lower() for h in header]
    x_name = next((c for c in X_COLUMNS if c in lowered), None)
    x_index = lowered.index(x_name) if x_name else None
    metrics = Metrics(x=header[x_index] if x_index is not None else ROW)
    for i, name in enumerate(header):
        if i != x_index and name:
            metrics.series.setdefault(name, Series(name))
    for cells in body:
        if not any(c.strip() for c in cells):
            continue
        x = number(cells[x_index]) if x_index is not None and x_index < len(cells) else None
        if x_index is not None and x is None:
            continue  # a row without a readable step cannot be placed
        metrics.rows += 1
        x = float(metrics.rows) if x is None else x
        for i, name in enumerate(header):
            if i == x_index or not name or i >= len(cells):
                continue
            y = number(cells[i])
            if y is not None:
                metrics.series[name].add(x, y)
    metrics.series = {k: s for k, s in metrics.series.items() if s.ys}
    return metrics


def parse_jsonl(text: str) -> Metrics:
    """Metrics from ``metrics.jsonl`` text: one JSON object per line; unreadable lines are skipped."""
    lines, tail = complete_lines(text)
    records: list[dict[str, Any]] = []
    for line in [*lines, tail]:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # half-written or not JSON
        if isinstance(obj, dict):
            records.append(obj)
    x_key = next((k for c in X_COLUMNS for r in records for k in r if k.lower() == c), None)
    metrics = Metrics(x=x_key or ROW)
    for obj in records:
        x = number(obj.get(x_key)) if x_key else None
        if x_key and x is None:
            continue
        metrics.rows += 1
        x = float(metrics.rows) if x is None else x
        for key, value in obj.items():
            y = number(value)
            if key != x_key and y is not None:
                metrics.series.setdefault(key, Series(key)).add(x, y)
    return metrics


def find_file(results_dir: Path | str) -> Path | None:
    """The metrics file in a results directory (metrics.csv first), or None."""
    for name in FILES:
        path = Path(results_dir) / name
        if path.is_file():
            return path
    return None


def load(results_dir: Path | str) -> Metrics | None:
    """Read the metrics of a results directory; None when it has no metrics file (or it vanished)."""
    path = find_file(results_dir)
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    metrics = parse_csv(text) if path.suffix == ".csv" else parse_jsonl(text)
    metrics.source = str(path)
    return metrics


def sparkline(values: Sequence[float], width: int = TREND_POINTS) -> str:
    """A unicode trend line of the last ``width`` values (▁ lowest … █ highest); '' for none."""
    tail = [v for v in values if math.isfinite(v)][-width:] if width > 0 else []
    if not tail:
        return ""
    low, high = min(tail), max(tail)
    if high == low:
        return BARS[len(BARS) // 2 - 1] * len(tail)
    scale = (len(BARS) - 1) / (high - low)
    return "".join(BARS[round((v - low) * scale)] for v in tail)


def plain(value: float | None) -> float | int | None:
    """Whole numbers as ints (steps read as 30, not 30.0), other values unchanged."""
    return int(value) if value is not None and value == int(value) and abs(value) < 2**53 else value


def format_value(value: float) -> str:
    """A short form of a metric value: 30 → '30', 0.2314159 → '0.2314', 1234567.0 → '1.235e+06'."""
    if value == int(value) and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.4g}"


def summary(metrics: Metrics, *, limit: int = 4, width: int = TREND_POINTS) -> str:
    """One line for a table: 'loss 0.231 ▇▅▃▂▁  acc 0.91 ▁▃▅▇█' (at most ``limit`` metrics, then '+N more')."""
    parts = [f"{name} {format_value(s.ys[-1])} {sparkline(s.ys, width)}" for name, s in metrics.series.items() if s.ys]
    shown = parts[:limit] if limit > 0 else parts
    more = len(parts) - len(shown)
    return "  ".join(shown) + (f"  +{more} more" if more else "")


def as_json(metrics: Metrics, *, points: bool = False, names: Iterable[str] | None = None) -> dict[str, Any]:
    """A JSON-ready view: per metric the latest value, the x it was written at (``at``) and its
    trend line; with ``points`` also every ``[x, y]`` pair."""
    wanted = list(names) if names is not None else metrics.names
    out: dict[str, Any] = {}
    for name in wanted:
        s = metrics.series[name]
        entry: dict[str, Any] = {
            "latest": plain(s.latest),
            "at": plain(s.xs[-1] if s.xs else None),
            "trend": sparkline(s.ys),
        }
        if points:
            entry["points"] = [[plain(x), plain(y)] for x, y in zip(s.xs, s.ys)]
        out[name] = entry
    return out
