"""Where an SSH connection goes, and the pure command-line builders around it.

No paramiko, no subprocess: :class:`SshTarget` says where and as whom to connect and
how to check the host's key; :func:`wrap_command`, :func:`ssh_argv`, :func:`rsync_argv`
and :func:`ssh_config_block` build strings and argv lists that tests compare exactly.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError


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
    via: str = ""  # why this address ("its public IP"), for messages when it does not answer


# --------------------------------------------------------------------------- pure builders

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote_path(path: str) -> str:
    """Shell-quote a remote path but keep a leading ``~`` / ``~/`` expandable."""
    if path == "~":
        return "~"
    if path.startswith("~/"):
        rest = path[2:]
        return "~/" + shlex.quote(rest) if rest else "~/"
    return shlex.quote(path)


def wrap_command(
    command: str,
    *,
    sudo: bool = False,
    env: Mapping[str, object] | None = None,
    cwd: str | None = None,
) -> str:
    """The final shell command for ``command`` with cwd, env and sudo applied.

    ``cd <cwd> && `` comes first and runs as the login user (so ``~`` is the
    login user's home); ``export K=V; `` lines come next; with ``sudo`` the
    exports and the command run in ``sudo -n -H bash -c '<...>'`` (``-n``: fail
    instead of prompting for a password). Example::

        wrap_command("make", env={"J": "4"}, cwd="~/src", sudo=True)
        == "cd ~/src && sudo -n -H bash -c 'export J=4; make'"
    """
    inner = command
    if env:
        for key in env:
            if not _ENV_NAME.match(str(key)):
                raise ConfigError(
                    f"'{key}' is not a valid environment variable name for the remote command {command!r}.",
                    hint="Use letters, digits and underscores, not starting with a digit.",
                )
        inner = "".join(f"export {k}={shlex.quote(str(v))}; " for k, v in env.items()) + command
    if sudo:
        inner = f"sudo -n -H bash -c {shlex.quote(inner)}"
    if cwd:
        inner = f"cd {quote_path(cwd)} && {inner}"
    return inner


def _ssh_options(target: SshTarget) -> list[str]:
    """The ``ssh`` options shared by :func:`ssh_argv` and :func:`rsync_argv` (no destination)."""
    return [
        "-i", str(target.key_file),
        "-p", str(target.port),
        "-o", "IdentitiesOnly=yes",
        "-o", f"HostKeyAlias={target.alias}",
        "-o", f"UserKnownHostsFile={target.known_hosts}",
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", "CheckHostIP=no",
    ]  # fmt: skip


def _forward(port: int | str) -> str:
    """``8888`` → ``8888:localhost:8888``; ``"8080:80"`` → ``8080:localhost:80``."""
    text = str(port)
    local, _, remote = text.partition(":")
    return f"{local}:localhost:{remote or local}"


def ssh_argv(
    target: SshTarget,
    *,
    ports: Iterable[int | str] = (),
    command: str | None = None,
    tty: bool = False,
) -> list[str]:
    """The OpenSSH client command line for ``target``, sharing ec2kit's host-key pins.

    ``ports`` become ``-L p:localhost:p`` tunnels (``"8080:80"`` maps local 8080
    to remote 80); ``tty`` adds ``-t`` (for interactive programs such as tmux).
    """
    argv = ["ssh", *_ssh_options(target)]
    for port in ports:
        argv += ["-L", _forward(port)]
    if tty:
        argv.append("-t")
    argv += ["-l", _user(target), "--", target.host]  # `--`: nothing after it is read as an option
    if command is not None:
        argv.append(command)
    return argv


_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")


def _user(target: SshTarget) -> str:
    """``target.user`` when it is a plain user name (never an option such as ``-oProxyCommand=…``)."""
    if not _USER.match(target.user):
        raise ConfigError(
            f"Login user {target.user!r} is not a user name.",
            hint="Set login_user (or EC2KIT_USER) to a plain name such as ubuntu.",
        )
    return target.user


def _remote_spec(target: SshTarget, path: str) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{_user(target)}@{host}:{path}"


def rsync_argv(
    target: SshTarget,
    src: str,
    dest: str,
    *,
    delete: bool = False,
    excludes: Iterable[str] = (),
    remote_src: bool = True,
    connect_timeout: int = 10,
    ssh_options: Sequence[str] = (),
    options: Sequence[str] = (),
) -> list[str]:
    """``rsync -az --partial`` between this machine and ``target`` over ec2kit's ssh.

    ``remote_src=True`` pulls ``src`` (remote) into ``dest`` (local); False pushes
    local ``src`` to remote ``dest``. Give remote paths absolute (``Transport.expand``):
    a relative one is relative to the login directory. Trailing-slash rules are rsync's.
    ``ssh_options`` go to rsync's ssh too (e.g. a shared connection's ControlPath); ``options``
    are more rsync flags (e.g. ``--partial-dir=DIR --delay-updates``).
    """
    ssh = ["ssh", *_ssh_options(target), *ssh_options, "-o", "BatchMode=yes", "-o", "ServerAliveInterval=15",
           "-o", f"ConnectTimeout={connect_timeout}"]  # fmt: skip
    argv = ["rsync", "-az", "--partial", *options]
    if delete:
        argv.append("--delete")
    for pattern in excludes:
        argv += ["--exclude", pattern]
    argv += ["-e", shlex.join(ssh)]
    if remote_src:
        argv += [_remote_spec(target, src), dest]
    else:
        argv += [src, _remote_spec(target, dest)]
    return argv


#: A name that is safe as an ssh_config ``Host`` pattern: no wildcard (``*``/``?``), negation, list,
#: space, quote, ``%`` token or newline, so it matches itself and nothing else.
SAFE_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_PATH_FIELDS = ("IdentityFile", "UserKnownHostsFile")


def safe_host_name(name: str) -> bool:
    """Whether ``name`` (a Name tag anyone in the account may set) can be written as ``Host NAME``."""
    return bool(SAFE_HOST_NAME.match(name))


def _config_value(key: str, value: object) -> str:
    """``value`` double-quoted for ssh_config; ``%`` doubled in paths (ssh expands ``%h``…); quotes/controls refused."""
    text = str(value)
    if any(c == '"' or ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ConfigError(
            f"{key} {text!r} cannot be written to an ssh config file (it holds a quote or a control character).",
            hint="Use a path or value without quotes and newlines.",
        )
    if key in _PATH_FIELDS:
        text = text.replace("%", "%%")
    return f'"{text}"'


def ssh_config_block(name: str, target: SshTarget) -> str:
    """An OpenSSH ``Host NAME`` entry so that ``ssh NAME`` works with ec2kit's key and pins.

    ``name`` must pass :func:`safe_host_name` (a ValueError otherwise); every value is quoted.
    """
    if not safe_host_name(name):
        raise ValueError(f"{name!r} is not safe as an ssh Host pattern")
    fields = [
        ("HostName", target.host),
        ("Port", target.port),
        ("User", _user(target)),
        ("IdentityFile", target.key_file),
        ("IdentitiesOnly", "yes"),
        ("HostKeyAlias", target.alias),
        ("UserKnownHostsFile", target.known_hosts),
        ("StrictHostKeyChecking", "accept-new"),
    ]
    return f"Host {name}\n" + "".join(f"    {k} {_config_value(k, v)}\n" for k, v in fields)


def ssh_config_blocks(named: Iterable[tuple[str, SshTarget]]) -> tuple[list[str], list[str]]:
    """Blocks for the names safe as a ``Host`` pattern, and one warning per instance skipped (naming its id)."""
    from ..untrusted import visible

    blocks, skipped = [], []
    for name, target in named:
        if safe_host_name(name):
            blocks.append(ssh_config_block(name, target))
        else:
            skipped.append(
                f"Warning: skipped instance {target.alias}: its Name {visible(name, one_line=False)!r} is not safe as an "
                "ssh Host name (only letters, digits, '.', '_' and '-'); change its Name tag to reach it as `ssh NAME`."
            )
    return blocks, skipped


def write_ssh_config(path: Path | str, blocks: Iterable[str]) -> Path:
    """Write ``blocks`` to ``path`` (0600, atomically) for ``Include`` from ~/.ssh/config."""
    from ..fsutil import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Written by ec2kit (inv ssh-config); regenerated each time, edits are lost.\n\n"
    text += "\n".join(b.rstrip("\n") + "\n" for b in blocks)
    atomic_write(path, text.encode(), mode=0o600)
    return path
