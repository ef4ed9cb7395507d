"""Recipes: list them, run one, provision hosts."""

from __future__ import annotations

from .. import ui
from ..context import Context
from ._common import WIDE_HELP, command, fail, split_list

SET_HELP = "set a variable, KEY=VALUE, or for one host HOST:KEY=VALUE (repeatable; VALUE is a TOML literal or text)"


@command(aws=False, help={"json": "print JSON", "wide": WIDE_HELP})
def recipes(ctx: Context, json: bool = False, wide: bool = False) -> None:
    """List the recipes: ./recipes, then ~/.ec2kit/recipes, then the built-ins (a name found earlier hides the later ones)."""
    from ..recipe import list_recipes

    found = list_recipes()
    if json:
        ui.print_json(found)
        return
    rows = [
        (
            r.name,
            r.source + (" (overrides the built-in)" if r.overrides_builtin else ""),
            r.description,
            ", ".join(f"{k}={v!r}" for k, v in (r.vars or {}).items()),
            str(r.path),
        )
        for r in found
    ]
    ui.print_table(
        "Recipes",
        ["name", "from", "description", "variables", "file"],
        rows,
        empty="No recipes found.",
        priority=("name", "from", "description", "file", "variables"),
        minimum={"name": 16, "from": 34},
        wide=wide,
    )


def _run(
    ctx: Context,
    name: str,
    hosts: list[str],
    sets: list[str] | None,
    check: bool,
    tags: str,
    skip_tags: str,
    start_at: str | None,
    diff: bool = False,
    json: bool = False,
) -> None:
    import sys

    from ..recipe import TextReporter, load_recipe, parse_overrides, run_recipe
    from ..recipe.loader import check_overrides

    recipe = load_recipe(name)
    overrides = parse_overrides(sets)
    check_overrides(recipe, overrides)
    report = run_recipe(
        ctx,
        recipe,
        hosts=hosts,
        vars=overrides,
        check=check,
        tags=tuple(split_list(tags)),
        skip_tags=tuple(split_list(skip_tags)),
        start_at=start_at,
        reporter=TextReporter(sys.stderr if json else sys.stdout, diff=diff),
    )
    if json:
        ui.print_json(report_json(report))
    if not report.ok:
        from invoke.exceptions import Exit

        raise Exit(code=2)  # the report already said which hosts failed and why


JSON_HELP = (
    "print a JSON report on stdout (per host: ok/changed/skipped/failed counts and each step's status); progress goes to stderr"
)


def report_json(report) -> dict:  # noqa: ANN001 - a recipe RunReport
    """`--json`'s document: the run's outcome, then per host its counts and every step's status."""
    return {
        "succeeded": report.ok,
        "check": report.check,
        "duration": round(report.duration, 3),
        "hosts": [
            {
                "host": name,
                "succeeded": host.ok,
                **host.recap,  # ok, changed, skipped, failed (+ unreachable) step counts
                "failure": host.failure,
                "duration": round(host.duration, 3),
                "steps": [
                    {
                        "number": s.number,
                        "name": s.name,
                        "kind": s.kind,
                        "status": s.status,
                        "reason": s.reason,
                        "exit_code": s.exit_code,
                        "duration": round(s.duration, 3),
                    }
                    for s in host.steps
                ],
            }
            for name, host in report.hosts.items()
        ],
    }


@command(
    iterable=["set"],
    help={
        "name": "recipe name (a file in ./recipes without .toml) or a path",
        "on": "host(s) to run on: instance names or ids, comma-separated",
        "set": SET_HELP,
        "check": "change nothing: show what would change, with diffs and the AWS calls that would be made",
        "tags": "only run steps with one of these tags (comma-separated)",
        "skip_tags": "skip steps with these tags",
        "start_at": "start at this step (name or number)",
        "diff": "show what each changed template, line or copy did (a unified diff)",
        "json": JSON_HELP,
    },
)
def recipe(
    ctx: Context,
    name: str,
    on: str = "",
    set: list[str] | None = None,
    check: bool = False,
    tags: str = "",
    skip_tags: str = "",
    start_at: str | None = None,
    diff: bool = False,
    json: bool = False,
) -> None:
    """Run any recipe. Example: inv recipe base --on web1,web2 --set packages='["htop"]' --check"""
    _run(ctx, name, split_list(on), set, check, tags, skip_tags, start_at, diff, json)


@command(
    iterable=["set"],
    positional=["hosts"],
    help={
        "hosts": "instance names or ids, and/or KEY=VALUE to select running instances by tag; comma-separated",
        "recipe": "recipe to run (default: base)",
        "set": SET_HELP,
        "check": "change nothing: show what would change",
        "diff": "show what each changed template, line or copy did (a unified diff)",
        "json": JSON_HELP,
    },
)
def provision(
    ctx: Context,
    hosts: str,
    recipe: str = "base",
    set: list[str] | None = None,
    check: bool = False,
    diff: bool = False,
    json: bool = False,
) -> None:
    """Run a recipe (default: base) on many hosts in parallel. Example: inv provision web1,web2 or inv provision role=web"""
    names: list[str] = []
    for item in split_list(hosts):
        if "=" not in item:
            names.append(item)
            continue
        key, _, value = item.partition("=")
        found = ctx.cloud.instances(states=["running"], tags={key: value} if value else {key: None})
        if not found:
            from ..errors import Ec2kitError

            raise Ec2kitError(
                f"No running instance has the tag {key}={value}." if value else f"No running instance has a tag {key}.",
                hint="Tag instances at launch (inv launch NAME --tag role=web), or check `inv instances`.",
            )
        names += [i.name or i.id for i in found if (i.name or i.id) not in names]
    if not names:
        raise fail("provision needs host names (inv provision web1,web2) or KEY=VALUE tags (inv provision role=web).")
    _run(ctx, recipe, names, set, check, "", "", None, diff, json)
