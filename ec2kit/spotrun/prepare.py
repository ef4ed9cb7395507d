"""Prepare an attempt: wait for SSH, data volume, upload, push results back, setup steps, start the wrapper."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RunError
from ..tags import RUN_TAG
from .commands import render_wrapper, start_command
from .follower import Follower
from .home import pull_failed
from .options import DATA_MOUNT, SpotRunOptions, bundle, resumable
from .state import _Run

if TYPE_CHECKING:
    from ..settings import Settings
    from ..ssh import Transport


def host(run: _Run) -> Transport:
    """The SSH transport to the run's current instance (shared per instance by the Context)."""
    assert run.instance is not None
    return run.ctx.connect(run.instance)


_host = host


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
    vol = actions.mount_volume(run.ctx, vol.id, inst.id, mountpoint=DATA_MOUNT)
    run.ctx.cloud.delete_with_instance(vol.id)  # gone with the instance, however it ends
    # A stop (a resumable run's interruption) unmounts it; the resumed wrapper runs this again first.
    remount = actions.mount_script(
        actions.device_candidates(vol.id, vol.device),
        DATA_MOUNT,
        format_blank=False,
        owner=_host(run).target.user,
        wait_seconds=20,  # an attached volume is there when the machine boots: no minute-long wait for one that is not
    )
    _host(run).run(f'mkdir -p "$HOME/ec2kit/{rec.name}" && cat >"$HOME/ec2kit/{rec.name}/mount-data.sh"', stdin=remount)


def stop_unpulled_after(settings: Settings) -> int:
    """Seconds a finished detached run waits for `inv pull` before its instance stops itself (0: never):
    ``stop_unpulled_after`` in ec2kit.toml or EC2KIT_STOP_UNPULLED_AFTER, default 1h."""
    from ..idle import parse_window

    value = settings.default("stop_unpulled_after")
    return parse_window(value, option="stop_unpulled_after", minimum=1) or 0


def _upload(run: _Run) -> None:
    opts, rec = run.options, run.record
    wrapper = render_wrapper(
        rec.name,
        Path(opts.script).name,
        max_hours=opts.max_hours or 0,
        keep=opts.keep,
        pull_wait=opts.detach_pull_wait if opts.detach else opts.pull_wait,
        poll=opts.notice_poll,
        follower_stale=follower_stale(opts),
        resume_on_boot=resumable(opts),
        owned=not opts.on,
        queue=opts.queue,
        stop_after=stop_unpulled_after(run.ctx.settings),
        data_mount=DATA_MOUNT if opts.snapshot else "",
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
    env = {str(k): str(v) for k, v in opts.env.items()}
    if opts.workdir:
        env["EC2KIT_WORKDIR"] = sync_workdir(run, Path(opts.workdir))
        mark("workdir")
    _pre_steps(run)
    mark("setup steps")
    _host(run).run(start_command(rec.name, attempt, env=env))
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


def sync_workdir(run: _Run, local: Path) -> str:
    """Send the run's working directory to ``~/work/<its name>`` (a no-op when it is there already); its absolute path."""
    from ..workdir import remote_path, sync

    assert run.instance is not None
    report = sync(run.ctx, run.instance, local)
    run.say(f"{run.record.name}: {report.line()}")
    host = _host(run)
    return host.expand(remote_path(local))


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
        attached=True,
        beat_stale=beat_stale(opts),
        poll_timeout=max(10.0, 10 * opts.poll_interval),
        pull_failed=lambda: pull_failed(run),
    )


def beat_stale(opts: SpotRunOptions) -> float:
    """After how many seconds without a heartbeat a 'running' wrapper is checked for life (it beats every notice_poll s)."""
    return max(10.0, 5 * opts.notice_poll)


def follower_stale(opts: SpotRunOptions) -> float:
    """After how many seconds without a poll the wrapper takes the follower for gone (it polls every poll_interval s)."""
    return max(30.0, 10 * opts.poll_interval)
