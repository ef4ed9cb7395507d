"""The local side of a running spot run: print its log, pull its results, see it end.

One :class:`~ec2kit.ssh.Transport` carries the polls (status file + new log
bytes in one exec); results come home with rsync over the same (shared) connection, pinned host key.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RemoteError
from .commands import parse_poll, poll_command

if TYPE_CHECKING:
    from ..ssh import Transport

FINAL_STATES = ("succeeded", "failed", "timeout", "interrupted")
RSYNC_OK = (0, 24)  # 24: files vanished while rsync ran (a checkpoint renamed mid-transfer)


@dataclass
class Follower:
    """Follows run ``run`` on ``host``; results go to ``results`` (None: the monitor gets them).

    ``out`` receives each log line; ``local_log`` keeps a copy of the log on this machine.
    """

    host: Transport
    run: str
    results: Path | None
    local_log: Path | None = None
    out: Callable[[str], None] = print
    pull_interval: float = 3.0
    poll_interval: float = 1.0
    offset: int = 0
    status: dict = field(default_factory=dict)
    last_pull: float = 0.0
    pulls: int = 0
    _partial: str = ""

    def poll(self) -> dict:
        """One round trip: refresh :attr:`status`, hand new complete log lines to ``out``."""
        result = self.host.run(poll_command(self.run, self.offset), check=False, timeout=30)
        if not result.ok:
            raise RemoteError(f"Could not read the status of run {self.run} on {self.host.name}: {result.stderr.strip()}")
        seen = parse_poll(result.stdout, self.offset)
        self.offset = seen.offset
        if seen.status:
            self.status = seen.status
        if seen.text:
            self._emit(seen.text)
        return self.status

    def _emit(self, text: str) -> None:
        if self.local_log is not None:
            self.local_log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.local_log, "a") as f:
                f.write(text)
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self.out(line)

    def flush(self) -> None:
        """Hand a trailing line without newline to ``out``."""
        if self._partial:
            self.out(self._partial)
            self._partial = ""

    def remote_results(self) -> str:
        """The results directory on the instance, absolute (rsync starts in the login dir)."""
        return self.host.expand(f"~/ec2kit/{self.run}/results") + "/"

    def pull(self) -> bool:
        """rsync the instance's results into :attr:`results`; False when rsync failed."""
        if self.results is None:
            return True
        self.results.mkdir(parents=True, exist_ok=True)
        argv = self.host.rsync_argv(self.remote_results(), str(self.results) + "/", connect_timeout=5)
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
        self.last_pull = time.monotonic()
        if done.returncode in RSYNC_OK:
            self.pulls += 1
            return True
        self.last_error = done.stderr.decode(errors="replace").strip()
        return False

    def push(self) -> None:
        """rsync :attr:`results` up to the instance (a replacement resumes from them)."""
        if self.results is None or not self.results.exists():
            return
        self.host.run(f'mkdir -p "$HOME/ec2kit/{self.run}/results"')
        argv = self.host.rsync_argv(str(self.results) + "/", self.remote_results(), remote_src=False)
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
        if done.returncode not in RSYNC_OK:
            raise RemoteError(
                f"Could not push the results of run {self.run} back to {self.host.name}: {done.stderr.decode(errors='replace').strip()}",
                hint=f"The local copy in {self.results} is intact.",
            )

    def mark_pulled(self) -> None:
        """Tell the wrapper the final pull is done, so it may power off now."""
        self.host.run(f'touch "$HOME/ec2kit/{self.run}/pulled"', check=False, timeout=15)

    def follow(self, *, should_stop: Callable[[], bool] = lambda: False) -> dict:
        """Poll and pull until the script ends (or ``should_stop()``); return the last status.

        Raises :class:`RemoteError` when the instance stops answering (the caller decides
        whether it was lost); the results pulled so far stay in :attr:`results`.
        """
        next_poll = 0.0
        while not should_stop():
            now = time.monotonic()
            if now >= next_poll:
                self.poll()
                next_poll = now + self.poll_interval
                if self.status.get("state") in FINAL_STATES and self.status.get("ended_at"):
                    break
            if self.results is not None and now - self.last_pull >= self.pull_interval:
                self.pull()
            time.sleep(max(0.0, min(next_poll, self.last_pull + self.pull_interval) - time.monotonic()) or 0.05)
        self.flush()
        return self.status

    def finish(self) -> bool:
        """Final pull, then the ``pulled`` marker; False when the final pull failed."""
        ok = self.pull()
        if ok:
            self.mark_pulled()
        return ok
