"""The launch kinds of a spot-run attempt (the :class:`~ec2kit.spotrun.attempt.Strategy` protocol).

- :class:`OneTime`: one instant EC2 Fleet over --type/--types × zones (AWS picks the pool); a followed run.
- :class:`Resumable`: a persistent spot request whose instance stops (disk kept) when interrupted; a detached run
  that waits for ``inv pull`` (its boot hook resumes the script when capacity returns).
- :class:`Reused`: an instance a sweep already holds, re-tagged for the run; the sweep terminates or reuses it.
- :class:`Existing`: an instance you already have (`inv exec`): used as it is, never tagged for the run, never
  stopped, terminated or powered off by it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..errors import Ec2kitError, NotFound
from ..tags import RUN_TAG
from .attempt import record_instance
from .options import resumable
from .release import _release_instance

if TYPE_CHECKING:
    from ..aws.models import Instance
    from ..context import Context
    from .options import SpotRunOptions
    from .state import RunState


def strategy_for(options: SpotRunOptions) -> OneTime | Resumable:  # `inv exec` passes its Existing strategy
    """The launch kind of a run of its own: resumable when detached and waiting for ``inv pull``, else one-time."""
    return Resumable() if resumable(options) else OneTime()


class _Owned:
    """An instance of the run's own: released (request cancelled first, volumes deleted) when the attempt ends."""

    marks_pulled = True

    def let_go(self, run: RunState) -> list[str]:
        return _release_instance(run)

    def keep(self, run: RunState) -> None:
        return None  # the record names it; nothing releases a live run's instance


class OneTime(_Owned):
    """One instant EC2 Fleet over --type and --types × zones; the first attempt and every replacement alike."""

    kind = "one-time"

    def launch(self, run: RunState, attempt: int) -> Instance:
        from ..actions import say_launch_plan

        opts, rec = run.options, run.record
        types = list(dict.fromkeys([opts.type, *opts.types]))
        name = rec.name if attempt == 1 else f"{rec.name}-{attempt}"
        fallback = " (on-demand as the last resort)" if opts.on_demand_fallback else ""
        run.say(f"{rec.name}: requesting a spot instance: {', '.join(types)}{fallback} (attempt {attempt})")
        run.save(state="requested" if attempt == 1 else "recovering", attempt=attempt)
        plan = run.ctx.cloud.plan_launch(name, type=opts.type, shutdown_behavior="terminate", **launch_options(run))
        if attempt == 1:
            say_launch_plan(plan, run.say, f"{rec.name}: ")
        inst = run.ctx.cloud.launch(plan, types=types[1:], on_demand_fallback=opts.on_demand_fallback)
        spot = inst.lifecycle == "spot"
        price = inst.hourly_price or (spot_price(run.ctx, inst.type, inst.zone) if spot else None)
        record_instance(run, inst, attempt=attempt, price=price)
        if not spot or inst.type != opts.type:
            run.say(f"{rec.name}: got {'spot' if spot else 'on-demand'} {inst.type} in {inst.zone}")
        return inst


class Resumable(_Owned):
    """A persistent spot request with InstanceInterruptionBehavior=stop; the next type on capacity errors."""

    kind = "resumable"

    def launch(self, run: RunState, attempt: int) -> Instance:
        from ..errors import AwsError

        opts, rec = run.options, run.record
        types = [opts.type, *opts.types]
        last_error: Exception | None = None
        for type_ in types[min(attempt - 1, len(types) - 1) :]:
            run.say(f"{rec.name}: requesting a {type_} spot instance that stops (keeping its disk) if interrupted")
            run.save(state="requested", instance_type=type_, attempt=attempt)
            try:
                inst = run.ctx.cloud.launch(rec.name, type=type_, interruption="stop", **launch_options(run))
            except AwsError as err:
                last_error = err
                if type_ != types[-1]:
                    run.say(f"{rec.name}: no {type_} spot capacity ({err.code or err}); trying the next type")
                continue
            return record_instance(run, inst, attempt=attempt, price=spot_price(run.ctx, type_, inst.zone), resumable=True)
        assert last_error is not None
        raise last_error


class Reused:
    """An instance the sweep holds (``instance``), re-tagged for the run. The sweep terminates or reuses it, so
    letting go only takes it off the run's record; the final pull leaves the wrapper running (no ``pulled``
    marker: that would power off an instance that may take the next run)."""

    kind = "reused"
    marks_pulled = False

    def __init__(self, instance: Instance, price: float | None, *, first: bool, label: str = "") -> None:
        self.instance, self.price, self.first, self.label = instance, price, first, label
        self.kept = False  # the run's results are not home: the sweep must neither reuse nor terminate it

    def launch(self, run: RunState, attempt: int) -> Instance:
        inst, name = self.instance, run.record.name
        run.ctx.cloud.tag(inst.id, {"Name": name, RUN_TAG: name})
        inst = self.instance = dataclasses.replace(inst, name=name, tags={**inst.tags, "Name": name, RUN_TAG: name})
        how = "" if self.first else " (reused)"
        run.say(
            f"{name}: {self.label + ' ' if self.label else ''}on {inst.id} ({inst.type}, {inst.zone}){how}, attempt {attempt}"
        )
        return record_instance(run, inst, attempt=attempt, price=self.price)

    def let_go(self, run: RunState) -> list[str]:
        rec = run.record
        rec.instance_stopped()
        rec.created["instances"] = [i for i in rec.created.get("instances", []) if i != self.instance.id]
        rec.created["requests"] = [r for r in rec.created.get("requests", []) if r != rec.request_id]
        run.save()
        return []

    def keep(self, run: RunState) -> None:
        self.kept = True


class Existing:
    """An instance the user has (`inv exec NAME`): no launch, no run tag, not in the record's ``created``; letting
    go only stops the run's clock. The wrapper never powers it off (``render_wrapper(owned=False)``)."""

    kind = "existing"
    marks_pulled = False  # the wrapper does not wait for a pull: nothing powers the instance off

    def __init__(self, instance: Instance) -> None:
        self.instance = instance

    def launch(self, run: RunState, attempt: int) -> Instance:
        from ..errors import RunError

        if attempt > 1:
            raise RunError(f"Run {run.record.name}: {self.instance.label} went away; an exec run has no replacement.")
        inst = self.instance
        run.say(f"{run.record.name}: on {inst.label} ({inst.type}), yours: this run never stops or terminates it")
        run.save(state="starting")
        return record_instance(run, inst, attempt=attempt, price=instance_price(run.ctx, inst), owned=False)

    def let_go(self, run: RunState) -> list[str]:
        run.record.instance_stopped()
        run.save()
        return []

    def keep(self, run: RunState) -> None:
        return None


def launch_options(run: RunState) -> dict[str, Any]:
    """What every launch of this run asks for, one-time or resumable (the type comes per call)."""
    opts = run.options
    return dict(
        image=opts.image or default_image(run.ctx),
        spot=True,
        max_price=opts.max_price,
        disk=opts.disk,
        tags={RUN_TAG: run.record.name},
        subnet=opts.subnet,
        security_groups=opts.security_groups,
        instance_profile=opts.instance_profile,
        open_ssh=opts.open_ssh,
    )


def default_image(ctx: Context) -> str | None:
    """'base' when the user froze one (journey 2), else None (the cloud's latest Ubuntu LTS)."""
    try:
        return ctx.cloud.image("base").id
    except NotFound:
        return None


def instance_price(ctx: Context, inst: Instance) -> float | None:
    """What ``inst`` costs an hour (its spot price, else its on-demand list price, kept a day), or None if
    unknown: an exec run's cost is its share of the machine's time, never more than that."""
    if inst.lifecycle == "spot":
        return spot_price(ctx, inst.type, inst.zone)
    from ..aws.prices import on_demand_prices_of
    from ..defaults import PRICE_CACHE

    cloud = ctx.cloud
    try:
        found = on_demand_prices_of(
            [inst.type],
            cloud.region,
            endpoint_url=cloud.endpoint_url,
            session=cloud.session,
            cache=ctx.settings.home / PRICE_CACHE,
        )
    except Ec2kitError:  # no pricing:GetProducts permission, or no Pricing API: the cost stays unknown
        return None
    return found.get(inst.type)


def spot_price(ctx: Context, instance_type: str, zone: str) -> float | None:
    """The current spot price of ``instance_type`` in ``zone`` (USD/hour), or None if unknown."""
    try:
        return ctx.cloud.spot_price(instance_type, zone)
    except Ec2kitError:  # the cost column is informative only
        return None
