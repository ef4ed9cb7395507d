"""Spot runs: run a script on a spot instance and bring the results home."""

from __future__ import annotations

import os
import sys

from .. import ui
from ..context import Context
from ._common import GPU_HELP, NETWORK_HELP, WIDE_HELP, command, confirm, domain, fail, shown


@command(
    name="spot-run",
    iterable=["set", "security_group"],
    help={
        "script": "the script to run (e.g. train.sh); it runs in ~/ec2kit/RUN on the instance",
        "files": "a directory whose files are uploaded next to the script",
        "name": "run name (default: the script's name plus a timestamp)",
        "image": "ubuntu, ubuntu-22.04, gpu, or an AMI name or id (default: 'base' if you froze one, else gpu for "
        "a type with an NVIDIA GPU, else ubuntu; the architecture follows --type)",
        "type": "instance type (default: `type` in ec2kit.toml, else m5.large)",
        "types": "more instance types AWS may pick from (one EC2 Fleet call over all types × zones), comma-separated",
        "on_demand_fallback": "when no pool has spot capacity, run on an on-demand instance instead (also after an interruption)",
        "disk": "root disk size in GB (default: the image's, or `disk` in ec2kit.toml)",
        "snapshot": "make a data volume from this snapshot and mount it at /mnt/data",
        "results": "local directory for results (default runs/RUN)",
        "max_price": "highest hourly spot price you accept",
        "retries": "replace the instance this many times if it is interrupted",
        "monitor": "push results to this always-on instance instead of this machine",
        "detach": "return once the script has started; at the end the instance keeps the results until `inv pull RUN` (or pushes them to --monitor), then powers off",
        "keep": "keep the instance after the script ends (you stop or terminate it)",
        "max_hours": "hard limit: the instance powers itself off after this many hours",
        "set": "recipe variable for spot-run.toml, KEY=VALUE (repeatable)",
        "json": "print the final run record as JSON",
        "yes": "go ahead without asking even when the expected cost is above confirm_above (config; default $2/h)",
        "workdir": "sync this local directory to ~/work/<its name> before the script starts ($EC2KIT_WORKDIR there; default: `workdir` in ec2kit.toml, else none)",
        **NETWORK_HELP,
        **GPU_HELP,
    },
)
def spot_run(
    ctx: Context,
    script: str,
    files: str | None = None,
    name: str | None = None,
    image: str | None = None,
    type: str | None = None,
    types: str = "",
    disk: int | None = None,
    snapshot: str | None = None,
    results: str | None = None,
    max_price: str | None = None,
    retries: int = 0,
    monitor: str | None = None,
    detach: bool = False,
    keep: bool = False,
    max_hours: float | None = None,
    set: list[str] | None = None,
    json: bool = False,
    on_demand_fallback: bool = False,  # last, so the older flags keep their short forms
    subnet: str | None = None,
    security_group: list[str] | None = None,
    instance_profile: str | None = None,
    open_ssh: bool = False,
    gpus: str | None = None,
    gpu_memory: str | None = None,
    yes: bool = False,
    workdir: str | None = None,
) -> None:
    """Run a script on a spot instance; results sync home; everything is cleaned up. Example: inv spot-run --script train.sh"""
    from ..recipe.loader import parse_overrides
    from ..spotrun.outcome import outcome_code, outcome_error, outcome_line

    record = (
        domain(ctx)
        .spot_run(
            script,
            files=files,
            name=name,
            image=image,
            type=type,
            types=types,
            disk=disk,
            snapshot=snapshot,
            results=results,
            max_price=max_price,
            retries=retries,
            monitor=monitor,
            detach=detach,
            keep=keep,
            max_hours=max_hours,
            vars=parse_overrides(set),
            on_demand_fallback=on_demand_fallback,
            subnet=subnet,
            security_groups=security_group or [],
            instance_profile=instance_profile,
            open_ssh=open_ssh,
            gpus=gpus,
            gpu_memory=gpu_memory,
            yes=yes,
            workdir=workdir,
        )
        .snapshot
    )
    if json:
        ui.print_json(record)
    ui.console().print(outcome_line(record), markup=False, highlight=False)  # state, results, duration, cost
    if outcome_code(record, detach=detach):
        raise fail(outcome_error(record), 3)


@command(
    name="exec",
    iterable=["set"],
    help={
        "name": "the instance to run on (name or id); it must be running, and is never stopped or terminated by the run",
        "script": "the script to run (e.g. train.sh); it runs in ~/ec2kit/RUN on the instance",
        "files": "a directory whose files are uploaded next to the script",
        "run": "run name (default: the script's name plus a timestamp)",
        "results": "local directory for results (default runs/RUN)",
        "detach": "return once the script has started; its results stay on the instance until `inv pull RUN`",
        "queue": "start only once the instance's other exec runs ended (default: run beside them)",
        "max_hours": "stop the script after this many hours (the instance keeps running)",
        "set": "recipe variable for spot-run.toml, KEY=VALUE (repeatable)",
        "workdir": "sync this local directory to ~/work/<its name> first ($EC2KIT_WORKDIR there; default: `workdir` "
        "in ec2kit.toml, else none)",
        "json": "print the final run record as JSON",
    },
)
def exec_(
    ctx: Context,
    name: str,
    script: str | None = None,  # a flag, so that NAME alone is the one word `inv exec NAME --help` needs
    files: str | None = None,
    run: str | None = None,
    results: str | None = None,
    detach: bool = False,
    queue: bool = False,
    max_hours: float | None = None,
    set: list[str] | None = None,
    workdir: str | None = None,
    json: bool = False,
) -> None:
    """Run a script on an instance you already have, recorded like a spot run (runs, logs, pull, plot, stop-run).
    Example: inv exec gpu1 --script train.sh --detach"""
    from ..recipe.loader import parse_overrides
    from ..spotrun.outcome import outcome_code, outcome_error, outcome_line

    if not script:
        raise fail("exec needs the script to run: inv exec NAME --script train.sh.")
    record = (
        domain(ctx)
        .exec(
            name,
            script=script,
            files=files,
            run=run,
            results=results,
            detach=detach,
            queue=queue,
            max_hours=max_hours,
            vars=parse_overrides(set),
            workdir=workdir,
        )
        .snapshot
    )
    if json:
        ui.print_json(record)
    ui.console().print(outcome_line(record), markup=False, highlight=False)
    if outcome_code(record, detach=detach):
        raise fail(outcome_error(record), 3)


@command(
    help={
        "json": "print JSON",
        "all": "include finished runs older than a week",
        "wide": WIDE_HELP,
        "on": "only the runs on this instance (name or id), e.g. its `inv exec` runs",
    }
)
def runs(ctx: Context, json: bool = False, all: bool = False, wide: bool = False, on: str | None = None) -> None:
    """List spot and exec runs with state, instance, exit code and cost so far (detached runs are checked on the spot)."""
    found = domain(ctx).runs(all=all, on=on)
    if json:
        from dataclasses import asdict

        ui.print_json(
            [
                asdict(r.snapshot)
                | {
                    "cost": r.snapshot.cost,
                    "note": r.note or r.snapshot.options.get("note"),
                    "metrics": run_metrics_json(r.snapshot.results_dir),
                }
                for r in found
            ]
        )
        return
    rows = [
        (
            r.name,
            r.state + (f" · {run.note}" if run.note else ""),
            r.instance_type,
            r.instance_id,
            r.attempt,
            r.exit_code,
            ui.human_duration(r.duration) if r.duration is not None else "",
            f"${r.cost:.4f}" if r.cost is not None else "",
            r.results_dir,
            run_metrics_cell(r.results_dir),
        )
        for run in found
        for r in [run.snapshot]
    ]
    ui.print_table(
        "Runs",
        ["name", "state", "type", "instance", "attempt", "exit", "time", "cost", "results", "metrics"],
        rows,
        empty="No runs yet. Start one with `inv spot-run --script train.sh`.",
        priority=("name", "state", "exit", "cost", "metrics", "time", "type", "attempt", "instance", "results"),
        minimum={"name": 28, "state": 9, "metrics": 24},
        wide=wide,
    )
    for run in found:
        if run.snapshot.options.get("note"):
            ui.console().print(shown(f"{run.name} ({run.snapshot.state}): {run.snapshot.options['note']}."))


def run_metrics_cell(results_dir: str) -> str:
    """The runs table's metrics column: latest value and trend line per metric ('' without metrics)."""
    from .. import metrics

    found = metrics.load(results_dir) if results_dir else None
    return metrics.summary(found, limit=3, width=12) if found else ""


def run_metrics_json(results_dir: str) -> dict | None:
    """`inv runs --json`'s metrics: per metric its latest value, the step it was written at and its trend."""
    from .. import metrics

    found = metrics.load(results_dir) if results_dir else None
    return metrics.as_json(found) if found and found.series else None


@command(
    aws=False,
    help={
        "run": "run name (see inv runs)",
        "metric": "draw only this metric (comma-separated for several; default: every one)",
        "follow": "redraw as the run's results grow, until it is no longer live (or Ctrl-C)",
        "png": "write the charts to this PNG file instead (needs matplotlib: pip install 'ec2kit[plot]')",
        "json": "print the metrics' points as JSON (with --follow: one JSON line per change)",
        "interval": "with --follow: seconds between checks of the results (default 1)",
    },
)
def plot(
    ctx: Context,
    run: str,
    metric: str = "",
    follow: bool = False,
    png: str | None = None,
    json: bool = False,
    interval: float | None = None,
) -> None:
    """Chart a run's metrics (metrics.csv or metrics.jsonl in its results) in the terminal, or as a PNG. Example: inv plot RUN --metric loss"""
    import json as jsonlib
    import shutil

    from .. import plot as plotting
    from ..metrics import Metrics
    from ..runs import RunRecord, Runs

    if interval is not None and interval <= 0:
        raise fail(f"--interval {interval}: give a number of seconds above 0, e.g. --interval 2.")
    runs = Runs(ctx.settings.runs_db)
    wanted = plotting.wanted(metric)
    tty = sys.stdout.isatty()

    def draw(record: RunRecord, found: Metrics) -> None:
        names = plotting.choose(found, wanted, record.name)
        if png:
            w, h = plotting.write_png(found, names, png, title=f"{record.name} ({record.state})")
            (ui.info if json else ui.console().print)(f"Wrote {png} ({w}×{h} px): {', '.join(names)} of {record.name}")
        if json:
            print(jsonlib.dumps(plotting.points(record, found, names), indent=None if follow else 2), flush=True)
        if png or json:
            return
        size = shutil.get_terminal_size((100, 40))
        sys.stdout.write(plotting.terminal_view(record, found, names, size=(size.columns, size.lines), tty=tty, follow=follow))
        sys.stdout.flush()

    if not follow:
        draw(*plotting.run_metrics(runs, run))
        return
    try:
        final = plotting.follow(
            runs,
            run,
            draw,
            interval=interval or 1.0,
            waiting=lambda r: ui.info(f"Waiting for metrics in {r.results_dir} (Ctrl-C to stop)…"),
        )
    except KeyboardInterrupt:
        return
    ui.info(f"Run {run} is {final.state}; stopped following.")


@command(
    help={
        "run": "run name",
        "follow": "keep printing new lines until the run ends",
        "json": 'print JSON Lines, one {"run": RUN, "line": TEXT} object per log line',
    }
)
def logs(ctx: Context, run: str, follow: bool = False, json: bool = False) -> None:
    """Print a run's log (from the instance while it runs, else from the pulled copy)."""
    import json as jsonlib

    from ..untrusted import visible

    def out(line: str) -> None:
        print(jsonlib.dumps({"run": run, "line": line}) if json else visible(line), flush=follow)

    domain(ctx).logs(run, follow=follow, out=out)


@command(help={"run": "run name, or a sweep name (pulls every run of the sweep that still has an instance)"})
def pull(ctx: Context, run: str) -> None:
    """Pull a run's results (or every run's of a sweep) into its local results directory now."""
    from ..api import Sweep

    pulled = domain(ctx).pull(run)
    what = "sweep " if isinstance(pulled, Sweep) else ""
    where = pulled.snapshot.results_dir if isinstance(pulled, Sweep) else pulled.results
    ui.console().print(f"Results of {what}{run} are in {where}")


@command(help={"run": "run name"})
def attach(ctx: Context, run: str) -> None:
    """Attach to the run's tmux session on its instance (detach with Ctrl-b d)."""
    argv = domain(ctx).attach_command(run)
    ctx.close()
    os.execvp(argv[0], argv)


@command(name="stop-run", help={"run": "run name, or a sweep name (stops the sweep and every run of it)"})
def stop_run(ctx: Context, run: str) -> None:
    """Stop a run (or a whole sweep): final pull of its results, then terminate its instance and delete its volumes."""
    from ..api import Sweep

    stopped = domain(ctx).stop_run(run)
    what = "Sweep" if isinstance(stopped, Sweep) else "Run"
    ui.console().print(f"{what} {run} is {stopped.snapshot.state}; results in {stopped.snapshot.results_dir}")


@command(
    help={
        "yes": "delete without asking",
        "json": "print what would be removed as JSON",
        "older_than": "offer unused volumes, snapshots and images older than this (default 7d; e.g. 36h, 0 for any)",
        "wide": WIDE_HELP,
    },
)
def cleanup(ctx: Context, yes: bool = False, json: bool = False, older_than: str = "7d", wide: bool = False) -> None:
    """Remove what ec2kit made that costs money and nothing uses (asks first).

    Leftovers of runs that are over, and ec2kit's unattached volumes, snapshots and images that nothing
    names, older than --older-than, with their monthly cost.
    """
    from ..aws.costs import dollars

    ec2 = domain(ctx)
    leftovers = ec2.cleanup(dry_run=True, older_than=older_than)
    if leftovers.prices_note:
        ui.info(leftovers.prices_note)
    if json:
        ui.print_json(list(leftovers))
        return
    if not leftovers:
        ui.console().print("Nothing to clean up.")
        return
    title, columns, rows, _ = leftovers._show()
    ui.print_table(
        title, list(columns), rows, priority=("kind", "name", "$/month", "id", "size", "why"), minimum={"id": 21}, wide=wide
    )
    monthly = sum(x.monthly or 0 for x in leftovers)
    if monthly:
        ui.console().print(f"The storage above costs up to {dollars(monthly)} a month (snapshots counted at full size).")
    if not confirm("Remove these?", yes=yes, refusal="not removing anything without --yes (no terminal to ask on)."):
        ui.console().print("Nothing removed.")
        return
    removed = ec2.cleanup(dry_run=False, older_than=older_than)
    saved = sum(x.monthly or 0 for x in removed)
    ui.console().print(f"Removed {len(removed)} resource(s)" + (f"; up to {dollars(saved)} a month saved." if saved else "."))


@command(aws=False, help={"retries": "spot interruptions to survive (default 1; 0: no interruption is staged)"})
def demo(ctx: Context, retries: int = 1) -> None:
    """The main job on the local sandbox (never AWS): examples/train.sh on a spot instance, interrupted once and
    resumed from its checkpoint, results synced home."""
    from pathlib import Path

    from ..paths import data_dir
    from ..spotrun.demo import demo_lines, run_demo, sandbox_pid
    from ..spotrun.outcome import outcome_line

    examples = data_dir("examples")
    if not (examples / "train.sh").exists():
        raise fail(f"the demo needs {examples / 'train.sh'}, which this installation lacks; reinstall ec2kit.")
    ui.console().print(f"[bold]ec2kit demo[/bold]: spot-run of {examples / 'train.sh'} on the local sandbox")
    report = run_demo(ctx.settings, examples, retries=retries, say=ui.info)
    record = report.record
    results = Path(record.results_dir)
    files = sorted(p.relative_to(results) for p in results.rglob("*") if p.is_file()) if results.exists() else []
    ui.console().print(f"Results in {results}: " + ", ".join(str(f) for f in files if ".rsync-partial" not in str(f)))
    for line in [outcome_line(record), *demo_lines(report, sandbox_pid(ctx.settings))]:
        ui.console().print(line, markup=False, highlight=False)
    if record.state != "succeeded":
        raise fail(f"the demo run ended {record.state}.", 3)
