"""Where each instance was last seen, so that a warm ``inv provision web1`` makes no AWS call.

Every DescribeInstances answer ec2kit gets (``inv instances``, ``launch``, ``start``, a recipe
run…) is remembered here, per account scope (the sandbox, or an AWS profile and region), with
the SSH address the sandbox handed out. A command that only needs to reach named instances
looks them up here first and never builds a boto3 client.

It is safe because nothing is done on a cached host before it is confirmed: SSH pins each host
key to the instance id (``HostKeyAlias``), so an address that now belongs to another machine fails
the pin and a stopped one refuses or times out (:meth:`ec2kit.context.Context.reachable` then
refreshes from AWS); and the first batch asks the host's instance metadata for its instance id and
Name tag, so an instance renamed behind ec2kit's back (h01 → h01-old, h16 → h01) is found out
before any step runs (:mod:`ec2kit.recipe.script`). Only instances launched with tags in their
metadata (``InstanceMetadataTags``, as ec2kit launches them) are served from here. Entries older
than :data:`TTL` are not used, so tags and other facts are never older than that.

The file is ``EC2KIT_HOME/hosts.json`` (0600), replaced atomically under a lock; it holds what
DescribeInstances shows (ids, addresses, tags), never a secret.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aws.models import Instance

TTL = 3600.0  # seconds an entry may be used without asking AWS again
FILE = "hosts.json"
VERSION = 1
_LIVE = ("pending", "running")


class HostCache:
    """name/id → Instance (and the sandbox's SSH address) for one account scope, kept in a JSON file."""

    def __init__(self, home: Path, scope: str, *, ttl: float = TTL) -> None:
        self.path = Path(home) / FILE
        self.scope = scope
        self.ttl = ttl

    # -- reading ---------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and data.get("version") == VERSION else {}

    def _scope(self, data: dict[str, Any]) -> dict[str, Any]:
        scope = data.get("scopes", {}).get(self.scope, {})
        return scope if isinstance(scope, dict) else {}

    def lookup(self, names: Iterable[str]) -> dict[str, Instance] | None:
        """Each of ``names`` (Name tag or id) → its running Instance, or None unless every name has
        exactly one fresh running entry whose host can confirm its name (tags in its instance
        metadata); then the caller asks AWS for all of them."""
        from .aws.models import Instance

        entries = self._scope(self._read()).get("instances", {})
        now = time.time()
        fresh = [e for e in entries.values() if isinstance(e, dict) and now - float(e.get("seen", 0)) < self.ttl]
        found: dict[str, Instance] = {}
        for name in names:
            matches = [e for e in fresh if name in (e.get("id"), e.get("name"))]
            if len(matches) != 1 or matches[0].get("state") not in _LIVE or not _confirmable(matches[0]):
                return None
            try:
                found[name] = Instance.from_raw(matches[0]["record"])
            except (KeyError, TypeError, AttributeError):
                return None
        return found

    def address(self, instance_id: str, public_ip: str | None) -> dict[str, Any] | None:
        """The sandbox SSH address last handed out for this instance while it had ``public_ip``."""
        entry = self._scope(self._read()).get("addresses", {}).get(instance_id)
        if not isinstance(entry, dict) or entry.get("public_ip") != public_ip:
            return None
        return entry if {"host", "port", "user"} <= entry.keys() else None

    # -- writing ---------------------------------------------------------------------
    def remember(self, instances: Iterable[Instance], *, complete: bool = False) -> None:
        """Record what a DescribeInstances showed; ``complete``: it listed every live instance, so
        cached live ones it did not show are gone."""
        seen = list(instances)
        now = time.time()

        def change(scope: dict[str, Any]) -> None:
            entries = scope.setdefault("instances", {})
            if complete:
                shown = {i.id for i in seen}
                for gone in [k for k, e in entries.items() if k not in shown and e.get("state") in _LIVE]:
                    del entries[gone]
            for inst in seen:
                entries[inst.id] = {
                    "id": inst.id,
                    "name": inst.name,
                    "state": inst.state,
                    "seen": now,
                    "record": inst.raw or _record(inst),
                }

        if seen or complete:
            self._update(change)

    def remember_address(self, instance_id: str, public_ip: str | None, host: str, port: int, user: str) -> None:
        """Record where the sandbox said this instance's sshd listens."""

        def change(scope: dict[str, Any]) -> None:
            scope.setdefault("addresses", {})[instance_id] = {"public_ip": public_ip, "host": host, "port": port, "user": user}

        self._update(change)

    def forget(self, instance_ids: Iterable[str]) -> None:
        """Drop these instances (stale, stopped or terminated)."""
        ids = set(instance_ids)

        def change(scope: dict[str, Any]) -> None:
            for table in ("instances", "addresses"):
                for key in ids & set(scope.get(table, {})):
                    del scope[table][key]

        if ids:
            self._update(change)

    def _update(self, change: Any) -> None:
        """Read-modify-write under an exclusive lock; the file is replaced, never rewritten in place."""
        from .fsutil import atomic_write, file_lock

        try:
            with file_lock(str(self.path) + ".lock"):
                data = self._read() or {"version": VERSION, "scopes": {}}
                scopes = data.setdefault("scopes", {})
                scope = scopes.get(self.scope)
                scope = scopes[self.scope] = scope if isinstance(scope, dict) else {}
                change(scope)
                # no fsync: a cache lost in a crash only costs the next command an AWS call
                atomic_write(self.path, json.dumps(data, default=str, separators=(",", ":")), fsync=False)
        except OSError:
            pass  # a cache that cannot be written only costs the next command an AWS call


def _confirmable(entry: dict[str, Any]) -> bool:
    """Whether the instance shows its tags in its instance metadata, so a batch can confirm its name."""
    record = entry.get("record")
    options = record.get("MetadataOptions") if isinstance(record, dict) else None
    return isinstance(options, dict) and options.get("InstanceMetadataTags") == "enabled"


def _record(inst: Instance) -> dict[str, Any]:
    """A DescribeInstances-shaped record for an Instance built without one."""
    return {
        "InstanceId": inst.id,
        "InstanceType": inst.type,
        "State": {"Name": inst.state},
        "PublicIpAddress": inst.public_ip,
        "PrivateIpAddress": inst.private_ip,
        "Placement": {"AvailabilityZone": inst.zone},
        "ImageId": inst.image_id,
        "KeyName": inst.key_name,
        "Tags": [{"Key": k, "Value": v} for k, v in inst.tags.items()],
    }


def credentials_fingerprint(profile: str | None) -> str:
    """What boto3's credential chain depends on that can be read without boto3: if it is unchanged,
    so is the answer to "are there AWS credentials?" (environment names, the two files' mtimes)."""
    home = Path.home()
    parts = [profile or "", os.environ.get("AWS_PROFILE", ""), os.environ.get("AWS_DEFAULT_PROFILE", "")]
    parts += [
        name
        for name in sorted(os.environ)
        if name.startswith("AWS_") and ("CREDENTIAL" in name or "KEY" in name or "TOKEN" in name)
    ]
    for env, default in (("AWS_SHARED_CREDENTIALS_FILE", home / ".aws/credentials"), ("AWS_CONFIG_FILE", home / ".aws/config")):
        path = Path(os.environ.get(env) or default).expanduser()
        try:
            st = path.stat()
            parts.append(f"{path}:{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            parts.append(f"{path}:-")
    return "\0".join(parts)


class ModeMemo:
    """Remembers whether the last command found AWS credentials, keyed by :func:`credentials_fingerprint`."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / "mode.json"

    def get(self, fingerprint: str) -> bool | None:
        """True: the sandbox; False: AWS; None: not known for this fingerprint."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if isinstance(data, dict) and data.get("fingerprint") == fingerprint and isinstance(data.get("sandbox"), bool):
            return bool(data["sandbox"])
        return None

    def put(self, fingerprint: str, sandbox: bool) -> None:
        """Remember the answer for this fingerprint (best effort)."""
        from .fsutil import atomic_write

        try:
            atomic_write(self.path, json.dumps({"fingerprint": fingerprint, "sandbox": sandbox}), fsync=False)
        except OSError:
            pass
