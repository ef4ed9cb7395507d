"""Money from both faces: what ec2kit's resources cost now (``inv costs``), and the estimate a launch shows first.

``ec2.costs()`` lists every ec2kit resource that bills (instances by market and pool, volumes, snapshots,
images, public IPv4 addresses) with its rate, and ``.total``. ``launch``, ``spot_run`` and ``sweep`` call
:meth:`CostVerbs._confirm_cost` before their first paid call: it prints the expected hourly cost and asks
when it is above ``confirm_above`` (ec2kit.toml / config.toml, default $2/h) unless ``yes``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..defaults import PRICE_CACHE
from ..errors import Ec2kitError, WrongState
from .base import Face
from .shown import Listing

if TYPE_CHECKING:
    from ..aws.costs import Cost, CostSummary, Estimate
    from ..aws.ebs_prices import StoragePrices
    from ..aws.models import Instance as InstanceInfo

COST_COLUMNS = ("kind", "name", "what", "$/h", "$/month", "since", "spent")


def _cost_row(c: Cost) -> tuple[str, ...]:
    from ..aws.costs import dollars

    since = c.since.strftime("%Y-%m-%d %H:%M") if c.since else ""
    return (c.kind, c.name or c.id, c.what, dollars(c.hourly) or "?", dollars(c.monthly) or "?", since, dollars(c.spent))


class Costs(Listing["Cost"]):
    """``ec2.costs()``: one row per billed resource, and ``total`` (a CostSummary: hourly, monthly, spent, unpriced)."""

    def __init__(self, items: list[Cost], total: CostSummary, region: str, notes: Sequence[str] = ()) -> None:
        super().__init__(
            items,
            title=f"What ec2kit's resources cost in {region} (USD)",
            columns=COST_COLUMNS,
            row=_cost_row,
            empty="Nothing of ec2kit's costs money in this region now.",
        )
        self.total = total
        self.region = region
        self.notes = list(notes)  # prices that could not be read, and what stands in for them

    def _show(self) -> tuple[str, Sequence[str], Sequence[Sequence[Any]], str]:
        from ..aws.costs import dollars

        title, columns, rows, empty = super()._show()
        if self:
            t = self.total
            rows = [*rows, ("total", "", "", dollars(t.hourly), dollars(t.monthly), "", dollars(t.spent))]
        return title, columns, rows, empty

    def as_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready data (``inv costs --json``)."""
        return {"region": self.region, "items": [c.as_dict() for c in self], "total": self.total.as_dict(), "notes": self.notes}


class CostVerbs(Face):
    """``EC2``'s money verbs: ``costs`` (``inv costs``) and the estimate every launch shows first."""

    def costs(self) -> Costs:
        """What ec2kit's resources cost now (``inv costs``): running instances ($/h by market and pool, since when,
        spent so far at today's rate), volumes (GB × type price), snapshots and images (their full size: an upper
        bound), public IPv4 addresses; ``.total`` per hour and per (730-hour) month. Prices: the AWS Pricing API and
        the current spot price of each instance's pool."""
        from ..aws import prices
        from ..aws.costs import BILLED_STATES, CostSummary, cost_items
        from ..tags import MANAGED_TAG

        cloud = self.cloud
        instances = cloud.instances(tags={MANAGED_TAG: None})
        ours = {i.id for i in instances}
        volumes = [v for v in cloud.volumes() if MANAGED_TAG in v.tags or v.attached_to in ours]
        images = [i for i in cloud.images() if MANAGED_TAG in i.tags]
        snapshots = cloud.snapshots()
        billed = [i for i in instances if i.state in BILLED_STATES]
        rates = prices.rates(
            cloud,
            types=[i.type for i in billed if i.lifecycle != "spot"],
            pools=[(i.type, i.zone) for i in billed if i.lifecycle == "spot"],
            storage=bool(volumes or images or snapshots or any(i.public_ip for i in billed)),
            endpoint_url=cloud.endpoint_url,
            cache=self._price_cache,
        )
        items = cost_items(instances, volumes, snapshots, images, rates, now=datetime.now(timezone.utc))
        return Costs(items, CostSummary.of(items), cloud.region, rates.notes)

    def _storage_prices(self) -> StoragePrices:
        """The region's EBS, snapshot and IPv4 prices as ``inv costs`` reads them (the Pricing API, cached a day), or
        the fallback table with ``fallback`` saying why when the Pricing API cannot be reached."""
        from ..aws.ebs_prices import storage_prices_or_fallback

        cloud = self.cloud
        return storage_prices_or_fallback(
            cloud.region, endpoint_url=cloud.endpoint_url, session=cloud.session, cache=self._price_cache
        )

    @property
    def _price_cache(self) -> Path:
        """Where list prices are kept for a day (spot prices are always asked)."""
        return self.settings.home / PRICE_CACHE

    def _price_instances(self, found: Sequence[InstanceInfo]) -> None:
        """Set ``hourly_price`` on the billed ones (one Pricing API call for the on-demand types, one spot price lookup);
        prices that cannot be read (no pricing:GetProducts permission) leave it as it was: a listing never fails for them."""
        from ..aws import prices
        from ..aws.costs import BILLED_STATES, instance_rate
        from ..errors import Ec2kitError

        billed = [i for i in found if i.state in BILLED_STATES]
        if not billed:
            return
        cloud = self.cloud
        rates = prices.Rates(cloud.region)
        try:
            rates.spot.update(prices.current_spot_prices([(i.type, i.zone) for i in billed if i.lifecycle == "spot"], cloud))
            on_demand = [i.type for i in billed if i.lifecycle != "spot"]
            rates.on_demand.update(
                prices.on_demand_prices_of(
                    on_demand, cloud.region, endpoint_url=cloud.endpoint_url, session=cloud.session, cache=self._price_cache
                )
            )
        except Ec2kitError:
            pass  # what was found stays; the rest shows no price
        for inst in billed:
            inst.hourly_price = instance_rate(inst, rates)

    # -- the estimate before paying ----------------------------------------------------------------

    def _estimate(
        self,
        types: Sequence[str],
        *,
        spot: bool,
        on_demand_fallback: bool = False,
        count: int = 1,
        disk: int | None = None,
        max_hours: float | None = None,
        runs: int = 1,
    ) -> Estimate:
        """The expected cost of a launch (the dearest pool it may land in), priced now."""
        from ..aws import ebs_prices, prices
        from ..aws.costs import launch_estimate

        cloud = self.cloud
        wanted = list(dict.fromkeys(types))
        rates = prices.Rates(cloud.region)
        unknown = ""
        try:
            if spot:
                for itype in wanted:
                    for found, zones in prices.spot_prices(itype, cloud).items():
                        rates.spot.update({(found, zone): price for zone, price in zones.items()})
            if not spot or on_demand_fallback:
                rates.on_demand.update(
                    prices.on_demand_prices_of(
                        wanted, cloud.region, endpoint_url=cloud.endpoint_url, session=cloud.session, cache=self._price_cache
                    )
                )
            if disk:
                rates.storage = ebs_prices.storage_prices(
                    cloud.region, endpoint_url=cloud.endpoint_url, session=cloud.session, cache=self._price_cache
                )
        except Ec2kitError as err:  # no pricing:GetProducts permission, say: the estimate says so, the launch is not blocked
            unknown = str(err).split("\n")[0]
        estimate = launch_estimate(wanted, rates, spot=spot, count=count, disk_gb=disk, max_hours=max_hours, runs=runs)
        estimate.unknown = unknown
        if spot and on_demand_fallback:
            fallback = launch_estimate(wanted, rates, spot=False, count=count, disk_gb=disk, max_hours=max_hours, runs=runs)
            if fallback.per_instance is not None and (estimate.per_instance or 0) < fallback.per_instance:
                fallback.basis = "on-demand list price, if no spot pool has capacity"
                fallback.unknown = unknown
                return fallback
        return estimate

    def _confirm_cost(self, estimate: Estimate, *, yes: bool, what: str, unbounded: str = "") -> None:
        """Print the estimate; above ``confirm_above`` ask (a terminal) or refuse (none), unless ``yes``.
        ``unbounded`` is a reason to ask whatever the hourly rate (a sweep of thousands of runs with no budget)."""
        from ..aws.costs import dollars

        limit = float(self.settings.default("confirm_above"))
        self._say(estimate.line(), note=True)
        hourly = estimate.hourly
        worst = estimate.worst_case
        if yes:
            return
        if unbounded:
            why = unbounded
        elif hourly is None:
            if limit > 0:
                return  # a price that cannot be read never blocks a launch (the line above says it is unknown)
            why = f"the cost of {what} is unknown, and confirm_above = 0 asks before every launch"
        elif hourly <= limit and limit > 0:
            return
        else:
            why = f"{what} is expected to cost {dollars(hourly)}/h, above confirm_above = {dollars(limit)}/h"
            if limit == 0:
                why = f"{what} is expected to cost {dollars(hourly)}/h, and confirm_above = 0 asks before every launch"
        if worst is not None:
            why += f" (at most {dollars(worst)} in all)"
        yes_flag = "--yes" if self.spelling.cli else "yes=True"
        if not sys.stdin.isatty():
            raise WrongState(
                f"Not launched: {why}, and there is no terminal to ask.",
                hint=f"Add {yes_flag} to go ahead, or raise confirm_above in ~/.ec2kit/config.toml (e.g. confirm_above = 5).",
            )
        answer = input(f"{why[0].upper()}{why[1:]}. Go ahead? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise WrongState(f"Not launched: {what} was not confirmed.", hint=f"Add {yes_flag} to launch without asking.")
