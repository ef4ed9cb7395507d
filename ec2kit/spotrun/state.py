"""The state one ``spot_run`` call shares between its phases: the record, the current instance, the follower."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..runs import RunRecord, Runs
from .options import SpotRunOptions

if TYPE_CHECKING:
    from ..aws.models import Instance
    from ..context import Context
    from .follower import Follower


@dataclass
class Phase:
    """Timestamps of one attempt (for the measurements in the report)."""

    running_at: float = 0.0
    started_at: float = 0.0


class RunState:
    """State shared by the phases of one run's attempts (a spot-run's, or one run of a sweep)."""

    def __init__(self, ctx: Context, options: SpotRunOptions, record: RunRecord) -> None:
        self.ctx, self.options, self.record = ctx, options, record
        self.runs = Runs(ctx.settings.runs_db)
        self.say = options.say or _default_say
        self.out = options.out or print
        self.instance: Instance | None = None
        self.follower: Follower | None = None
        self.script_started = False
        self.outage_since: float | None = None  # monotonic time contact with the instance was lost (None: in contact)
        self.phases: list[Phase] = []
        self.disk_full_said = False  # a full local disk is said once, at the first failed pull

    def save(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self.record, key, value)
        stored = self.runs.find(self.record.name)
        if stored and stored.state == "cancelled" and self.record.state != "cancelled":
            self.record.state = "cancelled"  # `inv stop-run` from another terminal wins
        self.runs.save(self.record)

    @property
    def cancelled(self) -> bool:
        """Whether someone stopped this run (``inv stop-run``) while we were following it."""
        stored = self.runs.find(self.record.name)
        return self.record.state == "cancelled" or bool(stored and stored.state == "cancelled")


_Run = RunState  # the name the phase modules use


def _default_say(message: str) -> None:
    from ..ui import info

    info(message)
