"""A sweep's scheduling, pure: which run goes next, how many instances to ask the fleet for, what the budget allows.

No AWS, no SSH, no threads: the driver asks, this answers (and the tests ask it directly).

- Runs wait in a queue in grid order; an interrupted run goes back to the *front* while it has retries left.
- At most ``parallel`` instances at once; one fleet call per batch asks for all the free places.
- An instance whose run ended takes the next queued run (unless ``fresh``), instead of a new launch.
- ``max_cost``: a run starts only while spend so far + one hour of every instance that would then be running
  stays within it; the first time it would not, no new run starts at all (the rest are ``skipped``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

QUEUED, STARTED, DONE, SKIPPED = "queued", "started", "done", "skipped"


@dataclass
class Item:
    """One run of the sweep: its place in the grid, name and settings, and how often it was started."""

    index: int
    name: str
    settings: dict[str, str]
    attempts: int = 0
    status: str = QUEUED
    outcome: str = ""  # the run's final state (succeeded, failed, interrupted, cancelled, skipped …)


@dataclass
class Plan:
    """The queue and the rules; ``running`` counts the instances the sweep holds now."""

    items: list[Item]
    parallel: int
    retries: int = 0
    fresh: bool = False
    max_cost: float | None = None
    queue: deque = field(default_factory=deque)
    stopped: str = ""  # why no new run starts any more ('' while they do)

    def __post_init__(self) -> None:
        self.queue = deque(i for i in self.items if i.status == QUEUED)

    # ------------------------------------------------------------------ queue

    @property
    def pending(self) -> int:
        """Runs still waiting for an instance."""
        return len(self.queue) if not self.stopped else 0

    def next_run(self) -> Item | None:
        """The next run to start (None when the queue is empty or the sweep stopped starting runs)."""
        if self.stopped or not self.queue:
            return None
        item = self.queue.popleft()
        item.attempts += 1
        item.status = STARTED
        return item

    def finished(self, item: Item, outcome: str) -> None:
        """``item`` ended for good (succeeded, failed, timeout, cancelled, …)."""
        item.status, item.outcome = DONE, outcome

    def interrupted(self, item: Item) -> bool:
        """``item`` lost its instance: back to the front of the queue if it has a retry left (True), else done."""
        if item.attempts <= self.retries and not self.stopped:
            item.status = QUEUED
            self.queue.appendleft(item)
            return True
        self.finished(item, "interrupted")
        return False

    def stop(self, why: str) -> list[Item]:
        """Start no more runs; the queued ones are skipped (returned)."""
        self.stopped = self.stopped or why
        skipped = list(self.queue)
        self.queue.clear()
        for item in skipped:
            item.status, item.outcome = SKIPPED, "skipped"
        return skipped

    # ------------------------------------------------------------------ instances

    def launches_wanted(self, running: int) -> int:
        """How many instances to ask the fleet for now (in ONE call): free places with a queued run for each."""
        return max(0, min(self.parallel - running, self.pending))

    def reuse(self) -> bool:
        """Whether an instance whose run just ended should take the next queued run."""
        return not self.fresh and self.pending > 0

    def affordable(self, wanted: int, *, spent: float, running_hourly: float, price: float | None) -> int:
        """How many of ``wanted`` new instances (``price`` USD/h each) fit under --max-cost.

        The rule: spend so far + one hour of every instance that would be running ≤ max_cost.
        An unknown price counts as 0 (the first fleet answer tells it).
        """
        if self.max_cost is None:
            return wanted
        each = price or 0.0
        n = wanted
        while n > 0 and spent + running_hourly + n * each > self.max_cost:
            n -= 1
        return n

    def may_continue(self, *, spent: float, running_hourly: float) -> bool:
        """Whether an instance already running (counted in ``running_hourly``) may take another run."""
        return self.max_cost is None or spent + running_hourly <= self.max_cost

    def done(self, running: int) -> bool:
        """Whether the sweep is over: nothing queued (or nothing more may start) and nothing running."""
        return running == 0 and self.pending == 0


def budget_message(max_cost: float, spent: float, running_hourly: float, price: float | None, left: int) -> str:
    """What the sweep says when --max-cost stops it from starting runs."""
    return (
        f"--max-cost ${max_cost:g}: spent ${spent:.6f} so far, instances running cost ${running_hourly:.6f}/h"
        + (f" and one more costs ${price:.6f}/h" if price else "")
        + f"; starting no more runs ({left} left unstarted)"
    )
