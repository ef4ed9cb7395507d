"""What names an image or a snapshot (config files, recipes, live runs and sweeps), and the storage nothing uses.

``inv delete-image`` / ``delete-snapshot`` refuse what something here names; ``inv cleanup`` offers the
ec2kit volumes, snapshots and images nothing uses, older than ``--older-than``, with a monthly cost at the
region's prices, the ones ``inv costs`` shows (:mod:`ec2kit.aws.ebs_prices`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .shown import Listing

if TYPE_CHECKING:
    from ..aws.ebs_prices import StoragePrices
    from ..aws.models import Image, Snapshot, Volume
    from ..context import Context
    from ..spotrun import Leftover


@dataclass
class Deletion:
    """What ``delete_volume`` / ``delete_snapshot`` / ``delete_image`` removes (or would, with ``dry_run``)."""

    kind: str  # volume | snapshot | image
    id: str
    name: str
    size: int  # GiB
    monthly: float | None  # USD per month it stops costing (None: no price found)
    snapshots: list[str] = field(default_factory=list)  # an image's snapshots deleted with it
    done: bool = False  # False: a dry run (nothing deleted yet)
    prices_note: str = ""  # why ``monthly`` is at the fallback table's prices (the Pricing API could not be reached)

    @property
    def label(self) -> str:
        """``data (vol-0abc…)``."""
        return f"{self.name} ({self.id})" if self.name else self.id


def monthly_cost(size_gib: int, kind: str, prices: StoragePrices) -> float | None:
    """USD per month for ``size_gib`` of a volume type (``gp3``, …; gp3 when EC2 did not say) or of ``snapshot``,
    at the region's ``prices`` (:meth:`EC2._storage_prices`: those of ``inv costs``); None when it has no price."""
    from ..aws.costs import storage_monthly

    return storage_monthly(size_gib, kind or "gp3", prices)


class Leftovers(Listing["Leftover"]):
    """``ec2.cleanup()``: a list of :class:`Leftover`, and ``prices_note`` when the storage prices are the fallback
    table (the Pricing API could not be reached) rather than the region's."""

    prices_note: str = ""


def _strings(data: Any, key: str) -> Iterator[str]:
    """Every literal string value of ``key`` in a recipe's [vars] and steps (templated ones name nothing yet)."""
    if isinstance(data.get("vars"), dict):
        value = data["vars"].get(key)
        if isinstance(value, str) and "{" not in value:
            yield value
    for step in data.get("step") or []:
        if not isinstance(step, dict) or (key == "image" and step.get("task") == "freeze"):
            continue  # a freeze step names the image it makes, not one it uses
        value = step.get(key)
        if isinstance(value, str) and "{" not in value:
            yield value


def _recipe_mentions(key: str) -> list[tuple[str, Path]]:
    """(value, recipe file) for every recipe on the search path that sets ``key`` literally."""
    from ..errors import RecipeError
    from ..recipe.loader import list_recipes, parse_toml

    found = []
    for info in list_recipes():
        try:
            data = parse_toml(info.path.read_text(errors="replace"), info.path, echo=False)
        except (RecipeError, OSError):
            continue
        found += [(value, info.path) for value in _strings(data, key)]
    return found


def _live_options(ctx: Context) -> list[tuple[str, dict[str, Any]]]:
    """("run NAME" | "sweep NAME", options) of every run and sweep that may still launch from an image or snapshot."""
    from ..runs import Runs
    from ..sweep.records import Sweeps, live_sweep_names

    found = [(f"live run {r.name}", r.options) for r in Runs(ctx.settings.runs_db).all() if r.live]
    live = live_sweep_names(ctx.settings.home)
    found += [(f"live sweep {s.name}", s.options) for s in Sweeps(ctx.settings.home).all() if s.name in live]
    return found


class Mentions:
    """Everything that names images or snapshots, read once: both config files, the recipes, live runs and sweeps."""

    def __init__(self, ctx: Context) -> None:
        from ..config import set_in_files

        self.config = set_in_files(ctx.settings.home, "image")
        self.recipe_images = _recipe_mentions("image")
        self.recipe_snapshots = _recipe_mentions("snapshot")
        self.live = _live_options(ctx)

    def of_image(self, image: Image) -> list[str]:
        """Where an image is named (by name, Name tag or id): ``image`` in ec2kit.toml or config.toml (file:line),
        a recipe, a live run or sweep. Empty: nothing ec2kit knows of launches from it."""
        names = {image.id, image.name, image.tags.get("Name", "")} - {""}
        where = [f"`image = {v!r}` in {at}" for v, at in self.config if v in names]
        where += [f"recipe {path}" for v, path in self.recipe_images if v in names]
        where += [who for who, options in self.live if options.get("image") in names]
        return where

    def of_snapshot(self, snapshot: Snapshot, images: list[Image]) -> list[str]:
        """Where a snapshot is used: images made from it (AWS refuses to delete it alone), recipes and live runs or
        sweeps that make volumes from it."""
        names = {snapshot.id, snapshot.name} - {""}
        where = [f"image {i.name or i.id} ({i.id})" for i in images if snapshot.id in i.snapshot_ids]
        where += [f"recipe {path}" for v, path in self.recipe_snapshots if v in names]
        where += [who for who, options in self.live if options.get("snapshot") in names]
        return where


def _age(when: Any, now: datetime) -> float | None:
    """Seconds since ``when`` (a datetime or AWS's ISO text), or None when unknown."""
    if isinstance(when, str) and when:
        try:
            when = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(when, datetime):
        return None
    stamp: datetime = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return float((now - stamp).total_seconds())


def _days(seconds: float) -> str:
    """``9 d``, ``5 h`` or ``12 min``: how long ago, roughly."""
    if seconds >= 86400:
        return f"{seconds / 86400:.0f} d"
    return f"{seconds / 3600:.0f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def unused_storage(ctx: Context, older_than: float, prices: StoragePrices, skip: Iterable[str] = ()) -> list[Leftover]:
    """ec2kit's volumes (unattached), snapshots (no image, recipe or live run uses them) and images (no config,
    recipe or live run names them) older than ``older_than`` seconds, each with its size and monthly cost at
    ``prices``. ``skip``: ids already listed (a run's volumes)."""
    from ..spotrun import Leftover
    from ..tags import MANAGED_TAG

    cloud, mentions, skip = ctx.cloud, Mentions(ctx), set(skip)
    now = datetime.now(timezone.utc)
    found: list[Leftover] = []

    def old(when: Any) -> float | None:
        age = _age(when, now)
        return age if age is not None and age >= older_than else None

    volumes: list[Volume] = cloud.volumes()
    for vol in volumes:
        age = old(vol.created)
        if vol.tags.get(MANAGED_TAG) == "1" and vol.attached_to is None and vol.state == "available" and age is not None:
            if vol.id not in skip:
                why = f"volume not attached, made {_days(age)} ago"
                found.append(Leftover("volume", vol.id, vol.name, why, vol.size, monthly_cost(vol.size, vol.type, prices)))
    images: list[Image] = cloud.images()
    for snap in cloud.snapshots():
        age = old(snap.start_time)
        if age is None or snap.id in skip or snap.state != "completed" or mentions.of_snapshot(snap, images):
            continue
        why = f"snapshot no image uses, made {_days(age)} ago"
        found.append(Leftover("snapshot", snap.id, snap.name, why, snap.size, monthly_cost(snap.size, "snapshot", prices)))
    for image in images:
        age = old(image.creation_date)
        if image.tags.get(MANAGED_TAG) != "1" or age is None or image.state != "available" or image.id in skip:
            continue
        if mentions.of_image(image):
            continue
        why = f"image nothing names, made {_days(age)} ago ({len(image.snapshot_ids)} snapshot(s))"
        found.append(Leftover("image", image.id, image.name, why, image.size, monthly_cost(image.size, "snapshot", prices)))
    return found
