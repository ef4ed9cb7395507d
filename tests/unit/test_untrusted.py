"""Text from instances and tags is shown, never obeyed."""

from __future__ import annotations

import io

from ec2kit.untrusted import markup_safe, visible


def test_terminal_escapes_are_made_visible_and_no_escape_byte_survives():
    hostile = "loss\x1b]0;pwned\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07\x1b[8mhidden\x9b31m"
    shown = visible(hostile)
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert shown == "loss^[]0;pwned^G^[[2J^[]52;c;ZXZpbA==^G^[[8mhidden\\x9b31m"


def test_one_line_turns_newlines_and_tabs_into_spaces():
    assert visible("a\nb\tc\r", one_line=True) == "a b c^M"


def test_markup_is_printed_as_text_by_rich():
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(markup_safe("[/]loss [bold]x[/bold]"))
    assert out.getvalue() == "[/]loss [bold]x[/bold]\n"
