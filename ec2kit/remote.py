"""SSH to instances through Fabric: connections, host-key pinning, transfers.

Knows nothing of AWS: callers hand it an :class:`SshTarget`.

- :class:`Host` is one lazily opened Fabric connection (TCP_NODELAY set) with
  :meth:`Host.run` as the one choke point for remote execution, and SFTP
  transfers that expand ``~`` against the remote ``$HOME``.
- Host keys are pinned per instance id (``target.alias``) in ec2kit's own
  known_hosts file, in the OpenSSH format, so ``ssh -o HostKeyAlias=<id>``
  (``inv connect``, rsync) shares the same pins.
- :func:`wrap_command`, :func:`ssh_argv`, :func:`rsync_argv` and
  :func:`ssh_config_block` are pure builders.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import select
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, HostKeyMismatch, RemoteError, TimedOut, UnexpectedExit

if TYPE_CHECKING:  # pragma: no cover
    import fabric
    import paramiko


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


@dataclass(frozen=True)
class Result:
    """What a remote command did: its output and exit code (``ok`` when 0)."""

    command: str
    stdout: str
    stderr: str
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


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
    argv.append(f"{target.user}@{target.host}")
    if command is not None:
        argv.append(command)
    return argv


def _remote_spec(target: SshTarget, path: str) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{target.user}@{host}:{path}"


def rsync_argv(
    target: SshTarget,
    src: str,
    dest: str,
    *,
    delete: bool = False,
    excludes: Iterable[str] = (),
    remote_src: bool = True,
    connect_timeout: int = 10,
) -> list[str]:
    """``rsync -az --partial`` between this machine and ``target`` over ec2kit's ssh.

    ``remote_src=True`` pulls ``src`` (remote) into ``dest`` (local); False pushes
    local ``src`` to remote ``dest``. Give remote paths absolute (``Host.expand``):
    a relative one is relative to the login directory. Trailing-slash rules are rsync's.
    """
    ssh = ["ssh", *_ssh_options(target), "-o", "BatchMode=yes", "-o", "ServerAliveInterval=15",
           "-o", f"ConnectTimeout={connect_timeout}"]  # fmt: skip
    argv = ["rsync", "-az", "--partial"]
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


def _config_value(value: object) -> str:
    text = str(value)
    return f'"{text}"' if any(c.isspace() for c in text) else text


def ssh_config_block(name: str, target: SshTarget) -> str:
    """An OpenSSH ``Host NAME`` entry so that ``ssh NAME`` works with ec2kit's key and pins."""
    fields = [
        ("HostName", target.host),
        ("Port", target.port),
        ("User", target.user),
        ("IdentityFile", target.key_file),
        ("IdentitiesOnly", "yes"),
        ("HostKeyAlias", target.alias),
        ("UserKnownHostsFile", target.known_hosts),
        ("StrictHostKeyChecking", "accept-new"),
    ]
    return f"Host {name}\n" + "".join(f"    {k} {_config_value(v)}\n" for k, v in fields)


def write_ssh_config(path: Path | str, blocks: Iterable[str]) -> Path:
    """Write ``blocks`` to ``path`` (0600, atomically) for ``Include`` from ~/.ssh/config."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Written by ec2kit (inv ssh-config); regenerated each time, edits are lost.\n\n"
    text += "\n".join(b.rstrip("\n") + "\n" for b in blocks)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- host-key pins


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def ensure_known_hosts(path: Path) -> None:
    """Create the pin file (0600) and its directory (0700) if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))


def _parse_entry(line: str) -> Any:
    """A known_hosts line as a paramiko HostKeyEntry, or None (comments, markers, bad keys)."""
    import paramiko

    line = line.strip()
    if not line or line.startswith(("#", "@")):
        return None
    try:
        return paramiko.hostkeys.HostKeyEntry.from_line(line)
    except Exception:  # a corrupt line is ignored, as OpenSSH does
        return None


def _entry_matches(entry: Any, alias: str) -> bool:
    import paramiko

    for name in entry.hostnames:
        if name == alias:
            return True
        if name.startswith("|1|") and paramiko.HostKeys.hash_host(alias, name) == name:
            return True
    return False


def pinned_keys(known_hosts: Path, alias: str) -> dict[str, paramiko.PKey]:
    """The keys pinned for ``alias`` in ``known_hosts`` by key type (plain or hashed entries)."""
    path = Path(known_hosts)
    if not path.exists():
        return {}
    found: dict[str, paramiko.PKey] = {}
    for line in path.read_text(errors="replace").splitlines():
        entry = _parse_entry(line)
        if entry is not None and _entry_matches(entry, alias):
            found.setdefault(entry.key.get_name(), entry.key)
    return found


def forget_host(known_hosts: Path | str, alias: str) -> int:
    """Remove every pin for ``alias`` from ``known_hosts``; returns how many lines were removed."""
    import fcntl

    path = Path(known_hosts)
    if not path.exists():
        return 0
    with open(path, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        lines = f.read().splitlines(keepends=True)
        kept = [line for line in lines if not ((e := _parse_entry(line)) is not None and _entry_matches(e, alias))]
        if len(kept) != len(lines):
            f.seek(0)
            f.write("".join(kept))
            f.truncate()
        return len(lines) - len(kept)


def _mismatch(target: SshTarget, got: paramiko.PKey, pinned: Iterable[paramiko.PKey]) -> HostKeyMismatch:
    who = f"'{target.name}' ({target.alias})" if target.name else f"'{target.alias}'"
    expected = ", ".join(f"{k.get_name()} {fingerprint(k)}" for k in pinned)
    forget = target.name or target.alias
    return HostKeyMismatch(
        f"Instance {who} at {target.host}:{target.port} presented host key {got.get_name()} "
        f"{fingerprint(got)}, but {target.known_hosts} pins {expected} for it. Nothing was run on it.",
        hint=f"If the instance was really rebuilt, run `inv forget-host {forget}` and connect again; "
        "otherwise someone may be intercepting the connection: investigate before trusting it.",
    )


def _pin(target: SshTarget, key: paramiko.PKey) -> None:
    """Learn ``key`` for ``target.alias`` (first contact), or raise if another key won a race."""
    import fcntl

    ensure_known_hosts(target.known_hosts)
    with open(target.known_hosts, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        pins = pinned_keys(target.known_hosts, target.alias)
        if pins:
            if pins.get(key.get_name()) == key:
                return
            raise _mismatch(target, key, pins.values())
        f.seek(0, os.SEEK_END)
        prefix = ""
        if f.tell():
            f.seek(f.tell() - 1)
            prefix = "" if f.read(1) == "\n" else "\n"
        f.write(f"{prefix}{target.alias} {key.get_name()} {key.get_base64()}\n")


def _pin_policy(target: SshTarget) -> Any:
    """A paramiko policy: unknown alias → pin the key; alias known under other key types → mismatch."""
    import paramiko

    class PinPolicy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            pins = pinned_keys(target.known_hosts, target.alias)
            if pins:
                raise _mismatch(target, key, pins.values())
            _pin(target, key)

    return PinPolicy()


# --------------------------------------------------------------------------- Host


class CommandHost:
    """What every way of reaching an instance shares: :meth:`run`'s contract, ``home``, ``expand``.

    Subclasses say how one wrapped command travels (:meth:`_exec`): :class:`Host` over a
    paramiko channel, :class:`ec2kit.openssh.OpenSshHost` through the ``ssh`` client.
    """

    target: SshTarget
    name: str
    _home: str | None = None

    def __enter__(self) -> CommandHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.address})"

    @property
    def address(self) -> str:
        """``user@host:port`` for messages."""
        t = self.target
        return f"{t.user}@{t.host}:{t.port}"

    def close(self) -> None:
        """Release what this object holds (nothing by default)."""

    def run(
        self,
        command: str,
        *,
        sudo: bool = False,
        env: Mapping[str, object] | None = None,
        cwd: str | None = None,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
        echo: bool = False,
        stream: Callable[[str], None] | None = None,
    ) -> Result:
        """Run ``command`` (wrapped by :func:`wrap_command`) and return its :class:`Result`.

        ``stdin`` is fed to the command followed by EOF (no stdin → immediate EOF).
        ``check`` raises :class:`UnexpectedExit` on a non-zero exit; ``timeout``
        raises :class:`TimedOut` (the remote process is not killed: it loses its
        output pipes); ``echo`` prints the command to stderr first;
        ``stream`` receives each output line (stdout and stderr) as it arrives,
        while the output is still captured in the result. Connection failures
        raise :class:`RemoteError` even with ``check=False``.
        """
        # Start in $HOME everywhere: sshd starts commands in the passwd home,
        # which differs from $HOME on sandbox hosts (same thing on AWS).
        final = wrap_command(command, sudo=sudo, env=env, cwd=cwd or "~")
        if echo:
            print(f"[{self.name}] $ {command}", file=sys.stderr, flush=True)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        exit_code, out, err = self._exec(final, data, timeout, stream, command)
        result = Result(command, out.decode(errors="replace"), err.decode(errors="replace"), exit_code)
        if check and not result.ok:
            raise UnexpectedExit(command, exit_code, result.stdout + result.stderr, host=self.name)
        return result

    def _exec(
        self, command: str, stdin: bytes | None, timeout: float | None, stream: Callable[[str], None] | None, shown: str
    ) -> tuple[int, bytes, bytes]:
        """Run the final ``command``: ``(exit code, stdout, stderr)``; ``shown`` names it in errors."""
        raise NotImplementedError

    @property
    def home(self) -> str:
        """The remote ``$HOME`` (one round trip, then cached)."""
        if self._home is None:
            home = self.run('printf %s "$HOME"').stdout.strip()
            if not home.startswith("/"):
                raise RemoteError(f"{self.name} ({self.address}) reported no usable $HOME ({home!r}).")
            self._home = home
        return self._home

    def expand(self, path: str) -> str:
        """An absolute remote path: ``~`` and relative paths are taken from :attr:`home`."""
        if path == "~":
            return self.home
        if path.startswith("~/"):
            return self.home.rstrip("/") + "/" + path[2:]
        if not path.startswith("/"):
            return self.home.rstrip("/") + "/" + path
        return path


class Host(CommandHost):
    """One SSH connection to an instance (opened lazily, reused; TCP_NODELAY set).

    ``with Host(target) as h: h.run("uname -a").stdout``. Host keys are checked
    against ``target.known_hosts`` under ``target.alias`` before authenticating.
    """

    def __init__(self, target: SshTarget, *, connect_timeout: float = 10, tcp_nodelay: bool = True) -> None:
        self.target = target
        self.name = target.name or target.alias or target.host
        self.connect_timeout = connect_timeout
        self.tcp_nodelay = tcp_nodelay
        self._conn: fabric.Connection | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._home: str | None = None
        self._lock = threading.RLock()

    # -- connection

    @property
    def connection(self) -> fabric.Connection:
        """The open Fabric connection (opened on first use)."""
        with self._lock:
            if self._conn is not None and not self._conn.is_connected:
                self.close()  # the link dropped (reboot, network): start a fresh one
            if self._conn is None:
                self._conn = self._open()
            return self._conn

    def _fail(self, what: str, hint: str) -> RemoteError:
        return RemoteError(f"Cannot connect to {self.name} ({self.address}): {what}.", hint=hint)

    def _dial(self) -> socket.socket:
        """The TCP socket to the host, with Nagle off (paramiko leaves it on: ~40 ms per exec)."""
        t = self.target
        try:
            sock = socket.create_connection((t.host, t.port), timeout=self.connect_timeout)
        except socket.gaierror as e:
            raise self._fail(f"cannot resolve '{t.host}' ({e.strerror})", "Check the instance's address.") from None
        except ConnectionRefusedError:
            raise self._fail(
                "connection refused (nothing listens on the SSH port)",
                f"Is the instance running and booted? `inv start {self.name}`, or wait a minute and retry.",
            ) from None
        except TimeoutError:
            raise self._fail(
                f"no answer within {self.connect_timeout:g}s",
                f"Is the instance running (`inv start {self.name}`) and does its security group allow SSH from this machine?",
            ) from None
        except OSError as e:
            raise self._fail(f"{e.strerror or e}", f"Is the instance running? `inv start {self.name}`.") from None
        if self.tcp_nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _open(self) -> fabric.Connection:
        import fabric
        import paramiko

        t = self.target
        if not Path(t.key_file).exists():
            raise self._fail(f"the private key {t.key_file} does not exist", "Check EC2KIT_HOME / the key name.")
        config = fabric.Config(lazy=True, overrides={"load_ssh_configs": False})
        conn = fabric.Connection(
            t.host,
            user=t.user,
            port=t.port,
            config=config,
            connect_kwargs={
                "key_filename": str(t.key_file),
                "look_for_keys": False,
                "allow_agent": False,
                "timeout": self.connect_timeout,
                "banner_timeout": self.connect_timeout,
                "auth_timeout": self.connect_timeout,
            },
        )
        # Pins are keyed by instance id, never by IP (IPs get reused): preload the alias's keys
        # under the dialled address so paramiko negotiates and compares exactly those.
        dialled = t.host if t.port == 22 else f"[{t.host}]:{t.port}"
        for keytype, key in pinned_keys(t.known_hosts, t.alias).items():
            conn.client.get_host_keys().add(dialled, keytype, key)
        conn.client.set_missing_host_key_policy(_pin_policy(t))
        conn.connect_kwargs["sock"] = self._dial()
        try:
            conn.open()
        except HostKeyMismatch:
            conn.close()
            raise
        except paramiko.BadHostKeyException as e:
            conn.close()
            raise _mismatch(t, e.key, [e.expected_key]) from None
        except paramiko.AuthenticationException as e:
            conn.close()
            raise self._fail(
                f"authentication as '{t.user}' with key {t.key_file} failed ({e})",
                "Was the instance launched with this key pair, and is the login user right?",
            ) from None
        except (paramiko.SSHException, EOFError, OSError) as e:
            conn.close()
            raise self._fail(
                f"the SSH handshake failed ({e or type(e).__name__})",
                f"The instance may still be booting: retry in a moment (or `inv start {self.name}`).",
            ) from None
        finally:
            conn.connect_kwargs.pop("sock", None)
        return conn

    def close(self) -> None:
        """Close the SFTP session and the connection (a later call reopens it)."""
        with self._lock:
            if self._sftp is not None:
                try:
                    self._sftp.close()
                except Exception:
                    pass
                self._sftp = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- commands

    def _channel(self) -> paramiko.Channel:
        transport = self.connection.transport
        try:
            return transport.open_session(timeout=self.connect_timeout)
        except Exception as e:  # the connection died since it was opened: reconnect once
            self.close()
            try:
                return self.connection.transport.open_session(timeout=self.connect_timeout)
            except RemoteError:
                raise
            except Exception:
                raise self._fail(f"cannot open a session ({e or type(e).__name__})", "Retry; is the instance up?") from None

    def _exec(
        self,
        command: str,
        stdin: bytes | None,
        timeout: float | None,
        stream: Callable[[str], None] | None,
        shown: str,
    ) -> tuple[int, bytes, bytes]:
        """Exec on a fresh channel: feed stdin from a thread, read both streams until EOF."""
        ch = self._channel()
        try:
            ch.exec_command(command)
            feeder = threading.Thread(target=_feed, args=(ch, stdin), daemon=True)
            feeder.start()
            out, err = _drain(ch, time.monotonic() + timeout if timeout else None, stream)
            if out is None:
                raise TimedOut(
                    f"Command on {self.name} ({self.address}) did not finish within {timeout:g}s: {shown}",
                    hint="Raise the timeout, or run long jobs in tmux (spot-run) and follow their log.",
                )
            if not ch.status_event.wait(self.connect_timeout + 5):
                raise self._fail(f"no exit status for: {shown}", "The connection may have dropped: retry.")
            code = ch.recv_exit_status()
            if code == -1:
                raise RemoteError(
                    f"The connection to {self.name} ({self.address}) closed while running: {shown}",
                    hint="Did the instance stop or reboot? Check with `inv instances`.",
                )
            return code, out, err
        except (OSError, EOFError) as e:
            raise RemoteError(
                f"The connection to {self.name} ({self.address}) failed while running: {shown} ({e})",
                hint="Did the instance stop or reboot? Check with `inv instances`.",
            ) from None
        finally:
            ch.close()

    # -- files (SFTP). Parent directories are NOT created: `run("mkdir -p DIR")` first.

    @property
    def sftp(self) -> paramiko.SFTPClient:
        """One SFTP session per Host, opened on first use."""
        with self._lock:
            conn = self.connection
            if self._sftp is None or self._sftp.sock.closed:
                try:
                    self._sftp = conn.client.open_sftp()
                except Exception as e:
                    raise self._fail(f"cannot start SFTP ({e or type(e).__name__})", "Is the sftp subsystem enabled?") from None
            return self._sftp

    def _transfer_error(self, verb: str, path: str, e: Exception) -> RemoteError:
        errno = getattr(e, "errno", None)
        if errno == 2 or isinstance(e, FileNotFoundError):
            hint = f"Create the directory first: run('mkdir -p {quote_path(os.path.dirname(path) or '/')}')."
            what = "no such file or directory"
        elif errno == 13 or isinstance(e, PermissionError):
            hint, what = "Write somewhere the login user owns, or copy with sudo afterwards.", "permission denied"
        else:
            hint, what = "Retry; is the instance up and its disk not full?", str(e) or type(e).__name__
        return RemoteError(f"Cannot {verb} {path} on {self.name} ({self.address}): {what}.", hint=hint)

    def put(self, local: Path | str, remote: str, mode: int | None = None) -> None:
        """Copy local file ``local`` to ``remote`` (``~`` expanded); parents must exist."""
        local = Path(local)
        if not local.is_file():
            raise RemoteError(f"Cannot upload {local} to {self.name}: no such local file.")
        with open(local, "rb") as f:
            self._put_stream(f, remote, mode)

    def put_bytes(self, data: bytes, remote: str, mode: int | None = None) -> None:
        """Write ``data`` to the file ``remote`` (``~`` expanded); parents must exist."""
        self._put_stream(io.BytesIO(data), remote, mode)

    def _put_stream(self, stream: Any, remote: str, mode: int | None) -> None:
        path = self.expand(remote)
        sftp = self.sftp
        try:
            sftp.putfo(stream, path, confirm=False)
            if mode is not None:
                sftp.chmod(path, mode)
        except (OSError, EOFError) as e:
            raise self._transfer_error("write", path, e) from None

    def get(self, remote: str, local: Path | str) -> None:
        """Copy the file ``remote`` (``~`` expanded) to ``local`` (its parent is created)."""
        path = self.expand(remote)
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.sftp.get(path, str(local))
        except (OSError, EOFError) as e:
            raise self._transfer_error("read", path, e) from None


def _feed(ch: paramiko.Channel, data: bytes | None) -> None:
    """Send ``data`` to the command's stdin, then EOF (runs in a thread: output may back up)."""
    try:
        if data:
            ch.sendall(data)
        ch.shutdown_write()
    except (OSError, EOFError):
        pass  # the command exited without reading all of its input


def _drain(ch: paramiko.Channel, deadline: float | None, stream: Callable[[str], None] | None) -> tuple[bytes | None, bytes]:
    """Read stdout and stderr until EOF; ``(None, b"")`` when the deadline passes."""
    out, err = bytearray(), bytearray()
    lines = LineSplitter(stream) if stream else None
    while True:
        got = False
        while ch.recv_ready():
            chunk = ch.recv(65536)
            out += chunk
            if lines:
                lines.feed(chunk, 1)
            got = True
        while ch.recv_stderr_ready():
            chunk = ch.recv_stderr(65536)
            err += chunk
            if lines:
                lines.feed(chunk, 2)
            got = True
        if (ch.eof_received or ch.closed) and not ch.recv_ready() and not ch.recv_stderr_ready():
            break
        if deadline is not None and time.monotonic() > deadline:
            return None, b""
        if not got:
            select.select([ch], [], [], 0.1)
    if lines:
        lines.flush()
    return bytes(out), bytes(err)


class LineSplitter:
    """Hands complete lines of each stream to a callback as output arrives."""

    def __init__(self, callback: Callable[[str], None]) -> None:
        self.callback = callback
        self.partial = {1: b"", 2: b""}

    def feed(self, chunk: bytes, fd: int) -> None:
        *complete, self.partial[fd] = (self.partial[fd] + chunk).split(b"\n")
        for line in complete:
            self.callback(line.decode(errors="replace"))

    def flush(self) -> None:
        for fd, rest in self.partial.items():
            if rest:
                self.callback(rest.decode(errors="replace"))
            self.partial[fd] = b""


# --------------------------------------------------------------------------- waiting


def wait_ssh(
    target: SshTarget,
    timeout: float = 300,
    interval: float = 1.0,
    progress: Callable[[str], None] | None = None,
    client: Callable[..., Any] | None = None,
) -> None:
    """Retry connecting and running ``true`` until it works (a booting instance).

    ``progress(message)`` is called before each try. A host-key mismatch is
    raised at once (never retried); after ``timeout`` seconds → :class:`TimedOut`
    naming the instance and the last error. ``client(target, connect_timeout=…)``
    makes the host object (default :class:`Host`; ``OpenSshHost`` leaves a shared
    connection behind for the next command).
    """
    who = f"{target.name} ({target.alias})" if target.name and target.name != target.alias else target.alias
    start = time.monotonic()
    deadline = start + timeout
    attempt, last = 0, "no attempt made"
    while True:
        attempt += 1
        if progress:
            progress(f"waiting for SSH on {who} at {target.host}:{target.port} "
                     f"(try {attempt}, {time.monotonic() - start:.0f}s)")  # fmt: skip
        remaining = deadline - time.monotonic()
        try:
            with (client or Host)(target, connect_timeout=max(0.5, min(10.0, remaining))) as host:
                host.run("true")
            return
        except HostKeyMismatch:
            raise
        except RemoteError as e:
            last = str(e)
        if time.monotonic() + interval > deadline:
            raise TimedOut(
                f"SSH on {who} at {target.user}@{target.host}:{target.port} did not answer within "
                f"{timeout:g}s ({attempt} tries). Last error: {last}",
                hint=f"Check the instance is running (`inv instances`) and reachable; `inv start {target.name or target.alias}`.",
            )
        time.sleep(interval)
