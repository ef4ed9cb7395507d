"""The short flags: one hand-made table, one meaning in every command.

Invoke would hand out a letter per option in signature order (``-r`` was ``--region`` in one
command and ``--run`` in the next, ``-h`` was ``--hosts``); ec2kit turns that off and gives
these letters only, to the options of these names, wherever a command has one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: option name → its short letter. ``-h`` is help (Invoke's core flag) and no option may take it.
SHORT_FLAGS: dict[str, str] = {
    "all": "a",
    "follow": "f",
    "json": "j",
    "profile": "p",
    "region": "r",
    "type": "t",
    "wide": "w",
    "yes": "y",
}

HELP_FLAG = "h"


def short_flag_rows() -> list[tuple[str, str]]:
    """The table as (short, long) pairs, help first: what the README and `--help` show."""
    return [("-h", "--help"), *sorted((f"-{s}", "--" + n.replace("_", "-")) for n, s in SHORT_FLAGS.items())]


def with_table_flags(task: Any) -> Callable[..., Any]:
    """``task.get_arguments`` giving each option exactly its table letter (or none), callable more than
    once (Invoke's own pops the help texts on the first call, so a second parser had none)."""
    get_arguments = task.get_arguments

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        saved = dict(task.help)
        try:
            arguments = get_arguments(*args, **kwargs)
        finally:
            task.help = saved
        for argument in arguments:
            long = argument.names[0]
            letter = SHORT_FLAGS.get(argument.name or long.replace("-", "_"))
            argument.names = (long, letter) if letter and not argument.positional else (long,)
        return arguments

    return wrapped
