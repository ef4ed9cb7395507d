"""A sweep's table of results: one row per run (settings, state, exit code, latest metrics, cost), sorted by an objective.

Pure apart from reading each run's metrics file: ``rows(...)`` builds, ``write_csv`` writes ``summary.csv``
atomically, ``parse_objective`` checks ``--objective loss`` / ``acc:max`` before anything is launched.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..fsutil import atomic_write

OBJECTIVE = re.compile(r"^([A-Za-z0-9_.\-/]+)(?::(min|max))?$")


@dataclass(frozen=True)
class Objective:
    """A metric to sort by, and whether less is better."""

    metric: str
    goal: str = "min"

    def __str__(self) -> str:
        return f"{self.metric}:{self.goal}"


def parse_objective(text: str | None) -> Objective | None:
    """``'loss'`` → Objective('loss', 'min'); ``'acc:max'`` → Objective('acc', 'max'); anything else a ConfigError."""
    if not text:
        return None
    found = OBJECTIVE.match(text.strip())
    if not found:
        raise ConfigError(
            f"--objective {text!r} is not METRIC or METRIC:min / METRIC:max.",
            hint="Name a column of your metrics.csv, e.g. --objective loss (lowest first) or --objective acc:max.",
        )
    return Objective(found.group(1), found.group(2) or "min")


@dataclass
class Row:
    """One run in the sweep's table."""

    run: str
    settings: dict[str, str]
    state: str
    instance: str = ""
    instance_type: str = ""
    attempt: int = 0
    exit_code: int | None = None
    elapsed: float | None = None
    cost: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def latest_metrics(results_dir: str | Path) -> dict[str, float]:
    """The latest value of each metric in the run's metrics.csv / metrics.jsonl ({} when none yet)."""
    from .. import metrics

    found = metrics.load(results_dir) if results_dir and Path(results_dir).is_dir() else None
    return found.latest() if found else {}


def metric_names(rows: list[Row]) -> list[str]:
    """Every metric any run reported, in first-seen order."""
    return list(dict.fromkeys(name for r in rows for name in r.metrics))


def sort_rows(rows: list[Row], objective: Objective | None) -> list[Row]:
    """Best first by ``objective`` (runs without the metric last, in grid order); grid order without one."""
    if objective is None:
        return list(rows)

    def key(row: Row) -> tuple[int, float]:
        value = row.metrics.get(objective.metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return (1, 0.0)
        return (0, value if objective.goal == "min" else -value)

    return sorted(rows, key=key)


def missing_objective(rows: list[Row], objective: Objective | None) -> str:
    """'' when some run reported the objective's metric; else a sentence naming the metrics there are."""
    if objective is None or any(objective.metric in r.metrics for r in rows):
        return ""
    names = metric_names(rows)
    return (
        f"no run reported the metric '{objective.metric}' of --objective"
        + (f" (their metrics: {', '.join(names)})" if names else " (no run wrote a metrics.csv)")
        + "; the table is in grid order"
    )


def csv_text(rows: list[Row], keys: list[str]) -> str:
    """summary.csv's text: run, each setting, state, exit_code, attempts, instance_type, elapsed_s, cost_usd, each metric."""
    names = metric_names(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run", *keys, "state", "exit_code", "attempts", "instance_type", "elapsed_s", "cost_usd", *names])
    for r in rows:
        writer.writerow(
            [
                r.run,
                *(r.settings.get(k, "") for k in keys),
                r.state,
                "" if r.exit_code is None else r.exit_code,
                r.attempt,
                r.instance_type,
                "" if r.elapsed is None else f"{r.elapsed:.1f}",
                "" if r.cost is None else f"{r.cost:.6f}",
                *("" if r.metrics.get(n) is None else _num(r.metrics[n]) for n in names),
            ]
        )
    return out.getvalue()


def write_csv(path: Path, rows: list[Row], keys: list[str]) -> Path:
    """Write summary.csv atomically (a temp file beside it, then rename)."""
    return atomic_write(path, csv_text(rows, keys), mode=0o644)


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def table(rows: list[Row], keys: list[str], *, limit_metrics: int = 4) -> tuple[list[str], list[tuple]]:
    """Columns and cells for the live table and ``inv sweep-status``."""
    from ..ui import human_duration

    names = metric_names(rows)[:limit_metrics]
    columns = ["run", *keys, "state", "instance", "time", "cost", *names]
    cells = [
        (
            r.run,
            *(r.settings.get(k, "") for k in keys),
            r.state
            + (f" (exit {r.exit_code})" if r.exit_code not in (None, 0) else "")
            + (f" ×{r.attempt}" if r.attempt > 1 else ""),
            r.instance,
            human_duration(r.elapsed) if r.elapsed is not None else "",
            money(r.cost),
            *(_num(r.metrics[n]) if n in r.metrics else "" for n in names),
        )
        for r in rows
    ]
    return columns, cells


def money(value: float | None) -> str:
    """$1.2345, or $0.000012 for the sandbox's tiny prices ('' when unknown)."""
    if value is None:
        return ""
    return f"${value:.4f}" if value >= 0.01 or value == 0 else f"${value:.6f}"
