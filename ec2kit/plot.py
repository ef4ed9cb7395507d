"""Draw a run's metrics: charts in the terminal (uniplot) and PNG images (matplotlib).

Both libraries are the optional extra ``ec2kit[plot]``; they are imported only when a chart
is drawn, and a missing one is a :class:`~ec2kit.errors.ConfigError` that says how to install it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .metrics import Metrics, format_value

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
    if len(xs) == 1:  # a lone point has no x range to draw; give it one
        xs, ys = [xs[0], xs[0] + 1], [ys[0], ys[0]]
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


def write_png(
    metrics: Metrics, names: Sequence[str], path: Path | str, *, title: str = "", dpi: int = PNG_DPI
) -> tuple[int, int]:
    """Write one subplot per metric to ``path`` as a PNG, atomically (temp file, then rename).

    The image is ``PNG_WIDTH_IN × (PNG_ROW_HEIGHT_IN × len(names))`` inches at ``dpi``;
    returns its (width, height) in pixels.
    """
    need("matplotlib", "Writing a PNG")
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    if not names:
        raise ConfigError("no metrics to draw.")
    path = Path(path)
    size = (PNG_WIDTH_IN, PNG_ROW_HEIGHT_IN * len(names))
    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
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
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"--png {path}: the directory {parent} does not exist.")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as out:
            fig.savefig(out, format="png", dpi=dpi)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return round(size[0] * dpi), round(size[1] * dpi)
