"""SIGTERM and SIGHUP to a followed spot run: never a silent end.

- SIGTERM (``kill PID``, a system shutdown) does what Ctrl-C does: stop the script, final pull, release.
- SIGHUP (the terminal closed) leaves the run to itself as a detached run once its script runs (the
  wrapper waits for ``inv pull``; ``inv runs`` says so); before the script started it is cleaned up
  as Ctrl-C would. Nothing is printed after a hangup: the terminal is gone.

Both arrive as :class:`Signalled` (a KeyboardInterrupt, so every ``except KeyboardInterrupt`` path
applies); a second signal while ec2kit cleans up is ignored, as the first one's cleanup is under way.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Signalled(KeyboardInterrupt):
    """The process got ``signum`` (SIGTERM or SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def hangup(self) -> bool:
        """Whether it was SIGHUP (the terminal closed)."""
        return self.signum == signal.SIGHUP


@contextmanager
def as_interrupts() -> Iterator[None]:
    """Inside the block SIGTERM and SIGHUP raise :class:`Signalled` (once); handlers restored after.

    Only the main thread can take signals; elsewhere (a sweep's worker) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        if fired:
            return  # the cleanup of the first one is under way
        fired.append(signum)
        raise Signalled(signum)

    wanted = (signal.SIGTERM, signal.SIGHUP)
    before = {s: signal.getsignal(s) for s in wanted}
    for s in wanted:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, old in before.items():
            signal.signal(s, old)
