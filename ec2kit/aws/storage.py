"""EBS volumes (create, attach, detach, delete) and their snapshots (create, wait for, delete).

Owns :class:`Storage` (``cloud.storage``): creating a volume is planned first (:class:`VolumePlan`,
what ``--check`` asks EC2 about with DryRun, and what the verb then does), from a size and/or a
snapshot that is waited for until completed; a volume attaches only within its zone, at a free
device. Images, freezing and deleting an image with its snapshots are :mod:`.images`' (whose
:class:`FreezePlan` is re-exported here).
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import AlreadyExists, AwsError, ConfigError, NotFound, TimedOut, WrongState
from .errors import translated
from .images import Images
from .instances import Instances
from .models import MANAGED_TAG, Instance, Snapshot, Volume, filters, pick, tag_list
from .plans import FreezePlan, VolumePlan  # FreezePlan: importable from here as before
from .session import AwsSession, Progress, eventually, wait_until

__all__ = ["FreezePlan", "Storage", "VolumePlan"]


class Storage:
    """Volume and snapshot verbs over one session (``cloud.storage``; the Cloud forwards ``cloud.create_volume(…)``, …).

    ``images`` answers which images a snapshot is behind (AWS refuses to delete it alone)."""

    def __init__(self, aws: AwsSession, instances: Instances, images: Images) -> None:
        self.aws = aws
        self.instances = instances
        self.images = images

    # -- volumes -------------------------------------------------------------------------
    @translated("list volumes")
    def volumes(self) -> list[Volume]:
        """All EBS volumes in this region."""
        found = [Volume.from_raw(v) for v in self.aws.paginate("describe_volumes", "Volumes[]")]
        return sorted(found, key=lambda v: (v.name, v.id))

    @translated("find volume {0}")
    def volume(self, name_or_id: str | Volume) -> Volume:
        """A volume by Name tag or id."""
        key = name_or_id.id if isinstance(name_or_id, Volume) else name_or_id
        return pick("volume", key, self.volumes(), "inv volumes")

    @translated("create volume {0}")
    def plan_volume(
        self,
        *,
        name: str,
        size: int | None = None,
        snapshot: str | None = None,
        zone: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> VolumePlan:
        """What creating volume ``name`` (``size`` GiB and/or from a snapshot name or id) would ask EC2 for."""
        if not size and not snapshot:
            raise ConfigError(f"Volume '{name}' needs a size (GiB) or a snapshot to start from.")
        if any(v.name == name for v in self.volumes()):
            raise AlreadyExists(f"A volume named '{name}' already exists.", hint="Choose another name, or delete it first.")
        zone = zone or self._first_zone()
        snap = self.snapshot(snapshot) if snapshot else None
        if snap and size and size < snap.size:
            raise ConfigError(
                f"Volume '{name}' ({size} GiB) would be smaller than snapshot {snap.name or snap.id} ({snap.size} GiB).",
                hint="Leave out the size or make it at least the snapshot's size.",
            )
        all_tags = {"Name": name, MANAGED_TAG: "1", **(tags or {})}
        return VolumePlan(name, zone, int(size) if size else None, snap.id if snap else None, all_tags)

    @translated("create volume {0}")
    def create_volume(
        self,
        plan: VolumePlan | None = None,
        *,
        name: str = "",
        size: int | None = None,
        snapshot: str | None = None,
        zone: str | None = None,
        tags: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> Volume:
        """Create a gp3 volume of ``size`` GiB and/or from a snapshot (name or id), named ``name``; or do ``plan``.

        ``zone`` defaults to the region's first zone; attach it to an instance in the same zone.
        """
        plan = plan or self.plan_volume(name=name, size=size, snapshot=snapshot, zone=zone, tags=tags)
        if plan.snapshot_id:  # a pending snapshot refuses CreateVolume (IncorrectState): wait for it first
            self.wait_snapshot(plan.snapshot_id, progress=progress)
        volume_id = self.aws.ec2.create_volume(**plan.params)["VolumeId"]
        return self._wait_volume(volume_id, "available", progress)

    def _first_zone(self) -> str:
        zones = self.aws.ec2.describe_availability_zones(Filters=filters(state="available")).get("AvailabilityZones", [])
        if not zones:
            raise AwsError(f"Region {self.aws.region} reports no available zone.")
        return str(sorted(z["ZoneName"] for z in zones)[0])

    def _wait_volume(self, volume_id: str, state: str, progress: Progress | None, timeout: float = 600) -> Volume:
        """Until the volume is "available" (botocore's volume_available waiter decides) or its attachment "attached"."""

        def fetch() -> tuple[dict[str, Any], Volume]:
            response = self.aws.ec2.describe_volumes(VolumeIds=[volume_id])
            return response, Volume.from_raw(response["Volumes"][0])

        def done(polled: tuple[dict[str, Any], Volume]) -> bool:
            response, vol = polled
            if state == "attached":  # the volume is in-use while still attaching: no waiter fits
                verdict = "success" if vol.attachment_state == "attached" else None
            else:
                verdict = self.aws.waiter_verdict(f"volume_{state}", response)
            if verdict == "failure" or vol.state == "error":
                raise AwsError(f"Volume {vol.name or vol.id} is in state {vol.state}.", code=vol.state)
            return verdict == "success"

        _, vol = wait_until(
            fetch,
            done,
            status=lambda p: f"volume {p[1].name or p[1].id}: {p[1].state}",
            timed_out=lambda p: TimedOut(
                f"Volume {p[1].name or p[1].id} is still {p[1].state} after {timeout:.0f} s (waiting for {state})."
            ),
            timeout=timeout,
            progress=progress,
        )
        return vol

    @translated("attach volume {0}")
    def attach_volume(
        self, volume: str | Volume, instance: str | Instance, device: str = "/dev/sdf", *, progress: Progress | None = None
    ) -> Volume:
        """Attach a volume to an instance in the same zone at ``device`` (or the next free /dev/sd[f-p])."""
        vol, inst = self.volume(volume), self.instances.instance(instance)
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
        eventually(lambda: self.aws.ec2.attach_volume(VolumeId=vol.id, InstanceId=inst.id, Device=device))  # a new volume
        return self._wait_volume(vol.id, "attached", progress)

    @translated("set delete-on-termination for {0}")
    def delete_with_instance(self, volume: str | Volume) -> None:
        """Mark an attached volume to be deleted when its instance terminates.

        A run's data volume must not outlive an instance that powers itself
        off (a detached run) or whose local follower died.
        """
        vol = self.volume(volume)
        if not (vol.attached_to and vol.device):
            raise WrongState(f"Volume {vol.name or vol.id} is not attached.")
        self.aws.ec2.modify_instance_attribute(
            InstanceId=vol.attached_to,
            BlockDeviceMappings=[{"DeviceName": vol.device, "Ebs": {"VolumeId": vol.id, "DeleteOnTermination": True}}],
        )

    @translated("detach volume {0}")
    def detach_volume(self, volume: str | Volume, *, force: bool = False, progress: Progress | None = None) -> Volume:
        """Detach a volume from its instance (InstanceId always passed); a detached volume is returned as is."""
        vol = self.volume(volume)
        if not vol.attached_to:
            return vol
        if vol.attachment_state != "detaching":
            self.aws.ec2.detach_volume(VolumeId=vol.id, InstanceId=vol.attached_to, Force=force)
        return self._wait_volume(vol.id, "available", progress)

    @translated("delete volume {0}")
    def delete_volume(self, volume: str | Volume) -> None:
        """Delete a detached volume."""
        vol = self.volume(volume)
        if vol.attached_to:
            raise WrongState(
                f"Volume {vol.name or vol.id} is still attached to {vol.attached_to}.",
                hint=f"Detach it first with `inv detach-volume {vol.name or vol.id}`.",
            )
        self.aws.ec2.delete_volume(VolumeId=vol.id)

    # -- snapshots -----------------------------------------------------------------------
    @translated("list snapshots")
    def snapshots(self) -> list[Snapshot]:
        """Your snapshots that ec2kit made (tagged ec2kit:managed), newest first."""
        raw = self.aws.paginate(
            "describe_snapshots", "Snapshots[]", OwnerIds=["self"], Filters=filters(**{"tag-key": MANAGED_TAG})
        )
        return sorted((Snapshot.from_raw(s) for s in raw), key=lambda s: str(s.start_time), reverse=True)

    @translated("find snapshot {0}")
    def snapshot(self, name_or_id: str) -> Snapshot:
        """A snapshot by Name tag (ec2kit's, newest wins) or by id (any of yours)."""
        if re.fullmatch(r"snap-[0-9a-f]+", name_or_id):
            raw = self.aws.ec2.describe_snapshots(SnapshotIds=[name_or_id]).get("Snapshots", [])
            if raw:
                return Snapshot.from_raw(raw[0])
            raise NotFound("snapshot", name_or_id, hint="List snapshots with `inv snapshots`.")
        mine = self.snapshots()
        named = [s for s in mine if s.name == name_or_id]
        if named:
            return named[0]
        raise NotFound("snapshot", name_or_id, [s.name for s in mine if s.name], hint="List snapshots with `inv snapshots`.")

    @translated("snapshot volume {0}")
    def create_snapshot(
        self,
        volume: str | Volume,
        *,
        name: str | None = None,
        wait: bool = False,
        progress: Progress | None = None,
        tags: dict[str, str] | None = None,
        timeout: float = 3600,
    ) -> Snapshot:
        """Snapshot a volume, named ``name`` (default: the volume's name); optionally wait until completed."""
        vol = self.volume(volume)
        snap_name = name or vol.name or vol.id
        all_tags = {"Name": snap_name, MANAGED_TAG: "1", **(tags or {})}
        snap = Snapshot.from_raw(
            self.aws.ec2.create_snapshot(
                VolumeId=vol.id,
                Description=f"ec2kit snapshot of {vol.name or vol.id}",
                TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list(all_tags)}],
            )
        )
        if not snap.tags:
            snap.tags, snap.name = all_tags, snap_name
        if not wait or snap.state == "completed":
            return snap
        return self.wait_snapshot(snap, progress=progress, timeout=timeout)

    @translated("wait for snapshot {0}")
    def wait_snapshot(self, snapshot: str | Snapshot, *, progress: Progress | None = None, timeout: float = 3600) -> Snapshot:
        """The snapshot once it is ``completed`` (botocore's snapshot_completed waiter decides);
        ``progress("snapshot data: pending 40% (12 s)")`` while it is pending. A volume can be made
        from a completed snapshot only (AWS: IncorrectState)."""
        snap = snapshot if isinstance(snapshot, Snapshot) else self.snapshot(snapshot)
        if snap.state == "completed":
            return snap
        label = snap.name or snap.id

        def fetch() -> tuple[dict[str, Any], Snapshot]:
            response = self.aws.ec2.describe_snapshots(SnapshotIds=[snap.id])
            return response, Snapshot.from_raw(response["Snapshots"][0])

        def done(polled: tuple[dict[str, Any], Snapshot]) -> bool:
            verdict = self.aws.waiter_verdict("snapshot_completed", polled[0])
            if verdict == "failure":
                raise AwsError(f"Snapshot {label} ({snap.id}) failed.", code="error")
            return verdict == "success"

        return wait_until(
            fetch,
            done,
            status=lambda p: f"snapshot {label}: {p[1].state} {p[1].progress}",
            timed_out=lambda p: TimedOut(
                f"Snapshot {label} is still {p[1].state} ({p[1].progress}) after {timeout:.0f} s.",
                hint="It may still complete; check with `inv snapshots`, then try again.",
            ),
            timeout=timeout,
            progress=progress,
            slow=True,
        )[1]

    @translated("delete snapshot {0}")
    def delete_snapshot(self, snapshot: str | Snapshot) -> Snapshot:
        """Delete a snapshot (name or id) that no image of yours is made from; returns what was deleted."""
        snap = snapshot if isinstance(snapshot, Snapshot) else self.snapshot(snapshot)
        users = self.images.images_using(snap.id)
        if users:
            named = ", ".join(f"{i.name or i.id} ({i.id})" for i in users)
            raise WrongState(
                f"Snapshot {snap.name or snap.id} ({snap.id}) is behind image {named}: AWS keeps it as long as the image exists.",
                hint=f"Delete the image instead (`inv delete-image {users[0].name or users[0].id}`): its snapshots go with it.",
            )
        self.aws.ec2.delete_snapshot(SnapshotId=snap.id)
        return snap


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
