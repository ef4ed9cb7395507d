"""Where a sandbox instance's sshd answers: the sandbox's stand-in for an instance's public IP."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import SandboxError
from .info import SandboxInfo, request
from .process import control

if TYPE_CHECKING:
    from ...settings import Settings


@dataclass(frozen=True)
class SandboxAddress:
    """An instance's sshd as seen from here: dial ``host:port`` and log in as ``user`` (the SshTarget
    is built by the caller, as for an AWS instance's address: the sandbox knows nothing of SSH)."""

    host: str
    port: int
    user: str


class Resolver:
    """Finds a sandbox instance's sshd: ``Resolver(info).wait_address(instance_id) -> SandboxAddress``."""

    def __init__(self, info: SandboxInfo | Settings) -> None:
        self.info = control(info)

    def address(self, instance_id: str, *, from_instance: str | None = None) -> dict[str, Any] | None:
        """{"host","port","user"} of the instance's sshd now, or None when it is not running.

        With SSH enforcement on, the port may be a blackhole (``"filtered": True``) when no security
        group rule lets this machine (or instance ``from_instance``) in."""
        query = f"?from={from_instance}" if from_instance else ""
        code, body = request(f"{self.info.control_url}/address/{instance_id}{query}")
        if code == 200 and isinstance(body, dict):
            return body
        if code == 0:
            raise SandboxError(
                f"The sandbox at {self.info.control_url} does not answer.", hint="Restart it: `inv sandbox.down`, then retry."
            )
        return None

    def wait_address(
        self, instance_id: str, *, label: str = "", timeout: float = 10, from_instance: str | None = None
    ) -> SandboxAddress:
        """The address of a running sandbox instance's sshd, waiting up to ``timeout`` s for it (as
        seen from this machine, or from instance ``from_instance``: security groups decide).
        ``label`` names the instance in the error (``Instance.label``: "name (id)")."""
        deadline = time.monotonic() + timeout
        while True:
            address = self.address(instance_id, from_instance=from_instance)
            if address:
                return SandboxAddress(host=address["host"], port=int(address["port"]), user=address["user"])
            if time.monotonic() >= deadline:
                raise SandboxError(
                    f"Sandbox instance {label or instance_id} has no running SSH server after {timeout:.0f}s.",
                    hint="Is it running? Check `inv instances`; start it with `inv start NAME`.",
                )
            time.sleep(0.1)
