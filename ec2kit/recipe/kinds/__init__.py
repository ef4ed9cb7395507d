"""The step kinds: one module each, registered in :data:`KINDS`.

The loader takes a kind's keys and validation from here, the planner its ``plan`` and
``quick``, the batch script its bash ``helpers``, the report ``shows_command``. To add a
kind: write ``kinds/<name>.py`` building a :class:`Kind` (see ``kinds/dir.py``) and add
one line below. The order is the order messages list the kinds in.
"""

from __future__ import annotations

from . import apt, copy, dir, file, line, run, script, task, template
from .base import Args, Kind, PlanContext, Where, ansi_c, sh_path, wrap_command
from .common import COMMON_KEYS, validate_common

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        run.KIND,
        script.KIND,
        template.KIND,
        copy.KIND,
        line.KIND,
        dir.KIND,
        file.KIND,
        apt.KIND,
        task.KIND,
    )
}
#: Kinds that run on the host, inside the generated batch script.
SHELL_KINDS = tuple(name for name, k in KINDS.items() if k.plan is not None)


def check_values(kind: str, args: Args, where: Where) -> None:
    """The kind's own value checks, then the common keys' (as loaded, and again once rendered)."""
    KINDS[kind].validate(args, where)
    validate_common(args, where)


__all__ = [
    "COMMON_KEYS",
    "KINDS",
    "SHELL_KINDS",
    "Kind",
    "check_values",
    "PlanContext",
    "Where",
    "ansi_c",
    "sh_path",
    "wrap_command",
]
