"""Images (freeze), volumes and snapshots."""

from __future__ import annotations

from .. import ui
from ..context import Context
from ._common import WIDE_HELP, check_disk, command, shown


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

    from ..recipe import TextReporter, load_recipe, run_recipe

    inst = ctx.instance(name)
    report = run_recipe(
        ctx,
        load_recipe("freeze"),
        hosts=[inst.name or inst.id],
        vars={"image_name": image_name} if image_name else {},
        check=check,
        reporter=TextReporter(sys.stderr if json else sys.stdout),
    )
    if not report.ok:
        raise Exit(code=2)
    if check:
        return
    image = ctx.cloud.image(image_name or inst.name or inst.id)
    if json:
        ui.print_json(image)
    else:
        ui.console().print(shown(f"{image.name}  {image.id}  {image.state}"))


@command(help={"json": "print JSON", "wide": WIDE_HELP})
def images(ctx: Context, json: bool = False, wide: bool = False) -> None:
    """List your images (AMIs)."""
    found = ctx.cloud.images()
    if json:
        ui.print_json(found)
        return
    rows = [
        (i.name, i.id, i.state, i.creation_date, ", ".join(i.snapshot_ids)) for i in sorted(found, key=lambda i: i.name or "")
    ]
    ui.print_table(
        "Images",
        ["name", "id", "state", "created", "snapshots"],
        rows,
        empty="No images yet. Make one with `inv freeze NAME`.",
        priority=("name", "state", "id", "created", "snapshots"),
        minimum={"name": 24, "id": 21},
        wide=wide,
    )


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
    mountpoint: str = "/mnt/data",
    json: bool = False,
) -> None:
    """Create a volume, attach it, format it (blank only) and mount it. Example: inv make-volume base --size 20 --name data"""
    from ..actions import make_volume as do

    check_disk(size, "--size")
    if size is None and snapshot is None:
        from ..errors import ConfigError

        raise ConfigError("make-volume needs --size GB for a blank volume, or --snapshot NAME.")
    with ui.progress(f"Making volume for {instance}") as progress:
        vol = do(ctx, instance, size=size, name=name, snapshot=snapshot, mountpoint=mountpoint, progress=progress)
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
def mount_volume(ctx: Context, volume: str, instance: str, mountpoint: str = "/mnt/data") -> None:
    """Attach an existing volume to an instance and mount it."""
    from ..actions import mount_volume as do

    with ui.progress(f"Mounting {volume}") as progress:
        vol = do(ctx, volume, instance, mountpoint=mountpoint, progress=progress)
    _show_volume(vol, False, mountpoint)


@command(name="detach-volume", help={"volume": "volume name or id", "mountpoint": "where it is mounted (default /mnt/data)"})
def detach_volume(ctx: Context, volume: str, mountpoint: str = "/mnt/data") -> None:
    """Unmount a volume on its instance, then detach it."""
    from ..actions import detach_volume as do

    with ui.progress(f"Detaching {volume}") as progress:
        vol = do(ctx, volume, mountpoint=mountpoint, progress=progress)
    _show_volume(vol, False)


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
    ctx: Context, volume: str, name: str | None = None, wait: bool = False, mountpoint: str = "/mnt/data", json: bool = False
) -> None:
    """Snapshot a volume, unmounting and detaching it cleanly first if attached."""
    from ..actions import snapshot as do

    with ui.progress(f"Snapshotting {volume}") as progress:
        snap = do(ctx, volume, name=name, wait=wait, mountpoint=mountpoint, progress=progress)
    if json:
        ui.print_json(snap)
    else:
        ui.console().print(shown(f"{snap.name}  {snap.id}  {snap.state}"))


@command(help={"json": "print JSON", "wide": WIDE_HELP})
def volumes(ctx: Context, json: bool = False, wide: bool = False) -> None:
    """List volumes: name, id, size, state, zone, attached instance."""
    found = ctx.cloud.volumes()
    if json:
        ui.print_json(found)
        return
    rows = [
        (v.name, v.id, f"{v.size} GB", v.state, v.zone, v.attached_to, v.snapshot_id)
        for v in sorted(found, key=lambda v: v.name or "")
    ]
    ui.print_table(
        "Volumes",
        ["name", "id", "size", "state", "zone", "attached to", "from snapshot"],
        rows,
        empty="No volumes. Make one with `inv make-volume INSTANCE --size GB`.",
        priority=("name", "state", "size", "attached to", "id", "zone", "from snapshot"),
        minimum={"name": 24, "id": 21, "attached to": 19},
        wide=wide,
    )


@command(help={"json": "print JSON", "wide": WIDE_HELP})
def snapshots(ctx: Context, json: bool = False, wide: bool = False) -> None:
    """List snapshots ec2kit made (and ones you name explicitly elsewhere by id)."""
    found = ctx.cloud.snapshots()
    if json:
        ui.print_json(found)
        return
    rows = [
        (s.name, s.id, f"{s.size} GB", s.state, s.progress, s.volume_id, s.start_time)
        for s in sorted(found, key=lambda s: s.name or "")
    ]
    ui.print_table(
        "Snapshots",
        ["name", "id", "size", "state", "progress", "volume", "started"],
        rows,
        empty="No snapshots. Make one with `inv snapshot VOLUME`.",
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
    from ..aws import prices as p

    demand = p.on_demand_prices(family, ctx.cloud.region, session=ctx.cloud.session) if ctx.sandbox is None else {}
    spot = {} if no_spot else p.spot_prices(family, ctx.cloud)
    if ctx.sandbox is not None:
        ui.info("[dim]The sandbox has no Pricing API: on-demand prices need AWS; spot prices are moto's placeholders.[/dim]")
    types = p.sort_types(set(demand) | set(spot))
    if json:
        ui.print_json({t: {"on_demand": demand.get(t), "spot": spot.get(t, {})} for t in types})
        return
    zones = sorted({z for t in spot.values() for z in t})
    rows = [(t, _money(demand.get(t)), *(_money(spot.get(t, {}).get(z)) for z in zones)) for t in types]
    ui.print_table(
        f"Prices for {family} in {ctx.cloud.region} (USD/hour, Linux)",
        ["type", "on-demand", *(f"spot {z}" for z in zones)],
        rows,
        empty=f"No instance types match '{family}'.",
        priority=("type", "on-demand"),
        wide=wide,
    )


def _money(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if value >= 0.001 else f"{value:.6f}"
