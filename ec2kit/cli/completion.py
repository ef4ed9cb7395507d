"""Tab completion of command, option, instance, run, sweep, recipe and GPU model names (no AWS call).

The shell hands ``ec2kit --complete -- WORDS`` the words before the cursor (and the one under
it); the names come from what this machine already knows: the host cache
(``EC2KIT_HOME/hosts.json``), the run records, the sweep records, the recipe search path and the
GPU catalogue (``gpu-types.json``).
Nothing here imports boto3: a completion must answer in a blink, with or without a network.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

BASH_SCRIPT = """# ec2kit tab completion for bash: eval "$({binary} --print-completion-script bash)"
_complete_{func}() {{
    local candidates
    candidates=$({binary} --complete -- "${{COMP_WORDS[@]:0:COMP_CWORD+1}}" 2>/dev/null)
    COMPREPLY=( $(compgen -W "${{candidates}}" -- "${{COMP_WORDS[COMP_CWORD]}}") )
}}
complete -F _complete_{func} -o default {binary}
"""

#: (command, parameter) → what names it takes; a parameter alone applies to every command.
KINDS: dict[tuple[str, str], str] = {
    ("*", "name"): "instance",
    ("*", "instance"): "instance",
    ("*", "hosts"): "instance",
    ("*", "on"): "instance",
    ("*", "monitor"): "instance",
    ("*", "run"): "run",
    ("*", "sweep"): "sweep",
    ("*", "recipe"): "recipe",
    ("*", "gpus"): "gpu",
    ("gpus", "model"): "gpu",
    ("recipe", "name"): "recipe",
    ("pull", "run"): "run+sweep",
    ("stop-run", "run"): "run+sweep",
    ("launch", "name"): "",  # a new name
    ("spot-run", "name"): "",
    ("sweep", "name"): "",
    ("exec", "run"): "",  # a new run name
    ("make-volume", "name"): "",
    ("snapshot", "name"): "",
    ("freeze", "image_name"): "",
}


def kind_of(task: str, param: str) -> str:
    """What names ``task``'s ``param`` takes ('' when none)."""
    return KINDS.get((task, param), KINDS.get(("*", param), ""))


def instance_names(home: Path) -> list[str]:
    """Instance names in the host cache, every account scope, terminated ones left out."""
    from ..hostcache import FILE

    try:
        data = json.loads((home / FILE).read_text())
    except (OSError, ValueError):
        return []
    names: set[str] = set()
    for scope in (data.get("scopes") or {}).values() if isinstance(data, dict) else []:
        for entry in ((scope or {}).get("instances") or {}).values() if isinstance(scope, dict) else []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry.get("state") != "terminated":
                names.add(entry["name"])
    return sorted(names)


def gpu_models(home: Path) -> list[str]:
    """GPU models in the GPU catalogue (``gpu-types.json``, every region), spaces as dashes (``RTX-PRO-4500``)."""
    data = json.loads((home / "gpu-types.json").read_text())
    models = {
        str(t["model"]).replace(" ", "-")
        for scope in (data.get("scopes") or {}).values()
        for t in (scope.get("types") or [])
        if isinstance(t, dict) and t.get("model")
    }
    return sorted(models, key=str.lower)


def run_names(home: Path) -> list[str]:
    """Names of the runs recorded on this machine."""
    from ..runs import Runs
    from ..settings import Settings

    db = Settings.from_env(home=home).runs_db
    return sorted(r.name for r in Runs(db).all()) if db.exists() else []


def sweep_names(home: Path) -> list[str]:
    """Names of the sweeps recorded on this machine."""
    from ..sweep.records import Sweeps

    return sorted(r.name for r in Sweeps(home).all())


def recipe_names(home: Path) -> list[str]:
    """Recipes on the search path (./recipes, ~/.ec2kit/recipes, the built-ins)."""
    from ..recipe.loader import list_recipes

    return [r.name for r in list_recipes()]


SOURCES: dict[str, Callable[[Path], list[str]]] = {
    "instance": instance_names,
    "run": run_names,
    "sweep": sweep_names,
    "recipe": recipe_names,
    "gpu": gpu_models,
}


def names_of(kind: str, home: Path) -> list[str]:
    """Every name of ``kind`` ('run+sweep': both); a source that fails gives none (completion never errors)."""
    found: list[str] = []
    for part in filter(None, kind.split("+")):
        try:
            found += SOURCES[part](home)
        except Exception:  # noqa: BLE001 - a damaged record file must not break the shell
            continue
    return found


def candidates(remainder: str, parser_contexts: dict[str, Any], core_flags: list[str], home: Path) -> list[str]:
    """What may come at the cursor, given Invoke's ``--complete`` remainder (the program name first)."""
    try:
        words = shlex.split(remainder)
    except ValueError:
        words = remainder.split()
    words = words[1:]  # the program's name
    current = "" if remainder.endswith(" ") or not words else words.pop()
    task = next((w for w in words if w in parser_contexts), None)
    if task is None:
        return core_flags if current.startswith("-") else sorted(parser_contexts)
    ctx = parser_contexts[task]
    if current.startswith("-"):
        return sorted(ctx.flag_names()) + ["--help"]
    after = words[words.index(task) + 1 :]
    if after and after[-1] in ctx.flags and ctx.flags[after[-1]].takes_value:
        return names_of(kind_of(task, ctx.flags[after[-1]].name or ""), home)
    given = 0
    skip = False
    for word in after:
        if skip:
            skip = False
        elif word in ctx.flags:
            skip = ctx.flags[word].takes_value
        else:
            given += 1
    positional = [a.name for a in ctx.positional_args]
    if given < len(positional):
        return names_of(kind_of(task, positional[given] or ""), home)
    return []
