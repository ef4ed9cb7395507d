"""A run's metrics, read from its results directory: series per metric, latest values, sparklines.

A script writes ``metrics.csv`` (a header row, then one row per step; a ``step`` or ``epoch``
column is the x axis, else the row number) or ``metrics.jsonl`` (one JSON object per line, the
same keys). Both may be read while the run writes them: blank lines, non-numeric cells, a
half-written last line and keys that come and go are skipped, never an error.

Pure functions over text, plus :func:`load` to find and read the file. No third-party imports.
Everything in these files is data from an instance: names are shown with control characters made
visible, values beyond ±1e150 are skipped, and a file is read incrementally within fixed bounds
(a downsampled series plus its last rows exact; of a file past 1 MB only its header and last 1 MB).
"""

from __future__ import annotations

import csv
import json
import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILES = ("metrics.csv", "metrics.jsonl")
X_COLUMNS = ("step", "epoch")  # the first one present is the x axis
ROW = "row"  # the x axis name when there is no step or epoch column
BARS = "▁▂▃▄▅▆▇█"
TREND_POINTS = 20

# Bounds: a run's script (or whoever controls the instance) writes these files; one hostile or runaway
# run must not exhaust memory, time or the terminal of the person listing runs.
MAX_POINTS = 2000  # a series is downsampled (every 2nd, 4th … point) past this many points
TAIL_POINTS = 200  # … and its last rows are always kept exactly
MAX_SERIES = 200  # metrics per file; more columns/keys are left out (counted in ``Metrics.dropped``)
MAX_NAME = 80  # characters of a metric name shown
MAX_LINE = 1024 * 1024  # a longer line (a 10 MB cell, a 100k-deep JSON line) is skipped
WINDOW_BYTES = 1024 * 1024  # of a larger file only the header and its last WINDOW_BYTES are read
MAX_VALUE = 1e150  # larger magnitudes are treated as unreadable (their squares and spans stay finite)


@dataclass
class Series:
    """One metric: x values (steps) and y values, in file order (downsampled past MAX_POINTS, the last
    TAIL_POINTS rows exact)."""

    name: str
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    _stride: int = field(default=1, repr=False)
    _count: int = field(default=0, repr=False)
    _index: list[int] = field(default_factory=list, repr=False)
    _tail: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=TAIL_POINTS), repr=False)

    def add(self, x: float, y: float) -> None:
        self._count += 1
        self._tail.append((x, y))
        if (self._count - 1) % self._stride:
            return
        self.xs.append(x)
        self.ys.append(y)
        self._index.append(self._count)
        if len(self.xs) > MAX_POINTS:  # keep every other point: memory stays bounded, the shape stays
            del self.xs[1::2], self.ys[1::2], self._index[1::2]
            self._stride *= 2

    def finish(self) -> None:
        """Merge the exact last rows into the downsampled points (once the file is read)."""
        if self._stride == 1:
            return
        first_tail = self._count - len(self._tail) + 1
        keep = [i for i, n in enumerate(self._index) if n < first_tail]
        self.xs = [self.xs[i] for i in keep] + [x for x, _ in self._tail]
        self.ys = [self.ys[i] for i in keep] + [y for _, y in self._tail]
        self._index, self._stride = [], 1

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
    skipped: int = 0  # lines skipped as unreadable or too long
    dropped: int = 0  # metrics left out past MAX_SERIES
    window: int = 0  # bytes at the start of a large file not read (only its last WINDOW_BYTES are)

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

    def _series(self, name: str) -> Series | None:
        """The series for ``name``, made on first sight unless MAX_SERIES are already there."""
        found = self.series.get(name)
        if found is None:
            if len(self.series) >= MAX_SERIES:
                self.dropped += 1
                return None
            found = self.series[name] = Series(name)
        return found

    def _finish(self) -> Metrics:
        self.series = {k: s for k, s in self.series.items() if s.ys}
        for s in self.series.values():
            s.finish()
        return self


def metric_name(raw: object) -> str:
    """A metric name as data: control characters made visible, one line, at most MAX_NAME characters."""
    from .untrusted import visible

    text = visible(str(raw), one_line=True).strip()
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + "…"


def number(value: Any) -> float | None:
    """A finite float from a cell or JSON value, or None (text, booleans, NaN, inf, empty, beyond ±1e150)."""
    if isinstance(value, str):
        if len(value) > 64:
            return None
        try:
            result = float(value)  # float() allows surrounding whitespace
        except ValueError:
            return None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            result = float(value)
        except OverflowError:  # a 400-digit JSON integer
            return None
    else:
        return None
    return result if math.isfinite(result) and abs(result) <= MAX_VALUE else None


def complete_lines(text: str) -> tuple[list[str], str]:
    """Split ``text`` into its finished lines and the unterminated tail ('' when it ends with a newline)."""
    lines = text.split("\n")
    tail = lines.pop()
    return [line.rstrip("\r") for line in lines], tail.rstrip("\r")


def _text_lines(text: str) -> Iterator[tuple[str | None, bool]]:
    """(line, finished) for each line of ``text``; the unterminated tail comes last, unfinished."""
    lines, tail = complete_lines(text)
    for line in lines:
        yield line, True
    if tail:
        yield tail, False


def _row(line: str) -> list[str] | None:
    """The cells of one CSV line, or None when it is not readable CSV."""
    try:
        return next(csv.reader([line]), [])
    except csv.Error:
        return None


def parse_csv(text: str) -> Metrics:
    """Metrics from ``metrics.csv`` text. An unterminated last line counts only with every cell present."""
    return read_csv(_text_lines(text))


def read_csv(lines: Iterable[tuple[str | None, bool]], skipped: int = 0) -> Metrics:
    """Metrics from (line, finished) pairs of a CSV file, one row at a time (bounded memory)."""
    metrics = Metrics(skipped=skipped)
    header: list[str] | None = None
    x_index: int | None = None
    columns: list[Series | None] = []
    for line, finished in lines:
        if line is not None and not line.strip():
            continue
        cells = _row(line) if line is not None and len(line) <= MAX_LINE else None
        if cells is None:
            metrics.skipped += 1
            continue
        if header is None:
            if not finished:
                break  # a half-written header: nothing yet
            header = [h.strip() for h in cells]
            lowered = [h.lower() for h in header]
            x_name = next((c for c in X_COLUMNS if c in lowered), None)
            x_index = lowered.index(x_name) if x_name else None
            metrics.x = header[x_index] if x_index is not None else ROW
            columns = [None if i == x_index or not h else metrics._series(metric_name(h)) for i, h in enumerate(header)]
            continue
        if not finished and (len(cells) < len(header) or not all(c.strip() for c in cells[: len(header)])):
            continue  # a half-written last line
        if not any(c.strip() for c in cells):
            continue
        x = number(cells[x_index]) if x_index is not None and x_index < len(cells) else None
        if x_index is not None and x is None:
            continue  # a row without a readable step cannot be placed
        metrics.rows += 1
        x = float(metrics.rows) if x is None else x
        for series, cell in zip(columns, cells):
            y = number(cell) if series is not None else None
            if series is not None and y is not None:
                series.add(x, y)
    return metrics._finish()


def parse_jsonl(text: str) -> Metrics:
    """Metrics from ``metrics.jsonl`` text: one JSON object per line; unreadable lines are skipped."""
    return read_jsonl(_text_lines(text))


def _record(line: str) -> dict[str, Any] | None:
    """One JSON object, or None (half-written, not JSON, too deep to read, not an object)."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def read_jsonl(lines: Iterable[tuple[str | None, bool]], skipped: int = 0) -> Metrics:
    """Metrics from (line, finished) pairs of a JSON-lines file, one record at a time (bounded memory)."""
    metrics = Metrics(skipped=skipped)
    x_key: str | None = None
    for line, _finished in lines:
        if line is not None and not line.strip():
            continue
        obj = _record(line) if line is not None and len(line) <= MAX_LINE else None
        if obj is None:
            metrics.skipped += 1
            continue
        if x_key is None:
            x_key = next((k for c in X_COLUMNS for k in obj if k.lower() == c), None)
            if x_key is not None and metrics.rows:
                metrics.series.clear()  # rows before the step key appeared cannot be placed
                metrics.rows = 0
            metrics.x = x_key or ROW
        x = number(obj.get(x_key)) if x_key else None
        if x_key and x is None:
            continue
        metrics.rows += 1
        x = float(metrics.rows) if x is None else x
        for key, value in obj.items():
            y = number(value)
            if key != x_key and y is not None:
                series = metrics._series(metric_name(key))
                if series is not None:
                    series.add(x, y)
    return metrics._finish()


def find_file(results_dir: Path | str) -> Path | None:
    """The metrics file in a results directory (metrics.csv first), or None."""
    for name in FILES:
        path = Path(results_dir) / name
        if path.is_file():
            return path
    return None


def file_lines(path: Path, *, window: int | None = None) -> tuple[Iterator[tuple[str | None, bool]], int]:
    """(line, finished) pairs read incrementally, and how many bytes were left unread: of a file larger
    than ``window`` only its first line (a CSV header) and its last ``window`` bytes are read."""
    from .untrusted import bounded_lines

    return bounded_lines(path, window=WINDOW_BYTES if window is None else window, max_line=MAX_LINE)


def load(results_dir: Path | str) -> Metrics | None:
    """Read the metrics of a results directory; None when it has no metrics file (or it vanished)."""
    path = find_file(results_dir)
    if path is None:
        return None
    try:
        lines, unread = file_lines(path)
        metrics = read_csv(lines) if path.suffix == ".csv" else read_jsonl(lines)
    except OSError:
        return None
    metrics.source = str(path)
    metrics.window = unread
    return metrics


def sparkline(values: Sequence[float], width: int = TREND_POINTS) -> str:
    """A unicode trend line of the last ``width`` values (▁ lowest … █ highest); '' for none."""
    tail = [v for v in values if math.isfinite(v)][-width:] if width > 0 else []
    if not tail:
        return ""
    low, high = min(tail), max(tail)
    if high == low:
        return BARS[len(BARS) // 2 - 1] * len(tail)
    span = high / 2 - low / 2  # halved: 1e308 - (-1e308) would overflow
    return "".join(BARS[min(len(BARS) - 1, max(0, round((v / 2 - low / 2) / span * (len(BARS) - 1))))] for v in tail)


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
