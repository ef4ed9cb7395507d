"""Prices from both faces: ``prices`` (a family's on-demand and spot prices by zone, with its GPUs) and
``gpus`` (the region's GPU instance types, cheapest first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Face
from .shown import Listing


@dataclass
class Price:
    """One instance type's hourly prices (USD, Linux): on-demand and spot by zone."""

    type: str
    on_demand: float | None
    spot: dict[str, float]
    gpu: str = ""  # "1× A10G 24GB" (DescribeInstanceTypes' GpuInfo), '' without a GPU


@dataclass
class GpuOffer:
    """One GPU instance type of ``inv gpus``: its GPUs, size, on-demand and current (cheapest zone) spot price."""

    type: str
    model: str
    count: float
    gpu_memory_gb: int  # per GPU, decimal GB as AWS sizes GPUs
    vcpus: int
    memory_gib: float
    on_demand: float | None
    spot: float | None
    spot_zone: str | None

    @property
    def gpus(self) -> str:
        """``8× A100``."""
        return f"{int(self.count) if float(self.count).is_integer() else f'{self.count:g}'}× {self.model}"


class PriceVerbs(Face):
    """``EC2``'s price listings: ``inv prices`` and ``inv gpus``."""

    def prices(self, family: str, *, no_spot: bool = False) -> Listing[Price]:
        """On-demand (AWS Pricing API) and current spot prices by zone of an instance family or type (``inv prices``),
        with each type's GPUs (DescribeInstanceTypes' GpuInfo)."""
        from ..aws import prices as p
        from ..aws.gpus import gpu_types_of

        cloud = self.cloud
        demand = p.on_demand_prices(family, cloud.region, endpoint_url=cloud.endpoint_url, session=cloud.session)
        spot = {} if no_spot else p.spot_prices(family, cloud)
        zones = sorted({z for t in spot.values() for z in t})
        found = p.sort_types(set(demand) | set(spot))
        gpus = {t.type: t for t in gpu_types_of(p.describe_family(family, self.cloud))} if found else {}
        return Listing(
            [Price(t, demand.get(t), spot.get(t, {}), gpus[t].gpu_label if t in gpus else "") for t in found],
            title=f"Prices for {family} in {self.cloud.region} (USD/hour, Linux)",
            columns=("type", "gpu", "on-demand", *(f"spot {z}" for z in zones)),
            row=lambda x: (x.type, x.gpu, money(x.on_demand), *(money(x.spot.get(z)) for z in zones)),
            empty=f"No instance types match '{family}'.",
        )

    def gpus(self, model: str | None = None, *, no_spot: bool = False) -> Listing[GpuOffer]:
        """The GPU instance types the region offers (of ``model``, e.g. ``"A10G"``; all when None), cheapest
        first: GPUs, GPU memory, vCPUs, memory, on-demand and current spot price (``inv gpus``). The types come
        from one DescribeInstanceTypes pass, kept a day; spot prices are asked each time (``no_spot``: not)."""
        from ..aws import prices as p
        from ..aws.gpus import gigabytes, model_key
        from .options import check_gpu_model

        catalog = self._gpu_catalog().types()
        if model:  # a wrong model lists the models offered
            check_gpu_model(model, catalog, self.region, self.spelling, option=None)
            catalog = [t for t in catalog if model_key(t.model) == model_key(model)]
        spot = {} if no_spot else p.spot_prices_of([t.type for t in catalog], self.cloud)

        def offer(t: Any) -> GpuOffer:
            zone, price = min(spot[t.type].items(), key=lambda zp: zp[1]) if spot.get(t.type) else (None, None)
            return GpuOffer(
                t.type,
                t.model,
                t.count,
                gigabytes(t.gpu_memory_mib),
                t.vcpus,
                round(t.memory_mib / 1024, 1),
                t.on_demand,
                price,
                zone,
            )

        return Listing(
            [offer(t) for t in catalog],
            title=f"GPU instance types in {self.region}{' with ' + model if model else ''} (USD/hour, Linux)",
            columns=("type", "gpus", "gpu mem", "vcpus", "memory", "on-demand", "spot", "spot zone"),
            row=lambda o: (
                o.type,
                o.gpus,
                f"{o.gpu_memory_gb}GB",
                o.vcpus,
                f"{o.memory_gib:g}GiB",
                money(o.on_demand),
                money(o.spot),
                o.spot_zone or "",
            ),
            empty=f"{self.region} offers no GPU instance types.",
        )


def money(value: float | None) -> str:
    """An hourly price as the prices table shows it ('' when unknown)."""
    if value is None:
        return ""
    return f"{value:.4f}" if value >= 0.001 else f"{value:.6f}"
