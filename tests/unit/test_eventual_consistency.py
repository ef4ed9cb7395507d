"""How ec2kit reads ``*.NotFound`` of a just-created id: "not yet", for a bounded time (pure)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from ec2kit.aws.session import eventually, not_yet, wait_until
from ec2kit.errors import TimedOut


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "DescribeInstances")


def _answers(*outcomes):
    """A call that raises or returns each outcome in turn, counting its calls."""
    left = list(outcomes)
    calls = []

    def call():
        calls.append(1)
        now = left.pop(0)
        if isinstance(now, Exception):
            raise now
        return now

    return call, calls


def test_not_found_codes_mean_not_yet_and_others_do_not():
    assert not_yet(_error("InvalidInstanceID.NotFound")) and not_yet(_error("InvalidGroup.NotFound"))
    assert not not_yet(_error("IncorrectState")) and not not_yet(ValueError("x"))


def test_eventually_retries_not_found_until_the_id_answers():
    call, calls = _answers(_error("InvalidVolume.NotFound"), _error("InvalidVolume.NotFound"), "attached")
    assert eventually(call, grace=5) == "attached" and len(calls) == 3


def test_eventually_raises_another_error_at_once():
    call, calls = _answers(_error("IncorrectState"), "never")
    with pytest.raises(ClientError):
        eventually(call, grace=5)
    assert len(calls) == 1


def test_eventually_gives_up_with_the_not_found_after_its_grace():
    call, calls = _answers(*[_error("InvalidGroup.NotFound")] * 50)
    with pytest.raises(ClientError) as caught:
        eventually(call, grace=0.3)
    assert caught.value.response["Error"]["Code"] == "InvalidGroup.NotFound" and 1 < len(calls) < 50


def test_wait_until_reports_a_new_id_as_not_visible_yet_then_waits_for_its_state():
    fetch, _ = _answers(_error("InvalidInstanceID.NotFound"), "pending", "running")
    lines: list[str] = []
    got = wait_until(fetch, lambda s: s == "running", status=str, timed_out=TimedOut, timeout=10, progress=lines.append)
    assert got == "running"
    assert lines[0].startswith("just created, not visible yet") and lines[1].startswith("pending")


def test_wait_until_raises_not_found_once_its_fresh_time_is_over():
    fetch, calls = _answers(*[_error("InvalidInstanceID.NotFound")] * 50)
    with pytest.raises(ClientError):
        wait_until(fetch, bool, status=str, timed_out=TimedOut, timeout=10, fresh=0.3)
    assert 1 < len(calls) < 50
