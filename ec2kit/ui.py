"""Output for people and scripts: rich tables, progress with elapsed time, JSON.

rich is imported lazily so that `inv --list` stays fast.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from typing import Any


def program() -> str:
    """The name of the program the user ran (``ec2kit``, or ``inv`` in a checkout): hints name it."""
    import os

    chosen = getattr(program, "name", None)
    if chosen:
        return str(chosen)
    return "ec2kit" if sys.argv and os.path.basename(sys.argv[0]) == "ec2kit" else "inv"


def set_program(name: str) -> None:
    """Set the program name hints use (``ec2kit``'s entry point calls this)."""
    program.name = name  # type: ignore[attr-defined]


_INV = re.compile(r"(?<![\w./-])inv (?=[a-z-])")


def name_program(text: str) -> str:
    """``text`` with every ``inv COMMAND`` hint naming the program the user ran: the one choke point
    every message, error and help text goes through (``List them with `inv instances```)."""
    prog = program()
    return text if prog == "inv" else _INV.sub(prog + " ", text)


def console(stderr: bool = False):
    """The shared rich Console (stdout, or stderr for status lines); what it prints names the program."""
    key = "_err" if stderr else "_out"
    cached = getattr(console, key, None)
    if cached is None:
        from rich.console import Console

        class _Console(Console):
            def print(self, *objects: Any, **kwargs: Any) -> None:
                super().print(*(name_program(o) if isinstance(o, str) else o for o in objects), **kwargs)

        stream = sys.stderr if stderr else sys.stdout
        # Piped output should not be folded to 80 columns: scripts grep it.
        width = None if stream.isatty() else 240
        cached = _Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)
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
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    empty: str = "",
    priority: Sequence[str] = (),
    minimum: dict[str, int] | None = None,
    wide: bool = False,
) -> None:
    """Print a table that fits the terminal; ``empty`` is printed instead when there are no rows.

    Columns named in ``priority`` are kept first (then the others, left to right); a column that
    does not fit is left out and said so, long values are cut with …; ``wide`` shows every column
    whole. Every cell is data (a tag, a run's status): it is shown, never obeyed as markup.
    """
    out = console()
    if not rows:
        out.print(empty or f"No {title.lower()}.")
        return
    table, width = fitted_table(title, columns, rows, width=out.width, priority=priority, minimum=minimum, wide=wide)
    if width > out.width:  # --wide: rich never prints wider than its console, so use one as wide as the table
        from rich.console import Console

        out = Console(file=out.file, width=width, force_terminal=out.is_terminal, highlight=False, soft_wrap=False)
    out.print(table)


def fitted_table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    width: int,
    priority: Sequence[str] = (),
    minimum: dict[str, int] | None = None,
    wide: bool = False,
) -> tuple[Any, int]:
    """(a rich renderable: title, table and a note naming the columns left out; the width it needs)."""
    from rich import box
    from rich.cells import cell_len
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from .untrusted import markup_safe, visible

    cells = [[visible("" if v is None else v, one_line=True) for v in row] for row in rows]
    natural = [max([cell_len(col), *(cell_len(r[i]) for r in cells)]) for i, col in enumerate(columns)]
    order = [columns.index(c) for c in priority if c in columns]
    order += [i for i in range(len(columns)) if i not in order]
    if wide:
        widths = dict(enumerate(natural))
    else:
        widths = fit_widths(natural, order, [cell_len(c) for c in columns], width, minimum, list(columns))
    shown = sorted(widths)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    for i in shown:
        table.add_column(columns[i], width=widths[i], min_width=widths[i], max_width=widths[i], no_wrap=True, overflow="ellipsis")
    for row in cells:
        table.add_row(*(markup_safe(row[i]) for i in shown))
    total = sum(widths.values()) + TABLE_GAP * (len(shown) - 1)
    width = max(total, width) if wide else width
    parts: list[Any] = [Text(cut(visible(name_program(title), one_line=True), width), style="bold"), table]
    hidden = [columns[i] for i in range(len(columns)) if i not in widths]
    if hidden:
        parts.append(Text(cut(f"{len(hidden)} more column(s) with --wide: {', '.join(hidden)}", width), style="dim"))
    return Group(*parts), width


TABLE_GAP = 2  # characters between two columns (a space of padding and the box's blank separator)


def fit_widths(
    natural: list[int], order: list[int], header: list[int], width: int, minimum: dict[str, int] | None, names: list[str]
) -> dict[int, int]:
    """Column index → width: columns in ``order`` while they fit at their smallest, then grown in that order."""
    floor = {i: min(natural[i], max(header[i], (minimum or {}).get(names[i], 8))) for i in range(len(natural))}
    chosen: list[int] = []
    used = 0
    for i in order:
        need = floor[i] + (TABLE_GAP if chosen else 0)
        if used + need <= width:
            chosen.append(i)
            used += need
    widths = {i: floor[i] for i in chosen}
    for i in chosen:
        grow = min(natural[i] - widths[i], width - used)
        widths[i] += grow
        used += grow
    return widths


def cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells, ending in … when it was longer."""
    from rich.cells import cell_len, set_cell_size

    return text if cell_len(text) <= width else set_cell_size(text, max(0, width - 1)) + "…"


def info(message: str) -> None:
    """A one-line note on stderr (keeps stdout clean for --json)."""
    console(stderr=True).print(message)  # console() names the program in `inv …` hints


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
    from .untrusted import markup_safe

    title = markup_safe(title, one_line=True)  # it names an instance or a volume: text, never markup
    start = time.monotonic()
    err = console(stderr=True)
    if not err.is_terminal:
        last = [""]

        def plain(message: str) -> None:
            message = markup_safe(message)  # progress lines name resources: text, never markup
            if message != last[0]:
                last[0] = message
                err.print(f"{title}: {message}")

        yield plain
        err.print(f"{title}: done in {human_duration(time.monotonic() - start) or '0s'}")
        return
    with err.status(title) as status:

        def update(message: str) -> None:
            status.update(f"{title}: {markup_safe(message)} [dim]({time.monotonic() - start:.0f}s)[/dim]")

        yield update
    err.print(f"[green]✓[/green] {title} ({time.monotonic() - start:.1f}s)")
