"""Sweeps: one script over a grid of settings, on many spot instances from EC2 Fleet, with a table of results.

Public API (what ``inv sweep``, ``inv sweeps``, ``inv sweep-status`` and the sweep forms of
``inv pull`` / ``inv stop-run`` call)::

    record, plan = prepare(ctx, SweepOptions(script="train.sh", grid=["lr=1e-3,3e-4", "seed=1,2"], parallel=4))
    record = run(ctx, options, record, plan)     # the live sweep (Ctrl-C: everything pulled and released)
    record = start_detached(ctx, options)        # the same in a background process
    list_sweeps(ctx) -> [SweepRecord]            # detached / orphaned ones settled on the way
    rows(ctx, record) -> [Row]; write_summary(ctx, record) -> Path
    pull_sweep(ctx, name) -> [Path]; stop_sweep(ctx, name) -> SweepRecord

Modules: ``grid`` (the runs' settings, pure), ``plan`` (queue, reuse, budget, pure), ``options``
(SweepOptions → each run's SpotRunOptions), ``driver`` (the threads), ``records`` (sweep JSON files),
``summary`` (summary.csv, objective sort), ``background`` (a detached sweep's process).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, RunError
from .options import SweepOptions, check, default_name, run_names, run_options
from .plan import Item, Plan
from .records import SweepRecord, Sweeps
from .summary import Row, parse_objective, sort_rows

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..context import Context

__all__ = [
    "SweepOptions",
    "SweepRecord",
    "find_sweep",
    "list_sweeps",
    "prepare",
    "prepare_resume",
    "pull_sweep",
    "rows",
    "run",
    "start_detached",
    "stop_sweep",
    "write_summary",
]


def prepare(ctx: Context, options: SweepOptions) -> tuple[SweepRecord, Plan]:
    """Check everything (flags, grid, script, names, then the cloud's image and network) and write the sweep record.

    Nothing is launched; bad input raises before any AWS call.
    """
    from ..spotrun.commands import check_run_name
    from ..spotrun.options import preflight, validate
    from .grid import expand, load_file

    check(options)
    parse_objective(options.objective)
    settings = expand(options.grid, load_file(options.grid_file) if options.grid_file else None)
    name = check_run_name(options.name or default_name(options.script))
    names = [check_run_name(n) for n in run_names(name, len(settings))]
    first = run_options(options, name, names[0], settings[0])
    _, results = validate(first)  # the script, --files, --retries, --max-hours
    root = results.parent
    sweeps = Sweeps(ctx.settings.home)
    old = sweeps.find(name)
    if old is not None and old.live:
        raise ConfigError(
            f"A sweep named '{name}' is still {old.state}.", hint=f"Pick another --name, or stop it: inv stop-run {name}"
        )
    from ..runs import Runs

    runs = Runs(ctx.settings.runs_db)
    for run_name in names:
        found = runs.find(run_name)
        if found is not None and found.live:
            raise ConfigError(
                f"Run {run_name} of sweep {name} is already {found.state}.",
                hint=f"Pick another --name, or stop it: inv stop-run {run_name}",
            )
    preflight(ctx, first, results)  # the cloud: image, network, profile; spot-run.toml's variables
    if options.max_cost is not None and options.price_estimate is None:
        options.price_estimate = price_estimate(ctx, [options.type, *options.types])
    record = SweepRecord(
        name=name,
        options=options.stored(),
        runs=[{"name": n, "settings": s, "outcome": ""} for n, s in zip(names, settings)],
        results_dir=str(root),
    )
    sweeps.create(record)
    items = [Item(i, n, s) for i, (n, s) in enumerate(zip(names, settings))]
    return record, Plan(items, parallel=options.parallel, retries=options.retries, fresh=options.fresh, max_cost=options.max_cost)


#: Outcomes of runs a resumed sweep starts: never started ("", still "queued" — a retry that never came counts)
#: or "skipped" when the sweep's process died or it was stopped.
NOT_STARTED = ("", "queued", "skipped")


def pending(record: SweepRecord) -> list[Item]:
    """The runs of ``record`` that never started, as plan items in grid order."""
    return [Item(i, r["name"], r["settings"]) for i, r in enumerate(record.runs) if r.get("outcome", "") in NOT_STARTED]


def prepare_resume(
    ctx: Context, name: str, confirm: Callable[[SweepOptions, int], None] | None = None
) -> tuple[SweepRecord, Plan, SweepOptions]:
    """`inv sweep --resume NAME`: the recorded sweep, made ready to start the runs that never started (its
    process was killed, or it was stopped), with its recorded options. Checked before any AWS call that costs;
    ``confirm(options, runs_left)`` (the cost estimate and question) runs before the record is marked started,
    so a refusal leaves it as it was."""
    from ..runs import Runs
    from ..spotrun import owner
    from ..spotrun.options import preflight, validate

    sweeps = Sweeps(ctx.settings.home)
    record = sweeps.find(name)
    if record is None:
        known = [r.name for r in sweeps.all()]
        from difflib import get_close_matches

        close = get_close_matches(name, known, n=1)
        raise ConfigError(
            f"No sweep named '{name}' to resume." + (f" Did you mean '{close[0]}'?" if close else ""),
            hint="`inv sweeps` lists them.",
        )
    if record.live and owner.alive(record.owner) is not False:
        raise ConfigError(
            f"Sweep {name} is still {record.state} (its process is alive): it starts its own queued runs.",
            hint=f"`inv sweep-status {name}` shows it; `inv stop-run {name}` stops it.",
        )
    if record.live:
        record = settle(ctx, record)  # its process died: what goes on becomes detached, the rest 'skipped'
    items = pending(record)
    if not items:
        counts: dict[str, int] = {}
        for entry in record.runs:
            counts[entry.get("outcome") or "?"] = counts.get(entry.get("outcome") or "?", 0) + 1
        said = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        raise ConfigError(
            f"Sweep {name} has no run left to start ({said}).",
            hint=f"`inv sweep-status {name}` shows its table; start a new sweep for runs that failed.",
        )
    options = SweepOptions.from_stored(record.options)
    runs = Runs(ctx.settings.runs_db)
    for item in items:
        found = runs.find(item.name)
        if found is not None and found.live:
            raise ConfigError(
                f"Run {item.name} of sweep {name} is already {found.state}.",
                hint=f"Stop it first: inv stop-run {item.name}",
            )
    first = run_options(options, name, items[0].name, items[0].settings)
    _, results = validate(first)  # the script and --files are still there
    preflight(ctx, first, results)
    if confirm is not None:
        confirm(options, len(items))

    def resumed(stored: SweepRecord) -> None:
        stored.state, stored.ended_at, stored.owner = "starting", None, {}
        stored.note = f"resumed: {len(items)} run(s) that never started"

    record = sweeps.update(name, resumed)
    plan = Plan(items, parallel=options.parallel, retries=options.retries, fresh=options.fresh, max_cost=options.max_cost)
    return record, plan, options


def price_estimate(ctx: Context, types: list[str]) -> float | None:
    """The highest current spot price among ``types`` in any zone (USD/h), for --max-cost before the first launch."""
    from ..aws.prices import spot_prices
    from ..errors import Ec2kitError

    found: list[float] = []
    for type_ in dict.fromkeys(types):
        try:
            found += [p for zones in spot_prices(type_, ctx.cloud).values() for p in zones.values()]
        except Ec2kitError:
            continue
    return max(found) if found else None


def run(ctx: Context, options: SweepOptions, record: SweepRecord, plan: Plan, tick=None) -> SweepRecord:  # noqa: ANN001
    """Run a prepared sweep to its end; writes summary.csv. Ctrl-C stops it cleanly (record state 'cancelled')."""
    from .driver import Driver

    driver = Driver(ctx, options, record, plan)
    try:
        final = driver.run(tick=(lambda: tick(driver)) if tick else None)
    finally:
        write_summary(ctx, Sweeps(ctx.settings.home).get(record.name))
    return final


def rows(ctx: Context, record: SweepRecord) -> list[Row]:
    """The sweep's table now, sorted by its --objective (grid order without one)."""
    from .status import sweep_rows

    return sort_rows(sweep_rows(ctx, record), parse_objective(record.options.get("objective")))


def write_summary(ctx: Context, record: SweepRecord) -> Path:
    """runs/SWEEP/summary.csv: one row per run (settings, state, exit code, final metrics, cost), objective-sorted."""
    from .summary import write_csv

    keys = list(dict.fromkeys(k for r in record.runs for k in r["settings"]))
    return write_csv(Path(record.results_dir) / "summary.csv", rows(ctx, record), keys)


def find_sweep(ctx: Context, name: str) -> SweepRecord | None:
    """Sweep ``name``'s record, or None (``inv pull`` and ``inv stop-run`` take a run or a sweep)."""
    return Sweeps(ctx.settings.home).find(name)


def list_sweeps(ctx: Context) -> list[SweepRecord]:
    """Every sweep, newest first; a live sweep whose process is gone is settled on the way (see :func:`settle`)."""
    from ..spotrun import owner

    sweeps = Sweeps(ctx.settings.home)
    found = sweeps.all()
    for record in found:
        if record.live and owner.alive(record.owner) is False:
            settle(ctx, record)
    return sweeps.all()


def settle(ctx: Context, record: SweepRecord) -> SweepRecord:
    """A sweep whose process died: runs whose script goes on become detached runs (`inv pull SWEEP`),
    instances serving no live run are released, runs never started are 'skipped'."""
    from ..runs import Runs
    from ..spotrun import owner, refresh
    from .status import release_sweep

    runs = Runs(ctx.settings.runs_db)
    mine = [r for r in runs.all() if r.options.get("sweep") == record.name]
    refresh(ctx, mine)  # followed runs whose owner died: adopted (detached) or settled
    mine = [r for r in runs.all() if r.options.get("sweep") == record.name]
    keep = {r.name for r in mine if r.live or r.awaiting_pull}
    left = release_sweep(ctx, record.name, keep=keep)
    started = {r.name for r in mine}
    who = owner.describe(record.owner)
    note = f"its `inv sweep` ({who}) is gone" + (
        f"; {len(keep)} run(s) go on detached: `inv pull {record.name}` brings their results" if keep else ""
    )
    if left:
        note += f"; still there: {'; '.join(left)}"

    def change(stored: SweepRecord) -> None:
        stored.state, stored.ended_at, stored.note = "orphaned", time.time(), note
        for entry in stored.runs:
            if entry["name"] not in started:
                entry["outcome"] = "skipped"
            else:
                entry["outcome"] = next((r.state for r in mine if r.name == entry["name"]), entry.get("outcome", ""))

    return Sweeps(ctx.settings.home).update(record.name, change)


def pull_sweep(ctx: Context, name: str, say=print) -> list[Path]:  # noqa: ANN001
    """`inv pull SWEEP`: pull every run of the sweep that still has an instance; then summary.csv again."""
    from ..errors import Ec2kitError
    from ..runs import Runs
    from ..spotrun import pull

    record = Sweeps(ctx.settings.home).get(name)
    runs = Runs(ctx.settings.runs_db)
    pulled = []
    for entry in record.runs:
        rec = runs.find(entry["name"])
        if rec is None or not (rec.live or rec.awaiting_pull):
            continue
        try:
            pulled.append(pull(ctx, rec.name))
            say(f"{rec.name}: results in {rec.results_dir}")
        except Ec2kitError as err:
            say(f"{rec.name}: {err}")
    write_summary(ctx, Sweeps(ctx.settings.home).get(name))
    return pulled


def stop_sweep(ctx: Context, name: str, say=print) -> SweepRecord:  # noqa: ANN001
    """`inv stop-run SWEEP`: the sweep starts no more runs; every live run is stopped (final pull, release);
    every instance of the sweep is terminated."""
    from ..errors import Ec2kitError
    from ..runs import Runs
    from ..spotrun import owner, stop_run
    from .status import release_sweep

    sweeps = Sweeps(ctx.settings.home)
    record = sweeps.get(name)
    was_live = record.live
    if was_live:
        sweeps.update(name, lambda r: setattr(r, "state", "stopping"))  # its process sees it and stops starting runs
    runs = Runs(ctx.settings.runs_db)
    problems = []
    for entry in record.runs:
        rec = runs.find(entry["name"])
        if rec is not None and (rec.live or rec.awaiting_pull):
            try:
                stop_run(ctx, rec.name)
                say(f"{rec.name}: stopped; results in {rec.results_dir}")
            except Ec2kitError as err:
                problems.append(str(err))
    problems += release_sweep(ctx, name)
    if was_live and owner.alive(record.owner) is not True:  # nobody else will write the end

        def ended(stored: SweepRecord) -> None:
            stored.state, stored.ended_at = "cancelled", time.time()

        sweeps.update(name, ended)
    elif was_live:
        wait_until_settled(ctx, name)
    write_summary(ctx, sweeps.get(name))
    if problems:
        raise RunError(f"Sweep {name} stopped, but: {'; '.join(problems)}")
    return sweeps.get(name)


def wait_until_settled(ctx: Context, name: str, timeout: float = 120) -> None:
    """Wait (bounded) for a live sweep's own process to write its end after being asked to stop."""
    sweeps = Sweeps(ctx.settings.home)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sweeps.find(name)
        if found is None or not found.live:
            return
        time.sleep(0.2)


def start_detached(ctx: Context, options: SweepOptions, record: SweepRecord | None = None) -> SweepRecord:
    """`inv sweep --detach`: check and record the sweep here (or take the ``record`` :func:`prepare_resume`
    made ready), then run it in a background process of its own (output in EC2KIT_HOME/sweeps/NAME.log);
    returns once that process has taken the sweep. It starts the runs that never started (all, when new)."""
    if record is None:
        record, _ = prepare(ctx, options)
    sweeps = Sweeps(ctx.settings.home)
    log = sweeps.dir / f"{record.name}.log"
    env = {**os.environ, "EC2KIT_HOME": str(ctx.settings.home), "EC2KIT_SANDBOX": "1" if ctx.uses_sandbox else "0"}
    argv = [sys.executable, "-m", "ec2kit.sweep.background", record.name]
    if ctx.settings.profile:
        argv += ["--profile", ctx.settings.profile]
    if ctx.settings.region:
        argv += ["--region", ctx.settings.region]
    sweeps.update(record.name, lambda r: setattr(r, "log", str(log)))
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    from ..spotrun import owner

    child = {"pid": proc.pid, "host": owner.me()["host"], "start": owner.start_ticks(proc.pid)}

    def adopted(stored: SweepRecord) -> None:
        stored.owner = stored.owner or child  # `inv sweeps` settles the sweep if that process dies, even this early

    sweeps.update(record.name, adopted)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = sweeps.get(record.name)
        if found.state != "starting":
            return found
        if proc.poll() is not None:

            def failed(stored: SweepRecord) -> None:
                stored.state, stored.ended_at, stored.note = "failed", time.time(), "its background process ended at once"

            sweeps.update(record.name, failed)
            raise RunError(f"The background process of sweep {record.name} ended at once; its output:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    return sweeps.get(record.name)
