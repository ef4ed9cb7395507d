"""Python tasks: functions registered by name that run locally (AWS calls, waits).

A recipe step ``task = "freeze"`` with ``image = "{{ name }}"`` calls the task
registered as ``freeze`` with ``image=...``. Register your own from tasks.py::

    from ec2kit.recipe import register_task

    @register_task("notify")
    def notify(tc, message: str):
        \"\"\"Print a message (check mode: say it would).\"\"\"
        tc.report(message)

A task returns a dict merged into the recipe's vars (or None). In check mode
(``tc.check``) it must change nothing and should ``tc.report`` what it would do.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..defaults import DEFAULT_MOUNT
from ..errors import Ec2kitError, RecipeError

if TYPE_CHECKING:
    from ..context import Context

TaskFn = Callable[..., "dict[str, Any] | None"]
TASKS: dict[str, TaskFn] = {}


@dataclass
class TaskContext:
    """What a task gets: the ec2kit Context, the vars, check mode and the current target host."""

    ctx: Context | None
    vars: dict[str, Any]
    check: bool = False
    target: str | None = None  # set it (e.g. after launch) to point later shell steps at another host
    messages: list[str] = field(default_factory=list)
    changed: bool = True  # set False (or call ``unchanged``) when nothing needed doing
    reason: str = ""
    on_message: Callable[[str], None] | None = None

    def report(self, message: str) -> None:
        """Show a line under the step (e.g. "would call cloud.freeze('base')")."""
        self.messages.append(message)
        if self.on_message:
            self.on_message(message)

    def unchanged(self, reason: str) -> None:
        """Mark the step ok (nothing to do) and say why."""
        self.changed, self.reason = False, reason

    @property
    def cloud(self) -> Any:
        """``ctx.cloud`` (an :class:`ec2kit.aws.cloud.Cloud`)."""
        if self.ctx is None:
            raise Ec2kitError("This task needs AWS (a Context), but the recipe runs without one.")
        return self.ctx.cloud


def register_task(name: str) -> Callable[[TaskFn], TaskFn]:
    """Decorator: make ``fn(tc: TaskContext, **args) -> dict | None`` available as ``task = "name"``."""

    def deco(fn: TaskFn) -> TaskFn:
        TASKS[name] = fn
        return fn

    return deco


def get_task(name: str, *, at: str = "") -> TaskFn:
    """The task registered as ``name``; unknown names raise a RecipeError with close names."""
    fn = TASKS.get(name)
    if fn is None:
        close = difflib.get_close_matches(name, list(TASKS), n=3, cutoff=0.5)
        guess = (" Did you mean " + " or ".join(f"'{c}'" for c in close) + "?") if close else ""
        raise RecipeError(
            f"{at + ': ' if at else ''}unknown task '{name}'.{guess} Known tasks: {', '.join(sorted(TASKS))}.",
            hint='Register your own with @register_task("name") in tasks.py.',
        )
    return fn


def call_task(fn: TaskFn, tc: TaskContext, args: dict[str, Any], *, at: str) -> dict[str, Any] | None:
    """Call a task with its arguments; a wrong argument is a RecipeError listing the accepted ones."""
    sig = inspect.signature(fn)
    params = [p for p in list(sig.parameters.values())[1:] if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    takes_any = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    names = [p.name for p in params]
    for key in args:
        if key not in names and not takes_any:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
            guess = f" Did you mean '{close[0]}'?" if close else ""
            raise RecipeError(f"{at}: unknown argument '{key}'.{guess} It takes: {', '.join(names) or 'no arguments'}.")
    missing = [p.name for p in params if p.default is p.empty and p.name not in args]
    if missing:
        raise RecipeError(f"{at}: missing argument{'s' if len(missing) > 1 else ''} {', '.join(missing)}.")
    result = fn(tc, **args)
    if result is not None and not isinstance(result, dict):
        raise RecipeError(f"{at}: the task returned {type(result).__name__}; a task returns a dict or None.")
    return result


# -- built-in tasks: thin wrappers over ec2kit.aws / ec2kit.actions ------------------------


def _describe(fn: str, *args: Any, **kwargs: Any) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items() if v is not None]
    return f"{fn}({', '.join(parts)})"


def _check_line(tc: TaskContext, plan: Any, call: str) -> str:
    """ "would call cloud.freeze('base') → ec2.create_image (DryRun: would succeed)": ``plan`` asked with DryRun."""
    verdict = "would succeed" if tc.cloud.check(plan) else "would fail"
    return f"would call {call} → ec2.{plan.action} (DryRun: {verdict})"


def _action(name: str) -> Callable[..., Any]:
    from .. import actions

    fn: Callable[..., Any] | None = getattr(actions, name, None)
    if fn is None:
        raise Ec2kitError(f"The '{name}' task needs ec2kit.actions.{name}, which this version of ec2kit does not have yet.")
    return fn


def _target(tc: TaskContext, instance: str | None) -> str:
    chosen = instance or tc.target or tc.vars.get("name")
    if not chosen:
        raise RecipeError('This task needs an instance: give instance = "..." or run the recipe on a host.')
    return str(chosen)


def _progress(tc: TaskContext) -> Callable[[str], None]:
    return tc.report


@register_task("launch")
def launch(tc: TaskContext, instance: str | None = None, **options: Any) -> dict[str, Any]:
    """Launch `instance` (default: the recipe's target) with `inv launch`'s options (image, disk, type, spot, ...).

    Later shell steps run on the new instance.
    """
    target = _target(tc, instance)
    if tc.check:
        fleet = {k: options.pop(k) for k in ("types", "on_demand_fallback") if k in options}
        plan = tc.cloud.plan_launch(target, **options)
        if plan.spot:  # the call a spot launch makes: one instant CreateFleet over the types × zones
            plan = tc.cloud.fit_quotas(tc.cloud.plan_fleet(plan, **fleet))
        tc.report(_check_line(tc, plan, _describe("cloud.launch", target, **options, **fleet)))
        tc.target = target
        return {}
    inst = _action("launch")(tc.ctx, target, progress=_progress(tc), **options)
    tc.target = target
    return {"instance": inst}


def _simple(action: str, cloud_method: str | None = None) -> TaskFn:
    def task(tc: TaskContext, instance: str | None = None) -> dict[str, Any]:
        target = _target(tc, instance)
        if tc.check:
            tc.report("would call " + _describe(f"{'cloud.' + cloud_method if cloud_method else 'actions.' + action}", target))
            return {}
        if cloud_method:
            inst = getattr(tc.cloud, cloud_method)(target, progress=_progress(tc))
        else:
            inst = _action(action)(tc.ctx, target, progress=_progress(tc))
        return {"instance": inst}

    task.__doc__ = f"{action.capitalize()} the instance `instance` (default: the recipe's target)."
    return task


register_task("start")(_simple("start"))
register_task("stop")(_simple("stop", "stop"))
register_task("terminate")(_simple("terminate", "terminate"))


@register_task("freeze")
def freeze(tc: TaskContext, image: str | None = None, instance: str | None = None, wait: bool = True) -> dict[str, Any]:
    """Make an image of `instance` (default: the target), named `image` (default: the instance's name)."""
    target = _target(tc, instance)
    plan = tc.cloud.plan_freeze(target, image_name=image)
    if plan.left_out:  # CreateImage would copy them into the image, and every launch would bring a copy
        tc.report(f"leaving the attached volume(s) at {', '.join(plan.left_out)} out of the image (only the root disk is frozen)")
    if tc.check:
        tc.report(_check_line(tc, plan, _describe("cloud.freeze", target, image_name=image)))
        return {}
    img = tc.cloud.freeze(plan, wait=wait, progress=_progress(tc))
    return {"image": img}


@register_task("make_volume")
def make_volume(
    tc: TaskContext,
    size: int | None = None,
    volume: str | None = None,
    snapshot: str | None = None,
    mountpoint: str = DEFAULT_MOUNT,
    instance: str | None = None,
) -> dict[str, Any]:
    """Create a volume (`size` GiB or from `snapshot`) named `volume`, attach and mount it on `instance` (default: the target)."""
    target = _target(tc, instance)
    if tc.check:
        tc.report(
            "would call "
            + _describe("actions.make_volume", target, size=size, name=volume, snapshot=snapshot, mountpoint=mountpoint)
        )
        return {}
    vol = _action("make_volume")(
        tc.ctx, target, size=size, name=volume, snapshot=snapshot, mountpoint=mountpoint, progress=_progress(tc)
    )
    return {"volume": vol}


@register_task("attach_volume")
def attach_volume(tc: TaskContext, volume: str, mountpoint: str = DEFAULT_MOUNT, instance: str | None = None) -> dict[str, Any]:
    """Attach the existing `volume` to `instance` (default: the target) and mount it at `mountpoint`."""
    target = _target(tc, instance)
    if tc.check:
        tc.report("would call " + _describe("actions.mount_volume", volume, target, mountpoint=mountpoint))
        return {}
    return {"volume": _action("mount_volume")(tc.ctx, volume, target, mountpoint=mountpoint, progress=_progress(tc))}


@register_task("detach_volume")
def detach_volume(tc: TaskContext, volume: str, mountpoint: str = DEFAULT_MOUNT) -> dict[str, Any]:
    """Unmount `volume` on its instance, then detach it."""
    if tc.check:
        tc.report("would call " + _describe("actions.detach_volume", volume, mountpoint=mountpoint))
        return {}
    return {"volume": _action("detach_volume")(tc.ctx, volume, mountpoint=mountpoint, progress=_progress(tc))}


@register_task("snapshot")
def snapshot(
    tc: TaskContext, volume: str, snapshot: str | None = None, wait: bool = True, mountpoint: str = DEFAULT_MOUNT
) -> dict[str, Any]:
    """Snapshot `volume` (detached cleanly first), named `snapshot` (default: the volume's name); waits
    until it is completed (a volume can be made from it only then) unless `wait = false`."""
    if tc.check:
        tc.report("would call " + _describe("actions.snapshot", volume, name=snapshot, wait=wait))
        return {}
    snap = _action("snapshot")(tc.ctx, volume, name=snapshot, wait=wait, mountpoint=mountpoint, progress=_progress(tc))
    return {"snapshot": snap}


@register_task("wait_ssh")
def wait_ssh(tc: TaskContext, instance: str | None = None, timeout: float = 300) -> None:
    """Wait until `instance` (default: the target) accepts SSH."""
    target = _target(tc, instance)
    if tc.check:
        tc.report("would wait for SSH on " + target)
        return None
    _action("wait_ssh")(tc.ctx, tc.cloud.instance(target), timeout=timeout, progress=_progress(tc))
    return None
