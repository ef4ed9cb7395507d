"""Your images: find them (by name, id or the latest Ubuntu LTS), freeze an instance into one, delete one.

Owns the AMI verbs of :class:`Images` (``cloud.amis``; the Cloud forwards ``cloud.freeze(…)``,
``cloud.images()``, …): a freeze is planned first (:class:`FreezePlan`, what ``--check`` asks EC2
about with DryRun), tags the image and its snapshots, and waits until it is available; deleting an
image deregisters it and deletes the snapshots behind it that no other image uses, waiting out
EC2's InvalidSnapshot.InUse. Volumes and snapshots made from volumes are :mod:`.storage`'s.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import AlreadyExists, AwsError, ConfigError, NotFound, TimedOut, WrongState
from ..tags import IMAGE_TAG
from .errors import translated
from .instances import Instances
from .models import CANONICAL_OWNER, MANAGED_TAG, SOURCE_INSTANCE_TAG, Image, Snapshot, filters, tag_list
from .plans import FreezePlan
from .session import AwsSession, Progress, eventually, wait_until

__all__ = ["FreezePlan", "Images"]

UBUNTU_PATTERNS = (
    "ubuntu/images/*ubuntu-*-24.04-amd64-server-*",
    "ubuntu/images/*ubuntu-*-22.04-amd64-server-*",
)
_IMAGE_NAME = re.compile(r"[A-Za-z0-9()\[\] ./\-'@_]{3,128}")
_IMAGE_FAILED = ("failed", "invalid", "deregistered", "error")


class Images:
    """Image verbs over one session (``cloud.amis``; the Cloud forwards ``cloud.freeze(…)``, ``cloud.image(…)``, …)."""

    def __init__(self, aws: AwsSession, instances: Instances) -> None:
        self.aws = aws
        self.instances = instances

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

    # -- deleting ------------------------------------------------------------------------
    def images_using(self, snapshot_id: str) -> list[Image]:
        """Your images whose block devices are made from this snapshot (AWS refuses to delete it alone)."""
        return [i for i in self.images() if snapshot_id in i.snapshot_ids]

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
