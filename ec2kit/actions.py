"""Verbs that need both AWS and SSH: launch and wait, start, data volumes.

Each is usable from Python (a notebook) as well as from the command line and
from recipes' Python tasks. Shell snippets are built by pure functions so they
can be shown in check mode and tested as strings.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING

from .defaults import DEFAULT_MOUNT
from .errors import SandboxError, WrongState

if TYPE_CHECKING:
    from .aws.launch import LaunchPlan
    from .aws.models import Instance, Volume
    from .context import Context

Progress = Callable[[str], None] | None


def wait_ssh(ctx: Context, instance: Instance, *, timeout: float = 300, progress: Progress = None) -> None:
    """Block until the instance accepts our key over SSH (host key pinned on first contact).

    Through the same transport as every command (:func:`ec2kit.ssh.connect`), so the shared
    connection this opens is still there for an `inv provision` right after `inv launch`.
    """
    from .ssh import wait_ssh as _wait

    _wait(ctx.target(instance), timeout=timeout, progress=progress)


def launch(ctx: Context, name: str, *, wait: bool = True, progress: Progress = None, **options: object) -> Instance:
    """Launch an instance named ``name`` and, with ``wait``, return once SSH answers.

    ``options`` are :meth:`ec2kit.aws.cloud.Cloud.launch`'s (image, disk, type, spot, …).
    """
    cloud = ctx.cloud
    fleet_options = {k: options.pop(k) for k in ("types", "on_demand_fallback") if k in options}
    plan = cloud.plan_launch(name, **options)  # type: ignore[arg-type]
    if not ctx.quiet:
        from .ui import info

        say_launch_plan(plan, info)
    inst = cloud.launch(plan, progress=progress, **fleet_options)  # type: ignore[arg-type]
    if wait:
        try:
            wait_ssh(ctx, inst, progress=progress)
        except KeyboardInterrupt:
            # A half-launched machine the user gave up on is a running bill: remove it.
            cloud.terminate(inst.id)
            raise
        inst = cloud.instance(inst.id)
    return inst


def say_launch_plan(plan: LaunchPlan, say: Callable[[str], None], prefix: str = "") -> None:
    """The lines a launch says before it starts: which image and why; a warning for --open-ssh."""
    if plan.image_note:
        say(f"{prefix}Image: {plan.image_note}")
    if plan.network_note:
        say(f"{prefix}Network: {plan.network_note}")
    if plan.open_ssh:
        say(
            f"{prefix}Warning: --open-ssh allows SSH from anywhere (0.0.0.0/0) to every instance in "
            "ec2kit's security group; only your key opens it, but the whole internet can knock. "
            "`inv access --prune` narrows it to your address again."
        )


def start(ctx: Context, name: str, *, wait: bool = True, progress: Progress = None) -> Instance:
    """Start a stopped instance; with ``wait``, return once SSH answers."""
    inst = ctx.cloud.start(name, progress=progress)
    if wait:
        ctx.forget_host(inst.id)
        wait_ssh(ctx, inst, progress=progress)
    return ctx.cloud.instance(inst.id)


# -- data volumes -------------------------------------------------------------------


def device_candidates(volume_id: str, device: str | None) -> list[str]:
    """Where an attached EBS volume shows up on Linux.

    Nitro instances name NVMe devices after the volume id; Xen ones rename
    /dev/sdX to /dev/xvdX.
    """
    names = [f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{volume_id.replace('-', '')}"]
    if device:
        names += [device, device.replace("/dev/sd", "/dev/xvd")]
    return names


def mount_script(
    candidates: list[str], mountpoint: str, *, format_blank: bool, owner: str, label: str = "data", wait_seconds: int = 60
) -> str:
    """Shell that finds the device, formats it if blank (and allowed), mounts it and hands it to ``owner``.

    Idempotent: an already-mounted mountpoint is left as it is.
    """
    q = shlex.quote
    cands = " ".join(q(c) for c in candidates)
    fmt = (
        f'  if ! sudo blkid "$dev" >/dev/null 2>&1; then sudo mkfs.ext4 -q -L {q(label[:16])} "$dev"; echo formatted; fi\n'
        if format_blank
        else '  sudo blkid "$dev" >/dev/null 2>&1 || { echo "device $dev has no filesystem" >&2; exit 3; }\n'
    )
    return (
        "set -e\n"
        f"if mountpoint -q {q(mountpoint)}; then echo already-mounted; exit 0; fi\n"
        "dev=\n"
        f"for i in $(seq 1 {wait_seconds * 2}); do\n"
        f'  for c in {cands}; do if [ -b "$c" ]; then dev=$(readlink -f "$c"); break 2; fi; done\n'
        "  sleep 0.5\n"
        "done\n"
        '[ -n "$dev" ] || { echo "the volume did not appear on this machine" >&2; exit 2; }\n'
        "if true; then\n"
        f"{fmt}"
        "fi\n"
        f"sudo mkdir -p {q(mountpoint)}\n"
        f'sudo mount "$dev" {q(mountpoint)}\n'
        f"sudo chown {q(owner)} {q(mountpoint)}\n"
        "echo mounted\n"
    )


def unmount_script(mountpoint: str) -> str:
    """Shell that flushes and unmounts ``mountpoint`` if mounted."""
    q = shlex.quote(mountpoint)
    return f"sync; if mountpoint -q {q}; then sudo umount {q} && echo unmounted; else echo not-mounted; fi\n"


def _require_volume_support(ctx: Context) -> None:
    if ctx.sandbox is not None:
        from . import sandbox

        if not sandbox.volumes_supported():
            raise SandboxError(
                "Volumes need root in the sandbox: it backs them with loop devices, which only root can attach.",
                hint="Run as root (e.g. in a throwaway VM or CI), or try volumes on real AWS.",
            )


def make_volume(
    ctx: Context,
    instance: str,
    *,
    size: int | None = None,
    name: str | None = None,
    snapshot: str | None = None,
    mountpoint: str = DEFAULT_MOUNT,
    progress: Progress = None,
) -> Volume:
    """Create a volume in the instance's zone, attach it and mount it at ``mountpoint``.

    A blank volume is formatted ext4 first; one made from ``snapshot`` is mounted as it is.
    """
    _require_volume_support(ctx)
    cloud = ctx.cloud
    inst = cloud.instance(instance)
    if inst.state != "running":
        raise WrongState(
            f"Instance '{inst.name or inst.id}' is {inst.state}; a volume can only be mounted on a running instance.",
            hint=f"Start it with `inv start {inst.name or inst.id}`.",
        )
    say = progress or (lambda _message: None)
    say(f"creating a {f'{size} GB ' if size else ''}volume" + (f" from snapshot {snapshot}" if snapshot else ""))
    vol = cloud.create_volume(size=size, snapshot=snapshot, zone=inst.zone, name=name or inst.name or inst.id, progress=progress)
    try:
        vol = cloud.attach_volume(vol, inst, progress=progress)
        say(f"{'formatting and ' if snapshot is None else ''}mounting {vol.id} at {mountpoint}")
        host = ctx.connect(inst)
        script = mount_script(
            device_candidates(vol.id, vol.device),
            mountpoint,
            format_blank=snapshot is None,
            owner=host.target.user,
            label=vol.name or "data",
        )
        host.run("bash -s", stdin=script)
    except BaseException:
        # Leave nothing half-made behind: a detached, deleted volume costs nothing.
        _discard_volume(ctx, vol)
        raise
    return cloud.volume(vol.id)


def _discard_volume(ctx: Context, vol: Volume) -> None:
    try:
        current = ctx.cloud.volume(vol.id)
        if current.attached_to:
            ctx.cloud.detach_volume(current)
        ctx.cloud.delete_volume(current)
    except Exception:  # noqa: BLE001 - best effort during error handling
        pass


def mount_volume(
    ctx: Context, volume: str, instance: str, *, mountpoint: str = DEFAULT_MOUNT, progress: Progress = None
) -> Volume:
    """Attach an existing volume to an instance (if needed) and mount it."""
    _require_volume_support(ctx)
    cloud = ctx.cloud
    vol, inst = cloud.volume(volume), cloud.instance(instance)
    if vol.attached_to and vol.attached_to != inst.id:
        raise WrongState(
            f"Volume '{vol.name or vol.id}' is attached to {vol.attached_to}.",
            hint=f"Detach it first: `inv detach-volume {vol.name or vol.id}`.",
        )
    if not vol.attached_to:
        vol = cloud.attach_volume(vol, inst, progress=progress)
    if progress:
        progress(f"mounting {vol.id} at {mountpoint}")
    host = ctx.connect(inst)
    host.run(
        "bash -s",
        stdin=mount_script(device_candidates(vol.id, vol.device), mountpoint, format_blank=False, owner=host.target.user),
    )
    return cloud.volume(vol.id)


def detach_volume(ctx: Context, volume: str, *, mountpoint: str = DEFAULT_MOUNT, progress: Progress = None) -> Volume:
    """Unmount a volume on its instance (so no write is lost), then detach it."""
    cloud = ctx.cloud
    vol = cloud.volume(volume)
    if not vol.attached_to:
        return vol
    inst = cloud.instance(vol.attached_to)
    if is_root_disk(vol, inst):
        raise WrongState(
            f"Volume {vol.name or vol.id} ({vol.id}) is the root disk of instance {inst.label} ({vol.device}): "
            "ec2kit never detaches an instance's root disk.",
            hint=f"`inv freeze {inst.name or inst.id}` makes an image of it; `inv terminate` removes it with the instance.",
        )
    if inst.state == "running":
        ctx.connect(inst).run("bash -s", stdin=unmount_script(mountpoint))
    return cloud.detach_volume(vol)


def is_root_disk(vol: Volume, inst: Instance) -> bool:
    """Whether ``vol`` is attached to ``inst`` as its root device (it carries the instance's Name tag, too)."""
    root = inst.raw.get("RootDeviceName")
    return bool(vol.attached_to == inst.id and vol.device and root and vol.device == root)


def snapshot(
    ctx: Context,
    volume: str,
    *,
    name: str | None = None,
    wait: bool = False,
    mountpoint: str = DEFAULT_MOUNT,
    progress: Progress = None,
):
    """Snapshot a volume, detaching it cleanly first when it is attached (journey 3)."""
    vol = ctx.cloud.volume(volume)
    if vol.attached_to:
        inst = ctx.cloud.instance(vol.attached_to)
        if is_root_disk(vol, inst):  # snapshotted in place: crash-consistent, the instance keeps running
            if progress:
                progress(
                    f"{vol.name or vol.id} is the root disk of {inst.label}: snapshotting it attached "
                    f"(crash-consistent; `inv freeze {inst.name or inst.id}` makes a bootable image)"
                )
        else:
            vol = detach_volume(ctx, vol.id, mountpoint=mountpoint, progress=progress)
    return ctx.cloud.create_snapshot(vol, name=name or vol.name, wait=wait, progress=progress)
