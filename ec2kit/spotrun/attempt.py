"""One spot-run attempt, one executor: launch → prepare → follow → finish → recover.

In the spirit of SkyPilot's ``sky/jobs/recovery_strategy.py``: the lifecycle is written once, and what
differs between runs is how an attempt gets its instance and lets go of it, a :class:`Strategy`
(``strategies``: a one-time instant fleet, a resumable persistent request, an instance a sweep reuses).
``spot_run`` and the sweep driver both drive :class:`Attempt`; they only decide what comes after an
:class:`Outcome` (another attempt, the next run on the same instance, the end).

Two rules hold in every phase:
- an interruption is an interruption whenever it comes (while the instance is prepared, the files are
  uploaded, the script is started, followed or pulled from): the outcome is ``interrupted`` and
  ``--retries`` decides; only a failure on an instance EC2 still runs is the run's failure;
- an instance holding results that are not home is never released by ec2kit: a failed final pull
  leaves the run waiting for ``inv pull RUN`` (``Outcome.kept`` says what is missing and how to get it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..errors import Ec2kitError
from ..tags import SPOT_REQUEST_TAG
from .home import bring_home, gone_for_good, say_home_failed
from .release import _report_leftovers, _revoke_quietly
from .state import Phase, RunState

if TYPE_CHECKING:
    from ..aws.models import Instance

FINISHED = ("succeeded", "failed", "timeout")  # the script ended on its own
RECOVERABLE = ("interrupted", "lost")  # the instance (or its wrapper) went away: another attempt may resume


class Strategy(Protocol):
    """How an attempt gets its instance and lets go of it (``strategies`` has the three kinds)."""

    kind: str
    marks_pulled: bool  # the final pull tells the wrapper it may power the instance off

    def launch(self, run: RunState, attempt: int) -> Instance:
        """An instance for attempt ``attempt``, recorded on the run (``record_instance``) before anything else."""
        ...

    def let_go(self, run: RunState) -> list[str]:
        """The attempt is over: release the instance (or hand it back); what could not be removed, as hints."""
        ...

    def keep(self, run: RunState) -> None:
        """The instance holds results that are not home: it must outlive the attempt (nothing releases it)."""
        ...


@dataclass
class Outcome:
    """How an attempt ended. ``state``: succeeded/failed/timeout, cancelled, interrupted/lost, or detached."""

    state: str
    why: str = ""  # what happened, for the message ("its wrapper died", "interrupted while being prepared", …)
    status: dict = field(default_factory=dict)  # the wrapper's last status
    kept: str = ""  # non-empty: the instance was kept because results are not home; says what is missing and how
    leftovers: list[str] = field(default_factory=list)

    @property
    def recoverable(self) -> bool:
        """Whether another attempt may resume the run (the instance went away, not by the user's hand)."""
        return self.state in RECOVERABLE and not self.kept


def spot_request_of(inst: Instance) -> str | None:
    """The spot request that launched ``inst`` (tagged by ec2kit's fleet launch, or as EC2 reports it)."""
    return inst.tags.get(SPOT_REQUEST_TAG) or inst.spot_request_id


def record_instance(
    run: RunState, inst: Instance, *, attempt: int, price: float | None, owned: bool = True, **extra: object
) -> Instance:
    """Write the attempt's instance (and its spot request) on the run's record at once, then start its clock.

    Every launch kind calls this, so whatever happens next (Ctrl-C, a crash) the record names what to release.
    An instance the run does not own (``owned=False``: `inv exec`) is named, never listed as created: nothing
    that releases a run's resources ever sees it.
    """
    rec = run.record
    request = spot_request_of(inst) if owned else None
    if owned:
        rec.add_created("instances", inst.id)
    else:
        rec.options["existing"] = inst.id
    if request:
        rec.add_created("requests", request)
    rec.instance_started()
    rec.hourly_price = price or rec.hourly_price
    rec.options["market"] = "spot" if inst.lifecycle == "spot" else "on-demand"
    rec.options.update(extra)
    run.save(state="starting", attempt=attempt, instance_id=inst.id, request_id=request, zone=inst.zone, instance_type=inst.type)
    run.instance = inst
    run.phases.append(Phase(running_at=time.monotonic()))
    return inst


class Attempt:
    """Drives one run's attempts with one strategy (``attempt(number) -> Outcome``)."""

    def __init__(self, run: RunState, strategy: Strategy) -> None:
        self.run, self.strategy = run, strategy

    def __call__(self, number: int) -> Outcome:
        """Attempt ``number``: launch, prepare and start, follow, then finish (results home, instance let go)."""
        from .follow import _follow
        from .prepare import _prepare_and_start

        run = self.run
        self.strategy.launch(run, number)
        try:
            if run.cancelled:
                raise KeyboardInterrupt
            _prepare_and_start(run, number)
        except Ec2kitError as err:
            if not self._instance_went_away():
                raise
            # An interruption before the script started is an interruption, not the run's failure.
            return self.recover(Outcome("interrupted", why=f"its instance went away while the run was being prepared ({err})"))
        if run.options.detach:
            return Outcome("detached")
        state = _follow(run)
        status = run.follower.status if run.follower else {}
        if state == "cancelled":
            return self.cancelled()
        if state in FINISHED:
            return self.finish(Outcome(state, status=status))
        if status.get("why") == "wrapper":
            label = run.instance.label if run.instance else "?"
            why = f"the run's wrapper on {label} died (no heartbeat for {status.get('beat_age') or 0:.0f} s, no tmux session)"
        else:
            why = f"instance {state}"
        return self.recover(Outcome(state, why=why, status=status))

    # ------------------------------------------------------------------ the endings

    def finish(self, outcome: Outcome) -> Outcome:
        """The script ended: its results home (the monitor's push first), then the instance is let go.

        A final pull that failed on an instance that went away meanwhile is an interruption (another
        attempt recomputes what was lost); one that failed on a live instance keeps it (``Outcome.kept``).
        """
        from .follow import _final_push_or_pull

        run, rec = self.run, self.run.record
        if run.options.monitor:
            _final_push_or_pull(run)
        home = bring_home(run, mark=self.strategy.marks_pulled)
        rec.exit_code = outcome.status.get("exit_code")
        if not home.ok:
            if home.gone:
                return self.recover(
                    Outcome("interrupted", why="its instance went away during the final pull", status=outcome.status)
                )
            return self._keep(outcome, home.missing)
        rec.ended_at = time.time()
        outcome.leftovers = [] if run.options.keep and self.strategy.kind != "reused" else self.strategy.let_go(run)
        if run.options.monitor:
            outcome.leftovers += _revoke_quietly(run)
        run.save(state=outcome.state)
        _report_leftovers(run, outcome.leftovers)
        return outcome

    def recover(self, outcome: Outcome) -> Outcome:
        """The instance (or its wrapper) went away: stop what is left of the script, pull what is there, let go.

        EC2 saying the instance was terminated by its owner (``inv terminate``, the console) ends the run as
        ``cancelled`` ("terminated by you"): no replacement is launched for it.
        """
        from .commands import kill_command
        from .prepare import _host

        run = self.run
        if outcome.status.get("why") == "wrapper":
            run.say(f"{run.record.name}: {outcome.why}: stopping what is left of the script, pulling its results")
            try:
                _host(run).run(kill_command(run.record.name), check=False, timeout=30)
            except Ec2kitError:
                pass
        home = bring_home(run, mark=self.strategy.marks_pulled)
        if not home.ok and not home.gone:
            return self._keep(outcome, home.missing)
        by_you = terminated_by_owner(run)
        if by_you.startswith("stopped") and run.script_started and run.instance is not None:
            # Stopped, not terminated: its disk holds what the last pull did not bring; it is not ec2kit's to destroy.
            why = f"its instance was {by_you} before every result came home; `inv start {run.instance.id}` first, then"
            return self._keep(Outcome("cancelled", why="stopped by you", status=outcome.status), "", why=why)
        outcome.leftovers = self.strategy.let_go(run)
        _report_leftovers(run, outcome.leftovers)
        if by_you:
            run.record.options["note"] = f"{by_you}; no replacement was launched"
            run.record.ended_at = time.time()
            run.save(state="cancelled")
            run.say(f"{run.record.name}: its instance was {by_you}: the run ends here, without a replacement")
            return Outcome("cancelled", why="terminated by you", status=outcome.status, leftovers=outcome.leftovers)
        return outcome

    def cancelled(self) -> Outcome:
        """``inv stop-run`` (or the sweep stopping): stop the script, pull what is there, let go.

        ``inv stop-run`` pulls too; whichever comes second finds the results home already."""
        from .commands import kill_command
        from .prepare import _host

        run = self.run
        if run.script_started and run.instance is not None:
            try:
                run.ctx.forget_host(run.instance.id)  # Ctrl-C may have cut the shared connection mid-command
                _host(run).run(kill_command(run.record.name), check=False, timeout=15)
                if run.follower is not None:
                    run.follower.host = _host(run)
            except Ec2kitError:
                pass
            home = bring_home(run, mark=self.strategy.marks_pulled)
            if not home.ok and not home.gone:
                return self._keep(Outcome("cancelled"), home.missing)
        leftovers = self.strategy.let_go(run)
        _report_leftovers(run, leftovers)
        run.record.state = "cancelled"
        return Outcome("cancelled", leftovers=leftovers)

    def failed(self) -> Outcome:
        """A failure on an instance EC2 still runs, before the script ended: pull what is there, let go."""
        home = bring_home(self.run, mark=self.strategy.marks_pulled)
        if not home.ok and not home.gone:
            return self._keep(Outcome("failed", why="error"), home.missing)
        leftovers = self.strategy.let_go(self.run)
        _report_leftovers(self.run, leftovers)
        return Outcome("failed", why="error", leftovers=leftovers)

    def _keep(self, outcome: Outcome, missing: str, *, why: str = "") -> Outcome:
        """Results are not home and the instance holds them: it stays, and the record says how to get them."""
        run, rec = self.run, self.run.record
        label = run.instance.label if run.instance else "its instance"
        note = (
            f"{why or 'the final pull failed: ' + missing}; {label} keeps them and waits: `inv pull {rec.name}` brings "
            f"them home (then it is released)"
        )
        self.strategy.keep(run)
        rec.options["orphaned"] = True  # nothing follows it any more: `inv runs` settles it, `inv pull` ends it
        rec.options.update(note=note, not_home=True)
        if outcome.status.get("exit_code") is not None:
            rec.exit_code = outcome.status.get("exit_code")
        run.save(state="running")  # live: its instance is not released by `inv cleanup`
        say_home_failed(run, note)
        outcome.kept = note
        return outcome

    def _instance_went_away(self) -> bool:
        """Whether EC2 says the attempt's instance is going or gone (an interruption), asked a few times."""
        return self.run.instance is not None and gone_for_good(self.run)


def terminated_by_owner(run: RunState) -> str:
    """'terminated by you (…)' when the run's instance was ended by its owner rather than by a spot interruption:
    ``inv terminate``/``stop`` confirmed for it (the record says so), or EC2's state reason
    Client.UserInitiatedShutdown (the console; AWS gives an interruption Server.SpotInstanceTermination); else ''."""
    stored = run.runs.find(run.record.name)
    if stored is not None and stored.options.get("ended_by_you"):
        return str(stored.options["ended_by_you"])
    if run.instance is None:
        return ""
    try:
        inst = run.ctx.cloud.instance(run.instance.id, states=["stopping", "stopped", "shutting-down", "terminated"])
    except Ec2kitError:
        return ""
    code = (inst.raw.get("StateReason") or {}).get("Code", "")
    if code == "Client.UserInitiatedShutdown":
        return f"{'stopped' if inst.state in ('stopping', 'stopped') else 'terminated'} by you (EC2 says {code})"
    return ""
