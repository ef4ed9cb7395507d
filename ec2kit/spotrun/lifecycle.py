"""The spot-run lifecycle: launch, prepare, start, follow, recover, finish, clean up.

``spot_run(ctx, options)`` drives one run from the spot request to the last deleted volume.
Every phase change is written to the run's SQLite record first, so whatever happens
(Ctrl-C, a lost instance, a failed step) the record says which resources were the run's.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, Ec2kitError, NotFound, RemoteError, RunError
from ..runs import RunRecord, Runs, masked_vars
from .commands import check_run_name, kill_command, render_wrapper, start_command
from .follower import Follower

if TYPE_CHECKING:
    from ..aws.models import Instance
    from ..context import Context
    from ..ssh import Transport

RUN_TAG = "ec2kit:run"
DATA_MOUNT = "/mnt/data"


@dataclass
class SpotRunOptions:
    """What to run and how; mirrors ``inv spot-run``'s flags."""

    script: str
    files: str | None = None  # a directory (its contents) or one file, uploaded next to the script
    name: str | None = None  # default: script stem + timestamp
    image: str | None = None  # default: 'base' if it exists, else the latest Ubuntu LTS
    type: str = "m5.large"
    types: list[str] = field(default_factory=list)  # more types for the fleet to choose from (every attempt)
    on_demand_fallback: bool = False  # no spot capacity in any pool: an on-demand instance instead
    disk: int | None = None
    snapshot: str | None = None  # data volume from this snapshot at /mnt/data
    results: str | None = None  # default runs/RUN (relative to cwd)
    max_price: str | float | None = None
    retries: int = 0
    monitor: str | None = None
    detach: bool = False
    keep: bool = False
    max_hours: float | None = None
    subnet: str | None = None  # id or Name tag (default: the default VPC)
    security_groups: list[str] = field(default_factory=list)  # extra groups beside ec2kit-ssh
    instance_profile: str | None = None  # IAM instance profile name
    open_ssh: bool = False  # SSH from anywhere, not just this machine's address
    vars: dict = field(default_factory=dict)  # variables for recipes/spot-run.toml
    recipe: str | None = "spot-run"  # pre-script steps (None: none)
    pull_interval: float = 3.0  # seconds between result pulls
    poll_interval: float = 1.0  # seconds between status/log polls
    notice_poll: float = 5.0  # the instance's interruption-notice polling (s)
    pull_wait: int = 120  # how long the instance waits for the final pull
    detach_pull_wait: int = -1  # detached: how long a finished instance waits for `inv pull` (< 0: until it comes)
    out: Callable[[str], None] | None = None  # log lines (default: print)
    say: Callable[[str], None] | None = None  # phase messages (default: ui.info)


@dataclass
class Phase:
    """Timestamps of one attempt (for the measurements in the report)."""

    running_at: float = 0.0
    started_at: float = 0.0


class _Run:
    """State shared by the phases of one spot_run call."""

    def __init__(self, ctx: Context, options: SpotRunOptions, record: RunRecord) -> None:
        self.ctx, self.options, self.record = ctx, options, record
        self.runs = Runs(ctx.settings.runs_db)
        self.say = options.say or _default_say
        self.out = options.out or print
        self.instance: Instance | None = None
        self.follower: Follower | None = None
        self.script_started = False
        self.phases: list[Phase] = []

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


def _default_say(message: str) -> None:
    from ..ui import info

    info(message)


def default_name(script: str) -> str:
    """``train.sh`` → ``train-20261126-061530``."""
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(script).stem) or "run"
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def validate(options: SpotRunOptions) -> tuple[str, Path]:
    """Check the options before any resource is created; returns (run name, results dir)."""
    script = Path(options.script)
    if script.is_dir():
        raise ConfigError(
            f"--script '{options.script}' is a directory, not a script.",
            hint="Give the script to run (e.g. --script train.sh); upload a directory beside it with --files DIR.",
        )
    if not script.is_file():
        raise ConfigError(
            f"The script '{options.script}' does not exist.", hint="Give the path of the script to run, e.g. --script train.sh."
        )
    if not os.access(script, os.R_OK):
        raise ConfigError(f"The script '{options.script}' cannot be read (permissions).", hint=f"Fix with: chmod u+r {script}")
    if options.files and not Path(options.files).exists():
        raise ConfigError(
            f"--files '{options.files}' does not exist.",
            hint="Give a directory (its files are uploaded next to the script) or a file.",
        )
    if options.retries < 0:
        raise ConfigError("--retries cannot be negative.")
    if options.max_hours is not None and options.max_hours <= 0:
        raise ConfigError(f"--max-hours {options.max_hours} must be more than 0.")
    name = check_run_name(options.name or default_name(options.script))
    results = Path(options.results or Path("runs") / name).expanduser().resolve()
    return name, results


def preflight(ctx: Context, options: SpotRunOptions, results: Path) -> None:
    """Resolve every named resource and check the results directory before anything is paid for."""
    if options.recipe:
        from ..recipe import load_recipe
        from ..recipe.loader import check_overrides

        check_overrides(load_recipe(options.recipe), options.vars)
    if options.image:
        ctx.cloud.choose_image(options.image, options.type)
    ctx.cloud.network(subnet=options.subnet, security_groups=options.security_groups)
    if options.instance_profile:
        ctx.cloud.instance_profile(options.instance_profile)
    if options.snapshot:
        ctx.cloud.snapshot(options.snapshot)
    if options.monitor:
        monitor = ctx.cloud.instance(options.monitor)
        if monitor.state != "running":
            raise ConfigError(
                f"--monitor {options.monitor} is {monitor.state}, not running.",
                hint=f"Start it first: inv start {options.monitor}",
            )
    probe = results
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            f"The results directory {results} cannot be created ({probe} is not a writable directory).",
            hint="Give a writable place with --results DIR.",
        )


def bundle(options: SpotRunOptions, wrapper: str) -> bytes:
    """A gzipped tar of the script, its files and the wrapper (one upload over stdin)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        if options.files:
            files = Path(options.files)
            if files.is_dir():
                for child in sorted(files.iterdir()):
                    tar.add(child, arcname=child.name)
            else:
                tar.add(files, arcname=files.name)
        script = Path(options.script)
        info = tar.gettarinfo(str(script), arcname=script.name)
        info.mode |= 0o755
        with open(script, "rb") as f:
            tar.addfile(info, f)
        data = wrapper.encode()
        info = tarfile.TarInfo("wrapper.sh")
        info.size, info.mode, info.mtime = len(data), 0o755, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# --------------------------------------------------------------------------- phases


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
        image=opts.image or _default_image(run.ctx),
        type=opts.type,
        spot=True,
        max_price=opts.max_price,
        disk=opts.disk,
        tags={RUN_TAG: rec.name},
        shutdown_behavior="terminate",
        subnet=opts.subnet,
        security_groups=opts.security_groups,
        instance_profile=opts.instance_profile,
        open_ssh=opts.open_ssh,
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


def _default_image(ctx: Context) -> str | None:
    """'base' when the user froze one (journey 2), else None (the cloud's latest Ubuntu LTS)."""
    try:
        return ctx.cloud.image("base").id
    except NotFound:
        return None


def _host(run: _Run) -> Transport:
    assert run.instance is not None
    return run.ctx.connect(run.instance)


def _attach_data(run: _Run, attempt: int) -> None:
    """A fresh volume from --snapshot in the instance's zone, mounted at /mnt/data (not formatted)."""
    from .. import actions

    opts, rec, inst = run.options, run.record, run.instance
    assert inst is not None
    run.say(f"{rec.name}: making a data volume from snapshot {opts.snapshot}")
    vol = run.ctx.cloud.create_volume(
        snapshot=opts.snapshot, zone=inst.zone, name=f"{rec.name}-data-{attempt}", tags={RUN_TAG: rec.name}
    )
    rec.add_created("volumes", vol.id)
    rec.volumes.append(vol.id)
    run.save()
    actions.mount_volume(run.ctx, vol.id, inst.id, mountpoint=DATA_MOUNT)
    run.ctx.cloud.delete_with_instance(vol.id)  # gone with the instance, however it ends


def _upload(run: _Run) -> None:
    opts, rec = run.options, run.record
    wrapper = render_wrapper(
        rec.name,
        Path(opts.script).name,
        max_hours=opts.max_hours or 0,
        keep=opts.keep,
        pull_wait=opts.detach_pull_wait if opts.detach else opts.pull_wait,
        poll=opts.notice_poll,
    )
    data = bundle(opts, wrapper)
    _host(run).run(f'mkdir -p "$HOME/ec2kit/{rec.name}" && tar -xzf - -C "$HOME/ec2kit/{rec.name}"', stdin=data, timeout=600)


def _pre_steps(run: _Run) -> None:
    """Run recipes/spot-run.toml (user-editable setup steps) on the instance, if it has steps."""
    if not run.options.recipe:
        return
    from ..recipe import CollectingReporter, load_recipe, run_recipe

    recipe = load_recipe(run.options.recipe)
    if not recipe.steps:
        return
    assert run.instance is not None
    variables = {"run": run.record.name, "script": Path(run.options.script).name, **run.options.vars}
    reporter = CollectingReporter()
    report = run_recipe(run.ctx, recipe, hosts=[run.instance.id], vars=variables, reporter=reporter)
    output = reporter.buffer.getvalue().strip()
    if not report.ok:
        raise RunError(
            f"Run {run.record.name}: a setup step of recipe '{run.options.recipe}' failed on {run.instance.label}; "
            f"the script was not started.\n{output[-3000:]}",
            hint="Fix recipes/spot-run.toml (or the image) and run again.",
        )
    run.say(f"{run.record.name}: setup steps of recipe '{run.options.recipe}' done")


def _prepare_and_start(run: _Run, attempt: int) -> None:
    """Wait for SSH, data volume, upload, push results back (attempt > 1), setup steps, start."""
    from .. import actions

    opts, rec = run.options, run.record
    assert run.instance is not None
    marks: list[tuple[str, float]] = []
    last = [time.monotonic()]

    def mark(what: str) -> None:
        now = time.monotonic()
        marks.append((what, now - last[0]))
        last[0] = now

    actions.wait_ssh(run.ctx, run.instance)
    mark("ssh")
    if opts.snapshot:
        _attach_data(run, attempt)
        mark("data volume")
    _upload(run)
    mark("upload")
    if opts.monitor:
        from .monitor import start_push

        def authorized(directory: str) -> None:
            rec.options["monitor_dir"] = directory
            run.save()

        directory = start_push(
            run.ctx, rec.name, run.instance, opts.monitor, interval=min(opts.pull_interval, 2.0), authorized=authorized
        )
        run.say(f"{rec.name}: results go to {opts.monitor}:{directory}")
        mark("monitor")
    run.follower = _follower(run, _host(run))
    if attempt > 1:
        run.say(f"{rec.name}: pushing {rec.results_dir} back so the script can resume")
        run.follower.push()
        mark("push back")
    _pre_steps(run)
    mark("setup steps")
    _host(run).run(start_command(rec.name, attempt))
    mark("start")
    run.script_started = True
    run.phases[-1].started_at = time.monotonic()
    rec.started_at = rec.started_at or time.time()
    run.save(state="running")
    took = ", ".join(f"{what} {secs:.1f}s" for what, secs in marks)
    run.say(
        f"{rec.name}: script started on {run.instance.label} "
        f"({run.phases[-1].started_at - run.phases[-1].running_at:.1f}s after the instance was running: {took})"
    )


def _follower(run: _Run, host: Transport) -> Follower:
    rec, opts = run.record, run.options
    return Follower(
        host,
        rec.name,
        None if opts.monitor else Path(rec.results_dir),
        local_log=run.ctx.settings.home / "runs" / rec.name / "log",
        out=run.out,
        pull_interval=opts.pull_interval,
        poll_interval=opts.poll_interval,
    )


def _instance_gone(run: _Run) -> bool:
    """Whether the run's current instance is terminated / shutting down / unknown."""
    assert run.instance is not None
    try:
        inst = run.ctx.cloud.instance(
            run.instance.id, states=["pending", "running", "stopping", "stopped", "shutting-down", "terminated"]
        )
    except NotFound:
        return True
    return inst.state in ("shutting-down", "terminated", "stopping", "stopped")


class _Watch:
    """Rate-limited checks while following: stopped by `inv stop-run`? instance gone?"""

    def __init__(self, run: _Run, db_every: float = 2.0, cloud_every: float = 30.0) -> None:
        self.run, self.db_every, self.cloud_every = run, db_every, cloud_every
        self.next_db = self.next_cloud = time.monotonic() + db_every
        self.reason = ""

    def __call__(self) -> bool:
        now = time.monotonic()
        if now >= self.next_db:
            self.next_db = now + self.db_every
            if self.run.cancelled:
                self.reason = "cancelled"
                return True
        if now >= self.next_cloud:
            # An instance can vanish while its SSH session lingers (or hangs): ask EC2 too.
            self.next_cloud = now + self.cloud_every
            if _instance_gone(self.run):
                self.reason = "lost"
                return True
        return False


def _follow(run: _Run) -> str:
    """Follow until the script ends; returns its final state, 'lost' (instance gone) or 'cancelled'."""
    from ..errors import TimedOut

    assert run.follower is not None
    watch = _Watch(run)
    failures = 0
    while True:
        try:
            status = run.follower.follow(should_stop=watch)
            if watch.reason:
                return watch.reason
            return status.get("state", "lost")
        except (RemoteError, TimedOut):
            if run.cancelled:
                return "cancelled"
            if _instance_gone(run):
                return "lost"
            failures += 1
            if failures > 5:
                raise
            run.ctx.forget_host(run.instance.id)  # type: ignore[union-attr]
            run.follower.host = _host(run)
            time.sleep(1)


def _final_pull(run: _Run) -> bool:
    """The last pull before anything is terminated; says where results are if it failed."""
    if run.follower is None or not run.script_started:
        return True
    try:
        ok = run.follower.finish()
    except RemoteError:
        ok = False
    if not ok:
        run.say(f"{run.record.name}: the final pull failed; {run.record.results_dir} has the results of the last successful pull")
    return ok


def _final_push_or_pull(run: _Run) -> None:
    """Monitor mode: the last push to the monitor; if it fails, pull here so nothing is lost."""
    from .monitor import final_push

    try:
        final_push(_host(run), run.record.name)
    except RemoteError as err:
        run.say(f"{run.record.name}: {err} Pulling the results to {run.record.results_dir} instead.")
        if run.follower is not None:
            run.follower.results = Path(run.record.results_dir)


def _revoke_quietly(run: _Run) -> list[str]:
    """Remove the run key from the monitor; a failure is reported as a leftover."""
    from .monitor import revoke_record

    try:
        revoke_record(run.ctx, run.record)
        return []
    except Exception as err:  # noqa: BLE001
        return [f"the line 'ec2kit-run:{run.record.name}' in ~/.ssh/authorized_keys on {run.options.monitor} ({err})"]


def _release_instance(run: _Run) -> list[str]:
    """Terminate the current instance and delete its data volumes; returns what could not be removed."""
    remaining: list[str] = []
    cloud, rec = run.ctx.cloud, run.record
    if run.instance is not None:
        iid = run.instance.id
        run.ctx.forget_host(iid)
        # Waiting for 'terminated' is only needed to free the data volumes for deletion.
        remaining += _terminate(cloud, iid, rec.request_id, wait=bool(rec.volumes))
        rec.instance_stopped()
    for vol in list(rec.volumes):
        left = _delete_volume(cloud, vol)
        remaining += left
        if not left:
            rec.volumes.remove(vol)
    run.save()
    return remaining


def _terminate(cloud: Any, instance_id: str, request_id: str | None, *, wait: bool = True) -> list[str]:
    try:
        if request_id:
            try:
                cloud.cancel_spot_request(request_id)
            except Ec2kitError:
                pass  # already closed or gone
        try:
            cloud.terminate(instance_id)
        except NotFound:
            return []
        if wait:
            cloud.wait(instance_id, "terminated", timeout=300)
        return []
    except Exception as err:  # noqa: BLE001 - reported to the user as a leftover
        return [f"instance {instance_id} ({err}): inv terminate {instance_id}"]


def _delete_volume(cloud: Any, volume_id: str) -> list[str]:
    try:
        try:
            vol = cloud.volume(volume_id)
        except NotFound:
            return []
        if vol.attached_to:
            cloud.detach_volume(vol, force=True)
        cloud.delete_volume(volume_id)
        return []
    except Exception as err:  # noqa: BLE001
        return [f"volume {volume_id} ({err}): inv delete-volume {volume_id}"]


def _report_leftovers(run: _Run, remaining: list[str]) -> None:
    if remaining:
        text = "; ".join(remaining)
        run.say(f"{run.record.name}: could not remove everything. Still there: {text}")
        run.record.options["leftovers"] = remaining
        run.save()


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
    record = RunRecord(name=name, script=options.script, results_dir=str(results), monitor=options.monitor, options=opts)
    runs = Runs(ctx.settings.runs_db)
    runs.create(record)
    run = _Run(ctx, options, record)
    results.mkdir(parents=True, exist_ok=True)
    try:
        return _attempts(run)
    except KeyboardInterrupt:
        run.say(f"{name}: interrupted (Ctrl-C): pulling results and cleaning up")
        _abort(run, "cancelled")
        return run.record
    except BaseException as err:
        _abort(run, "failed")
        if isinstance(err, Ec2kitError):
            raise
        raise RunError(f"Run {name} failed unexpectedly ({type(err).__name__}: {err}); its resources were cleaned up.") from err


def _attempts(run: _Run) -> RunRecord:
    opts, rec = run.options, run.record
    attempt = 0
    while True:
        attempt += 1
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
        # interrupted (notice seen) or lost (instance vanished): results pulled so far are kept
        _final_pull(run)
        remaining = _release_instance(run)
        _report_leftovers(run, remaining)
        if run.cancelled:
            rec.state = "cancelled"
            return rec
        if attempt > opts.retries:
            rec.ended_at = time.time()
            run.save(state="interrupted")
            raise RunError(
                f"Run {rec.name} was interrupted on attempt {attempt} and has no retries left; results so far are in {rec.results_dir}.",
                hint="Run again with --retries N to replace interrupted instances automatically.",
            )
        run.say(f"{rec.name}: instance {state}; replacing it (retry {attempt} of {opts.retries})")
        run.save(state="recovering")
        run.instance, run.follower, run.script_started = None, None, False


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


def release_all(ctx: Context, record: RunRecord) -> list[str]:
    """Cancel every request, terminate every instance and delete every volume the run created; save the record."""
    remaining = release(ctx, record.created)
    record.instance_stopped()
    record.volumes = []
    Runs(ctx.settings.runs_db).save(record)
    return remaining


def release(ctx: Context, created: dict[str, list[str]]) -> list[str]:
    """Terminate these instances, cancel these spot requests, delete these volumes; what could not go, as hints."""
    cloud = ctx.cloud
    remaining: list[str] = []
    for iid in created.get("instances", []):
        ctx.forget_host(iid)
        remaining += _terminate(cloud, iid, None, wait=bool(created.get("volumes")))  # only volumes need it gone
    for rid in created.get("requests", []):
        try:
            cloud.cancel_spot_request(rid)
        except Exception:  # noqa: BLE001 - gone already (moto drops cancelled requests)
            pass
    for vid in created.get("volumes", []):
        remaining += _delete_volume(cloud, vid)
    return remaining


def log_tail(ctx: Context, run: str, lines: int = 20) -> str:
    """The last lines of the run's local log copy."""
    path = ctx.settings.home / "runs" / run / "log"
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def results_path(record: RunRecord) -> Path:
    """Where the run's results land on this machine."""
    return Path(record.results_dir or os.path.join("runs", record.name))
