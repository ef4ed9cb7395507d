"""EBS volumes as loop devices (root only): backing files, by-id symlinks, snapshots.

A volume attached to a running sandbox instance is a sparse file
``D/volumes/<vol-id>.img`` on a loop device, exposed as
``/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<hex>`` — the name AWS
Nitro instances show — so product code finds it the same way on both.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from ...errors import SandboxError

BY_ID_DIR = Path("/dev/disk/by-id")


def by_id_name(volume_id: str) -> str:
    """The device name AWS Nitro gives a volume: ``nvme-Amazon_Elastic_Block_Store_vol0abc…``."""
    return "nvme-Amazon_Elastic_Block_Store_" + volume_id.replace("-", "")


def by_id_path(volume_id: str) -> Path:
    """Where the volume's symlink lives: ``/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol…``."""
    return BY_ID_DIR / by_id_name(volume_id)


def create_argv(image: Path, size_gib: int, source: Path | None) -> list[str]:
    """The command that creates a volume's backing file (copy of a snapshot, or sparse empty)."""
    if source is not None:
        return ["cp", "--sparse=always", str(source), str(image)]
    return ["truncate", "-s", f"{int(size_gib)}G", str(image)]


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SandboxError(f"`{' '.join(argv)}` failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def ensure_backing_file(image: Path, size_gib: int, source: Path | None = None) -> bool:
    """Create the backing file if missing; return True when it was created."""
    if image.exists():
        return False
    image.parent.mkdir(parents=True, exist_ok=True)
    _run(create_argv(image, size_gib, source if source is not None and source.exists() else None))
    if source is not None and source.exists() and size_gib and image.stat().st_size < size_gib * 2**30:
        _run(["truncate", "-s", f"{int(size_gib)}G", str(image)])  # a larger volume from a snapshot
    return True


def attach(volume_id: str, image: Path) -> str:
    """Put ``image`` on a free loop device and link it under /dev/disk/by-id; return the device."""
    device = _run(["losetup", "-f", "--show", str(image)])
    link = by_id_path(volume_id)
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(device)
    return device


def detach(volume_id: str, device: str | None) -> None:
    """Remove the by-id symlink and free the loop device (deferred by the kernel while mounted)."""
    link = by_id_path(volume_id)
    if link.is_symlink():
        link.unlink()
    if device:
        subprocess.run(["losetup", "-d", device], capture_output=True, stdin=subprocess.DEVNULL)


def copy_to_snapshot(image: Path, snapshot: Path) -> None:
    """Copy a volume's backing file into a snapshot file (sparse, atomic rename)."""
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    tmp = snapshot.with_suffix(".tmp")
    _run(["cp", "--sparse=always", str(image), str(tmp)])
    tmp.rename(snapshot)
