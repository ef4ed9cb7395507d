"""Which image a launch gets: aliases (``ubuntu``, ``ubuntu-22.04``, ``gpu``) resolved through AWS's
public SSM parameters for the instance type's architecture, or a name or id you give.

    image, why = cloud.choose_image(None, "t4g.large")
    # why == "ubuntu 24.04 arm64 because t4g.large is Graviton (arm64)"

One ``ssm:GetParameter`` replaces a DescribeImages scan. When SSM cannot be read (permissions,
a region without the parameter), the image is found by name with DescribeImages and ``why`` says so.
The architecture comes from DescribeInstanceTypes (``ProcessorInfo.SupportedArchitectures``);
whether the type has a GPU from its ``GpuInfo``, never from its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, Ec2kitError, NotFound
from .errors import error_code, is_aws_exception, translated
from .images import Images
from .instance_types import InstanceTypes
from .models import CANONICAL_OWNER, Image, filters
from .session import AwsSession

__all__ = ["ALIASES", "Alias", "ImageChoice", "architecture", "nvidia_gpu"]

DLAMI_OWNER = "898082745236"  # AWS's Deep Learning AMIs


@dataclass(frozen=True)
class Alias:
    """An image alias: what it is and where to find it per architecture."""

    label: str  # "ubuntu 24.04"
    parameter: str  # SSM parameter, {arch} = amd64|arm64 (Canonical) or x86_64|arm64 (DLAMI)
    owner: str
    pattern: str  # describe_images name pattern for the fallback, {arch} as in ``parameter``
    canonical_arch: bool = True  # Canonical says amd64, the DLAMI says x86_64

    def arch_name(self, arch: str) -> str:
        return "amd64" if arch == "x86_64" and self.canonical_arch else arch


_NOBLE = Alias(
    "ubuntu 24.04",
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/{arch}/hvm/ebs-gp3/ami-id",
    CANONICAL_OWNER,
    "ubuntu/images/*ubuntu-*-24.04-{arch}-server-*",
)
ALIASES = {
    "ubuntu": _NOBLE,
    "ubuntu-24.04": _NOBLE,
    "ubuntu-22.04": Alias(
        "ubuntu 22.04",
        "/aws/service/canonical/ubuntu/server/22.04/stable/current/{arch}/hvm/ebs-gp2/ami-id",
        CANONICAL_OWNER,
        "ubuntu/images/*ubuntu-*-22.04-{arch}-server-*",
    ),
    "gpu": Alias(
        "gpu (Deep Learning Base OSS Nvidia Driver, Ubuntu 22.04)",
        "/aws/service/deeplearning/ami/{arch}/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id",
        DLAMI_OWNER,
        "Deep Learning *Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)*",
        canonical_arch=False,
    ),
}


def architecture(type_info: dict[str, Any]) -> str:
    """``arm64`` for a type that runs only arm64 (Graviton), else ``x86_64``."""
    archs = type_info.get("ProcessorInfo", {}).get("SupportedArchitectures") or ["x86_64"]
    return "arm64" if "arm64" in archs and "x86_64" not in archs else "x86_64"


def nvidia_gpu(type_info: dict[str, Any]) -> str | None:
    """The NVIDIA GPU's name (``A10G``) when the type has one (DescribeInstanceTypes GpuInfo), else None."""
    for gpu in type_info.get("GpuInfo", {}).get("Gpus") or []:
        if str(gpu.get("Manufacturer", "")).upper() == "NVIDIA":
            return str(gpu.get("Name") or "GPU")
    return None


class ImageChoice:
    """Which image a launch gets (the Cloud forwards ``cloud.choose_image(…)`` here)."""

    def __init__(self, aws: AwsSession, types: InstanceTypes, images: Images) -> None:
        self.aws = aws
        self.types = types
        self.images = images

    @translated("choose an image for {type}")
    def choose_image(self, image: str | None, type: str) -> tuple[Image, str]:
        """(image, why) for a launch of ``type``: ``image`` is an alias, a name or an id; None picks
        ``gpu`` for a type with an NVIDIA GPU, else ``ubuntu`` (24.04), for the type's architecture."""
        info = self.types.info(type)
        arch, gpu = architecture(info), nvidia_gpu(info)
        if image and image.lower() not in ALIASES:
            found = self.images.image(image)
            wanted = found.raw.get("Architecture")
            if wanted and wanted != arch:
                raise ConfigError(
                    f"Image {found.name or found.id} is built for {wanted}, but {type} runs {arch}.",
                    hint="Pick an image of that architecture, an alias (--image ubuntu, gpu) that follows the type, "
                    "or a type of the image's architecture.",
                )
            return found, f"image {found.name or found.id} ({found.id}) as asked"
        name = image.lower() if image else ("gpu" if gpu else "ubuntu")
        alias = ALIASES[name]
        found, how = self._resolve_alias(alias, arch)
        label = "gpu image" + (" arm64" if arch == "arm64" else "") if name == "gpu" else f"{alias.label} {alias.arch_name(arch)}"
        becauses = []
        if gpu and not image:
            becauses.append(f"{type} has an NVIDIA {gpu}")
        if arch == "arm64":
            becauses.append(f"{type} is Graviton")
        why = (f"(--image {image}) " if image else "") + (f"because {' and '.join(becauses)}" if becauses else "")
        if not image and not becauses:
            why = "(the default)"
        return found, f"{label} {why}: {found.name} ({found.id}){how}"

    def _resolve_alias(self, alias: Alias, arch: str) -> tuple[Image, str]:
        """(image, "" or a note that SSM was unreadable and DescribeImages found it instead)."""
        arch_name = alias.arch_name(arch)
        parameter = alias.parameter.format(arch=arch_name)
        try:
            image_id = self.aws.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
            return self.images.image(str(image_id)), ""
        except Exception as err:
            if not (is_aws_exception(err) or isinstance(err, Ec2kitError)):
                raise
            reason = error_code(err) or type(err).__name__
        raw = self.aws.paginate(
            "describe_images",
            "Images[]",
            Owners=[alias.owner],
            Filters=filters(name=alias.pattern.format(arch=arch_name), architecture=arch, state="available"),
        )
        if not raw:
            raise NotFound(
                "image",
                f"{alias.label} {arch_name}",
                hint=f"Neither the SSM parameter {parameter} ({reason}) nor a DescribeImages search found it in "
                f"{self.aws.region}; pass an image name or id with --image.",
            )
        found = Image.from_raw(max(raw, key=lambda r: r.get("CreationDate", "")))
        return found, f" (SSM parameter unreadable: {reason}; found by searching images instead)"
