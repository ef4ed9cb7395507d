"""The sandbox's control and instance-metadata HTTP server (stdlib, loopback only).

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
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..moto.account import ACCOUNT, Account
from .reach import Blackhole, ssh_allowed
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
        self.account: Account = ACCOUNT
        self.blackhole: Blackhole | None = None
        self.stopped_by_interruption: set[str] = set()
        self.account.on_spot_launch = self.interrupt_later

    # actions -----------------------------------------------------------------
    def shutdown_behavior(self, instance_id: str) -> str:
        """terminate or stop: spot instances terminate, unless their request asked to be stopped when
        interrupted; those and on-demand ones honour the attribute (default stop)."""
        instance = self.reconciler.instances.get(instance_id) or {}
        if instance.get("InstanceLifecycle") == "spot" and self.interruption_behavior(instance_id) != "stop":
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
            state_reason(instance_id, "Client.InstanceInitiatedShutdown", "Instance initiated shutdown")
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

    def spot_request(self, instance_id: str) -> Any:
        """moto's spot request object that launched ``instance_id`` (None if none)."""
        from ..moto.limits import ec2_backend

        for request in ec2_backend().spot_instance_requests.values():
            if request.instance is not None and request.instance.id == instance_id:
                return request
        return None

    def interruption_behavior(self, instance_id: str) -> str:
        """terminate or stop, as the instance's spot request (or RunInstances' SpotOptions) asked."""
        from ..moto.aws_behaviours import MARKET_OPTIONS

        request = self.spot_request(instance_id)
        if request is not None:
            return request.instance_interruption_behaviour or "terminate"
        spot = (MARKET_OPTIONS.get(instance_id) or {}).get("SpotOptions") or {}
        return spot.get("InstanceInterruptionBehavior") or "terminate"

    def interrupt(self, instance_id: str, delay: float, restart_after: float | None = None) -> dict[str, str]:
        """Post a spot interruption notice now; after ``delay`` seconds terminate the instance, or
        stop it when it asked for ``InstanceInterruptionBehavior=stop`` (``delay`` <= 0: at once,
        with no notice). A stopped one starts again after ``restart_after`` s (None: on
        :meth:`capacity_returns`)."""
        action = "stop" if self.interruption_behavior(instance_id) == "stop" else "terminate"
        notice = {"action": action, "time": iso_utc(datetime.now(timezone.utc) + timedelta(seconds=max(delay, 0)))}

        def reclaim() -> None:
            try:
                if action == "stop":
                    self.stop_for_interruption(instance_id, restart_after)
                else:
                    self.terminate(instance_id)
                state_reason(instance_id, "Server.SpotInstanceTermination", "Spot instance termination")
                log.info("%s: reclaimed (spot interruption, %s)", instance_id, action)
                self.reconciler.reconcile_if_changed()
            except Exception:
                log.exception("%s: spot interruption failed", instance_id)

        if delay <= 0:
            reclaim()
            return {**notice, "notice": "none"}
        self.notices[instance_id] = notice
        timer = threading.Timer(delay, reclaim)
        timer.daemon = True
        timer.start()
        log.info("%s: spot interruption (%s) scheduled in %.1fs", instance_id, action, delay)
        return notice

    def interrupt_later(self, instance_id: str, after: float) -> None:
        """A spot instance landed in a pool that interrupts: notice after ``after`` s (at most
        AWS's 120 s before the end), reclaimed ``after`` s after launch plus the notice."""
        notice = min(120.0, max(after, 0.0))
        timer = threading.Timer(max(after - notice, 0.0), self.interrupt, args=(instance_id, notice))
        timer.daemon = True
        timer.start()

    def stop_for_interruption(self, instance_id: str, restart_after: float | None) -> None:
        """Stop as AWS does for InstanceInterruptionBehavior=stop: disk kept, request disabled."""
        self.ec2.stop_instances(InstanceIds=[instance_id])
        self.notices.pop(instance_id, None)
        self.stopped_by_interruption.add(instance_id)
        request = self.spot_request(instance_id)
        if request is not None:
            request.state, request._status_code = "disabled", "instance-stopped-no-capacity"
            request.status_message = "Your Spot Instance was stopped because there is no more capacity available."
        if restart_after is not None:
            timer = threading.Timer(max(restart_after, 0.0), self.capacity_returns, args=(instance_id,))
            timer.daemon = True
            timer.start()

    def capacity_returns(self, instance_id: str) -> dict[str, Any]:
        """EC2 restarts an instance it stopped for an interruption: running again, new public IP."""
        if instance_id not in self.stopped_by_interruption:
            raise KeyError(f"{instance_id} was not stopped by a spot interruption")
        self.stopped_by_interruption.discard(instance_id)
        self.ec2.start_instances(InstanceIds=[instance_id])
        request = self.spot_request(instance_id)
        if request is not None:
            request.state, request._status_code, request.status_message = "active", "fulfilled", ""
        log.info("%s: capacity returned, started again", instance_id)
        self.reconciler.reconcile_if_changed()
        return {"instance_id": instance_id, "state": "running"}

    def reachable_address(self, instance_id: str, address: dict[str, Any], source_id: str | None) -> dict[str, Any]:
        """``address``, or the blackhole when security groups keep the caller (or ``source_id``) out, or
        when the caller is outside the VPC and the instance has no public IPv4 (AWS: only its private
        address answers, from inside)."""
        instance = self.reconciler.instances.get(instance_id) or {}
        if source_id is None and not instance.get("PublicIpAddress") and instance.get("PrivateIpAddress"):
            if self.blackhole is None:
                self.blackhole = Blackhole()
            log.info("%s: no public IPv4, so only its private address answers (from inside its VPC)", instance_id)
            return {**address, "port": self.blackhole.port, "filtered": True}
        if not self.account.enforce_ssh:
            return address
        # AWS lists the primary interface's groups as the instance's; moto keeps a launch's interface groups apart
        interfaces = [g for nic in instance.get("NetworkInterfaces", []) for g in nic.get("Groups", [])]
        group_ids = list(
            dict.fromkeys(g["GroupId"] for g in [*instance.get("SecurityGroups", []), *interfaces] if g.get("GroupId"))
        )
        groups = self.ec2.describe_security_groups(GroupIds=group_ids)["SecurityGroups"] if group_ids else []
        if source_id:
            source = self.known(source_id)
            allowed = source is not None and ssh_allowed(groups, source=source)
        else:
            allowed = ssh_allowed(groups, caller_ip=self.account.caller_ip)
        if allowed:
            return address
        if self.blackhole is None:
            self.blackhole = Blackhole()
        log.info("%s: SSH from %s not allowed by its security groups", instance_id, source_id or self.account.caller_ip)
        return {**address, "port": self.blackhole.port, "filtered": True}

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
        if key.startswith("tags/instance"):
            return _tags_in_metadata(self, instance_id, key[len("tags/instance") :].strip("/"))
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


def _tags_in_metadata(control: Control, instance_id: str, key: str) -> tuple[int, str, str]:
    """``tags/instance[/<key>]`` as AWS serves it: the current tags (a rename made a moment ago shows:
    any change to moto is reconciled first, nothing is described when none happened), or 404 when
    the instance's metadata options do not include tags."""
    control.reconciler.reconcile_if_changed()
    instance = control.reconciler.instances.get(instance_id) or {}
    if instance.get("MetadataOptions", {}).get("InstanceMetadataTags") != "enabled":
        return 404, "text/plain", "Not Found"
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    if not key:
        return 200, "text/plain", "\n".join(sorted(tags))
    return (200, "text/plain", tags[key]) if key in tags else (404, "text/plain", "Not Found")


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


def state_reason(instance_id: str, code: str, message: str) -> None:
    """Give the instance the StateReason EC2 gives this ending (moto says Client.UserInitiatedShutdown for all):
    an interruption is Server.SpotInstanceTermination, a poweroff Client.InstanceInitiatedShutdown."""
    from moto.ec2.models.instances import StateReason

    from ..moto.limits import ec2_backend

    try:
        instance = ec2_backend().get_instance(instance_id)
    except Exception:  # noqa: BLE001 - gone from moto already: nothing to mark
        return
    instance.state_reason = StateReason(f"{code}: {message}", code)
