"""Security groups gate SSH as on AWS: who may reach an instance's port 22 (daemon side).

When enforcement is on (``knobs.enforce_ssh_rules``), ``GET /address/<id>`` hands out the
instance's sshd only if one of its security groups allows tcp/22 from the caller's public IP
(``account.caller_ip``: a /32 or any wider range containing it, e.g. 0.0.0.0/0) or, for
``?from=<instance id>``, from that instance (a rule naming one of its groups — ec2kit's
self-referencing rule — or a range containing its private IP). Otherwise the address is a
:class:`Blackhole`: a loopback port whose accept queue is full, so the kernel drops every SYN and
a client's connect times out exactly like a filtered port on AWS (after the client's own
connect timeout; no RST, no banner). The real sshd keeps running; only its address is withheld.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable
from typing import Any

from ..moto.account import cidr_contains


def covers_ssh(permission: dict[str, Any]) -> bool:
    """True when an ingress permission covers tcp/22 (or all traffic)."""
    protocol = str(permission.get("IpProtocol", "")).lower()
    if protocol in ("-1", "all"):
        return True
    if protocol not in ("tcp", "6"):
        return False
    low, high = permission.get("FromPort"), permission.get("ToPort")
    return low is not None and high is not None and int(low) <= 22 <= int(high)


def ssh_allowed(groups: Iterable[dict[str, Any]], *, caller_ip: str | None = None, source: dict[str, Any] | None = None) -> bool:
    """Whether security ``groups`` (DescribeSecurityGroups records) let SSH in from the caller
    (``caller_ip``) or from instance ``source`` (a DescribeInstances record)."""
    source_groups = {g.get("GroupId") for g in (source or {}).get("SecurityGroups", [])}
    source_ip = (source or {}).get("PrivateIpAddress")
    for group in groups:
        for permission in group.get("IpPermissions", []):
            if not covers_ssh(permission):
                continue
            ranges = [r.get("CidrIp", "") for r in permission.get("IpRanges", [])]
            if caller_ip and any(cidr_contains(cidr, caller_ip) for cidr in ranges):
                return True
            if source is not None:
                if source_ip and any(cidr_contains(cidr, source_ip) for cidr in ranges):
                    return True
                if any(p.get("GroupId") in source_groups for p in permission.get("UserIdGroupPairs", [])):
                    return True
    return False


class Blackhole:
    """A loopback TCP port that never completes a handshake: connects to it time out."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.fillers: list[socket.socket] = []
        self.lock = threading.Lock()
        self._fill()

    def _fill(self) -> None:
        """Fill the accept queue (never accepted): the kernel then drops new SYNs."""
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", self.port))
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                filler.close()
                continue
            self.fillers.append(filler)

    def close(self) -> None:
        with self.lock:
            for filler in self.fillers:
                filler.close()
            self.fillers.clear()
            self.listener.close()
