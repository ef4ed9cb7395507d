"""Recipes from both faces: ``ec2.recipe("base").run(on=[...], check=True)``, ``ec2.provision("role=web")``, the report."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .. import display
from ..errors import ConfigError, Ec2kitError, StepFailed
from .base import Face
from .instances import Instance
from .shown import Listing, _Shown

if TYPE_CHECKING:
    from ..recipe import Recipe as RecipeModel
    from ..recipe import RecipeInfo
    from ..recipe.model import HostReport, RunReport
    from .ec2 import EC2


class RecipeFailed(StepFailed):
    """A recipe failed on some host after its reporter showed why, step by step (the command line exits 2)."""

    exit_code = 2

    def __init__(self, report: RecipeReport) -> None:
        super().__init__(report.summary)
        self.report = report


class RecipeReport(_Shown):
    """A recipe run's report: the :class:`ec2kit.recipe.RunReport` (``.report``) with its
    ``.ok``, ``.hosts`` (name → HostReport with each step's result), ``.summary``, shown as a table."""

    def __init__(self, report: RunReport, recipe: str = "") -> None:
        self.report = report
        self.recipe = recipe

    @property
    def ok(self) -> bool:
        """True when every host succeeded."""
        return self.report.ok

    @property
    def hosts(self) -> dict[str, HostReport]:
        """Host name → its report (``.steps``, ``.recap``, ``.failure``)."""
        return self.report.hosts

    @property
    def check(self) -> bool:
        """Whether it ran in check mode (nothing changed)."""
        return self.report.check

    @property
    def failed_hosts(self) -> list[str]:
        """Names of the hosts that failed."""
        return self.report.failed_hosts

    @property
    def summary(self) -> str:
        """``All 3 hosts succeeded in 1.20s.`` or ``1 of 3 hosts failed: web2.``"""
        return self.report.summary

    def raise_for_failure(self) -> None:
        """Raise the error that stopped the first failed host (the same message ``inv recipe`` prints)."""
        for host in self.hosts.values():
            if not host.ok:
                if isinstance(host.error, Ec2kitError):
                    raise host.error
                raise StepFailed(f"Recipe {self.recipe} failed on {host.name}: {host.failure}")

    def _show(self) -> tuple[str, Sequence[str], Sequence[Sequence[Any]], str]:
        from ..recipe.report import status_word

        rows: list[tuple[Any, ...]] = []
        for host, report in self.hosts.items():
            for s in report.steps:
                rows.append(
                    (host, s.number, s.name, status_word(s), s.reason or (f"exit code {s.exit_code}" if s.exit_code else ""))
                )
            if report.failure:
                rows.append((host, "", "failure", "failed", report.failure))
        title = f"Recipe {self.recipe}" + (" (check mode: nothing changed)" if self.check else "") + f": {self.summary}"
        return title, ("host", "#", "step", "status", "why"), rows, "No steps ran."

    def _repr_html_(self) -> str:
        recaps = [(name, " ".join(f"{k}={v}" for k, v in h.recap.items())) for name, h in self.hosts.items()]
        return super()._repr_html_() + display.html_table(("host", "recap"), recaps)

    def __repr__(self) -> str:
        return f"<RecipeReport {self.recipe}: {self.summary}>"


class Recipe:
    """A loaded recipe (``ec2.recipe("base")``): ``.run(on=[...], vars={...}, check=True)``."""

    def __init__(self, ec2: EC2, model: RecipeModel) -> None:
        self._ec2 = ec2
        self.model = model

    @property
    def name(self) -> str:
        """The recipe's name."""
        return self.model.name

    @property
    def description(self) -> str:
        """Its description."""
        return self.model.description

    @property
    def vars(self) -> dict[str, Any]:
        """Its variables and their defaults."""
        return dict(self.model.vars)

    @property
    def steps(self) -> list[str]:
        """Its steps' names, in order."""
        return [s.name for s in self.model.steps]

    def run(
        self,
        on: str | Instance | Iterable[str | Instance] | None = None,
        *,
        vars: dict[str, Any] | None = None,
        check: bool = False,
        tags: Sequence[str] = (),
        skip_tags: Sequence[str] = (),
        start_at: str | int | None = None,
        diff: bool = False,
        stream: Any = None,
    ) -> RecipeReport:
        """Run on each host in ``on`` (names, ids or Instances; ``"a,b"`` works too) in parallel, like ``inv recipe``.

        ``vars`` override the recipe's (a name it neither declares nor uses is refused); ``check``
        changes nothing and reports what would change; ``diff`` shows what each changed file did. Step
        lines print as they complete, to ``stream`` (default stdout; not with ``EC2(quiet=True)``).
        Failures are in the report (``.ok``, ``.raise_for_failure()``).
        """
        from ..recipe import run_recipe
        from ..recipe.loader import check_overrides

        overrides = dict(vars or {})
        check_overrides(self.model, overrides)
        report = run_recipe(
            self._ec2.ctx,
            self.model,
            hosts=_host_names(on),
            vars=overrides,
            check=check,
            tags=tuple(tags),
            skip_tags=tuple(skip_tags),
            start_at=start_at,
            reporter=self._ec2._reporter(stream=stream, diff=diff),
        )
        return RecipeReport(report, self.name)

    def __repr__(self) -> str:
        return f"<Recipe {self.name}: {self.description}>"


def _host_names(on: str | Instance | Iterable[str | Instance] | None) -> list[str]:
    if on is None:
        return []
    items: Iterable[str | Instance] = [on] if isinstance(on, (str, Instance)) else on
    names: list[str] = []
    for item in items:
        if isinstance(item, Instance):
            names.append(item.name or item.id)
        else:
            names += [part.strip() for part in str(item).split(",") if part.strip()]
    return names


class RecipeVerbs(Face):
    """``EC2``'s recipe verbs (``inv recipes``, ``recipe``, ``provision``)."""

    def recipes(self) -> Listing[RecipeInfo]:
        """The recipes: ./recipes, then ~/.ec2kit/recipes, then the built-ins (a name found earlier hides the later ones)."""
        from ..recipe import list_recipes

        return Listing(
            list_recipes(),
            title="Recipes",
            columns=("name", "description", "variables"),
            row=lambda r: (r.name, r.description, ", ".join(f"{k}={v!r}" for k, v in (r.vars or {}).items())),
            empty="No recipes found.",
        )

    def recipe(self, name_or_path: str) -> Recipe:
        """Load a recipe by name (./recipes, then the built-ins) or path: ``ec2.recipe("base").run(on="web1")``."""
        from ..recipe import load_recipe

        return Recipe(self._api, load_recipe(name_or_path))

    def provision(
        self,
        hosts: str | Instance | Iterable[str | Instance],
        *,
        recipe: str = "base",
        vars: dict[str, Any] | None = None,
        check: bool = False,
        diff: bool = False,
        stream: Any = None,
    ) -> RecipeReport:
        """Run a recipe (default: base) on many hosts in parallel (``inv provision``): names, ids, Instances, or
        ``KEY=VALUE`` / ``KEY=`` to pick every running instance with that tag. Example: ``ec2.provision("role=web")``."""
        names: list[str] = []
        for item in _host_names(hosts):
            if "=" not in item:
                names.append(item)
                continue
            key, _, value = item.partition("=")
            found = self.cloud.instances(states=["running"], tags={key: value} if value else {key: None})
            if not found:
                hint = "Tag instances at launch (inv launch NAME --tag role=web), or check `inv instances`."
                raise Ec2kitError(
                    f"No running instance has the tag {key}={value}." if value else f"No running instance has a tag {key}.",
                    hint=hint if self.spelling.cli else "Tag instances at launch (ec2.launch(NAME, tags={'role': 'web'})).",
                )
            names += [i.name or i.id for i in found if (i.name or i.id) not in names]
        if not names:
            raise ConfigError(
                "provision needs host names (inv provision web1,web2) or KEY=VALUE tags (inv provision role=web)."
                if self.spelling.cli
                else "provision needs host names (ec2.provision('web1,web2')) or KEY=VALUE tags (ec2.provision('role=web'))."
            )
        return self.recipe(recipe).run(names, vars=vars, check=check, diff=diff, stream=stream)
