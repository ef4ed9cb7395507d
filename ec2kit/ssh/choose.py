"""Which transport carries a connection: the system ``ssh`` (default) or Fabric."""

from __future__ import annotations

from .target import SshTarget
from .transport import Transport


def openssh_preferred() -> bool:
    """Whether :func:`connect` uses the OpenSSH client: ``EC2KIT_SSH`` is ``openssh`` (the default) and
    ``ssh`` is on PATH; ``EC2KIT_SSH=fabric`` (or ``paramiko``) picks the Fabric transport."""
    import shutil  # here, not at the top: it pulls in lzma and bz2, which a warm run never needs

    from ..settings import ssh_client

    return ssh_client() == "openssh" and shutil.which("ssh") is not None


def connect(target: SshTarget, *, connect_timeout: float = 10) -> Transport:
    """A transport to ``target`` (nothing is dialled until the first command)."""
    if openssh_preferred():
        from .openssh import OpenSshTransport

        return OpenSshTransport(target, connect_timeout=connect_timeout)
    from .fabric import FabricTransport

    return FabricTransport(target, connect_timeout=connect_timeout)
