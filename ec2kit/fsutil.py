"""Files written whole or not at all, and locks between processes: the one helper for each.

The bottom of the tree: it imports nothing from ec2kit, so every layer (ssh, aws, sandbox,
spotrun, the CLI) may use it.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write(path: Path | str, data: str | bytes, *, mode: int = 0o600, fsync: bool = True) -> Path:
    """Replace ``path`` with ``data`` in one rename: a reader sees the old file or the new, never half.

    The temporary file is made beside ``path`` (same filesystem) with O_EXCL at ``mode`` from its first
    byte, so a secret is never readable by others while it is written. ``fsync`` makes the content
    durable before the rename (a crash leaves the old file, never an empty one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


@contextmanager
def file_lock(path: Path | str, *, shared: bool = False, blocking: bool = True) -> Iterator[bool]:
    """Hold an flock on ``path`` (created 0600) for the ``with`` block; yields whether it was taken.

    ``blocking=False`` yields False at once when another process holds it (the caller decides what to
    say); the lock ends with the block or with the process, so a crash never leaves it held.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
