"""The one line a spot-run or a sweep ends with (state, results path, duration, cost), and its exit code,
and the guard that asks before ``inv terminate/stop/change-type`` touches a live run's instance."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from ..errors import WrongState

if TYPE_CHECKING:
    from ..context import Context
    from ..runs import RunRecord


def duration_text(seconds: float | None) -> str:
    """``1h 02m``, ``3m 05s``, ``12s``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = int(max(seconds, 0))
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"


def cost_text(cost: float | None) -> str:
    """``$0.0123`` (``cost unknown`` when the price is not known)."""
    return "cost unknown" if cost is None else f"${cost:.4f}"


def outcome_line(record: RunRecord) -> str:
    """``RUN succeeded · results in PATH · 3m 05s · $0.0012``: what the run came to, in one line.

    A run whose final pull failed says so (its instance keeps the results) and how to get them.
    """
    since = record.created_at
    took = (record.ended_at or time.time()) - since
    parts = [f"results in {record.results_dir}", duration_text(took), cost_text(record.cost)]
    if record.options.get("not_home") and record.live:
        ended = "" if record.exit_code is None else f"ended (exit code {record.exit_code}) but "
        state = (
            f"{ended}its results are NOT home: its instance keeps them, `inv pull {record.name}` brings them "
            f"(`inv runs` says why)"
        )
    elif record.options.get("detach") and record.live:
        state = f"{record.state} (detached: `inv pull {record.name}` brings its results)"
    else:
        state = record.state + (f" (exit code {record.exit_code})" if record.exit_code not in (None, 0) else "")
    return f"{record.name} {state} · " + " · ".join(parts)


def outcome_code(record: RunRecord, *, detach: bool = False) -> int:
    """The exit code that goes with it: 0 for succeeded (or a detached run under way), 3 otherwise."""
    if record.state == "succeeded":
        return 0
    if detach and record.live and not record.options.get("orphaned"):
        return 0
    return 3


def outcome_error(record: RunRecord) -> str:
    """The one-paragraph error a run that did not succeed exits with."""
    if record.options.get("not_home") and record.live:
        return (
            f"run {record.name}'s results are not all home; its instance keeps them. `inv pull {record.name}` brings "
            f"them home (`inv runs` says what went wrong)."
        )
    code = f" (exit code {record.exit_code})" if record.exit_code is not None else ""
    return f"run {record.name} ended {record.state}{code}."


def sweep_outcome_line(record: Any) -> str:
    """``SWEEP succeeded · 6 runs: 5 succeeded, 1 failed · results in PATH · 4m 10s · $0.0300``."""
    outcomes: dict[str, int] = {}
    for run in record.runs:
        key = run.get("outcome") or "not run"
        outcomes[key] = outcomes.get(key, 0) + 1
    counts = ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items(), key=lambda kv: -kv[1]))
    created = getattr(record, "created_at", None)
    took = None if created is None else (record.ended_at or time.time()) - created
    return (
        f"{record.name} {record.state} · {len(record.runs)} runs: {counts} · results in {record.results_dir} · "
        f"{duration_text(took)} · {cost_text(record.spent)}"
    )


def live_run_of(ctx: Context, name_or_id: str) -> tuple[RunRecord, str] | None:
    """The live run (and the instance id) holding instance ``name_or_id``, if any (from the run records and the
    instance's ``ec2kit:run`` tag; one DescribeInstances)."""
    from ..errors import Ec2kitError
    from ..runs import Runs
    from ..tags import RUN_TAG

    try:
        inst = ctx.cloud.instance(name_or_id)
    except Ec2kitError:
        return None  # the task itself says what is wrong with the name
    runs = Runs(ctx.settings.runs_db)
    for record in runs.live():
        if record.instance_id == inst.id or record.name == inst.tags.get(RUN_TAG):
            return record, inst.id
    return None


def confirm_instance_action(ctx: Context, name_or_id: str, verb: str, *, yes: bool = False) -> None:
    """Before ``inv terminate/stop/change-type``: an instance that belongs to a live run is touched only when asked.

    With ``yes`` (or a yes at the prompt) the run's record says it ends by your hand, so the run does not take
    it for a spot interruption and launches no replacement; with no terminal and no ``--yes`` it refuses.
    """
    from ..runs import Runs

    found = live_run_of(ctx, name_or_id)
    if found is None:
        return
    record, instance_id = found
    what = f"Instance {instance_id} belongs to the live run {record.name} ({record.state})"
    if not yes:
        if not sys.stdin.isatty():
            raise WrongState(
                f"{what}; `{verb}` would end it.",
                hint=f"`inv stop-run {record.name}` ends the run and brings its results home; add --yes to {verb} it anyway.",
            )
        answer = input(f"{what}. {verb.capitalize()} it anyway (the run ends, no replacement)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise WrongState(f"{verb.capitalize()} of {instance_id} not done: it belongs to run {record.name}.")
    done = {"terminate": "terminated", "stop": "stopped"}.get(verb, f"given another type ({verb})")
    record.options["ended_by_you"] = f"{done} by you (`inv {verb} {name_or_id}`)"
    Runs(ctx.settings.runs_db).save(record)
