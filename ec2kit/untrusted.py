"""Text that came from an instance, a tag or a results file: made safe to show.

Anything an instance, another account user or a run's script wrote (Name tags, metric names, log
lines, run statuses) is data. Before it reaches a terminal it goes through :func:`visible` (control
characters shown, never obeyed: no window-title OSC, no clipboard write, no screen clear, no hidden
text) and, where rich renders it, :func:`markup_safe` (``[/]`` is text, not markup).
"""

from __future__ import annotations

import re

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
