"""GPUs by name: which instance types carry which GPUs, read from DescribeInstanceTypes' ``GpuInfo``.

    catalog = GpuCatalog(aws, home / "gpu-types.json", scope="aws:us-east-1")
    catalog.types()                        # [GpuType(type="g4dn.xlarge", model="T4", count=1, …), …]
    matching(catalog.types(), "A10G", 1)   # the g5 types with one A10G, cheapest first

A type's GPUs come from ``GpuInfo`` only, never from its name. One pass over DescribeInstanceTypes
and DescribeInstanceTypeOfferings (region) per region fills ``EC2KIT_HOME/gpu-types.json`` (0600,
replaced atomically), used for :data:`TTL` seconds; on AWS the on-demand prices of the "GPU
instance" family come along in the same pass (one Pricing API query), when it answers.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .session import AwsSession

__all__ = ["TTL", "GpuCatalog", "GpuType", "gpu_types_of", "matching", "model_key", "models"]

TTL = 86400.0  # seconds a catalogue is used before the next pass (AWS adds types a few times a year)
VERSION = 1


@dataclass(frozen=True)
class GpuType:
    """One instance type with GPUs: its model, how many, memory per GPU, and the host's size."""

    type: str
    model: str
    manufacturer: str
    count: float  # whole GPUs; a fraction for a partitioned GPU (g6f: 1/8 of an L4)
    gpu_memory_mib: int  # per GPU (per partition for a fraction)
    vcpus: int
    memory_mib: int
    arch: str = "x86_64"  # the CPU's: an image is built for one
    on_demand: float | None = None  # USD/hour (Linux), when the Pricing API answered

    @property
    def whole(self) -> bool:
        """Whether the type has whole GPUs (fractions are listed, never picked by ``--gpus``)."""
        return self.count >= 1 and float(self.count).is_integer()

    @property
    def gpu_label(self) -> str:
        """``1× A10G 24GB`` (GB as AWS sizes GPU memory: 22888 MiB is its 24 GB)."""
        count = str(int(self.count)) if self.whole else f"{self.count:g}"
        return f"{count}× {self.model} {gigabytes(self.gpu_memory_mib)}GB"


def gigabytes(mib: int) -> int:
    """A GPU's memory as its maker names it: whole GiB as such (T4 16384 MiB: 16, A100 40960 MiB: 40), else
    decimal GB (AWS's A10G and L4 of 22888 MiB are 24 GB GPUs)."""
    return mib // 1024 if mib % 1024 == 0 else round(mib * 2**20 / 1e9)


def model_key(name: str) -> str:
    """``"RTX PRO 4500"`` and ``"rtx-pro-4500"`` compare equal: case, spaces, dashes and underscores ignored."""
    return re.sub(r"[\s_-]+", "", name).lower()


def gpu_types_of(infos: Iterable[dict[str, Any]], offered: set[str] | None = None) -> list[GpuType]:
    """The types with ``GpuInfo`` among DescribeInstanceTypes records (only ``offered`` ones, when given)."""
    found = []
    for info in infos:
        name = info.get("InstanceType", "")
        gpus = (info.get("GpuInfo") or {}).get("Gpus") or []
        if not gpus or (offered is not None and name not in offered):
            continue
        gpu = gpus[0]
        count: float = gpu.get("Count") or 0
        partition = float(gpu.get("GpuPartitionSize") or 1.0)
        if not count and partition < 1:
            count = partition * (gpu.get("LogicalGpuCount") or 1)
        found.append(
            GpuType(
                type=name,
                model=str(gpu.get("Name", "?")),
                manufacturer=str(gpu.get("Manufacturer", "")),
                count=float(count),
                gpu_memory_mib=int((gpu.get("MemoryInfo") or {}).get("SizeInMiB") or 0),
                vcpus=int((info.get("VCpuInfo") or {}).get("DefaultVCpus") or 0),
                memory_mib=int((info.get("MemoryInfo") or {}).get("SizeInMiB") or 0),
                arch=str(((info.get("ProcessorInfo") or {}).get("SupportedArchitectures") or ["x86_64"])[0]),
            )
        )
    return sorted(found, key=cost_key)


def cost_key(t: GpuType) -> tuple[float, float, int, int, int, str]:
    """Cheapest first: the on-demand price when known, else by size (GPUs, GPU memory, vCPUs, memory)."""
    price = t.on_demand if t.on_demand is not None else float("inf")
    return (price, t.count, t.gpu_memory_mib, t.vcpus, t.memory_mib, t.type)


def models(types: Iterable[GpuType]) -> list[str]:
    """The GPU models among ``types``, by name."""
    return sorted({t.model for t in types}, key=str.lower)


def matching(types: Iterable[GpuType], model: str | None, count: int | None, min_memory_mib: int | None) -> list[GpuType]:
    """The types with exactly ``count`` whole GPUs of ``model`` (any model when None) of at least
    ``min_memory_mib`` each, cheapest first."""
    want = model_key(model) if model else None
    return sorted(
        (
            t
            for t in types
            if t.whole
            and (want is None or model_key(t.model) == want)
            and (count is None or int(t.count) == count)
            and (min_memory_mib is None or t.gpu_memory_mib >= min_memory_mib)
        ),
        key=cost_key,
    )


class GpuCatalog:
    """The GPU types a region offers, from one DescribeInstanceTypes pass, kept on disk for :data:`TTL` seconds."""

    def __init__(
        self,
        aws: AwsSession,
        path: Path,
        *,
        scope: str,
        ttl: float = TTL,
        on_demand: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        self.aws, self.path, self.scope, self.ttl = aws, Path(path), scope, ttl
        self.on_demand = on_demand  # the on-demand prices (AWS's Pricing API), or None where there is none
        self._types: list[GpuType] | None = None
        self.fresh = False  # True once this object asked AWS (no usable cache)

    def types(self) -> list[GpuType]:
        """Every GPU type offered in the region, cheapest first (from the cache while it is young)."""
        if self._types is None:
            self._types = self._cached()
            if self._types is None:
                self._types = self._describe()
                self._save(self._types)
                self.fresh = True
        return list(self._types)

    def by_type(self) -> dict[str, GpuType]:
        """Instance type → its GPUs."""
        return {t.type: t for t in self.types()}

    def _describe(self) -> list[GpuType]:
        from .errors import translating

        with translating(f"list the instance types of {self.aws.region}"):
            offered = {
                str(o["InstanceType"])
                for o in self.aws.paginate("describe_instance_type_offerings", "InstanceTypeOfferings[]", LocationType="region")
            }
            infos = self.aws.paginate("describe_instance_types", "InstanceTypes[]")
        found = gpu_types_of(infos, offered)
        prices = self.on_demand() if self.on_demand is not None else {}
        return sorted((_priced(t, prices.get(t.type)) for t in found), key=cost_key)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and data.get("version") == VERSION else {}

    def _cached(self) -> list[GpuType] | None:
        entry = self._read().get("scopes", {}).get(self.scope)
        if not isinstance(entry, dict) or not 0 <= time.time() - float(entry.get("at", 0)) < self.ttl:
            return None
        try:
            return [GpuType(**t) for t in entry["types"]]
        except (KeyError, TypeError):
            return None

    def _save(self, types: list[GpuType]) -> None:
        from ..fsutil import atomic_write, file_lock

        try:
            with file_lock(str(self.path) + ".lock"):
                data = self._read() or {"version": VERSION, "scopes": {}}
                data.setdefault("scopes", {})[self.scope] = {"at": time.time(), "types": [asdict(t) for t in types]}
                atomic_write(self.path, json.dumps(data, separators=(",", ":")), fsync=False)
        except OSError:
            pass  # a catalogue that cannot be kept only costs the next command another pass


def _priced(t: GpuType, price: float | None) -> GpuType:
    return t if price is None else GpuType(**{**asdict(t), "on_demand": price})
