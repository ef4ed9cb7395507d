"""Spot runs from Python: a live ``Run`` with status, logs, pull, stop, metrics and plot."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import display
from ..errors import NotFound, WrongState
from .instances import Instance
from .shown import Text, _Shown

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..metrics import Metrics, Series
    from ..runs import RunRecord
    from .ec2 import EC2


class Run(_Shown):
    """A spot run as a live view of its record: ``.status``, ``.logs()``, ``.pull()``, ``.stop()``, ``.metrics()``, ``.plot()``."""

    #: seconds a read of the run's record is trusted
    max_age: float = 1.0

    def __init__(self, ec2: EC2, name: str, record: RunRecord | None = None, *, note: str = "") -> None:
        self._ec2 = ec2
        self.name = name
        self._record = record
        self._read_at = time.monotonic() if record is not None else 0.0
        #: what checking its instance found just now (``ec2.runs()``), e.g. "interrupted — pull within 90 s"
        self.note = note

    @property
    def snapshot(self) -> RunRecord:
        """The record as last read (no new read: a listing's rows agree with each other)."""
        return self._record if self._record is not None else self.record

    @property
    def record(self) -> RunRecord:
        """The run's :class:`ec2kit.runs.RunRecord` as stored now (re-read when older than :attr:`max_age`)."""
        if self._record is None or time.monotonic() - self._read_at > self.max_age:
            from ..runs import Runs

            self._record = Runs(self._ec2.settings.runs_db).get(self.name)
            self._read_at = time.monotonic()
        return self._record

    def _fresh(self) -> RunRecord:
        self._record = None
        return self.record

    @property
    def status(self) -> str:
        """Its state now: ``running``, ``succeeded``, ``failed``, ``cancelled``, ``lost``…; a detached run
        is checked on its instance first (as ``inv runs`` does)."""
        record = self._fresh()
        if record.options.get("detach") and (record.live or record.awaiting_pull):
            from .. import spotrun

            spotrun.refresh(self._ec2.ctx, [record])
            record = self._fresh()
        return record.state

    @property
    def state(self) -> str:
        """Its recorded state (no instance check; see :attr:`status`)."""
        return self.record.state

    @property
    def exit_code(self) -> int | None:
        """The script's exit code, once it ended."""
        return self.record.exit_code

    @property
    def results(self) -> Path:
        """The local directory its results come home to."""
        return Path(self.record.results_dir)

    @property
    def cost(self) -> float | None:
        """Cost so far in USD (None when the price is unknown)."""
        return self.record.cost

    @property
    def instance(self) -> Instance | None:
        """Its current instance, while it has one."""
        iid = self.record.instance_id
        if not iid:
            return None
        try:
            return self._ec2.instance(iid)
        except (NotFound, WrongState):  # gone, or terminated and still listed
            return None

    def logs(self) -> Text:
        """Its log so far: from the instance while it runs, else the copy that came home."""
        return self._ec2.logs(self.name)

    def follow(self) -> str:
        """Print its log as it grows until the script ends; returns the final state."""
        from .. import spotrun

        spotrun.logs(self._ec2.ctx, self.name, follow=True, out=print)
        return self.status

    def attach_command(self) -> str:
        """The ``ssh -t … tmux attach`` command line that shows its tmux session in a terminal (Ctrl-b d detaches)."""
        import shlex

        from .. import spotrun

        return shlex.join(spotrun.attach_argv(self._ec2.ctx, self.name))

    def pull(self) -> Path:
        """Bring its results home now (``inv pull``); returns the results directory."""
        from .. import spotrun

        return spotrun.pull(self._ec2.ctx, self.name)

    def stop(self) -> Run:
        """Stop it (``inv stop-run``): final pull, then its instance and volumes are removed."""
        from .. import spotrun

        self._record, self._read_at = spotrun.stop_run(self._ec2.ctx, self.name), time.monotonic()
        return self

    def _metrics(self) -> Metrics | None:
        from .. import metrics

        results = self.record.results_dir
        return metrics.load(results) if results else None

    def metrics(self) -> dict[str, Series]:
        """Its metrics so far from ``metrics.csv``/``metrics.jsonl`` in the results: name →
        :class:`ec2kit.metrics.Series` (``.xs`` steps, ``.ys`` values, ``.latest``); ``{}`` without any."""
        found = self._metrics()
        return dict(found.series) if found else {}

    def latest(self) -> dict[str, float]:
        """Each metric's last value."""
        found = self._metrics()
        return found.latest() if found else {}

    def plot(self, metric: str | Sequence[str] | None = None, *, title: str | None = None) -> Figure:
        """A matplotlib figure of its metrics (one subplot each; ``metric`` picks some), shown inline in Jupyter.

        Needs matplotlib (``pip install 'ec2kit[plot]'``). The same chart as ``inv plot RUN --png``.
        """
        from .. import plot

        record = self.record
        found = self._metrics()
        if not found or not found.series:
            raise plot.no_metrics_error(record)
        wanted = [metric] if isinstance(metric, str) else list(metric or [])
        names = plot.choose(found, wanted, self.name)
        return plot.figure(found, names, title=title if title is not None else f"{self.name} ({record.state})", inline=True)

    def _fields(self) -> tuple[str, list[tuple[str, Any]]]:
        r = self.record
        from ..ui import human_duration

        return f"Run {r.name}", [
            ("state", r.state),
            ("script", r.script),
            ("instance", " ".join(x for x in (r.instance_type or "", r.instance_id or "") if x)),
            ("attempt", r.attempt or None),
            ("exit code", r.exit_code),
            ("time", human_duration(r.duration) if r.duration is not None else ""),
            ("cost", f"${r.cost:.4f}" if r.cost is not None else ""),
            ("results", r.results_dir),
            ("note", r.options.get("note")),
        ]

    def _metric_rows(self) -> list[tuple[Any, ...]]:
        from ..metrics import format_value, sparkline

        found = self._metrics()
        if not found:
            return []
        return [
            (name, format_value(s.ys[-1]), f"{found.x} {format_value(s.xs[-1])}", sparkline(s.ys))
            for name, s in found.series.items()
            if s.ys
        ]

    def _repr_html_(self) -> str:
        rows = self._metric_rows()
        metrics = display.html_table(("metric", "latest", "at", "trend"), rows, title="Metrics") if rows else ""
        return super()._repr_html_() + metrics

    def _text(self) -> str:
        rows = self._metric_rows()
        return super()._text() + ("\n" + display.text_table(("metric", "latest", "at", "trend"), rows) if rows else "")

    def __repr__(self) -> str:
        state = self._record.state if self._record is not None else "?"
        return f"<Run {self.name} {state}>"


def _run_row(run: Run) -> tuple[Any, ...]:
    from ..metrics import load, summary
    from ..ui import human_duration

    r = run.snapshot
    found = load(r.results_dir) if r.results_dir else None
    return (
        r.name,
        r.state,
        r.instance_type,
        r.instance_id,
        r.exit_code,
        human_duration(r.duration) if r.duration is not None else "",
        f"${r.cost:.4f}" if r.cost is not None else "",
        summary(found, limit=3, width=12) if found else "",
    )
