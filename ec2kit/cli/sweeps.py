"""Sweeps: one script over a grid of settings on many spot instances (EC2 Fleet), with a table of results."""

from __future__ import annotations

import time
from typing import Any

from .. import ui
from ..context import Context
from ._common import GPU_HELP, NETWORK_HELP, WIDE_HELP, command, domain, fail, shown


@command(
    iterable=["grid", "set", "security_group"],
    auto_shortflags=False,  # too many flags for letters to mean anything
    help={
        "script": "the script every run executes (e.g. train.sh); each run gets its settings as environment variables (LR=1e-3)",
        "resume": "SWEEP: start the runs of this recorded sweep that never started (its process was killed, or it was stopped), with its recorded options",
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
        "yes": "go ahead without asking even when the expected cost is above confirm_above (config; default $2/h)",
        "workdir": "sync this local directory to ~/work/<its name> before each run starts ($EC2KIT_WORKDIR there; default: `workdir` in ec2kit.toml, else none)",
        **NETWORK_HELP,
        **GPU_HELP,
    },
)
def sweep(
    ctx: Context,
    script: str | None = None,
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
    workdir: str | None = None,
    resume: str | None = None,
    gpus: str | None = None,
    gpu_memory: str | None = None,
    yes: bool = False,
) -> None:
    """Run a script over a grid of settings on spot instances, --parallel at a time. Example: inv sweep --script train.sh --grid lr=1e-3,3e-4 --grid seed=1,2 --parallel 4"""
    from ..recipe.loader import parse_overrides

    done = domain(ctx).sweep(
        script,
        grid=list(grid or []),
        grid_file=grid_file,
        parallel=parallel,
        types=types,
        type=type,
        retries=retries,
        fresh=fresh,
        max_cost=max_cost,
        objective=objective,
        name=name,
        files=files,
        image=image,
        disk=disk,
        results=results,
        max_price=max_price,
        max_hours=max_hours,
        on_demand_fallback=on_demand_fallback,
        detach=detach,
        vars=parse_overrides(set),
        subnet=subnet,
        security_groups=security_group or [],
        instance_profile=instance_profile,
        open_ssh=open_ssh,
        workdir=workdir,
        resume=resume,
        gpus=gpus,
        gpu_memory=gpu_memory,
        watch=None if detach else _LiveTable(),
        yes=yes,
    )
    final = done.snapshot
    if detach:
        ui.console().print(
            f"Sweep {final.name} runs in the background ({len(final.runs)} runs, {parallel} at a time). "
            f"`inv sweep-status {final.name}` shows its table, `inv pull {final.name}` its results, "
            f"`inv stop-run {final.name}` stops it; output in {final.log}."
        )
        return
    table_rows = done.rows(refresh=False)  # it just ended here: every run is settled
    if json:
        ui.print_json({"sweep": final, "rows": table_rows})
    else:
        _print_rows(final, table_rows)
        ui.console().print(f"Summary: {final.results_dir}/summary.csv")
    from ..spotrun.outcome import sweep_outcome_line

    ui.console().print(sweep_outcome_line(final), markup=False, highlight=False)
    bad = [r for r in table_rows if r.state != "succeeded"]
    if final.state == "cancelled":
        raise fail(f"sweep {final.name} was stopped; every result pulled, every instance released.", 130)
    if bad:
        raise fail(
            f"sweep {final.name}: {len(bad)} of {len(table_rows)} runs did not succeed ({', '.join(sorted({r.state for r in bad}))}).",
            3,
        )


class _LiveTable:
    """The sweep's table, redrawn in place on a terminal; elsewhere (a pipe, a log) one line per event."""

    def __init__(self) -> None:
        import sys

        self.name = ""
        self.tty = sys.stdout.isatty()
        self.live: Any = None
        self.last = 0.0

    def begin(self, record, parallel: int) -> None:  # noqa: ANN001 - a SweepRecord
        self.name = record.name
        ui.info(f"Sweep {record.name}: {len(record.runs)} runs, {parallel} at a time; results in {record.results_dir}")
        if self.tty:
            from rich.live import Live

            self.live = Live(console=ui.console(), refresh_per_second=2, transient=False)
            self.live.__enter__()

    def end(self) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def say(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        if self.live is not None:
            self.live.console.print(f"{stamp} {shown(message)}")
        else:
            ui.info(f"{stamp} {shown(message)}")

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
        ui.console().print(shown(f"Note: {missing}."))
    if record.note:
        ui.console().print(shown(f"Note: {record.note}."))


@command(help={"json": "print JSON", "wide": WIDE_HELP})
def sweeps(ctx: Context, json: bool = False, wide: bool = False) -> None:
    """List sweeps with state, runs done, cost and CreateFleet calls (a sweep whose process died is settled on the way)."""
    found = domain(ctx).sweeps()
    if json:
        ui.print_json([s.snapshot for s in found])
        return
    title, columns, rows, _ = found._show()
    ui.print_table(
        title,
        list(columns),
        rows,
        empty="No sweeps yet. Start one with `inv sweep --script train.sh --grid lr=1e-3,3e-4`.",
        priority=("name", "state", "succeeded", "cost", "started", "instances", "fleet calls", "note"),
        minimum={"name": 28},
        wide=wide,
    )


@command(name="sweep-status", help={"sweep": "sweep name (see inv sweeps)", "json": "print JSON", "wide": WIDE_HELP})
def sweep_status(ctx: Context, sweep: str, json: bool = False, wide: bool = False) -> None:
    """A sweep's table: every run's settings, state, instance, time, cost and latest metrics (sorted by its --objective)."""
    found = domain(ctx).sweep_status(sweep)
    rows = found.rows()
    if json:
        ui.print_json({"sweep": found.snapshot, "rows": rows})
        return
    _print_rows(found.snapshot, rows, wide)
