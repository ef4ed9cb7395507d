"""What the driver holds per instance: the instance and its cost (a slot), and the run state of the run on it."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from ..runs import RunRecord
from ..spotrun.options import SpotRunOptions
from ..spotrun.state import RunState
from .plan import Item

if TYPE_CHECKING:
    from ..aws.models import Instance
    from ..context import Context


class _SweepRun(RunState):
    """A spot-run's phase state whose 'cancelled' also means: the whole sweep is stopping."""

    def __init__(self, ctx: Context, options: SpotRunOptions, record: RunRecord, stop: threading.Event) -> None:
        super().__init__(ctx, options, record)
        self.stop = stop

    @property
    def cancelled(self) -> bool:
        return self.stop.is_set() or super().cancelled


class _Slot:
    """One instance the sweep holds, and what it costs."""

    def __init__(self, instance: Instance, price: float | None) -> None:
        self.instance, self.price = instance, price
        self.since: float = time.time()
        self.until: float | None = None  # when it was terminated
        self.item: Item | None = None
        self.runs = 0
        self.kept = ""  # the run whose results it holds, not home: never terminated by the sweep (`inv pull RUN`)

    def cost(self, now: float | None = None) -> float:
        end = self.until or (now or time.time())
        return (self.price or 0.0) * max(end - self.since, 0.0) / 3600
