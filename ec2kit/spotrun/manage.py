"""Commands on existing runs: list, logs, pull, attach, stop (called by the CLI; cleanup is in leftovers.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import Ec2kitError, NotFound, RemoteError, WrongState
from ..runs import RunRecord, Runs
from . import owner
from .commands import attach_command, kill_command
from .follow import DISK_FULL, NO_DATA_VOLUME, disk_full_note, no_data_volume_note
from .follower import FINAL_STATES, Follower
from .options import DATA_MOUNT, RUN_TAG
from .release import log_tail, release_all
from .state import _default_say

if TYPE_CHECKING:
    from ..aws.models import Instance
    from ..context import Context


def find_run(ctx: Context, run: str) -> RunRecord | None:
    """Run ``run``'s record, or None."""
    return Runs(ctx.settings.runs_db).find(run)


def list_runs(ctx: Context) -> list[RunRecord]:
    """Every recorded run, newest first (``record.cost`` is the cost so far)."""
    return Runs(ctx.settings.runs_db).all()


def _orphaned(record: RunRecord) -> bool:
    """A followed run whose ``inv spot-run`` process died (kill -9, a crash) without cleaning up."""
    adopted = record.options.get("detach") or record.options.get("orphaned")  # already one nothing follows: keep its note
    return record.live and not adopted and owner.alive(record.options.get("owner")) is False


def refresh(ctx: Context, records: list[RunRecord]) -> dict[str, str]:
    """Bring runs nothing follows up to date; returns a note per run for display.

    Those are detached runs, and followed runs whose ``inv spot-run`` died (their owner's pid is gone):
    one DescribeInstances for all of them (instances found by id, or by the run's tag when a crash
    came before the record had one), then one status read per instance still running. A run whose
    script ended gets its final state; one whose instance went away unseen is ``lost``; one that
    never got its script started is ``failed`` and its leftovers are `inv cleanup`'s.
    """
    orphans = {r.name for r in records if _orphaned(r)}
    pending = [
        r
        for r in records
        if (r.options.get("detach") or r.options.get("orphaned") or r.name in orphans) and (r.live or r.awaiting_pull)
    ]
    if not pending:
        return {}
    found = ctx.cloud.instances(states=["pending", "running", "stopping", "stopped"], tags={RUN_TAG: None})
    by_id = {i.id: i for i in found}
    by_run: dict[str, Instance] = {}
    for one in sorted(found, key=lambda i: i.state != "running"):  # a running one first
        by_run.setdefault(one.tags.get(RUN_TAG, ""), one)
    runs = Runs(ctx.settings.runs_db)
    notes: dict[str, str] = {}
    inst: Instance | None
    for record in pending:
        inst = by_id.get(record.instance_id or "") or by_run.get(record.name)
        if inst is None and record.options.get("existing"):  # `inv exec`: the user's instance carries no run tag
            inst = _instance_of(ctx, record)
        if record.name in orphans and not _adopt(ctx, record, inst, notes):
            continue
        if inst is not None and inst.state != "running":
            if record.options.get("resumable") and inst.state in ("stopping", "stopped") and stopped_itself(inst):
                notes[record.name] = f"stopped, results on disk; `inv pull {record.name}`"
                if not record.options.get("stopped_unpulled"):
                    record.options["stopped_unpulled"] = True
                    record.options["note"] = (
                        "its script ended and nothing pulled its results for a while, so its instance stopped "
                        f"itself (the disk, with the results, is kept); `inv pull {record.name}` starts it, pulls "
                        "everything and terminates it"
                    )
                    runs.save(record)
            elif record.options.get("resumable") and inst.state in ("stopping", "stopped"):
                notes[record.name] = "stopped by a spot interruption; it resumes from its checkpoint when capacity returns"
            else:
                notes[record.name] = f"instance {inst.state}"
            continue
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
        follower = _follower(ctx, record, inst, out=lambda _line: None, pull=False)
        try:
            status = follower.poll()
        except RemoteError:
            notes[record.name] = f"instance {inst.id} not answering (EC2 says it is running)"
            continue
        if follower.wrapper_dead():
            notes[record.name] = _wrapper_died(ctx, record, follower)
            continue
        if status.get("attempt") and status["attempt"] != record.attempt:
            record.attempt = status["attempt"]  # a resumable run resumed on its own after an interruption
            runs.save(record)
        if status.get("state") == "interrupted":
            notes[record.name] = _notice_note(follower, record)
            if record.options.get("resumable"):
                continue  # not the end: the instance stops, and resumes when capacity returns
        _settle(ctx, record, status)
        if record.monitor and not record.live:
            notes[record.name] = f"pushing its last results to {record.monitor}"
        elif record.awaiting_pull:
            notes[record.name] = f"waiting for `inv pull {record.name}`"
    return notes


def _adopt(ctx: Context, record: RunRecord, inst: Instance | None, notes: dict[str, str]) -> bool:
    """A followed run whose owner died: True when its script runs on (it becomes a detached run), else
    settle it (nothing left, or the script never started) and return False."""
    runs = Runs(ctx.settings.runs_db)
    who = owner.describe(record.options.get("owner"))
    started = False
    if inst is not None and inst.state == "running":
        try:
            status = _follower(ctx, record, inst, out=lambda _line: None, pull=False).poll()
            started = bool(status.get("state"))
        except RemoteError:
            started = record.state == "running"
    elif inst is not None:
        started = record.state == "running"  # stopped: it cannot be asked; trust the record
    if started and inst is not None:
        record.options["orphaned"] = True
        record.options["note"] = f"its `inv spot-run` ({who}) is gone; the run goes on, and waits for `inv pull {record.name}`"
        record.instance_id = record.instance_id or inst.id
        runs.save(record)
        return True
    if inst is not None and record.options.get("existing"):
        record.options["note"] = f"its `inv exec` ({who}) died before the script started; instance {inst.id} is yours, untouched"
        notes[record.name] = "its `inv exec` died before the script started"
    elif inst is not None:
        record.options["note"] = (
            f"its `inv spot-run` ({who}) died before the script started; instance {inst.id} is still there: "
            f"`inv stop-run {record.name}` or `inv cleanup` removes it"
        )
        notes[record.name] = f"its `inv spot-run` died; instance {inst.id} left for `inv cleanup`"
        record.instance_id = record.instance_id or inst.id
    else:
        record.options["note"] = (
            f"its `inv spot-run` ({who}) died; no instance of it is left (`inv cleanup` finds any other leftover)"
        )
        notes[record.name] = "its `inv spot-run` died; nothing left running"
    record.state = "lost" if record.state == "running" else "failed"
    record.ended_at = time.time()
    runs.save(record)
    return False


def _wrapper_died(ctx: Context, record: RunRecord, follower: Follower) -> str:
    """Nothing follows this run and its wrapper died (stale heartbeat, no tmux session): stop what is left
    of the script, make a final pull, release the instance; the run is ``lost``."""
    try:
        follower.host.run(kill_command(record.name), check=False, timeout=30)
    except Ec2kitError:
        pass
    pulled = False
    if not record.monitor:
        follower.results = Path(record.results_dir)
        try:
            pulled = follower.pull()
        except Ec2kitError:
            pulled = False
    record.state, record.ended_at = "lost", time.time()
    where = f"its results were pulled into {record.results_dir}" if pulled else "the final pull failed"
    yours = bool(record.options.get("existing"))  # `inv exec`: the instance is not the run's to release
    record.options["note"] = (
        f"its wrapper on {follower.host.name} died (no heartbeat for {follower.beat_age or 0:.0f} s, no tmux session); "
        f"{where}, and its instance was {'left running (it is yours)' if yours else 'released'}"
    )
    Runs(ctx.settings.runs_db).save(record)
    remaining = release_all(ctx, record)
    if yours:
        return "wrapper died; the instance is yours and keeps running"
    return "wrapper died; instance released" + (f" (still there: {'; '.join(remaining)})" if remaining else "")


def _notice_note(follower: Follower, record: RunRecord) -> str:
    """What `inv runs` says during a spot interruption's notice window."""
    import json
    from datetime import datetime, timezone

    left = ""
    try:
        shown = follower.host.run(f'cat "$HOME/ec2kit/{record.name}/notice" 2>/dev/null', check=False, timeout=15)
        when = json.loads(shown.stdout).get("time", "")
        secs = (
            datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)
        ).total_seconds()
        left = f" within {max(int(secs), 0)} s"
    except (RemoteError, ValueError, AttributeError, TypeError):
        pass
    note = f"interrupted — `inv pull {record.name}`{left} saves the latest results"
    if record.options.get("resumable"):
        note += "; the instance then stops and the run resumes when capacity returns"
    return note


def stopped_itself(inst: Instance) -> bool:
    """Whether the instance powered itself off (``shutdown -h now``: a finished run nothing pulled), as
    opposed to a spot interruption (Server.SpotInstanceTermination) or a stop from outside."""
    return (inst.raw.get("StateReason") or {}).get("Code", "") == "Client.InstanceInitiatedShutdown"


def _wake(ctx: Context, record: RunRecord) -> Instance | None:
    """Start the instance of a finished run that stopped itself with its results on its disk (so a pull can
    bring them home), and return it running; None for any other run."""
    if record.monitor or not record.options.get("resumable"):
        return None
    stopped = _instance_of(ctx, record)
    if stopped is None or stopped.state != "stopped" or not stopped_itself(stopped):
        return None
    from ..actions import start

    _default_say(f"{record.name}: its instance {stopped.id} stopped itself with the results on its disk; starting it")
    return start(ctx, stopped.id, wait=True)


def _instance_of(ctx: Context, record: RunRecord) -> Instance | None:
    """The run's current instance in any live state: by the record's id, else by the run's tag."""
    if record.instance_id:
        try:
            return ctx.cloud.instance(record.instance_id)
        except (NotFound, WrongState):  # gone, or terminated
            return None
    found = ctx.cloud.instances(tags={RUN_TAG: record.name})
    found.sort(key=lambda i: i.state != "running")
    return found[0] if found else None


def _live_instance(ctx: Context, record: RunRecord) -> Instance | None:
    if record.options.get("sweep") and not (record.live or record.awaiting_pull):
        return None  # a sweep's run that ended let go of its instance (it may serve the sweep's next run now)
    inst = _instance_of(ctx, record)
    return inst if inst is not None and inst.state == "running" else None


def _follower(
    ctx: Context, record: RunRecord, inst: Instance, out: Callable[[str], None] = print, *, pull: bool = True
) -> Follower:
    results = Path(record.results_dir) if pull and not record.monitor else None
    beat = max(10.0, 5 * float(record.options.get("notice_poll") or 5))  # as prepare.beat_stale
    return Follower(ctx.connect(inst), record.name, results, out=out, beat_stale=beat)


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
        if status.get("why") == DISK_FULL:
            record.options["note"] = disk_full_note(record.results_dir, record.options.get("disk"))
        elif status.get("why") == NO_DATA_VOLUME:
            record.options["note"] = no_data_volume_note(record.name, DATA_MOUNT)
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
    inst = _live_instance(ctx, record) or _wake(ctx, record)
    if inst is None:
        stopped = _instance_of(ctx, record)
        if stopped is not None and record.options.get("resumable"):
            raise WrongState(
                f"Run {run}'s instance {stopped.id} is {stopped.state} (a spot interruption); its results are on its disk.",
                hint=f"It resumes when capacity returns; `inv pull {run}` then (`inv runs` shows when).",
            )
        if record.options.get("sweep"):
            raise WrongState(
                f"Run {run} of sweep {record.options['sweep']} is {record.state}; its results were pulled into "
                f"{record.results_dir} when it ended, and its instance went on to the sweep's other runs or away."
            )
        raise WrongState(f"Run {run}'s instance is gone; {record.results_dir} holds what was pulled before it ended.")
    f = _follower(ctx, record, inst, out=lambda _line: None)
    waited: list[bool] = []

    def busy() -> None:
        waited.append(True)
        _default_say(f"{run}: another pull of this run is under way (its follower, or another `inv pull`); waiting for it")

    f.busy = busy
    status = f.poll()
    if not f.pull():
        fresh = Runs(ctx.settings.runs_db).find(run) if waited else None
        if fresh is not None and fresh.options.get("pulled"):  # the other pull was the final one, and released the instance
            _default_say(f"{run}: the other pull brought the final results into {fresh.results_dir}")
            return Path(fresh.results_dir)
        raise RemoteError(f"Pulling the results of run {run} from {inst.label} failed: {f.last_error}")
    ended = status.get("state") in FINAL_STATES and status.get("ended_at")
    resumable = bool(record.options.get("resumable"))
    if ended and not (resumable and status.get("state") == "interrupted"):  # an interrupted resumable run goes on
        f.mark_pulled()
        record.options["pulled"] = True
        record.options["note"] = f"its results were pulled into {record.results_dir}"  # no more "waits for `inv pull`"
        record.options.pop("not_home", None)  # what a failed final pull left behind is home now
    _settle(ctx, record, status)
    Runs(ctx.settings.runs_db).save(record)
    if resumable and record.options.get("pulled"):
        # Its persistent request would start it again (or launch another): cancel it, terminate the instance.
        remaining = release_all(ctx, record)
        if remaining:
            from ..errors import RunError

            record.options["leftovers"] = remaining
            record.options["note"] = f"results pulled; could not remove {'; '.join(remaining)}: `inv cleanup` removes it"
            Runs(ctx.settings.runs_db).save(record)
            raise RunError(
                f"Results of {run} pulled, but these could not be removed: {'; '.join(remaining)}.",
                hint="`inv cleanup` removes what is left once AWS answers again (`inv runs` lists it meanwhile).",
            )
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
    inst = _live_instance(ctx, record) or _wake(ctx, record)
    if inst is not None:
        try:
            f = _follower(ctx, record, inst, out=lambda _line: None)
            ctx.connect(inst).run(kill_command(run), check=False, timeout=30)
            status = f.poll()
            if f.pull():
                record.options["pulled"] = True
            if status.get("state") in FINAL_STATES and status.get("ended_at"):
                record.exit_code = status.get("exit_code")
        except Ec2kitError:  # RemoteError, or no SSH server any more: the run's own follower let it go meanwhile
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

        raise RunError(
            f"Run {run} stopped, but these could not be removed: {'; '.join(remaining)}.",
            hint="`inv cleanup` removes what is left once AWS answers again (`inv runs` lists it meanwhile).",
        )
    return record


__all__ = ["attach_argv", "find_run", "list_runs", "log_tail", "logs", "pull", "refresh", "stop_run"]
