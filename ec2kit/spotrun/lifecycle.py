"""The spot-run lifecycle: ``spot_run(ctx, options)`` drives one run from the spot request to the last deleted volume.

Each attempt (launch → prepare → follow → finish → recover) is :class:`~ec2kit.spotrun.attempt.Attempt`
with the run's launch kind (``strategies``: one-time, or resumable when detached); this module only decides
what comes after an attempt (another one within ``--retries``, or the end) and cleans up after Ctrl-C or a
failure. Every phase change is written to the run's SQLite record first, so whatever happens the record
says which resources were the run's.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING

from ..errors import Ec2kitError, RunError
from ..runs import RunRecord, Runs, masked_vars
from ..tags import RUN_TAG
from . import signals
from .attempt import FINISHED, Attempt, Strategy
from .commands import kill_command
from .home import bring_home, say_home_failed
from .options import DATA_MOUNT, SpotRunOptions, bundle, default_name, preflight, validate
from .owner import me as current_owner
from .prepare import _host
from .release import _report_leftovers, _revoke_quietly, log_tail, release, release_all, results_path
from .state import _Run
from .strategies import default_image, launch_options, spot_price, strategy_for

if TYPE_CHECKING:
    from ..context import Context

__all__ = [
    "DATA_MOUNT",
    "RUN_TAG",
    "SpotRunOptions",
    "bundle",
    "default_image",
    "default_name",
    "launch_options",
    "log_tail",
    "preflight",
    "release",
    "release_all",
    "results_path",
    "spot_price",
    "spot_run",
    "exec_run",
    "validate",
]


def spot_run(ctx: Context, options: SpotRunOptions, *, strategy: Strategy | None = None) -> RunRecord:
    """Run ``options.script`` on a spot instance; results sync to ``runs/RUN``; returns the record.

    The instance (and data volume) are terminated/deleted at the end unless ``keep``. With
    ``retries`` an interrupted instance is replaced and the script restarted with
    EC2KIT_ATTEMPT=n+1 and its results pushed back. Ctrl-C cleans up and returns the record
    in state 'cancelled'; other failures clean up and raise. ``strategy``: how the instance is had
    (default: launched for the run, ``strategy_for``; ``exec_run`` passes an instance you already have).
    Example: ``spot_run(ctx, SpotRunOptions(script="train.sh", files="data/", retries=1))``.
    """
    name, results = validate(options)
    preflight(ctx, options, results)
    opts = {k: v for k, v in asdict(options).items() if k not in ("out", "say")}
    opts["vars"] = masked_vars(options.vars)  # a secret's value is never stored or shown, only its name
    opts["owner"] = current_owner()  # `inv runs` settles the run if this process dies without cleaning up
    record = RunRecord(name=name, script=options.script, results_dir=str(results), monitor=options.monitor, options=opts)
    runs = Runs(ctx.settings.runs_db)
    runs.create(record)
    run = _Run(ctx, options, record)
    results.mkdir(parents=True, exist_ok=True)
    with signals.as_interrupts():  # SIGTERM: as Ctrl-C; SIGHUP (terminal closed): a detached run (spotrun/signals.py)
        try:
            return _attempts(run, strategy or strategy_for(options))
        except KeyboardInterrupt as stop:
            hangup = isinstance(stop, signals.Signalled) and stop.hangup
            if hangup:
                run.say = run.out = lambda _m: None  # the terminal is gone
            if (hangup or run.outage_since is not None) and run.script_started and run.instance is not None:
                return _leave_detached(run, "its terminal closed (SIGHUP)" if hangup else "")
            what = f"interrupted ({stop.args[0] if isinstance(stop, signals.Signalled) else 'Ctrl-C'})"
            run.say(f"{name}: {what}: pulling results and cleaning up")
            _abort(run, "cancelled")
            return run.record
        except BaseException as err:
            ended = run.record.state in ("interrupted", "lost") and run.record.ended_at is not None  # out of retries
            _abort(run, run.record.state if ended else "failed")
            if isinstance(err, Ec2kitError):
                raise
            raise RunError(
                f"Run {name} failed unexpectedly ({type(err).__name__}: {err}); its resources were cleaned up."
            ) from err


def exec_run(ctx: Context, options: SpotRunOptions) -> RunRecord:
    """Run ``options.script`` on ``options.on``, an instance you already have (``inv exec``): the same wrapper,
    record, follower and final pull as a spot run, but nothing is launched and the instance is never stopped,
    terminated or powered off by the run (no retries: there is no replacement)."""
    from ..errors import WrongState
    from .strategies import Existing

    assert options.on
    validate(options)  # the script, files and numbers first: nothing is asked of EC2 for a bad command
    inst = ctx.cloud.instance(options.on)
    if inst.state != "running":
        raise WrongState(
            f"Instance {inst.label} is {inst.state}; `exec` runs on a running instance.",
            hint=f"Start it first: inv start {inst.name or inst.id}",
        )
    options.retries = 0
    return spot_run(ctx, options, strategy=Existing(inst))


def _attempts(run: _Run, strategy: Strategy) -> RunRecord:
    opts, rec = run.options, run.record
    attempt = Attempt(run, strategy)
    number = 0
    while True:
        number += 1
        outcome = attempt(number)
        if outcome.state == "detached":
            run.say(
                f"{rec.name}: detached. `inv logs {rec.name} --follow`, `inv pull {rec.name}`, `inv stop-run {rec.name}`. "
                + _ends(opts, rec.name)
            )
            return rec
        if outcome.kept or outcome.state == "cancelled":
            return rec
        if outcome.state in FINISHED:
            if outcome.state != "succeeded":
                run.say(
                    f"{rec.name}: {outcome.state} (exit code {rec.exit_code}). Last lines of the log:\n"
                    + log_tail(run.ctx, rec.name)
                )
            return rec
        # interrupted or lost, in any phase: results pulled so far are kept
        if run.cancelled:
            rec.state = "cancelled"
            return rec
        wrapper_died = outcome.status.get("why") == "wrapper"
        if number > opts.retries:
            rec.ended_at = time.time()
            run.save(state="lost" if wrapper_died else "interrupted")
            what = "lost its wrapper" if wrapper_died else "was interrupted"
            raise RunError(
                f"Run {rec.name} {what} on attempt {number} ({outcome.why}) and has no retries left; results so far are in {rec.results_dir}.",
                hint="Run again with --retries N to replace interrupted instances automatically.",
            )
        why = "its wrapper died" if wrapper_died else outcome.why
        run.say(f"{rec.name}: {why}; replacing the instance (retry {number} of {opts.retries}), resuming from {rec.results_dir}")
        run.save(state="recovering")
        run.instance, run.follower, run.script_started = None, None, False


def _ends(opts: SpotRunOptions, name: str) -> str:
    """What a detached run does when its script ends."""
    if opts.on:
        return f"When the script ends its results stay on {opts.on} (which keeps running) until `inv pull {name}`."
    if opts.monitor:
        return f"When the script ends the instance pushes its last results to {opts.monitor}, then powers off."
    if opts.detach_pull_wait < 0:
        return (
            f"When the script ends the instance keeps its results (and keeps billing) until `inv pull {name}` "
            f"collects them, then powers off; `inv runs` shows when it is waiting."
        )
    return (
        f"When the script ends the instance waits up to {opts.detach_pull_wait // 60} min for `inv pull {name}`, then powers off."
    )


def _leave_detached(run: _Run, why: str = "") -> RunRecord:
    """Ctrl-C while out of contact (or ``why``: the terminal closed): the instance is healthy as far as EC2
    knows, so leave the run to itself as a detached run (its wrapper waits for `inv pull`) instead of
    destroying it blind."""
    rec = run.record
    assert run.instance is not None
    rec.options["detach"] = True
    when = f"when {why}" if why else "when Ctrl-C came during a link outage"
    rec.options["note"] = f"left running {when}; `inv pull {rec.name}` brings its results"
    run.save()
    run.say(
        f"{rec.name}: Ctrl-C while out of contact with {run.instance.id}; EC2 says it is running, so the run goes on "
        f"as a detached run: `inv runs` shows it, `inv pull {rec.name}` brings its results, `inv stop-run {rec.name}` ends it"
    )
    return rec


def _abort(run: _Run, state: str) -> None:
    """Ctrl-C / failure: final pull if the script started, then remove everything the run created.

    Unless the final pull failed on an instance that still runs: that instance holds results that are not
    home, so it stays (the run waits for `inv pull RUN`, which releases it)."""
    missing = ""
    try:
        if run.script_started and run.instance is not None:
            # Ctrl-C may have landed mid-command (with the Fabric transport, inside paramiko
            # mid-packet, wedging that connection): clean up on a fresh one.
            run.ctx.forget_host(run.instance.id)
            try:
                _host(run).run(kill_command(run.record.name), check=False, timeout=15)
            except Exception:  # noqa: BLE001
                pass
            if run.follower is not None:
                run.follower.host = _host(run)
            home = bring_home(run)
            missing = "" if home.ok or home.gone else home.missing
    except BaseException:  # noqa: BLE001 - a second Ctrl-C must not skip the cleanup
        pass
    rec = run.record
    if missing and run.instance is not None:
        note = (
            f"{state} with results not home: {missing}; {run.instance.label} keeps them: `inv pull {rec.name}` brings them home"
        )
        rec.options.update(orphaned=True, note=note, not_home=True)
        run.save(state="running")
        say_home_failed(run, note)
        return
    remaining = release_all(run.ctx, rec)
    if run.options.monitor:
        remaining += _revoke_quietly(run)
    rec.ended_at = time.time()
    run.save(state=state)
    _report_leftovers(run, remaining)
