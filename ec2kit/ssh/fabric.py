"""The fallback transport: paramiko over one Fabric Connection (TCP_NODELAY set), files over SFTP.

Used with ``EC2KIT_SSH=fabric`` (or ``paramiko``), or when no ``ssh`` client is installed.
Shares the run template, error mapping and host-key pins with every transport
(:mod:`ec2kit.ssh.transport`, :mod:`ec2kit.ssh.pins`); what is paramiko's lives here.
"""

from __future__ import annotations

import select
import socket
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import HostKeyMismatch, RemoteError
from . import pins
from .target import SshTarget
from .transport import Transport, closed_while_running, connect_error, transfer_error

if TYPE_CHECKING:  # pragma: no cover
    import fabric
    import paramiko


def _quiet_paramiko() -> None:
    """paramiko's transport thread logs a failed handshake with a traceback ("Exception (client): Error
    reading SSH protocol banner"); with no handler configured Python prints it on the terminal. The
    failure reaches ec2kit as an exception anyway, and is said there: keep paramiko's log off the terminal."""
    import logging

    logger = logging.getLogger("paramiko")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False


def host_key(key: paramiko.PKey) -> pins.HostKey:
    """A paramiko key as ec2kit's :class:`~ec2kit.ssh.pins.HostKey`."""
    return pins.HostKey(key.get_name(), key.asbytes())


def _pin_policy(target: SshTarget) -> Any:
    """A paramiko policy: unknown alias → pin the key; alias known under other key types → mismatch."""
    import paramiko

    class PinPolicy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            got = host_key(key)
            known = pins.pinned_keys(target.known_hosts, target.alias)
            if known:
                raise pins.mismatch(target, f"host key {got}", map(str, known.values()))
            pins.pin(target, got)

    return PinPolicy()


class _Channel:
    """One paramiko channel as a :class:`~ec2kit.ssh.transport.Session`."""

    def __init__(self, transport: FabricTransport, ch: paramiko.Channel) -> None:
        self.transport, self.ch = transport, ch

    def send(self, data: bytes) -> None:
        self.ch.sendall(data)

    def close_stdin(self) -> None:
        self.ch.shutdown_write()

    def read(self, wait: float | None) -> list[tuple[int, bytes]] | None:
        ch = self.ch
        got = []
        while ch.recv_ready():
            got.append((1, ch.recv(65536)))
        while ch.recv_stderr_ready():
            got.append((2, ch.recv_stderr(65536)))
        if got:
            return got
        if ch.eof_received or ch.closed:
            return None
        select.select([ch], [], [], 0.1 if wait is None else max(0.0, min(wait, 0.1)))
        return []

    def finish(self, started: bool) -> int:
        t = self.transport
        try:
            if not self.ch.status_event.wait(t.connect_timeout + 5):
                raise connect_error(t.target, "other", "no exit status (the connection may have dropped)")
            code = self.ch.recv_exit_status()
            if code == -1:
                raise closed_while_running(t.target)
            return int(code)
        finally:
            self.ch.close()

    def kill(self) -> None:
        self.ch.close()


class FabricTransport(Transport):
    """One SSH connection to an instance over paramiko (opened lazily, reused; TCP_NODELAY set).

    Host keys are checked against ``target.known_hosts`` under ``target.alias`` before authenticating.
    """

    def __init__(self, target: SshTarget, *, connect_timeout: float = 10, tcp_nodelay: bool = True) -> None:
        super().__init__(target, connect_timeout=connect_timeout)
        self.tcp_nodelay = tcp_nodelay
        self._conn: fabric.Connection | None = None
        self._sftp: paramiko.SFTPClient | None = None
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

    def _dial(self) -> socket.socket:
        """The TCP socket to the host, with Nagle off (paramiko leaves it on: ~40 ms per exec)."""
        t = self.target
        try:
            sock = socket.create_connection((t.host, t.port), timeout=self.connect_timeout)
        except socket.gaierror as e:
            raise connect_error(t, "resolve", f"'{t.host}' ({e.strerror})") from None
        except ConnectionRefusedError:
            raise connect_error(t, "refused") from None
        except TimeoutError:
            raise connect_error(t, "timeout", f"connection timed out after {self.connect_timeout:g}s") from None
        except OSError as e:
            raise connect_error(t, "other", f"{e.strerror or e}") from None
        if self.tcp_nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _open(self) -> fabric.Connection:
        import fabric
        import paramiko

        _quiet_paramiko()
        t = self.target
        if not Path(t.key_file).exists():
            raise connect_error(t, "no-key")
        known = pins.pinned_keys(t.known_hosts, t.alias)  # a corrupt pin file stops us here
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
        for keytype, key in known.items():
            try:  # HostKeyEntry (not PKey.from_type_string) works with every paramiko fabric 3 allows
                entry = paramiko.hostkeys.HostKeyEntry.from_line(f"{t.alias} {keytype} {key.get_base64()}")
            except Exception:  # noqa: BLE001 - a key type paramiko cannot load: not offered
                entry = None
            if entry is not None and entry.key is not None:
                conn.client.get_host_keys().add(dialled, keytype, entry.key)
        conn.client.set_missing_host_key_policy(_pin_policy(t))
        conn.connect_kwargs["sock"] = self._dial()
        try:
            conn.open()
        except HostKeyMismatch:
            conn.close()
            raise
        except paramiko.BadHostKeyException as e:
            conn.close()
            raise pins.mismatch(t, f"host key {host_key(e.key)}", [str(host_key(e.expected_key))]) from None
        except paramiko.AuthenticationException as e:
            conn.close()
            raise connect_error(t, "auth", str(e)) from None
        except (paramiko.SSHException, EOFError, OSError) as e:
            conn.close()
            raise connect_error(t, "handshake", str(e) or type(e).__name__) from None
        finally:
            conn.connect_kwargs.pop("sock", None)
        return conn

    def open(self) -> None:
        """Connect now (the connection is kept for the commands that follow)."""
        self.connection  # noqa: B018 - dials, authenticates and checks the pin
        self.reached = True

    def close(self) -> None:
        """Close the SFTP session and the connection (a later call reopens it)."""
        with self._lock:
            if self._sftp is not None:
                try:
                    self._sftp.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
                self._sftp = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- commands

    def _start(self, command: str, has_stdin: bool) -> _Channel:
        transport = self.connection.transport
        try:
            ch = transport.open_session(timeout=self.connect_timeout)
        except Exception as e:  # noqa: BLE001 - the connection died since it was opened: reconnect once
            self.close()
            try:
                ch = self.connection.transport.open_session(timeout=self.connect_timeout)
            except RemoteError:
                raise
            except Exception:  # noqa: BLE001
                raise connect_error(self.target, "other", f"cannot open a session ({e or type(e).__name__})") from None
        try:
            ch.exec_command(command)
            if not has_stdin:
                ch.shutdown_write()
        except Exception as e:  # noqa: BLE001 - OSError, EOFError, paramiko's SSHException
            ch.close()
            raise closed_while_running(self.target, command, f"failed ({e or type(e).__name__})") from None
        return _Channel(self, ch)

    # -- files (SFTP), each written beside its destination and renamed into place

    @property
    def sftp(self) -> paramiko.SFTPClient:
        """One SFTP session per transport, opened on first use."""
        with self._lock:
            conn = self.connection
            if self._sftp is None or self._sftp.sock.closed:
                try:
                    self._sftp = conn.client.open_sftp()
                except Exception as e:  # noqa: BLE001
                    raise connect_error(self.target, "other", f"cannot start SFTP ({e or type(e).__name__})") from None
            return self._sftp

    def _transfer_error(self, verb: str, path: str, e: Exception) -> RemoteError:
        errno = getattr(e, "errno", None)
        if errno == 2 or isinstance(e, FileNotFoundError):
            what = "missing"
        elif errno == 13 or isinstance(e, PermissionError):
            what = "denied"
        else:
            what = str(e) or type(e).__name__
        return transfer_error(self.target, verb, path, what)

    def _put_stream(self, stream: IO[bytes], path: str, mode: int | None, size: int) -> None:
        import os
        import stat

        sftp = self.sftp
        parent, base = os.path.split(path)
        tmp = f"{parent}/.{base}.ec2kit-{os.urandom(4).hex()}"
        try:
            try:
                if mode is None:
                    mode = stat.S_IMODE(sftp.stat(path).st_mode or 0) or None
            except OSError:
                pass  # a new file: the server's default mode
            sftp.putfo(stream, tmp, confirm=False)
            if mode is not None:
                sftp.chmod(tmp, mode)
            sftp.posix_rename(tmp, path)
        except (OSError, EOFError) as e:
            try:
                sftp.remove(tmp)
            except (OSError, EOFError):
                pass
            raise self._transfer_error("write", path, e) from None

    def _get_stream(self, path: str, sink: IO[bytes]) -> None:
        try:
            self.sftp.getfo(path, sink)
        except (OSError, EOFError) as e:
            raise self._transfer_error("read", path, e) from None
