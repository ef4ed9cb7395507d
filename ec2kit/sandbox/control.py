"""The sandbox's control and instance-metadata HTTP server (stdlib, loopback only).

Instance metadata (IMDSv2-compatible), per instance under ``/i/<id>``::

    PUT /i/<id>/latest/api/token                      -> a session token
    GET /i/<id>/latest/meta-data/instance-id          -> i-…
    GET /i/<id>/latest/meta-data/spot/instance-action -> 404, or {"action":"terminate","time":…}

Control::

    POST /poweroff/<id>          the instance shut itself down (InstanceInitiatedShutdownBehavior)
    POST /interrupt/<id>?delay=S spot interruption notice now, termination after S seconds
                                 (AWS gives 120 s; S=0: terminated at once with no notice, as AWS may)
    GET  /status                 hosts, attached volumes, endpoints
    GET  /address/<id>           reconcile, then {"host","port","user"} or 404
    POST /reset                  wipe moto and every host, volume and image file
    POST /shutdown               stop everything and exit
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .reconciler import Reconciler

log = logging.getLogger("ec2kit.sandbox")

GONE = ("terminated", "shutting-down")


def iso_utc(when: datetime) -> str:
    """AWS's instance-action time format: ``2026-11-26T06:16:00Z``."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Control:
    """What the HTTP handler acts on: the reconciler, moto's client and spot notices."""

    def __init__(
        self,
        reconciler: Reconciler,
        ec2: Any,
        *,
        info: dict[str, Any],
        on_shutdown: Callable[[], None],
        on_reset: Callable[[], None],
    ) -> None:
        self.reconciler, self.ec2, self.info = reconciler, ec2, info
        self.on_shutdown, self.on_reset = on_shutdown, on_reset
        self.notices: dict[str, dict[str, str]] = {}
        self.tokens: set[str] = set()

    # actions -----------------------------------------------------------------
    def shutdown_behavior(self, instance_id: str) -> str:
        """terminate or stop: spot instances terminate; on-demand ones honour the attribute (default stop)."""
        instance = self.reconciler.instances.get(instance_id) or {}
        if instance.get("InstanceLifecycle") == "spot":
            return "terminate"
        attr = self.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior")
        return attr.get("InstanceInitiatedShutdownBehavior", {}).get("Value") or "stop"

    def poweroff(self, instance_id: str) -> None:
        """The instance ran `shutdown -h now`: stop or terminate it, then converge."""
        try:
            behavior = self.shutdown_behavior(instance_id)
            if behavior == "terminate":
                self.terminate(instance_id)
            else:
                self.ec2.stop_instances(InstanceIds=[instance_id])
            log.info("%s: powered itself off (%s)", instance_id, behavior)
            self.reconciler.reconcile_if_changed()
        except Exception:
            log.exception("%s: poweroff failed", instance_id)

    def terminate(self, instance_id: str) -> None:
        """Terminate as AWS does for a spot instance: its one-time request closes too.

        (moto leaves the request active; cancelling it is the nearest it has to "closed".)
        """
        self.ec2.terminate_instances(InstanceIds=[instance_id])
        try:
            found = self.ec2.describe_spot_instance_requests(Filters=[{"Name": "instance-id", "Values": [instance_id]}])
            ids = [
                r["SpotInstanceRequestId"] for r in found.get("SpotInstanceRequests", []) if r.get("State") in ("open", "active")
            ]
            if ids:
                self.ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=ids)
        except Exception:
            log.exception("%s: closing its spot request failed", instance_id)

    def interrupt(self, instance_id: str, delay: float) -> dict[str, str]:
        """Post a spot interruption notice now; terminate the instance after ``delay`` seconds
        (``delay`` <= 0: at once, with no notice)."""
        notice = {"action": "terminate", "time": iso_utc(datetime.now(timezone.utc) + timedelta(seconds=max(delay, 0)))}
        if delay <= 0:
            self.terminate(instance_id)
            log.info("%s: reclaimed with no notice", instance_id)
            self.reconciler.reconcile_if_changed()
            return {**notice, "notice": "none"}
        self.notices[instance_id] = notice

        def reclaim() -> None:
            try:
                self.terminate(instance_id)
                log.info("%s: reclaimed (spot interruption)", instance_id)
                self.reconciler.reconcile_if_changed()
            except Exception:
                log.exception("%s: spot interruption failed", instance_id)

        timer = threading.Timer(delay, reclaim)
        timer.daemon = True
        timer.start()
        log.info("%s: spot interruption scheduled in %.1fs", instance_id, delay)
        return notice

    def known(self, instance_id: str) -> dict[str, Any] | None:
        """The instance's last description, looking again once if it is new."""
        instance = self.reconciler.instances.get(instance_id)
        if instance is None:
            self.reconciler.reconcile_if_changed()
            instance = self.reconciler.instances.get(instance_id)
        return instance

    def metadata(self, instance: dict[str, Any], key: str) -> tuple[int, str, str]:
        """(status, content type, body) for ``/latest/meta-data/<key>``."""
        instance_id = instance["InstanceId"]
        if key == "spot/instance-action":
            notice = self.notices.get(instance_id)
            return (200, "application/json", json.dumps(notice)) if notice else (404, "text/plain", "Not Found")
        values = {
            "instance-id": instance_id,
            "instance-type": instance.get("InstanceType", ""),
            "ami-id": instance.get("ImageId", ""),
            "instance-life-cycle": instance.get("InstanceLifecycle", "on-demand"),
            "placement/availability-zone": instance.get("Placement", {}).get("AvailabilityZone", ""),
            "local-ipv4": instance.get("PrivateIpAddress", ""),
            "public-ipv4": instance.get("PublicIpAddress", ""),
        }
        if key in ("", "/"):
            return 200, "text/plain", "\n".join(sorted(values) + ["spot/"])
        if key in values and values[key]:
            return 200, "text/plain", values[key]
        return 404, "text/plain", "Not Found"


def make_handler(control: Control) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``control``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ec2kit-sandbox"

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("http: " + fmt, *args)

        def reply(self, status: int, body: str | dict | list, ctype: str = "application/json") -> None:
            data = (json.dumps(body) if isinstance(body, (dict, list)) else body).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def parts(self) -> tuple[list[str], dict[str, list[str]]]:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            return [p for p in url.path.split("/") if p], parse_qs(url.query)

        def handle_safely(self, route: Callable[[list[str], dict[str, list[str]]], None]) -> None:
            try:
                path, query = self.parts()
                route(path, query)
            except Exception as err:
                log.exception("http %s %s failed", self.command, self.path)
                self.reply(500, {"error": f"{type(err).__name__}: {err}"})

        def do_GET(self) -> None:
            self.handle_safely(self.route_get)

        def do_PUT(self) -> None:
            self.handle_safely(self.route_put)

        def do_POST(self) -> None:
            self.handle_safely(self.route_post)

        # routes ---------------------------------------------------------------
        def route_get(self, path: list[str], query: dict[str, list[str]]) -> None:
            if path == ["status"]:
                return self.reply(200, {**control.info, **control.reconciler.status()})
            if len(path) == 2 and path[0] == "address":
                control.reconciler.reconcile_if_changed()
                address = control.reconciler.address(path[1])
                if address is None:
                    instance = control.reconciler.instances.get(path[1])
                    state = instance["State"]["Name"] if instance else "unknown"
                    return self.reply(404, {"error": f"{path[1]} has no running sshd", "state": state})
                return self.reply(200, address)
            if len(path) >= 4 and path[0] == "i" and path[2:4] == ["latest", "meta-data"]:
                token = self.headers.get("X-aws-ec2-metadata-token")
                if token is not None and token not in control.tokens:
                    return self.reply(401, "Unauthorized", "text/plain")
                instance = control.known(path[1])
                if instance is None:
                    return self.reply(404, "Not Found", "text/plain")
                if token is None and instance.get("MetadataOptions", {}).get("HttpTokens") == "required":
                    return self.reply(401, "Unauthorized", "text/plain")  # IMDSv2 only, as the launch asked
                status, ctype, body = control.metadata(instance, "/".join(path[4:]))
                return self.reply(status, body, ctype)
            self.reply(404, {"error": f"no route GET {self.path}"})

        def route_put(self, path: list[str], query: dict[str, list[str]]) -> None:
            if len(path) == 5 and path[0] == "i" and path[2:] == ["latest", "api", "token"]:
                token = secrets.token_urlsafe(24)
                control.tokens.add(token)
                return self.reply(200, token, "text/plain")
            self.reply(404, {"error": f"no route PUT {self.path}"})

        def route_post(self, path: list[str], query: dict[str, list[str]]) -> None:
            if len(path) == 2 and path[0] == "poweroff":
                # Reply first: the caller runs on the instance that is about to go away.
                self.reply(200, {"instance_id": path[1], "action": "poweroff"})
                threading.Thread(target=control.poweroff, args=(path[1],), daemon=True).start()
                return
            if len(path) == 2 and path[0] == "interrupt":
                if control.known(path[1]) is None:
                    return self.reply(404, {"error": f"no instance {path[1]}"})
                delay = float(query.get("delay", ["120"])[0])
                return self.reply(200, {"instance_id": path[1], **control.interrupt(path[1], delay)})
            if path == ["reset"]:
                control.on_reset()
                control.notices.clear()
                return self.reply(200, {"reset": True})
            if path == ["shutdown"]:
                self.reply(200, {"shutdown": True})
                threading.Thread(target=control.on_shutdown, daemon=True).start()
                return
            self.reply(404, {"error": f"no route POST {self.path}"})

    return Handler


def serve(control: Control, port: int = 0) -> ThreadingHTTPServer:
    """Bind the control server on 127.0.0.1 (free port when 0); call ``serve_forever`` in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(control))
    server.daemon_threads = True
    return server
