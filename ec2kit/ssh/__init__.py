"""SSH to instances: one :class:`Transport` contract, two ways to carry it. Knows nothing of AWS.

    from ec2kit.ssh import connect
    with connect(target) as host:          # target: ec2kit.ssh.target.SshTarget
        host.run("uname -a").stdout
        host.put_bytes(b"...", "~/f", mode=0o600)

- :mod:`.target`    SshTarget and the pure builders (wrap_command, ssh_argv, rsync_argv, ssh config)
- :mod:`.pins`      ec2kit's known_hosts: host-key pins per instance id
- :mod:`.transport` the Transport base: run template, error mapping, home, transfers; wait_ssh
- :mod:`.openssh`   the default: the system ``ssh`` with shared connections (no paramiko import)
- :mod:`.fabric`    the fallback: paramiko over Fabric, files over SFTP
"""

from __future__ import annotations

from .target import SshTarget
from .transport import Result, Transport, wait_ssh

__all__ = ["Result", "SshTarget", "Transport", "connect", "openssh_preferred", "wait_ssh"]


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
