"""The recipe engine: TOML playbooks run against instances.

``load_recipe("base")`` reads recipes/base.toml (and the recipes it ``uses``);
``run_recipe(ctx, recipe, hosts=["web1"])`` runs it on each host in parallel,
consecutive shell steps in one SSH exec; ``run_steps_on_host(host, steps)``
does the same on a connected :class:`ec2kit.ssh.Transport` without AWS.
Register Python tasks with ``@register_task("name")``.
"""

from .executor import run_recipe, run_steps_on_host
from .loader import list_recipes, load_recipe, parse_overrides
from .model import HostReport, Recipe, RecipeInfo, RunReport, Step, StepResult
from .registry import TaskContext, register_task
from .report import CollectingReporter, TextReporter
from .selection import select_steps

__all__ = [
    "CollectingReporter",
    "HostReport",
    "Recipe",
    "RecipeInfo",
    "RunReport",
    "Step",
    "StepResult",
    "TaskContext",
    "TextReporter",
    "list_recipes",
    "load_recipe",
    "parse_overrides",
    "register_task",
    "run_recipe",
    "run_steps_on_host",
    "select_steps",
]
