"""Follow an attempt: poll and pull until the script ends, the instance goes, or someone stops the run."""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import Ec2kitError, NotFound, RemoteError
from .prepare import _host
from .state import _Run
from .transient import transient, why


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
    """Rate-limited checks while following: stopped by `inv stop-run`? instance gone?

    EC2 answering "not now" (throttling, a 5xx) is no reason to end a run the follower sees running
    over SSH: the check is skipped (said once per episode) and made again at the next turn.
    """

    def __init__(self, run: _Run, db_every: float = 2.0, cloud_every: float | None = None) -> None:
        if cloud_every is None:  # 30 s at the default 1 s poll; faster polls (tests) ask EC2 more often
            cloud_every = min(30.0, max(3.0, 30 * float(run.options.poll_interval or 1.0)))
        self.run, self.db_every, self.cloud_every = run, db_every, cloud_every
        self.next_db = self.next_cloud = time.monotonic() + db_every
        self.reason = ""
        self.unanswered_since: float | None = None  # EC2 has been answering "not now" since (monotonic)

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
            try:
                gone = _instance_gone(self.run)
            except Ec2kitError as err:
                if not transient(err):
                    raise
                self._not_now(err, now)
                return False
            if self.unanswered_since is not None:
                self.run.say(
                    f"{self.run.record.name}: EC2 answers again after {now - self.unanswered_since:.0f} s "
                    "(the run went on meanwhile)"
                )
                self.unanswered_since = None
            if gone:
                self.reason = "lost"
                return True
        return False

    def _not_now(self, err: Ec2kitError, now: float) -> None:
        if self.unanswered_since is None:
            self.unanswered_since = now
            self.run.say(
                f"{self.run.record.name}: EC2 is {why(err)}; the script runs (SSH says so), so the run goes on "
                "and EC2 is asked again later"
            )


OUTAGE_BACKOFF_MAX = 30.0  # seconds between reconnection attempts, at most
DISK_FULL = "disk-full"  # the wrapper's status "why" when it stopped the script for a full disk
NO_DATA_VOLUME = "no-data-volume"  # ... when a restarted instance's data volume could not be mounted again


def no_data_volume_note(run: str, mountpoint: str) -> str:
    """What a resumable run says when its instance restarted without its data volume (the script was not resumed)."""
    return (
        f"the instance restarted but its data volume could not be mounted again at {mountpoint}, so the script was "
        f"not resumed on an empty directory; `inv pull {run}` brings what it wrote, `inv logs {run}` says why"
    )


def disk_full_note(results_dir: str, disk: int | None = None) -> str:
    """What a run stopped for a full instance disk says (its log has the wrapper's line with the numbers)."""
    bigger = f"a --disk above {disk} GiB" if disk else "a bigger --disk"
    return (
        f"the instance's disk is full: the script was stopped and what it wrote was pulled into {results_dir}; "
        f"run again with {bigger} (its log shows where it filled up)"
    )


def _ec2_state(run: _Run) -> str | None:
    """What EC2 says of the run's instance ('running', 'gone', …), or None when EC2 cannot be asked either."""
    try:
        return "gone" if _instance_gone(run) else "running"
    except Ec2kitError:
        return None


def _follow(run: _Run) -> str:
    """Follow until the script ends; returns its final state, 'lost' (instance or wrapper gone) or 'cancelled'.

    A link outage never ends a healthy run: while EC2 says the instance runs, reconnect with a
    capped backoff and say so (the wrapper keeps the results; it waits for the final pull).
    """
    from ..errors import TimedOut

    assert run.follower is not None and run.instance is not None
    iid, name = run.instance.id, run.record.name
    watch = _Watch(run)
    delay = 1.0

    def contact() -> None:
        nonlocal delay
        if run.outage_since is not None:
            run.say(
                f"{name}: contact with {iid} is back after {time.monotonic() - run.outage_since:.0f} s; following the run again"
            )
            run.outage_since, delay = None, 1.0

    run.follower.contact = contact
    while True:
        try:
            status = run.follower.follow(should_stop=watch)
            if watch.reason:
                return watch.reason
            if status.get("why") == DISK_FULL:
                run.record.options["note"] = disk_full_note(run.record.results_dir, run.options.disk)
                run.say(f"{name}: {run.record.options['note']}")
            return status.get("state", "lost")
        except (RemoteError, TimedOut):
            if run.cancelled:
                return "cancelled"
            ec2 = _ec2_state(run)
            if ec2 == "gone":
                return "lost"
            now = time.monotonic()
            if run.outage_since is None:
                run.outage_since = now
            said = "EC2 says it is running" if ec2 == "running" else "EC2 cannot be reached either"
            run.say(f"{name}: lost contact with {iid} for {now - run.outage_since:.0f} s; {said}; retrying in {delay:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, OUTAGE_BACKOFF_MAX)
            run.ctx.forget_host(iid)
            try:
                run.follower.host = _host(run)
            except Ec2kitError:
                pass  # the next poll fails the same way and we come back here


def _final_push_or_pull(run: _Run) -> None:
    """Monitor mode: the last push to the monitor; if it fails, pull here so nothing is lost."""
    from .monitor import final_push

    try:
        final_push(_host(run), run.record.name)
    except RemoteError as err:
        run.say(f"{run.record.name}: {err} Pulling the results to {run.record.results_dir} instead.")
        if run.follower is not None:
            run.follower.results = Path(run.record.results_dir)
