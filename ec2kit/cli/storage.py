"""Images (freeze), volumes and snapshots."""

from __future__ import annotations

from typing import Any

from .. import ui
from ..context import Context
from ..defaults import DEFAULT_MOUNT
from ._common import WIDE_HELP, command, confirm, domain, shown


@command(
    help={
        "name": "instance to freeze into an image",
        "image_name": "name of the image (default: the instance's name)",
        "check": "change nothing: show the AWS call that would be made (EC2 DryRun)",
        "json": "print JSON",
    }
)
def freeze(ctx: Context, name: str, image_name: str | None = None, check: bool = False, json: bool = False) -> None:
    """Make an AMI from an instance through recipes/freeze.toml (the instance reboots); waits until it is available."""
    import sys

    from invoke.exceptions import Exit

    from ..api import RecipeFailed

    try:
        done = domain(ctx).freeze(name, image_name=image_name, check=check, stream=sys.stderr if json else sys.stdout)
    except RecipeFailed:
        raise Exit(code=2) from None  # the report already said which step failed and why
    if check:
        if not done.ok:
            raise Exit(code=2)
        return
    if json:
        ui.print_json(done)
    else:
        ui.console().print(shown(f"{done.name}  {done.id}  {done.state}"))


@command(help={"json": "print JSON", "wide": WIDE_HELP})
def images(ctx: Context, json: bool = False, wide: bool = False) -> None:
    """List your images (AMIs)."""
    _list(
        domain(ctx).images(),
        json,
        "No images yet. Make one with `inv freeze NAME`.",
        priority=("name", "state", "id", "created", "snapshots"),
        minimum={"name": 24, "id": 21},
        wide=wide,
    )


def _list(found, json: bool, empty: str, **fit: Any) -> None:  # noqa: ANN001 - a Listing of images, volumes or snapshots
    """A listing as JSON, or as its table fitted to the terminal (``fit``: priority, minimum, wide), with the
    command line's hint when empty."""
    if json:
        ui.print_json(list(found))
        return
    title, columns, rows, _ = found._show()
    ui.print_table(title, list(columns), rows, empty=empty, **fit)


@command(
    name="make-volume",
    help={
        "instance": "instance to attach the volume to (its zone is used)",
        "size": "size in GB (default: the snapshot's size)",
        "name": "Name tag of the volume (default: the instance's name)",
        "snapshot": "make the volume from this snapshot (name or id) instead of blank",
        "mountpoint": "where to mount it (default /mnt/data)",
        "json": "print JSON",
    },
)
def make_volume(
    ctx: Context,
    instance: str,
    size: int | None = None,
    name: str | None = None,
    snapshot: str | None = None,
    mountpoint: str = DEFAULT_MOUNT,
    json: bool = False,
) -> None:
    """Create a volume, attach it, format it (blank only) and mount it. Example: inv make-volume base --size 20 --name data"""
    vol = domain(ctx).create_volume(instance, size, name=name, snapshot=snapshot, mountpoint=mountpoint)
    _show_volume(vol, json, mountpoint)


def _show_volume(vol, json: bool, mountpoint: str | None = None) -> None:
    if json:
        ui.print_json(vol)
        return
    where = f" on {vol.attached_to}" + (f" at {mountpoint}" if mountpoint else "") if vol.attached_to else ""
    ui.console().print(shown(f"{vol.name}  {vol.id}  {vol.size} GB  {vol.state}{where}"))


@command(
    name="mount-volume",
    help={"volume": "volume name or id", "instance": "instance name or id", "mountpoint": "mount point (default /mnt/data)"},
)
def mount_volume(ctx: Context, volume: str, instance: str, mountpoint: str = DEFAULT_MOUNT) -> None:
    """Attach an existing volume to an instance and mount it."""
    _show_volume(domain(ctx).mount_volume(volume, instance, mountpoint=mountpoint), False, mountpoint)


@command(name="detach-volume", help={"volume": "volume name or id", "mountpoint": "where it is mounted (default /mnt/data)"})
def detach_volume(ctx: Context, volume: str, mountpoint: str = DEFAULT_MOUNT) -> None:
    """Unmount a volume on its instance, then detach it."""
    _show_volume(domain(ctx).detach_volume(volume, mountpoint=mountpoint), False)


@command(
    help={
        "volume": "volume name or id",
        "name": "snapshot name (default: the volume's)",
        "wait": "wait until completed",
        "mountpoint": "where it is mounted, if attached (default /mnt/data)",
        "json": "print JSON",
    }
)
def snapshot(
    ctx: Context, volume: str, name: str | None = None, wait: bool = False, mountpoint: str = DEFAULT_MOUNT, json: bool = False
) -> None:
    """Snapshot a volume, unmounting and detaching it cleanly first if attached."""
    snap = domain(ctx).snapshot(volume, name=name, wait=wait, mountpoint=mountpoint)
    if json:
        ui.print_json(snap)
    else:
        ui.console().print(shown(f"{snap.name}  {snap.id}  {snap.state}"))


def _delete(kind: str, check: Any, act: Any, yes: bool, json: bool) -> None:
    """Shared by the delete-* tasks: the domain checks (dry run), the question, the deletion, one line saying so."""
    from ..untrusted import visible

    planned = check()
    what = f"{kind} {planned.label}" + (f", {planned.size} GB" if planned.size else "")
    if planned.snapshots:
        what += f", with its snapshot(s) {', '.join(planned.snapshots)}"
    if planned.monthly is None:
        cost = "its monthly cost unknown: no price found"
    else:
        cost = f"about ${planned.monthly:.2f} a month" if kind == "volume" else f"up to ${planned.monthly:.2f} a month"
    if planned.prices_note:
        ui.info(f"Priced at {planned.prices_note}.")
    question = visible(f"Delete {what} ({cost})? It cannot be undone.", one_line=True)  # input() prints it, not rich
    if not confirm(question, yes=yes, refusal=f"not deleting {kind} {planned.label} without --yes (no terminal to ask on)."):
        ui.console().print("Nothing deleted.")
        return
    gone = act()
    if json:
        ui.print_json(gone)
        return
    also = f" and its snapshot(s) {', '.join(gone.snapshots)}" if gone.snapshots else ""
    ui.console().print(shown(f"Deleted {kind} {gone.label}{also}; saves {cost}."))


@command(
    name="delete-volume",
    help={
        "volume": "volume name or id",
        "yes": "delete without asking",
        "detach": "unmount and detach it first if attached (otherwise an attached volume is refused)",
        "mountpoint": "where it is mounted, with --detach (default /mnt/data)",
        "json": "print what was deleted as JSON",
    },
)
def delete_volume(
    ctx: Context, volume: str, yes: bool = False, detach: bool = False, mountpoint: str = DEFAULT_MOUNT, json: bool = False
) -> None:
    """Delete a volume and its data, asking first.

    An attached volume is refused (--detach unmounts and detaches it first); snapshot it to keep the data.
    """
    ec2 = domain(ctx)
    _delete(
        "volume",
        lambda: ec2.delete_volume(volume, detach=detach, mountpoint=mountpoint, dry_run=True),
        lambda: ec2.delete_volume(volume, detach=detach, mountpoint=mountpoint),
        yes,
        json,
    )


@command(
    name="delete-snapshot",
    help={"snapshot": "snapshot name or id", "yes": "delete without asking", "json": "print what was deleted as JSON"},
)
def delete_snapshot(ctx: Context, snapshot: str, yes: bool = False, json: bool = False) -> None:
    """Delete a snapshot, asking first.

    Refuses one an image is made from (delete the image), or that a recipe or a live run uses.
    """
    ec2 = domain(ctx)
    _delete("snapshot", lambda: ec2.delete_snapshot(snapshot, dry_run=True), lambda: ec2.delete_snapshot(snapshot), yes, json)


@command(
    name="delete-image",
    help={"image": "image name or id", "yes": "delete without asking", "json": "print what was deleted as JSON"},
)
def delete_image(ctx: Context, image: str, yes: bool = False, json: bool = False) -> None:
    """Deregister an image and delete its snapshots, asking first.

    Refuses one that ec2kit.toml or ~/.ec2kit/config.toml (image = ...), a recipe or a live run names.
    """
    ec2 = domain(ctx)
    _delete("image", lambda: ec2.delete_image(image, dry_run=True), lambda: ec2.delete_image(image), yes, json)


@command(help={"json": "print JSON", "wide": WIDE_HELP})
def volumes(ctx: Context, json: bool = False, wide: bool = False) -> None:
    """List volumes: name, id, size, state, zone, attached instance."""
    _list(
        domain(ctx).volumes(),
        json,
        "No volumes. Make one with `inv make-volume INSTANCE --size GB`.",
        priority=("name", "state", "size", "attached to", "id", "zone", "from snapshot"),
        minimum={"name": 24, "id": 21, "attached to": 19},
        wide=wide,
    )


@command(help={"json": "print JSON", "wide": WIDE_HELP})
def snapshots(ctx: Context, json: bool = False, wide: bool = False) -> None:
    """List snapshots ec2kit made (and ones you name explicitly elsewhere by id)."""
    _list(
        domain(ctx).snapshots(),
        json,
        "No snapshots. Make one with `inv snapshot VOLUME`.",
        priority=("name", "state", "size", "progress", "id", "volume", "started"),
        minimum={"name": 24, "id": 22},
        wide=wide,
    )


@command(
    help={
        "family": "instance family or type prefix, e.g. m5, p3, g5.xlarge",
        "json": "print JSON",
        "no_spot": "skip spot prices",
        "wide": WIDE_HELP,
    }
)
def prices(ctx: Context, family: str, json: bool = False, no_spot: bool = False, wide: bool = False) -> None:
    """On-demand (AWS Pricing API) and current spot prices by zone for an instance family."""
    found = domain(ctx).prices(family, no_spot=no_spot)
    if json:
        ui.print_json({p.type: {"on_demand": p.on_demand, "spot": p.spot, "gpu": p.gpu} for p in found})
        return
    title, columns, rows, empty = found._show()
    ui.print_table(title, list(columns), rows, empty=empty, priority=("type", "gpu", "on-demand"), wide=wide)


@command(
    help={
        "model": "only this GPU model, e.g. A10G, L4, A100 (default: all)",
        "json": "print JSON",
        "no_spot": "skip spot prices",
        "wide": WIDE_HELP,
    }
)
def gpus(ctx: Context, model: str | None = None, json: bool = False, no_spot: bool = False, wide: bool = False) -> None:
    """GPU instance types offered in the region, cheapest first: GPUs, GPU memory, vCPUs, memory, on-demand and spot price. Example: inv gpus --model A10G"""
    from dataclasses import asdict

    found = domain(ctx).gpus(model, no_spot=no_spot)
    if json:
        ui.print_json([asdict(o) for o in found])
        return
    title, columns, rows, empty = found._show()
    ui.print_table(
        title,
        list(columns),
        rows,
        empty=empty,
        priority=("type", "gpus", "gpu mem", "on-demand", "spot", "vcpus", "memory", "spot zone"),
        minimum={"type": 16, "gpus": 22},  # p6-b200.48xlarge, 8× RTX PRO Server 6000: whole, before the extras
        wide=wide,
    )
