"""Plain data of the recipe engine: recipes, steps, per-step results and reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .kinds import KINDS


def step_name(kind: str, args: dict[str, Any]) -> str:
    """``args["name"]``, else the kind and the start of its value: ``run python3 -m venv ~/env``."""
    if args.get("name"):
        return str(args["name"])
    value = args.get(kind)
    text = value if isinstance(value, str) else " ".join(map(str, value)) if isinstance(value, list) else ""
    text = text.strip().splitlines()[0] if text.strip() else ""
    return f"{kind} {text[:40]}".strip()


@dataclass
class Step:
    """One ``[[step]]`` of a recipe, as written (values not yet rendered)."""

    kind: str
    args: dict[str, Any]
    recipe: str  # name of the recipe file that defines it
    source: Path | None = None
    line: int = 0  # line of its ``[[step]]`` header in ``source``
    number: int = 0  # 1-based position in the flattened recipe (after ``uses``)

    @property
    def name(self) -> str:
        """The step's ``name``, or a short description of it."""
        return step_name(self.kind, self.args)

    @property
    def tags(self) -> tuple[str, ...]:
        value = self.args.get("tags", ())
        return (value,) if isinstance(value, str) else tuple(value)

    @property
    def is_shell(self) -> bool:
        return KINDS[self.kind].plan is not None

    def label(self) -> str:
        """``step 3 'tmux config'`` for messages."""
        return f"step {self.number} '{self.name}'"


@dataclass
class Recipe:
    """A loaded recipe: its own and used recipes' steps in order, merged vars and secrets."""

    name: str
    path: Path | None
    description: str = ""
    uses: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    template_dirs: list[Path] = field(default_factory=list)
    base_dir: Path | None = None  # where relative ``copy`` sources are looked up
    host_vars: dict[str, dict[str, Any]] = field(default_factory=dict)  # [hosts.NAME] tables


@dataclass(frozen=True)
class RecipeInfo:
    """What ``list_recipes`` shows: name, description, default vars, file."""

    name: str
    description: str
    vars: dict[str, Any]
    path: Path
    source: str = "project"  # project (./recipes), user (~/.ec2kit/recipes) or built-in
    overrides_builtin: bool = False  # a built-in recipe of this name is hidden by it


@dataclass
class StepResult:
    """What happened to one step on one host."""

    number: int
    name: str
    kind: str
    status: str  # ok | changed | skipped | failed
    reason: str = ""
    duration: float = 0.0
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    diff: str = ""
    command: str = ""  # the command run (or that would run), secrets masked
    check: bool = False  # check mode: "changed" means "would change"

    @property
    def output(self) -> str:
        """stdout then stderr, for failure messages."""
        return "\n".join(part.rstrip("\n") for part in (self.stdout, self.stderr) if part.strip())


@dataclass
class HostReport:
    """One host's results, in step order, and its failure if any."""

    name: str
    steps: list[StepResult] = field(default_factory=list)
    failure: str = ""
    error: Exception | None = None
    duration: float = 0.0
    check: bool = False

    @property
    def ok(self) -> bool:
        return not self.failure

    def count(self, status: str) -> int:
        return sum(1 for s in self.steps if s.status == status)

    @property
    def recap(self) -> dict[str, int]:
        """``{"ok": N, "changed": N, "skipped": N, "failed": N}``, plus ``unreachable: 1`` when the
        host could not be reached; a step that could not be planned (a template error) counts as failed."""
        from ..errors import RecipeError

        counts = {s: self.count(s) for s in ("ok", "changed", "skipped", "failed")}
        if self.failure and not counts["failed"]:
            counts["failed" if isinstance(self.error, RecipeError) else "unreachable"] = 1
        return counts

    def raise_for_failure(self) -> None:
        """Raise the error that stopped this host, if any."""
        if self.error is not None:
            raise self.error


@dataclass
class RunReport:
    """Every host's report; ``ok`` when all succeeded."""

    hosts: dict[str, HostReport] = field(default_factory=dict)
    check: bool = False
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts.values())

    @property
    def failed_hosts(self) -> list[str]:
        return [n for n, h in self.hosts.items() if not h.ok]

    @property
    def summary(self) -> str:
        """One line for people: ``All 3 hosts succeeded in 1.20s.`` or ``1 of 3 hosts failed: web2.``"""
        n = len(self.hosts)
        if self.ok:
            return f"All {n} hosts succeeded in {self.duration:.2f}s." if n != 1 else f"Succeeded in {self.duration:.2f}s."
        failed = self.failed_hosts
        return f"{len(failed)} of {n} host{'s' if n != 1 else ''} failed: {', '.join(failed)}."
