"""A sweep's runs from ``--grid KEY=V1,V2`` flags and a ``--grid-file`` (pure: no AWS, no SSH).

    runs = expand(["lr=1e-3,3e-4", "seed=1,2"])              # 4 settings dicts, in product order
    runs = expand([], load_file("sweep.toml"))                 # [grid] product and/or [[runs]] list

A grid file is TOML::

    [grid]                      # every combination of these (a product)
    lr = [1e-3, 3e-4]
    seed = [1, 2]

    [[runs]]                    # and/or runs listed one by one
    lr = 1e-2
    seed = 7

Each run's settings reach its script as environment variables, names upper-cased (``LR=1e-3``),
so a key must make a valid variable name and two keys may not differ only by case.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED = {"HOME", "PATH", "USER", "SHELL", "PWD", "TERM", "LANG", "TMUX", "IFS", "PS1", "LOGNAME"}
MAX_RUNS = 10000
EXAMPLE = "--grid lr=1e-3,3e-4 --grid seed=1,2"


@dataclass
class GridFile:
    """What a --grid-file holds: a product table and a list of runs, with the line of each key (for errors)."""

    path: str
    grid: dict[str, list[str]] = field(default_factory=dict)
    runs: list[dict[str, str]] = field(default_factory=list)


def env_name(key: str) -> str:
    """The environment variable a setting becomes: ``lr`` → ``LR``."""
    return key.upper()


def check_key(key: str, where: str) -> str:
    """``key`` if it can be a setting (a shell variable name once upper-cased), else a ConfigError naming ``where``."""
    if not KEY.match(key):
        raise ConfigError(
            f"{where}: '{key}' cannot be a setting's name (it becomes the environment variable {key.upper()!r}).",
            hint="Use letters, digits and '_', starting with a letter, e.g. lr or batch_size.",
        )
    name = env_name(key)
    if name in RESERVED or name.startswith("EC2KIT_"):
        raise ConfigError(
            f"{where}: the setting '{key}' would replace the environment variable {name}, which the run needs.",
            hint="Rename it, e.g. my_" + key.lower() + ".",
        )
    return key


def value_text(value: Any, where: str) -> str:
    """A TOML value as the text its environment variable gets (numbers as written, true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ConfigError(
        f"{where}: {value!r} is not a plain value.", hint="Give strings, numbers or true/false, e.g. lr = [1e-3, 3e-4]."
    )


def parse_flag(flag: str) -> tuple[str, list[str]]:
    """``'lr=1e-3,3e-4'`` → ``('lr', ['1e-3', '3e-4'])``, or a ConfigError that says what to write."""
    key, sep, values = flag.partition("=")
    key = key.strip()
    where = f"--grid {flag!r}"
    if not sep or not key:
        raise ConfigError(f"{where} is not KEY=VALUE,VALUE,….", hint=f"Example: {EXAMPLE}.")
    check_key(key, where)
    items = [v.strip() for v in values.split(",")]
    if not values.strip() or any(not v for v in items):
        raise ConfigError(f"{where} has an empty value.", hint=f"List the values after '=', comma-separated: {key}=1,2,3.")
    _no_repeats(items, where)
    return key, items


def _no_repeats(values: list[str], where: str) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ConfigError(f"{where} lists the value {v!r} twice.", hint="List each value once.")
        seen.add(v)


def _line_of(text: str, key: str, start: int = 0) -> int:
    """1-based line of the first ``key = `` at or after line ``start`` (0-based), or the table header's line."""
    lines = text.splitlines()
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    for i in range(start, len(lines)):
        if pattern.match(lines[i]):
            return i + 1
    return start + 1


def _header_lines(text: str, header: str) -> list[int]:
    """0-based lines of each ``[header]`` / ``[[header]]``."""
    pattern = re.compile(rf"^\s*\[\[?\s*{re.escape(header)}\s*\]\]?\s*(#.*)?$")
    return [i for i, line in enumerate(text.splitlines()) if pattern.match(line)]


def load_file(path: str | Path) -> GridFile:
    """Read a --grid-file: ``[grid]`` (KEY = [values]) and/or ``[[runs]]`` (KEY = value); errors name file:line."""
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"--grid-file {path}: no such file.", hint="Give a TOML file with a [grid] table and/or [[runs]] entries."
        )
    text = p.read_text(errors="replace")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err}).", hint="Fix the line it names; see `inv sweep --help`.") from None
    except RecursionError:  # [[[[…]]]] thousands deep (issue 20)
        from ..config import deep_line

        raise ConfigError(f"{path}:{deep_line(text)}: arrays are nested too deeply to read.", hint="Flatten them.") from None
    unknown = sorted(set(data) - {"grid", "runs"})
    if unknown:
        raise ConfigError(
            f"{path}:{_line_of(text, unknown[0])}: unknown key '{unknown[0]}'.",
            hint="A grid file has a [grid] table (KEY = [values]) and/or [[runs]] entries (KEY = value).",
        )
    found = GridFile(str(path))
    grid = data.get("grid", {})
    if not isinstance(grid, dict):
        raise ConfigError(
            f"{path}:{_line_of(text, 'grid')}: 'grid' must be a table.", hint="Write [grid] then lr = [1e-3, 3e-4]."
        )
    start = (_header_lines(text, "grid") or [0])[0]
    for key, values in grid.items():
        where = f"{path}:{_line_of(text, key, start)}"
        check_key(key, where)
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: '{key}' must be a non-empty list of values.", hint=f"Example: {key} = [1, 2, 3].")
        items = [value_text(v, where) for v in values]
        _no_repeats(items, where)
        found.grid[key] = items
    runs = data.get("runs", [])
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ConfigError(
            f"{path}:{_line_of(text, 'runs')}: 'runs' must be [[runs]] tables.", hint="Write [[runs]] then lr = 1e-3."
        )
    heads = _header_lines(text, "runs")
    for n, entry in enumerate(runs):
        line = heads[n] if n < len(heads) else 0
        if not entry:
            raise ConfigError(f"{path}:{line + 1}: an empty [[runs]] entry.", hint="Give its settings, e.g. lr = 1e-3.")
        settings = {}
        for key, value in entry.items():
            where = f"{path}:{_line_of(text, key, line)}"
            settings[check_key(key, where)] = value_text(value, where)
        found.runs.append(settings)
    if not found.grid and not found.runs:
        raise ConfigError(f"{path}: no runs in it.", hint="Add a [grid] table (lr = [1e-3, 3e-4]) or [[runs]] entries.")
    return found


def expand(flags: list[str] | tuple[str, ...] = (), grid_file: GridFile | None = None) -> list[dict[str, str]]:
    """Every run's settings, in order: the product of the --grid flags and the file's [grid], then the file's [[runs]].

    Keys are checked (one per flag, no two alike once upper-cased); an empty grid is an error.
    """
    product: dict[str, list[str]] = {}
    origin: dict[str, str] = {}
    for flag in flags:
        key, values = parse_flag(flag)
        _add(product, origin, key, values, f"--grid {flag!r}")
    if grid_file is not None:
        for key, values in grid_file.grid.items():
            _add(product, origin, key, values, f"{grid_file.path} [grid]")
    runs = [dict(zip(product, combo)) for combo in itertools.product(*product.values())] if product else []
    if grid_file is not None:
        for entry in grid_file.runs:
            _same_case(entry, f"{grid_file.path} [[runs]]")
            runs.append(dict(entry))
    if not runs:
        raise ConfigError(
            "The sweep has no runs: give --grid or --grid-file.", hint=f"Example: inv sweep --script train.sh {EXAMPLE}."
        )
    if len(runs) > MAX_RUNS:
        raise ConfigError(
            f"The grid makes {len(runs)} runs; a sweep takes at most {MAX_RUNS}.", hint="Split it into several sweeps."
        )
    seen: dict[tuple[tuple[str, str], ...], int] = {}
    for i, settings in enumerate(runs):
        same = tuple(sorted(settings.items()))
        if same in seen:
            shown = " ".join(f"{k}={v}" for k, v in settings.items())
            raise ConfigError(
                f"Runs {seen[same] + 1} and {i + 1} of the sweep have the same settings ({shown}).", hint="List each run once."
            )
        seen[same] = i
    return runs


def _add(product: dict[str, list[str]], origin: dict[str, str], key: str, values: list[str], where: str) -> None:
    for known in product:
        if env_name(known) == env_name(key):
            what = "twice" if known == key else f"as '{known}' and '{key}' (both become {env_name(key)})"
            raise ConfigError(
                f"{where}: the setting '{key}' is given {what} (first in {origin[known]}).",
                hint=f"Give each setting once, with all its values: --grid {key}=1,2,3.",
            )
    product[key] = values
    origin[key] = where


def _same_case(settings: dict[str, str], where: str) -> None:
    names: dict[str, str] = {}
    for key in settings:
        if env_name(key) in names:
            raise ConfigError(
                f"{where}: '{names[env_name(key)]}' and '{key}' both become {env_name(key)}.", hint="Keep one of them."
            )
        names[env_name(key)] = key


def environment(settings: dict[str, str]) -> dict[str, str]:
    """A run's settings as environment variables: ``{'lr': '1e-3'}`` → ``{'LR': '1e-3'}``."""
    return {env_name(k): v for k, v in settings.items()}


def label(settings: dict[str, str]) -> str:
    """``lr=1e-3 seed=1`` for tables and messages."""
    return " ".join(f"{k}={v}" for k, v in settings.items())
