"""What the sandbox daemon does when asked over HTTP: spot interruptions, poweroffs, reachability, metadata.

:class:`Control` owns the state behind the control and instance-metadata endpoints (spot notices,
IMDS tokens, instances stopped by an interruption, the account's knobs) and the actions on moto
and the reconciler: a poweroff honouring InstanceInitiatedShutdownBehavior, a spot interruption
(terminate, or stop and restart when capacity returns), the address a caller may reach (the
blackhole when security groups keep it out), the metadata of one instance. The HTTP server, its
routes and their parameters are in :mod:`.routes`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from ..moto.account import ACCOUNT, Account
from .reach import Blackhole, ssh_allowed
from .reconciler import Reconciler

log = logging.getLogger("ec2kit.sandbox")


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
