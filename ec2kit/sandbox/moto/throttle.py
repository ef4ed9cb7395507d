"""EC2 throttling on demand: for N seconds every API call (or only some actions) answers 503 ``RequestLimitExceeded``.

AWS throttles an account's API calls when they come too fast (or when its control plane is busy),
per action bucket (e.g. ``TerminateInstances`` apart from the describes); botocore retries a few
times, then the caller sees the error. ``actions=`` limits a window to those actions. ``Throttle`` is a WSGI middleware in
front of moto that does the same for a window a test opens (``POST /throttle?seconds=N`` on the
control server, ``ec2kit.sandbox.knobs.throttle(settings, N)``). The daemon's own calls (the reconciler,
interruptions: AWS's side of the account) carry ``passes`` (motoserver's DAEMON_AGENT) in their User-Agent and pass.
Every refused call is logged by action, so a test can assert which calls met the throttle.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
    "<Message>Request limit exceeded.</Message></Error></Errors><RequestID>{rid}</RequestID></Response>"
)


class Throttle:
    """WSGI middleware: while a window is open, answer every client call with 503 and ``code``."""

    def __init__(self, app: Callable[..., Iterable[bytes]], passes: str) -> None:
        self.app, self.passes = app, passes  # a User-Agent mark that is never throttled (the daemon's own calls)
        self.until = 0.0  # monotonic end of the window
        self.code = "RequestLimitExceeded"
        self.actions: frozenset[str] = frozenset()  # empty: every action
        self.refused: list[str] = []  # actions refused since the last start/reset, in order
        self.passed_after: list[str] = []  # client actions answered since the last window opened
        self.lock = threading.Lock()

    def start(self, seconds: float, code: str = "RequestLimitExceeded", actions: Iterable[str] = ()) -> dict[str, Any]:
        """Open a window of ``seconds`` (0 closes it) from now, for ``actions`` only (none: all); the logs start afresh."""
        with self.lock:
            self.until = time.monotonic() + max(0.0, seconds)
            self.code = code or "RequestLimitExceeded"
            self.actions = frozenset(a for a in actions if a)
            self.refused, self.passed_after = [], []
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        """Seconds left in the window, the refused actions, the client actions answered since it opened."""
        with self.lock:
            left = max(0.0, self.until - time.monotonic())
            return {
                "left": round(left, 3),
                "code": self.code,
                "actions": sorted(self.actions),
                "refused": list(self.refused),
                "passed": list(self.passed_after),
            }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.passes in environ.get("HTTP_USER_AGENT", "") or environ.get("PATH_INFO", "").startswith("/moto-api"):
            return self.app(environ, start_response)
        body = b""
        if environ.get("CONTENT_LENGTH"):
            body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
            environ["wsgi.input"] = io.BytesIO(body)
        action = _action(environ, body)
        with self.lock:
            closed = time.monotonic() >= self.until or bool(self.actions and action not in self.actions)
            seen = self.passed_after if closed else self.refused
            if len(seen) < 2000:
                seen.append(action)
            code = self.code
        if closed:
            return self.app(environ, start_response)
        if environ.get("HTTP_X_AMZ_TARGET"):  # a JSON-protocol service (the Pricing API, SSM, …) answers in JSON
            payload = json.dumps({"__type": code, "message": "Request limit exceeded."}).encode()
            kind = "application/x-amz-json-1.1"
        else:
            payload = _BODY.format(code=code, rid=f"throttle-{len(self.refused)}").encode()
            kind = "text/xml"
        start_response("503 Service Unavailable", [("Content-Type", kind), ("Content-Length", str(len(payload)))])
        return [payload]


def _action(environ: dict[str, Any], body: bytes) -> str:
    """The query-protocol Action (EC2), or the JSON target (SSM, Service Quotas), or the path."""
    try:
        found = parse_qs(body.decode("utf-8", errors="replace")).get("Action", [""])[0]
    except ValueError:
        found = ""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    return found or target.rsplit(".", 1)[-1] or environ.get("PATH_INFO", "")


THROTTLE: Throttle | None = None  # the daemon's one instance (set by MotoServer)
