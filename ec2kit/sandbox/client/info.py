"""Where a running sandbox answers, and the one way to talk to its control server (stdlib only)."""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...errors import SandboxError

SANDBOX_REGION = "us-east-1"
SANDBOX_CREDENTIALS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}


@dataclass(frozen=True)
class SandboxInfo:
    """Where a running sandbox answers: moto's EC2 endpoint and the control server."""

    endpoint_url: str
    control_url: str
    region: str
    dir: Path
    pid: int

    @property
    def checkip_url(self) -> str:
        """The sandbox's https://checkip.amazonaws.com: the caller's public IPv4 + newline."""
        return f"{self.control_url}/checkip"

    def client(self, service: str = "ec2") -> Any:
        """A boto3 client for the sandbox (dummy credentials, us-east-1)."""
        import boto3

        make: Any = boto3.client  # any service name (the stubs want a literal one)
        return make(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=SANDBOX_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=SANDBOX_CREDENTIALS["aws_secret_access_key"],
        )


def request(url: str, method: str = "GET", timeout: float = 10.0) -> tuple[int, Any]:
    """(status, JSON body) of a request to the control server; status 0 when unreachable (or not JSON below 400).

    Plain http.client on loopback: no proxy applies to the local control server, and urllib.request
    (~10 ms to import, on the path of every sandbox command) would add nothing here.
    """
    import http.client  # lazy: the CLI imports this package at start-up

    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    make = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    try:
        conn = make(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    except ValueError:  # a port that is not a number
        return 0, None
    try:
        conn.request(method, target, body=b"" if method in ("POST", "PUT") else None)
        resp = conn.getresponse()
        status, raw = resp.status, resp.read()
    except (OSError, http.client.HTTPException):
        return 0, None
    finally:
        conn.close()
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return (status, None) if status >= 400 else (0, None)


def port_answers(url: str) -> bool:
    """True when something accepts TCP connections at ``url``'s host and port."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=1):
            return True
    except OSError:
        return False


def volumes_supported() -> bool:
    """True when this process can emulate volumes: root and ``losetup`` present."""
    return os.geteuid() == 0 and shutil.which("losetup") is not None


def require_volumes() -> None:
    """Raise SandboxError when volumes cannot be emulated here."""
    if not volumes_supported():
        raise SandboxError(
            "Volumes need root in the sandbox: attaching an EBS volume is emulated with a loop device "
            "(losetup), which only root can create.",
            hint="Run ec2kit as root (a throwaway VM or CI), or try volumes on real AWS.",
        )
