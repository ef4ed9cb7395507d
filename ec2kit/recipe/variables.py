"""A host's variables: recipe defaults, per-host values, ``--set``, facts, and vars built from vars.

Precedence, lowest first: the recipe's ``[vars]`` (used recipes' first) < ``[hosts.NAME]`` in the
recipe < ``hosts.toml`` beside the recipes < ``--set KEY=VALUE`` < ``--set NAME:KEY=VALUE``.
Facts ec2kit adds: ``name``, ``host`` (this host: name, id, private_ip, public_ip, type, zone, tags,
user, home), ``hosts`` (every host of this run, same keys), ``tags`` (this host's instance tags).

A variable may be built from others (``app = "{{ base }}/app"``): :func:`resolve_templated` renders
them in dependency order, lazily, and reports a cycle or an undefined name as a located error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RecipeError
from .model import Recipe

INVENTORY_FILE = "hosts.toml"


class HostFacts(dict[str, Any]):
    """The ``host`` variable: name, id, user and the instance's facts; ``home`` is fetched (one round
    trip) only if a step uses it."""

    def __init__(self, data: dict[str, Any], get_host: Any) -> None:
        super().__init__(data)
        self._get_host = get_host

    def __missing__(self, key: str) -> Any:
        if key == "home":
            self["home"] = self._get_host().home
            return self["home"]
        raise KeyError(key)


def split_host_overrides(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``{"port": 1, "web1:port": 2}`` → ``({"port": 1}, {"web1": {"port": 2}})`` (``secret:`` keys stay global)."""
    plain: dict[str, Any] = {}
    per_host: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        host, sep, name = key.partition(":")
        if sep and host != "secret":
            if not host or not name:
                raise ConfigError(f"--set {key}=…: a per-host value is HOST:KEY=VALUE.", hint="Example: --set web1:port=8001")
            per_host.setdefault(host, {})[name] = value
        else:
            plain[key] = value
    return plain, per_host


def inventory(recipe: Recipe) -> dict[str, dict[str, Any]]:
    """Per-host values: the recipe's ``[hosts.NAME]`` tables, then ``hosts.toml`` beside its recipes/ (wins)."""
    found: dict[str, dict[str, Any]] = {name: dict(values) for name, values in recipe.host_vars.items()}
    base = recipe.base_dir or Path.cwd()
    path = base / INVENTORY_FILE
    if path.is_file():
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        from ..config import deep_line

        text = ""
        try:
            text = path.read_text()
            data = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise RecipeError(f"{path}: {err}.", hint="Fix the TOML there: one [HOSTNAME] table per host.") from None
        except RecursionError:
            raise RecipeError(f"{path}:{deep_line(text)}: values are nested too deeply to read.", hint="Flatten them.") from None
        for name, values in data.items():
            if not isinstance(values, dict):
                raise RecipeError(f"{path}: '{name}' must be a table: [{name}] then key = value lines.")
            found.setdefault(name, {}).update(values)
    return found


def values_for(
    target: str | None,
    recipe_vars: dict[str, Any],
    hosts: dict[str, dict[str, Any]],
    overrides: dict[str, Any],
    per_host: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """One host's variables by the precedence in this module's docstring (secrets are in ``overrides``)."""
    mine = hosts.get(target or "", {})
    return {**recipe_vars, **mine, **overrides, **per_host.get(target or "", {})}


def instance_facts(instance: Any) -> dict[str, Any]:
    """What a recipe may know of an instance: name, id, addresses, type, zone, tags."""
    return {
        "name": instance.name or instance.id,
        "id": instance.id,
        "private_ip": instance.private_ip,
        "public_ip": instance.public_ip,
        "type": instance.type,
        "zone": instance.zone,
        "tags": dict(instance.tags),
    }


def resolve_templated(values: dict[str, Any], names: set[str], where: str) -> None:
    """Render, in place, the variables in ``names`` whose values use other variables, each once,
    dependencies first. A cycle or an undefined name is a RecipeError naming ``where`` and the chain."""
    from .render import render_plain, variables_used

    pending = {n for n in names if n in values and _templated(values[n])}
    if not pending:
        return
    done: set[str] = set()

    def visit(name: str, chain: list[str]) -> None:
        if name in done or name not in pending:
            return
        if name in chain:
            cycle = " → ".join([*chain[chain.index(name) :], name])
            raise RecipeError(
                f"{where}: variables refer to each other in a cycle: {cycle}.", hint="Give one of them a plain value."
            )
        for used in sorted(variables_used(values[name]) & pending):
            visit(used, [*chain, name])
        try:
            values[name] = render_plain(values[name], values)
        except RecipeError as err:
            raise RecipeError(f"{where}: variable '{name}': {err.message}", hint=err.hint) from None
        done.add(name)

    for name in sorted(pending):
        visit(name, [])


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    return False


def resolve_vars(
    recipe: Recipe, overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None
) -> tuple[dict[str, Any], set[str]]:
    """Merge recipe vars < ``overrides``; resolve secrets. Returns (vars, secret values to mask)."""
    import os

    env = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    secret_overrides = {k.split(":", 1)[1]: v for k, v in overrides.items() if k.startswith("secret:")}
    plain = {k: v for k, v in overrides.items() if not k.startswith("secret:")}
    values: dict[str, Any] = {**recipe.vars, **plain}
    secrets: set[str] = set()
    for name, spec in recipe.secrets.items():
        if name in secret_overrides:
            value = secret_overrides.pop(name)
        elif spec.get("env") and spec["env"] in env:
            value = env[spec["env"]]
        elif spec.get("required", True):
            raise RecipeError(
                f"Recipe '{recipe.name}' needs the secret '{name}': set the environment variable "
                f"{spec.get('env', name)} or pass --set secret:{name}=VALUE."
            )
        else:
            value = ""
        values[name] = value
        secrets.add(str(value))
    for name, value in secret_overrides.items():
        values[name] = value
        secrets.add(str(value))
    return values, {s for s in secrets if s}
