"""The sweep driver: one process, one thread per instance, spot-run's own phases for each run.

``Driver(ctx, options, record, plan).run()``: the main thread asks the fleet for as many instances as
there are free places (ONE CreateFleet per batch), hands each to a worker thread, and waits. A worker
runs its run with spot-run's pieces (prepare + start, follow, final pull), then, unless ``--fresh``,
cleans the run's directory and takes the next queued run on the same instance; when nothing is left
for it (or its instance was interrupted: the run goes back to the queue) it terminates its instance.

Every run is an ordinary run record (``inv runs/logs/attach RUN``) whose options name the sweep.
Instances carry ``ec2kit:sweep=SWEEP`` and ``ec2kit:run=<the run they serve>`` (re-tagged per run),
so ``inv stop-run``, ``inv cleanup`` and a settling ``inv sweeps`` find them whatever happened.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Ec2kitError
from ..runs import RunRecord, Runs, masked_vars
from ..spotrun.attempt import FINISHED, Attempt, spot_request_of
from ..spotrun.commands import kill_command
from ..spotrun.options import SpotRunOptions
from ..spotrun.owner import me as current_owner
from ..spotrun.prepare import host
from ..spotrun.release import terminate_instance
from ..spotrun.strategies import Reused, default_image
from ..tags import RUN_TAG, SWEEP_TAG
from .options import SweepOptions, run_options
from .plan import Item, Plan, budget_message
from .records import SweepRecord, Sweeps
from .slot import _Slot, _SweepRun
from .status import release_sweep, sweep_rows
from .summary import Row

if TYPE_CHECKING:
    from ..context import Context


class Driver:
    """Runs one sweep to its end (or until stopped); see the module docstring."""

    def __init__(self, ctx: Context, options: SweepOptions, record: SweepRecord, plan: Plan) -> None:
        self.ctx, self.options, self.record, self.plan = ctx, options, record, plan
        self.sweeps = Sweeps(ctx.settings.home)
        self.runs = Runs(ctx.settings.runs_db)
        self.say: Callable[[str], None] = options.say or _default_say
        self.lock = threading.Condition()
        self.stop = threading.Event()
        self.slots: list[_Slot] = []  # live ones
        self.closed: list[_Slot] = []
        self.threads: list[threading.Thread] = []
        self.price: float | None = None  # the last hourly price a fleet gave (the estimate for the next launch)
        self.launch_blocked = False  # no capacity last time: wait for a run to end before asking again
        self.cancelled = False
        self.spent_before = record.spent or 0.0  # a resumed sweep's earlier spending stays counted

    # ------------------------------------------------------------------ money

    def spent(self) -> float:
        """USD so far over every instance the sweep held."""
        now = time.time()
        return self.spent_before + sum(s.cost(now) for s in self.closed + self.slots)

    def running_hourly(self) -> float:
        """USD/hour of the instances held now."""
        return sum(s.price or self.price or 0.0 for s in self.slots)

    # ------------------------------------------------------------------ main thread

    def run(self, tick: Callable[[], None] | None = None) -> SweepRecord:
        """Run the sweep; Ctrl-C stops it (every result pulled, every instance gone). Returns the final record."""
        self.price = self.options.price_estimate
        self._save(state="running", owner=current_owner())
        try:
            self._loop(tick)
        except KeyboardInterrupt:
            self.say(f"{self.record.name}: interrupted (Ctrl-C): stopping every run, pulling results, releasing instances")
            self._cancel()
        except BaseException as err:
            self.say(f"{self.record.name}: stopping after an error ({err}); pulling results, releasing instances")
            self._cancel()
            if isinstance(err, Ec2kitError):
                self._finish("failed", note=str(err))
                raise
            raise
        if self.cancelled:
            return self._finish("cancelled", note="stopped; every run's results pulled, every instance released")
        outcomes = [i.outcome for i in self.plan.items]
        state = "succeeded" if all(o == "succeeded" for o in outcomes) else "failed"
        return self._finish(state)

    def _loop(self, tick: Callable[[], None] | None) -> None:
        last_check = 0.0
        while True:
            budget_hit = False
            with self.lock:
                if self.plan.done(len(self.slots)):
                    return
                wanted = 0 if self.launch_blocked or self.stop.is_set() else self.plan.launches_wanted(len(self.slots))
                if wanted and self.plan.max_cost is not None:
                    fits = self.plan.affordable(
                        wanted, spent=self.spent(), running_hourly=self.running_hourly(), price=self.price
                    )
                    # the rule: launch what fits, and from the first time the budget would pass, start no new run
                    wanted, budget_hit = fits, fits < wanted
            if wanted:
                self._launch_batch(wanted)
            if budget_hit:
                with self.lock:
                    self._budget_stop()
            if tick is not None:
                tick()
            now = time.monotonic()
            if now - last_check >= 1.0:
                last_check = now
                self._check_stopped_from_outside()
                self._save()
            with self.lock:
                if not self.plan.done(len(self.slots)):
                    self.lock.wait(0.5)

    def _check_stopped_from_outside(self) -> None:
        """`inv stop-run SWEEP` from another terminal marks the record 'stopping': stop like Ctrl-C."""
        stored = self.sweeps.find(self.record.name)
        if stored is not None and stored.state in ("stopping", "cancelled") and not self.stop.is_set():
            self.say(f"{self.record.name}: stopped by `inv stop-run {self.record.name}`")
            raise KeyboardInterrupt

    def _budget_stop(self) -> None:
        assert self.plan.max_cost is not None
        left = self.plan.pending
        why = budget_message(self.plan.max_cost, self.spent(), self.running_hourly(), self.price, left)
        for item in self.plan.stop(why):
            self._skip_record(item)
        self.say(f"{self.record.name}: {why}")
        self.record.note = why

    def _launch_batch(self, count: int) -> None:
        """ONE CreateFleet for ``count`` instances; each that comes takes a queued run in a worker thread."""
        from ..errors import AwsError

        opts = self.options
        self.record.fleet_calls += 1
        batch = self.record.fleet_calls
        types = list(dict.fromkeys([opts.type, *opts.types]))
        self.say(f"{self.record.name}: asking EC2 Fleet for {count} spot instance(s) ({', '.join(types)}), batch {batch}")
        try:
            plan = self.ctx.cloud.plan_launch(
                f"{self.record.name}-b{batch}",
                type=opts.type,
                image=opts.image or default_image(self.ctx),
                spot=True,
                max_price=opts.max_price,
                disk=opts.disk,
                tags={RUN_TAG: self.record.name, SWEEP_TAG: self.record.name},
                subnet=opts.subnet,
                security_groups=opts.security_groups,
                instance_profile=opts.instance_profile,
                open_ssh=opts.open_ssh,
                shutdown_behavior="terminate",
            )
            got = self.ctx.cloud.launch_many(
                plan, count, types=types[1:], on_demand_fallback=opts.on_demand_fallback, progress=self._quota_note
            )
        except AwsError as err:
            with self.lock:
                if self.slots:
                    self.launch_blocked = True
                    self.say(f"{self.record.name}: no instance this time ({err}); waiting for a run to end, then asking again")
                    return
                why = f"no instance could be launched ({err})"
                for skipped in self.plan.stop(why):
                    self._skip_record(skipped)
                self.record.note = why
                self.say(f"{self.record.name}: {why}; no run can start")
                return
        finally:
            self._save()
        with self.lock:
            self.record.launched += len(got)
            for inst in got:
                self.price = inst.hourly_price or self.price
                slot = _Slot(inst, inst.hourly_price or self.price)
                item = self.plan.next_run()
                if item is None:  # stopped meanwhile: this one is not needed
                    self._terminate(slot)
                    self.closed.append(slot)
                    continue
                slot.item = item
                self.slots.append(slot)
                thread = threading.Thread(target=self._work, args=(slot,), name=f"sweep-{inst.id}", daemon=True)
                self.threads.append(thread)
                thread.start()
            if got and len(got) < count:
                self.say(f"{self.record.name}: EC2 Fleet gave {len(got)} of {count} instances; the rest wait for capacity")
        self._save()

    def _quota_note(self, text: str) -> None:
        """The launch's progress lines worth a sweep's reader: what the vCPU quotas allow."""
        if "quota" in text:
            self.say(f"{self.record.name}: {text}")

    def _cancel(self) -> None:
        """Ctrl-C / stop: workers stop their runs (final pull, kill), then every sweep instance is released."""
        self.cancelled = True
        self.stop.set()
        with self.lock:
            for item in self.plan.stop("cancelled"):
                self._skip_record(item, outcome="cancelled")
            self.lock.notify_all()
        self._save(state="stopping")
        deadline = time.monotonic() + 300
        for thread in list(self.threads):
            while thread.is_alive() and time.monotonic() < deadline:
                try:
                    thread.join(1.0)
                except KeyboardInterrupt:  # a second Ctrl-C: the release below still runs
                    deadline = time.monotonic()
        with self.lock:
            for slot in list(self.slots):
                self._terminate(slot)
                self.slots.remove(slot)
                self.closed.append(slot)
        left = release_sweep(self.ctx, self.record.name, keep={s.kept for s in self.closed + self.slots if s.kept})
        if left:
            self.say(f"{self.record.name}: could not remove everything. Still there: {'; '.join(left)}")

    def _finish(self, state: str, note: str = "") -> SweepRecord:
        outcomes: dict[str, str] = {i.name: i.outcome for i in self.plan.items}
        for run in self.record.runs:
            run["outcome"] = outcomes.get(run["name"], run.get("outcome", ""))
        self.record.note = note or self.record.note
        self._save(state=state, ended_at=time.time())
        return self.record

    def _save(self, **changes: Any) -> None:
        outcomes = {i.name: i.outcome or i.status for i in self.plan.items}
        spent = self.spent()

        def change(stored: SweepRecord) -> None:
            for key, value in changes.items():
                setattr(stored, key, value)
            stored.fleet_calls, stored.launched, stored.reused = self.record.fleet_calls, self.record.launched, self.record.reused
            stored.spent, stored.note = spent, self.record.note or stored.note
            for run in stored.runs:
                run["outcome"] = outcomes.get(run["name"], run.get("outcome", ""))

        with self.lock:
            stored = self.sweeps.update(self.record.name, change)
            self.record.state, self.record.owner, self.record.ended_at = stored.state, stored.owner, stored.ended_at
            self.record.spent = stored.spent

    def _skip_record(self, item: Item, outcome: str = "skipped") -> None:
        item.outcome = outcome
        rec = self.runs.find(item.name)
        if rec is not None and rec.live:  # an interrupted run waiting for its retry
            rec.state, rec.ended_at = "interrupted" if outcome == "skipped" else "cancelled", time.time()
            self.runs.save(rec)

    # ------------------------------------------------------------------ worker threads

    def _work(self, slot: _Slot) -> None:
        """Run queued runs on ``slot``'s instance until none is left for it; then release the instance."""
        item: Item | None = slot.item
        reusable = True
        try:
            while item is not None:
                outcome, reusable = self._run_one(slot, item)
                with self.lock:
                    slot.runs += 1
                    if outcome in ("interrupted", "lost"):
                        if self.plan.interrupted(item):
                            self.say(
                                f"{item.name}: its instance {slot.instance.id} went away; queued again (retry {item.attempts} of {self.plan.retries})"
                            )
                        reusable = False
                    else:
                        self.plan.finished(item, outcome)
                    item = None
                    if reusable and not self.stop.is_set() and self.plan.reuse():
                        if self.plan.may_continue(spent=self.spent(), running_hourly=self.running_hourly()):
                            item = self.plan.next_run()
                        else:
                            self._budget_stop()
                    slot.item = item
                    if item is not None:
                        self.record.reused += 1
                    self.lock.notify_all()
        except BaseException as err:  # noqa: BLE001 - a worker never takes the sweep down; its instance is released
            self.say(f"{slot.instance.id}: worker stopped after an unexpected error ({type(err).__name__}: {err})")
            with self.lock:
                if slot.item is not None and slot.item.status != "done":
                    self.plan.finished(slot.item, "failed")
                    rec = self.runs.find(slot.item.name)
                    if rec is not None and rec.live:
                        rec.state, rec.ended_at = "failed", time.time()
                        rec.options["note"] = f"the sweep's worker stopped ({type(err).__name__}: {err})"
                        self.runs.save(rec)
        finally:
            self._terminate(slot)
            with self.lock:
                if slot in self.slots:
                    self.slots.remove(slot)
                    self.closed.append(slot)
                self.launch_blocked = False
                self.lock.notify_all()

    def _run_one(self, slot: _Slot, item: Item) -> tuple[str, bool]:
        """One attempt of ``item`` on ``slot``'s instance: (final state, whether the instance may take another run)."""
        opts = run_options(self.options, self.record.name, item.name, item.settings)
        run = _SweepRun(self.ctx, opts, self._record(item, opts), self.stop)
        strategy = Reused(slot.instance, slot.price, first=slot.runs == 0, label=grid_label(item.settings))
        attempt = Attempt(run, strategy)
        try:
            outcome = attempt(item.attempts)
        except KeyboardInterrupt:
            outcome = attempt.cancelled()
        except Ec2kitError as err:
            if self.stop.wait(1.0):  # Ctrl-C reaches ssh and rsync too: their failure is the sweep stopping
                outcome = attempt.cancelled()
            else:
                self.say(f"{item.name}: {err}")
                run.record.options["note"] = str(err)[:500]
                outcome = attempt.failed()
        finally:
            slot.instance = strategy.instance
        if outcome.kept:  # its results are not home: the instance stays for `inv pull RUN`, out of the sweep
            slot.kept = item.name
            self.say(f"{item.name}: its instance {slot.instance.id} keeps results that are not home; the other runs go on")
            return "failed", False
        if outcome.state == "cancelled":
            self._end_run(run, "cancelled")
            return "cancelled", False
        if outcome.state in FINISHED and not outcome.why:
            self._end_run(run, outcome.state)
            if outcome.state != "succeeded":
                self.say(f"{item.name}: {outcome.state} (exit code {run.record.exit_code}); the other runs go on")
            else:
                self.say(f"{item.name}: succeeded")
            # timeout: the wrapper powers the instance off; never hand it on
            return outcome.state, outcome.state != "timeout" and self._clean(run)
        if outcome.state == "failed":  # a failure before the script ended, on an instance EC2 still runs
            self._end_run(run, "failed")
            return "failed", False
        # interrupted, or lost (instance or wrapper gone), in any phase: what was pulled is kept; the run may be queued again
        self._end_run(run, "recovering" if item.attempts <= self.plan.retries and not self.stop.is_set() else "interrupted")
        return "interrupted", False

    def _record(self, item: Item, opts: SpotRunOptions) -> RunRecord:
        """The run's record: made at its first attempt, the same one for a retry."""
        if item.attempts > 1:
            found = self.runs.find(item.name)
            if found is not None:
                return found
        # not asdict(opts): it would deep-copy the message callbacks (and whatever holds them) before they are dropped
        stored = {f.name: copy.deepcopy(getattr(opts, f.name)) for f in fields(opts) if f.name not in ("out", "say")}
        stored["vars"] = masked_vars(opts.vars)
        stored["owner"] = current_owner()
        stored["sweep"] = self.record.name
        stored["settings"] = dict(item.settings)
        results = Path(opts.results or "")
        results.mkdir(parents=True, exist_ok=True)
        record = RunRecord(name=item.name, script=opts.script, results_dir=str(results), options=stored)
        return self.runs.create(record)

    def _end_run(self, run: _SweepRun, state: str) -> None:
        """The run's final state for this attempt (its strategy already took the instance off its record)."""
        if state != "recovering":
            run.record.ended_at = time.time()
        run.save(state=state)
        if self.stop.is_set() and state == "recovering":
            run.save(state="cancelled")

    def _clean(self, run: _SweepRun) -> bool:
        """Stop the finished run's wrapper and remove its directory, so the instance can take the next run."""
        if self.options.fresh or self.stop.is_set():
            return False
        name = run.record.name
        try:
            host(run).run(f'{kill_command(name)}; rm -rf "$HOME/ec2kit/{name}"', timeout=60)
            return True
        except Ec2kitError as err:
            self.say(
                f"{name}: could not clean the run's directory on {run.instance.id if run.instance else '?'} ({err}); not reusing it"
            )
            return False

    def _terminate(self, slot: _Slot) -> None:
        if slot.until is not None or slot.kept:  # kept: it holds a run's results that are not home
            return
        self.ctx.forget_host(slot.instance.id)
        left = terminate_instance(self.ctx.cloud, slot.instance.id, spot_request_of(slot.instance), wait=False)
        slot.until = time.time()
        if left:
            self.say(f"{self.record.name}: could not remove {'; '.join(left)}")

    # ------------------------------------------------------------------ the table

    def rows(self) -> list[Row]:
        """Every run's row now (from the run records; queued runs from the plan)."""
        return sweep_rows(self.ctx, self.record, {i.name: i for i in self.plan.items})


def grid_label(settings: dict[str, str]) -> str:
    """``LR=1e-3 SEED=1``: what the script's environment gets."""
    from .grid import environment

    return " ".join(f"{k}={v}" for k, v in environment(settings).items())


def _default_say(message: str) -> None:
    from ..ui import info

    info(message)
