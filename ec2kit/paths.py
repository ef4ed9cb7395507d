"""Where ec2kit's own files live: the built-in recipes, templates and examples.

The bottom of the tree: it imports nothing from ec2kit, so every layer may use it.

The built-in ``recipes/``, ``templates/`` and ``examples/`` are top-level folders of the source
tree; the wheel ships them as package data under ``ec2kit/data/`` (setup.py maps them there).
The tree itself holds no symlink, so a copy made without symlink support (a zip, a plain ``cp``
of the tracked files) still finds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

DataKind = Literal["recipes", "templates", "examples"]

_PACKAGE = Path(__file__).resolve().parent


def data_dir(kind: DataKind) -> Path:
    """The built-in ``recipes``, ``templates`` or ``examples`` folder: package data when installed
    from a wheel, else the source checkout's top-level folder (an editable install or PYTHONPATH)."""
    packaged = _PACKAGE / "data" / kind
    return packaged if packaged.is_dir() else _PACKAGE.parent / kind
