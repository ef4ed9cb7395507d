"""The images the sandbox's moto server starts with (written to ``MOTO_AMIS_PATH``)."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from typing import Any

CANONICAL_OWNER = "099720109477"
UBUNTU_NAME = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261101"
UBUNTU_AMI_ID = "ami-0e2c8caa4b6378d8c"


def ubuntu_image() -> dict[str, Any]:
    """A Canonical-owned Ubuntu 24.04 LTS image record in moto's AMI JSON format.

    No ``creation_date``: moto parses it in place when it loads the list, so a
    second load (``POST /moto-api/reset``) would fail on the parsed value.
    """
    return {
        "ami_id": UBUNTU_AMI_ID,
        "state": "available",
        "public": True,
        "owner_id": CANONICAL_OWNER,
        "image_location": f"amazon/{UBUNTU_NAME}",
        "sriov": "simple",
        "root_device_type": "ebs",
        "root_device_name": "/dev/sda1",
        "description": "Canonical, Ubuntu, 24.04, amd64 noble image",
        "image_type": "machine",
        "platform": None,
        "architecture": "x86_64",
        "name": UBUNTU_NAME,
        "virtualization_type": "hvm",
        "hypervisor": "xen",
    }


def moto_default_images() -> list[dict[str, Any]]:
    """moto's own default AMI list, read from its package files without importing moto.

    Importing moto would load its AMI list before ``MOTO_AMIS_PATH`` is set.
    Empty when moto is missing or its layout changed (the Ubuntu image suffices).
    """
    spec = importlib.util.find_spec("moto")
    if spec is None or not spec.submodule_search_locations:
        return []
    resources = Path(list(spec.submodule_search_locations)[0]) / "ec2" / "resources"
    try:
        if (resources / "amis.json.gz").exists():
            return list(json.loads(gzip.decompress((resources / "amis.json.gz").read_bytes())))
        return list(json.loads((resources / "amis.json").read_text()))
    except (OSError, ValueError):
        return []


def write_amis(path: Path) -> Path:
    """Write moto's default images plus the sandbox's Ubuntu image to ``path``.

    Must run before moto is imported: moto reads ``MOTO_AMIS_PATH`` at import.
    """
    images = [a for a in moto_default_images() if a.get("ami_id") != UBUNTU_AMI_ID]
    images.append(ubuntu_image())
    path.write_text(json.dumps(images))
    return path
