"""What counts as AWS saying "not now", and how long ec2kit waits it out (host-free)."""

from __future__ import annotations

import pytest

from ec2kit.errors import AwsError, NotFound
from ec2kit.spotrun.transient import patiently, transient


@pytest.mark.parametrize(
    "code, expected",
    [("RequestLimitExceeded", True), ("Throttling", True), ("InternalError", True), ("503", True),
     ("EndpointConnectionError", True), ("InvalidParameterValue", False), ("InsufficientInstanceCapacity", False)],
)  # fmt: skip
def test_throttling_5xx_and_lost_connections_are_transient_and_refusals_are_not(code, expected):
    assert transient(AwsError("x", code=code)) is expected


def test_a_not_found_is_never_transient():
    assert transient(NotFound("instance", "i-1")) is False


def test_patiently_retries_while_aws_throttles_then_returns_the_answer_and_says_so_once():
    answers = [AwsError("t", code="RequestLimitExceeded")] * 3 + ["done"]
    slept: list[float] = []
    said: list[str] = []

    def call() -> str:
        got = answers.pop(0)
        if isinstance(got, Exception):
            raise got
        return got

    assert patiently(call, what="terminate i-1", say=said.append, sleep=slept.append) == "done"
    assert slept == [1.0, 2.0, 4.0]
    assert said == ["AWS is throttling (RequestLimitExceeded); retrying to terminate i-1 for up to 600 s"]


def test_patiently_raises_a_refusal_at_once_and_a_throttle_once_its_patience_is_spent():
    slept: list[float] = []

    def refused() -> None:
        raise AwsError("no", code="InvalidParameterValue")

    with pytest.raises(AwsError, match="no"):
        patiently(refused, what="x", sleep=slept.append)
    assert slept == []

    def throttled() -> None:
        raise AwsError("slow down", code="RequestLimitExceeded")

    with pytest.raises(AwsError, match="slow down"):
        patiently(throttled, what="x", patience=0.5, sleep=slept.append)
    assert slept == []  # the first wait (1 s) would already pass the 0.5 s of patience
