"""What every step kind is made of: the :class:`Kind` record, the planner's context, and shell words.

A kind module (``kinds/run.py``, ``kinds/dir.py``, ...) builds one ``Kind``: its keys, the
validation of their values, the planner (rendered step → bash body), the no-fork quick check
and the bash helpers its bodies call. Nothing here touches a host or imports Jinja.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import RecipeError

Args = dict[str, Any]


@dataclass
class Where:
    """Where a step's values come from, for located messages: ``recipes/x.toml:7: step 2 'cfg'``."""

    location: str | Callable[[], str]  # file:line of the step's [[step]] header (a callable: worked out when needed)
    label: str  # "step 2 'cfg'"
    key_at: Callable[[str], str] | None = None  # file:line of one of its keys

    @property
    def at(self) -> str:
        if callable(self.location):
            self.location = self.location()
        return self.location

    def error(self, key: str | None, message: str, hint: str = "") -> RecipeError:
        """A RecipeError naming the file, the line of ``key`` (when known) and the step."""
        at = self.key_at(key) if key and self.key_at else self.at
        return RecipeError(f"{at}: {self.label}: {message}", hint=hint)


@dataclass
class PlanContext:
    """What planners need besides the step's rendered arguments.

    ``where`` ("recipes/x.toml:12: step 3 'name'", for error messages) may be given as a
    callable: it is then worked out only when a message needs it.
    """

    kind: str
    location: str | Callable[[], str]
    render_template: Callable[[str], str]
    base_dir: Path | None = None
    on_content: Callable[[bytes], None] | None = None  # receives a file step's new content

    @property
    def where(self) -> str:
        if callable(self.location):
            self.location = self.location()
        return self.location


Validate = Callable[[Args, Where], None]
Plan = Callable[[Args, PlanContext], "tuple[str, str]"]
#: (args, a file step's new content) → (bash lines deciding "nothing to do" with builtins, paths they read)
Quick = Callable[[Args, "bytes | None"], "tuple[list[str], list[str]]"]


def _no_check(args: Args, where: Where) -> None:
    return None


@dataclass(frozen=True)
class Kind:
    """One step kind: everything the loader, planner, script prelude and report need to know."""

    name: str
    keys: tuple[str, ...] = ()  # its own keys besides the kind key and COMMON_KEYS
    required: tuple[str, ...] = ()
    validate: Validate = _no_check  # value checks of the kind key and its own keys (raise Where.error)
    plan: Plan | None = None  # None: the step runs locally (task), not in the batch script
    quick: Quick | None = None  # the no-op fast check, for steps without unless
    quick_reads: bool = False  # the quick check compares the content of its paths (not only their stat)
    helpers: tuple[str, ...] = ()  # bash functions its bodies and quick checks call (prelude)
    pure: bool = False  # runs no command of the user's: an ok/skipped outcome changed nothing
    shows_command: bool = False  # check mode prints the command under the step line
    open_keys: bool = False  # any other key is accepted (a task's arguments)


# -- shell words ------------------------------------------------------------------------

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def sh_path(path: str) -> str:
    """A shell word for a remote path: ``~/x`` → ``"$HOME"/x`` (quoted), others quoted."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


#: What the child bash runs: its stdin (the here-document holding the command) becomes fd 3 and is
#: sourced; the command itself then reads an empty stdin, as a command run from a batch always did.
COMMAND_LOADER = "exec 3<&0 </dev/null; . /dev/fd/3"


def wrap_command(
    command: str, *, sudo: bool = False, env: dict[str, Any] | None = None, cwd: str | None = None, then: str = ""
) -> str:
    """The bash running ``command`` with sudo/env/cwd (pure; tested by string equality).

    The command and its environment travel in a here-document — text of the batch script, which
    itself arrives on stdin — never in an argument list: a rendered secret never shows in ``ps`` on
    the host, and a command of any size runs (no "Argument list too long"). ``then`` follows the
    command on its first line (e.g. ``" || exit $?"``). An environment name that is not
    ``[A-Za-z_][A-Za-z0-9_]*`` is refused: it would be shell.
    """
    for name in env or {}:
        if not ENV_NAME.match(str(name)):
            raise RecipeError(f"{name!r} is not an environment variable name (letters, digits and _, not first a digit).")
    exports = "".join(f"export {k}={shlex.quote(str(v))}\n" for k, v in (env or {}).items())
    body = exports + command
    delim = "__EC2KIT_" + hashlib.sha256(body.encode()).hexdigest()[:16]
    head = f"{'__sudo ' if sudo else ''}bash -c {shlex.quote(COMMAND_LOADER)}"
    if cwd:
        head = f"cd {sh_path(cwd)} || exit 1; {head}"
    return f"{head} <<'{delim}'{then}\n{body}\n{delim}"


def q(value: Any) -> str:
    """A quoted shell word (None → ``''``)."""
    return shlex.quote("" if value is None else str(value))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _ansi_c_char(b: int) -> str:
    if b in (0x5C, 0x27):
        return "\\" + chr(b)
    if 0x20 <= b < 0x7F:
        return chr(b)
    return {0x0A: "\\n", 0x09: "\\t"}.get(b, "\\%03o" % b)


_ANSI_C = [_ansi_c_char(b) for b in range(256)]


def ansi_c(data: bytes) -> str:
    """A bash ``$'...'`` word for bytes without NUL (printable ASCII kept, the rest as octal escapes)."""
    table = _ANSI_C
    return "$'" + "".join([table[b] for b in data]) + "'"


# -- mode and owner (dir, template, copy) ------------------------------------------------------

_OCTAL_MODE = re.compile(r"[0-7]{3,4}\Z")
_SYMBOLIC_MODE = re.compile(r"[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+(?:,[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+)*\Z")


def mode_word(args: Args) -> str:
    """The step's ``mode`` as chmod takes it (validated: an octal or symbolic string), or ``""``."""
    mode = args.get("mode")
    return "" if mode is None else str(mode)


def attrs_glob(args: Args) -> str:
    """``"755 ubuntu"`` / ``"* *"``: the start of a glob for ``stat``'s ``%a %U`` (empty: cannot say)."""
    mode, owner = mode_word(args), args.get("owner")
    if any(c not in "01234567" for c in mode):
        return ""  # the full step compares what `stat` prints as the shell always did
    user = str(owner).split(":", 1)[0] if owner else ""
    if user and not all(c.isalnum() or c in "._-" for c in user):
        return ""
    return f"{mode.lstrip('0') or '0' if mode else '*'} {user or '*'}"


def is_templated(value: Any) -> bool:
    """A value still to be rendered (``"{{ mode }}"``): checked again once rendered."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def check_string(args: Args, where: Where, key: str, what: str, example: str) -> None:
    """``key`` must be a string when present: a number or a boolean means something else."""
    if key in args and not isinstance(args[key], str):
        value = args[key]
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        raise where.error(
            key, f"'{key}' must be {what} in quotes, not a {_toml_type(value)} ({key} = {shown}).", f"Write {key} = {example}."
        )


def _toml_type(value: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", list: "list", dict: "table"}.get(type(value), type(value).__name__)


def check_mode_owner(args: Args, where: Where) -> None:
    """``mode`` is an octal string ("0755") or a symbolic one ("u+x"); ``owner`` a string."""
    if "mode" in args:
        mode = args["mode"]
        if isinstance(mode, int) and not isinstance(mode, bool):
            looks_octal = re.fullmatch(r"[0-7]{1,4}", str(mode)) is not None
            typed = (str(mode) if looks_octal else format(mode, "o")).rjust(4, "0")  # the digits meant
            why = (
                f"chmod would get mode {format(mode, 'o')}, not {typed}"
                if looks_octal
                else f"0o{format(mode, 'o')} reads as {mode}"
            )
            raise where.error(
                "mode",
                f"mode = {mode} is a number ({why}); a mode is a string.",
                f'Write mode = "{typed}".',
            )
        if not isinstance(mode, str):
            raise where.error(
                "mode", f"'mode' must be an octal or symbolic mode in quotes, not a {_toml_type(mode)}.", 'Write mode = "0755".'
            )
        if not is_templated(mode) and not (_OCTAL_MODE.match(mode) or _SYMBOLIC_MODE.match(mode)):
            raise where.error(
                "mode",
                f"mode = {mode!r} is not a file mode.",
                'Write an octal mode like mode = "0755" or a symbolic one like mode = "u+x".',
            )
    check_string(args, where, "owner", "a user (or user:group)", '"ubuntu"')
