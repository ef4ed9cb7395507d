"""moto's EC2 server on loopback, counting the requests that change something.

The same server as moto's ``ThreadedMotoServer`` (its werkzeug app in a
thread) wrapped in a small WSGI middleware: every request that is not a
``Describe*``/``Get*`` call bumps a generation counter and wakes the
reconciler, so it converges right after a change instead of re-describing
everything several times a second (a full pass costs 0.1-0.4 s of CPU on a
busy 2-core machine).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

READ_ONLY_PREFIXES = ("Describe", "Get", "List")
DAEMON_AGENT = "ec2kit-sandbox-daemon"  # user_agent_extra of the daemon's own boto3 client: not logged


def action_of(body: bytes) -> str:
    """The EC2 query-protocol ``Action`` of a request body ('' when absent)."""
    try:
        return parse_qs(body.decode("utf-8", errors="replace")).get("Action", [""])[0]
    except ValueError:
        return ""


class ChangeCounter:
    """WSGI middleware: ``generation`` grows after every state-changing request; ``event`` is set."""

    def __init__(self, app: Callable[..., Iterable[bytes]], request_log: Path | None = None) -> None:
        self.app = app
        self.request_log = request_log
        self.generation = 0
        self.event = threading.Event()
        self._lock = threading.Lock()

    def bump(self) -> None:
        with self._lock:
            self.generation += 1
        self.event.set()

    def log(self, action: str) -> None:
        """Append ``action`` to the request log (one line; the file is only ever appended to)."""
        assert self.request_log is not None
        with self._lock, self.request_log.open("a") as out:
            out.write(action.replace("\n", " ") + "\n")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        changes = environ.get("REQUEST_METHOD") not in ("GET", "HEAD")
        action = ""
        if changes and environ.get("CONTENT_LENGTH"):
            body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
            environ["wsgi.input"] = io.BytesIO(body)
            action = action_of(body)
            target = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
            changes = not (action or target).startswith(READ_ONLY_PREFIXES)
        if self.request_log is not None and DAEMON_AGENT not in environ.get("HTTP_USER_AGENT", ""):
            self.log(action or environ.get("HTTP_X_AMZ_TARGET") or environ.get("PATH_INFO", ""))
        result = self.app(environ, start_response)  # moto applies the change while building the response
        if changes:
            self.bump()
        return result


class MotoServer:
    """moto's server app on 127.0.0.1:port in a daemon thread, with a ChangeCounter in front."""

    def __init__(self, port: int, request_log: Path | None = None) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        from . import consistency, throttle
        from .pricelist import PriceList

        # the Pricing API stand-in answers on moto's port (moto has none), so `pricing` shares EC2's endpoint URL
        self.changes = ChangeCounter(PriceList(DomainDispatcherApplication(create_backend_app)), request_log)
        consistency.CONSISTENCY = self.consistency = consistency.Consistency(self.changes, DAEMON_AGENT)
        throttle.THROTTLE = self.throttle = throttle.Throttle(
            self.consistency, DAEMON_AGENT
        )  # answers 503 while a test asks it to
        self.server = make_server("127.0.0.1", port, self.throttle, threaded=True)
        self.port = port
        self.thread = threading.Thread(target=self.server.serve_forever, name="moto", daemon=True)

    def start(self) -> MotoServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)
