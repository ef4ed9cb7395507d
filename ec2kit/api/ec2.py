"""The ``EC2`` entry point: everything ec2kit does, from a notebook or IPython."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .instances import INSTANCE_COLUMNS, Instance, InstanceNames, _instance_row
from .recipes import Recipe, RecipeReport
from .runs import Run, _run_row
from .shown import _RESERVED_TAGS, DEFAULT_MOUNT, Listing, Progress, _id, _silent

if TYPE_CHECKING:
    from ..aws.cloud import Cloud
    from ..aws.models import Image, Snapshot, Volume
    from ..context import Context
    from ..recipe import RecipeInfo
    from ..settings import Settings
    from ..spotrun import Leftover


class EC2:
    """EC2 for notebooks and the REPL: ``EC2(region="Ohio", profile="work")``.

    The same rules as the command line pick AWS or the local sandbox: ``EC2KIT_SANDBOX=1`` (or
    ``sandbox=True``) forces the sandbox, ``EC2KIT_SANDBOX=0`` (or ``sandbox=False``) forbids it,
    otherwise the sandbox is used when no AWS credentials are found. ``home`` moves ec2kit's state
    (default ``EC2KIT_HOME`` or ``~/.ec2kit``); ``quiet`` drops progress and step lines. Nothing is
    contacted until the first call.
    """

    def __init__(
        self,
        region: str | None = None,
        profile: str | None = None,
        *,
        sandbox: bool | None = None,
        home: Path | str | None = None,
        quiet: bool = False,
        context: Context | None = None,
    ) -> None:
        if context is None:
            from ..context import Context
            from ..settings import Settings

            if region:
                from ..aws.regions import find_region

                region = find_region(region)
            settings = Settings.from_env(
                profile=profile, region=region, sandbox=sandbox, home=Path(home).expanduser() if home else None
            )
            context = Context(settings, quiet=quiet)
        self.ctx = context
        self.quiet = quiet
        #: ``ec2.i.<TAB>``: instances by attribute name
        self.i = InstanceNames(self)
        self._names_cache: tuple[float, list[str]] = (0.0, [])

    # -- plumbing -----------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """ec2kit's settings (home, profile, region, sandbox…)."""
        return self.ctx.settings

    @property
    def cloud(self) -> Cloud:
        """The :class:`ec2kit.aws.cloud.Cloud` underneath (starts the sandbox when it is used)."""
        return self.ctx.cloud

    @property
    def uses_sandbox(self) -> bool:
        """True when calls go to the local sandbox instead of AWS."""
        self.cloud  # noqa: B018 - decides (and starts) first
        return self.ctx.sandbox is not None

    @property
    def region(self) -> str:
        """The AWS region in use."""
        return str(self.cloud.region)

    @property
    def volumes_supported(self) -> bool:
        """Whether volumes can be made here: always on AWS; in the sandbox only as root."""
        if not self.uses_sandbox:
            return True
        from ..sandbox import volumes_supported

        return volumes_supported()

    @contextmanager
    def _progress(self, title: str) -> Iterator[Progress]:
        if self.quiet:
            yield None
            return
        from .. import ui

        with ui.progress(title) as update:
            yield update

    def _reporter(self) -> Any:
        from ..recipe import CollectingReporter, TextReporter

        return CollectingReporter() if self.quiet else TextReporter(sys.stdout)

    def close(self) -> None:
        """Close the SSH connections this object opened."""
        self.ctx.close()

    def __enter__(self) -> EC2:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- instances --------------------------------------------------------------------------
    def instances(self, *, all: bool = False, tags: dict[str, str | None] | None = None) -> Listing[Instance]:
        """Instances (not terminated unless ``all``), with these tag values (None: any value); one EC2 call."""
        from ..aws.models import LIVE_STATES

        found = self.cloud.instances(states=[*LIVE_STATES, "terminated"] if all else None, tags=tags)
        items = [Instance(self, i) for i in sorted(found, key=lambda i: (i.name or "", i.id))]
        if not tags:  # a complete listing doubles as the names tab completion offers
            self._names_cache = (time.monotonic(), sorted({i.name for i in found if i.name and i.state != "terminated"}))
        return Listing(
            items,
            title="Instances",
            columns=INSTANCE_COLUMNS,
            row=_instance_row,
            empty="No instances. Launch one with ec2.launch(NAME).",
        )

    def instance(self, name_or_id: str | Instance) -> Instance:
        """The instance with this Name tag or id; :class:`~ec2kit.errors.NotFound` suggests close names."""
        if isinstance(name_or_id, Instance):
            return name_or_id
        return Instance(self, self.cloud.instance(name_or_id))

    def __getitem__(self, name_or_id: str) -> Instance:
        """``ec2["gpu1"]``: the instance called gpu1 (``ec2["<TAB>`` completes names in IPython)."""
        return self.instance(name_or_id)

    def __contains__(self, name_or_id: object) -> bool:
        """``"gpu1" in ec2``: whether a (not terminated) instance has this name or id."""
        if not isinstance(name_or_id, str):
            return False
        return any(name_or_id in (i.name, i.id) for i in self.cloud.instances())

    def _instance_names(self, max_age: float = 5.0) -> list[str]:
        at, names = self._names_cache
        if time.monotonic() - at > max_age:
            found = self.cloud.instances()
            names = sorted({i.name for i in found if i.name})
            self._names_cache = (time.monotonic(), names)
        return names

    def _ipython_key_completions_(self) -> list[str]:
        """Instance names for ``ec2["<TAB>``."""
        return self._instance_names()

    def launch(
        self,
        name: str,
        *,
        type: str | None = None,
        image: str | None = None,
        disk: int | None = None,
        spot: bool = False,
        max_price: float | str | None = None,
        zone: str | None = None,
        tags: dict[str, str] | None = None,
        wait: bool = True,
    ) -> Instance:
        """Launch an instance named ``name`` and return once SSH answers (``inv launch``).

        ``type``, ``image`` (name or id), ``disk`` (root GB) and ``max_price`` default as on the
        command line (ec2kit.toml, then t3.medium and the latest Ubuntu LTS); ``spot`` asks for a
        one-time spot instance; ``tags`` are extra tags (``{"role": "web"}``).
        Example: ``ec2.launch("gpu1", type="g5.xlarge", spot=True, disk=80)``.
        """
        from ..actions import launch

        default = self.settings.default
        if disk is None:
            disk = default("disk")
        if disk is not None and not 1 <= int(disk) <= 16384:
            raise ConfigError(f"disk={disk}: a disk is 1 to 16384 GB.", hint="Example: disk=60.")
        for key in tags or {}:
            if key == "Name" or key.lower().startswith(_RESERVED_TAGS):
                raise ConfigError(
                    f"Tag '{key}' is reserved: the Name tag is the instance's name, and ec2kit: and aws: tags are set "
                    "by ec2kit and AWS.",
                    hint="Pick another key, e.g. role.",
                )
        with self._progress(f"Launching {name}") as progress:
            info = launch(
                self.ctx,
                name,
                wait=wait,
                progress=progress,
                image=image or default("image"),
                disk=disk,
                type=type or default("type") or "t3.medium",
                spot=spot,
                max_price=max_price or default("max_price"),
                zone=zone,
                tags=dict(tags) if tags else None,
            )
        self._names_cache = (0.0, [])
        return Instance(self, info)

    # -- images, volumes, snapshots ----------------------------------------------------------
    def freeze(self, instance: str | Instance, *, image_name: str | None = None) -> Image:
        """Make an image of an instance through recipes/freeze.toml (``inv freeze``); waits until it is available.

        Named after the instance unless ``image_name``; launch from it with ``ec2.launch(NAME, image=...)``.
        """
        from ..recipe import load_recipe, run_recipe

        inst = self.instance(instance)
        host = inst.name or inst.id
        report = run_recipe(
            self.ctx,
            load_recipe("freeze"),
            hosts=[host],
            vars={"image_name": image_name} if image_name else {},
            reporter=self._reporter(),
        )
        RecipeReport(report, "freeze").raise_for_failure()
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

        if size is None and snapshot is None:
            raise ConfigError("create_volume needs a size in GB for a blank volume, or snapshot=NAME.")
        if size is not None and not 1 <= int(size) <= 16384:
            raise ConfigError(f"size={size}: a volume is 1 to 16384 GB.", hint="Example: ec2.create_volume(inst, 20).")
        inst = self.instance(instance)
        with self._progress(f"Making volume for {inst.label}") as progress:
            return make_volume(
                self.ctx, inst.id, size=size, name=name, snapshot=snapshot, mountpoint=mountpoint, progress=progress
            )

    def mount_volume(self, volume: str | Volume, instance: str | Instance, *, mountpoint: str = DEFAULT_MOUNT) -> Volume:
        """Attach an existing volume to an instance (if needed) and mount it (``inv mount-volume``)."""
        from ..actions import mount_volume

        with self._progress(f"Mounting {_id(volume)}") as progress:
            return mount_volume(self.ctx, _id(volume), self.instance(instance).id, mountpoint=mountpoint, progress=progress)

    def detach_volume(self, volume: str | Volume, *, mountpoint: str = DEFAULT_MOUNT) -> Volume:
        """Unmount a volume on its instance, then detach it (``inv detach-volume``)."""
        from ..actions import detach_volume

        with self._progress(f"Detaching {_id(volume)}") as progress:
            return detach_volume(self.ctx, _id(volume), mountpoint=mountpoint, progress=progress)

    def delete_volume(self, volume: str | Volume, *, mountpoint: str = DEFAULT_MOUNT) -> None:
        """Unmount and detach a volume if attached, then delete it (its data is gone; snapshot it first to keep it)."""
        vol = self.detach_volume(volume, mountpoint=mountpoint)
        self.cloud.delete_volume(vol)

    def snapshot(self, volume: str | Volume, *, name: str | None = None, wait: bool = False) -> Snapshot:
        """Snapshot a volume, detaching it cleanly first if attached (``inv snapshot``)."""
        from ..actions import snapshot

        with self._progress(f"Snapshotting {_id(volume)}") as progress:
            snap: Snapshot = snapshot(self.ctx, _id(volume), name=name, wait=wait, progress=progress)
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
            columns=("name", "id", "size", "state", "progress", "volume"),
            row=lambda s: (s.name, s.id, f"{s.size} GB", s.state, s.progress, s.volume_id),
            empty="No snapshots. Make one with ec2.snapshot(VOLUME).",
        )

    # -- recipes -------------------------------------------------------------------------------
    def recipes(self) -> Listing[RecipeInfo]:
        """The recipes in ./recipes and the built-in ones."""
        from ..recipe import list_recipes

        return Listing(
            list_recipes(),
            title="Recipes",
            columns=("name", "description", "variables"),
            row=lambda r: (r.name, r.description, ", ".join(f"{k}={v!r}" for k, v in (r.vars or {}).items())),
            empty="No recipes found.",
        )

    def recipe(self, name_or_path: str) -> Recipe:
        """Load a recipe by name (./recipes, then the built-ins) or path: ``ec2.recipe("base").run(on="web1")``."""
        from ..recipe import load_recipe

        return Recipe(self, load_recipe(name_or_path))

    # -- spot runs -------------------------------------------------------------------------------
    def spot_run(
        self,
        script: str | Path,
        *,
        files: str | Path | None = None,
        name: str | None = None,
        image: str | None = None,
        type: str | None = None,
        types: Sequence[str] = (),
        disk: int | None = None,
        snapshot: str | None = None,
        results: str | Path | None = None,
        max_price: float | str | None = None,
        retries: int = 0,
        monitor: str | None = None,
        detach: bool = False,
        keep: bool = False,
        max_hours: float | None = None,
        vars: dict[str, Any] | None = None,
    ) -> Run:
        """Run a script on a spot instance (``inv spot-run``): results sync to ``runs/RUN`` (or ``results``), everything
        is cleaned up at the end. Returns when the script ended (``detach=True``: once it started).

        Example: ``run = ec2.spot_run("train.sh", files="train.py", retries=1); run.metrics()["loss"].latest``.
        """
        from .. import spotrun

        default = self.settings.default
        options = spotrun.SpotRunOptions(
            script=str(script),
            files=str(files) if files is not None else None,
            name=name,
            image=image or default("image"),
            type=type or default("type") or "m5.large",
            types=list(types) or list(default("types")),
            disk=disk if disk is not None else default("disk"),
            snapshot=snapshot,
            results=str(results) if results is not None else None,
            max_price=max_price or default("max_price"),
            retries=retries,
            monitor=monitor,
            detach=detach,
            keep=keep,
            max_hours=max_hours,
            vars=dict(vars or {}),
        )
        if self.quiet:
            options.out = options.say = _silent
        record = spotrun.spot_run(self.ctx, options)
        return Run(self, record.name, record)

    def runs(self, *, all: bool = False) -> Listing[Run]:
        """Spot runs, newest first (finished ones older than a week only with ``all``); detached runs are checked first."""
        from .. import spotrun

        found = spotrun.list_runs(self.ctx)
        if not all:
            week_ago = time.time() - 7 * 86400
            found = [r for r in found if r.live or r.awaiting_pull or r.created_at >= week_ago]
        spotrun.refresh(self.ctx, found)
        return Listing(
            [Run(self, r.name, r) for r in found],
            title="Runs",
            columns=("name", "state", "type", "instance", "exit", "time", "cost", "metrics"),
            row=_run_row,
            empty="No runs yet. Start one with ec2.spot_run('train.sh').",
        )

    def cleanup(self, *, dry_run: bool = True) -> Listing[Leftover]:
        """What spot runs left behind (instances, volumes, spot requests of runs that are over), as ``inv cleanup``
        lists it; ``dry_run=False`` removes them. Your named machines, volumes and snapshots are never touched."""
        from .. import spotrun

        return Listing(
            spotrun.cleanup(self.ctx, dry_run=dry_run),
            title="Leftovers" if dry_run else "Removed",
            columns=("kind", "id", "name", "why"),
            row=lambda x: (x.kind, x.id, x.name, x.reason),
            empty="Nothing to clean up.",
        )

    def run(self, name: str) -> Run:
        """The spot run called ``name``; NotFound with close names otherwise."""
        from ..runs import Runs

        return Run(self, name, Runs(self.settings.runs_db).get(name))

    def __repr__(self) -> str:
        ctx = self.ctx
        if not ctx.where.contacted:
            mode = {True: "sandbox", False: "AWS", None: "AWS, or the sandbox without credentials"}[self.settings.sandbox]
            return f"<EC2 {mode} (not contacted yet), home {self.settings.home}>"
        where = "sandbox" if ctx.sandbox is not None else f"AWS profile {self.settings.profile or 'default'}"
        return f"<EC2 {where}, region {ctx.cloud.region}, home {self.settings.home}>"
