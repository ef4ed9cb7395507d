"""Recipes: list them, run one, provision hosts."""

from __future__ import annotations

from .. import ui
from ..context import Context
from ._common import WIDE_HELP, command, domain, split_list

SET_HELP = "set a variable, KEY=VALUE, or for one host HOST:KEY=VALUE (repeatable; VALUE is a TOML literal or text)"


@command(aws=False, help={"json": "print JSON", "wide": WIDE_HELP})
def recipes(ctx: Context, json: bool = False, wide: bool = False) -> None:
    """List the recipes: ./recipes, then ~/.ec2kit/recipes, then the built-ins (a name found earlier hides the later ones)."""
    found = domain(ctx).recipes()
    if json:
        ui.print_json(list(found))
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


def _finish(report, json: bool) -> None:  # noqa: ANN001 - a RecipeReport
    """``--json``'s document, then exit 2 when a host failed (the report already said which hosts failed and why)."""
    if json:
        ui.print_json(report_json(report.report))
    if not report.ok:
        from invoke.exceptions import Exit

        raise Exit(code=2)


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
    import sys

    from ..recipe import parse_overrides

    loaded = domain(ctx).recipe(name)
    report = loaded.run(
        on,
        vars=parse_overrides(set),
        check=check,
        tags=split_list(tags),
        skip_tags=split_list(skip_tags),
        start_at=start_at,
        diff=diff,
        stream=sys.stderr if json else sys.stdout,
    )
    _finish(report, json)


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
    import sys

    from ..recipe import parse_overrides

    report = domain(ctx).provision(
        hosts, recipe=recipe, vars=parse_overrides(set), check=check, diff=diff, stream=sys.stderr if json else sys.stdout
    )
    _finish(report, json)
