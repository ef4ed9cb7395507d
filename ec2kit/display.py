"""How the Python API's objects show themselves: HTML tables for Jupyter, text tables for IPython.

Pure functions over strings (no third-party imports): every value is escaped before it goes
into HTML, so an instance named ``<b>x</b>`` shows as that text, never as markup.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

Row = Sequence[Any]


def cell(value: Any) -> str:
    """A value as table text: '' for None, whole floats without '.0'."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def html_table(columns: Sequence[str], rows: Sequence[Row], *, title: str = "", empty: str = "") -> str:
    """An HTML table (``title`` above it); ``empty`` in its place when there are no rows. Everything is escaped."""
    head = f"<p><b>{html.escape(title)}</b></p>" if title else ""
    if not rows:
        return head + f"<p><i>{html.escape(empty or 'Nothing to show.')}</i></p>"
    th = "".join(f'<th style="text-align:left">{html.escape(c)}</th>' for c in columns)
    body = "".join(
        "<tr>" + "".join(f'<td style="text-align:left">{html.escape(cell(v))}</td>' for v in row) + "</tr>" for row in rows
    )
    return f"{head}<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def html_fields(pairs: Sequence[tuple[str, Any]], *, title: str = "") -> str:
    """A two-column HTML table of ``(label, value)`` pairs (empty values left out)."""
    rows = [(k, v) for k, v in pairs if cell(v) != ""]
    head = f"<p><b>{html.escape(title)}</b></p>" if title else ""
    body = "".join(
        f'<tr><th style="text-align:left">{html.escape(k)}</th><td style="text-align:left">{html.escape(cell(v))}</td></tr>'
        for k, v in rows
    )
    return f"{head}<table><tbody>{body}</tbody></table>"


def html_pre(text: str) -> str:
    """Preformatted, escaped text (command output, logs)."""
    return f"<pre>{html.escape(text)}</pre>"


def text_table(columns: Sequence[str], rows: Sequence[Row], *, title: str = "", empty: str = "") -> str:
    """The same table as plain text, columns padded to their widest cell."""
    if not rows:
        return (f"{title}: " if title else "") + (empty or "nothing to show.")
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(([title] if title else []) + lines)


def text_fields(pairs: Sequence[tuple[str, Any]], *, title: str = "") -> str:
    """``label: value`` lines (empty values left out), labels aligned."""
    rows = [(k, cell(v)) for k, v in pairs if cell(v) != ""]
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(([title] if title else []) + [f"{k.rjust(width)}: {v}" for k, v in rows])
