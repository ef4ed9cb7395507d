"""The sandbox daemon's HTTP face (stdlib, loopback only): each URL and the :class:`~.control.Control` verb it calls.

Owns parsing requests, checking IMDS tokens (IMDSv2: a PUT for a token, then the token on each
GET; IMDSv2-only instances refuse a GET without one) and turning answers and failures into
replies; what the sandbox does about them lives in :mod:`.control`. The routes:

Instance metadata (IMDSv2-compatible), per instance under ``/i/<id>``::

    PUT /i/<id>/latest/api/token                      -> a session token
    GET /i/<id>/latest/meta-data/instance-id          -> i-…
    GET /i/<id>/latest/meta-data/spot/instance-action -> 404, or {"action":"terminate"|"stop","time":…}
    GET /i/<id>/latest/meta-data/tags/instance[/<key>] -> its tag keys / a tag's value, as moto has them
                                                         now; 404 unless launched with InstanceMetadataTags

Control::

    POST /poweroff/<id>          the instance shut itself down (InstanceInitiatedShutdownBehavior)
    POST /interrupt/<id>?delay=S[&restart_after=R]
                                 spot interruption notice now, then after S seconds (AWS gives 120 s;
                                 S=0: at once with no notice, as AWS may) the instance is terminated, or
                                 STOPPED when its spot request (RequestSpotInstances, CreateFleet, or
                                 RunInstances' SpotOptions) says InstanceInterruptionBehavior=stop: root
                                 disk and home kept, request "disabled"/instance-stopped-no-capacity;
                                 started again (new public IP) after R s or on /capacity-returns
    POST /capacity-returns/<id>  EC2 restarts an instance stopped by an interruption (request active)
    GET  /status                 hosts, attached volumes, endpoints
    GET  /address/<id>[?from=<id>]
                                 reconcile, then {"host","port","user"} or 404. With SSH enforcement on
                                 and no security-group rule admitting tcp/22 from the caller's IP (or from
                                 instance <from>), the port is a blackhole: connects time out as on AWS
    GET  /checkip                the caller's public IPv4 + "\n" (like https://checkip.amazonaws.com)
    GET  /account                the account's knobs (caller IP, quotas, empty pools, enforcement)
    POST /account?caller_ip=IP&enforce_ssh=0|1&enforce_quotas=0|1&quota_access=allowed|denied&boot_scripts=0|1
                 &fresh_lookups=N&snapshot_seconds=S&image_takes_volumes=0|1
                                 change any of them (only those given): N first lookups of a just-created
                                 id answer NotFound (eventual consistency); new snapshots pending S s;
                                 CreateImage maps every attached EBS volume; boot_scripts: a start runs
                                 the instance's per-boot scripts
    GET  /consistency            the lookups refused as NotFound so far ([[action, id], …])
    POST /quota/<code>?value=N[&enforce=0|1]
                                 an EC2 vCPU quota's value for GetServiceQuota, enforced on launches
                                 (RunInstances, RequestSpotInstances, CreateFleet) unless enforce=0
    POST /capacity?type=T&zone=Z[&market=spot|on-demand]&available=0|1[&interrupt_after=S]
                                 empty or refill a capacity pool; refilling fulfils waiting spot requests.
                                 interrupt_after=S: every spot instance launched into (type, zone) from
                                 now on is reclaimed S s after launch (notice min(S,120) s before);
                                 interrupt_after=-1 clears it
    POST /throttle?seconds=S[&code=C][&actions=A,B]
                                 for S s every EC2/SSM/quota API call (or only actions A, B) answers 503 C (RequestLimitExceeded);
                                 GET /throttle: seconds left, the actions refused, those answered since
    POST /reset                  wipe moto and every host, volume and image file; account knobs to defaults
    POST /shutdown               stop everything and exit
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .control import Control

__all__ = ["make_handler", "serve"]

log = logging.getLogger("ec2kit.sandbox")


def make_handler(control: Control) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``control``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ec2kit-sandbox"
        # Headers and body go out in two writes: with Nagle on, a keep-alive client's second request (curl
        # asking IMDS for two paths) waited ~40 ms for a delayed ACK. AWS's endpoints answer at once.
        disable_nagle_algorithm = True

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
                source = query.get("from", [None])[0]
                return self.reply(200, control.reachable_address(path[1], address, source))
            if path == ["throttle"]:
                from ..moto.throttle import THROTTLE

                return self.reply(200, THROTTLE.snapshot() if THROTTLE else {"error": "no throttle"})
            if path == ["consistency"]:
                from ..moto.consistency import CONSISTENCY

                return self.reply(200, CONSISTENCY.snapshot() if CONSISTENCY else {"error": "no consistency"})
            if path == ["checkip"]:
                return self.reply(200, control.account.caller_ip + "\n", "text/plain")
            if path == ["account"]:
                return self.reply(200, control.account.snapshot())
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
                restart = query.get("restart_after", [None])[0]
                notice = control.interrupt(path[1], delay, None if restart is None else float(restart))
                return self.reply(200, {"instance_id": path[1], **notice})
            if len(path) == 2 and path[0] == "capacity-returns":
                try:
                    return self.reply(200, control.capacity_returns(path[1]))
                except KeyError as err:
                    return self.reply(409, {"error": str(err.args[0])})
            if path[:1] in (["account"], ["quota"], ["capacity"]):
                return self.route_account(path, query)
            if path == ["throttle"]:
                from ..moto.throttle import THROTTLE

                if THROTTLE is None:
                    return self.reply(409, {"error": "moto runs without its throttle"})
                seconds = float(query.get("seconds", ["0"])[0])
                actions = [a for a in query.get("actions", [""])[0].split(",") if a]
                return self.reply(200, THROTTLE.start(seconds, query.get("code", ["RequestLimitExceeded"])[0], actions))
            if path == ["reset"]:
                from ..moto.throttle import THROTTLE

                if THROTTLE is not None:
                    THROTTLE.start(0)
                from ..moto.consistency import CONSISTENCY

                if CONSISTENCY is not None:
                    CONSISTENCY.reset()
                control.on_reset()
                control.notices.clear()
                control.stopped_by_interruption.clear()
                control.account.reset()
                from ..moto.aws_behaviours import MARKET_OPTIONS

                MARKET_OPTIONS.clear()
                return self.reply(200, {"reset": True})
            if path == ["shutdown"]:
                self.reply(200, {"shutdown": True})
                threading.Thread(target=control.on_shutdown, daemon=True).start()
                return
            self.reply(404, {"error": f"no route POST {self.path}"})

        def route_account(self, path: list[str], query: dict[str, list[str]]) -> None:
            from ..moto.account import QUOTAS_BY_CODE
            from ..moto.aws_behaviours import fulfil_waiting

            one = {k: v[0] for k, v in query.items()}
            account = control.account
            if path == ["account"]:
                with account.lock:
                    if "caller_ip" in one:
                        import ipaddress

                        try:
                            account.caller_ip = str(ipaddress.IPv4Address(one["caller_ip"]))
                        except ValueError:
                            return self.reply(400, {"error": f"not an IPv4 address: {one['caller_ip']!r}"})
                    if "enforce_ssh" in one:
                        account.enforce_ssh = one["enforce_ssh"] in ("1", "true")
                    if "enforce_quotas" in one:
                        account.enforce_all_quotas = one["enforce_quotas"] in ("1", "true")
                    if "quota_access" in one:
                        account.quota_access_denied = one["quota_access"] == "denied"
                    if "fresh_lookups" in one:
                        account.fresh_lookups = max(0, int(one["fresh_lookups"]))
                    if "snapshot_seconds" in one:
                        account.snapshot_seconds = max(0.0, float(one["snapshot_seconds"]))
                    if "image_takes_volumes" in one:
                        account.image_takes_volumes = one["image_takes_volumes"] in ("1", "true")
                    if "boot_scripts" in one:
                        account.boot_scripts = one["boot_scripts"] in ("1", "true")
                return self.reply(200, account.snapshot())
            if len(path) == 2 and path[0] == "quota":
                if path[1] not in QUOTAS_BY_CODE or "value" not in one:
                    return self.reply(
                        400, {"error": f"unknown EC2 quota {path[1]!r} or no value; known: {sorted(QUOTAS_BY_CODE)}"}
                    )
                account.set_quota(path[1], float(one["value"]), enforce=one.get("enforce", "1") in ("1", "true"))
                return self.reply(200, account.snapshot())
            if path == ["capacity"] and "type" in one and "zone" in one:
                available = one.get("available", "0") in ("1", "true")
                account.set_capacity(one["type"], one["zone"], available, one.get("market") or None)
                if "interrupt_after" in one:
                    after = float(one["interrupt_after"])
                    with account.lock:
                        if after < 0:
                            account.interrupt_pools.pop((one["type"], one["zone"]), None)
                        else:
                            account.interrupt_pools[(one["type"], one["zone"])] = after
                launched = fulfil_waiting() if available else []
                if launched and control.reconciler.changes is not None:
                    control.reconciler.changes.bump()  # launched inside moto, not through its HTTP front
                    control.reconciler.reconcile_if_changed()
                return self.reply(200, {**account.snapshot(), "launched": launched})
            self.reply(400, {"error": f"bad request POST {self.path}"})

    return Handler


def serve(control: Control, port: int = 0) -> ThreadingHTTPServer:
    """Bind the control server on 127.0.0.1 (free port when 0); call ``serve_forever`` in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(control))
    server.daemon_threads = True
    return server
