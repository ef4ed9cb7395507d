"""Output for people and scripts: rich tables, progress with elapsed time, JSON.

rich is imported lazily so that `inv --list` stays fast.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from typing import Any


def console(stderr: bool = False):
    """The shared rich Console (stdout, or stderr for status lines)."""
    from rich.console import Console

    key = "_err" if stderr else "_out"
    cached = getattr(console, key, None)
    if cached is None:
        stream = sys.stderr if stderr else sys.stdout
        # Piped output should not be folded to 80 columns: scripts grep it.
        width = None if stream.isatty() else 240
        cached = Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)
        setattr(console, key, cached)
    return cached


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        data = asdict(value)
        data.pop("raw", None)
        return {k: _jsonable(v) for k, v in data.items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if k != "raw"}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def print_json(value: Any) -> None:
    """Print ``value`` (dataclasses, lists, dicts) as indented JSON on stdout."""
    sys.stdout.write(json.dumps(_jsonable(value), indent=2, default=str) + "\n")


def print_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str = "", keep: Sequence[str] = ()
) -> None:
    """Print a table; ``empty`` is printed instead when there are no rows. Columns named in ``keep``
    stay on one line (others fold first when the terminal is narrow)."""
    out = console()
    if not rows:
        out.print(empty or f"No {title.lower()}.")
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for col in columns:
        table.add_column(col, overflow="fold", no_wrap=col in keep)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)


def info(message: str) -> None:
    """A one-line note on stderr (keeps stdout clean for --json)."""
    console(stderr=True).print(message)


def human_duration(seconds: float | None) -> str:
    """3725 → '1h 2m'; 42 → '42s'."""
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {s}s"
    hours, m = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {m}m"
    return f"{hours // 24}d {hours % 24}h"


@contextmanager
def progress(title: str) -> Iterator[Callable[[str], None]]:
    """A live status line with elapsed time; yields ``update(message)``.

    Cloud waits accept a ``progress`` callable; pass the yielded function.
    Falls back to plain lines when stderr is not a terminal.
    """
    start = time.monotonic()
    err = console(stderr=True)
    if not err.is_terminal:
        last = [""]

        def plain(message: str) -> None:
            if message != last[0]:
                last[0] = message
                err.print(f"{title}: {message}")

        yield plain
        err.print(f"{title}: done in {human_duration(time.monotonic() - start) or '0s'}")
        return
    with err.status(title) as status:

        def update(message: str) -> None:
            status.update(f"{title}: {message} [dim]({time.monotonic() - start:.0f}s)[/dim]")

        yield update
    err.print(f"[green]✓[/green] {title} ({time.monotonic() - start:.1f}s)")
