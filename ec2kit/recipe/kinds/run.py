"""``run = "command"``: a command that runs (guarded by ``creates``/``unless``); changed when it ran."""

from __future__ import annotations

from .base import Args, Kind, PlanContext, Where, wrap_command


def validate(args: Args, where: Where) -> None:
    """The command is a string."""
    kind = "script" if "script" in args else "run"
    if not isinstance(args[kind], str):
        raise where.error(kind, f"'{kind}' must be a command in quotes.", f'Write {kind} = "make install".')


def plan(args: Args, ctx: PlanContext) -> tuple[str, str]:
    """Run the command with sudo/env/cwd; check mode says it would run."""
    cmd = str(args[ctx.kind])
    line = wrap_command(cmd, sudo=bool(args.get("sudo")), env=args.get("env"), cwd=args.get("cwd"), then=" || exit $?")
    body = f'if [ "$__CHECK" = 1 ]; then __changed "would run"; return 0; fi\n{line}\n__changed ran'
    return body, cmd


KIND = Kind("run", validate=validate, plan=plan, shows_command=True)
