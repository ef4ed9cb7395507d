"""What a sweep is asked to do (:class:`SweepOptions`, mirrors ``inv sweep``), checked before anything is paid for,
and each run's :class:`~ec2kit.spotrun.SpotRunOptions` built from it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..defaults import RUN_TYPE
from ..errors import ConfigError
from ..spotrun.options import SpotRunOptions

NOT_STORED = ("say", "out")


@dataclass
class SweepOptions:
    """A sweep: the grid, how many at once, and the spot-run options every run shares."""

    script: str
    grid: list[str] = field(default_factory=list)  # --grid KEY=V1,V2 (repeatable)
    grid_file: str | None = None
    name: str | None = None  # default: script stem + timestamp
    parallel: int = 4
    retries: int = 0
    fresh: bool = False  # a new instance for every run (no reuse)
    max_cost: float | None = None
    objective: str | None = None  # 'loss' (min) or 'acc:max'
    detach: bool = False
    results: str | None = None  # the root: runs land in RESULTS/SWEEP/RUN (default runs/)
    files: str | None = None
    image: str | None = None
    type: str = RUN_TYPE
    types: list[str] = field(default_factory=list)
    on_demand_fallback: bool = False
    disk: int | None = None
    max_price: str | float | None = None
    max_hours: float | None = None
    subnet: str | None = None
    security_groups: list[str] = field(default_factory=list)
    instance_profile: str | None = None
    open_ssh: bool = False
    workdir: str | None = None  # synced to ~/work/<its name> before each run's script starts
    vars: dict = field(default_factory=dict)  # --set for every run (the grid's settings are added per run)
    recipe: str | None = "spot-run"
    pull_interval: float = 3.0
    poll_interval: float = 1.0
    notice_poll: float = 5.0
    pull_wait: int = 120
    price_estimate: float | None = None  # USD/h of one instance before the first fleet answer (for --max-cost)
    say: Callable[[str], None] | None = None
    out: Callable[[str], None] | None = None

    def stored(self) -> dict[str, Any]:
        """The options as the sweep record keeps them (a detached sweep's process is rebuilt from them)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in NOT_STORED}

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> SweepOptions:
        """The options back from a sweep record."""
        known = {f.name for f in fields(cls)} - set(NOT_STORED)
        return cls(**{k: v for k, v in data.items() if k in known})


def default_name(script: str) -> str:
    """``train.sh`` → ``train-sweep-20261130-061530``."""
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(script).stem) or "sweep"
    return f"{stem}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"


def run_names(sweep: str, count: int) -> list[str]:
    """``SWEEP-01`` … (zero-padded to the count's width)."""
    width = max(2, len(str(count)))
    return [f"{sweep}-{i:0{width}d}" for i in range(1, count + 1)]


def check(options: SweepOptions) -> None:
    """The sweep's own numbers (before the grid, the script and the cloud are looked at)."""
    if options.parallel < 1:
        raise ConfigError(f"--parallel {options.parallel}: at least one run must run at a time.", hint="Example: --parallel 4.")
    if options.retries < 0:
        raise ConfigError("--retries cannot be negative.", hint="Example: --retries 2.")
    if options.max_cost is not None and not 0 < options.max_cost < float("inf"):  # nan and inf are no budget
        raise ConfigError(f"--max-cost {options.max_cost}: give a budget in dollars above 0.", hint="Example: --max-cost 20.")
    if options.max_hours is not None and options.max_hours <= 0:
        raise ConfigError(f"--max-hours {options.max_hours} must be more than 0.")


def recipe_vars(recipe_name: str | None, settings: dict[str, str]) -> dict[str, str]:
    """The settings spot-run.toml takes as --set vars: those it declares or mentions (it refuses others)."""
    if not recipe_name:
        return {}
    from ..recipe import load_recipe
    from ..recipe.render import mentioned_names

    recipe = load_recipe(recipe_name)
    known = set(recipe.vars) | set(recipe.secrets) | mentioned_names(recipe)
    return {k: v for k, v in settings.items() if k in known}


def run_options(options: SweepOptions, sweep: str, run: str, settings: dict[str, str]) -> SpotRunOptions:
    """Run ``run``'s spot-run options: the shared ones, its settings as env vars (upper-cased) and as --set vars."""
    from .grid import environment

    root = Path(options.results or "runs").expanduser().resolve()
    return SpotRunOptions(
        script=options.script,
        files=options.files,
        name=run,
        image=options.image,
        type=options.type,
        types=list(options.types),
        on_demand_fallback=options.on_demand_fallback,
        disk=options.disk,
        results=str(root / sweep / run),
        max_price=options.max_price,
        retries=options.retries,
        max_hours=options.max_hours,
        subnet=options.subnet,
        security_groups=list(options.security_groups),
        instance_profile=options.instance_profile,
        open_ssh=options.open_ssh,
        workdir=options.workdir,
        vars={**options.vars, **recipe_vars(options.recipe, settings)},
        env={**environment(settings), "EC2KIT_SWEEP": sweep},
        recipe=options.recipe,
        pull_interval=options.pull_interval,
        poll_interval=options.poll_interval,
        notice_poll=options.notice_poll,
        pull_wait=options.pull_wait,
        out=options.out or (lambda _line: None),  # many runs at once: their logs go to `inv logs RUN`, not the terminal
        say=options.say,
    )
