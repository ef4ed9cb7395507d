"""Waiting for a booting instance's SSH: retry until ``true`` runs, or say why not."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import AuthFailed, HostKeyMismatch, RemoteError, TimedOut
from .choose import connect
from .target import SshTarget
from .transport import Transport

AUTH_TRIES = 3  # authentication refusals in a row before wait_ssh gives up


def wait_ssh(
    target: SshTarget,
    timeout: float = 300,
    interval: float = 1.0,
    progress: Callable[[str], None] | None = None,
    client: Callable[..., Transport] | None = None,
) -> None:
    """Retry connecting and running ``true`` until it works (a booting instance).

    ``progress(message)`` is called before each try. A host-key mismatch is
    raised at once (never retried); so is an authentication failure seen
    :data:`AUTH_TRIES` times in a row (a wrong key never starts working, and only the
    first seconds after sshd starts, before cloud-init has written the key, refuse it
    legitimately); after ``timeout`` seconds → :class:`TimedOut` naming the instance
    and the last error. ``client(target, connect_timeout=…)``
    makes the transport (default :func:`ec2kit.ssh.connect`: the OpenSSH one leaves
    its shared connection behind for the next command).
    """
    make = client or connect
    label = f"{target.name} ({target.alias})" if target.name and target.name != target.alias else target.alias
    start = time.monotonic()
    deadline = start + timeout
    attempt, last, refused = 0, "no attempt made", 0
    while True:
        attempt += 1
        if progress:
            progress(f"waiting for SSH on {label} at {target.host}:{target.port} "
                     f"(try {attempt}, {time.monotonic() - start:.0f}s)")  # fmt: skip
        remaining = deadline - time.monotonic()
        try:
            with make(target, connect_timeout=max(0.5, min(10.0, remaining))) as host:
                host.run("true")
            return
        except HostKeyMismatch:
            raise
        except AuthFailed:
            refused += 1
            if refused >= AUTH_TRIES:
                raise
            last = "authentication refused"
        except RemoteError as e:
            refused, last = 0, str(e)
        if time.monotonic() + interval > deadline:
            raise TimedOut(
                f"SSH on {label} at {target.user}@{target.host}:{target.port} did not answer within "
                f"{timeout:g}s ({attempt} tries). Last error: {last}",
                hint=f"Check the instance is running (`inv instances`) and reachable; `inv start {target.name or target.alias}`.",
            )
        time.sleep(interval)
