"""Where ec2kit keeps its state and how it reaches AWS, from the environment.

``EC2KIT_HOME``        state directory (default ``~/.ec2kit``): keys, known_hosts,
                       runs database, sandbox state.
``EC2KIT_SANDBOX``     ``1`` forces the local sandbox, ``0`` forbids it; unset means
                       "sandbox when no AWS credentials are configured".
``EC2KIT_USER``        login user on instances (default ``ubuntu``).
``EC2KIT_SSH_ADDRESS`` ``public`` (default) or ``private`` (inside a VPC).
``EC2KIT_KEY_NAME``    EC2 key pair name (default ``ec2kit``).
``EC2KIT_SSH``         ``openssh`` (the system ssh, default) or ``fabric`` (paramiko; ``paramiko`` is an alias).
``EC2KIT_SSH_PERSIST`` seconds an idle shared ssh connection lingers (default 60; 0: none).
``AWS_PROFILE`` / ``AWS_REGION`` as usual; ``--profile``/``--region`` override.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Settings:
    """Everything ec2kit needs to know before talking to AWS or a host."""

    home: Path = field(default_factory=lambda: Path(os.environ.get("EC2KIT_HOME") or Path.home() / ".ec2kit").expanduser())
    profile: str | None = None
    region: str | None = None
    sandbox: bool | None = None
    login_user: str = "ubuntu"
    ssh_address: str = "public"
    key_name: str = "ec2kit"

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Read settings from the environment; keyword overrides win when not None."""
        ssh_address = os.environ.get("EC2KIT_SSH_ADDRESS", "public")
        if ssh_address not in ("public", "private"):
            raise ConfigError(f"EC2KIT_SSH_ADDRESS={ssh_address!r} is not understood.", hint="Use 'public' or 'private'.")
        base = cls(
            profile=os.environ.get("AWS_PROFILE") or None,
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
            sandbox=_bool_env("EC2KIT_SANDBOX"),
            login_user=os.environ.get("EC2KIT_USER", "ubuntu"),
            ssh_address=ssh_address,
            key_name=os.environ.get("EC2KIT_KEY_NAME", "ec2kit"),
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

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
    def sandbox_dir(self) -> Path:
        return self.home / "sandbox"

    @property
    def runs_db(self) -> Path:
        return self.home / "runs.sqlite"


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
