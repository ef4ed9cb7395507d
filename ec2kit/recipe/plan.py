"""The planner: a rendered shell step → the bash that probes and applies it, from its kind's module.

Each kind's ``plan`` gives a bash function body calling its helpers (``__put_file``,
``__line``, ``__dir``, ``__apt``, ...), which compare the host's state first and change
nothing when it already matches (or in check mode, ``$__CHECK = 1``). The common guards
(``creates``/``unless``, sudo via ``$S``) go on top, and the kind's ``quick`` check becomes
the step's no-fork probe. A sudo step's probe sees the host as root does: as root it is the
same probe; otherwise it reads what one ``sudo -n`` process for the batch stat-ed (and, for
the paths whose content it compares, read) into the privileged cache (see ``script.py``).
Nothing here touches a host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .kinds import KINDS, PlanContext
from .kinds.base import sh_path
from .kinds.common import guard_lines, quick_guard_lines

__all__ = ["PlanContext", "PlannedStep", "plan_step", "quick_probe"]


@dataclass
class PlannedStep:
    """A shell step ready to go into a batch script."""

    number: int
    name: str
    kind: str
    body: str  # bash: guards then the kind's probe-and-apply logic
    command: str  # what a person is shown: the command, or "write ~/.tmux.conf"
    retries: int = 0
    delay: float = 1.0
    quick: str = ""  # bash: decides "already ok/skipped" with builtins only (sets __QS/__QW), else false
    probe: tuple[str, ...] = ()  # shell words of the paths `quick` looks at (stat-ed once per batch)
    pure: bool = False  # runs no command of the user's: an ok/skipped outcome changed nothing
    reads: tuple[str, ...] = ()  # those of them whose content `quick` compares
    sudo: bool = False  # `quick` must see what root sees (the privileged cache when not root)


def quick_probe(kind: str, args: dict[str, Any], content: bytes | None) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """The bash deciding without forking that a step has nothing to do, the paths it stats and those it reads.

    Steps with ``unless`` get none (that needs a command); empty when none applies. A sudo step's
    probe starts with ``__qpriv`` (root's view of its paths: see ``script.py``) and its ``creates``
    path is one of the paths it stats.
    """
    if args.get("unless"):
        return "", (), ()
    sudo = bool(args.get("sudo"))
    lines = quick_guard_lines(args, sudo=sudo)
    spec = KINDS[kind]
    kind_lines, probe = spec.quick(args, content) if spec.quick is not None else ([], [])
    lines += kind_lines
    if not lines:
        return "", (), ()
    if not kind_lines:
        lines.append("return 1")  # `creates` alone: a missing path means the full step decides
    reads = tuple(probe) if kind_lines and spec.quick_reads else ()
    if sudo:
        lines.insert(0, "__qpriv || return 1")
        if args.get("creates"):
            probe = [sh_path(str(args["creates"])), *probe]
    return "\n".join(lines), tuple(dict.fromkeys(probe)), reads


def plan_step(number: int, name: str, kind: str, args: dict[str, Any], ctx: PlanContext) -> PlannedStep:
    """Plan one rendered shell step: guards, then the kind's body (sudo via ``$S``), plus its quick probe."""
    spec = KINDS[kind]
    assert spec.plan is not None, f"{kind} steps do not run in the batch script"
    captured: list[bytes] = []
    ctx.on_content = captured.append
    body, command = spec.plan(args, ctx)
    head = ["S=__sudo" if args.get("sudo") else "S="]
    full = "\n".join([*head, *guard_lines(args), body])
    quick, probe, reads = quick_probe(kind, args, captured[0] if captured else None)
    pure = spec.pure and not args.get("unless")
    return PlannedStep(
        number,
        name,
        kind,
        full,
        command,
        int(args.get("retries", 0)),
        float(args.get("delay", 1)),
        quick,
        probe,
        reads=reads,
        sudo=bool(args.get("sudo")) and bool(quick),
        pure=pure,
    )
