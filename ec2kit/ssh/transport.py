"""What every way of reaching an instance shares: the run contract, errors, ``home``, waiting.

A :class:`Transport` runs a command as one :class:`Session` (an ``ssh`` process, or a
paramiko channel): :meth:`Transport.run` is the one template around it (wrapping,
stdin feeding, output draining, the deadline, line streaming, the :class:`Result`),
and :func:`connect_error` is the one mapping of connection failures to messages.
Transports only say how a session starts, reads and ends, and how files travel.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from ..errors import AuthFailed, RemoteError, TimedOut, UnexpectedExit
from .target import SshTarget, rsync_argv, wrap_command

#: What a command's stdin may be: bytes, or a binary file read in chunks.
Input = bytes | IO[bytes] | None


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


class Session(Protocol):
    """One running remote command, as a transport starts it."""

    def send(self, data: bytes) -> None:
        """Write all of ``data`` to the command's stdin (blocking)."""

    def close_stdin(self) -> None:
        """Send EOF on the command's stdin."""

    def read(self, wait: float | None) -> list[tuple[int, bytes]] | None:
        """Output chunks as ``(1|2, bytes)`` within ``wait`` s ([] if none came); None once both streams ended."""

    def finish(self, started: bool) -> int:
        """The exit code after the output ended; raises RemoteError when the connection, not the command, failed."""

    def kill(self) -> None:
        """Abandon the command (deadline passed, or interrupted)."""


# --------------------------------------------------------------------------- errors


def who(target: SshTarget) -> str:
    """``name (user@host:port)`` for messages."""
    return f"{target.name or target.alias or target.host} ({target.user}@{target.host}:{target.port})"


def connect_error(target: SshTarget, reason: str, detail: str = "") -> RemoteError:
    """The one message for a failed connection, whichever transport saw it.

    ``reason``: ``resolve`` (``detail``: "'name' (why)"), ``refused``, ``timeout``, ``auth``, ``handshake``,
    ``no-key`` or ``other`` (``detail`` then says what happened).
    """
    name = target.name or target.alias or target.host
    start = f"Is the instance running? `inv start {name}`."
    what, hint = {
        "resolve": (f"cannot resolve {detail}", "Check the instance's address."),
        "refused": (
            "connection refused (nothing listens on the SSH port)",
            f"Is the instance running and booted? `inv start {name}`, or wait a minute and retry.",
        ),
        "timeout": (
            f"no answer from {target.host} ({detail or 'connection timed out'})"
            + (f"; ec2kit dialled {target.via}" if target.via else ""),
            f"Is the instance running (`inv start {name}`) and does a security group of it allow SSH from this machine? "
            "`inv access` shows ec2kit's SSH rules and adds your current address.",
        ),
        "auth": (
            f"authentication as '{target.user}' with key {target.key_file} failed{f' ({detail})' if detail else ''}",
            "Was the instance launched with this key pair, and is the login user right?",
        ),
        "handshake": (
            f"the SSH handshake failed ({detail})",
            f"Retry in a moment; `inv instances` shows whether {name} is running (`inv start {name}` if not).",
        ),
        "no-key": (f"the private key {target.key_file} does not exist", "Check EC2KIT_HOME / the key name."),
    }.get(reason, (detail, start))
    cls = AuthFailed if reason == "auth" else RemoteError
    return cls(f"Cannot connect to {who(target)}: {what}.", hint=hint)


def closed_while_running(target: SshTarget, shown: str | None = None, why: str = "") -> RemoteError:
    """The connection ended while a command ran (instance stopped, rebooted, network)."""
    what = f": {shown.rstrip('.')}." if shown else " a command."  # a sentence, then the hint (never "a command Did…")
    return RemoteError(
        f"The connection to {who(target)} {why or 'closed'} while running{what}",
        hint="Did the instance stop or reboot? Check with `inv instances`.",
    )


def transfer_error(target: SshTarget, verb: str, path: str, what: str) -> RemoteError:
    """A failed put (``verb`` "write") or get ("read"); ``what``: missing, denied, directory or a message."""
    import os

    from .target import quote_path

    hints = {
        ("write", "missing"): f"Create the directory first: run('mkdir -p {quote_path(os.path.dirname(path) or '/')}').",
        ("read", "missing"): "Check the path: it is taken from the remote $HOME unless absolute.",
        ("write", "denied"): "Write somewhere the login user owns, or copy with sudo afterwards.",
        ("read", "denied"): "Read it with sudo into a file the login user owns first.",
    }
    text = {"missing": "no such file or directory", "denied": "permission denied", "directory": "it is a directory"}
    hint = hints.get((verb, what), "Retry; is the instance up and its disk not full?")
    return RemoteError(f"Cannot {verb} {path} on {who(target)}: {text.get(what, what)}.", hint=hint)


# --------------------------------------------------------------------------- the template


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


def _feed(session: Session, data: bytes | IO[bytes]) -> None:
    """Send ``data`` to stdin, then EOF (a thread: the command's output may back up meanwhile)."""
    try:
        if isinstance(data, bytes):
            session.send(data)
        else:
            while chunk := data.read(1 << 20):
                session.send(chunk)
    except (OSError, EOFError, ValueError):
        pass  # the command exited without reading all of its input (or the caller gave up and closed the file)
    finally:
        try:
            session.close_stdin()
        except (OSError, EOFError):
            pass


class Transport:
    """One instance reached over SSH: :meth:`run`, ``home``/:meth:`expand`, file transfers.

    ``with connect(target) as t: t.run("uname -a").stdout``. Subclasses start sessions
    (:meth:`_start`) and move files; everything else lives here once.
    """

    target: SshTarget
    name: str
    connect_timeout: float
    _home: str | None = None

    def __init__(self, target: SshTarget, *, connect_timeout: float = 10) -> None:
        self.target = target
        self.name = target.name or target.alias or target.host
        self.connect_timeout = connect_timeout
        self._home = None
        self.reached = False  # a command (or open()) got through to the host

    def __enter__(self) -> Transport:
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

    def open(self) -> None:
        """Connect now if not connected (raising the connection error), running nothing on the host."""
        self.run("true")

    def close(self) -> None:
        """Release what this object holds (a later command reconnects)."""

    def disconnect(self) -> None:
        """End the connection now, shared ones included (the instance is going away)."""
        self.close()

    def tunnel(self, local_port: int, remote_port: int) -> None:
        """Forward 127.0.0.1:``local_port`` here to 127.0.0.1:``remote_port`` on the host, in the background."""
        raise RemoteError(
            f"Cannot tunnel to {self.name}: background tunnels need the OpenSSH client's shared connections.",
            hint="Install openssh-client and unset EC2KIT_SSH=fabric.",
        )

    def end_tunnel(self, local_port: int, remote_port: int) -> bool:
        """End that tunnel; False when none was up."""
        return False

    # -- commands

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
        """Run ``command`` (wrapped by :func:`~ec2kit.ssh.target.wrap_command`) and return its :class:`Result`.

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
        code, out, err = self.execute(final, data, timeout=timeout, stream=stream, shown=command)
        result = Result(command, out.decode(errors="replace"), err.decode(errors="replace"), code)
        if check and not result.ok:
            raise UnexpectedExit(command, code, result.stdout + result.stderr, host=self.name)
        return result

    def execute(
        self,
        command: str,
        stdin: Input = None,
        *,
        timeout: float | None = None,
        stream: Callable[[str], None] | None = None,
        shown: str | None = None,
        sink: IO[bytes] | None = None,
    ) -> tuple[int, bytes, bytes]:
        """Run the final ``command`` as it is: ``(exit code, stdout, stderr)``.

        ``sink`` takes stdout instead of memory (large downloads); ``shown`` names the command in errors.
        """
        shown = shown or command
        session = self._start(command, stdin is not None)
        if stdin is not None:
            threading.Thread(target=_feed, args=(session, stdin), daemon=True).start()
        deadline = time.monotonic() + timeout if timeout else None
        chunks = {1: bytearray(), 2: bytearray()}
        lines = LineSplitter(stream) if stream else None
        started = False
        try:
            while True:
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    raise TimedOut(
                        f"Command on {self.name} ({self.address}) did not finish within {timeout:g}s: {shown}",
                        hint="Raise the timeout, or run long jobs in tmux (spot-run) and follow their log.",
                    )
                got = session.read(wait)
                if got is None:
                    break
                for fd, chunk in got:
                    started = True
                    if fd == 1 and sink is not None:
                        sink.write(chunk)
                    else:
                        chunks[fd] += chunk
                    if lines:
                        lines.feed(chunk, fd)
            if lines:
                lines.flush()
            code = session.finish(started)
            self.reached = True
        except (OSError, EOFError) as e:
            session.kill()
            raise closed_while_running(self.target, f"{shown} ({e or type(e).__name__})", "failed") from None
        except BaseException:
            session.kill()
            raise
        if code < 0:
            raise RemoteError(
                f"The SSH client for {self.name} ({self.address}) was killed (signal {-code}) while running: {shown}",
                hint="Retry the command.",
            )
        return code, bytes(chunks[1]), bytes(chunks[2])

    def _start(self, command: str, has_stdin: bool) -> Session:
        """Start the final ``command``; connection failures raise RemoteError."""
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

    # -- files. Parent directories are NOT created: `run("mkdir -p DIR")` first.

    def put(self, local: Path | str, remote: str, mode: int | None = None) -> None:
        """Copy local file ``local`` to ``remote`` (``~`` expanded); parents must exist.

        The file appears complete or not at all (written beside it, then renamed) with
        ``mode`` already set; without ``mode`` an existing file keeps its mode.
        """
        import os

        local = Path(local)
        if not local.is_file():
            raise RemoteError(f"Cannot upload {local} to {self.name}: no such local file.")
        with open(local, "rb") as f:
            self._put_stream(f, self.expand(remote), mode, os.fstat(f.fileno()).st_size)

    def put_bytes(self, data: bytes, remote: str, mode: int | None = None) -> None:
        """Write ``data`` to the file ``remote`` (``~`` expanded); parents must exist. Atomic, as :meth:`put`."""
        import io

        self._put_stream(io.BytesIO(data), self.expand(remote), mode, len(data))

    def get(self, remote: str, local: Path | str) -> None:
        """Copy the file ``remote`` (``~`` expanded) to ``local`` (its parent is created).

        Written to a temporary file beside ``local`` and renamed: a failed copy never
        replaces a complete file.
        """
        import os
        import tempfile

        path = self.expand(remote)
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".part", dir=local.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                self._get_stream(path, f)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, local)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _put_stream(self, stream: IO[bytes], path: str, mode: int | None, size: int) -> None:
        """Write ``size`` bytes from ``stream`` to absolute ``path``, atomically."""
        raise NotImplementedError

    def _get_stream(self, path: str, sink: IO[bytes]) -> None:
        raise NotImplementedError

    def rsync_argv(self, src: str, dest: str, **options: object) -> list[str]:
        """:func:`~ec2kit.ssh.target.rsync_argv` for this host (a transport may share its connection)."""
        from . import pins

        pins.check(self.target.known_hosts)
        return rsync_argv(self.target, src, dest, **options)  # type: ignore[arg-type]


def _umask() -> int:
    """This process's umask, read without changing it (os.umask would race other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022
