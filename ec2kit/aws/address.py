"""This machine's public IPv4, as a "what is my IP" URL sees it, remembered for a few minutes.

    ip = caller_ip(settings.checkip_url, cache=settings.home / "caller-ip.json")

SSH to ec2kit's instances is opened to that address /32 only. Asking costs one HTTPS GET
(short timeout), so the answer is cached in ``EC2KIT_HOME`` for :data:`CACHE_SECONDS`, keyed
by the URL *and* this machine's local address on its default route: a laptop that joins
another network usually gets another local address, so the cache misses at once instead of
serving the old public address for five minutes. Finding the local address sends nothing
(a UDP socket is "connected" only to pick the route).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from pathlib import Path

from ..errors import ConfigError
from ..fsutil import atomic_write

__all__ = ["CACHE_SECONDS", "caller_ip", "forget_caller_ip", "local_address"]

CACHE_SECONDS = 300.0
TIMEOUT = 4.0  # seconds: checkip answers in ~50 ms; a hung URL must not hold up a command


def local_address() -> str:
    """This machine's address on its default route ("" when there is none); no packet is sent."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: any routed address picks the default route
            return str(probe.getsockname()[0])
    except OSError:
        return ""


def _read(cache: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _ipv4(value: object) -> str:
    """``value`` when it is one plain IPv4 address ("" otherwise: a range, a name, junk)."""
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        return ""


def forget_caller_ip(cache: Path) -> None:
    """Drop every cached answer (the next :func:`caller_ip` asks the URL again)."""
    cache.unlink(missing_ok=True)


def caller_ip(url: str, *, cache: Path | None = None, fresh: bool = False) -> str:
    """This machine's public IPv4 according to ``url`` (cached in ``cache`` unless ``fresh``).

    A ConfigError says what failed and how to set the address by hand (EC2KIT_SSH_CIDR).
    """
    here = local_address()
    if cache is not None and not fresh:
        hit = _read(cache).get(url) or {}
        at = hit.get("at")
        if hit.get("local") == here and isinstance(at, (int, float)) and 0 <= time.time() - at < CACHE_SECONDS:
            remembered = _ipv4(hit.get("ip"))
            if remembered:  # a file edited by hand (or by someone else) is a miss, never an SSH rule
                return remembered
    ip = _ask(url)
    if cache is not None:
        data = _read(cache)
        data[url] = {"ip": ip, "at": time.time(), "local": here}
        try:
            atomic_write(cache, json.dumps(data), fsync=False)
        except OSError:
            pass  # a read-only home only costs another GET next time
    return ip


def _ask(url: str) -> str:
    import urllib.error
    import urllib.request

    hint = (
        "Check your network, or tell ec2kit where SSH comes from: EC2KIT_SSH_CIDR=203.0.113.7/32 "
        "(or ssh_cidr in ~/.ec2kit/config.toml); --open-ssh allows everyone."
    )
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            text = resp.read(64).decode("ascii", "replace").strip()
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise ConfigError(f"ec2kit could not learn your public IP address from {url} ({reason}).", hint=hint) from None
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise ConfigError(f"{url} answered {text[:40]!r}, which is not an IPv4 address.", hint=hint) from None
