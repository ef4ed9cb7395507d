"""Release what a run holds: terminate its instances, cancel its spot requests, delete its volumes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Ec2kitError, NotFound
from ..runs import RunRecord, Runs
from .state import _Run

if TYPE_CHECKING:
    from ..context import Context


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
        remaining += terminate_instance(cloud, iid, rec.request_id, wait=bool(rec.volumes), say=run.say)
        rec.instance_stopped()
    for vol in list(rec.volumes):
        left = _delete_volume(cloud, vol)
        remaining += left
        if not left:
            rec.volumes.remove(vol)
    run.save()
    return remaining


def terminate_instance(
    cloud: Any, instance_id: str, request_id: str | None, *, wait: bool = True, say: Callable[[str], None] | None = None
) -> list[str]:
    """Cancel the request, terminate the instance; AWS throttling is waited out (``transient.patiently``)."""
    from .transient import patiently

    try:
        if request_id:
            try:
                patiently(lambda: cloud.cancel_spot_request(request_id), what=f"cancel spot request {request_id}", say=say)
            except Ec2kitError:
                pass  # already closed or gone
        try:
            patiently(lambda: cloud.terminate(instance_id), what=f"terminate {instance_id}", say=say)
        except NotFound:
            return []
        if wait:
            patiently(lambda: cloud.wait(instance_id, "terminated", timeout=300), what=f"see {instance_id} terminated", say=say)
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
        run.record.options["note"] = f"could not remove {text}; `inv cleanup` removes what is left"
        run.save()


def release_all(ctx: Context, record: RunRecord) -> list[str]:
    """Cancel every request, terminate every instance and delete every volume the run created (its record's,
    and whatever carries its ec2kit:run tag: a crash may have come before the record was written); save the record."""
    try:
        found = merged(record.created, tagged(ctx, record.name))
    except Ec2kitError:
        found = record.created
    yours = record.options.get("existing")  # `inv exec`: the user's instance is never the run's to release
    if yours:
        found = {**found, "instances": [i for i in found.get("instances", []) if i != yours]}
    remaining = release(ctx, found)
    record.instance_stopped()
    record.volumes = []
    Runs(ctx.settings.runs_db).save(record)
    return remaining


def release(ctx: Context, created: dict[str, list[str]]) -> list[str]:
    """Cancel these spot requests, terminate these instances, delete these volumes; what could not go, as hints.

    Requests first: a persistent request whose instance is terminated opens again and launches another.
    """
    cloud = ctx.cloud
    remaining: list[str] = []
    for rid in created.get("requests", []):
        try:
            cloud.cancel_spot_request(rid)
        except Exception:  # noqa: BLE001 - gone already (moto drops cancelled requests)
            pass
    for iid in created.get("instances", []):
        ctx.forget_host(iid)
        remaining += terminate_instance(cloud, iid, None, wait=bool(created.get("volumes")))  # only volumes need it gone
    for vid in created.get("volumes", []):
        remaining += _delete_volume(cloud, vid)
    return remaining


def tagged(ctx: Context, run: str) -> dict[str, list[str]]:
    """What the cloud holds for run ``run`` by its ec2kit:run tag, whatever its record says:
    live instances, open/active/disabled spot requests, volumes."""
    from ..tags import RUN_TAG

    cloud = ctx.cloud
    instances = [i.id for i in cloud.instances(states=["pending", "running", "stopping", "stopped"], tags={RUN_TAG: run})]
    reqs = [
        r
        for r in cloud.spot_requests(tag_key=RUN_TAG)
        if r.tags.get(RUN_TAG) == run and r.state in ("open", "active", "disabled")
    ]
    for iid in instances:  # a RunInstances spot request (a resumable run's) carries no tags: found by its instance
        reqs += [
            r
            for r in cloud.spot_requests(instance_id=iid)
            if r.state in ("open", "active", "disabled") and r.id not in {q.id for q in reqs}
        ]
    requests = [r.id for r in reqs]
    # a crash between fulfilment and tagging leaves an untagged instance: its request names it
    instances += [r.instance_id for r in reqs if r.instance_id and r.instance_id not in instances]
    volumes = [v.id for v in cloud.volumes() if v.tags.get(RUN_TAG) == run]
    return {"instances": instances, "requests": requests, "volumes": volumes}


def merged(*found: dict[str, list[str]]) -> dict[str, list[str]]:
    """Resource ids by kind from several sources, each once."""
    out: dict[str, list[str]] = {}
    for one in found:
        for kind, ids in one.items():
            out.setdefault(kind, [])
            out[kind] += [i for i in ids if i not in out[kind]]
    return out


def log_tail(ctx: Context, run: str, lines: int = 20) -> str:
    """The last lines of the run's local log copy."""
    path = ctx.settings.home / "runs" / run / "log"
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def results_path(record: RunRecord) -> Path:
    """Where the run's results land on this machine."""
    return Path(record.results_dir or os.path.join("runs", record.name))
