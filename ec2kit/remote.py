"""SSH to instances through Fabric: connections, host-key pinning, transfers.

Knows nothing of AWS: callers hand it an :class:`SshTarget`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SshTarget:
    """Where and as whom to connect, and how to check the host's key."""

    host: str
    port: int
    user: str
    key_file: Path
    alias: str
    known_hosts: Path
    name: str = ""
