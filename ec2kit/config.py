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
    security_groups = ["sg-0123456789abcdef0"]
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
    kind: str  # "str" | "int" | "list" | "price" | one of "a|b"
    default: Any
    env: tuple[str, ...] = ()
    help: str = ""


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key("region", "str", None, ("AWS_REGION", "AWS_DEFAULT_REGION"), "AWS region code"),
        Key("profile", "str", None, ("AWS_PROFILE",), "AWS profile from ~/.aws/config"),
        Key("type", "str", None, (), "instance type for launch and spot-run"),
        Key("types", "list", [], (), "fallback instance types for spot capacity"),
        Key("image", "str", None, (), "AMI name, id or alias"),
        Key("disk", "int", None, (), "root disk size in GB"),
        Key("subnet", "str", None, (), "subnet id or Name tag"),
        Key("security_groups", "list", [], (), "extra security groups"),
        Key("instance_profile", "str", None, (), "IAM instance profile name"),
        Key("ssh_cidr", "str", None, ("EC2KIT_SSH_CIDR",), "who may reach port 22 (default: your public IP /32)"),
        Key("key_name", "str", "ec2kit", ("EC2KIT_KEY_NAME",), "EC2 key pair name"),
        Key("login_user", "str", "ubuntu", ("EC2KIT_USER",), "login user on instances"),
        Key("max_price", "price", None, (), "highest spot price, USD per hour"),
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
        ),
    )
}


@dataclass(frozen=True)
class Config:
    """Effective defaults: ``values[key]`` and ``sources[key]`` ("built-in", a file path, "env NAME", "flag")."""

    values: dict[str, Any]
    sources: dict[str, str]

    def get(self, key: str) -> Any:
        return self.values[key]


def _toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        text = path.read_bytes().decode()
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: byte {err.start} is not UTF-8.", hint="Save the file as UTF-8.") from None
    except OSError as err:
        raise ConfigError(f"{path} cannot be read ({err.strerror}).") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: {err}.", hint="Fix the TOML syntax there.") from None


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
    elif key.kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        shown = f"{key.name} = 60"
    elif key.kind == "list":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        ok = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
        shown = f'{key.name} = ["a", "b"]'
    elif key.kind == "price":
        ok = isinstance(value, (int, float, str)) and not isinstance(value, bool)
        if ok:
            try:
                ok = float(value) > 0
            except ValueError:
                ok = False
        shown = f"{key.name} = 0.5"
    else:
        choices = key.kind.split("|")
        ok = value in choices
        shown = f'{key.name} = "{choices[0]}"  (one of {", ".join(choices)})'
    if not ok:
        raise ConfigError(f"{where}: {key.name} = {value!r} is not valid.", hint=f"Write it as {shown}.")
    return value


def _from_file(path: Path) -> dict[str, tuple[Any, str]]:
    data = _toml(path)
    out = {}
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
    """The effective defaults (built-in < user file < project file < environment)."""
    env = os.environ if environ is None else environ
    values = {k.name: k.default for k in KEYS.values()}
    sources = {k.name: "built-in" for k in KEYS.values()}
    for path in files(home, cwd):
        if path.is_file():
            for name, (value, where) in _from_file(path).items():
                values[name], sources[name] = value, where
    for key in KEYS.values():
        for var in key.env:
            raw = env.get(var, "").strip()
            if raw:
                values[key.name] = _check(key, raw if key.kind != "list" else raw, f"environment {var}")
                sources[key.name] = f"env {var}"
                break
    return Config(values, sources)
