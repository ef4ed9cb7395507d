"""The keys every step may have, whatever its kind, and the checks of their values.

``creates``/``unless`` become the guards at the top of every shell step's body; the
``creates`` check also has a no-fork form for the quick pass.
"""

from __future__ import annotations

import shlex

from .base import ENV_NAME, Args, Where, check_string, q, sh_path, wrap_command

#: Keys every step may have, whatever its kind.
COMMON_KEYS = ("name", "sudo", "when", "creates", "unless", "register", "retries", "delay", "tags", "env", "cwd")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_common(args: Args, where: Where) -> None:
    """Types of the common keys; ``env`` names must be shell variable names."""
    if "sudo" in args and not isinstance(args["sudo"], bool):
        raise where.error("sudo", "'sudo' must be true or false.", "Write sudo = true.")
    if "when" in args and not isinstance(args["when"], (str, bool)):
        raise where.error("when", "'when' must be an expression in quotes (or true/false).", 'Write when = "has_gpu".')
    check_string(args, where, "creates", "a path", '"~/env/bin/python"')
    check_string(args, where, "unless", "a command", '"test -e ~/ready"')
    check_string(args, where, "register", "a variable name", '"result"')
    check_string(args, where, "cwd", "a directory", '"~/src"')
    retries = args.get("retries")
    if "retries" in args and (not isinstance(retries, int) or isinstance(retries, bool)):
        raise where.error("retries", "'retries' must be a whole number.", "Write retries = 3.")
    if "delay" in args and not _number(args["delay"]):
        raise where.error("delay", "'delay' must be a number of seconds.", "Write delay = 2.")
    tags = args.get("tags")
    if "tags" in args and not (isinstance(tags, str) or isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise where.error("tags", "'tags' must be a tag or a list of tags in quotes.", 'Write tags = ["setup"].')
    if "env" in args:
        env = args["env"]
        if not isinstance(env, dict):
            raise where.error("env", "'env' must be a table of NAME = value.", 'Write env = { LANG = "C.UTF-8" }.')
        for name, value in env.items():
            if not ENV_NAME.match(name):
                raise where.error(
                    "env",
                    f"{name!r} is not an environment variable name: names are letters, digits and _ (not first a digit).",
                    'Write env = { MY_VAR = "value" }.',
                )
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                shown = str(value).lower() if isinstance(value, bool) else repr(value)
                raise where.error(
                    "env", f"env {name} = {shown}: a value must be a string or a number.", f'Write {name} = "{shown}".'
                )


def guard_lines(args: Args) -> list[str]:
    """``creates`` / ``unless`` checks: skip the step (return 0) when they hold."""
    lines = []
    if args.get("creates"):
        path = str(args["creates"])
        lines.append(f"if $S test -e {sh_path(path)}; then __skip {shlex.quote(f'creates: {path} exists')}; return 0; fi")
    if args.get("unless"):
        cmd = str(args["unless"])
        wrapped = wrap_command(cmd, sudo=bool(args.get("sudo")), env=args.get("env"), cwd=args.get("cwd"))
        reason = f"unless: `{cmd}` succeeded"
        lines.append(f"if ( {wrapped}\n) >/dev/null 2>&1; then __skip {shlex.quote(reason)}; return 0; fi")
    return lines


def quick_guard_lines(args: Args, *, sudo: bool = False) -> list[str]:
    """The no-fork form of the ``creates`` guard (steps with ``unless`` get no quick check).

    Under sudo the path is looked up as root sees it (``__qcreates``: the privileged cache when
    not root, where a link, which ``test -e`` would follow, leaves it to the full step).
    """
    if not args.get("creates"):
        return []
    path = str(args["creates"])
    if sudo:
        why = q(f"creates: {path} exists")
        return [f"__qcreates {sh_path(path)}; case $? in 0) __QS=skipped; __QW={why}; return 0;; 2) return 1;; esac"]
    return [f"if test -e {sh_path(path)}; then __QS=skipped; __QW={q(f'creates: {path} exists')}; return 0; fi"]
