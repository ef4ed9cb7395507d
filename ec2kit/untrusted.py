"""Text that came from an instance, a tag or a results file: made safe to show.

Anything an instance, another account user or a run's script wrote (Name tags, metric names, log
lines, run statuses) is data. Before it reaches a terminal it goes through :func:`visible` (control
characters shown, never obeyed: no window-title OSC, no clipboard write, no screen clear, no hidden
text) and, where rich renders it, :func:`markup_safe` (``[/]`` is text, not markup). Files such a
party wrote are read through :func:`bounded_lines` (incrementally, long lines skipped, a window).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# C0 controls but tab and newline, DEL, and the C1 range (0x80-0x9f: CSI/OSC as single bytes).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile("[\t\n]")


def _show(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if code < 0x20:
        return "^" + chr(code + 0x40)  # ESC -> ^[ , BEL -> ^G (as `cat -v` shows them)
    return f"\\x{code:02x}"


def visible(text: object, *, one_line: bool = False) -> str:
    """``text`` with every control character made visible (``ESC`` → ``^[``); ``one_line`` also turns
    tabs and newlines into spaces (a table cell, a Host pattern)."""
    shown = _CONTROL.sub(_show, str(text))
    return _LINE_BREAKS.sub(" ", shown) if one_line else shown


def markup_safe(text: object, *, one_line: bool = False) -> str:
    """:func:`visible`, then escaped for rich markup (``[/]loss`` prints as itself)."""
    from rich.markup import escape

    return escape(visible(text, one_line=one_line))


def _read_line(f: BinaryIO, max_line: int) -> tuple[bytes | None, bool]:
    """One line (without its newline) and whether it ended with one; None when longer than ``max_line``
    (the rest of it is read past in chunks, never held)."""
    raw = f.readline(max_line + 1)
    if len(raw) <= max_line or raw.endswith(b"\n"):
        return (raw[:-1], True) if raw.endswith(b"\n") else (raw, False)
    while raw and not raw.endswith(b"\n"):
        raw = f.readline(1024 * 1024)
    return None, bool(raw)


def bounded_lines(path: Path, *, window: int, max_line: int) -> tuple[Iterator[tuple[str | None, bool]], int]:
    """A file a run or an instance wrote, read incrementally: ``(line, finished)`` pairs (``None`` for a
    line longer than ``max_line``) and how many bytes are left unread. Of a file larger than ``window``
    only its first line (a header) and its last ``window`` bytes are read. Opens the file now (OSError
    here), reads as iterated."""
    f = path.open("rb")
    size = os.fstat(f.fileno()).st_size
    unread = max(0, size - window)

    def lines() -> Iterator[tuple[str | None, bool]]:
        with f:
            if unread:
                first, done = _read_line(f, max_line)
                yield (None if first is None else first.decode("utf-8", "replace").rstrip("\r")), done
                if f.tell() < size - window:
                    f.seek(size - window)
                    _read_line(f, max_line)  # the partial line the window starts in
            while True:
                raw, done = _read_line(f, max_line)
                if raw is None:
                    yield None, done
                    continue
                if not raw and not done:
                    return
                yield raw.decode("utf-8", "replace").rstrip("\r"), done

    return lines(), unread
