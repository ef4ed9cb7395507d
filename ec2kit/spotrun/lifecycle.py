"""The spot-run lifecycle: launch, prepare, start, follow, recover, finish, clean up.

``spot_run(ctx, options)`` drives one run from the spot request to the last deleted volume.
Every phase change is written to the run's SQLite record first, so whatever happens
(Ctrl-C, a lost instance, a failed step) the record says which resources were the run's.

The phases live beside it: ``options`` (SpotRunOptions, validate, preflight), ``state`` (what
the phases share), ``prepare`` (SSH, volume, upload, start), ``follow`` (poll, pull, recover
contact), ``release`` (terminate, cancel, delete). ``_launch`` (the spot request) stays here.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ..errors import Ec2kitError, NotFound, RunError
from ..runs import RunRecord, Runs, masked_vars
from . import owner, signals
from .commands import kill_command
from .follow import _final_pull, _final_push_or_pull, _follow
from .options import DATA_MOUNT, RUN_TAG, SpotRunOptions, bundle, default_name, preflight, validate
from .prepare import _host, _prepare_and_start, launch_resumable, resumable
from .release import (
    _release_instance,
    _report_leftovers,
    _revoke_quietly,
    log_tail,
    release,
    release_all,
    results_path,
)
from .state import Phase, _Run

if TYPE_CHECKING:
    from ..aws.models import Instance
    from ..context import Context

__all__ = [
    "DATA_MOUNT",
    "RUN_TAG",
    "SpotRunOptions",
    "bundle",
    "default_name",
    "log_tail",
    "preflight",
    "release",
    "release_all",
    "results_path",
    "spot_price",
    "spot_run",
    "validate",
]


# --------------------------------------------------------------------------- launch


def _launch(run: _Run, attempt: int) -> Instance:
    """One instant EC2 Fleet over --type and --types × zones (AWS picks the pool); record the instance at once.

    The first attempt and every replacement after an interruption make the same single call;
    the record keeps the type, zone, market and price actually obtained.
    """
    from ..actions import say_launch_plan

    opts, rec = run.options, run.record
    types = list(dict.fromkeys([opts.type, *opts.types]))
    name = rec.name if attempt == 1 else f"{rec.name}-{attempt}"
    fallback = " (on-demand as the last resort)" if opts.on_demand_fallback else ""
    run.say(f"{rec.name}: requesting a spot instance: {', '.join(types)}{fallback} (attempt {attempt})")
    run.save(state="requested" if attempt == 1 else "recovering", attempt=attempt)
    plan = run.ctx.cloud.plan_launch(
        name,
        type=opts.type,
        shutdown_behavior="terminate",
        **launch_options(run),
    )
    if attempt == 1:
        say_launch_plan(plan, run.say, f"{rec.name}: ")
    inst = run.ctx.cloud.launch(plan, types=types[1:], on_demand_fallback=opts.on_demand_fallback)
    request = inst.tags.get("ec2kit:spot-request") or inst.spot_request_id
    rec.add_created("instances", inst.id)
    if request:
        rec.add_created("requests", request)
    rec.instance_started()
    market = "spot" if inst.lifecycle == "spot" else "on-demand"
    rec.options["market"] = market
    obtained = inst.hourly_price or (spot_price(run.ctx, inst.type, inst.zone) if market == "spot" else None)
    rec.hourly_price = obtained or rec.hourly_price
    run.save(state="starting", instance_id=inst.id, request_id=request, zone=inst.zone, instance_type=inst.type)
    if market != "spot" or inst.type != opts.type:
        run.say(f"{rec.name}: got {market} {inst.type} in {inst.zone}")
    run.instance = inst
    run.phases.append(Phase(running_at=time.monotonic()))
    return inst


def spot_price(ctx: Context, instance_type: str, zone: str) -> float | None:
    """The current spot price of ``instance_type`` in ``zone`` (USD/hour), or None if unknown."""
    try:
        return ctx.cloud.spot_price(instance_type, zone)
    except Ec2kitError:  # the cost column is informative only
        return None


def launch_options(run: _Run) -> dict[str, Any]:
    """What every launch of this run asks for, one-time or resumable (the type comes per call)."""
    opts = run.options
    return dict(
        image=opts.image or _default_image(run.ctx),
        spot=True,
        max_price=opts.max_price,
        disk=opts.disk,
        tags={RUN_TAG: run.record.name},
        subnet=opts.subnet,
        security_groups=opts.security_groups,
        instance_profile=opts.instance_profile,
        open_ssh=opts.open_ssh,
    )


def _default_image(ctx: Context) -> str | None:
    """'base' when the user froze one (journey 2), else None (the cloud's latest Ubuntu LTS)."""
    try:
        return ctx.cloud.image("base").id
    except NotFound:
        return None


# --------------------------------------------------------------------------- public


def spot_run(ctx: Context, options: SpotRunOptions) -> RunRecord:
    """Run ``options.script`` on a spot instance; results sync to ``runs/RUN``; returns the record.

    The instance (and data volume) are terminated/deleted at the end unless ``keep``. With
    ``retries`` an interrupted instance is replaced and the script restarted with
    EC2KIT_ATTEMPT=n+1 and its results pushed back. Ctrl-C cleans up and returns the record
    in state 'cancelled'; other failures clean up and raise.
    Example: ``spot_run(ctx, SpotRunOptions(script="train.sh", files="data/", retries=1))``.
    """
    name, results = validate(options)
    preflight(ctx, options, results)
    opts = {k: v for k, v in asdict(options).items() if k not in ("out", "say")}
    opts["vars"] = masked_vars(options.vars)  # a secret's value is never stored or shown, only its name
    opts["owner"] = owner.me()  # `inv runs` settles the run if this process dies without cleaning up
    record = RunRecord(name=name, script=options.script, results_dir=str(results), monitor=options.monitor, options=opts)
    runs = Runs(ctx.settings.runs_db)
    runs.create(record)
    run = _Run(ctx, options, record)
    results.mkdir(parents=True, exist_ok=True)
    with signals.as_interrupts():  # SIGTERM: as Ctrl-C; SIGHUP (terminal closed): a detached run (spotrun/signals.py)
        try:
            return _attempts(run)
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
            _abort(run, "failed")
            if isinstance(err, Ec2kitError):
                raise
            raise RunError(
                f"Run {name} failed unexpectedly ({type(err).__name__}: {err}); its resources were cleaned up."
            ) from err


def _attempts(run: _Run) -> RunRecord:
    opts, rec = run.options, run.record
    attempt = 0
    while True:
        attempt += 1
        if resumable(opts):
            launch_resumable(run, attempt)
        else:
            _launch(run, attempt)
        _prepare_and_start(run, attempt)
        if opts.detach:
            if opts.monitor:
                ends = f"When the script ends the instance pushes its last results to {opts.monitor}, then powers off."
            elif opts.detach_pull_wait < 0:
                ends = (
                    f"When the script ends the instance keeps its results (and keeps billing) until `inv pull {rec.name}` "
                    f"collects them, then powers off; `inv runs` shows when it is waiting."
                )
            else:
                ends = (
                    f"When the script ends the instance waits up to {opts.detach_pull_wait // 60} min for "
                    f"`inv pull {rec.name}`, then powers off."
                )
            run.say(
                f"{rec.name}: detached. `inv logs {rec.name} --follow`, `inv pull {rec.name}`, `inv stop-run {rec.name}`. " + ends
            )
            return rec
        state = _follow(run)
        status = run.follower.status if run.follower else {}
        if state == "cancelled":  # `inv stop-run` did the final pull and the cleanup
            remaining = _release_instance(run)
            _report_leftovers(run, remaining)
            rec.state = "cancelled"
            return rec
        if state in ("succeeded", "failed", "timeout"):
            if opts.monitor:
                _final_push_or_pull(run)
            _final_pull(run)  # then the `pulled` marker: the wrapper may power off
            rec.exit_code = status.get("exit_code")
            rec.ended_at = time.time()
            remaining = [] if opts.keep else _release_instance(run)
            if opts.monitor:
                remaining += _revoke_quietly(run)
            run.save(state=state)
            _report_leftovers(run, remaining)
            if state != "succeeded":
                run.say(
                    f"{rec.name}: {state} (exit code {rec.exit_code}). Last lines of the log:\n" + log_tail(run.ctx, rec.name)
                )
            return rec
        # interrupted (notice seen) or lost (instance vanished, or its wrapper died): results pulled so far are kept
        if status.get("why") == "wrapper":
            run.say(
                f"{rec.name}: the run's wrapper on {run.instance.label if run.instance else '?'} died (no heartbeat for "
                f"{status.get('beat_age') or 0:.0f} s, no tmux session): stopping what is left of the script, pulling its results"
            )
            try:
                _host(run).run(kill_command(rec.name), check=False, timeout=30)
            except Ec2kitError:
                pass
        _final_pull(run)
        remaining = _release_instance(run)
        _report_leftovers(run, remaining)
        if run.cancelled:
            rec.state = "cancelled"
            return rec
        wrapper_died = status.get("why") == "wrapper"
        if attempt > opts.retries:
            rec.ended_at = time.time()
            run.save(state="lost" if wrapper_died else "interrupted")
            what = "lost its wrapper" if wrapper_died else "was interrupted"
            raise RunError(
                f"Run {rec.name} {what} on attempt {attempt} and has no retries left; results so far are in {rec.results_dir}.",
                hint="Run again with --retries N to replace interrupted instances automatically.",
            )
        why = "its wrapper died" if wrapper_died else f"instance {state}"
        run.say(f"{rec.name}: {why}; replacing the instance (retry {attempt} of {opts.retries}), resuming from {rec.results_dir}")
        run.save(state="recovering")
        run.instance, run.follower, run.script_started = None, None, False


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
    """Ctrl-C / failure: final pull if the script started, then remove everything the run created."""
    try:
        if run.script_started and run.instance is not None:
            # Ctrl-C may have landed mid-command (with the Fabric transport, inside paramiko
            # mid-packet, wedging that connection): clean up on a fresh one.
            run.ctx.forget_host(run.instance.id)
            try:
                _host(run).run(kill_command(run.record.name), check=False, timeout=15)
            except Exception:  # noqa: BLE001
                pass
            _final_pull(run)
    except BaseException:  # noqa: BLE001 - a second Ctrl-C must not skip the cleanup
        pass
    remaining = release_all(run.ctx, run.record)
    if run.options.monitor:
        remaining += _revoke_quietly(run)
    run.record.ended_at = time.time()
    run.save(state=state)
    _report_leftovers(run, remaining)
