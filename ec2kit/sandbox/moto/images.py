"""The images the sandbox's moto server starts with (written to ``MOTO_AMIS_PATH``).

Canonical's Ubuntu 24.04 and 22.04 server images (amd64 and arm64) and AWS's Deep Learning
Base OSS Nvidia Driver GPU AMIs (x86_64 and arm64), with realistic names and owners. The SSM
public parameters that name them (``SSM_PARAMETERS``) are seeded by ``aws_behaviours``.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CANONICAL_OWNER = "099720109477"
UBUNTU_NAME = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261101"
UBUNTU_AMI_ID = "ami-0e2c8caa4b6378d8c"
AMAZON_DLAMI_OWNER = "898082745236"  # the account that publishes AWS's Deep Learning AMIs
RELEASE = "20261101"


@dataclass(frozen=True)
class SeededImage:
    """One extra image the sandbox starts with, and the SSM public parameter that names it."""

    ami_id: str
    name: str
    owner: str
    architecture: str  # x86_64 | arm64
    description: str
    parameter: str


EXTRA_IMAGES = (
    SeededImage(
        "ami-0a7a4e87939439934",
        f"ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-{RELEASE}",
        CANONICAL_OWNER,
        "arm64",
        "Canonical, Ubuntu, 24.04, arm64 noble image",
        "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id",
    ),
    SeededImage(
        "ami-005fc0f236362e99f",
        f"ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-{RELEASE}",
        CANONICAL_OWNER,
        "x86_64",
        "Canonical, Ubuntu, 22.04 LTS, amd64 jammy image",
        "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id",
    ),
    SeededImage(
        "ami-0c5777a14602ab4b9",
        f"ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-arm64-server-{RELEASE}",
        CANONICAL_OWNER,
        "arm64",
        "Canonical, Ubuntu, 22.04 LTS, arm64 jammy image",
        "/aws/service/canonical/ubuntu/server/22.04/stable/current/arm64/hvm/ebs-gp2/ami-id",
    ),
    SeededImage(
        "ami-0f1b3c8d6e2a4b590",
        f"Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) {RELEASE}",
        AMAZON_DLAMI_OWNER,
        "x86_64",
        "Supported EC2 instances: G4dn, G5, G6, Gr6, G6e, P4d, P4de, P5, P5e, P5en. NVIDIA driver, CUDA, Docker",
        "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id",
    ),
    SeededImage(
        "ami-0d2e6a7c9b4f13e28",
        f"Deep Learning ARM64 Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) {RELEASE}",
        AMAZON_DLAMI_OWNER,
        "arm64",
        "Supported EC2 instances: G5g, P6e-GB200. NVIDIA driver, CUDA, Docker",
        "/aws/service/deeplearning/ami/arm64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id",
    ),
)

UBUNTU_2404_AMD64_PARAMETER = "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
SSM_PARAMETERS = {UBUNTU_2404_AMD64_PARAMETER: UBUNTU_AMI_ID, **{i.parameter: i.ami_id for i in EXTRA_IMAGES}}


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


def extra_image(image: SeededImage) -> dict[str, Any]:
    """``image`` in moto's AMI JSON format (like :func:`ubuntu_image`)."""
    return {
        **ubuntu_image(),
        "ami_id": image.ami_id,
        "owner_id": image.owner,
        "image_location": f"{'amazon' if image.owner == AMAZON_DLAMI_OWNER else image.owner}/{image.name}",
        "description": image.description,
        "architecture": image.architecture,
        "name": image.name,
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
    """Write moto's default images plus the sandbox's Ubuntu and GPU images to ``path``.

    Must run before moto is imported: moto reads ``MOTO_AMIS_PATH`` at import.
    """
    ours = [ubuntu_image()] + [extra_image(i) for i in EXTRA_IMAGES]
    ids = {i["ami_id"] for i in ours}
    images = [a for a in moto_default_images() if a.get("ami_id") not in ids] + ours
    path.write_text(json.dumps(images))
    return path
