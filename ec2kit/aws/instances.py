"""Instances: find by name or id, wait for a state, start, stop, terminate, change type; spot requests."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, NotFound, Terminated, TimedOut, WrongState
from .errors import translated
from .instance_types import InstanceTypes
from .models import LIVE_STATES, Instance, SpotRequest, filters, match_instance, tag_list
from .session import AwsSession, Progress, wait_until

__all__ = ["Instances"]

States = list[str] | tuple[str, ...]
_WAITERS = {"running": "instance_running", "stopped": "instance_stopped", "terminated": "instance_terminated"}


class Instances:
    """Instance verbs over one session (the Cloud forwards ``cloud.instances()``, ``cloud.start(…)``, … here)."""

    def __init__(self, aws: AwsSession, types: InstanceTypes) -> None:
        self.aws = aws
        self.types = types

    # -- find ----------------------------------------------------------------------------
    @translated("list instances")
    def instances(self, *, states: States | None = None, tags: dict[str, str | None] | None = None) -> list[Instance]:
        """Instances in this region (default: not terminated) with these tag values (None: any value); one API call."""
        wanted = filters(
            **{"instance-state-name": list(states or LIVE_STATES)},
            **{f"tag:{k}": v for k, v in (tags or {}).items() if v is not None},
        )
        wanted += filters(**{"tag-key": [k for k, v in (tags or {}).items() if v is None] or None})
        found = [
            Instance.from_raw(r) for r in self.aws.paginate("describe_instances", "Reservations[].Instances[]", Filters=wanted)
        ]
        self.aws.saw(found, complete=states is None and not tags)
        return sorted(found, key=lambda i: (i.name, str(i.launch_time)))

    @translated("find instance {0}")
    def instance(self, name_or_id: str | Instance, *, states: States | None = None) -> Instance:
        """The instance with this Name tag or id (default: not terminated); NotFound suggests close names."""
        key = name_or_id.id if isinstance(name_or_id, Instance) else name_or_id
        try:
            return match_instance(key, self.instances(states=states))
        except NotFound:
            if states is not None:
                raise
            gone = [i for i in self.instances(states=("terminated",)) if key in (i.id, i.name)]
            if not gone:
                raise
            last = max(gone, key=lambda i: str(i.launch_time or ""))
            raise Terminated(last.label, key, hint=f"Launch a new one: inv launch {last.name or 'NAME'}") from None

    def live_instances(self) -> list[Instance]:
        """Pending and running instances: what counts against vCPU quotas (one DescribeInstances)."""
        live = filters(**{"instance-state-name": ["pending", "running"]})
        return [Instance.from_raw(r) for r in self.aws.paginate("describe_instances", "Reservations[].Instances[]", Filters=live)]

    def _refresh(self, instance: Instance) -> Instance:
        return self._describe(instance.id)[1]

    def _describe(self, instance_id: str) -> tuple[dict[str, Any], Instance]:
        response = self.aws.ec2.describe_instances(InstanceIds=[instance_id])
        inst = Instance.from_raw(response["Reservations"][0]["Instances"][0])
        self.aws.saw([inst])
        return response, inst

    # -- wait ----------------------------------------------------------------------------
    @translated("wait for instance {0}")
    def wait(self, instance: Instance | str, state: str, *, progress: Progress | None = None, timeout: float = 900) -> Instance:
        """Poll until the instance reaches ``state``; ``progress("instance base: pending (12 s)")`` on each poll.

        For running, stopped and terminated, botocore's waiter acceptors decide (a terminated
        instance never becomes running); other states are compared as they are.
        """
        inst = instance if isinstance(instance, Instance) else self.instance(instance, states=[*LIVE_STATES, "terminated"])
        waiter = _WAITERS.get(state)

        def done(polled: tuple[dict[str, Any], Instance]) -> bool:
            response, now = polled
            verdict = self.aws.waiter_verdict(waiter, response) if waiter else None
            if now.state == state or verdict == "success":
                return True
            if verdict == "failure" or (state in ("running", "stopped") and now.state in ("terminated", "shutting-down")):
                reason = now.raw.get("StateReason", {}).get("Message", "")
                raise WrongState(f"Instance {now.label} is {now.state} while waiting for it to be {state}. {reason}".strip())
            return False

        _, inst = wait_until(
            lambda: self._describe(inst.id),
            done,
            status=lambda polled: f"instance {polled[1].name or polled[1].id}: {polled[1].state}",
            timed_out=lambda polled: TimedOut(
                f"Instance {polled[1].label} is still {polled[1].state} after {timeout:.0f} s (waiting for {state}).",
                hint="Check it in the AWS console; it may still get there.",
            ),
            timeout=timeout,
            progress=progress,
        )
        return inst

    # -- lifecycle ---------------------------------------------------------------------------
    @translated("start instance {0}")
    def start(self, name: str, *, wait: bool = True, progress: Progress | None = None) -> Instance:
        """Start a stopped instance (and wait until it is running)."""
        inst = self.instance(name)
        if inst.state == "running":
            return inst
        self.aws.ec2.start_instances(InstanceIds=[inst.id])
        return self.wait(inst, "running", progress=progress) if wait else self._refresh(inst)

    @translated("stop instance {0}")
    def stop(self, name: str, *, wait: bool = True, progress: Progress | None = None) -> Instance:
        """Stop a running instance (and wait until it is stopped); spot instances cannot stop."""
        inst = self.instance(name)
        if inst.state == "stopped":
            return inst
        if inst.lifecycle == "spot":
            raise WrongState(
                f"Instance {inst.label} is a one-time spot instance, which cannot be stopped.",
                hint=f"Terminate it with `inv terminate {inst.name or inst.id}` (freeze it first to keep its disk).",
            )
        self.aws.ec2.stop_instances(InstanceIds=[inst.id])
        return self.wait(inst, "stopped", progress=progress) if wait else self._refresh(inst)

    @translated("tag {0}")
    def tag(self, resource_id: str, tags: dict[str, str]) -> None:
        """Set ``tags`` on one resource (an instance a sweep hands to its next run is renamed for it)."""
        self.aws.ec2.create_tags(Resources=[resource_id], Tags=tag_list(tags))

    @translated("set the shutdown behaviour of {0}")
    def set_shutdown_behavior(self, instance_id: str, behavior: str) -> None:
        """What ``shutdown -h now`` on the instance does: ``stop`` (disk kept) or ``terminate``
        (InstanceInitiatedShutdownBehavior; a one-time spot instance can only terminate)."""
        if behavior not in ("stop", "terminate"):
            raise ConfigError(f"Shutdown behaviour '{behavior}' is not understood.", hint="Use 'stop' or 'terminate'.")
        # The Attribute/Value form: moto reads {"InstanceInitiatedShutdownBehavior": {"Value": ...}} as a security
        # group change and empties the instance's groups; AWS takes both forms alike.
        self.aws.ec2.modify_instance_attribute(
            InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior", Value=behavior
        )

    @translated("read the shutdown behaviour of {0}")
    def shutdown_behavior(self, instance_id: str) -> str:
        """The instance's InstanceInitiatedShutdownBehavior: ``stop`` or ``terminate``."""
        found = self.aws.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior")
        return str(found.get("InstanceInitiatedShutdownBehavior", {}).get("Value") or "stop")

    @translated("terminate instance {0}")
    def terminate(self, name: str, *, wait: bool = False, progress: Progress | None = None) -> Instance:
        """Terminate an instance, cancelling its spot request first."""
        inst = self.instance(name)
        if inst.lifecycle == "spot":
            request_id = self.spot_request_for(inst)
            if request_id:
                self.aws.ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=[request_id])
        self.aws.ec2.terminate_instances(InstanceIds=[inst.id])
        return self.wait(inst, "terminated", progress=progress) if wait else self._refresh(inst)

    @translated("change the type of instance {0}")
    def change_type(self, name: str, type: str) -> Instance:
        """Change a stopped instance's type (stop it first)."""
        inst = self.instance(name)
        if inst.state != "stopped":
            raise WrongState(
                f"Instance {inst.label} is {inst.state}; its type can only change while it is stopped.",
                hint=f"Run `inv stop {inst.name or inst.id}` first.",
            )
        self.types.info(type)
        self.aws.ec2.modify_instance_attribute(InstanceId=inst.id, InstanceType={"Value": type})
        return self._refresh(inst)

    # -- spot requests -------------------------------------------------------------------------
    @translated("find the spot request of {0}")
    def spot_request_for(self, instance: Instance) -> str | None:
        """The open spot request that launched this instance (found by the instance-id filter)."""
        if instance.spot_request_id:
            return instance.spot_request_id
        live = [r for r in self.spot_requests(instance_id=instance.id) if r.state in ("open", "active")]
        return live[0].id if live else None

    @translated("list spot requests")
    def spot_requests(self, *, tag_key: str | None = None, instance_id: str | None = None) -> list[SpotRequest]:
        """Spot requests with a tag (any value) and/or for an instance (moto forgets cancelled ones)."""
        wanted = filters(**{"tag-key": tag_key, "instance-id": instance_id})
        raw = self.aws.paginate("describe_spot_instance_requests", "SpotInstanceRequests[]", Filters=wanted)
        return [SpotRequest.from_raw(r) for r in raw]

    @translated("cancel spot request {0}")
    def cancel_spot_request(self, request_id: str) -> None:
        """Cancel a spot request (the instance, if any, is not terminated by this)."""
        self.aws.ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=[request_id])
