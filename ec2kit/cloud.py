"""EC2 through boto3: find things by name, launch, wait, freeze, volumes, snapshots.

Knows nothing of SSH beyond building an :class:`~ec2kit.remote.SshTarget`.
Every public :class:`Cloud` method translates botocore errors into
:mod:`ec2kit.errors` classes through :func:`translate_client_error`.

    cloud = Cloud(Settings.from_env())
    cloud.launch("base", disk=60, type="m5.xlarge")
    cloud.freeze("base")
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import (
    AlreadyExists,
    AwsError,
    ConfigError,
    CredentialsError,
    Ec2kitError,
    NotFound,
    TimedOut,
    WrongState,
)
from .regions import REGION_NAMES, find_region

if TYPE_CHECKING:
    from .settings import Settings
    from .ssh.target import SshTarget

__all__ = [
    "Cloud",
    "Instance",
    "Image",
    "Volume",
    "Snapshot",
    "translate_client_error",
    "find_region",
    "REGION_NAMES",
    "MANAGED_TAG",
    "SECURITY_GROUP",
    "CANONICAL_OWNER",
]

MANAGED_TAG = "ec2kit:managed"
SOURCE_INSTANCE_TAG = "ec2kit:source-instance"
LAUNCH_TAG = "ec2kit:launch"
SPOT_REQUEST_TAG = "ec2kit:spot-request"
SECURITY_GROUP = "ec2kit-ssh"
CANONICAL_OWNER = "099720109477"
UBUNTU_PATTERNS = (
    "ubuntu/images/*ubuntu-*-24.04-amd64-server-*",
    "ubuntu/images/*ubuntu-*-22.04-amd64-server-*",
)
LIVE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")
Progress = Callable[[str], None]
F = TypeVar("F", bound=Callable[..., Any])


# ----------------------------------------------------------------------------- data
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
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        """Name and id, for messages: ``base (i-0abc…)``."""
        return f"{self.name} ({self.id})" if self.name else self.id


@dataclass
class Image:
    """An AMI."""

    id: str
    name: str
    state: str
    creation_date: str
    snapshot_ids: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False)


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


def _tags(raw: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw.get("Tags") or []}


def _instance(raw: dict) -> Instance:
    tags = _tags(raw)
    return Instance(
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


def _image(raw: dict) -> Image:
    tags = _tags(raw)
    snaps = [b["Ebs"]["SnapshotId"] for b in raw.get("BlockDeviceMappings") or [] if b.get("Ebs", {}).get("SnapshotId")]
    return Image(
        id=raw["ImageId"],
        name=raw.get("Name") or tags.get("Name", ""),
        state=raw.get("State", ""),
        creation_date=raw.get("CreationDate", ""),
        snapshot_ids=snaps,
        tags=tags,
        raw=raw,
    )


def _volume(raw: dict) -> Volume:
    tags = _tags(raw)
    att = next(
        (a for a in raw.get("Attachments") or [] if a.get("State") in ("attaching", "attached", "busy", "detaching")), None
    )
    return Volume(
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
    )


def _snapshot(raw: dict) -> Snapshot:
    tags = _tags(raw)
    return Snapshot(
        id=raw["SnapshotId"],
        name=tags.get("Name", ""),
        state=raw.get("State", ""),
        progress=raw.get("Progress", ""),
        size=raw.get("VolumeSize", 0),
        volume_id=raw.get("VolumeId") or None,
        start_time=raw.get("StartTime"),
        tags=tags,
    )


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": str(v)} for k, v in tags.items()]


def _polls(timeout: float, *, first: float = 0.2, factor: float = 2.0, cap: float = 5.0) -> Iterator[float]:
    """Yield the seconds elapsed, sleeping with capped exponential backoff in between, until ``timeout``.

    Every bounded wait in this module is ``for elapsed in _polls(...)``, then
    ``raise TimedOut`` after the loop.
    """
    started, delay = time.monotonic(), first
    while (elapsed := time.monotonic() - started) <= timeout:
        yield elapsed
        time.sleep(delay)
        delay = min(delay * factor, cap)


def _filters(**values: Any) -> list[dict]:
    """``_filters(**{"tag:Name": "x"})`` → EC2 Filters (lists pass through, None is skipped)."""
    return [
        {"Name": k, "Values": list(v) if isinstance(v, (list, tuple)) else [str(v)]} for k, v in values.items() if v is not None
    ]


# ----------------------------------------------------------------------------- errors
_QUOTA_PAGES = {
    "MaxSpotInstanceCountExceeded": "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests",
    "VcpuLimitExceeded": "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
    "InstanceLimitExceeded": "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
}
_NOT_FOUND_KINDS = {
    "InvalidInstanceID": "instance",
    "InvalidAMIID": "image",
    "InvalidVolume": "volume",
    "InvalidSnapshot": "snapshot",
    "InvalidKeyPair": "key pair",
    "InvalidGroup": "security group",
    "InvalidSpotInstanceRequestID": "spot request",
}
_ID_RE = re.compile(r"\b(?:i|ami|vol|snap|sg|sir)-[0-9a-f]+\b")


def _is_aws_exception(err: BaseException) -> bool:
    return type(err).__module__.startswith(("botocore", "boto3"))


def translate_client_error(err: BaseException, *, action: str) -> Ec2kitError | None:
    """Turn a botocore error into an Ec2kitError saying what happened and what to do.

    ``action`` is what ec2kit was doing ("launch instance base"). Returns None for
    ``DryRunOperation``: that "error" means the call would have succeeded.
    """
    kind = type(err).__name__
    if kind in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return CredentialsError(
            f"No usable AWS credentials were found to {action}.",
            hint="Run `aws configure` (or set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), "
            "or try ec2kit without an account with EC2KIT_SANDBOX=1.",
        )
    if kind == "ProfileNotFound":
        return ConfigError(
            f"{err}.", hint="Check AWS_PROFILE / --profile against ~/.aws/config, or run `aws configure --profile NAME`."
        )
    if kind in ("TokenRetrievalError", "SSOTokenLoadError", "UnauthorizedSSOTokenError"):
        return CredentialsError(
            f"Your AWS login has expired, so ec2kit cannot {action}.", hint="Run `aws sso login` and try again."
        )
    if kind == "ParamValidationError":
        return ConfigError(
            f"A value ec2kit would send to AWS to {action} is invalid: {err}", hint="Check the names, sizes and types you gave."
        )
    if kind == "NoRegionError":
        return ConfigError(f"No AWS region is configured to {action}.", hint="Set AWS_REGION (e.g. us-east-1) or pass --region.")
    if kind in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
        return AwsError(
            f"Could not reach AWS to {action}: {err}.",
            code=kind,
            hint="Check your network connection and the region; if you use the local sandbox, check it is running.",
        )
    if kind == "WaiterError":
        last = getattr(err, "last_response", None) or {}
        if "Error" in last:
            return _translate_code(last["Error"].get("Code", ""), last["Error"].get("Message", ""), action)
        return TimedOut(
            f"Gave up waiting to {action}: {getattr(err, 'reason', err)}.",
            hint="Check the resource in the AWS console and retry.",
        )
    response = getattr(err, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return _translate_code(response["Error"].get("Code", ""), response["Error"].get("Message", ""), action)
    return AwsError(f"AWS call failed while trying to {action}: {err}", code=kind)


def _translate_code(code: str, message: str, action: str) -> Ec2kitError | None:
    said = f" AWS said: {message}" if message else ""
    if code == "DryRunOperation":
        return None
    if code in (
        "AuthFailure",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "MissingAuthenticationToken",
    ):
        return CredentialsError(
            f"AWS did not accept your credentials when trying to {action} ({code}).{said}",
            hint="Check the access key with `aws sts get-caller-identity` and the region; run `aws configure` if they are wrong.",
        )
    if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
        return CredentialsError(
            f"Your AWS credentials or session have expired, so ec2kit cannot {action} ({code}).",
            hint="Refresh them (`aws sso login`, or new temporary keys) and check your clock is right.",
        )
    if code in ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException"):
        hint = "Ask your AWS administrator for the EC2 permission this needs, or use another profile (AWS_PROFILE)."
        encoded = re.search(r"Encoded authorization failure message:\s*(\S+)", message or "")
        if encoded:
            hint += (
                " To see exactly which permission is missing, run: "
                f"aws sts decode-authorization-message --encoded-message {encoded.group(1)}"
            )
        return CredentialsError(f"Your AWS identity is not allowed to {action} ({code}).", hint=hint)
    if code in ("InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientCapacity"):
        return AwsError(
            f"AWS has no spare capacity right now to {action}.{said}",
            code=code,
            hint="Try another instance type (--type) or availability zone (--zone), or retry in a few minutes.",
        )
    if code in _QUOTA_PAGES:
        return AwsError(
            f"Your account's quota does not allow you to {action} ({code}).{said}",
            code=code,
            hint="Stop or terminate instances you do not need, or request a higher quota in the AWS console: "
            f"Service Quotas > Amazon Elastic Compute Cloud (Amazon EC2) > '{_QUOTA_PAGES[code]}'.",
        )
    if code == "SpotMaxPriceTooLow":
        return AwsError(
            f"Your maximum spot price is below the current spot price, so AWS will not {action}.{said}",
            code=code,
            hint="Raise --max-price (see `inv prices FAMILY`) or leave it out to pay up to the on-demand price.",
        )
    if code in ("IncorrectInstanceState", "IncorrectState", "IncorrectSpotRequestState", "VolumeInUse"):
        return WrongState(
            f"Cannot {action}: the resource is in the wrong state ({code}).{said}",
            hint="Check its state with `inv instances` / `inv volumes` and retry when it is ready.",
        )
    prefix = code.split(".")[0]
    if prefix in _NOT_FOUND_KINDS and (code.endswith("NotFound") or code.endswith("Malformed") or prefix == "InvalidAMIID"):
        kind = _NOT_FOUND_KINDS[prefix]
        ids = _ID_RE.findall(message or "")
        return NotFound(
            kind,
            ids[0] if ids else message or "?",
            hint=f"AWS does not know it ({code}) while trying to {action}; list what exists with `inv {kind.split()[0]}s`.",
        )
    if code in (
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "InvalidParameter",
        "MissingParameter",
        "InvalidInstanceType",
        "Unsupported",
    ):
        return AwsError(
            f"AWS rejected a parameter when trying to {action} ({code}).{said}",
            code=code,
            hint="Check the instance type, zone, image and sizes you gave.",
        )
    if code.endswith(".Duplicate"):
        return AlreadyExists(
            f"Cannot {action}: it already exists ({code}).{said}", hint="Use the existing one or pick another name."
        )
    if code == "OptInRequired":
        return ConfigError(
            f"Your AWS account is not enabled for this region or service, so ec2kit cannot {action}.{said}",
            hint="Enable the region under Account > AWS Regions in the console, or use another region (--region).",
        )
    if code == "PendingVerification":
        return AwsError(
            f"AWS is still verifying your new account, so ec2kit cannot {action}.{said}",
            code=code,
            hint="This usually takes minutes to a few hours; AWS emails you when it is done.",
        )
    if code in ("RequestLimitExceeded", "Throttling", "ThrottlingException"):
        return AwsError(f"AWS is throttling requests, so ec2kit could not {action}.", code=code, hint="Wait a minute and retry.")
    return AwsError(f"AWS refused to {action} ({code or 'unknown error'}).{said}", code=code)


def _translated(action: str) -> Callable[[F], F]:
    """Decorator: translate botocore errors raised by a Cloud method (``action`` may use {0} = first arg)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(self: Cloud, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except Ec2kitError:
                raise
            except Exception as err:
                if not _is_aws_exception(err):
                    raise
                subject = args[0] if args else kwargs.get("name")
                if isinstance(subject, (Instance, Image, Volume, Snapshot)):
                    subject = subject.name or subject.id
                what = action.format(subject) if subject is not None else action.replace(" {0}", "")
                translated = translate_client_error(err, action=what)
                if translated is None:
                    raise
                raise translated from err

        return wrapper  # type: ignore[return-value]

    return wrap


def _size_key(instance_type: str) -> tuple:
    """Sort key for instance types: family, then nano < … < large < xlarge < 2xlarge < … < metal."""
    family, _, size = instance_type.partition(".")
    order = ["nano", "micro", "small", "medium", "large", "xlarge"]
    if size in order:
        rank = order.index(size)
    elif size.endswith("xlarge") and size[:-6].isdigit():
        rank = len(order) + int(size[:-6])
    elif size.startswith("metal"):
        rank = 10_000
    else:
        rank = 5_000
    return (family, rank, size)


# ----------------------------------------------------------------------------- cloud
class Cloud:
    """EC2 in one region, through one boto3 session.

    ``endpoint_url`` points the client at the sandbox (moto); ``resolver`` maps an
    instance to its SSH address there. ``credentials`` is a dict of
    ``aws_access_key_id`` / ``aws_secret_access_key`` (/ ``aws_session_token``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        endpoint_url: str | None = None,
        resolver: Any = None,
        credentials: dict | None = None,
        region: str | None = None,
    ) -> None:
        self.settings = settings
        self.endpoint_url = endpoint_url
        self.resolver = resolver
        self._credentials = dict(credentials or {})
        self._region = region or settings.region
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._type_cache: dict[str, dict] = {}

    # -- connection ------------------------------------------------------------
    @property
    def session(self) -> Any:
        """The boto3 Session (profile from settings unless explicit credentials were given)."""
        if self._session is None:
            import boto3

            kwargs: dict[str, Any] = dict(self._credentials)
            if not kwargs and self.settings.profile:
                kwargs["profile_name"] = self.settings.profile
            if self._region:
                kwargs["region_name"] = self._region
            self._session = boto3.Session(**kwargs)
        return self._session

    @property
    def region(self) -> str:
        """settings.region, else the profile's region, else us-east-1."""
        if not self._region:
            self._region = self.session.region_name or "us-east-1"
        return self._region

    def client(self, service: str) -> Any:
        """A cached boto3 client for ``service`` in this region (sandbox endpoint for ec2)."""
        if service not in self._clients:
            from botocore.config import Config

            endpoint = self.endpoint_url if service == "ec2" else None
            self._clients[service] = self.session.client(
                service,
                region_name=self.region,
                endpoint_url=endpoint,
                config=Config(
                    retries={"max_attempts": 2 if endpoint else 5, "mode": "standard"},  # sandbox: fail fast
                    connect_timeout=10,
                    read_timeout=60,
                ),
            )
        return self._clients[service]

    @property
    def ec2(self) -> Any:
        """The boto3 EC2 client (created on first use)."""
        return self.client("ec2")

    # -- instances ---------------------------------------------------------------
    @_translated("list instances")
    def instances(self, *, states: list[str] | tuple[str, ...] | None = None, tags: dict | None = None) -> list[Instance]:
        """Instances in this region (default: not terminated) with these tag values (None: any value); one API call."""
        filters = _filters(
            **{"instance-state-name": list(states or LIVE_STATES)},
            **{f"tag:{k}": v for k, v in (tags or {}).items() if v is not None},
        )
        filters += _filters(**{"tag-key": [k for k, v in (tags or {}).items() if v is None] or None})
        found: list[Instance] = []
        kwargs: dict[str, Any] = {"Filters": filters}
        while True:
            page = self.ec2.describe_instances(**kwargs)
            found += [_instance(r) for res in page.get("Reservations", []) for r in res.get("Instances", [])]
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        return sorted(found, key=lambda i: (i.name, str(i.launch_time)))

    @_translated("find instance {0}")
    def instance(self, name_or_id: str | Instance, *, states: list[str] | tuple[str, ...] | None = None) -> Instance:
        """The instance with this Name tag or id (default: not terminated); NotFound suggests close names."""
        key = name_or_id.id if isinstance(name_or_id, Instance) else name_or_id
        return match_instance(key, self.instances(states=states))

    def _refresh(self, instance: Instance) -> Instance:
        page = self.ec2.describe_instances(InstanceIds=[instance.id])
        return _instance(page["Reservations"][0]["Instances"][0])

    @_translated("wait for instance {0}")
    def wait(self, instance: Instance | str, state: str, *, progress: Progress | None = None, timeout: float = 900) -> Instance:
        """Poll until the instance reaches ``state``; ``progress("base: pending (12 s)")`` on each poll."""
        inst = instance if isinstance(instance, Instance) else self.instance(instance, states=list(LIVE_STATES) + ["terminated"])
        for elapsed in _polls(timeout):
            inst = self._refresh(inst)
            if inst.state == state:
                return inst
            if state in ("running", "stopped") and inst.state in ("terminated", "shutting-down"):
                reason = inst.raw.get("StateReason", {}).get("Message", "")
                raise WrongState(f"Instance {inst.label} is {inst.state} while waiting for it to be {state}. {reason}".strip())
            if progress:
                progress(f"instance {inst.name or inst.id}: {inst.state} ({elapsed:.0f} s)")
        raise TimedOut(
            f"Instance {inst.label} is still {inst.state} after {timeout:.0f} s (waiting for {state}).",
            hint="Check it in the AWS console; it may still get there.",
        )

    # -- images ------------------------------------------------------------------
    @_translated("list images")
    def images(self) -> list[Image]:
        """Your own images (Owners=self), newest first."""
        raw = self.ec2.describe_images(Owners=["self"]).get("Images", [])
        return sorted((_image(r) for r in raw), key=lambda i: i.creation_date, reverse=True)

    @_translated("find image {0}")
    def image(self, name_or_id: str) -> Image:
        """An image by id (any owner, validated with AWS) or by name / Name tag among yours."""
        if re.fullmatch(r"ami-[0-9a-f]+", name_or_id):
            raw = self.ec2.describe_images(ImageIds=[name_or_id]).get("Images", [])
            if raw:
                return _image(raw[0])
            raise NotFound("image", name_or_id, hint="List your images with `inv images`.")
        mine = self.images()
        named = [i for i in mine if i.name == name_or_id or i.tags.get("Name") == name_or_id]
        if named:
            return named[0]  # newest first
        raise NotFound("image", name_or_id, [i.name for i in mine if i.name], hint="List your images with `inv images`.")

    @_translated("find the latest Ubuntu LTS image")
    def default_image(self) -> Image:
        """The newest Canonical Ubuntu 24.04 amd64 server image (falling back to 22.04)."""
        for pattern in UBUNTU_PATTERNS:
            raw = self.ec2.describe_images(Owners=[CANONICAL_OWNER], Filters=_filters(name=pattern, state="available")).get(
                "Images", []
            )
            if raw:
                return _image(max(raw, key=lambda r: r.get("CreationDate", "")))
        raise NotFound(
            "image",
            "Ubuntu 24.04 LTS (Canonical)",
            hint=f"No Canonical Ubuntu LTS image is visible in {self.region}; pass an image name or id with --image.",
        )

    # -- volumes & snapshots -------------------------------------------------------
    @_translated("list volumes")
    def volumes(self) -> list[Volume]:
        """All EBS volumes in this region."""
        found: list[Volume] = []
        kwargs: dict[str, Any] = {}
        while True:
            page = self.ec2.describe_volumes(**kwargs)
            found += [_volume(v) for v in page.get("Volumes", [])]
            if not page.get("NextToken"):
                return sorted(found, key=lambda v: (v.name, v.id))
            kwargs["NextToken"] = page["NextToken"]

    @_translated("find volume {0}")
    def volume(self, name_or_id: str | Volume) -> Volume:
        """A volume by Name tag or id."""
        key = name_or_id.id if isinstance(name_or_id, Volume) else name_or_id
        return pick("volume", key, self.volumes(), "inv volumes")

    @_translated("list snapshots")
    def snapshots(self) -> list[Snapshot]:
        """Your snapshots that ec2kit made (tagged ec2kit:managed), newest first."""
        found: list[Snapshot] = []
        kwargs: dict[str, Any] = {"OwnerIds": ["self"], "Filters": _filters(**{"tag-key": MANAGED_TAG})}
        while True:
            page = self.ec2.describe_snapshots(**kwargs)
            found += [_snapshot(s) for s in page.get("Snapshots", [])]
            if not page.get("NextToken"):
                return sorted(found, key=lambda s: str(s.start_time), reverse=True)
            kwargs["NextToken"] = page["NextToken"]

    @_translated("find snapshot {0}")
    def snapshot(self, name_or_id: str) -> Snapshot:
        """A snapshot by Name tag (ec2kit's, newest wins) or by id (any of yours)."""
        if re.fullmatch(r"snap-[0-9a-f]+", name_or_id):
            raw = self.ec2.describe_snapshots(SnapshotIds=[name_or_id]).get("Snapshots", [])
            if raw:
                return _snapshot(raw[0])
            raise NotFound("snapshot", name_or_id, hint="List snapshots with `inv snapshots`.")
        mine = self.snapshots()
        named = [s for s in mine if s.name == name_or_id]
        if named:
            return named[0]
        raise NotFound("snapshot", name_or_id, [s.name for s in mine if s.name], hint="List snapshots with `inv snapshots`.")

    # -- key pair and security group ----------------------------------------------
    @_translated("set up the EC2 key pair")
    def ensure_key_pair(self) -> Path:
        """Make sure the local ed25519 key exists and AWS knows its public half; returns the key file.

        The private key is generated here (``ssh-keygen``) and never leaves this machine.
        """
        key_file, name = self.settings.key_file, self.settings.key_name
        pairs = self.ec2.describe_key_pairs(Filters=_filters(**{"key-name": name})).get("KeyPairs", [])
        if not key_file.exists():
            if pairs:
                raise ConfigError(
                    f"AWS already has a key pair named '{name}', but its private key is not at {key_file}.",
                    hint=f"Copy that private key to {key_file} (mode 600), or choose another key pair name with EC2KIT_KEY_NAME.",
                )
            _generate_key(key_file)
        public = _public_key(key_file)
        if pairs and not _same_key(pairs[0].get("KeyFingerprint", ""), public):
            raise ConfigError(
                f"The key pair '{name}' in AWS ({self.region}) does not match your local key {key_file}.",
                hint=f"Use the private key that belongs to it, delete the AWS key pair (`aws ec2 delete-key-pair --key-name {name}`) "
                "so ec2kit imports yours, or choose another key pair name with EC2KIT_KEY_NAME.",
            )
        if not pairs:
            self.ec2.import_key_pair(
                KeyName=name,
                PublicKeyMaterial=public.encode(),
                TagSpecifications=[{"ResourceType": "key-pair", "Tags": _tag_list({MANAGED_TAG: "1", "Name": name})}],
            )
        return key_file

    def ssh_cidr(self, *, open_ssh: bool = False) -> str:
        """Where SSH may come from: EC2KIT_SSH_CIDR, loopback for the sandbox, or 0.0.0.0/0 if asked."""
        configured = os.environ.get("EC2KIT_SSH_CIDR", "").strip()
        if configured:
            try:
                return str(ipaddress.ip_network(configured, strict=False))
            except ValueError:
                raise ConfigError(
                    f"EC2KIT_SSH_CIDR={configured!r} is not an address range.",
                    hint="Use your public address with a prefix, e.g. 203.0.113.7/32.",
                ) from None
        if self.endpoint_url:
            return "127.0.0.1/32"
        if open_ssh:
            return "0.0.0.0/0"
        raise ConfigError(
            "ec2kit does not know your public IP address, so it cannot limit SSH access to it.",
            hint="Set EC2KIT_SSH_CIDR to your address (e.g. 203.0.113.7/32; search 'what is my ip'), "
            "or explicitly allow SSH from anywhere with --open-ssh.",
        )

    @_translated("set up the ec2kit-ssh security group")
    def ensure_security_group(self, *, open_ssh: bool = False) -> str:
        """The id of security group ``ec2kit-ssh`` in the default VPC, allowing tcp/22 from :meth:`ssh_cidr`."""
        cidr = self.ssh_cidr(open_ssh=open_ssh)
        vpcs = self.ec2.describe_vpcs(Filters=_filters(isDefault="true")).get("Vpcs", [])
        if not vpcs:
            raise ConfigError(
                f"Region {self.region} has no default VPC, which ec2kit launches into.",
                hint="Create one with `aws ec2 create-default-vpc`, or use another region.",
            )
        vpc_id = vpcs[0]["VpcId"]
        groups = self.ec2.describe_security_groups(Filters=_filters(**{"group-name": SECURITY_GROUP, "vpc-id": vpc_id})).get(
            "SecurityGroups", []
        )
        if groups:
            group = groups[0]
        else:
            gid = self.ec2.create_security_group(
                GroupName=SECURITY_GROUP,
                Description="SSH to ec2kit instances",
                VpcId=vpc_id,
                TagSpecifications=[
                    {"ResourceType": "security-group", "Tags": _tag_list({MANAGED_TAG: "1", "Name": SECURITY_GROUP})}
                ],
            )["GroupId"]
            group = {"GroupId": gid, "IpPermissions": []}
        if not _allows_ssh(group.get("IpPermissions", []), cidr):
            try:
                self.ec2.authorize_security_group_ingress(
                    GroupId=group["GroupId"],
                    IpPermissions=[
                        {
                            "IpProtocol": "tcp",
                            "FromPort": 22,
                            "ToPort": 22,
                            "IpRanges": [{"CidrIp": cidr, "Description": "ec2kit ssh"}],
                        }
                    ],
                )
            except Exception as err:  # a concurrent ec2kit may have added it
                if "Duplicate" not in str(getattr(err, "response", {}).get("Error", {}).get("Code", "")):
                    raise
        gid = group["GroupId"]
        if not any(
            pair.get("GroupId") == gid for perm in group.get("IpPermissions", []) for pair in perm.get("UserIdGroupPairs", [])
        ):
            # ec2kit instances may SSH to each other over private addresses: a spot
            # run pushes its results to a monitor instance (`--monitor`).
            try:
                self.ec2.authorize_security_group_ingress(
                    GroupId=gid,
                    IpPermissions=[
                        {
                            "IpProtocol": "tcp",
                            "FromPort": 22,
                            "ToPort": 22,
                            "UserIdGroupPairs": [{"GroupId": gid, "Description": "ec2kit instances to each other"}],
                        }
                    ],
                )
            except Exception as err:
                if "Duplicate" not in str(getattr(err, "response", {}).get("Error", {}).get("Code", "")):
                    raise
        return gid

    # -- validation ------------------------------------------------------------------
    @_translated("check instance type {0}")
    def instance_type(self, type: str) -> dict:
        """Describe an instance type (cached); AwsError with suggestions if AWS does not offer it."""
        if type not in self._type_cache:
            try:
                info = self.ec2.describe_instance_types(InstanceTypes=[type])["InstanceTypes"]
            except Exception as err:
                code = getattr(err, "response", {}).get("Error", {}).get("Code", "")
                if code not in ("InvalidInstanceType", "InvalidParameterValue"):
                    raise
                info = []
            if not info:
                family = type.split(".")[0]
                raise NotFound(
                    "instance type",
                    type,
                    hint=f"AWS offers no such type in {self.region}; "
                    f"see `inv prices {family}` or the EC2 instance types page (e.g. t3.medium, m5.xlarge).",
                )
            self._type_cache[type] = info[0]
        return self._type_cache[type]

    # -- launch ------------------------------------------------------------------------
    def _launch_spec(
        self,
        image: Image,
        type: str,
        disk: int | None,
        zone: str | None,
        user_data: str | None,
        shutdown_behavior: str | None,
        key_name: str,
        group_ids: list[str],
    ) -> dict:
        """Parameters shared by run_instances and a spot LaunchSpecification (pure)."""
        spec: dict[str, Any] = {"ImageId": image.id, "InstanceType": type, "KeyName": key_name}
        if group_ids:
            spec["SecurityGroupIds"] = group_ids
        if disk:
            root = image.raw.get("RootDeviceName") or "/dev/sda1"
            spec["BlockDeviceMappings"] = [
                {"DeviceName": root, "Ebs": {"VolumeSize": int(disk), "VolumeType": "gp3", "DeleteOnTermination": True}}
            ]
        if zone:
            spec["Placement"] = {"AvailabilityZone": zone}
        if user_data:
            spec["UserData"] = user_data
        if shutdown_behavior:
            spec["InstanceInitiatedShutdownBehavior"] = shutdown_behavior
        return spec

    @_translated("launch instance {0}")
    def launch(
        self,
        name: str,
        *,
        image: str | None = None,
        disk: int | None = None,
        type: str = "t3.medium",
        spot: bool = False,
        max_price: float | str | None = None,
        zone: str | None = None,
        tags: dict | None = None,
        user_data: str | None = None,
        shutdown_behavior: str | None = None,
        dry_run: bool = False,
        open_ssh: bool = False,
        progress: Progress | None = None,
    ) -> Any:
        """Launch one instance named ``name`` and wait until it is running; returns the Instance.

        ``image``: name or id (default: latest Ubuntu LTS); ``disk``: root size in GiB (gp3);
        ``spot``: one-time spot request (``max_price`` in USD/hour, default up to on-demand).
        ``dry_run=True`` validates everything, asks EC2 with DryRun and returns a dict describing the call.
        Ctrl-C or a failure part-way terminates what was created.
        """
        if shutdown_behavior not in (None, "stop", "terminate"):
            raise ConfigError(f"Shutdown behaviour '{shutdown_behavior}' is not understood.", hint="Use 'stop' or 'terminate'.")
        existing = self.instances(tags={"Name": name})
        if existing:
            raise AlreadyExists(
                f"An instance named '{name}' already exists ({existing[0].id}, {existing[0].state}).",
                hint="Choose another name, or terminate it first with `inv terminate " + name + "`.",
            )
        img = self.image(image) if image else self.default_image()
        self.instance_type(type)
        all_tags = {"Name": name, MANAGED_TAG: "1", **(tags or {})}
        if dry_run:
            return self._dry_run_launch(name, img, type, disk, zone, user_data, shutdown_behavior, all_tags, spot, max_price)
        key_name = self.settings.key_name
        self.ensure_key_pair()
        group_ids = [self.ensure_security_group(open_ssh=open_ssh)]
        spec = self._launch_spec(img, type, disk, zone, user_data, shutdown_behavior, key_name, group_ids)
        token = uuid.uuid4().hex[:16]
        all_tags[LAUNCH_TAG] = token  # finds what this launch created, even if Ctrl-C lost the response
        try:
            if spot:
                return self._launch_spot(name, spec, all_tags, max_price, progress)
            return self._launch_on_demand(name, spec, all_tags, progress)
        except BaseException as err:
            left = self._cleanup_launch(token)
            if left:
                raise AwsError(
                    f"Launching '{name}' failed ({err or type(err).__name__}) and ec2kit could not remove what it "
                    f"created: {', '.join(left)}.",
                    hint="Remove them in the AWS console or with `inv terminate ID`, then retry.",
                ) from err
            raise

    def _dry_run_launch(
        self,
        name: str,
        img: Image,
        type: str,
        disk: int | None,
        zone: str | None,
        user_data: str | None,
        shutdown_behavior: str | None,
        all_tags: dict,
        spot: bool,
        max_price: Any,
    ) -> dict:
        spec = self._launch_spec(img, type, disk, zone, user_data, shutdown_behavior, self.settings.key_name, [])
        spec.pop("KeyName")  # the key pair may not exist yet: launch creates it
        params = {
            **spec,
            "MinCount": 1,
            "MaxCount": 1,
            "TagSpecifications": [{"ResourceType": r, "Tags": _tag_list(all_tags)} for r in ("instance", "volume")],
        }
        if spot:
            params["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": {"SpotInstanceType": "one-time"}}
            if max_price is not None:
                params["InstanceMarketOptions"]["SpotOptions"]["MaxPrice"] = str(max_price)
        return {
            "action": "run_instances",
            "name": name,
            "would_succeed": self._dry_run(self.ec2.run_instances, params),
            "params": params,
            "image": {"id": img.id, "name": img.name},
        }

    @staticmethod
    def _dry_run(call: Callable[..., Any], params: dict) -> bool:
        """Call with DryRun=True: True if AWS says it would have succeeded (other errors propagate)."""
        try:
            call(DryRun=True, **params)
        except Exception as err:
            if getattr(err, "response", {}).get("Error", {}).get("Code") == "DryRunOperation":
                return True
            raise
        return True  # some servers ignore DryRun; the parameters were accepted

    def _launch_on_demand(self, name: str, spec: dict, tags: dict, progress: Progress | None) -> Instance:
        if progress:
            progress(f"instance {name}: launching")
        resp = self.ec2.run_instances(
            MinCount=1,
            MaxCount=1,
            ClientToken=tags[LAUNCH_TAG],
            **spec,
            TagSpecifications=[{"ResourceType": r, "Tags": _tag_list(tags)} for r in ("instance", "volume")],
        )
        return self.wait(_instance(resp["Instances"][0]), "running", progress=progress)

    def _launch_spot(self, name: str, spec: dict, tags: dict, max_price: Any, progress: Progress | None) -> Instance:
        spec = dict(spec)
        if spec.pop("InstanceInitiatedShutdownBehavior", "terminate") != "terminate":
            raise ConfigError(
                "A one-time spot instance can only terminate when it shuts down.",
                hint="Drop the shutdown behaviour 'stop' or launch on demand.",
            )
        if "UserData" in spec:  # LaunchSpecification wants it base64-encoded by the caller
            spec["UserData"] = base64.b64encode(spec["UserData"].encode()).decode()
        if "SecurityGroupIds" in spec:
            spec["SecurityGroupIds"] = list(spec["SecurityGroupIds"])
        if progress:
            progress(f"instance {name}: requesting a spot instance")
        request_id = self.request_spot(spec, tags=tags, max_price=max_price)
        instance_id = self._wait_spot(request_id, progress)
        inst_raw = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        volume_ids = [b["Ebs"]["VolumeId"] for b in inst_raw.get("BlockDeviceMappings", []) if "Ebs" in b]
        self.ec2.create_tags(Resources=[instance_id, *volume_ids], Tags=_tag_list({**tags, SPOT_REQUEST_TAG: request_id}))
        return self.wait(instance_id, "running", progress=progress)

    def _wait_spot(self, request_id: str, progress: Progress | None, timeout: float = 600) -> str:
        for elapsed in _polls(timeout):
            req = self.ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[request_id])["SpotInstanceRequests"][0]
            status = req.get("Status", {})
            if req.get("InstanceId"):
                return req["InstanceId"]
            if req.get("State") in ("cancelled", "failed", "closed") or status.get("Code") in (
                "price-too-low",
                "capacity-not-available",
                "bad-parameters",
                "system-error",
            ):
                raise AwsError(
                    f"Spot request {request_id} was not fulfilled: {status.get('Code')}: {status.get('Message', '')}",
                    code=status.get("Code", ""),
                    hint="Try another instance type or zone, raise --max-price, or launch on demand.",
                )
            if progress:
                progress(f"spot request {request_id}: {status.get('Code', req.get('State'))} ({elapsed:.0f} s)")
        raise TimedOut(
            f"Spot request {request_id} is still {status.get('Code', req.get('State'))} after {timeout:.0f} s.",
            hint="Try another instance type or zone, or launch on demand.",
        )

    def _cleanup_launch(self, token: str) -> list[str]:
        """After a failed or interrupted launch: cancel its spot request, terminate its instance.

        Finds them by the launch's token tag; returns the ids it could not remove (best effort).
        """
        found: list[str] = []
        instance_ids: set[str] = set()
        try:
            reqs = self.ec2.describe_spot_instance_requests(Filters=_filters(**{f"tag:{LAUNCH_TAG}": token})).get(
                "SpotInstanceRequests", []
            )
            found += [r["SpotInstanceRequestId"] for r in reqs if r.get("State") in ("open", "active")]
            instance_ids |= {r["InstanceId"] for r in reqs if r.get("InstanceId")}
            if found:
                self.ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=found)
            found = []
            page = self.ec2.describe_instances(
                Filters=_filters(**{f"tag:{LAUNCH_TAG}": token, "instance-state-name": list(LIVE_STATES)})
            )
            instance_ids |= {i["InstanceId"] for r in page.get("Reservations", []) for i in r.get("Instances", [])}
            if instance_ids:
                self.ec2.terminate_instances(InstanceIds=sorted(instance_ids))
            return []
        except BaseException:
            return found + sorted(instance_ids) or [f"anything tagged {LAUNCH_TAG}={token}"]

    @_translated("request a spot instance")
    def request_spot(self, launch_specification: dict, *, tags: dict | None = None, max_price: Any = None) -> str:
        """Place a one-time spot request; returns its id (UserData must already be base64)."""
        kwargs: dict[str, Any] = {"InstanceCount": 1, "Type": "one-time", "LaunchSpecification": launch_specification}
        if max_price is not None:
            kwargs["SpotPrice"] = str(max_price)
        if tags:
            kwargs["TagSpecifications"] = [{"ResourceType": "spot-instances-request", "Tags": _tag_list(tags)}]
        return self.ec2.request_spot_instances(**kwargs)["SpotInstanceRequests"][0]["SpotInstanceRequestId"]

    @_translated("cancel spot request {0}")
    def cancel_spot_request(self, request_id: str) -> None:
        """Cancel a spot request (the instance, if any, is not terminated by this)."""
        self.ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=[request_id])

    @_translated("find the spot request of {0}")
    def spot_request_for(self, instance: Instance) -> str | None:
        """The open spot request that launched this instance (found by the instance-id filter)."""
        if instance.spot_request_id:
            return instance.spot_request_id
        reqs = self.ec2.describe_spot_instance_requests(Filters=_filters(**{"instance-id": instance.id})).get(
            "SpotInstanceRequests", []
        )
        live = [r for r in reqs if r.get("State") in ("open", "active")]
        return live[0]["SpotInstanceRequestId"] if live else None

    # -- lifecycle -------------------------------------------------------------------------
    @_translated("start instance {0}")
    def start(self, name: str, *, wait: bool = True, progress: Progress | None = None) -> Instance:
        """Start a stopped instance (and wait until it is running)."""
        inst = self.instance(name)
        if inst.state == "running":
            return inst
        self.ec2.start_instances(InstanceIds=[inst.id])
        return self.wait(inst, "running", progress=progress) if wait else self._refresh(inst)

    @_translated("stop instance {0}")
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
        self.ec2.stop_instances(InstanceIds=[inst.id])
        return self.wait(inst, "stopped", progress=progress) if wait else self._refresh(inst)

    @_translated("terminate instance {0}")
    def terminate(self, name: str, *, wait: bool = False, progress: Progress | None = None) -> Instance:
        """Terminate an instance, cancelling its spot request first."""
        inst = self.instance(name)
        if inst.lifecycle == "spot":
            request_id = self.spot_request_for(inst)
            if request_id:
                self.ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=[request_id])
        self.ec2.terminate_instances(InstanceIds=[inst.id])
        return self.wait(inst, "terminated", progress=progress) if wait else self._refresh(inst)

    @_translated("change the type of instance {0}")
    def change_type(self, name: str, type: str) -> Instance:
        """Change a stopped instance's type (stop it first)."""
        inst = self.instance(name)
        if inst.state != "stopped":
            raise WrongState(
                f"Instance {inst.label} is {inst.state}; its type can only change while it is stopped.",
                hint=f"Run `inv stop {inst.name or inst.id}` first.",
            )
        self.instance_type(type)
        self.ec2.modify_instance_attribute(InstanceId=inst.id, InstanceType={"Value": type})
        return self._refresh(inst)

    # -- images ------------------------------------------------------------------------------
    @_translated("freeze instance {0} into an image")
    def freeze(
        self,
        name: str,
        *,
        image_name: str | None = None,
        wait: bool = True,
        progress: Progress | None = None,
        dry_run: bool = False,
        timeout: float = 3600,
    ) -> Any:
        """Make an image of the instance, named after it (or ``image_name``); waits until available.

        The image and its snapshots are tagged Name, ec2kit:managed and ec2kit:source-instance.
        ``dry_run=True`` returns a dict describing the create_image call.
        """
        inst = self.instance(name)
        image_name = image_name or inst.name or inst.id
        if not re.fullmatch(r"[A-Za-z0-9()\[\] ./\-'@_]{3,128}", image_name):
            raise ConfigError(
                f"'{image_name}' cannot be an image name: AWS wants 3 to 128 letters, digits, spaces or ( ) [ ] . / - ' @ _.",
                hint="Pass another name with --image-name.",
            )
        mine = self.images()
        taken = {i.name for i in mine} | {i.tags.get("Name", "") for i in mine}
        if image_name in taken:
            free = next(f"{image_name}-{n}" for n in range(2, 1000) if f"{image_name}-{n}" not in taken)
            raise AlreadyExists(
                f"An image named '{image_name}' already exists.",
                hint=f"Pick another name (e.g. --image-name {free}), or delete the old image first.",
            )
        tags = {"Name": image_name, MANAGED_TAG: "1", SOURCE_INSTANCE_TAG: inst.id}
        params = {
            "InstanceId": inst.id,
            "Name": image_name,
            "Description": f"ec2kit freeze of {inst.label}",
            "TagSpecifications": [{"ResourceType": "image", "Tags": _tag_list(tags)}],
        }
        if dry_run:
            return {
                "action": "create_image",
                "name": image_name,
                "would_succeed": self._dry_run(self.ec2.create_image, params),
                "params": params,
            }
        image_id = self.ec2.create_image(**params)["ImageId"]
        image = self._tag_image_snapshots(image_id, tags)
        if wait:
            tagged = set(image.snapshot_ids)
            image = self.wait_image(image_id, progress=progress, timeout=timeout)
            if set(image.snapshot_ids) != tagged:  # on AWS snapshot ids can appear only later
                image = self._tag_image_snapshots(image_id, tags)
        return image

    def _tag_image_snapshots(self, image_id: str, tags: dict) -> Image:
        """(Re)tag the image and whatever snapshots it has so far with Name and ec2kit:managed."""
        image = _image(self.ec2.describe_images(ImageIds=[image_id])["Images"][0])
        missing = {k: v for k, v in tags.items() if image.tags.get(k) != v}
        if missing:
            self.ec2.create_tags(Resources=[image_id], Tags=_tag_list(missing))
            image.tags.update(missing)
        if image.snapshot_ids:
            self.ec2.create_tags(
                Resources=image.snapshot_ids, Tags=_tag_list({"Name": tags["Name"], MANAGED_TAG: "1", "ec2kit:image": image_id})
            )
        return image

    @_translated("wait for image {0}")
    def wait_image(self, image_id: str, *, progress: Progress | None = None, timeout: float = 3600) -> Image:
        """Poll until the image is available; ``progress("image base: pending (42 s)")``."""
        for elapsed in _polls(timeout, first=1.0, factor=1.5, cap=15.0):
            raw = self.ec2.describe_images(ImageIds=[image_id]).get("Images", [])
            image = _image(raw[0]) if raw else None
            if image and image.state == "available":
                return image
            if image and image.state in ("failed", "invalid", "deregistered", "error"):
                reason = image.raw.get("StateReason", {}).get("Message", "")
                raise AwsError(f"Image {image.name} ({image_id}) is {image.state}. {reason}".strip(), code=image.state)
            if progress:
                progress(f"image {image.name if image else image_id}: {image.state if image else 'pending'} ({elapsed:.0f} s)")
        raise TimedOut(
            f"Image {image_id} is still pending after {timeout:.0f} s.", hint="It may still complete; check with `inv images`."
        )

    @_translated("delete image {0}")
    def delete_image(self, name_or_id: str) -> None:
        """Deregister one of your images and delete its snapshots."""
        image = self.image(name_or_id)
        self.ec2.deregister_image(ImageId=image.id)
        for snap in image.snapshot_ids:
            self.ec2.delete_snapshot(SnapshotId=snap)

    # -- volumes -------------------------------------------------------------------------------
    @_translated("create volume {0}")
    def create_volume(
        self,
        *,
        size: int | None = None,
        snapshot: str | None = None,
        zone: str | None = None,
        name: str,
        tags: dict | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> Any:
        """Create a gp3 volume of ``size`` GiB and/or from a snapshot (name or id), named ``name``.

        ``zone`` defaults to the region's first zone; attach it to an instance in the same zone.
        """
        if not size and not snapshot:
            raise ConfigError(f"Volume '{name}' needs a size (GiB) or a snapshot to start from.")
        if any(v.name == name for v in self.volumes()):
            raise AlreadyExists(f"A volume named '{name}' already exists.", hint="Choose another name, or delete it first.")
        params: dict[str, Any] = {
            "AvailabilityZone": zone or self._first_zone(),
            "VolumeType": "gp3",
            "TagSpecifications": [
                {"ResourceType": "volume", "Tags": _tag_list({"Name": name, MANAGED_TAG: "1", **(tags or {})})}
            ],
        }
        if size:
            params["Size"] = int(size)
        if snapshot:
            snap = self.snapshot(snapshot)
            params["SnapshotId"] = snap.id
            if size and size < snap.size:
                raise ConfigError(
                    f"Volume '{name}' ({size} GiB) would be smaller than snapshot {snap.name or snap.id} ({snap.size} GiB).",
                    hint="Leave out the size or make it at least the snapshot's size.",
                )
        if dry_run:
            return {
                "action": "create_volume",
                "name": name,
                "would_succeed": self._dry_run(self.ec2.create_volume, params),
                "params": params,
            }
        volume_id = self.ec2.create_volume(**params)["VolumeId"]
        return self._wait_volume(volume_id, "available", progress)

    def _first_zone(self) -> str:
        zones = self.ec2.describe_availability_zones(Filters=_filters(state="available")).get("AvailabilityZones", [])
        if not zones:
            raise AwsError(f"Region {self.region} reports no available zone.")
        return sorted(z["ZoneName"] for z in zones)[0]

    def _wait_volume(self, volume_id: str, state: str, progress: Progress | None, timeout: float = 600) -> Volume:
        """Poll until the volume is in ``state`` ("available", "in-use") or its attachment is "attached"."""
        for elapsed in _polls(timeout):
            vol = _volume(self.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0])
            if vol.state == state or (state == "attached" and vol.attachment_state == "attached"):
                return vol
            if vol.state == "error":
                raise AwsError(f"Volume {vol.name or vol.id} is in state error.", code="error")
            if progress:
                progress(f"volume {vol.name or vol.id}: {vol.state} ({elapsed:.0f} s)")
        raise TimedOut(f"Volume {vol.name or vol.id} is still {vol.state} after {timeout:.0f} s (waiting for {state}).")

    @_translated("attach volume {0}")
    def attach_volume(
        self, volume: str | Volume, instance: str | Instance, device: str = "/dev/sdf", *, progress: Progress | None = None
    ) -> Volume:
        """Attach a volume to an instance in the same zone at ``device`` (or the next free /dev/sd[f-p])."""
        vol, inst = self.volume(volume), self.instance(instance)
        if vol.attached_to == inst.id:
            return vol
        if vol.attached_to:
            raise WrongState(
                f"Volume {vol.name or vol.id} is attached to {vol.attached_to}.",
                hint=f"Detach it first with `inv detach-volume {vol.name or vol.id}`.",
            )
        if vol.zone != inst.zone:
            raise ConfigError(
                f"Volume {vol.name or vol.id} is in {vol.zone} but instance {inst.label} is in {inst.zone}.",
                hint="Volumes attach only within one zone: snapshot it and create a volume from the snapshot in the instance's zone.",
            )
        device = _free_device(device, inst)
        self.ec2.attach_volume(VolumeId=vol.id, InstanceId=inst.id, Device=device)
        return self._wait_volume(vol.id, "attached", progress)

    @_translated("set delete-on-termination for {0}")
    def delete_with_instance(self, volume: str | Volume) -> None:
        """Mark an attached volume to be deleted when its instance terminates.

        A run's data volume must not outlive an instance that powers itself
        off (a detached run) or whose local follower died.
        """
        vol = self.volume(volume)
        if not (vol.attached_to and vol.device):
            raise WrongState(f"Volume {vol.name or vol.id} is not attached.")
        self.ec2.modify_instance_attribute(
            InstanceId=vol.attached_to,
            BlockDeviceMappings=[{"DeviceName": vol.device, "Ebs": {"VolumeId": vol.id, "DeleteOnTermination": True}}],
        )

    @_translated("detach volume {0}")
    def detach_volume(self, volume: str | Volume, *, force: bool = False, progress: Progress | None = None) -> Volume:
        """Detach a volume from its instance (InstanceId always passed); a detached volume is returned as is."""
        vol = self.volume(volume)
        if not vol.attached_to:
            return vol
        if vol.attachment_state != "detaching":
            self.ec2.detach_volume(VolumeId=vol.id, InstanceId=vol.attached_to, Force=force)
        return self._wait_volume(vol.id, "available", progress)

    @_translated("delete volume {0}")
    def delete_volume(self, volume: str | Volume) -> None:
        """Delete a detached volume."""
        vol = self.volume(volume)
        if vol.attached_to:
            raise WrongState(
                f"Volume {vol.name or vol.id} is still attached to {vol.attached_to}.",
                hint=f"Detach it first with `inv detach-volume {vol.name or vol.id}`.",
            )
        self.ec2.delete_volume(VolumeId=vol.id)

    @_translated("snapshot volume {0}")
    def create_snapshot(
        self,
        volume: str | Volume,
        *,
        name: str | None = None,
        wait: bool = False,
        progress: Progress | None = None,
        tags: dict | None = None,
        timeout: float = 3600,
    ) -> Snapshot:
        """Snapshot a volume, named ``name`` (default: the volume's name); optionally wait until completed."""
        vol = self.volume(volume)
        snap_name = name or vol.name or vol.id
        all_tags = {"Name": snap_name, MANAGED_TAG: "1", **(tags or {})}
        raw = self.ec2.create_snapshot(
            VolumeId=vol.id,
            Description=f"ec2kit snapshot of {vol.name or vol.id}",
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": _tag_list(all_tags)}],
        )
        snap = _snapshot(raw)
        if not snap.tags:
            snap.tags = all_tags
            snap.name = snap_name
        if not wait:
            return snap
        for attempt, elapsed in enumerate(_polls(timeout, first=1.0, factor=1.5, cap=15.0)):
            if attempt:
                snap = _snapshot(self.ec2.describe_snapshots(SnapshotIds=[snap.id])["Snapshots"][0])
            if snap.state == "completed":
                return snap
            if snap.state == "error":
                raise AwsError(f"Snapshot {snap_name} ({snap.id}) failed.", code="error")
            if progress:
                progress(f"snapshot {snap_name}: {snap.state} {snap.progress} ({elapsed:.0f} s)")
        raise TimedOut(f"Snapshot {snap_name} is still {snap.state} after {timeout:.0f} s.")

    @_translated("delete snapshot {0}")
    def delete_snapshot(self, name_or_id: str) -> None:
        """Delete a snapshot by name or id."""
        self.ec2.delete_snapshot(SnapshotId=self.snapshot(name_or_id).id)

    # -- ssh -------------------------------------------------------------------------------------
    def ssh_target(self, instance: Instance | str) -> SshTarget:
        """Where to SSH to this instance: the sandbox resolver, or its public (or private) IP, port 22."""
        inst = instance if isinstance(instance, Instance) else self.instance(instance)
        settings = self.settings
        if self.resolver is not None:
            return self.resolver.ssh_target(inst.id, key_file=settings.key_file, known_hosts=settings.known_hosts, name=inst.name)
        from .ssh.target import SshTarget

        host = inst.private_ip if settings.ssh_address == "private" else inst.public_ip
        if not host:
            which = "private" if settings.ssh_address == "private" else "public"
            hint = (
                f"Start it with `inv start {inst.name or inst.id}`."
                if inst.state != "running"
                else "Launch it in a subnet that assigns public IPs, or set EC2KIT_SSH_ADDRESS=private inside the VPC."
            )
            raise WrongState(f"Instance {inst.label} has no {which} IP address (it is {inst.state}).", hint=hint)
        return SshTarget(
            host=host,
            port=22,
            user=settings.login_user,
            key_file=settings.key_file,
            alias=inst.id,
            known_hosts=settings.known_hosts,
            name=inst.name,
        )


# ----------------------------------------------------------------------------- helpers
def pick(kind: str, key: str, items: list, listing: str, *, label: Callable[[Any], str] = lambda x: x.id) -> Any:
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


def match_instance(key: str, candidates: list[Instance]) -> Instance:
    """The one of ``candidates`` with id or Name tag ``key`` (see :func:`pick`)."""
    return pick("instance", key, candidates, "inv instances", label=lambda i: f"{i.id} ({i.state})")


def _allows_ssh(permissions: list[dict], cidr: str) -> bool:
    for perm in permissions:
        if perm.get("IpProtocol") in ("tcp", "-1") and (
            perm.get("IpProtocol") == "-1" or perm.get("FromPort", 0) <= 22 <= perm.get("ToPort", 0)
        ):
            if any(r.get("CidrIp") == cidr for r in perm.get("IpRanges", [])):
                return True
    return False


def _free_device(wanted: str, inst: Instance) -> str:
    """``wanted`` if the instance does not use it, else the next free /dev/sd[f-p]."""
    used = {b.get("DeviceName", "") for b in inst.raw.get("BlockDeviceMappings", [])}
    used_letters = {d.replace("/dev/xvd", "/dev/sd") for d in used}
    if wanted not in used_letters:
        return wanted
    for letter in "fghijklmnop":
        dev = f"/dev/sd{letter}"
        if dev not in used_letters:
            return dev
    raise WrongState(f"Instance {inst.label} has no free device name for another volume (sdf-sdp are used).")


def key_fingerprints(public_key: str) -> set[str]:
    """Fingerprints EC2 may report for an imported OpenSSH public key line.

    AWS: base64 SHA-256 of the key blob (as ``ssh-keygen -l``); moto: colon-hex SHA-256 of the DER key.
    """
    import hashlib

    try:
        blob = base64.b64decode(public_key.split()[1])
    except (IndexError, ValueError):
        return set()
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode()
    found = {digest, digest.rstrip("=")}
    if public_key.startswith("ssh-ed25519"):
        der = bytes.fromhex("302a300506032b6570032100") + blob[-32:]
        found.add(":".join(f"{b:02x}" for b in hashlib.sha256(der).digest()))
    return found


def _same_key(aws_fingerprint: str, public_key: str) -> bool:
    """False only when AWS's fingerprint is in a SHA-256 form we know and matches none of ours."""
    fp = aws_fingerprint.removeprefix("SHA256:")
    known_form = len(fp) in (43, 44) or (len(fp) == 95 and fp.count(":") == 31)
    return not known_form or fp in key_fingerprints(public_key)


def _generate_key(key_file: Path) -> None:
    """Generate a passphrase-less ed25519 key at ``key_file`` (mode 600)."""
    key_file.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(key_file.parent, 0o700)
    try:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"ec2kit-{key_file.name}", "-f", str(key_file)],
            check=True,
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        raise ConfigError(
            "ssh-keygen is not installed, so ec2kit cannot create its SSH key.",
            hint="Install OpenSSH (e.g. `apt-get install openssh-client`).",
        ) from None
    except subprocess.CalledProcessError as err:
        raise ConfigError(f"ssh-keygen failed to create {key_file}: {err.stderr.strip()}") from None
    os.chmod(key_file, 0o600)


def _public_key(key_file: Path) -> str:
    """The public half of ``key_file`` (from the .pub beside it, else derived with ssh-keygen -y)."""
    pub = Path(f"{key_file}.pub")
    if pub.exists():
        return pub.read_text().strip()
    try:
        out = subprocess.run(["ssh-keygen", "-y", "-f", str(key_file)], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise ConfigError(
            f"Could not read the public half of {key_file}: {getattr(err, 'stderr', err)}",
            hint="Check it is an unencrypted OpenSSH private key with mode 600.",
        ) from None
    pub.write_text(out)
    return out.strip()
