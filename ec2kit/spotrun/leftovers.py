"""What runs left behind: ``cleanup`` finds the resources tagged by a spot run that no live run owns
(and launch templates an interrupted launch left) and removes them unless asked only to list them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..runs import Runs
from ..tags import MANAGED_TAG
from .manage import refresh
from .options import RUN_TAG
from .release import release

if TYPE_CHECKING:
    from ..context import Context


@dataclass
class Leftover:
    """A cloud resource a run created that no live run owns any more (or storage nothing uses: ``inv cleanup``)."""

    kind: str
    id: str
    name: str
    reason: str
    size: int = 0  # GiB of a volume, snapshot or image (0: not storage)
    monthly: float | None = None  # USD per month it costs while kept (storage only)


def cleanup(ctx: Context, dry_run: bool = True, *, live_sweeps: Iterable[str] = ()) -> list[Leftover]:
    """Resources tagged by a spot run (ec2kit:run) whose run is not live; removed unless ``dry_run``.

    Never touches anything without a run tag: your named machines, data volumes and snapshots stay.
    ``live_sweeps``: sweeps whose process may still hand their instances new runs (a sweep's instances
    carry its name as their run tag until they take a run); the caller, above sweep/, names them.
    """
    # Settle runs whose `inv spot-run` died first: their leftovers are found by tag, whatever the record says.
    # A detached run that ended still owns its instance until `inv pull` takes the results.
    refresh(ctx, Runs(ctx.settings.runs_db).all())
    live = {r.name for r in Runs(ctx.settings.runs_db).all() if r.live or r.awaiting_pull}
    live |= set(live_sweeps)
    cloud = ctx.cloud
    found: list[Leftover] = []
    every = cloud.instances()  # live states; a spot instance is tagged only once its request is fulfilled
    untagged = {i.id: i for i in every if RUN_TAG not in i.tags and i.state not in ("terminated", "shutting-down")}
    for inst in [i for i in every if i.tags.get(MANAGED_TAG) == "1"]:
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
        if req.state in ("open", "active", "disabled") and run not in live:
            found.append(Leftover("spot-request", req.id, req.name, f"{req.state} request of run {run}"))
            if req.instance_id in untagged and not any(l.id == req.instance_id for l in found):
                found.append(Leftover("instance", req.instance_id, req.name, f"launched by a request of run {run}"))
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


__all__ = ["Leftover", "cleanup"]
