"""Bring a run's results home, and say plainly when they did not come: what is missing, why, how to get it.

``bring_home(run, mark=)`` is every final pull (an attempt that ended, was interrupted or cancelled);
``pull_failed(run)`` is told of every failed periodic pull and reports a full local disk at the first one,
with the path and the space needed. Nothing here releases anything: the attempt decides, by the rule that
an instance holding results that are not home is never released.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import Ec2kitError, NotFound

if TYPE_CHECKING:
    from .follower import Follower
    from .state import RunState

DISK_FULL = ("No space left on device", "Disk quota exceeded")
GONE_CHECKS = 3  # EC2 is eventually consistent: a reclaimed instance may still read 'running' for a moment


@dataclass
class Home:
    """How a final pull went: ``ok``; else ``gone`` (the instance went away with them) and ``missing`` (what, why)."""

    ok: bool
    gone: bool = False
    missing: str = ""


def instance_gone(run: RunState) -> bool:
    """Whether the run's current instance is terminated / shutting down / stopping / stopped / unknown to EC2."""
    assert run.instance is not None
    try:
        inst = run.ctx.cloud.instance(
            run.instance.id, states=["pending", "running", "stopping", "stopped", "shutting-down", "terminated"]
        )
    except NotFound:
        return True
    return inst.state in ("shutting-down", "terminated", "stopping", "stopped")


def gone_for_good(run: RunState, checks: int = GONE_CHECKS, pause: float = 1.0) -> bool:
    """``instance_gone`` asked up to ``checks`` times (a just-reclaimed instance may still read 'running');
    False when EC2 cannot be asked (never take an unknown for an interruption)."""
    for i in range(checks):
        try:
            if instance_gone(run):
                return True
        except Ec2kitError:
            return False
        if i + 1 < checks:
            time.sleep(pause)
    return False


def bring_home(run: RunState, *, mark: bool = True, tries: int = 3) -> Home:
    """The final pull (then, if ``mark``, the ``pulled`` marker that lets the wrapper power off).

    A failed pull is tried again (a link blip) unless the disk here is full or the instance went away.
    """
    from ..errors import RemoteError

    follower = run.follower
    if follower is None or not run.script_started or run.instance is None:
        return Home(ok=True)
    error = ""
    for i in range(tries):
        try:
            if follower.pull():
                if mark:
                    follower.mark_pulled()
                return Home(ok=True)
            error = follower.last_error
        except RemoteError as err:
            error = str(err)
        if gone_for_good(run, checks=1):
            break
        if disk_full(error) or i + 1 == tries:
            break
        time.sleep(1.0 + i)
    gone = gone_for_good(run)
    return Home(ok=False, gone=gone, missing="" if gone else missing(run, follower, error))


def disk_full(error: str) -> bool:
    """Whether rsync's error says the local disk (or quota) is full."""
    return any(text in error for text in DISK_FULL)


def missing(run: RunState, follower: Follower, error: str) -> str:
    """What the failed pull left behind and why, in one clause: the files, or the space the disk lacks."""
    if disk_full(error):
        return full_disk_note(follower)
    names = unpulled(follower)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    what = f"{shown} did not come home" if names else "the results written since the last successful pull did not come home"
    reason = error.strip().splitlines()[-1][:300] if error.strip() else "rsync failed"
    return f"{what} ({reason})"


def unpulled(follower: Follower, timeout: float = 30.0) -> list[str]:
    """The files on the instance that differ from the local copy (an rsync dry run); [] when it cannot tell."""
    import subprocess

    try:
        argv = follower.pull_argv()
    except Ec2kitError:
        return []
    argv = [argv[0], "--dry-run", "--out-format=%n", *argv[1:]]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode not in (0, 24):
        return []
    return [n for n in done.stdout.decode(errors="replace").splitlines() if n and not n.endswith("/")]


def full_disk_note(follower: Follower) -> str:
    """'no room for the results in PATH: its disk is full (F free; the results need about N more) …'."""
    from ..untrusted import visible

    results = follower.results or Path(".")
    free = shutil.disk_usage(results).free if results.exists() else 0
    need = ""
    try:
        shown = follower.host.run(f'du -sb "$HOME/ec2kit/{follower.run}/results" 2>/dev/null', check=False, timeout=30)
        remote = int(visible(shown.stdout, one_line=True).split()[0]) if shown.ok and shown.stdout.strip() else None
    except (Ec2kitError, ValueError, IndexError):
        remote = None
    if remote is not None:
        more = max(remote - local_size(results), 0)
        need = f"; the results need about {_size(more)} more"
    return (
        f"no room for the results in {results}: its disk is full ({_size(free)} free{need}); free space there "
        f"(or move the results elsewhere and point --results at it)"
    )


def local_size(root: Path) -> int:
    """Bytes of the regular files under ``root`` (what a pull already brought home)."""
    total = 0
    for path in root.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            continue
    return total


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def pull_failed(run: RunState) -> None:
    """Told of every failed periodic pull: a full disk here is said at once (once per run), with path and space."""
    follower = run.follower
    if follower is None or not disk_full(follower.last_error) or run.disk_full_said:
        return
    run.disk_full_said = True
    run.say(f"{run.record.name}: a pull failed: {full_disk_note(follower)}. The run goes on; its instance keeps the results.")


def say_home_failed(run: RunState, note: str) -> None:
    """The one message for results left on an instance."""
    run.say(f"{run.record.name}: {note}")
