"""The local key pair: its public half must belong to its private half before anything is launched."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .errors import ConfigError


def public_half(private_key: Path) -> str:
    """``type base64`` of ``private_key``'s public key, derived by ``ssh-keygen -y`` (the comment dropped)."""
    try:
        out = subprocess.run(["ssh-keygen", "-y", "-f", str(private_key)], check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        raise ConfigError(
            "ssh-keygen is not installed.", hint="Install OpenSSH (e.g. `apt-get install openssh-client`)."
        ) from None
    except subprocess.CalledProcessError as err:
        raise ConfigError(
            f"{private_key} is not a usable private key ({(err.stderr or '').strip() or 'ssh-keygen failed'}).",
            hint="It must be an unencrypted OpenSSH private key with mode 600.",
        ) from None
    return " ".join(out.split()[:2])


def check_key_pair(private_key: Path) -> None:
    """Raise a ConfigError naming both files when ``private_key.pub`` is not the public half of ``private_key``
    (an instance launched with that .pub would refuse every login)."""
    pub = Path(f"{private_key}.pub")
    if not private_key.exists() or not pub.exists():
        return
    stated = " ".join(pub.read_text().split()[:2])
    if stated != public_half(private_key):
        raise ConfigError(
            f"{pub} is not the public half of {private_key}: an instance given it would refuse every login.",
            hint=f"Rewrite it from the private key: ssh-keygen -y -f {private_key} > {pub}",
        )
