"""What ec2kit shows of EC2: instances, images, volumes, snapshots, and finding one by name.

Plain dataclasses built from describe_* responses with ``from_raw``; no AWS calls here.
The tag names ec2kit puts on what it creates live in ``ec2kit.tags`` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ..errors import ConfigError, NotFound
from ..tags import LAUNCH_TAG, MANAGED_TAG, SOURCE_INSTANCE_TAG, SPOT_REQUEST_TAG

__all__ = [
    "CANONICAL_OWNER",
    "LAUNCH_TAG",
    "LIVE_STATES",
    "MANAGED_TAG",
    "SECURITY_GROUP",
    "SOURCE_INSTANCE_TAG",
    "SPOT_REQUEST_TAG",
    "Image",
    "Instance",
    "Snapshot",
    "SpotRequest",
    "Volume",
    "filters",
    "label",
    "match_instance",
    "pick",
    "tag_list",
    "tags_of",
]

SECURITY_GROUP = "ec2kit-ssh"
CANONICAL_OWNER = "099720109477"
LIVE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")

Raw = dict[str, Any]


def tags_of(raw: Raw) -> dict[str, str]:
    """``Tags`` of a describe_* item as a dict."""
    return {t["Key"]: t["Value"] for t in raw.get("Tags") or []}


def tag_list(tags: dict[str, Any]) -> list[dict[str, str]]:
    """A dict as EC2's ``[{"Key": …, "Value": …}]``."""
    return [{"Key": k, "Value": str(v)} for k, v in tags.items()]


def filters(**values: Any) -> list[dict[str, Any]]:
    """``filters(**{"tag:Name": "x"})`` → EC2 Filters (lists pass through, None is skipped)."""
    return [
        {"Name": k, "Values": list(v) if isinstance(v, (list, tuple)) else [str(v)]} for k, v in values.items() if v is not None
    ]


@dataclass
class Instance:
    """One EC2 instance, as ec2kit shows it."""

    id: str
    name: str
    type: str
    state: str
    lifecycle: str
    public_ip: str | None
    private_ip: str | None
    launch_time: Any
    zone: str
    image_id: str
    key_name: str | None
    tags: dict[str, str] = field(default_factory=dict)
    spot_request_id: str | None = None
    hourly_price: float | None = None  # USD/hour obtained at launch (spot price of its pool), when known
    raw: Raw = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        """Name and id, for messages: ``base (i-0abc…)``."""
        return f"{self.name} ({self.id})" if self.name else self.id

    @classmethod
    def from_raw(cls, raw: Raw) -> Instance:
        """From one item of describe_instances' ``Reservations[].Instances[]``."""
        tags = tags_of(raw)
        return cls(
            id=raw["InstanceId"],
            name=tags.get("Name", ""),
            type=raw.get("InstanceType", ""),
            state=raw.get("State", {}).get("Name", ""),
            lifecycle=raw.get("InstanceLifecycle") or "on-demand",
            public_ip=raw.get("PublicIpAddress") or None,
            private_ip=raw.get("PrivateIpAddress") or None,
            launch_time=raw.get("LaunchTime"),
            zone=raw.get("Placement", {}).get("AvailabilityZone", ""),
            image_id=raw.get("ImageId", ""),
            key_name=raw.get("KeyName"),
            tags=tags,
            spot_request_id=raw.get("SpotInstanceRequestId") or None,
            raw=raw,
        )


@dataclass
class Image:
    """An AMI."""

    id: str
    name: str
    state: str
    creation_date: str
    snapshot_ids: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    raw: Raw = field(default_factory=dict, repr=False)

    @classmethod
    def from_raw(cls, raw: Raw) -> Image:
        """From one item of describe_images' ``Images``."""
        tags = tags_of(raw)
        snaps = [b["Ebs"]["SnapshotId"] for b in raw.get("BlockDeviceMappings") or [] if b.get("Ebs", {}).get("SnapshotId")]
        return cls(
            id=raw["ImageId"],
            name=raw.get("Name") or tags.get("Name", ""),
            state=raw.get("State", ""),
            creation_date=raw.get("CreationDate", ""),
            snapshot_ids=snaps,
            tags=tags,
            raw=raw,
        )


@dataclass
class Volume:
    """An EBS volume."""

    id: str
    name: str
    size: int
    state: str
    zone: str
    attached_to: str | None
    device: str | None
    snapshot_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    attachment_state: str | None = None  # attaching | attached | busy | detaching
    volume_type: str = ""  # gp3, gp2, io2, …

    @classmethod
    def from_raw(cls, raw: Raw) -> Volume:
        """From one item of describe_volumes' ``Volumes`` (the live attachment, if any)."""
        tags = tags_of(raw)
        att = next(
            (a for a in raw.get("Attachments") or [] if a.get("State") in ("attaching", "attached", "busy", "detaching")),
            None,
        )
        return cls(
            id=raw["VolumeId"],
            name=tags.get("Name", ""),
            size=raw.get("Size", 0),
            state=raw.get("State", ""),
            zone=raw.get("AvailabilityZone", ""),
            attached_to=att["InstanceId"] if att else None,
            device=att["Device"] if att else None,
            snapshot_id=raw.get("SnapshotId") or None,
            tags=tags,
            attachment_state=att.get("State") if att else None,
            volume_type=raw.get("VolumeType", ""),
        )


@dataclass
class Snapshot:
    """An EBS snapshot."""

    id: str
    name: str
    state: str
    progress: str
    size: int
    volume_id: str | None
    start_time: Any
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Raw) -> Snapshot:
        """From one item of describe_snapshots' ``Snapshots`` (or create_snapshot's answer)."""
        tags = tags_of(raw)
        return cls(
            id=raw["SnapshotId"],
            name=tags.get("Name", ""),
            state=raw.get("State", ""),
            progress=raw.get("Progress", ""),
            size=raw.get("VolumeSize", 0),
            volume_id=raw.get("VolumeId") or None,
            start_time=raw.get("StartTime"),
            tags=tags,
        )


@dataclass
class SpotRequest:
    """A spot instance request."""

    id: str
    state: str  # open | active | closed | cancelled | failed
    status: str  # e.g. fulfilled, capacity-not-available, price-too-low
    message: str
    instance_id: str | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Its Name tag."""
        return self.tags.get("Name", "")

    @classmethod
    def from_raw(cls, raw: Raw) -> SpotRequest:
        """From one item of describe_spot_instance_requests' ``SpotInstanceRequests``."""
        status = raw.get("Status") or {}
        return cls(
            id=raw["SpotInstanceRequestId"],
            state=raw.get("State", ""),
            status=status.get("Code", ""),
            message=status.get("Message", ""),
            instance_id=raw.get("InstanceId") or None,
            tags=tags_of(raw),
        )


def label(thing: object) -> str:
    """How a message names a model or plan: its name, else its id (anything else: ``str``)."""
    name, id_ = getattr(thing, "name", None), getattr(thing, "id", None)
    if isinstance(name, str) and (name or isinstance(id_, str)):
        return name or str(id_)
    return str(thing)


class Named(Protocol):
    """Anything with an id and a Name tag."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=Named)


def pick(kind: str, key: str, items: Sequence[N], listing: str, *, label: Callable[[N], str] = lambda x: x.id) -> N:
    """The one of ``items`` with id or Name ``key``; a shared name is refused, NotFound suggests close names."""
    by_id = [x for x in items if x.id == key]
    if by_id:
        return by_id[0]
    named = [x for x in items if x.name == key]
    if len(named) == 1:
        return named[0]
    if named:
        raise ConfigError(
            f"{len(named)} {kind}s are named '{key}': {', '.join(label(x) for x in named)}.",
            hint=f"Use the {kind} id instead, or rename one (change its Name tag).",
        )
    raise NotFound(kind, key, [x.name for x in items if x.name], hint=f"List them with `{listing}`.")


def match_instance(key: str, candidates: Sequence[Instance]) -> Instance:
    """The one of ``candidates`` with id or Name tag ``key`` (see :func:`pick`)."""
    return pick("instance", key, candidates, "inv instances", label=lambda i: f"{i.id} ({i.state})")
