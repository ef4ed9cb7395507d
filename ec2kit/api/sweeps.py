"""Sweeps from both faces: ``ec2.sweep("train.sh", grid={"lr": [1e-3, 3e-4]})`` returns a live :class:`Sweep`."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError
from .base import Face
from .shown import Listing, _Shown, _silent

if TYPE_CHECKING:
    from ..sweep import SweepRecord
    from ..sweep.summary import Row
    from .ec2 import EC2

LARGE_SWEEP = 1000  # more runs than this, with no --max-cost, are asked about whatever the hourly rate


class SweepWatch(Protocol):
    """How the command line shows a sweep while it runs (its live table); Python callers pass none."""

    def begin(self, record: SweepRecord, parallel: int) -> None:
        """The sweep is checked and recorded; its runs start next."""

    def say(self, message: str) -> None:
        """One event (a launch, a run's end, an interruption)."""

    def tick(self, driver: Any) -> None:
        """The driver's state changed (redraw the table)."""

    def end(self) -> None:
        """The sweep ended (or was interrupted)."""


class Sweep(_Shown):
    """A sweep as a live view of its record: ``.state``, ``.status`` (settled first), ``.summary``, ``.stop()``, ``.pull()``."""

    def __init__(self, ec2: EC2, name: str, record: SweepRecord | None = None) -> None:
        self._ec2 = ec2
        self.name = name
        self._record = record

    @property
    def record(self) -> SweepRecord:
        """Its :class:`ec2kit.sweep.SweepRecord` as stored now."""
        from ..sweep.records import Sweeps

        self._record = Sweeps(self._ec2.settings.home).get(self.name)
        return self._record

    @property
    def snapshot(self) -> SweepRecord:
        """The record as last read (no new read)."""
        return self._record if self._record is not None else self.record

    @property
    def state(self) -> str:
        """Its recorded state: ``starting``, ``running``, ``succeeded``, ``failed``, ``cancelled``, ``orphaned``…"""
        return self.record.state

    @property
    def status(self) -> str:
        """Its state now: a sweep whose process died is settled first (as ``inv sweeps`` does)."""
        from .. import sweep

        sweep.list_sweeps(self._ec2.ctx)
        return self.state

    @property
    def results(self) -> Path:
        """The local directory its runs' results and summary.csv come home to."""
        return Path(self.snapshot.results_dir)

    def rows(self, *, refresh: bool = True) -> list[Row]:
        """Every run's row now (settings, state, instance, time, cost, latest metrics), sorted by its objective;
        detached runs of it are checked on their instances first (unless ``refresh=False``)."""
        from .. import spotrun, sweep
        from ..runs import Runs

        if refresh:
            spotrun.refresh(
                self._ec2.ctx, [r for r in Runs(self._ec2.settings.runs_db).all() if r.options.get("sweep") == self.name]
            )
        return sweep.rows(self._ec2.ctx, self.record)

    @property
    def summary(self) -> Listing[Row]:
        """Its table (``inv sweep-status``): one row per run."""
        from ..sweep.summary import table

        record = self.snapshot
        keys = list(dict.fromkeys(k for r in record.runs for k in r["settings"]))
        found = self.rows()
        columns, cells = table(found, keys)  # the metric columns depend on every row: cut once
        cell_of = {id(r): c for r, c in zip(found, cells)}
        return Listing(
            found,
            title=f"Sweep {self.name}: {self.snapshot.state}",
            columns=columns,
            row=lambda r: cell_of[id(r)],
            empty="No runs.",
        )

    def stop(self) -> Sweep:
        """Stop it (``inv stop-run SWEEP``): no new run starts, every live run is stopped, every instance released."""
        from .. import sweep

        self._record = sweep.stop_sweep(self._ec2.ctx, self.name, say=self._ec2._say)
        return self

    def pull(self) -> Sweep:
        """Pull every run of it that still has an instance (``inv pull SWEEP``); summary.csv is rewritten."""
        from .. import sweep

        sweep.pull_sweep(self._ec2.ctx, self.name, say=self._ec2._say)
        self._record = None
        return self

    def _fields(self) -> tuple[str, list[tuple[str, Any]]]:
        r = self.snapshot
        done = sum(1 for e in r.runs if e.get("outcome") == "succeeded")
        return f"Sweep {r.name}", [
            ("state", r.state),
            ("succeeded", f"{done}/{len(r.runs)}"),
            ("fleet calls", r.fleet_calls),
            ("instances", r.launched),
            ("spent", f"${r.spent:.4f}"),
            ("results", r.results_dir),
            ("note", r.note),
        ]

    def __repr__(self) -> str:
        state = self._record.state if self._record is not None else "?"
        return f"<Sweep {self.name} {state}>"


def grid_flags(grid: Mapping[str, Sequence[Any]] | Sequence[str] | None) -> list[str]:
    """``{"lr": [1e-3, 3e-4]}`` or ``["lr=1e-3,3e-4"]`` → ``["lr=0.001,0.0003"]`` (``--grid``'s form)."""
    if isinstance(grid, Mapping):
        return [f"{k}={','.join(str(v) for v in (vs if isinstance(vs, (list, tuple)) else [vs]))}" for k, vs in grid.items()]
    return list(grid or [])


class SweepVerbs(Face):
    """``EC2``'s sweep verbs (``inv sweep``, ``sweeps``, ``sweep-status``)."""

    def sweep(
        self,
        script: str | Path | None = None,
        *,
        grid: Mapping[str, Sequence[Any]] | Sequence[str] | None = None,
        grid_file: str | Path | None = None,
        parallel: int = 4,
        types: str | Sequence[str] = (),
        type: str | None = None,
        retries: int = 0,
        fresh: bool = False,
        max_cost: float | None = None,
        objective: str | None = None,
        name: str | None = None,
        files: str | Path | None = None,
        image: str | None = None,
        disk: int | None = None,
        results: str | Path | None = None,
        max_price: float | str | None = None,
        max_hours: float | None = None,
        on_demand_fallback: bool = False,
        detach: bool = False,
        vars: dict[str, Any] | None = None,
        subnet: str | None = None,
        security_groups: str | Sequence[str] = (),
        instance_profile: str | None = None,
        open_ssh: bool = False,
        workdir: str | Path | None = None,
        resume: str | None = None,
        watch: SweepWatch | None = None,
        gpus: str | None = None,
        gpu_memory: str | None = None,
        yes: bool = False,
    ) -> Sweep:
        """Run a script over a grid of settings on spot instances, ``parallel`` at a time (``inv sweep``); returns
        the :class:`Sweep` when it ended (``detach=True``: once its background process took it).

        ``grid`` is ``{"lr": [1e-3, 3e-4], "seed": [1, 2]}`` (every combination) or ``--grid``'s
        ``["lr=1e-3,3e-4"]``; launch options (``gpus``, ``gpu_memory`` too) default as for :meth:`spot_run`.
        Example: ``ec2.sweep("train.sh", grid={"lr": [1e-3, 3e-4]}, parallel=2).summary``.
        ``resume="NAME"`` starts the runs of sweep NAME that never started (its process was killed, or it was
        stopped), with its recorded options (give no script or grid then); ``detach``, ``watch`` and ``yes`` apply.
        The expected hourly cost of ``parallel`` instances (and the worst case: ``max_hours`` × runs; resuming,
        the runs left) is shown first; above ``confirm_above`` it asks, unless ``yes``.
        """
        from .. import sweep as sweeps

        if resume is not None:
            return self._resume(resume, script=script, grid=grid, grid_file=grid_file, detach=detach, watch=watch, yes=yes)
        if script is None:
            raise ConfigError(
                f"A sweep needs its script: {self.spelling.name('script')} train.sh.",
                hint=f"Or resume a recorded sweep: {self.spelling.name('resume')} NAME.",
            )
        launch = self._spot_launch(
            gpus=gpus,
            gpu_memory=gpu_memory,
            image=image,
            type=type,
            types=types,
            disk=disk,
            max_price=max_price,
            on_demand_fallback=on_demand_fallback,
            vars=vars,
            open_ssh=open_ssh,
            subnet=subnet,
            security_groups=security_groups,
            instance_profile=instance_profile,
            workdir=workdir,
        )
        options = sweeps.SweepOptions(
            script=str(script),
            grid=grid_flags(grid),
            grid_file=str(grid_file) if grid_file is not None else None,
            name=name,
            parallel=parallel,
            retries=retries,
            fresh=fresh,
            max_cost=max_cost,
            objective=objective,
            detach=detach,
            results=str(results) if results is not None else None,
            files=str(files) if files is not None else None,
            max_hours=max_hours,
            **launch,
        )
        self._confirm_sweep_cost(options, yes=yes)
        if detach:
            record = sweeps.start_detached(self.ctx, options)
            return Sweep(self._api, record.name, record)
        record, plan = sweeps.prepare(self.ctx, options)
        if self.quiet:
            options.say = options.out = _silent
        if watch is None:
            self._say(
                f"Sweep {record.name}: {len(record.runs)} runs, {options.parallel} at a time; results in {record.results_dir}",
                note=True,
            )
            final = sweeps.run(self.ctx, options, record, plan)
        else:
            watch.begin(record, options.parallel)
            options.say = watch.say
            try:
                final = sweeps.run(self.ctx, options, record, plan, tick=watch.tick)
            finally:
                watch.end()
        return Sweep(self._api, final.name, final)

    def _confirm_sweep_cost(self, options: Any, *, yes: bool, resuming: tuple[str, int] | None = None) -> None:
        """The grid checked and counted (no AWS call), then the estimate: ``parallel`` instances at a time. A fresh
        sweep and a resumed one (``resuming``: its name and the runs left to start) both pass here."""
        from ..sweep.grid import expand, load_file
        from ..sweep.options import check

        check(options)
        if resuming is None:
            runs = len(expand(options.grid, load_file(options.grid_file) if options.grid_file else None))
            what = f"this sweep ({runs} runs, {min(options.parallel, runs)} at a time)"
        else:
            name, runs = resuming
            what = f"resuming sweep {name} ({runs} run(s) left, {min(options.parallel, runs)} at a time)"
        estimate = self._api._estimate(
            [options.type, *options.types],
            spot=True,
            on_demand_fallback=options.on_demand_fallback,
            count=min(options.parallel, runs),
            disk=options.disk,
            max_hours=options.max_hours,
            runs=runs,
        )
        unbounded = ""
        if runs > LARGE_SWEEP and options.max_cost is None:
            left = " left" if resuming else ""
            unbounded = (
                f"this sweep has {runs} runs{left} and no {self.spelling.name('max_cost')}, so nothing bounds what it spends"
            )
        self._api._confirm_cost(estimate, yes=yes, what=what, unbounded=unbounded)

    def _resume(
        self, name: str, *, script: Any, grid: Any, grid_file: Any, detach: bool, watch: SweepWatch | None, yes: bool
    ) -> Sweep:
        """:meth:`sweep` with ``resume``: the recorded sweep's never-started runs, with its recorded options, after
        the same estimate and question as a fresh sweep (for the runs left)."""
        from .. import sweep as sweeps

        given = [k for k, v in (("script", script), ("grid", grid), ("grid_file", grid_file)) if v]
        if given:
            raise ConfigError(
                f"{self.spelling.name('resume')} {name} runs the sweep as it was recorded; leave out "
                + ", ".join(self.spelling.name(k) for k in given)
                + ".",
                hint=f"`inv sweep-status {name}` shows its settings.",
            )
        record, plan, options = sweeps.prepare_resume(
            self.ctx, name, confirm=lambda options, left: self._confirm_sweep_cost(options, yes=yes, resuming=(name, left))
        )
        if detach:
            record = sweeps.start_detached(self.ctx, options, record)
            return Sweep(self._api, record.name, record)
        if self.quiet:
            options.say = options.out = _silent
        if watch is None:
            self._say(f"Sweep {name}: resuming {len(plan.items)} run(s) that never started", note=True)
            final = sweeps.run(self.ctx, options, record, plan)
        else:
            watch.begin(record, options.parallel)
            options.say = watch.say
            try:
                final = sweeps.run(self.ctx, options, record, plan, tick=watch.tick)
            finally:
                watch.end()
        return Sweep(self._api, final.name, final)

    def sweeps(self) -> Listing[Sweep]:
        """Every sweep, newest first (a sweep whose process died is settled on the way), as ``inv sweeps``."""
        from .. import sweep

        return Listing(
            [Sweep(self._api, r.name, r) for r in sweep.list_sweeps(self.ctx)],
            title="Sweeps",
            columns=("name", "state", "succeeded", "fleet calls", "instances", "cost", "started", "note"),
            row=_sweep_row,
            empty="No sweeps yet. Start one with ec2.sweep('train.sh', grid={'lr': [1e-3, 3e-4]}).",
        )

    def sweep_status(self, sweep: str) -> Sweep:
        """Sweep ``sweep`` (settled first if its process died); ``.summary`` is ``inv sweep-status``'s table."""
        from .. import sweep as sweeplib
        from ..sweep.records import Sweeps

        sweeplib.list_sweeps(self.ctx)  # settles it if its process died
        return Sweep(self._api, sweep, Sweeps(self.settings.home).get(sweep))  # NotFound naming the sweeps there are


def _sweep_row(s: Sweep) -> tuple[Any, ...]:
    from ..sweep.summary import money

    r = s.snapshot
    done = sum(1 for e in r.runs if (e.get("outcome") or "") == "succeeded")
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))
    return (r.name, r.state, f"{done}/{len(r.runs)}", r.fleet_calls, r.launched, money(r.spent), started, r.note)
