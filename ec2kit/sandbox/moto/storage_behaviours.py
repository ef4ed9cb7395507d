"""Snapshots and images as AWS makes them (moto makes both instantly, from the root disk only).

Patched on moto's classes (``install()``), reading ``account.ACCOUNT``:

- A snapshot made by CreateSnapshot (or CreateImage) is ``pending`` for ``ACCOUNT.snapshot_seconds``
  with a growing ``Progress`` ("40%"), then ``completed``; CreateVolume from a pending snapshot
  fails with ``IncorrectState``, as on AWS.
- CreateImage takes every EBS volume attached to the instance into the image (one snapshot each,
  in the image's BlockDeviceMappings with the attachment's DeleteOnTermination), unless the call's
  ``BlockDeviceMappings`` says ``NoDevice`` for that device (``ACCOUNT.image_takes_volumes``;
  moto maps the root disk only). Its ``TagSpecifications`` may tag the snapshots
  (``ResourceType: snapshot``; moto raises NotImplementedError).

Not imitated: RunInstances from such an image does not create the extra volumes (moto creates
the root volume only); a test asserts the image's mappings instead.
"""

from __future__ import annotations

import time
from typing import Any

from .account import ACCOUNT

_installed = False


def _patch_snapshots() -> None:
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot

    def status(self: Any) -> str:
        ready = getattr(self, "sandbox_ready_at", 0.0)
        stored = self.__dict__.get("_status", "completed")
        return "pending" if stored == "completed" and time.monotonic() < ready else stored

    def set_status(self: Any, value: str) -> None:
        self.__dict__["_status"] = value

    def progress(self: Any) -> str:
        ready, started = getattr(self, "sandbox_ready_at", 0.0), getattr(self, "sandbox_started_at", 0.0)
        if self.status != "pending" or ready <= started:
            return "100%"
        return f"{int(99 * (time.monotonic() - started) / (ready - started))}%"

    Snapshot.status = property(status, set_status)  # type: ignore[assignment,method-assign]
    Snapshot.progress = property(progress)  # type: ignore[assignment,method-assign]

    original_snapshot = EBSBackend.create_snapshot
    original_volume = EBSBackend.create_volume

    def create_snapshot(
        self: Any, volume_id: str, description: str, owner_id: str | None = None, from_ami: str | None = None
    ) -> Any:
        snapshot: Any = original_snapshot(self, volume_id, description, owner_id, from_ami)
        if not from_ami:  # an image's own root snapshot: the image is available at once in moto
            snapshot.sandbox_started_at = time.monotonic()
            snapshot.sandbox_ready_at = snapshot.sandbox_started_at + ACCOUNT.snapshot_seconds
        return snapshot

    def create_volume(self: Any, *args: Any, **kwargs: Any) -> Any:
        snapshot_id = kwargs.get("snapshot_id") if "snapshot_id" in kwargs else (args[2] if len(args) > 2 else None)
        if snapshot_id:
            snapshot = self.get_snapshot(snapshot_id)
            if snapshot.status != "completed":
                raise EC2ClientError(
                    "IncorrectState", f"Snapshot {snapshot_id} is in invalid state - {snapshot.status} ({snapshot.progress})"
                )
        return original_volume(self, *args, **kwargs)

    EBSBackend.create_snapshot = create_snapshot  # type: ignore[method-assign]
    EBSBackend.create_volume = create_volume  # type: ignore[method-assign]


def _patch_create_image() -> None:
    import threading

    from moto.ec2.models.amis import Ami, AmiBackend
    from moto.ec2.responses.amis import AmisResponse

    local = threading.local()  # the BlockDeviceMappings of the CreateImage call being served
    original_response = AmisResponse.create_image
    original_mappings = Ami.block_device_mappings

    def create_image_response(self: Any) -> Any:
        local.mappings = self._get_param("BlockDeviceMappings", []) or []
        try:
            return original_response(self)
        finally:
            local.mappings = []

    def create_image(self: Any, instance_id: str, name: str, description: str, tag_specifications: list[dict[str, Any]]) -> Any:
        image_specs = [s for s in tag_specifications if s.get("ResourceType") != "snapshot"]
        snapshot_tags = [t for s in tag_specifications if s.get("ResourceType") == "snapshot" for t in s.get("Tags", [])]
        ami: Any = _original_create_image(self, instance_id, name, description, image_specs)
        ami.sandbox_extra = []
        instance = self.get_instance(instance_id)
        if ACCOUNT.image_takes_volumes:
            dropped = {m.get("DeviceName") for m in getattr(local, "mappings", []) if "NoDevice" in m}
            for device, block in instance.get_block_device_mapping:
                if device == instance.root_device_name or device in dropped:
                    continue
                snapshot = self.create_snapshot(block.volume_id, f"Created by CreateImage({instance_id}) for {ami.id}")
                ami.sandbox_extra.append(
                    {
                        "DeviceName": device,
                        "Ebs": {
                            "SnapshotId": snapshot.id,
                            "VolumeSize": block.size,
                            "DeleteOnTermination": bool(block.delete_on_termination),
                            "VolumeType": "gp3",
                        },
                    }
                )
        for snapshot_id in [ami.ebs_snapshot.id] + [m["Ebs"]["SnapshotId"] for m in ami.sandbox_extra]:
            for tag in snapshot_tags:
                self.get_snapshot(snapshot_id).add_tag(tag["Key"], tag["Value"])
        return ami

    def block_device_mappings(self: Any) -> list[dict[str, Any]]:
        return list(original_mappings.fget(self)) + list(getattr(self, "sandbox_extra", []))  # type: ignore[attr-defined]

    _original_create_image = AmiBackend.create_image
    AmiBackend.create_image = create_image  # type: ignore[method-assign]
    AmisResponse.create_image = create_image_response  # type: ignore[method-assign]
    Ami.block_device_mappings = property(block_device_mappings)  # type: ignore[assignment,method-assign]


def install(*, snapshots: bool = True) -> None:
    """Apply the patches once (idempotent); call after moto is imported, before serving.
    ``snapshots=False``: CreateImage's only (the tests' bare moto server keeps instant snapshots)."""
    global _installed
    if _installed:
        return
    if snapshots:
        _patch_snapshots()
    _patch_create_image()
    _installed = True
