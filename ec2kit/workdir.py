"""A working directory kept on an instance: ``inv sync NAME [DIR]`` and ``--workdir DIR``.

The local tree goes to ``~/work/<project>`` (``<project>`` is the directory's name) by rsync over the
instance's shared SSH connection: ``.gitignore`` files (nested ones too) and ``.ec2kitignore`` files
decide what stays home, ``.git/`` stays home, symbolic links inside the tree travel as links and links
out of it are skipped (never followed), and results directories (``runs/`` here, and every run's
results directory) are never sent up (a ``runs/`` at the top of the tree included). Nothing on the instance is deleted. A re-sync of an unchanged
tree transfers no file: one rsync over the connection already open.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, RemoteError

if TYPE_CHECKING:
    from .context import Context
    from .ssh import Transport

#: where synced trees live on an instance, relative to the login user's home
REMOTE_ROOT = "work"
PROJECT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
LINKED_MARK = "ec2kit-workdir-is-a-link"
#: rsync's flags of a sync (besides -az --partial): what stays home, links, and what rsync tells us
SYNC_RSYNC = (
    "--safe-links",  # a link out of the tree (or absolute) is skipped, never followed nor recreated
    "--no-devices",
    "--no-specials",
    "--filter=:- .gitignore",  # per-directory: nested .gitignore files apply to their own subtree
    "--filter=:- .ec2kitignore",
    "--exclude=/.git/",
    "-v",
    "--out-format=+ %n",
    "--stats",
)


@dataclass
class SyncReport:
    """What one sync did: ``files`` sent (names), ``bytes_sent`` (rsync's total, file list included),
    ``skipped`` links out of the tree, ``remote`` (absolute path on the instance), ``seconds``."""

    local: Path
    remote: str
    host: str
    files: list[str] = field(default_factory=list)
    bytes_sent: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        """Whether any file travelled."""
        return bool(self.files)

    def line(self) -> str:
        """The one line a sync ends with."""
        what = f"{len(self.files)} file{'s' * (len(self.files) != 1)} sent" if self.files else "nothing changed"
        skipped = f"; skipped {len(self.skipped)} link(s) out of the tree" if self.skipped else ""
        return (
            f"Synced {self.local} to {self.host}:{self.remote}: {what} "
            f"({_size(self.bytes_sent)} on the wire, {self.seconds:.1f}s){skipped}."
        )


def check_workdir(directory: str | Path, *, flag: str = "--workdir") -> Path:
    """The local directory to sync, resolved; a ConfigError naming it when it is not a directory or its
    name cannot be a project name on the instance. Called before anything is launched."""
    path = Path(directory).expanduser()
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a directory"
        raise ConfigError(
            f"The working directory {path} ({flag}) {what}.",
            hint="Give the directory holding your code, e.g. --workdir . (or set workdir in ec2kit.toml).",
        )
    path = path.resolve()
    project_name(path)
    return path


def project_name(local: Path) -> str:
    """``<project>`` of ``~/work/<project>``: the directory's own name."""
    name = local.name
    if not PROJECT.match(name):
        raise ConfigError(
            f"The working directory {local} cannot be synced: its name {name!r} is not usable as a directory name "
            "on the instance (letters, digits, '.', '_' and '-' only, not starting with '.' or '-').",
            hint="Rename it, or sync a directory with a plain name.",
        )
    return name


def remote_path(local: Path) -> str:
    """``work/<project>``: relative to the login user's home (rsync's remote paths are)."""
    return f"{REMOTE_ROOT}/{project_name(local)}"


def results_excludes(local: Path, results: Iterable[str | Path]) -> list[str]:
    """Anchored rsync excludes for the results directories inside ``local`` (``/runs/`` and the like)."""
    out: list[str] = []
    for r in results:
        if not str(r):
            continue
        try:
            rel = Path(r).expanduser().resolve().relative_to(local)
        except ValueError:
            continue
        if str(rel) in ("", "."):
            continue  # a run whose results are the tree itself: nothing else would sync; it is not excluded
        pattern = f"/{rel.as_posix()}/"
        if pattern not in out:
            out.append(pattern)
    return out


def known_results(ctx: Context, local: Path) -> list[Path]:
    """Every results directory this machine knows of: ``runs/`` of the tree and of the current directory
    (where runs land by default) and each run record's."""
    from .runs import Runs

    found = [local / "runs", Path.cwd() / "runs"]
    try:
        found += [Path(r.results_dir) for r in Runs(ctx.settings.runs_db).all() if r.results_dir]
    except ConfigError:
        pass  # an unreadable runs database is said by the run commands; ./runs is still excluded
    return found


def sync_argv(host: Transport, local: Path, excludes: Iterable[str] = ()) -> list[str]:
    """The rsync that sends ``local`` to ``~/work/<project>`` over ``host``'s shared connection.

    The remote side goes to ``$HOME``, makes ``~/work`` and refuses (exit 3, before any file travels) when the
    destination is a symbolic link, in the same round trip.
    """
    dest = remote_path(local)
    # rsync's remote path is relative to the login directory, which need not be $HOME: go there first
    guard = (
        f'--rsync-path=cd "$HOME" && mkdir -p {REMOTE_ROOT} && if [ -L {dest} ]; then echo {LINKED_MARK} >&2; exit 3; fi; rsync'
    )
    first = tuple(f"--exclude={pattern}" for pattern in excludes)  # before the ignore files: a '!' there never sends results
    return host.rsync_argv(str(local) + "/", dest + "/", remote_src=False, options=(*first, *SYNC_RSYNC, guard))


def sync(
    ctx: Context,
    instance: object,
    local: Path,
    *,
    excludes: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
    timeout: float = 3600,
) -> SyncReport:
    """Send ``local`` to the instance's ``~/work/<project>``; ``progress`` is told each file as it goes."""
    local = check_workdir(local)
    host = ctx.connect(instance)  # type: ignore[arg-type]
    host.open()  # rsync then rides the shared connection: a re-sync is one exchange over a live link
    if excludes is None:
        excludes = results_excludes(local, known_results(ctx, local))
    argv = sync_argv(host, local, excludes)
    report = SyncReport(local=local, remote=f"~/{remote_path(local)}", host=host.name)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise RemoteError(f"Cannot start rsync to sync {local}: {e.strerror or e}.", hint="Install rsync.") from None
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        if line.startswith("+ "):
            name = line[2:]
            if name and not name.endswith("/"):
                report.files.append(name)
                if progress is not None:
                    progress(name)
        elif line.startswith("ignoring unsafe symlink"):
            report.skipped.append(line.split('"')[1] if '"' in line else line)
        elif line.startswith("Total bytes sent:"):
            report.bytes_sent = int(re.sub(r"[^0-9]", "", line.split(":", 1)[1]) or 0)
    try:
        stderr = proc.communicate(timeout=timeout)[1].decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        raise RemoteError(f"Syncing {local} to {host.name} took over {timeout:.0f}s; stopped.") from None
    for line in stderr.splitlines():  # rsync says unsafe links on stderr too, depending on its version
        if line.startswith("ignoring unsafe symlink"):
            report.skipped.append(line.split('"')[1] if '"' in line else line)
    report.seconds = time.monotonic() - started
    if proc.returncode != 0:
        if LINKED_MARK in stderr:
            raise RemoteError(
                f"~/{remote_path(local)} on {host.name} is a symbolic link; ec2kit does not sync through it, so "
                "nothing was sent.",
                hint="Remove that link on the instance (or sync a directory of another name).",
            )
        tail = "\n".join(stderr.strip().splitlines()[-5:])
        raise RemoteError(
            f"Syncing {local} to {host.name}:~/{remote_path(local)} failed (rsync exit {proc.returncode}): {tail}",
            hint="Check the instance's disk space and that rsync is installed there; then sync again.",
        )
    report.skipped = sorted(set(report.skipped))
    return report


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
