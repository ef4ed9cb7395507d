"""Defaults from files: ``~/.ec2kit/config.toml`` (user) and ``./ec2kit.toml`` (project).

Precedence, highest first: a command-line flag > the environment > the project file > the user
file > ec2kit's built-in default. :func:`load` reads both files, checks every key and type (an
unknown key or a wrong type is an error naming the file and line), and returns each key's value
with where it came from, which ``inv config`` prints.

Example ``ec2kit.toml``::

    region = "us-east-2"
    type = "g5.xlarge"
    types = ["g5.xlarge", "g6.xlarge"]
    disk = 100

A project file comes with a repository someone else may have written, so it may only say *what*
to launch (region, type, types, image, disk, subnet, max_price, ssh_address, login_user). Keys that
say who may reach your instances or which credentials and permissions they get (``ssh_cidr``,
``checkip_url``, ``security_groups``, ``instance_profile``, ``profile``, ``key_name``) are *user
keys*: in a project file they are ignored with a warning naming the file and line, unless your own
file trusts that directory (``trust_projects = ["~/src/mine"]``, like git's ``safe.directory``).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

PROJECT_FILE = "ec2kit.toml"
USER_FILE = "config.toml"


@dataclass(frozen=True)
class Key:
    """One config key: its type, built-in default, environment variable and help."""

    name: str
    kind: str  # "str" | "int" | "list" | "price" | "limit" | "region" | "name" | "user" | "disk" | one of "a|b"
    default: Any
    env: tuple[str, ...] = ()
    help: str = ""
    user_only: bool = False  # who may reach instances / which credentials: not from a project file


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key("region", "region", None, ("AWS_REGION", "AWS_DEFAULT_REGION"), "AWS region code"),
        Key("profile", "str", None, ("AWS_PROFILE",), "AWS profile from ~/.aws/config", True),
        Key("type", "str", None, (), "instance type for launch and spot-run"),
        Key("types", "list", [], (), "fallback instance types for spot capacity"),
        Key("image", "str", None, (), "AMI name, id or alias"),
        Key("disk", "disk", None, (), "root disk size in GB"),
        Key("workdir", "str", None, (), "directory synced to ~/work/<its name> by launch, spot-run, sweep, exec and sync"),
        Key("subnet", "str", None, (), "subnet id or Name tag"),
        Key("security_groups", "list", [], (), "extra security groups", True),
        Key("instance_profile", "str", None, (), "IAM instance profile name", True),
        Key("ssh_cidr", "str", None, ("EC2KIT_SSH_CIDR",), "who may reach port 22 (default: your public IP /32)", True),
        Key("key_name", "name", "ec2kit", ("EC2KIT_KEY_NAME",), "EC2 key pair name", True),
        Key("login_user", "user", "ubuntu", ("EC2KIT_USER",), "login user on instances"),
        Key("max_price", "price", None, (), "highest spot price, USD per hour"),
        Key("idle", "idle", None, (), 'launch: stop a machine idle this long, e.g. "30m" (off: never)'),
        Key("idle_action", "stop|terminate", "stop", (), "what an idle machine does (a one-time spot one can only terminate)"),
        Key("idle_cpu", "cpu", 10, (), "a process above this % of one core counts as work for the idle watcher"),
        Key(
            "stop_unpulled_after",
            "idle",
            "1h",
            ("EC2KIT_STOP_UNPULLED_AFTER",),
            "a finished detached run nothing pulled for this long stops its instance (disk kept; off: never)",
        ),
        Key(
            "ssh_address",
            "auto|public|private",
            "auto",
            ("EC2KIT_SSH_ADDRESS",),
            "which address ec2kit dials (auto: public IP when there is one, else private)",
        ),
        Key(
            "checkip_url",
            "str",
            "https://checkip.amazonaws.com",
            ("EC2KIT_CHECKIP_URL",),
            "URL answering your public IPv4 (SSH is opened to it /32)",
            True,
        ),
        Key(
            "confirm_above",
            "limit",
            2.0,
            ("EC2KIT_CONFIRM_ABOVE",),
            "launch, spot-run and sweep ask first when expected to cost more than this, USD per hour (0: always ask)",
            True,
        ),
        Key("trust_projects", "list", [], (), "directories whose ec2kit.toml may set user keys (your file only)", True),
    )
}

#: The most a spot price may be (USD/hour): above any instance type's on-demand price.
MAX_PRICE = 1000.0
#: The highest confirm_above (USD/hour): more than any handful of the largest instances.
MAX_LIMIT = 100_000.0
MAX_DISK_GB = 16384  # the largest gp3 volume AWS makes
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")
#: An EC2 key pair name ec2kit also uses as a file name under ~/.ec2kit/keys: no path, no leading dot or dash.
KEY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+=-]{0,127}$")
#: A login user name as useradd accepts it (no option, no space, no ``@``).
USER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")


def check_key_name(name: str, where: str = "key_name") -> str:
    """``name`` when it is a plain key pair name (a file name under keys/), else a ConfigError naming ``where``."""
    if not isinstance(name, str) or not KEY_NAME.match(name):
        raise ConfigError(
            f"{where}: {name!r} is not a key pair name.",
            hint="Use letters, digits and . _ - (no '/', no leading '.' or '-'), e.g. key_name = \"ec2kit\".",
        )
    return name


def check_user(name: str, where: str = "login_user") -> str:
    """``name`` when it is a plain login user name, else a ConfigError naming ``where``."""
    if not isinstance(name, str) or not USER_NAME.match(name):
        raise ConfigError(
            f"{where}: {name!r} is not a user name.",
            hint="Use letters, digits and . _ - (not starting with '-'), e.g. login_user = \"ubuntu\".",
        )
    return name


@dataclass(frozen=True)
class Config:
    """Effective defaults: ``values[key]`` and ``sources[key]`` ("built-in", a file path, "env NAME", "flag")."""

    values: dict[str, Any]
    sources: dict[str, str]
    warnings: tuple[str, ...] = ()  # user keys a project file tried to set (ignored)

    def get(self, key: str) -> Any:
        return self.values[key]


def _toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode()
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: byte {err.start} is not UTF-8.", hint="Save the file as UTF-8.") from None
    except OSError as err:
        raise ConfigError(f"{path} cannot be read ({err.strerror}).") from None
    return parse_toml(text, str(path))


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """``tomllib.loads(text)`` with every failure (syntax, nesting too deep) a ConfigError naming ``where``."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{where}: {err}.", hint="Fix the TOML syntax there.") from None
    except RecursionError:
        raise ConfigError(
            f"{where}:{deep_line(text)}: arrays or tables are nested too deeply to read.",
            hint="Flatten the value there (a few levels of nesting are plenty).",
        ) from None
    except MemoryError:
        raise ConfigError(f"{where}: the file is too large to read.", hint="Make it smaller.") from None


def deep_line(text: str, limit: int = 64) -> int:
    """The line where ``[``/``{`` first nest deeper than ``limit`` (for a RecursionError's message)."""
    depth, line = 0, 1
    for char in text:
        if char == "\n":
            line += 1
        elif char in "[{":
            depth += 1
            if depth > limit:
                return line
        elif char in "]}":
            depth = max(0, depth - 1)
    return 1


def _line(path: Path, key: str) -> str:
    """``path:LINE`` of ``key = ...`` (or just the path)."""
    try:
        for number, text in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if re.match(rf"\s*{re.escape(key)}\s*=", text):
                return f"{path}:{number}"
    except OSError:
        pass
    return str(path)


def _check(key: Key, value: Any, where: str) -> Any:
    """``value`` as ``key`` wants it, or a ConfigError at ``where``."""
    ok: bool
    if key.kind == "str":
        ok = isinstance(value, str) and bool(value.strip())
        shown = f'{key.name} = "text"'
    elif key.kind in ("int", "disk"):
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        if ok and key.kind == "disk" and value > MAX_DISK_GB:
            raise ConfigError(f"{where}: {key.name} = {value}: a disk is 1 to {MAX_DISK_GB} GB.", hint="Example: disk = 60.")
        shown = f"{key.name} = 60"
    elif key.kind == "idle":
        from .idle import parse_window

        parse_window(value, option=f"{where}: {key.name} =", minimum=1)  # its lower bound is checked at launch
        return str(value)
    elif key.kind == "cpu":
        from .idle import check_cpu

        return check_cpu(value, option=f"{where}: {key.name} =")
    elif key.kind == "region":
        ok = isinstance(value, str) and bool(REGION.match(value))
        shown = f'{key.name} = "us-east-2"  (a region code; `inv region Ohio` finds one)'
    elif key.kind == "name":
        return check_key_name(value, f"{where}: {key.name}")
    elif key.kind == "user":
        return check_user(value, f"{where}: {key.name}")
    elif key.kind == "list":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        ok = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
        shown = f'{key.name} = ["a", "b"]'
    elif key.kind == "price":
        ok = isinstance(value, (int, float, str)) and not isinstance(value, bool)
        if ok:
            try:
                ok = 0 < float(value) <= MAX_PRICE  # refuses nan, inf and "1e999"
            except ValueError:
                ok = False
        shown = f"{key.name} = 0.5  (USD per hour, at most {MAX_PRICE:g})"
    elif key.kind == "limit":
        ok = isinstance(value, (int, float, str)) and not isinstance(value, bool)
        if ok:
            try:
                value = float(value)
                ok = 0 <= value <= MAX_LIMIT  # refuses nan, inf and negative amounts
            except ValueError:
                ok = False
        shown = f"{key.name} = 2.5  (USD per hour, 0 to {MAX_LIMIT:g}; 0 asks before every launch)"
    else:
        choices = key.kind.split("|")
        ok = value in choices
        shown = f'{key.name} = "{choices[0]}"  (one of {", ".join(choices)})'
    if not ok:
        raise ConfigError(f"{where}: {key.name} = {value!r} is not valid.", hint=f"Write it as {shown}.")
    return value


def _from_file(path: Path) -> dict[str, tuple[Any, str]]:
    data = _toml(path)
    out: dict[str, tuple[Any, str]] = {}
    for name, value in data.items():
        key = KEYS.get(name)
        if key is None:
            close = [k for k in KEYS if k.startswith(name[:3])] or sorted(KEYS)
            raise ConfigError(
                f"{_line(path, name)}: unknown key '{name}'.", hint=f"Known keys: {', '.join(close)} (`inv config` lists all)."
            )
        where = _line(path, name)
        out[name] = (_check(key, value, where), where)
    return out


def files(home: Path, cwd: Path | None = None) -> tuple[Path, Path]:
    """(user file, project file) paths."""
    return home / USER_FILE, (cwd or Path.cwd()) / PROJECT_FILE


def load(home: Path, cwd: Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """The effective defaults (built-in < user file < project file < environment).

    A project file's user keys (``Key.user_only``) are ignored with a warning unless the user's file
    lists the project's directory in ``trust_projects``.
    """
    env = os.environ if environ is None else environ
    values = {k.name: k.default for k in KEYS.values()}
    sources = {k.name: "built-in" for k in KEYS.values()}
    warnings: list[str] = []
    user_file, project_file = files(home, cwd)
    if user_file.is_file():
        for name, (value, where) in _from_file(user_file).items():
            values[name], sources[name] = value, where
    if project_file.is_file() and project_file.resolve() != user_file.resolve():
        trusted = _trusted(project_file.parent, values["trust_projects"])
        for name, (value, where) in _from_file(project_file).items():
            if KEYS[name].user_only and not trusted:
                warnings.append(
                    f"Warning: {where}: {name} = {value!r} ignored: a project's ec2kit.toml may not set {name} "
                    f"(it decides who reaches your instances or with which credentials). Set it in {user_file}, "
                    f"or trust this directory there: trust_projects = [{str(project_file.parent)!r}]."
                )
                continue
            values[name], sources[name] = value, where
    for key in KEYS.values():
        for var in key.env:
            raw = env.get(var, "").strip()
            if raw:
                values[key.name] = _check(key, raw if key.kind != "list" else raw, f"environment {var}")
                sources[key.name] = f"env {var}"
                break
    return Config(values, sources, tuple(warnings))


def _trusted(project: Path, trusted: list[str]) -> bool:
    """Whether ``project`` is one of the user's ``trust_projects`` directories."""
    here = project.resolve()
    return any(Path(t).expanduser().resolve() == here for t in trusted)


def set_in_files(home: Path, key: str, cwd: Path | None = None) -> list[tuple[Any, str]]:
    """Every ``(value, "file:line")`` where the user's or the project's file sets ``key``, even one the other
    overrides (``inv delete-image`` refuses an image either file names)."""
    return [_from_file(path)[key] for path in dict.fromkeys(files(home, cwd)) if path.is_file() and key in _from_file(path)]
