"""Where ec2kit keeps its state and how it reaches AWS, from the environment.

``EC2KIT_HOME``        state directory (default ``~/.ec2kit``): keys, known_hosts,
                       runs database, sandbox state, config.toml.
``EC2KIT_SANDBOX``     ``1`` forces the local sandbox, ``0`` forbids it; unset means
                       "sandbox when no AWS credentials are configured".
``EC2KIT_USER``        login user on instances (default ``ubuntu``).
``EC2KIT_SSH_ADDRESS`` ``auto`` (default: public IP when an instance has one, else private), ``public`` or ``private``.
``EC2KIT_KEY_NAME``    EC2 key pair name (default ``ec2kit``).
``EC2KIT_SSH_CIDR``    where SSH to instances may come from (e.g. ``203.0.113.7/32``); read when used.
                       Unset: your public IPv4 /32, learnt from ``EC2KIT_CHECKIP_URL``.
``EC2KIT_CHECKIP_URL`` "what is my IP" URL (default https://checkip.amazonaws.com).
``EC2KIT_SSH``         ``openssh`` (the system ssh, default) or ``fabric`` (paramiko; ``paramiko`` is an alias).
``EC2KIT_SSH_PERSIST`` seconds an idle shared ssh connection lingers (default 60; 0: none).
``AWS_PROFILE`` / ``AWS_REGION`` as usual; ``--profile``/``--region`` override.
``EC2KIT_IDLE_CHECK``  seconds between two looks of an instance's idle watcher (default 60); the
                       shortest idle window is twice that (tests and sandbox sessions use a few seconds).
``EC2KIT_DEBUG``       1: tracebacks for unexpected errors.
``EC2KIT_RELEASE_PATIENCE`` seconds the release of a run's instance keeps retrying through AWS throttling
                       before it records the instance as a leftover for ``inv cleanup`` (default 600).
``EC2KIT_HOST_CACHE``  0: always ask AWS where instances are (default: reuse what the last
                       hour's commands saw, checked by connecting; see :mod:`ec2kit.hostcache`).
``EC2KIT_MODEL_CACHE`` 0: parse botocore's JSON models on every command (default: keep them parsed
                       under ``EC2KIT_HOME/cache/botocore``; see :mod:`ec2kit.aws.modelcache`).
``EC2KIT_CACHE_DIR``   where that cache lives instead of ``EC2KIT_HOME/cache`` (e.g. one for many homes).
Defaults for launches (type, image, disk, subnet, …) also come from ``./ec2kit.toml`` and
``~/.ec2kit/config.toml``: see :mod:`ec2kit.config`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import config
from .config import Config
from .errors import ConfigError


def _bool_env(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r} is not understood.", hint="Use 1 (sandbox), 0 (real AWS) or leave it unset (auto).")


def default_home() -> Path:
    """EC2KIT_HOME, or ~/.ec2kit."""
    return Path(os.environ.get("EC2KIT_HOME") or Path.home() / ".ec2kit").expanduser()


_default_home = default_home


@dataclass(frozen=True)
class Settings:
    """Everything ec2kit needs to know before talking to AWS or a host."""

    home: Path = field(default_factory=_default_home)
    profile: str | None = None
    region: str | None = None
    sandbox: bool | None = None
    login_user: str = "ubuntu"
    ssh_address: str = "auto"
    key_name: str = "ec2kit"
    defaults: Config | None = field(default=None, compare=False, hash=False, repr=False)  # launch defaults and their sources

    def __post_init__(self) -> None:
        # names become a file under keys/ and an ssh login: never a path or an option
        config.check_key_name(self.key_name, "key_name")
        config.check_user(self.login_user, "login_user")

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Read settings from the config files and the environment; keyword overrides (flags) win when not None."""
        home = Path(overrides["home"]) if overrides.get("home") else _default_home()
        cfg = config.load(home)
        _warn_once(cfg.warnings)
        sources = dict(cfg.sources)
        for key, value in overrides.items():
            if value is not None and key in sources:
                sources[key] = "flag"
        cfg = Config(
            {**cfg.values, **{k: v for k, v in overrides.items() if v is not None and k in cfg.values}}, sources, cfg.warnings
        )
        base = cls(
            home=home,
            profile=cfg.values["profile"],
            region=cfg.values["region"],
            sandbox=_bool_env("EC2KIT_SANDBOX"),
            login_user=cfg.values["login_user"],
            ssh_address=cfg.values["ssh_address"],
            key_name=cfg.values["key_name"],
            defaults=cfg,
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def checkip_url(self) -> str:
        """The "what is my IP" URL (EC2KIT_CHECKIP_URL, config ``checkip_url``)."""
        return str(self.default("checkip_url"))

    def default(self, key: str) -> Any:
        """The configured default for ``key`` (flag > env > ./ec2kit.toml > ~/.ec2kit/config.toml > built-in)."""
        return (self.defaults or config.load(self.home, environ={})).values[key]

    # Well-known paths under home -------------------------------------------------
    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def key_file(self) -> Path:
        """The local private key of the key pair; it never leaves this machine."""
        return self.keys_dir / self.key_name

    @property
    def known_hosts(self) -> Path:
        """ec2kit's own known_hosts, keyed by instance id (HostKeyAlias)."""
        return self.home / "known_hosts"

    @property
    def region_asked(self) -> str | None:
        """The region named by ``--region`` or ``EC2(region=...)`` (None when it came from the environment or a
        config file): the only region the sandbox honours besides its own (us-east-1)."""
        sources = self.defaults.sources if self.defaults is not None else {}
        return self.region if self.region and sources.get("region") == "flag" else None

    def aws_scope(self) -> str:
        """Which AWS account view a cached answer belongs to: profile, region and (hashed) access key id."""
        import hashlib

        region = self.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
        profile = self.profile or os.environ.get("AWS_PROFILE") or ""
        key = hashlib.sha256(os.environ.get("AWS_ACCESS_KEY_ID", "").encode()).hexdigest()[:12]
        return f"aws:{profile}:{region}:{key}"

    @property
    def sandbox_dir(self) -> Path:
        return self.home / "sandbox"

    @property
    def runs_db(self) -> Path:
        return self.home / "runs.sqlite"

    @property
    def cache_dir(self) -> Path:
        """What ec2kit can always rebuild (botocore's parsed models): ``EC2KIT_CACHE_DIR``, else home/cache; removing it is safe."""
        configured = os.environ.get("EC2KIT_CACHE_DIR", "").strip()
        return Path(configured).expanduser() if configured else self.home / "cache"

    def ensure_home(self) -> Path:
        """Create the state directory private to this user (0700): it holds keys, pins and run records."""
        home = self.home
        if home.exists() and not home.is_dir():
            raise ConfigError(
                f"EC2KIT_HOME={home} is not a directory.", hint="Point EC2KIT_HOME at a directory (or unset it for ~/.ec2kit)."
            )
        try:
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
            if home.stat().st_mode & 0o077 and home.stat().st_uid == os.getuid():
                home.chmod(0o700)  # made by an older ec2kit (0755): nobody else may read keys or records
        except OSError as err:
            raise ConfigError(
                f"ec2kit cannot use {home} for its state ({err.strerror}).",
                hint="Make it writable by you, or set EC2KIT_HOME to a directory you own.",
            ) from None
        return home

    # Read when used, so a new address applies to the next security-group check ---------
    @property
    def ssh_cidr(self) -> str | None:
        """EC2KIT_SSH_CIDR as a network (``203.0.113.7`` → ``203.0.113.7/32``), or None when unset."""
        configured = os.environ.get("EC2KIT_SSH_CIDR", "").strip() or (self.defaults.values["ssh_cidr"] if self.defaults else "")
        if not configured:
            return None
        import ipaddress

        try:
            return str(ipaddress.ip_network(configured, strict=False))
        except ValueError:
            raise ConfigError(
                f"EC2KIT_SSH_CIDR={configured!r} is not an address range.",
                hint="Use your public address with a prefix, e.g. 203.0.113.7/32.",
            ) from None


_WARNED: set[str] = set()


def _warn_once(warnings: tuple[str, ...]) -> None:
    """Print each config warning (a project file's ignored user key) once per process, on stderr."""
    import sys

    for text in warnings:
        if text not in _WARNED:
            _WARNED.add(text)
            print(text, file=sys.stderr)


def debug_enabled() -> bool:
    """EC2KIT_DEBUG=1: show tracebacks of unexpected errors instead of a one-line message."""
    return os.environ.get("EC2KIT_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off")


def ssh_client() -> str:
    """``EC2KIT_SSH``: ``openssh`` (the default) or ``fabric`` (``paramiko`` is accepted as an alias)."""
    choice = os.environ.get("EC2KIT_SSH", "openssh").strip().lower() or "openssh"
    if choice == "paramiko":
        return "fabric"
    if choice not in ("openssh", "fabric"):
        raise ConfigError(
            f"EC2KIT_SSH={choice!r} is not a known SSH client.",
            hint="Use EC2KIT_SSH=openssh (the system ssh, the default) or EC2KIT_SSH=fabric (paramiko).",
        )
    return choice


#: Seconds an idle shared ssh connection stays up when ``EC2KIT_SSH_PERSIST`` is unset.
DEFAULT_SSH_PERSIST = 60


def ssh_persist() -> int:
    """``EC2KIT_SSH_PERSIST``: seconds an idle shared connection lingers (0 = a new connection per command)."""
    raw = os.environ.get("EC2KIT_SSH_PERSIST", "").strip()
    if not raw:
        return DEFAULT_SSH_PERSIST
    try:
        return max(0, int(raw))
    except ValueError:
        raise ConfigError(
            f"EC2KIT_SSH_PERSIST={raw!r} is not a number of seconds.",
            hint="Use e.g. EC2KIT_SSH_PERSIST=60, or 0 to open a new connection per command.",
        ) from None


def host_cache_enabled() -> bool:
    """``EC2KIT_HOST_CACHE`` (default on): reuse where instances were last seen (see ec2kit.hostcache)."""
    value = os.environ.get("EC2KIT_HOST_CACHE", "").strip().lower()
    if value in ("", "1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"EC2KIT_HOST_CACHE={value!r} is not understood.", hint="Use 0 to always ask AWS, or leave it unset.")


def model_cache_enabled() -> bool:
    """``EC2KIT_MODEL_CACHE`` (default on): keep botocore's parsed models under ``EC2KIT_HOME/cache``."""
    value = os.environ.get("EC2KIT_MODEL_CACHE", "").strip().lower()
    if value in ("", "1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(
        f"EC2KIT_MODEL_CACHE={value!r} is not understood.", hint="Use 0 to parse botocore's models every time, or leave it unset."
    )


#: Seconds between two looks of the idle watcher when ``EC2KIT_IDLE_CHECK`` is unset (the systemd timer's period).
DEFAULT_IDLE_CHECK = 60


def _seconds(name: str, default: int, most: int) -> int:
    """Environment variable ``name``: whole seconds from 1 to ``most``, ``default`` when unset; else a ConfigError."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise ConfigError(
            f"{name}={raw!r} is not a number of seconds from 1 to {most}.",
            hint=f"Use e.g. {name}={default} (the default), or leave it unset.",
        )
    return int(raw)


def idle_check_every() -> int:
    """``EC2KIT_IDLE_CHECK``: seconds between the idle watcher's checks on an instance (1-3600, default 60)."""
    return _seconds("EC2KIT_IDLE_CHECK", DEFAULT_IDLE_CHECK, 3600)


#: Seconds a run's release retries through throttling when ``EC2KIT_RELEASE_PATIENCE`` is unset.
DEFAULT_RELEASE_PATIENCE = 600


def release_patience() -> int:
    """``EC2KIT_RELEASE_PATIENCE``: seconds the release of a run's instance retries while AWS throttles (1-86400)."""
    return _seconds("EC2KIT_RELEASE_PATIENCE", DEFAULT_RELEASE_PATIENCE, 86400)
