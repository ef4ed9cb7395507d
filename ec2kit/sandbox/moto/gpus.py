"""GPU instance types moto's list lacks, with AWS's ``GpuInfo`` (``install()``).

moto ships AWS's DescribeInstanceTypes answers for g4dn, g5, g6, g6e, p4d, p5 … with their
``GpuInfo``, but not p3 (NVIDIA V100 16 GiB) nor g4ad (AMD Radeon Pro V520 8 GiB), which AWS still
offers in us-east-1. They are added here to the types moto describes and to its region and zone
offerings (so DescribeInstanceTypeOfferings, DescribeSpotPriceHistory, fleets and capacity see them),
built from a type moto has (p3dn.24xlarge, g4dn.xlarge) with AWS's published sizes.
"""

from __future__ import annotations

import copy
from typing import Any

# type: (template type moto has, GPU model, manufacturer, GPUs, MiB per GPU, vCPUs, memory MiB)
MISSING: dict[str, tuple[str, str, str, int, int, int, int]] = {
    "p3.2xlarge": ("p3dn.24xlarge", "V100", "NVIDIA", 1, 16384, 8, 62464),
    "p3.8xlarge": ("p3dn.24xlarge", "V100", "NVIDIA", 4, 16384, 32, 249856),
    "p3.16xlarge": ("p3dn.24xlarge", "V100", "NVIDIA", 8, 16384, 64, 499712),
    "g4ad.xlarge": ("g4dn.xlarge", "Radeon Pro V520", "AMD", 1, 8192, 4, 16384),
    "g4ad.2xlarge": ("g4dn.xlarge", "Radeon Pro V520", "AMD", 1, 8192, 8, 32768),
    "g4ad.4xlarge": ("g4dn.xlarge", "Radeon Pro V520", "AMD", 1, 8192, 16, 65536),
    "g4ad.8xlarge": ("g4dn.xlarge", "Radeon Pro V520", "AMD", 2, 8192, 32, 131072),
    "g4ad.16xlarge": ("g4dn.xlarge", "Radeon Pro V520", "AMD", 4, 8192, 64, 262144),
}
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f")
_installed = False


def record(name: str, spec: tuple[str, str, str, int, int, int, int], template: dict[str, Any]) -> dict[str, Any]:
    """A DescribeInstanceTypes record for ``name`` in AWS's shape."""
    _, model, maker, count, mib, vcpus, memory = spec
    info = copy.deepcopy(template)
    info.pop("InstanceStorageInfo", None)
    info["InstanceStorageSupported"] = False
    info["InstanceType"] = name
    info["VCpuInfo"] = {"DefaultVCpus": vcpus, "DefaultCores": vcpus // 2, "DefaultThreadsPerCore": 2}
    info["MemoryInfo"] = {"SizeInMiB": memory}
    workloads = ["ml-ai"] if maker == "NVIDIA" else ["graphics"]
    gpu = {"Count": count, "Manufacturer": maker, "MemoryInfo": {"SizeInMiB": mib}, "Name": model, "Workloads": workloads}
    info["GpuInfo"] = {"Gpus": [gpu], "TotalGpuMemoryInMiB": count * mib}
    if maker == "AMD":
        info["ProcessorInfo"] = {**info.get("ProcessorInfo", {}), "Manufacturer": "AMD"}
    return info


def install() -> None:
    """Add the missing GPU types to moto's instance types and us-east-1's offerings (idempotent)."""
    global _installed
    if _installed:
        return
    from moto.ec2.models.instance_types import INSTANCE_TYPE_OFFERINGS, INSTANCE_TYPES, InstanceType, InstanceTypeBackend

    for name, spec in MISSING.items():
        if name in INSTANCE_TYPES:  # a newer moto may have it: AWS's own answer wins
            continue
        INSTANCE_TYPES[name] = record(name, spec, INSTANCE_TYPES[spec[0]])
        InstanceTypeBackend.instance_types.append(InstanceType(name))
        INSTANCE_TYPE_OFFERINGS["region"].setdefault("us-east-1", []).append(
            {"InstanceType": name, "Location": "us-east-1", "LocationType": "region"}
        )
        for zone in ZONES:
            INSTANCE_TYPE_OFFERINGS["availability-zone"].setdefault("us-east-1", []).append(
                {"InstanceType": name, "Location": zone, "LocationType": "availability-zone"}
            )
    _installed = True
