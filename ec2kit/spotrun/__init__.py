"""Spot runs: run a script on a spot instance, bring every result home, survive interruptions.

Public API (what ``inv spot-run``, ``inv runs``, ``inv logs`` … call)::

    spot_run(ctx, SpotRunOptions(script="train.sh", files="data/", retries=1)) -> RunRecord
    list_runs(ctx) -> list[RunRecord]          # newest first, record.cost = cost so far
    logs(ctx, run, follow=False, out=print)
    pull(ctx, run) -> Path                     # results into runs/RUN (or --results)
    attach_argv(ctx, run) -> list[str]         # ssh -t … tmux attach -t RUN
    stop_run(ctx, run) -> RunRecord            # final pull, terminate, delete run volumes
    cleanup(ctx, dry_run=True) -> list[Leftover]

Modules: ``attempt`` (the one attempt executor: launch → prepare → follow → finish → recover) and
``strategies`` (its launch kinds: one-time, resumable, reused by a sweep), ``home`` (final pulls and what
did not come home), ``lifecycle`` (spot_run: retries, abort), ``commands`` (pure shell/wrapper builders),
``follower`` (poll + rsync), ``manage`` (the other commands), ``monitor`` (od1 mode), ``outcome`` (the end
line; the live-run guard), ``demo``.
"""

from ..runs import RunRecord
from .leftovers import Leftover, cleanup
from .lifecycle import SpotRunOptions, exec_run, spot_run
from .manage import attach_argv, find_run, list_runs, logs, pull, refresh, stop_run

__all__ = [
    "Leftover",
    "RunRecord",
    "SpotRunOptions",
    "attach_argv",
    "cleanup",
    "exec_run",
    "find_run",
    "list_runs",
    "logs",
    "pull",
    "refresh",
    "spot_run",
    "stop_run",
]
