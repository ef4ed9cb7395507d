"""Draw a run's metrics: charts in the terminal (uniplot) and PNG images (matplotlib).

Both libraries are the optional extra ``ec2kit[plot]``; they are imported only when a chart
is drawn, and a missing one is a :class:`~ec2kit.errors.ConfigError` that says how to install it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, NotFound
from .metrics import FILES, Metrics, find_file, format_value, load
from .runs import RunRecord, Runs

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INSTALL = "pip install 'ec2kit[plot]'"
PNG_DPI = 100
PNG_WIDTH_IN = 10.0  # inches: 1000 px wide at PNG_DPI
PNG_ROW_HEIGHT_IN = 3.0  # inches per metric: 300 px each at PNG_DPI


def need(module: str, purpose: str) -> Any:
    """Import ``module`` or raise a ConfigError that names the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"{purpose} needs the Python package '{module.split('.')[0]}', which is not installed in this environment.",
            hint=f"Install ec2kit's plotting extra: {INSTALL} (or pip install {module.split('.')[0]}).",
        ) from None


def terminal_chart(metrics: Metrics, name: str, *, width: int = 60, height: int = 12, color: bool = False) -> str:
    """One metric as a text chart (title = name and latest value, x axis = the run's step)."""
    uniplot = need("uniplot", "Drawing charts in the terminal")
    series = metrics.series[name]
    xs, ys = list(series.xs), list(series.ys)
    if len(xs) == 1:  # a lone point has no x range to draw: centre it on one
        xs, ys = [xs[0] - 1, xs[0] + 1], [ys[0], ys[0]]
    title = f"{name} · latest {format_value(ys[-1])} at {metrics.x} {format_value(series.xs[-1])}"
    text: str = uniplot.plot_to_string(
        ys,
        xs,
        title=title,
        width=max(width, 10),
        height=max(height, 3),
        lines=True,
        color=color,
    )
    return text.rstrip("\n")


def terminal_charts(metrics: Metrics, names: Sequence[str], *, width: int = 60, height: int = 12, color: bool = False) -> str:
    """Several metrics, one chart each, separated by a blank line."""
    return "\n\n".join(terminal_chart(metrics, n, width=width, height=height, color=color) for n in names)


def figure(metrics: Metrics, names: Sequence[str], *, title: str = "", dpi: int = PNG_DPI, inline: bool = False) -> Figure:
    """A matplotlib Figure with one subplot per metric (x = the run's step), as ``--png`` draws it.

    No pyplot: no GUI backend, no global state. With ``inline`` the figure also shows itself as a
    PNG in Jupyter and IPython (``_repr_png_``) without ``%matplotlib inline``.
    """
    need("matplotlib", "Drawing charts")
    from matplotlib.figure import Figure

    if not names:
        raise ConfigError("no metrics to draw.")
    size = (PNG_WIDTH_IN, PNG_ROW_HEIGHT_IN * len(names))
    fig: Figure = (_inline_figure_class() if inline else Figure)(figsize=size, dpi=dpi, layout="constrained")
    axes = fig.subplots(len(names), 1, squeeze=False, sharex=True)
    for ax, name in zip(axes[:, 0], names):
        s = metrics.series[name]
        ax.plot(s.xs, s.ys, marker="." if len(s.xs) < 50 else None, linewidth=1.5)
        ax.set_ylabel(name)
        ax.set_title(f"{name}: {format_value(s.ys[-1])}", loc="left", fontsize="medium")
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel(metrics.x)
    if title:
        fig.suptitle(title)
    return fig


def _inline_figure_class() -> type:
    """A Figure subclass that renders itself as PNG for notebooks (made once, on first use)."""
    cached = globals().get("_INLINE_FIGURE")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    import io

    from matplotlib.figure import Figure

    class InlineFigure(Figure):
        """A matplotlib Figure that Jupyter and IPython show as a PNG."""

        def _repr_png_(self) -> bytes:
            out = io.BytesIO()
            self.savefig(out, format="png")
            return out.getvalue()

    globals()["_INLINE_FIGURE"] = InlineFigure
    return InlineFigure


def write_png(
    metrics: Metrics, names: Sequence[str], path: Path | str, *, title: str = "", dpi: int = PNG_DPI
) -> tuple[int, int]:
    """Write one subplot per metric to ``path`` as a PNG, atomically (temp file, then rename).

    The image is ``PNG_WIDTH_IN × (PNG_ROW_HEIGHT_IN × len(names))`` inches at ``dpi``;
    returns its (width, height) in pixels.
    """
    need("matplotlib", "Writing a PNG")
    if not names:
        raise ConfigError("no metrics to draw.")
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"--png {path}: the directory {parent} does not exist.")
    import io

    from .fsutil import atomic_write

    fig = figure(metrics, names, title=title, dpi=dpi)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi)
    atomic_write(path, out.getvalue(), mode=0o644)
    width, height = fig.get_size_inches()
    return round(width * dpi), round(height * dpi)


# -- a run's metrics: lookup, choice, following ------------------------------------------------


def find_run(runs: Runs, name: str) -> RunRecord:
    """The run called ``name``; NotFound naming the runs that exist otherwise."""
    record = runs.find(name)
    if record is None:
        names = [r.name for r in runs.all()]
        listing = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        hint = f"Runs recorded here: {listing}." if names else "No runs are recorded yet (inv spot-run --script train.sh)."
        raise NotFound("run", name, names, hint=hint)
    return record


def run_metrics(runs: Runs, name: str) -> tuple[RunRecord, Metrics]:
    """Run ``name``'s record and its metrics now; NotFound, or a ConfigError saying what its results hold."""
    record = find_run(runs, name)
    found = load(record.results_dir) if record.results_dir else None
    if not found or not found.series:
        raise no_metrics_error(record)
    return record, found


def wanted(metric: str | Sequence[str] | None) -> list[str]:
    """``'loss,acc'``, ``['loss']`` or None (every metric) → the names asked for."""
    items = [metric] if isinstance(metric, str) else list(metric or [])
    return [m.strip() for item in items for m in item.split(",") if m.strip()]


def terminal_view(
    record: RunRecord, metrics: Metrics, names: Sequence[str], *, size: tuple[int, int], tty: bool, follow: bool = False
) -> str:
    """What ``inv plot`` prints: a header line and one chart per metric, fitted to a terminal of ``size``
    (columns, lines); on a terminal with ``follow`` it first clears the screen."""
    cols, rows = size if tty else (80, 40)
    height = max(8, min(25, rows - 8)) if len(names) == 1 and tty else 12
    charts = terminal_charts(metrics, names, width=max(20, min(cols - 12, 120)), height=height, color=tty)
    header = f"{record.name} ({record.state}) · {metrics.x} {format_value(metrics.last_x() or 0)} · {metrics.source}"
    return ("\x1b[H\x1b[2J" if tty and follow else "") + header + "\n" + charts + "\n\n"


def points(record: RunRecord, metrics: Metrics, names: Sequence[str]) -> dict[str, Any]:
    """``inv plot --json``: the run, its state, where the metrics came from and every point of ``names``."""
    from .metrics import as_json

    return {
        "run": record.name,
        "state": record.state,
        "source": metrics.source,
        "x": metrics.x,
        "metrics": as_json(metrics, points=True, names=list(names)),
    }


def no_metrics_error(record: RunRecord) -> ConfigError:
    """The error for a run whose results hold no metrics: says what the results directory does hold."""
    where = Path(record.results_dir) if record.results_dir else None
    if where is None or not where.is_dir():
        return ConfigError(
            f"run {record.name} ({record.state}) has no results here yet" + (f": {where} does not exist." if where else "."),
            hint=f"Bring them home with: inv pull {record.name}",
        )
    found = find_file(where)
    if found is not None:
        return ConfigError(f"run {record.name}: {found} has no numeric columns yet.", hint="Its script writes them as it trains.")
    files = sorted(p.name for p in where.iterdir())
    held = ", ".join(files[:12]) + (" …" if len(files) > 12 else "") if files else "nothing"
    return ConfigError(
        f"run {record.name} has no metrics: {where} holds no {' or '.join(FILES)} (it holds {held}).",
        hint="Have the script append a header row then one row per step to $EC2KIT_RESULTS/metrics.csv, e.g. step,loss.",
    )


def choose(metrics: Metrics, wanted: Sequence[str], run: str) -> list[str]:
    """The metrics to draw: ``wanted`` (every one when empty); an unknown name is an error listing the known ones."""
    if not wanted:
        return metrics.names
    for name in wanted:
        if name not in metrics.series:
            import difflib

            close = difflib.get_close_matches(name, metrics.names, n=1)
            raise ConfigError(
                f"run {run} has no metric '{name}'"
                + (f" (did you mean '{close[0]}'?)" if close else "")
                + f". Its metrics: {', '.join(metrics.names)} (from {metrics.source}).",
                hint=f"Example: inv plot {run} --metric {metrics.names[0]}",
            )
    return list(dict.fromkeys(wanted))


def signature(results_dir: str) -> tuple[str, int, int] | None:
    """What changes when the metrics file grows: its path, size and mtime (None without one)."""
    path = find_file(results_dir) if results_dir else None
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return str(path), st.st_size, st.st_mtime_ns


def follow(
    runs: Runs,
    name: str,
    draw: Callable[[RunRecord, Metrics], None],
    *,
    interval: float = 1.0,
    waiting: Callable[[RunRecord], None] = lambda _record: None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunRecord:
    """Call ``draw`` whenever the run's metrics file changes, until the run is no longer live.

    Reads only the local results directory (the one the run's follower syncs into) and the runs
    database; ``waiting`` is called once while a live run has no metrics yet. Returns the record
    as it was last read.
    """
    last: tuple[str, int, int] | None = None
    told = False
    while True:
        record = find_run(runs, name)
        sig = signature(record.results_dir)
        if sig is not None and sig != last:
            metrics = load(record.results_dir)
            if metrics is not None and metrics.series:
                draw(record, metrics)
                last = sig
        if not record.live:
            if last is None:
                raise no_metrics_error(record)
            return record
        if last is None and not told:
            waiting(record)
            told = True
        sleep(interval)
