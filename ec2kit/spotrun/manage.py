"""Commands on existing runs: list, logs, pull, attach, stop, cleanup (called by the CLI)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import NotFound, RemoteError, WrongState
from ..runs import RunRecord, Runs
from .commands import attach_command, kill_command
from .follower import FINAL_STATES, Follower
from .lifecycle import RUN_TAG, log_tail, release, release_all

if TYPE_CHECKING:
    from ..aws.models import Instance
    from ..context import Context


@dataclass
class Leftover:
    """A cloud resource a run created that no live run owns any more."""

    kind: str
    id: str
    name: str
    reason: str


def list_runs(ctx: Context) -> list[RunRecord]:
    """Every recorded run, newest first (``record.cost`` is the cost so far)."""
    return Runs(ctx.settings.runs_db).all()


def refresh(ctx: Context, records: list[RunRecord]) -> dict[str, str]:
    """Bring detached runs up to date (nothing else follows them); returns a note per run for display.

    One DescribeInstances for all of them, then one status read per instance still running.
    A run whose script ended gets its final state; one whose instance went away unseen is ``lost``.
    """
    pending = [r for r in records if r.options.get("detach") and r.instance_id and (r.live or r.awaiting_pull)]
    if not pending:
        return {}
    running = {i.id: i for i in ctx.cloud.instances(states=["running"])}
    runs, notes = Runs(ctx.settings.runs_db), {}
    for record in pending:
        inst = running.get(record.instance_id or "")
        if inst is None and record.live and record.monitor:
            _settle_from_monitor(ctx, record)
            if not record.live:
                continue  # it pushed its last results to the monitor and powered off, as planned
        if inst is None:
            if record.live:
                record.state, record.ended_at = "lost", time.time()
                record.options["note"] = (
                    "its instance went away while no ec2kit process followed the run "
                    "(a spot interruption?); what was pulled before is in " + record.results_dir
                )
                runs.save(record)
            else:  # it was interrupted or terminated while it waited for the pull
                notes[record.name] = "instance gone before `inv pull`"
                record.options["instance_gone"] = True
                record.options["note"] = "its instance went away before `inv pull` collected the final results"
                runs.save(record)
            continue
        try:
            status = _follower(ctx, record, inst, out=lambda _line: None, pull=False).poll()
        except RemoteError:
            notes[record.name] = "instance not answering"
            continue
        _settle(ctx, record, status)
        if record.monitor and not record.live:
            notes[record.name] = f"pushing its last results to {record.monitor}"
        elif record.awaiting_pull:
            notes[record.name] = f"waiting for `inv pull {record.name}`"
    return notes


def _live_instance(ctx: Context, record: RunRecord) -> Instance | None:
    if not record.instance_id:
        return None
    try:
        inst = ctx.cloud.instance(record.instance_id)
    except (NotFound, WrongState):  # gone, or terminated
        return None
    return inst if inst.state == "running" else None


def _follower(
    ctx: Context, record: RunRecord, inst: Instance, out: Callable[[str], None] = print, *, pull: bool = True
) -> Follower:
    results = Path(record.results_dir) if pull and not record.monitor else None
    return Follower(ctx.connect(inst), record.name, results, out=out)


def _settle_from_monitor(ctx: Context, record: RunRecord) -> None:
    """A detached monitor run whose instance is gone: its final status was pushed with the results."""
    import json

    from .monitor import revoke_record

    if not record.monitor:
        return
    try:
        shown = ctx.connect(record.monitor).run(
            f'cat "$HOME/ec2kit-runs/{record.name}/.ec2kit-status.json"', check=False, timeout=15
        )
        status = json.loads(shown.stdout) if shown.ok else {}
    except (NotFound, RemoteError, ValueError):
        return
    if not (status.get("state") in FINAL_STATES and status.get("ended_at")):
        return
    _settle(ctx, record, status)
    if not record.options.get("revoked"):  # the instance is gone, so its pushes are over
        try:
            revoke_record(ctx, record)
            record.options["revoked"] = True
            Runs(ctx.settings.runs_db).save(record)
        except RemoteError:
            pass


def _settle(ctx: Context, record: RunRecord, status: dict) -> None:
    """Record a detached run's end once its status file says it ended."""
    if status.get("state") in FINAL_STATES and status.get("ended_at") and record.live:
        record.state = status["state"]
        record.exit_code = status.get("exit_code")
        record.ended_at = time.time()
        Runs(ctx.settings.runs_db).save(record)


def logs(ctx: Context, run: str, follow: bool = False, out: Callable[[str], None] = print) -> None:
    """Print a run's log: from its instance while it runs (``follow``: until it ends), else the local copy."""
    record = Runs(ctx.settings.runs_db).get(run)
    inst = _live_instance(ctx, record)
    if inst is None:
        path = ctx.settings.home / "runs" / run / "log"
        if not path.exists():
            raise NotFound("log of run", run, hint="The run's instance is gone and no log was copied here.")
        for line in path.read_text(errors="replace").splitlines():
            out(line)
        return
    f = _follower(ctx, record, inst, out, pull=False)
    status = f.follow() if follow else f.poll()
    f.flush()
    _settle(ctx, record, status)


def pull(ctx: Context, run: str) -> Path:
    """Pull the run's results into its results directory now; returns that directory."""
    record = Runs(ctx.settings.runs_db).get(run)
    if record.monitor:
        raise WrongState(
            f"Run {run} sends its results to the monitor instance '{record.monitor}', not here.",
            hint=f"Find them in ~/ec2kit-runs/{run} on {record.monitor}.",
        )
    inst = _live_instance(ctx, record)
    if inst is None:
        raise WrongState(f"Run {run}'s instance is gone; {record.results_dir} holds what was pulled before it ended.")
    f = _follower(ctx, record, inst, out=lambda _line: None)
    status = f.poll()
    if not f.pull():
        raise RemoteError(f"Pulling the results of run {run} from {inst.label} failed: {getattr(f, 'last_error', '')}")
    if status.get("state") in FINAL_STATES and status.get("ended_at"):
        f.mark_pulled()
        record.options["pulled"] = True
    _settle(ctx, record, status)
    Runs(ctx.settings.runs_db).save(record)
    return Path(record.results_dir)


def attach_argv(ctx: Context, run: str) -> list[str]:
    """``ssh -t … tmux attach -t RUN``: attach a terminal to the run's tmux session."""
    from ..ssh.pins import check
    from ..ssh.target import ssh_argv

    record = Runs(ctx.settings.runs_db).get(run)
    inst = _live_instance(ctx, record)
    if inst is None:
        raise WrongState(
            f"Run {run} has no running instance to attach to (it is {record.state}).", hint=f"See its log with `inv logs {run}`."
        )
    target = ctx.target(inst)
    check(target.known_hosts)  # ssh itself would skip a damaged pin file and re-learn the key
    return ssh_argv(target, command=attach_command(run), tty=True)


def stop_run(ctx: Context, run: str) -> RunRecord:
    """Stop a run: stop the script, final pull, terminate its instance, delete its volumes."""
    runs = Runs(ctx.settings.runs_db)
    record = runs.get(run)
    was_live = record.live
    if was_live:  # first, so a spot-run following this run does not replace the instance
        record.state = "cancelled"
        runs.save(record)
    inst = _live_instance(ctx, record)
    if inst is not None:
        f = _follower(ctx, record, inst, out=lambda _line: None)
        try:
            ctx.connect(inst).run(kill_command(run), check=False, timeout=30)
            status = f.poll()
            if f.pull():
                record.options["pulled"] = True
            if status.get("state") in FINAL_STATES and status.get("ended_at"):
                record.exit_code = status.get("exit_code")
        except RemoteError:
            pass  # the instance is going anyway; what was pulled before stays
    record.options["stopped"] = True
    remaining = release_all(ctx, record)
    if record.monitor:
        from .monitor import revoke_record

        revoke_record(ctx, record)
    if was_live:
        record.ended_at = time.time()
    if remaining:
        record.options["leftovers"] = remaining
    runs.save(record)
    if remaining:
        from ..errors import RunError

        raise RunError(f"Run {run} stopped, but these could not be removed: {'; '.join(remaining)}.")
    return record


def cleanup(ctx: Context, dry_run: bool = True) -> list[Leftover]:
    """Resources tagged by a spot run (ec2kit:run) whose run is not live; removed unless ``dry_run``.

    Never touches anything without a run tag: your named machines, data volumes and snapshots stay.
    """
    # a detached run that ended still owns its instance until `inv pull` takes the results
    live = {r.name for r in Runs(ctx.settings.runs_db).all() if r.live or r.awaiting_pull}
    cloud = ctx.cloud
    found: list[Leftover] = []
    for inst in cloud.instances(tags={"ec2kit:managed": "1"}):
        run = inst.tags.get(RUN_TAG)
        if run and run not in live and inst.state not in ("terminated", "shutting-down"):
            found.append(Leftover("instance", inst.id, inst.name, f"run {run} is not running"))
    for vol in cloud.volumes():
        run = vol.tags.get(RUN_TAG)
        if run and run not in live and not any(l.id == vol.attached_to for l in found if l.kind == "instance"):
            if vol.attached_to is None:
                found.append(Leftover("volume", vol.id, vol.name, f"data volume of run {run}, detached"))
    for req in cloud.spot_requests(tag_key=RUN_TAG):
        run = req.tags.get(RUN_TAG)
        if req.state in ("open", "active") and run not in live and not req.instance_id:
            found.append(Leftover("spot-request", req.id, req.name, f"open request of run {run}"))
    for template in cloud.stale_launch_templates():  # a spot launch killed mid-way (each lives one fleet call)
        found.append(
            Leftover(
                "launch-template", template["LaunchTemplateName"], template["LaunchTemplateName"], "left by an interrupted launch"
            )
        )
    if not dry_run:
        for left in [l for l in found if l.kind == "launch-template"]:
            cloud.delete_launch_template(left.id)
        created = {
            "instances": [l.id for l in found if l.kind == "instance"],
            "requests": [l.id for l in found if l.kind == "spot-request"],
            "volumes": [l.id for l in found if l.kind == "volume"],
        }
        remaining = release(ctx, created)  # no run record: these runs are gone
        if remaining:
            from ..errors import RunError

            raise RunError("Cleanup could not remove: " + "; ".join(remaining))
    return found


__all__ = ["Leftover", "attach_argv", "cleanup", "list_runs", "log_tail", "logs", "pull", "stop_run"]
