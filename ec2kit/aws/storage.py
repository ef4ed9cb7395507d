"""Images (find, freeze), EBS volumes (create, attach, detach, delete) and snapshots.

Freezing and creating a volume are planned first (:class:`FreezePlan`, :class:`VolumePlan`):
the plan is what ``--check`` asks EC2 about with DryRun, and what the verb then does.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import AlreadyExists, AwsError, ConfigError, NotFound, TimedOut, WrongState
from ..tags import IMAGE_TAG
from .errors import translated
from .instances import Instances
from .models import CANONICAL_OWNER, MANAGED_TAG, SOURCE_INSTANCE_TAG, Image, Instance, Snapshot, Volume, filters, pick, tag_list
from .plans import FreezePlan, VolumePlan
from .session import AwsSession, Progress, eventually, wait_until

__all__ = ["FreezePlan", "Storage", "VolumePlan"]

UBUNTU_PATTERNS = (
    "ubuntu/images/*ubuntu-*-24.04-amd64-server-*",
    "ubuntu/images/*ubuntu-*-22.04-amd64-server-*",
)
_IMAGE_NAME = re.compile(r"[A-Za-z0-9()\[\] ./\-'@_]{3,128}")
_IMAGE_FAILED = ("failed", "invalid", "deregistered", "error")


class Storage:
    """Image, volume and snapshot verbs over one session (``cloud.storage``; the Cloud forwards ``cloud.freeze(…)``, …)."""

    def __init__(self, aws: AwsSession, instances: Instances) -> None:
        self.aws = aws
        self.instances = instances

    # -- images --------------------------------------------------------------------------
    @translated("list images")
    def images(self) -> list[Image]:
        """Your own images (Owners=self), newest first."""
        raw = self.aws.paginate("describe_images", "Images[]", Owners=["self"])
        return sorted((Image.from_raw(r) for r in raw), key=lambda i: i.creation_date, reverse=True)

    @translated("find image {0}")
    def image(self, name_or_id: str) -> Image:
        """An image by id (any owner, validated with AWS) or by name / Name tag among yours."""
        if re.fullmatch(r"ami-[0-9a-f]+", name_or_id):
            raw = self.aws.ec2.describe_images(ImageIds=[name_or_id]).get("Images", [])
            if raw:
                return Image.from_raw(raw[0])
            raise NotFound("image", name_or_id, hint="List your images with `inv images`.")
        mine = self.images()
        named = [i for i in mine if i.name == name_or_id or i.tags.get("Name") == name_or_id]
        if named:
            return named[0]  # newest first
        raise NotFound("image", name_or_id, [i.name for i in mine if i.name], hint="List your images with `inv images`.")

    @translated("find the latest Ubuntu LTS image")
    def default_image(self) -> Image:
        """The newest Canonical Ubuntu 24.04 amd64 server image (falling back to 22.04)."""
        for pattern in UBUNTU_PATTERNS:
            raw = self.aws.paginate(
                "describe_images", "Images[]", Owners=[CANONICAL_OWNER], Filters=filters(name=pattern, state="available")
            )
            if raw:
                return Image.from_raw(max(raw, key=lambda r: r.get("CreationDate", "")))
        raise NotFound(
            "image",
            "Ubuntu 24.04 LTS (Canonical)",
            hint=f"No Canonical Ubuntu LTS image is visible in {self.aws.region}; pass an image name or id with --image.",
        )

    @translated("freeze instance {0} into an image")
    def plan_freeze(self, name: str, *, image_name: str | None = None) -> FreezePlan:
        """What freezing ``name`` would ask EC2 for; refuses names AWS would reject or that are taken."""
        inst = self.instances.instance(name)
        image_name = image_name or inst.name or inst.id
        if not _IMAGE_NAME.fullmatch(image_name):
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
        root = inst.raw.get("RootDeviceName", "/dev/sda1")
        data = [b["DeviceName"] for b in inst.raw.get("BlockDeviceMappings", []) if b.get("DeviceName") not in (root, None)]
        return FreezePlan(name, inst.id, inst.label, image_name, tags, left_out=tuple(sorted(data)))

    @translated("freeze instance {0} into an image")
    def freeze(
        self,
        name: str | FreezePlan,
        *,
        image_name: str | None = None,
        wait: bool = True,
        progress: Progress | None = None,
        timeout: float = 3600,
    ) -> Image:
        """Make an image of the instance, named after it (or ``image_name``); waits until available.

        ``name`` may be a :meth:`plan_freeze` plan. The image and its snapshots are tagged
        Name, ec2kit:managed and ec2kit:source-instance (at CreateImage, and again once it is
        available). Attached volumes other than the root disk are left out of the image (NoDevice).
        """
        plan = name if isinstance(name, FreezePlan) else self.plan_freeze(name, image_name=image_name)
        image_id = self.aws.ec2.create_image(**plan.params)["ImageId"]
        if not wait:
            return self._tag_image_snapshots(image_id, plan.tags)
        # the new id may answer NotFound for a while (eventual consistency): the wait polls through it
        return self._tag_image_snapshots(image_id, plan.tags, self._wait_image(image_id, progress=progress, timeout=timeout))

    def _tag_image_snapshots(self, image_id: str, tags: dict[str, str], image: Image | None = None) -> Image:
        """(Re)tag the image and whatever snapshots it has so far with Name and ec2kit:managed."""
        if image is None:
            found = eventually(lambda: self.aws.ec2.describe_images(ImageIds=[image_id])).get("Images", [])
            if not found:
                raise NotFound("image", image_id, hint="EC2 has not shown the new image yet; check with `inv images`.")
            image = Image.from_raw(found[0])
        missing = {k: v for k, v in tags.items() if image.tags.get(k) != v}
        if missing:
            eventually(lambda: self.aws.ec2.create_tags(Resources=[image_id], Tags=tag_list(missing)))
            image.tags.update(missing)
        if image.snapshot_ids:
            snapshot_tags = tag_list({"Name": tags["Name"], MANAGED_TAG: "1", IMAGE_TAG: image_id})
            self.aws.ec2.create_tags(Resources=image.snapshot_ids, Tags=snapshot_tags)
        return image

    def _wait_image(self, image_id: str, *, progress: Progress | None, timeout: float) -> Image:
        """Until the image is available (botocore's image_available waiter decides); ``progress("image base: pending (42 s)")``."""

        def fetch() -> tuple[dict[str, Any], Image | None]:
            response = self.aws.ec2.describe_images(ImageIds=[image_id])
            return response, Image.from_raw(response["Images"][0]) if response.get("Images") else None

        def done(polled: tuple[dict[str, Any], Image | None]) -> bool:
            response, image = polled
            verdict = self.aws.waiter_verdict("image_available", response)
            if image and (verdict == "failure" or image.state in _IMAGE_FAILED):
                reason = image.raw.get("StateReason", {}).get("Message", "")
                raise AwsError(f"Image {image.name} ({image_id}) is {image.state}. {reason}".strip(), code=image.state)
            return verdict == "success"

        _, image = wait_until(
            fetch,
            done,
            status=lambda p: f"image {p[1].name if p[1] else image_id}: {p[1].state if p[1] else 'pending'}",
            timed_out=lambda _: TimedOut(
                f"Image {image_id} is still pending after {timeout:.0f} s.",
                hint="It may still complete; check with `inv images`.",
            ),
            timeout=timeout,
            progress=progress,
            slow=True,
        )
        assert image is not None
        return image

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

    # -- deleting what costs money ------------------------------------------------------
    def images_using(self, snapshot_id: str) -> list[Image]:
        """Your images whose block devices are made from this snapshot (AWS refuses to delete it alone)."""
        return [i for i in self.images() if snapshot_id in i.snapshot_ids]

    @translated("delete snapshot {0}")
    def delete_snapshot(self, snapshot: str | Snapshot) -> Snapshot:
        """Delete a snapshot (name or id) that no image of yours is made from; returns what was deleted."""
        snap = snapshot if isinstance(snapshot, Snapshot) else self.snapshot(snapshot)
        users = self.images_using(snap.id)
        if users:
            named = ", ".join(f"{i.name or i.id} ({i.id})" for i in users)
            raise WrongState(
                f"Snapshot {snap.name or snap.id} ({snap.id}) is behind image {named}: AWS keeps it as long as the image exists.",
                hint=f"Delete the image instead (`inv delete-image {users[0].name or users[0].id}`): its snapshots go with it.",
            )
        self.aws.ec2.delete_snapshot(SnapshotId=snap.id)
        return snap

    @translated("delete image {0}")
    def delete_image(self, image: str | Image, *, timeout: float = 300, progress: Progress | None = None) -> list[Snapshot]:
        """Deregister one of your images (name or id) and delete the snapshots behind it that no other image uses.

        Returns the snapshots deleted (ids only are known for those ec2kit did not tag).
        """
        img = image if isinstance(image, Image) else self.image(image)
        mine = self.images()
        if not any(i.id == img.id for i in mine):
            raise WrongState(
                f"Image {img.name or img.id} ({img.id}) is not one of yours, so it cannot be deleted.",
                hint="`inv images` lists the images you own.",
            )
        shared = {s for i in mine if i.id != img.id for s in i.snapshot_ids}
        self.aws.ec2.deregister_image(ImageId=img.id)
        gone: list[Snapshot] = []
        for snap_id in [s for s in img.snapshot_ids if s not in shared]:
            raw = self.aws.ec2.describe_snapshots(SnapshotIds=[snap_id]).get("Snapshots", [])
            self._delete_released_snapshot(snap_id, img, timeout=timeout, progress=progress)
            gone.append(Snapshot.from_raw(raw[0]) if raw else Snapshot(snap_id, "", "", "", 0, None, None))
        return gone

    def _delete_released_snapshot(self, snap_id: str, image: Image, *, timeout: float, progress: Progress | None) -> None:
        """Delete a just-deregistered image's snapshot: EC2 answers InvalidSnapshot.InUse for a while after
        DeregisterImage (seconds, at times minutes), so that answer is waited out, up to ``timeout`` s."""
        from .errors import error_code

        def attempt() -> bool:
            try:
                self.aws.ec2.delete_snapshot(SnapshotId=snap_id)
            except Exception as err:
                if error_code(err) == "InvalidSnapshot.InUse":
                    return False
                raise
            return True

        wait_until(
            attempt,
            bool,
            status=lambda _: f"snapshot {snap_id}: still held by the deregistered image {image.id}",
            timed_out=lambda _: TimedOut(
                f"Image {image.name or image.id} ({image.id}) is deregistered, but EC2 still says its snapshot {snap_id} is in "
                f"use after {timeout:.0f} s.",
                hint=f"Delete it in a few minutes with `inv delete-snapshot {snap_id}` (it costs money until then).",
            ),
            timeout=timeout,
            progress=progress,
        )

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
