"""The local copy of a run's log: bounded, whatever the script prints."""

from __future__ import annotations


def test_the_local_copy_of_a_runs_log_stops_at_its_limit_and_says_so_once(tmp_path):
    from ec2kit.spotrun.follower import append_regular

    log = tmp_path / "runs" / "r1" / "log"
    append_regular(log, "0123456789\n", limit=16)
    append_regular(log, "abcdefghij\n", limit=16)  # crosses the limit: 5 bytes fit, then the notice
    append_regular(log, "more and more output\n", limit=16)  # past it: nothing
    data = log.read_bytes()
    assert data.startswith(b"0123456789\nabcde\n[ec2kit: this copy of the log stops at 16 bytes")
    assert data.count(b"[ec2kit:") == 1 and b"more" not in data
