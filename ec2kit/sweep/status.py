"""What a sweep's runs are doing (one row each, from the run records), and releasing its instances.

Shared by the driver (its live table and its clean-up) and by the commands that look at a sweep
later (`inv sweep-status`, `inv sweeps` settling one, `inv stop-run SWEEP`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..runs import Runs
from ..spotrun.attempt import spot_request_of
from ..tags import RUN_TAG, SWEEP_TAG
from .plan import Item
from .records import SweepRecord
from .summary import Row, latest_metrics

if TYPE_CHECKING:
    from ..context import Context


def sweep_rows(ctx: Context, record: SweepRecord, items: dict[str, Item] | None = None) -> list[Row]:
    """One row per run of ``record``, in grid order: its record's state, instance, time, cost and latest metrics."""
    runs = Runs(ctx.settings.runs_db)
    by_name = {r.name: r for r in runs.all() if r.options.get("sweep") == record.name}
    rows = []
    for entry in record.runs:
        rec = by_name.get(entry["name"])
        item = (items or {}).get(entry["name"])
        if rec is None:
            state = (
                item.outcome if item and item.outcome else (item.status if item else entry.get("outcome") or "queued")
            ) or "queued"
            rows.append(Row(entry["name"], entry["settings"], state))
            continue
        state = rec.state
        if item is not None and item.outcome in ("skipped", "cancelled") and not rec.live and state == "interrupted":
            state = "interrupted"
        rows.append(
            Row(
                rec.name,
                entry["settings"],
                state,
                instance=(rec.instance_id or "") if rec.live else "",
                instance_type=rec.instance_type or "",
                attempt=rec.attempt,
                exit_code=rec.exit_code,
                elapsed=rec.duration,
                cost=rec.cost,
                metrics=latest_metrics(rec.results_dir),
            )
        )
    return rows


def release_sweep(ctx: Context, sweep: str, *, keep: set[str] | None = None) -> list[str]:
    """Terminate every live instance tagged ec2kit:sweep=SWEEP (but those serving a run in ``keep``), cancel their
    spot requests; returns what could not be removed."""
    from ..spotrun.release import release

    instances = ctx.cloud.instances(states=["pending", "running", "stopping", "stopped"], tags={SWEEP_TAG: sweep})
    ids = [i.id for i in instances if i.tags.get(RUN_TAG) not in (keep or set())]
    requests = [r for i in instances if i.id in ids for r in [spot_request_of(i)] if r]
    return release(ctx, {"instances": ids, "requests": requests}) if ids else []
