"""Sweeps: one script over a grid of settings on many spot instances (EC2 Fleet), with a table of results."""

from __future__ import annotations

import time
from typing import Any

from .. import ui
from ..context import Context
from ._common import NETWORK_HELP, WIDE_HELP, command, fail, spot_options


@command(
    iterable=["grid", "set", "security_group"],
    auto_shortflags=False,  # too many flags for letters to mean anything
    help={
        "script": "the script every run executes (e.g. train.sh); each run gets its settings as environment variables (LR=1e-3)",
        "grid": "KEY=V1,V2,…: one setting and its values (repeatable); the runs are every combination",
        "grid_file": "TOML file with a [grid] table (KEY = [values], every combination) and/or [[runs]] entries (one run each)",
        "parallel": "how many instances run at once (default 4)",
        "types": "more instance types EC2 Fleet may pick from (one CreateFleet per batch over types × zones), comma-separated",
        "type": "instance type (default: `type` in ec2kit.toml, else m5.large)",
        "retries": "re-queue a run this many times if its instance is interrupted (it resumes from its pushed-back results)",
        "fresh": "a new instance for every run (default: an instance whose run ended takes the next queued run)",
        "max_cost": "budget in USD: no new run starts once spend so far + an hour of the running instances would pass it",
        "objective": "metric to sort the table by: METRIC (lowest first) or METRIC:max, e.g. loss or acc:max",
        "name": "sweep name (default: the script's name, 'sweep' and a timestamp); runs are NAME-01, NAME-02, …",
        "files": "a directory whose files are uploaded next to the script",
        "image": "ubuntu, ubuntu-22.04, gpu, or an AMI name or id (default as for spot-run)",
        "disk": "root disk size in GB",
        "results": "local root for results: runs land in RESULTS/SWEEP/RUN (default runs/)",
        "max_price": "highest hourly spot price you accept",
        "max_hours": "hard limit per instance: the instance powers itself off after this many hours of a run",
        "on_demand_fallback": "when no pool has spot capacity, use on-demand instances instead",
        "detach": "run the sweep in the background; `inv sweeps` / `inv sweep-status NAME` show it",
        "set": "recipe variable for spot-run.toml for every run, KEY=VALUE (repeatable); grid settings it uses are passed too",
        "json": "print the final sweep record and rows as JSON",
        **NETWORK_HELP,
    },
)
def sweep(
    ctx: Context,
    script: str,
    grid: list[str] | None = None,
    grid_file: str | None = None,
    parallel: int = 4,
    types: str = "",
    type: str | None = None,
    retries: int = 0,
    fresh: bool = False,
    max_cost: float | None = None,
    objective: str | None = None,
    name: str | None = None,
    files: str | None = None,
    image: str | None = None,
    disk: int | None = None,
    results: str | None = None,
    max_price: str | None = None,
    max_hours: float | None = None,
    on_demand_fallback: bool = False,
    detach: bool = False,
    set: list[str] | None = None,
    json: bool = False,
    subnet: str | None = None,
    security_group: list[str] | None = None,
    instance_profile: str | None = None,
    open_ssh: bool = False,
) -> None:
    """Run a script over a grid of settings on spot instances, --parallel at a time. Example: inv sweep --script train.sh --grid lr=1e-3,3e-4 --grid seed=1,2 --parallel 4"""
    from .. import sweep as sweeps

    options = sweeps.SweepOptions(
        script=script,
        grid=list(grid or []),
        grid_file=grid_file,
        name=name,
        parallel=parallel,
        retries=retries,
        fresh=fresh,
        max_cost=max_cost,
        objective=objective,
        detach=detach,
        results=results,
        files=files,
        max_hours=max_hours,
        **spot_options(
            ctx,
            image=image,
            type=type,
            types=types,
            disk=disk,
            max_price=max_price,
            on_demand_fallback=on_demand_fallback,
            set=set,
            open_ssh=open_ssh,
            subnet=subnet,
            security_group=security_group,
            instance_profile=instance_profile,
        ),
    )
    if detach:
        record = sweeps.start_detached(ctx, options)
        ui.console().print(
            f"Sweep {record.name} runs in the background ({len(record.runs)} runs, {options.parallel} at a time). "
            f"`inv sweep-status {record.name}` shows its table, `inv pull {record.name}` its results, "
            f"`inv stop-run {record.name}` stops it; output in {record.log}."
        )
        return
    record, plan = sweeps.prepare(ctx, options)
    ui.info(f"Sweep {record.name}: {len(record.runs)} runs, {options.parallel} at a time; results in {record.results_dir}")
    live = _LiveTable(ctx, record.name)
    options.say = live.say
    try:
        with live:
            final = sweeps.run(ctx, options, record, plan, tick=live.tick)
    finally:
        pass
    shown = sweeps.rows(ctx, final)
    if json:
        ui.print_json({"sweep": final, "rows": shown})
    else:
        _print_rows(final, shown)
        ui.console().print(f"Summary: {final.results_dir}/summary.csv")
    bad = [r for r in shown if r.state != "succeeded"]
    if final.state == "cancelled":
        raise fail(f"sweep {final.name} was stopped; every result pulled, every instance released.", 130)
    if bad:
        raise fail(
            f"sweep {final.name}: {len(bad)} of {len(shown)} runs did not succeed ({', '.join(sorted({r.state for r in bad}))}).",
            3,
        )


class _LiveTable:
    """The sweep's table, redrawn in place on a terminal; elsewhere (a pipe, a log) one line per event."""

    def __init__(self, ctx: Context, name: str) -> None:
        import sys

        self.ctx, self.name = ctx, name
        self.tty = sys.stdout.isatty()
        self.live: Any = None
        self.last = 0.0

    def __enter__(self) -> _LiveTable:
        if self.tty:
            from rich.live import Live

            self.live = Live(console=ui.console(), refresh_per_second=2, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def say(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        if self.live is not None:
            self.live.console.print(f"{stamp} {message}")
        else:
            ui.info(f"{stamp} {message}")

    def tick(self, driver) -> None:  # noqa: ANN001
        if self.live is None or time.monotonic() - self.last < 1.0:
            return
        self.last = time.monotonic()
        from ..sweep.summary import money, sort_rows, table

        keys = list(dict.fromkeys(k for r in driver.record.runs for k in r["settings"]))
        rows = driver.rows()
        columns, cells = table(sort_rows(rows, None), keys)
        grid, _width = ui.fitted_table(
            f"Sweep {self.name}: spent {money(driver.spent())}, {len(driver.slots)} instance(s) running",
            columns,
            cells,
            width=ui.console().width,
            priority=("run", "state", "cost", *columns[len(keys) + 5 :], *keys, "time", "instance"),
            minimum={"run": 28, "state": 9},
        )
        self.live.update(grid)


def _print_rows(record, rows, wide: bool = False) -> None:  # noqa: ANN001
    from ..sweep.summary import missing_objective, money, parse_objective, table

    keys = list(dict.fromkeys(k for r in record.runs for k in r["settings"]))
    columns, cells = table(rows, keys)
    objective = parse_objective(record.options.get("objective"))
    title = f"Sweep {record.name}: {record.state}" + (f", sorted by {objective}" if objective else "")
    first = [objective.metric] if objective is not None else []
    ui.print_table(
        title,
        columns,
        cells,
        priority=("run", "state", "cost", *first, *columns[len(keys) + 5 :], *keys, "time", "instance"),
        minimum={"run": 28, "state": 9},
        wide=wide,
    )
    extra = [
        f"{money(record.spent) or '$0'} spent",
        f"{record.fleet_calls} CreateFleet call(s)",
        f"{record.launched} instance(s)",
    ]
    if record.reused:
        extra.append(f"{record.reused} run(s) on a reused instance")
    ui.console().print("; ".join(extra) + ".")
    missing = missing_objective(rows, objective)
    if missing:
        ui.console().print(f"Note: {missing}.")
    if record.note:
        ui.console().print(f"Note: {record.note}.")


@command(help={"json": "print JSON", "wide": WIDE_HELP})
def sweeps(ctx: Context, json: bool = False, wide: bool = False) -> None:
    """List sweeps with state, runs done, cost and CreateFleet calls (a sweep whose process died is settled on the way)."""
    from .. import sweep as sweeplib
    from ..sweep.summary import money

    found = sweeplib.list_sweeps(ctx)
    if json:
        ui.print_json(found)
        return
    rows = []
    for r in found:
        outcomes = [e.get("outcome") or "" for e in r.runs]
        done = sum(1 for o in outcomes if o == "succeeded")
        rows.append(
            (
                r.name,
                r.state,
                f"{done}/{len(r.runs)}",
                r.fleet_calls,
                r.launched,
                money(r.spent),
                time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at)),
                r.note,
            )
        )
    ui.print_table(
        "Sweeps",
        ["name", "state", "succeeded", "fleet calls", "instances", "cost", "started", "note"],
        rows,
        empty="No sweeps yet. Start one with `inv sweep --script train.sh --grid lr=1e-3,3e-4`.",
        priority=("name", "state", "succeeded", "cost", "started", "instances", "fleet calls", "note"),
        minimum={"name": 28},
        wide=wide,
    )


@command(name="sweep-status", help={"sweep": "sweep name (see inv sweeps)", "json": "print JSON", "wide": WIDE_HELP})
def sweep_status(ctx: Context, sweep: str, json: bool = False, wide: bool = False) -> None:
    """A sweep's table: every run's settings, state, instance, time, cost and latest metrics (sorted by its --objective)."""
    from .. import sweep as sweeplib

    sweeplib.list_sweeps(ctx)  # settles it if its process died
    record = sweeplib.find_sweep(ctx, sweep)
    if record is None:
        from ..sweep.records import Sweeps

        Sweeps(ctx.settings.home).get(sweep)  # NotFound naming the sweeps there are
        return
    from ..runs import Runs
    from ..spotrun import refresh

    refresh(ctx, [r for r in Runs(ctx.settings.runs_db).all() if r.options.get("sweep") == sweep])
    rows = sweeplib.rows(ctx, record)
    if json:
        ui.print_json({"sweep": record, "rows": rows})
        return
    _print_rows(record, rows, wide)
