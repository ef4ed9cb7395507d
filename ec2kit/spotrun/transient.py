"""AWS answers that mean "not now" (throttling, 5xx, a dropped connection): wait and retry, never give up a run.

botocore already retries each call a few times (``aws/session.py``: adaptive mode on AWS); what is
still failing after that is handled here: the follower keeps following over SSH, and the release of a
run's instance retries with a capped backoff for ``EC2KIT_RELEASE_PATIENCE`` seconds (default 600)
before it leaves the instance as a recorded leftover for ``inv cleanup``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import AwsError, Ec2kitError

T = TypeVar("T")

THROTTLED = frozenset(
    {"RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequestsException"}
)
UNAVAILABLE = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
    }
)
BACKOFF_MAX = 20.0


def transient(err: BaseException) -> bool:
    """Whether ``err`` is AWS saying "not now": throttling, a 5xx, or no connection to the endpoint."""
    if not isinstance(err, AwsError):
        return False
    code = err.code or ""
    return code in THROTTLED or code in UNAVAILABLE or (code.isdigit() and code.startswith("5"))


def why(err: Ec2kitError) -> str:
    """'throttling (RequestLimitExceeded)' or 'unavailable (InternalError)' for messages."""
    code = getattr(err, "code", "") or type(err).__name__
    return f"throttling ({code})" if code in THROTTLED else f"unavailable ({code})"


def patiently(
    call: Callable[[], T],
    *,
    what: str,
    say: Callable[[str], None] | None = None,
    patience: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``call()``, retried with a capped backoff (1 s doubling to 20 s) while AWS answers "not now".

    Gives up after ``patience`` seconds (default ``EC2KIT_RELEASE_PATIENCE``, 600) by raising the last error;
    any other error is raised at once. ``say`` hears once that AWS is throttling and what waits.
    """
    if patience is None:
        from ..settings import release_patience

        patience = float(release_patience())
    budget = patience
    started, delay, told = time.monotonic(), 1.0, False
    while True:
        try:
            return call()
        except Ec2kitError as err:
            waited = time.monotonic() - started
            if not transient(err) or waited + delay > budget:
                raise
            if say is not None and not told:
                say(f"AWS is {why(err)}; retrying to {what} for up to {budget:.0f} s")
                told = True
            sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
