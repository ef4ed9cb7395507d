"""Load recipes: TOML parsing, validation, ``uses`` resolution and variable merging.

Search path: ``./recipes`` then the recipes shipped with ec2kit. A name may also
be a path to a ``.toml`` file. Every malformed input raises a RecipeError that
names the file and line.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, NotFound, RecipeError
from .kinds import COMMON_KEYS, KINDS, Where, check_values
from .locations import (
    builtin_recipes_dir,
    builtin_templates_dir,
    key_line,
    shown_path,
    step_header_lines,
    user_dir,
    where,
)
from .model import Recipe, RecipeInfo, Step
from .variables import resolve_vars

__all__ = ["find_recipe", "load_recipe", "parse_overrides", "parse_toml", "resolve_vars", "where"]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TOP_KEYS = ("description", "uses", "vars", "secrets", "hosts", "step")
#: A recipe (with the recipes it uses) has at most this many steps, and a recipe file at most this many bytes:
#: beyond them a recipe is a runaway, and its batch script would pass what one ssh command can carry.
MAX_STEPS = 1000
MAX_RECIPE_BYTES = 16 * 1024 * 1024


def default_search_path() -> list[Path]:
    """``./recipes``, then ``~/.ec2kit/recipes``, then the built-in recipes (the first of a name wins)."""
    dirs = [Path.cwd() / "recipes", user_dir("recipes"), builtin_recipes_dir()]
    unique: dict[Path, Path] = {}
    for d in dirs:
        unique.setdefault(d.resolve(), d)
    return list(unique.values())


def source_of(path: Path) -> str:
    """Where a recipe file comes from: ``project``, ``user`` (~/.ec2kit/recipes) or ``built-in``."""
    folder = path.resolve().parent
    if folder == builtin_recipes_dir().resolve():
        return "built-in"
    if folder == user_dir("recipes").resolve():
        return "user"
    return "project"


# -- parsing ------------------------------------------------------------------------


def parse_toml(text: str, path: Path | str, *, echo: bool = True) -> dict[str, Any]:
    """Parse TOML; a syntax error becomes ``file:line:col: message`` plus the line (``echo=False``: a file
    that is not a recipe, reached through a link, may hold a secret: its line is not quoted)."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
        return data
    except RecursionError:
        from ..config import deep_line

        raise RecipeError(
            f"{path}:{deep_line(text)}: arrays or tables are nested too deeply to read.",
            hint="Flatten the value there (a few levels of nesting are plenty).",
        ) from None
    except tomllib.TOMLDecodeError as err:
        msg = str(err)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if not m:
            raise RecipeError(f"{path}: invalid TOML: {msg}") from None
        line, col = int(m.group(1)), int(m.group(2))
        reason = msg[: m.start()].strip()
        src = text.splitlines()[line - 1] if line <= len(text.splitlines()) else ""
        if not echo:
            raise RecipeError(
                f"{path}:{line}:{col}: invalid TOML: {reason} (the line is not shown: the file is a link to "
                "something that is not a .toml recipe)."
            ) from None
        raise RecipeError(
            f"{path}:{line}:{col}: invalid TOML: {reason}.\n    {src}\n    {' ' * (col - 1)}^\n"
            "Fix the syntax (strings need quotes, one key = value per line) and run again."
        ) from None


def _suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
    return (" Did you mean " + " or ".join(f"'{c}'" for c in close) + "?") if close else ""


def _step_kind(args: dict[str, Any], at: str, label: str) -> str:
    kinds = [k for k in KINDS if k in args]
    if len(kinds) == 1:
        return kinds[0]
    if len(kinds) > 1:
        raise RecipeError(
            f"{at}: {label} has {len(kinds)} kinds ({' and '.join(kinds)}); a step does exactly one thing.",
            hint="Split it into one step per kind.",
        )
    unknown = [k for k in args if k not in COMMON_KEYS]
    guess = "".join(_suggest(k, list(KINDS)) for k in unknown)
    what = f" (unknown key{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)})" if unknown else ""
    raise RecipeError(f"{at}: {label} has no kind{what}: give exactly one of {', '.join(KINDS)}.{guess}")


#: Keys people carry over from another kind or tool, and what this kind calls them (a line's file is ``path``).
SYNONYMS = {"dest": "path", "path": "dest", "file": "path", "src": "copy", "source": "copy", "to": "dest"}


def validate_step(args: dict[str, Any], kind: str, where: Where) -> None:
    """Keys known to the kind, required ones present, every value of the right type (the kind's own checks)."""
    spec = KINDS[kind]
    valid = (kind, *spec.keys, *COMMON_KEYS)
    if not spec.open_keys:
        for key in args:
            if key not in valid:
                same = SYNONYMS.get(key)
                guess = f" Did you mean '{same}'?" if same in valid else _suggest(key, valid)
                raise where.error(
                    key,
                    f"unknown key '{key}' for a {kind} step.{guess} Valid keys for a {kind} step: {', '.join(valid)}.",
                )
    for key in spec.required:
        if key not in args:
            raise RecipeError(f"{where.at}: {where.label}: a {kind} step needs '{key}'.")
    check_values(kind, args, where)


def step_where(step: Step) -> Where:
    """A :class:`Where` for a loaded step (its keys' lines read from its file when a message needs them)."""
    return Where(lambda: where(step)[0], step.label(), lambda key: where(step, key)[0])


def _key_locator(shown: str, text: str, header: int) -> Callable[[str], str]:
    """``key`` → ``recipes/x.toml:7``, the line of that key in the step starting at ``header``."""
    return lambda key: f"{shown}:{key_line(text, header, key)}"


def _read_text(path: Path) -> str:
    """The file as UTF-8 text; anything else is a RecipeError naming the byte and line."""
    shown = shown_path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise RecipeError(f"{shown} cannot be read ({err.strerror}).") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise RecipeError(
            f"{shown}:{line}: byte {err.start} (0x{raw[err.start]:02x}) is not UTF-8.",
            hint="Save the recipe as UTF-8 (most editors: 'Save with encoding').",
        ) from None


def _parse_file(path: Path, extra_keys: tuple[str, ...] = ()) -> tuple[dict[str, Any], list[Step]]:
    shown = shown_path(path)
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    if size > MAX_RECIPE_BYTES:
        raise RecipeError(
            f"{shown} is {size // (1024 * 1024)} MB; a recipe file may be at most {MAX_RECIPE_BYTES // (1024 * 1024)} MB.",
            hint="Put large content in files/ or templates/ and copy it with a copy or template step.",
        )
    text = _read_text(path)
    data = parse_toml(text, shown, echo=str(path.resolve()).endswith(".toml"))
    for key in data:
        if key not in TOP_KEYS and key not in extra_keys:
            raise RecipeError(
                f"{shown}: unknown top-level key '{key}'.{_suggest(key, TOP_KEYS)} "
                f"A recipe has: {', '.join(TOP_KEYS)} (steps are [[step]] tables)."
            )
    raw_steps = data.get("step", [])
    if not isinstance(raw_steps, list):
        raise RecipeError(f"{shown}: steps are written [[step]] (an array of tables), not [step].")
    headers = step_header_lines(text)
    steps = []
    named: dict[str, int] = {}
    for i, args in enumerate(raw_steps):
        line = headers[i] if i < len(headers) else 0
        at = f"{shown}:{line}"
        label = f"step {i + 1}" + (f" '{args['name']}'" if args.get("name") else "")
        if isinstance(args, dict) and isinstance(args.get("name"), str):
            if args["name"] in named:
                raise RecipeError(
                    f"{at}: a second step named '{args['name']}' (the first is at line {named[args['name']]}).",
                    hint="Give each step its own name: --start-at, --tags and the report tell steps apart by it.",
                )
            named[args["name"]] = line
        kind = _step_kind(args, at, label)
        validate_step(args, kind, Where(at, label, _key_locator(shown, text, line)))
        steps.append(Step(kind=kind, args=dict(args), recipe=path.stem, source=path, line=line))
    for key, types in (("uses", list), ("vars", dict), ("secrets", dict), ("hosts", dict), ("description", str)):
        if key in data and not isinstance(data[key], types):
            raise RecipeError(f"{shown}: '{key}' must be a {types.__name__}.")
    for host, values in data.get("hosts", {}).items():
        if not isinstance(values, dict):
            raise RecipeError(f"{shown}: hosts.{host} must be a table: [hosts.{host}] then key = value lines.")
    for name, spec in data.get("secrets", {}).items():
        if not isinstance(spec, dict) or set(spec) - {"env", "required"}:
            raise RecipeError(
                f"{shown}: secret '{name}' must look like {name} = {{ env = \"ENV_VAR\" }}; "
                f"never write a secret's value in a recipe (pass it with --set secret:{name}=VALUE)."
            )
    return data, steps


# -- resolution ---------------------------------------------------------------------


def find_recipe(name_or_path: str, search_path: list[Path] | None = None) -> Path:
    """The file for a recipe name (``base``) or path (``./my.toml``); NotFound suggests names."""
    from .sources import note_shadow, recipe_file

    candidate = Path(name_or_path).expanduser()
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        recipe_file(name_or_path, "recipe")
        if candidate.is_file():
            return candidate
        raise NotFound("recipe file", name_or_path, hint="Check the path.")
    dirs = search_path if search_path is not None else default_search_path()
    for d in dirs:
        f = Path(d) / f"{name_or_path}.toml"
        if f.is_file():
            if (builtin_recipes_dir() / f.name).is_file() and source_of(f) != "built-in":
                note_shadow(name_or_path, f)
            return f
    names = [p.stem for d in dirs if Path(d).is_dir() for p in Path(d).glob("*.toml")]
    raise NotFound("recipe", name_or_path, names, hint=f"Recipes are looked up in: {', '.join(map(str, dirs))}.")


def load_recipe(name_or_path: str, search_path: list[Path] | None = None, *, extra_keys: tuple[str, ...] = ()) -> Recipe:
    """Load a recipe and the recipes it ``uses``: steps in order, vars merged (nearer wins).

    ``extra_keys``: top-level keys to tolerate in the named file (e.g. a test case's ``[expect]``).
    """
    dirs = [Path(d) for d in (search_path if search_path is not None else default_search_path())]
    path = find_recipe(name_or_path, dirs)
    recipe = _load(path, dirs, stack=[], seen=set(), extra_keys=extra_keys)
    if len(recipe.steps) > MAX_STEPS:
        raise RecipeError(
            f"{shown_path(path)}: recipe '{recipe.name}' has {len(recipe.steps)} steps (with the recipes it uses); "
            f"ec2kit runs at most {MAX_STEPS} in one recipe.",
            hint="Split it into several recipes, or loop inside one step's script.",
        )
    if not recipe.steps:
        raise RecipeError(
            f"{shown_path(path)}: recipe '{recipe.name}' has no steps.",
            hint='Add one: [[step]] with name = "..." and run = "..." (or uses = ["base"] to take another\'s).',
        )
    return recipe


def check_overrides(recipe: Recipe, overrides: dict[str, Any]) -> None:
    """Refuse a ``--set`` of a variable the recipe neither declares nor mentions (a typo would be
    silently ignored otherwise). A recipe that takes a variable declares it in ``[vars]``."""
    if not overrides:
        return
    from .render import mentioned_names

    known = set(recipe.vars) | set(recipe.secrets) | mentioned_names(recipe)
    known |= {k for values in recipe.host_vars.values() for k in values}
    for key in overrides:
        name = key.split(":", 1)[1] if ":" in key else key  # secret:NAME and HOST:NAME
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
            guess = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            declared = ", ".join(sorted(recipe.vars)) or "none"
            raise RecipeError(
                f"--set {name}: recipe '{recipe.name}' has no variable '{name}'.{guess} Its variables: {declared}.",
                hint="To pass a new variable, declare it with a default in the recipe's [vars]"
                + (f" ({shown_path(recipe.path)})." if recipe.path else "."),
            )


def _load(path: Path, dirs: list[Path], stack: list[str], seen: set[Path], extra_keys: tuple[str, ...] = ()) -> Recipe:
    data, own_steps = _parse_file(path, extra_keys)
    name = path.stem
    recipe = Recipe(name=name, path=path, description=data.get("description", ""), uses=list(data.get("uses", [])))
    recipe.base_dir = path.parent.parent if path.parent.name == "recipes" else path.parent
    local_dirs = [path.parent.parent / "templates", path.parent / "templates"]
    stack = [*stack, name]
    seen.add(path.resolve())
    for used in recipe.uses:
        if used in stack:
            cycle = " → ".join([*stack[stack.index(used) :], used])
            raise RecipeError(
                f"{shown_path(path)}: recipes use each other in a cycle: {cycle}.", hint="Remove one of the 'uses'."
            )
        if not isinstance(used, str):
            raise RecipeError(f"{shown_path(path)}: uses = {used!r}: each entry is a recipe name in quotes.")
        if "/" in used or used.endswith(".toml"):
            from .sources import recipe_file

            recipe_file(used, f"{shown_path(path)}: uses")
        try:
            used_path = find_recipe(used, list(dict.fromkeys([path.parent.resolve(), *(d.resolve() for d in dirs)])))
        except NotFound as err:
            raise RecipeError(f"{shown_path(path)}: uses '{used}': {err}") from None
        if used_path.resolve() in seen:
            continue  # a diamond: its steps are already in
        sub = _load(used_path, dirs, stack, seen)
        recipe.steps.extend(sub.steps)
        recipe.vars.update(sub.vars)
        recipe.secrets.update(sub.secrets)
        for host, values in sub.host_vars.items():
            recipe.host_vars.setdefault(host, {}).update(values)
        local_dirs.extend(d for d in sub.template_dirs if d not in local_dirs)
    recipe.vars.update(data.get("vars", {}))
    recipe.secrets.update(data.get("secrets", {}))
    for host, values in data.get("hosts", {}).items():
        recipe.host_vars.setdefault(host, {}).update(values)
    recipe.steps.extend(own_steps)
    for i, step in enumerate(recipe.steps, 1):
        step.number = i
    builtin = builtin_templates_dir()
    recipe.template_dirs = [d for d in dict.fromkeys([*local_dirs, Path.cwd() / "templates", user_dir("templates"), builtin])]
    return recipe


def list_recipes(search_path: list[Path] | None = None) -> list[RecipeInfo]:
    """Every recipe on the search path (the first of each name wins), sorted by name."""
    found: dict[str, RecipeInfo] = {}
    for d in search_path if search_path is not None else default_search_path():
        for f in sorted(Path(d).glob("*.toml")) if Path(d).is_dir() else []:
            if f.stem in found:
                continue
            try:
                data = parse_toml(f.read_text(), f)
            except RecipeError as err:
                found[f.stem] = RecipeInfo(f.stem, f"(invalid: {err.message.splitlines()[0]})", {}, f, source_of(f))
                continue
            found[f.stem] = RecipeInfo(f.stem, str(data.get("description", "")), dict(data.get("vars", {})), f, source_of(f))
    builtins = {f.stem for f in builtin_recipes_dir().glob("*.toml")}
    return [replace(found[k], overrides_builtin=found[k].source != "built-in" and k in builtins) for k in sorted(found)]


# -- variables ----------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A ``--set`` value: a TOML literal when it parses (42, true, ["a"]), else the string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_overrides(items: list[str] | tuple[str, ...] | None, *, flag: str = "--set") -> dict[str, Any]:
    """``["k=v", "n=3", "secret:TOKEN=x"]`` → ``{"k": "v", "n": 3, "secret:TOKEN": "x"}``.

    Values are TOML literals when they parse (42, true, ["a"]), else text; secrets stay text.
    The command line's ``--set`` (``inv provision``, ``inv spot-run``) goes through here.
    """
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"{flag} {item!r} is not KEY=VALUE (or secret:KEY=VALUE).",
                hint=f"Example: {flag} packages='[\"htop\"]' {flag} name=base.",
            )
        out[key] = value if key.startswith("secret:") else parse_value(value)
    return out
