"""Images, volumes and snapshots from both faces: freeze, make/mount/detach volumes, snapshot, list, delete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..defaults import DEFAULT_MOUNT
from ..errors import ConfigError, Ec2kitError, WrongState
from .base import Face
from .instances import Instance
from .options import check_disk
from .shown import Listing, _id
from .unused import Deletion, Mentions, monthly_cost

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

    def delete_volume(
        self, volume: str | Volume, *, detach: bool = False, mountpoint: str = DEFAULT_MOUNT, dry_run: bool = False
    ) -> Deletion:
        """Delete a volume by name or id (``inv delete-volume``): its data is gone (snapshot it first to keep it).

        An attached volume is refused unless ``detach=True`` (unmounted at ``mountpoint`` and detached first);
        a live run's volume is refused. ``dry_run=True`` checks all that and deletes nothing.
        """
        from ..runs import Runs
        from ..tags import RUN_TAG

        vol = self.cloud.volume(_id(volume))
        label = f"{vol.name} ({vol.id})" if vol.name else vol.id
        run = vol.tags.get(RUN_TAG)
        if run and any(r.name == run for r in Runs(self.settings.runs_db).all() if r.live):
            raise WrongState(
                f"Volume {label} is the data volume of the live run {run}.",
                hint=f"`inv stop-run {run}` ends the run and deletes its volumes.",
            )
        if vol.attached_to and not detach:
            try:
                on = self.cloud.instance(vol.attached_to).label
            except Ec2kitError:
                on = vol.attached_to
            raise WrongState(
                f"Volume {label} is attached to instance {on}, so it is in use and was not deleted.",
                hint=f"Detach it first (`inv detach-volume {vol.name or vol.id}`), or pass "
                f"{'--detach' if self.spelling.cli else 'detach=True'} to unmount, detach and delete it.",
            )
        prices = self._api._storage_prices()
        gone = Deletion("volume", vol.id, vol.name, vol.size, monthly_cost(vol.size, vol.type, prices))
        gone.prices_note = prices.fallback
        if dry_run:
            return gone
        if vol.attached_to:
            vol = self.detach_volume(vol, mountpoint=mountpoint)
        self.cloud.delete_volume(vol)
        gone.done = True
        return gone

    def delete_snapshot(self, snapshot: str | Snapshot, *, dry_run: bool = False) -> Deletion:
        """Delete a snapshot by name or id (``inv delete-snapshot``).

        Refused while an image is made from it (delete the image: its snapshots go with it), or a recipe or a
        live run or sweep makes volumes from it. ``dry_run=True`` checks and deletes nothing.
        """
        snap = self.cloud.snapshot(_id(snapshot))
        label = f"{snap.name} ({snap.id})" if snap.name else snap.id
        images = self.cloud.images()
        used = Mentions(self.ctx).of_snapshot(snap, images)
        if used:
            image = next((i for i in images if snap.id in i.snapshot_ids), None)
            raise WrongState(
                f"Snapshot {label} is in use by {'; '.join(used)}, so it was not deleted.",
                hint=f"Delete the image instead (`inv delete-image {image.name or image.id}`): its snapshots go with it."
                if image
                else "Change or remove that first, then delete it.",
            )
        prices = self._api._storage_prices()
        gone = Deletion("snapshot", snap.id, snap.name, snap.size, monthly_cost(snap.size, "snapshot", prices))
        gone.prices_note = prices.fallback
        if not dry_run:
            self.cloud.delete_snapshot(snap)
            gone.done = True
        return gone

    def delete_image(self, image: str | Image, *, dry_run: bool = False) -> Deletion:
        """Deregister one of your images by name or id and delete its snapshots (``inv delete-image``).

        Refused while ec2kit.toml or ~/.ec2kit/config.toml (``image = ...``), a recipe, or a live run or sweep
        names it. ``dry_run=True`` checks and deletes nothing.
        """
        img = self.cloud.image(_id(image))
        label = f"{img.name} ({img.id})" if img.name else img.id
        if not any(i.id == img.id for i in self.cloud.images()):
            raise WrongState(
                f"Image {label} is not one of yours (another account owns it), so it cannot be deleted.",
                hint="`inv images` lists the images you own.",
            )
        used = Mentions(self.ctx).of_image(img)
        if used:
            raise WrongState(
                f"Image {label} is named by {'; '.join(used)}, so it is in use and was not deleted.",
                hint="Change or remove that first (launches from there would fail without the image), then delete it.",
            )
        prices = self._api._storage_prices()
        gone = Deletion("image", img.id, img.name, img.size, monthly_cost(img.size, "snapshot", prices), list(img.snapshot_ids))
        gone.prices_note = prices.fallback
        if not dry_run:
            with self._progress(f"Deleting image {label}") as progress:
                gone.snapshots = [s.id for s in self.cloud.delete_image(img, progress=progress)]
            gone.done = True
        return gone

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
