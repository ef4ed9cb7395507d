"""``task = "freeze"``: a registered Python task, run locally (any other key is one of its arguments)."""

from __future__ import annotations

from .base import Args, Kind, Where


def validate(args: Args, where: Where) -> None:
    """The task's name is a string and a registered task."""
    from ..registry import get_task

    if not isinstance(args["task"], str):
        raise where.error("task", "'task' must be the name of a task (a string).", 'Write task = "freeze".')
    get_task(args["task"], at=f"{where.at}: {where.label}")


KIND = Kind("task", validate=validate, open_keys=True)
