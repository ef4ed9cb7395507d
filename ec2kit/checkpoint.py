"""Write a checkpoint whole or not at all, so a pull, an interruption or a crash never sees half of one.

    from ec2kit.checkpoint import save
    save("results/model.pt", lambda tmp: torch.save(model.state_dict(), tmp))

``save`` hands ``write_fn`` a temporary path beside the target (same filesystem), fsyncs what it wrote,
and renames it over the target in one step: a reader (ec2kit's pull, the replacement instance after
a spot interruption) sees the previous checkpoint or the new one, never a mix. The temporary name
ends in :data:`TEMP_SUFFIX`, which ec2kit's pulls and pushes never carry.

The same idiom in a shell script::

    python make_ckpt.py > "$EC2KIT_RESULTS/model.ckpt.ec2kit-tmp" && mv -f "$EC2KIT_RESULTS/model.ckpt.ec2kit-tmp" "$EC2KIT_RESULTS/model.ckpt"

This module imports only the standard library: a spot run ships it beside the script as
``ec2kit_checkpoint.py`` (``from ec2kit_checkpoint import save`` works on the instance).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["TEMP_SUFFIX", "save"]

TEMP_SUFFIX = ".ec2kit-tmp"


def save(path: str | os.PathLike[str], write_fn: Callable[[str], object]) -> Path:
    """Call ``write_fn(tmp)`` to write a temporary file beside ``path``, then make it ``path`` atomically.

    If ``write_fn`` raises, ``path`` keeps its previous content and the temporary file is removed.
    Returns ``path``. Example: ``save("ckpt.json", lambda tmp: Path(tmp).write_text(json.dumps(state)))``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    os.close(fd)
    try:
        write_fn(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # the rename itself survives a power cut
        dirfd = os.open(target.parent, os.O_DIRECTORY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)
    except OSError:
        pass
    return target
