"""What names an image or a snapshot (config files, recipes, live runs and sweeps), and the storage nothing uses.

``inv delete-image`` / ``delete-snapshot`` refuse what something here names; ``inv cleanup`` offers the
ec2kit volumes, snapshots and images nothing uses, older than ``--older-than``, with a monthly cost from
:data:`PLACEHOLDER_STORAGE_PRICES` (to be replaced by the price table of ``inv costs``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..aws.models import Image, Snapshot, Volume
    from ..context import Context
    from ..spotrun import Leftover

#: USD per GiB-month, us-east-1 list prices (Dec 2026). A placeholder until the price table of `inv costs`
#: lands: replace this one table (and :func:`monthly_cost`) with it. Snapshots are priced at the standard
#: tier's full size, an upper bound (EBS bills only the blocks a snapshot stores).
PLACEHOLDER_STORAGE_PRICES: dict[str, float] = {
    "gp3": 0.08,
    "gp2": 0.10,
    "io1": 0.125,
    "io2": 0.125,
    "st1": 0.045,
    "sc1": 0.015,
    "standard": 0.05,
    "snapshot": 0.05,
}


@dataclass
class Deletion:
    """What ``delete_volume`` / ``delete_snapshot`` / ``delete_image`` removes (or would, with ``dry_run``)."""

    kind: str  # volume | snapshot | image
    id: str
    name: str
    size: int  # GiB
    monthly: float  # USD per month it stops costing
    snapshots: list[str] = field(default_factory=list)  # an image's snapshots deleted with it
    done: bool = False  # False: a dry run (nothing deleted yet)

    @property
    def label(self) -> str:
        """``data (vol-0abc…)``."""
        return f"{self.name} ({self.id})" if self.name else self.id


def monthly_cost(size_gib: int, kind: str) -> float:
    """USD per month for ``size_gib`` of a volume type (``gp3``, …) or of ``snapshot``; an unknown type as gp2."""
    return round(size_gib * PLACEHOLDER_STORAGE_PRICES.get(kind or "gp2", PLACEHOLDER_STORAGE_PRICES["gp2"]), 2)


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


def unused_storage(ctx: Context, older_than: float, skip: Iterable[str] = ()) -> list[Leftover]:
    """ec2kit's volumes (unattached), snapshots (no image, recipe or live run uses them) and images (no config,
    recipe or live run names them) older than ``older_than`` seconds, each with its size and monthly cost.
    ``skip``: ids already listed (a run's volumes)."""
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
                found.append(Leftover("volume", vol.id, vol.name, why, vol.size, monthly_cost(vol.size, vol.type)))
    images: list[Image] = cloud.images()
    for snap in cloud.snapshots():
        age = old(snap.start_time)
        if age is None or snap.id in skip or snap.state != "completed" or mentions.of_snapshot(snap, images):
            continue
        why = f"snapshot no image uses, made {_days(age)} ago"
        found.append(Leftover("snapshot", snap.id, snap.name, why, snap.size, monthly_cost(snap.size, "snapshot")))
    for image in images:
        age = old(image.creation_date)
        if image.tags.get(MANAGED_TAG) != "1" or age is None or image.state != "available" or image.id in skip:
            continue
        if mentions.of_image(image):
            continue
        why = f"image nothing names, made {_days(age)} ago ({len(image.snapshot_ids)} snapshot(s))"
        found.append(Leftover("image", image.id, image.name, why, image.size, monthly_cost(image.size, "snapshot")))
    return found
