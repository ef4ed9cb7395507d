"""Images, volumes and snapshots from both faces: freeze, make/mount/detach/delete volumes, snapshot, list."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..defaults import DEFAULT_MOUNT
from ..errors import ConfigError
from .base import Face
from .instances import Instance
from .options import check_disk
from .shown import Listing, _id

if TYPE_CHECKING:
    from ..aws.models import Image, Snapshot, Volume


class StorageVerbs(Face):
    """``EC2``'s image, volume and snapshot verbs (``inv freeze``, ``make-volume``, ``snapshot``, …)."""

    def freeze(self, instance: str | Instance, *, image_name: str | None = None, check: bool = False, stream: Any = None) -> Any:
        """Make an image of an instance through recipes/freeze.toml (``inv freeze``); waits until it is available.

        Named after the instance unless ``image_name``; launch from it with ``ec2.launch(NAME, image=...)``.
        ``check=True`` changes nothing and returns the recipe's :class:`RecipeReport` (what would happen).
        Step lines go to ``stream`` (default stdout). A failed step raises its error.
        """
        from ..recipe import load_recipe, run_recipe
        from .recipes import RecipeFailed, RecipeReport

        inst = self._api.instance(instance)
        host = inst.name or inst.id
        report = RecipeReport(
            run_recipe(
                self.ctx,
                load_recipe("freeze"),
                hosts=[host],
                vars={"image_name": image_name} if image_name else {},
                check=check,
                reporter=self._reporter(stream=stream),
            ),
            "freeze",
        )
        if check:
            return report
        if not report.ok and self.spelling.cli:
            raise RecipeFailed(report)  # the command line showed the failure already, step by step
        report.raise_for_failure()
        return self.cloud.image(image_name or host)

    def images(self) -> Listing[Image]:
        """Your images (AMIs)."""
        found = sorted(self.cloud.images(), key=lambda i: i.name or "")
        return Listing(
            found,
            title="Images",
            columns=("name", "id", "state", "created", "snapshots"),
            row=lambda i: (i.name, i.id, i.state, i.creation_date, ", ".join(i.snapshot_ids)),
            empty="No images yet. Make one with ec2.freeze(NAME).",
        )

    def image(self, name_or_id: str) -> Image:
        """The image with this name or id."""
        return self.cloud.image(name_or_id)

    def create_volume(
        self,
        instance: str | Instance,
        size: int | None = None,
        *,
        name: str | None = None,
        snapshot: str | None = None,
        mountpoint: str = DEFAULT_MOUNT,
    ) -> Volume:
        """Create a volume in the instance's zone, attach it, format it (blank ones) and mount it (``inv make-volume``).

        ``size`` in GB, or ``snapshot`` (name or id) to start from. Example:
        ``ec2.create_volume("base", 20, name="data")`` → mounted at /mnt/data, owned by the login user.
        """
        from ..actions import make_volume

        check_disk(size, "size", self.spelling)
        if size is None and snapshot is None:
            if self.spelling.cli:
                raise ConfigError("make-volume needs --size GB for a blank volume, or --snapshot NAME.")
            raise ConfigError("create_volume needs a size in GB for a blank volume, or snapshot=NAME.")
        key = instance.id if isinstance(instance, Instance) else instance
        label = instance.label if isinstance(instance, Instance) else instance
        with self._progress(f"Making volume for {label}") as progress:
            return make_volume(self.ctx, key, size=size, name=name, snapshot=snapshot, mountpoint=mountpoint, progress=progress)

    def mount_volume(self, volume: str | Volume, instance: str | Instance, *, mountpoint: str = DEFAULT_MOUNT) -> Volume:
        """Attach an existing volume to an instance (if needed) and mount it (``inv mount-volume``)."""
        from ..actions import mount_volume

        key = instance.id if isinstance(instance, Instance) else instance
        with self._progress(f"Mounting {_id(volume)}") as progress:
            return mount_volume(self.ctx, _id(volume), key, mountpoint=mountpoint, progress=progress)

    def detach_volume(self, volume: str | Volume, *, mountpoint: str = DEFAULT_MOUNT) -> Volume:
        """Unmount a volume on its instance, then detach it (``inv detach-volume``)."""
        from ..actions import detach_volume

        with self._progress(f"Detaching {_id(volume)}") as progress:
            return detach_volume(self.ctx, _id(volume), mountpoint=mountpoint, progress=progress)

    def delete_volume(self, volume: str | Volume, *, mountpoint: str = DEFAULT_MOUNT) -> None:
        """Unmount and detach a volume if attached, then delete it (its data is gone; snapshot it first to keep it)."""
        vol = self.detach_volume(volume, mountpoint=mountpoint)
        self.cloud.delete_volume(vol)

    def snapshot(
        self, volume: str | Volume, *, name: str | None = None, wait: bool = False, mountpoint: str = DEFAULT_MOUNT
    ) -> Snapshot:
        """Snapshot a volume, unmounting (at ``mountpoint``) and detaching it cleanly first if attached (``inv snapshot``)."""
        from ..actions import snapshot

        with self._progress(f"Snapshotting {_id(volume)}") as progress:
            snap: Snapshot = snapshot(self.ctx, _id(volume), name=name, wait=wait, mountpoint=mountpoint, progress=progress)
        return snap

    def volumes(self) -> Listing[Volume]:
        """Your EBS volumes."""
        found = sorted(self.cloud.volumes(), key=lambda v: v.name or "")
        return Listing(
            found,
            title="Volumes",
            columns=("name", "id", "size", "state", "zone", "attached to", "from snapshot"),
            row=lambda v: (v.name, v.id, f"{v.size} GB", v.state, v.zone, v.attached_to, v.snapshot_id),
            empty="No volumes. Make one with ec2.create_volume(INSTANCE, GB).",
        )

    def volume(self, name_or_id: str) -> Volume:
        """The volume with this Name tag or id."""
        return self.cloud.volume(name_or_id)

    def snapshots(self) -> Listing[Snapshot]:
        """Your EBS snapshots."""
        found = sorted(self.cloud.snapshots(), key=lambda s: s.name or "")
        return Listing(
            found,
            title="Snapshots",
            columns=("name", "id", "size", "state", "progress", "volume", "started"),
            row=lambda s: (s.name, s.id, f"{s.size} GB", s.state, s.progress, s.volume_id, s.start_time),
            empty="No snapshots. Make one with ec2.snapshot(VOLUME).",
        )
