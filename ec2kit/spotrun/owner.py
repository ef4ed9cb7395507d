"""Which process owns a run (its ``inv spot-run``), and whether it still lives.

Recorded in the run's options at start; ``inv runs`` settles a run whose owner died
without cleaning up (kill -9, a closed laptop lid is not one: the process lives on).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but is not yet reaped (state Z in /proc/PID/stat)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def start_ticks(pid: int) -> int | None:
    """Process ``pid``'s start time in clock ticks since boot (with its pid, it names one process), or None."""
    return _start_ticks(pid)


def me() -> dict:
    """This process as a run owner: pid, host name and start time."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "start": _start_ticks(pid)}


def alive(owner: dict | None) -> bool | None:
    """True/False when this machine can tell whether ``owner`` still runs; None when it cannot
    (no owner recorded, or another machine's process)."""
    if not owner or owner.get("host") != socket.gethostname() or not owner.get("pid"):
        return None
    pid = int(owner["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if _zombie(pid):
        return False  # it has exited; only its parent has not collected it yet
    start = _start_ticks(pid)
    if owner.get("start") is not None and start is not None and start != owner["start"]:
        return False  # the pid was reused by another process
    return True


def describe(owner: dict | None) -> str:
    """``pid 123 on laptop`` for messages."""
    if not owner:
        return "an ec2kit process"
    return f"pid {owner.get('pid')} on {owner.get('host')}"
