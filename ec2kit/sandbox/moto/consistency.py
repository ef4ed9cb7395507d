"""EC2's eventual consistency: a just-created id answers ``*.NotFound`` to its first lookups.

AWS documents it ("Eventual consistency" in the EC2 developer guide): right after RunInstances,
CreateFleet, CreateSecurityGroup, CreateVolume or CreateImage, a call naming the new id may fail
with ``InvalidInstanceID.NotFound`` (``InvalidGroup.NotFound``, ``InvalidVolume.NotFound``,
``InvalidAMIID.NotFound``) for a few seconds. moto never does. ``Consistency`` is a WSGI
middleware in front of moto that does: it learns the ids each create call answers, and the
first ``ACCOUNT.fresh_lookups`` client calls naming one of them by id (Describe* by id,
CreateTags, AuthorizeSecurityGroupIngress, AttachVolume) within ``FRESH_SECONDS`` of its
creation answer 400 NotFound, as AWS would. ``fresh_lookups=0`` turns it off
(``ec2kit.sandbox.knobs.eventual_consistency(settings, 0)``). The daemon's own calls pass.
Every refusal is logged (``refused``) so a test can assert which calls met it.

Not imitated: filter-based describes leaving a fresh resource out, and NotFound from calls that
*use* a fresh id as a parameter (RunInstances with a just-created group).
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from .account import ACCOUNT

FRESH_SECONDS = 30.0  # a fresh id is "not yet" at most this long after its creation answer
CREATES = {
    "RunInstances": re.compile(rb"<instanceId>(i-[0-9a-f]+)</instanceId>"),
    "CreateFleet": re.compile(rb"<item>(i-[0-9a-f]+)</item>"),
    "CreateSecurityGroup": re.compile(rb"<groupId>(sg-[0-9a-f]+)</groupId>"),
    "CreateVolume": re.compile(rb"<volumeId>(vol-[0-9a-f]+)</volumeId>"),
    "CreateImage": re.compile(rb"<imageId>(ami-[0-9a-f]+)</imageId>"),
}
LOOKUPS = (
    "DescribeInstances",
    "DescribeSecurityGroups",
    "DescribeVolumes",
    "DescribeImages",
    "CreateTags",
    "AuthorizeSecurityGroupIngress",
    "AttachVolume",
)
_ID_KEY = re.compile(r"(InstanceId|GroupId|VolumeId|ImageId|ResourceId)(\.\d+)?")
_ERRORS = {
    "i": ("InvalidInstanceID.NotFound", "The instance ID '{id}' does not exist"),
    "sg": ("InvalidGroup.NotFound", "The security group '{id}' does not exist"),
    "vol": ("InvalidVolume.NotFound", "The volume '{id}' does not exist."),
    "ami": ("InvalidAMIID.NotFound", "The image id '[{id}]' does not exist"),
}
_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
    "<Message>{message}</Message></Error></Errors><RequestID>consistency-{n}</RequestID></Response>"
)


class Consistency:
    """WSGI middleware: fresh ids answer NotFound to their first client lookups (see the module)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], passes: str) -> None:
        self.app, self.passes = app, passes
        self.fresh: dict[str, list[float]] = {}  # id -> [created (monotonic), lookups refused]
        self.refused: list[tuple[str, str]] = []  # (action, id) since the last reset, in order
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.fresh.clear()
            self.refused.clear()

    def snapshot(self) -> dict[str, Any]:
        """The lookups refused so far (``[[action, id], …]``) and how many ids are still fresh."""
        with self.lock:
            return {"refused": [list(r) for r in self.refused], "fresh": len(self.fresh)}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.passes in environ.get("HTTP_USER_AGENT", "") or not environ.get("CONTENT_LENGTH"):
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            params = {k: v[0] for k, v in parse_qs(body.decode("utf-8", errors="replace")).items()}
        except ValueError:
            return self.app(environ, start_response)
        action = params.get("Action", "")
        if action in LOOKUPS:
            refused = self._refuse(action, params)
            if refused:
                code, message = _ERRORS[refused.split("-", 1)[0]]
                payload = _BODY.format(code=code, message=message.format(id=refused), n=len(self.refused)).encode()
                start_response("400 Bad Request", [("Content-Type", "text/xml"), ("Content-Length", str(len(payload)))])
                return [payload]
        if action not in CREATES or ACCOUNT.fresh_lookups <= 0:
            return self.app(environ, start_response)
        answer = self.app(environ, start_response)
        data = b"".join(answer)
        if hasattr(answer, "close"):
            answer.close()
        created = CREATES[action].findall(data)
        with self.lock:
            for found in created:
                self.fresh[found.decode()] = [time.monotonic(), 0]
        return [data]

    def _refuse(self, action: str, params: dict[str, str]) -> str | None:
        """The fresh id this call must not see yet (counting the refusal), else None."""
        limit = ACCOUNT.fresh_lookups
        with self.lock:
            now = time.monotonic()
            for gone in [k for k, (created, _) in self.fresh.items() if now - created > FRESH_SECONDS]:
                del self.fresh[gone]
            for key, value in params.items():
                entry = self.fresh.get(value) if _ID_KEY.fullmatch(key) else None
                if entry is None:
                    continue
                if entry[1] >= limit:
                    del self.fresh[value]
                    continue
                entry[1] += 1
                if len(self.refused) < 2000:
                    self.refused.append((action, value))
                return value
        return None


CONSISTENCY: Consistency | None = None  # the daemon's one instance (set by MotoServer)
