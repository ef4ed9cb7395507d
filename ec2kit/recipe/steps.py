"""Shell step kinds as pure planners: a rendered step → the bash that probes and applies it.

Each planner returns a :class:`PlannedStep` whose ``body`` is a bash function
body. Bodies call the helpers of :mod:`ec2kit.recipe.script` (``__ok``,
``__changed``, ``__skip``, ``__put_file``, ``__line``, ``__dir``, ``__apt``),
which compare the host's state first and change nothing when it already
matches (or in check mode, ``$__CHECK = 1``). Nothing here touches a host.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RecipeError


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


def sh_path(path: str) -> str:
    """A shell word for a remote path: ``~/x`` → ``"$HOME"/x`` (quoted), others quoted."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def wrap_command(command: str, *, sudo: bool = False, env: dict[str, Any] | None = None, cwd: str | None = None) -> str:
    """The bash line running ``command`` with sudo/env/cwd (pure; tested by string equality)."""
    prefix = "__sudo " if sudo else ""
    env_part = "".join(f"{k}={shlex.quote(str(v))} " for k, v in (env or {}).items())
    line = f"{prefix}env {env_part}bash -c {shlex.quote(command)}" if env_part else f"{prefix}bash -c {shlex.quote(command)}"
    if cwd:
        line = f"cd {sh_path(cwd)} || exit 1; {line}"
    return line


def guard_lines(args: dict[str, Any]) -> list[str]:
    """``creates`` / ``unless`` checks: skip the step (return 0) when they hold."""
    lines = []
    if args.get("creates"):
        path = str(args["creates"])
        lines.append(f"if $S test -e {sh_path(path)}; then __skip {shlex.quote(f'creates: {path} exists')}; return 0; fi")
    if args.get("unless"):
        cmd = str(args["unless"])
        wrapped = wrap_command(cmd, sudo=bool(args.get("sudo")), env=args.get("env"), cwd=args.get("cwd"))
        reason = f"unless: `{cmd}` succeeded"
        lines.append(f"if ( {wrapped} ) >/dev/null 2>&1; then __skip {shlex.quote(reason)}; return 0; fi")
    return lines


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _q(value: Any) -> str:
    return shlex.quote("" if value is None else str(value))


def _mode(args: dict[str, Any]) -> str:
    mode = args.get("mode")
    if mode is None:
        return ""
    return format(mode, "o") if isinstance(mode, int) else str(mode)


# -- the kinds ------------------------------------------------------------------------


def plan_run(args: dict[str, Any], ctx: PlanContext) -> tuple[str, str]:
    cmd = str(args[ctx.kind])
    line = wrap_command(cmd, sudo=bool(args.get("sudo")), env=args.get("env"), cwd=args.get("cwd"))
    body = f'if [ "$__CHECK" = 1 ]; then __changed "would run"; return 0; fi\n{line} || exit $?\n__changed ""'
    return body, cmd


def plan_template(args: dict[str, Any], ctx: PlanContext) -> tuple[str, str]:
    content = ctx.render_template(str(args["template"]))
    return _file_body(content.encode(), args, ctx), f"write {args['dest']} from {args['template']}"


def plan_copy(args: dict[str, Any], ctx: PlanContext) -> tuple[str, str]:
    src = Path(str(args["copy"])).expanduser()
    if not src.is_absolute():
        src = (ctx.base_dir or Path.cwd()) / src
    if src.is_file():
        return _file_body(src.read_bytes(), args, ctx), f"copy {args['copy']} to {args['dest']}"
    if src.is_dir():
        data = tar_directory(src)
        dest, show = sh_path(str(args["dest"])), str(args["dest"])
        body = f'base64 -d <<< {_q(_b64(data))} > "$__T/new.tar" || exit 1\n__put_dir {dest} {_q(show)} {_q(_mode(args))} {_q(args.get("owner"))}'
        return body, f"copy directory {args['copy']} to {show}"
    raise RecipeError(f"{ctx.where}: the file or directory to copy, {src}, does not exist.")


def tar_directory(src: Path) -> bytes:
    """A deterministic gzip tar of a directory's contents (sorted, no owners, fixed mtimes)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(src.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(src)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if info.isfile():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            elif info.isdir():
                tar.addfile(info)
    return buf.getvalue()


def _file_body(data: bytes, args: dict[str, Any], ctx: PlanContext | None = None) -> str:
    if ctx is not None and ctx.on_content is not None:
        ctx.on_content(data)
    dest, show = sh_path(str(args["dest"])), str(args["dest"])
    return (
        f'base64 -d <<< {_q(_b64(data))} > "$__T/new" || exit 1\n'
        f"__put_file {dest} {_q(show)} {_q(_mode(args))} {_q(args.get('owner'))}"
    )


def plan_line(args: dict[str, Any], ctx: PlanContext) -> tuple[str, str]:
    path, line = str(args["path"]), str(args["line"])
    body = f"__line {sh_path(path)} {_q(path)} {_q(line)} {_q(args.get('regexp', ''))}"
    return body, f"ensure line in {path}: {line}"


def plan_dir(args: dict[str, Any], ctx: PlanContext) -> tuple[str, str]:
    path = str(args["dir"])
    return f"__dir {sh_path(path)} {_q(path)} {_q(_mode(args))} {_q(args.get('owner'))}", f"mkdir -p {path}"


def apt_packages(value: Any) -> list[str]:
    """``"tmux rsync"`` or ``["tmux", "rsync"]`` → ``["tmux", "rsync"]``."""
    items = value.split() if isinstance(value, str) else [str(v) for v in value]
    for p in items:
        if not p or p.startswith("-") or not all(c.isalnum() or c in "+-.:_=~" for c in p):
            raise RecipeError(f"'{p}' is not a Debian package name.")
    return items


def plan_apt(args: dict[str, Any], ctx: PlanContext) -> tuple[str, str]:
    try:
        pkgs = apt_packages(args["apt"])
    except RecipeError as err:
        raise RecipeError(f"{ctx.where}: {err.message}") from None
    return "__apt " + " ".join(_q(p) for p in pkgs), "apt-get install -y " + " ".join(pkgs)


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


PLANNERS: dict[str, Callable[[dict[str, Any], PlanContext], tuple[str, str]]] = {
    "run": plan_run,
    "script": plan_run,
    "template": plan_template,
    "copy": plan_copy,
    "line": plan_line,
    "dir": plan_dir,
    "apt": plan_apt,
}


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


#: Content up to this size is compared with bash builtins (larger: base64 + cmp in the full step).
QUICK_MAX_BYTES = 64 * 1024
_PURE_KINDS = {"template", "copy", "line", "dir", "apt"}


def _attrs_glob(args: dict[str, Any]) -> str:
    """``"755 ubuntu"`` / ``"* *"``: the start of a glob for ``stat``'s ``%a %U`` (empty: cannot say)."""
    mode, owner = _mode(args), args.get("owner")
    if any(c not in "01234567" for c in mode):
        return ""  # the full step compares what `stat` prints as the shell always did
    user = str(owner).split(":", 1)[0] if owner else ""
    if user and not all(c.isalnum() or c in "._-" for c in user):
        return ""
    return f"{mode.lstrip('0') or '0' if mode else '*'} {user or '*'}"


def quick_probe(kind: str, args: dict[str, Any], content: bytes | None) -> tuple[str, tuple[str, ...]]:
    """The bash deciding without forking that a step has nothing to do, and the paths it reads.

    Only for steps without sudo or ``unless`` (those need a command); empty when none applies.
    """
    if args.get("sudo") or args.get("unless"):
        return "", ()
    lines: list[str] = []
    probe: list[str] = []
    if args.get("creates"):
        path = str(args["creates"])
        lines.append(f"if test -e {sh_path(path)}; then __QS=skipped; __QW={_q(f'creates: {path} exists')}; return 0; fi")
    attrs = _attrs_glob(args)
    if kind == "dir" and attrs:
        path = str(args["dir"])
        probe.append(sh_path(path))
        lines.append(f"__qdir {sh_path(path)} {_q(path)} {_q(attrs + ' * directory')}")
    elif (
        kind in ("template", "copy")
        and attrs
        and content is not None
        and b"\\0" not in content
        and len(content) <= QUICK_MAX_BYTES
    ):
        dest, kind_word = str(args["dest"]), "regular file" if content else "regular empty file"
        probe.append(sh_path(dest))
        want = f"{attrs} {len(content)} {kind_word}"
        lines.append(f"__qfile {sh_path(dest)} {_q(dest)} {_q(want)} {len(content)} {ansi_c(content)}")
    elif kind == "line" and not args.get("regexp", ""):
        line = str(args["line"]).encode()
        if line and b"\n" not in line and b"\0" not in line:
            path = str(args["path"])
            probe.append(sh_path(path))
            lines.append(f"__qline {sh_path(path)} {_q(path)} {ansi_c(line)}")
    if not lines:
        return "", ()
    if not lines[-1].startswith("__q"):
        lines.append("return 1")
    return "\n".join(lines), tuple(probe)


def plan_step(number: int, name: str, kind: str, args: dict[str, Any], ctx: PlanContext) -> PlannedStep:
    """Plan one rendered shell step: guards, then the kind's body (sudo via ``$S``), plus its quick probe."""
    captured: list[bytes] = []
    ctx.on_content = captured.append
    body, command = PLANNERS[kind](args, ctx)
    head = ["S=__sudo" if args.get("sudo") else "S="]
    full = "\n".join([*head, *guard_lines(args), body])
    quick, probe = quick_probe(kind, args, captured[0] if captured else None)
    pure = kind in _PURE_KINDS and not args.get("unless")
    return PlannedStep(
        number, name, kind, full, command, int(args.get("retries", 0)), float(args.get("delay", 1)), quick, probe, pure
    )
