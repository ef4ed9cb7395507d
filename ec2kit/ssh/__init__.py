"""SSH to instances: one :class:`Transport` contract, two ways to carry it. Knows nothing of AWS.

    from ec2kit.ssh import connect
    with connect(target) as host:          # target: ec2kit.ssh.target.SshTarget
        host.run("uname -a").stdout
        host.put_bytes(b"...", "~/f", mode=0o600)

- :mod:`.target`    SshTarget and the pure builders (wrap_command, ssh_argv, rsync_argv, ssh config)
- :mod:`.pins`      ec2kit's known_hosts: host-key pins per instance id
- :mod:`.transport` the Transport base: run template, error mapping, home, transfers
- :mod:`.choose`    connect(): which transport (OpenSSH or Fabric); :mod:`.wait` wait_ssh for a booting instance
- :mod:`.sshcli`    (pure) the ``ssh`` command line, control-socket names, transfer scripts, ssh's messages read
- :mod:`.openssh`   the default: the system ``ssh`` with shared connections (no paramiko import)
- :mod:`.fabric`    the fallback: paramiko over Fabric, files over SFTP
"""

from __future__ import annotations

from .choose import connect, openssh_preferred
from .target import SshTarget
from .transport import Result, Transport
from .wait import wait_ssh

__all__ = ["Result", "SshTarget", "Transport", "connect", "openssh_preferred", "wait_ssh"]
