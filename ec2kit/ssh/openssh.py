"""The default transport: the system OpenSSH client, connections shared through a ControlMaster.

Each command is one ``ssh`` process and imports no paramiko. The first one to a host
becomes a ControlMaster that stays up ``persist`` seconds after its last use (as Ansible's
ControlPersist does), so a recipe's later batches, file transfers, rsync pulls and the next
``inv`` command a moment later skip the SSH handshake: a command then costs one local
socket hop.

Host keys are checked as the Fabric transport checks them: the pins in ec2kit's
known_hosts under ``HostKeyAlias=<instance id>``, learnt on first contact, refused when
changed. The user's ``~/.ssh/config`` is not read (``-F none``): a ``Host *``
RemoteCommand or ControlMaster setting there cannot change what ec2kit runs.

:func:`exec_argv`, :func:`control_path`, :func:`ssh_failure` and the transfer scripts are pure.
"""

from __future__ import annotations

import hashlib
import os
import re
import selectors
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import IO

from ..errors import Ec2kitError, RemoteError
from . import pins
from .target import SshTarget
from .transport import Transport, closed_while_running, connect_error, transfer_error, who

# --------------------------------------------------------------------------- pure builders


def _opt(name: str, value: object) -> str:
    """``Name=value`` for ``ssh -o``, quoted when the value holds spaces (ssh_config rules)."""
    text = str(value)
    return f'{name}="{text}"' if any(c.isspace() for c in text) else f"{name}={text}"


def control_path(target: SshTarget, directory: Path) -> Path:
    """The ControlMaster socket for ``target`` in ``directory``.

    Named by a hash of everything that identifies the connection (user, address,
    port, instance id, key, pins), so a reused IP never reaches the wrong master,
    and short enough for the limit of a Unix socket path (108 bytes; 104 on macOS).
    """
    ident = "\0".join(map(str, (target.user, target.host, target.port, target.alias, target.key_file, target.known_hosts)))
    return directory / hashlib.sha256(ident.encode()).hexdigest()[:20]


def exec_argv(
    target: SshTarget,
    command: str | None,
    *,
    control: Path | None = None,
    persist: int | str = 60,
    connect_timeout: int = 10,
    log: Path | None = None,
) -> list[str]:
    """The ``ssh`` command line that runs ``command`` on ``target`` (stdin and output are pipes).

    With ``control`` (a socket path) the connection is shared: the first call
    becomes the master and lingers ``persist`` seconds once idle. ``log`` takes
    ssh's own messages (``-E``), so the command's stderr stays the command's. ``command`` None:
    run nothing, authenticate and go to the background (``-N -f``), as a master for later calls.
    ``persist="yes"``: a master that stays until ``ssh -O exit`` (or until the host stops answering).
    """
    argv = [
        "ssh", "-F", "none", "-T", *(["-E", str(log)] if log is not None else []),
        "-i", str(target.key_file),
        "-p", str(target.port),
        "-l", target.user,
        "-o", "IdentitiesOnly=yes",
        "-o", _opt("HostKeyAlias", target.alias),
        "-o", _opt("UserKnownHostsFile", target.known_hosts),
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", "CheckHostIP=no",
        "-o", "BatchMode=yes",
        "-o", "LogLevel=ERROR",
        "-o", f"ConnectTimeout={connect_timeout}",
        "-o", "ServerAliveInterval=15",
        "-o", "ServerAliveCountMax=4",
    ]  # fmt: skip
    if control is not None and (persist == "yes" or int(persist) > 0):
        argv += ["-o", "ControlMaster=auto", "-o", _opt("ControlPath", control), "-o", f"ControlPersist={persist}"]
    else:
        argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
    if command is None:
        return [*argv, "-N", "-f", "--", target.host]
    return [*argv, "--", target.host, command]


# Exit codes of the transfer scripts (chosen outside what cat/mv/chmod return).
_MISSING, _DENIED, _FAILED, _IS_DIR, _SHORT = 71, 72, 73, 74, 75
_WHAT = {_MISSING: "missing", _DENIED: "denied", _IS_DIR: "directory", _SHORT: "it arrived incomplete (the connection dropped?)"}


def put_script(path: str, mode: int | None, size: int) -> str:
    """Shell that streams stdin into a temp file beside absolute ``path``, sets its mode, renames it over ``path``.

    Without ``mode`` an existing file's mode is kept, a new file gets the login's umask. The rename
    happens only when all ``size`` bytes arrived: a dropped connection ends ``cat`` as EOF would.
    """
    parent, base = os.path.split(path)
    q, tmp = shlex.quote(path), shlex.quote(f"{parent or '/'}/.{base}.ec2kit-XXXXXX")
    if mode is not None:
        chmod = f'chmod {mode:o} "$t"'
    else:
        chmod = f'if [ -e {q} ]; then chmod --reference={q} "$t"; else chmod "$(printf %o $(( 0666 & ~$(umask) )))" "$t"; fi'
    return (
        f"[ -d {shlex.quote(parent or '/')} ] || exit {_MISSING}; [ -d {q} ] && exit {_IS_DIR}; "
        f"t=$(mktemp {tmp}) || exit {_DENIED}; trap 'rm -f \"$t\"' EXIT; "
        f'cat > "$t" || exit {_FAILED}; [ "$(wc -c < "$t")" -eq {size} ] || exit {_SHORT}; {chmod} || exit {_FAILED}; mv -f "$t" {q} || exit {_FAILED}; trap - EXIT'
    )


def get_script(path: str) -> str:
    """Shell that writes the file at absolute ``path`` to stdout, or exits with what is wrong."""
    q = shlex.quote(path)
    return f"[ -e {q} ] || exit {_MISSING}; [ -d {q} ] && exit {_IS_DIR}; [ -r {q} ] || exit {_DENIED}; exec cat -- {q}"


_CONNECT = re.compile(r"^ssh: connect to host \S+ port \d+: (?P<why>.+)$", re.M)
_RESOLVE = re.compile(r"^ssh: Could not resolve hostname (?P<name>\S+): (?P<why>.+)$", re.M)
_KEY_SENT = re.compile(r"fingerprint for the (?P<type>\S+) key sent by the remote host is\.?\s*\n?(?P<fp>SHA256:\S+?)\.?$", re.M)
_HANDSHAKE = ("kex_exchange_identification", "banner exchange", "Connection closed by", "Connection reset by",
              "Unable to negotiate", "no matching host key type")  # fmt: skip
_DROPPED = ("closed by remote host", "Broken pipe", "not responding")
_MUX = ("mux_client", "Control socket", "ControlSocket", "control_persist", "muxserver")


def ssh_failure(stderr: str, target: SshTarget, *, started: bool = False) -> Ec2kitError | None:
    """The error ``ssh`` itself reported in ``stderr`` (it then exits 255), or None if it did not.

    ``None`` means exit code 255 came from the remote command. ``started``: output
    from the command was already seen, so a dropped link is "closed while running".
    """
    stderr = stderr.replace("\r", "")
    if "Host key verification failed" in stderr or "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
        sent = _KEY_SENT.search(stderr)
        got = f"host key {sent['type']} {sent['fp']}" if sent else "a host key"
        return pins.mismatch(target, got, pins.pinned_fingerprints(target.known_hosts, target.alias))
    if m := _RESOLVE.search(stderr):
        return connect_error(target, "resolve", f"'{m['name']}' ({m['why']})")
    if m := _CONNECT.search(stderr):
        why = m["why"].rstrip(".")
        if "refused" in why:
            return connect_error(target, "refused")
        if "timed out" in why:
            return connect_error(target, "timeout")
        return connect_error(target, "other", why)
    if "Permission denied" in stderr:
        return connect_error(target, "auth")
    if any(s in stderr for s in _DROPPED) or (started and any(s in stderr for s in _HANDSHAKE)):
        return closed_while_running(target)
    if any(s in stderr for s in _HANDSHAKE):
        return connect_error(target, "handshake", _last_line(stderr))
    if any(s in stderr for s in _MUX):
        return RemoteError(
            f"Sharing the SSH connection to {who(target)} failed ({_last_line(stderr)}).",
            hint="Retry; set EC2KIT_SSH_PERSIST=0 to stop sharing connections.",
        )
    if re.search(r"^(ssh|Load key|Warning: Identity file)\b.*", stderr, re.M):
        return RemoteError(
            f"Cannot connect to {who(target)}: {_last_line(stderr)}.", hint="Check the key file and the instance's address."
        )
    return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1].rstrip(".") if lines else "no message"


# --------------------------------------------------------------------------- control sockets


def _accepts(path: Path) -> bool:
    """Whether a master listens on the control socket ``path`` (a connection is accepted)."""
    import socket as sockets

    probe = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    try:
        probe.settimeout(2)
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def control_dir(base: Path | None = None) -> Path | None:
    """A private directory for ControlMaster sockets (in ``base``), or None when one cannot be had safely.

    Lives in the temp dir rather than EC2KIT_HOME: socket paths must stay short (104 bytes
    on macOS, whose per-user temp dir alone takes ~50; /tmp is used when it is that long).
    A directory of ours that others could write to is locked down and emptied first: a
    socket planted there would receive our commands.
    """
    if base is None:
        base = Path(tempfile.gettempdir())
        if len(str(base)) > 48 and Path("/tmp").is_dir():
            base = Path("/tmp")
    path = base / f"ec2kit-ssh-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = path.lstat()
        if not path.is_dir() or path.is_symlink() or st.st_uid != os.getuid():
            return None  # someone else's: never share a connection through it
        if st.st_mode & 0o077:
            path.chmod(0o700)
            for entry in path.iterdir():
                entry.unlink()
    except OSError:
        return None
    return path


# --------------------------------------------------------------------------- the transport


class _Process:
    """One ``ssh`` process as a :class:`~ec2kit.ssh.transport.Session`."""

    def __init__(self, transport: OpenSshTransport, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.transport, self.proc, self.log = transport, proc, log
        self.sel = selectors.DefaultSelector()
        self.sel.register(proc.stdout, selectors.EVENT_READ, 1)  # type: ignore[arg-type]
        self.sel.register(proc.stderr, selectors.EVENT_READ, 2)  # type: ignore[arg-type]

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)

    def close_stdin(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()

    def read(self, wait: float | None) -> list[tuple[int, bytes]] | None:
        if not self.sel.get_map():
            return None
        got = []
        for key, _ in self.sel.select(wait):
            chunk = os.read(key.fd, 65536)
            if chunk:
                got.append((int(key.data), chunk))
            else:
                self.sel.unregister(key.fileobj)
        return got

    def finish(self, started: bool) -> int:
        code = self.proc.wait()
        said = self.log.read_text(errors="replace")
        self._cleanup()
        if code == 255:
            t = self.transport
            if failure := ssh_failure(said, t.target, started=started):
                raise failure from None
            if t.control is not None and not t.shared_connection_alive():
                # a shared connection that drops ends its clients with 255 and no message
                raise closed_while_running(t.target) from None
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        self.sel.close()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        self.log.unlink(missing_ok=True)


class OpenSshTransport(Transport):
    """Runs commands and moves files on one instance through ``ssh`` (see the module docstring).

    ``persist``: seconds an idle shared connection lingers (default ``EC2KIT_SSH_PERSIST``, 60;
    0 = a new connection per command).
    """

    def __init__(self, target: SshTarget, *, connect_timeout: float = 10, persist: int | None = None) -> None:
        from ..settings import ssh_persist

        super().__init__(target, connect_timeout=connect_timeout)
        self.persist = ssh_persist() if persist is None else persist
        self.control = control_dir() if self.persist > 0 else None
        self._pins_ready = False
        self._own_master = False  # a master for this object only (open() with sharing off), ended by close()

    @property
    def socket(self) -> Path | None:
        """The ControlMaster socket, when connections are shared."""
        if self.control is None:
            return None
        path = control_path(self.target, self.control)
        return path.with_name(f"{path.name}-{os.getpid()}") if self._own_master else path

    def argv(self, command: str | None, log: Path | None = None) -> list[str]:
        """The ``ssh`` command line for ``command`` (already wrapped; None: start a master, run nothing)."""
        return exec_argv(
            self.target,
            command,
            control=self.socket,
            persist=self.persist,
            connect_timeout=max(1, round(self.connect_timeout)),
            log=log,
        )

    def _control(self, operation: str) -> int:
        """``ssh -O operation`` on the shared connection (``check``, ``exit``): its exit code."""
        done = subprocess.run(
            ["ssh", "-F", "none", "-o", _opt("ControlPath", self.socket), "-O", operation, self.target.host],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
        )
        return done.returncode

    def shared_connection_alive(self) -> bool:
        """Whether this host's ControlMaster is up: its socket accepts a connection (as ``ssh -O check``
        finds out, without starting a process; the master drops a client that says nothing)."""
        path = self.socket
        return path is not None and _accepts(path)

    def disconnect(self) -> None:
        """Stop the shared connection now (e.g. before the instance goes away), and its tunnels' master."""
        if self.socket is not None and self.socket.exists():
            self._control("exit")
        tunnels = self.tunnel_socket() if not self._own_master else None
        if tunnels is not None and _accepts(tunnels):
            self._mux(tunnels, "exit")

    def close(self) -> None:
        """End the master that :meth:`open` started for this object alone (shared ones linger)."""
        if self._own_master:
            self.disconnect()

    def open(self) -> None:
        """Connect now, running nothing: a live shared connection is enough; else start its master
        (``ssh -N -f``), which the following commands use. With sharing off (persist 0) the master
        is this object's own, ended by :meth:`close`: still one handshake per command."""
        if self.control is None:
            directory = control_dir()
            if directory is None:
                self.run("true")  # no safe socket directory: connect by running nothing much
                return
            self.control, self.persist, self._own_master = directory, 5, True
        elif self.shared_connection_alive():
            self.reached = True
            return
        self._start_master(self.argv(None, None))
        self.reached = True

    def _start_master(self, argv: list[str]) -> None:
        """Run ``argv`` (an ``ssh -N -f`` master, without its ``-E`` log): authenticate, then background."""
        if not Path(self.target.key_file).exists():
            raise connect_error(self.target, "no-key")
        pins.check(self.target.known_hosts)
        pins.ensure_known_hosts(self.target.known_hosts)
        self._pins_ready = True
        fd, name = tempfile.mkstemp(prefix="ec2kit-ssh-", suffix=".log")
        os.close(fd)
        log = Path(name)
        argv = [*argv[:4], "-E", str(log), *argv[4:]]  # ssh -F none -T | -E log | ...
        try:
            code = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=self.connect_timeout + 30,
            ).returncode
            said = log.read_text(errors="replace")
        except subprocess.TimeoutExpired:
            raise connect_error(self.target, "timeout") from None
        finally:
            log.unlink(missing_ok=True)
        if code != 0:
            raise ssh_failure(said, self.target) or RemoteError(
                f"Cannot connect to {who(self.target)}: {_last_line(said)}.", hint="Check the instance's address and key."
            )

    # -- tunnels: on a master of their own, so they outlast no command and no command's linger

    def tunnel_socket(self) -> Path | None:
        """The socket of this host's tunnel master (None: no safe socket directory)."""
        directory = self.control or control_dir()
        if directory is None:
            return None
        path = control_path(self.target, directory)
        return path.with_name(f"{path.name}-tunnel")

    def tunnel(self, local_port: int, remote_port: int) -> None:
        """Forward 127.0.0.1:``local_port`` here to 127.0.0.1:``remote_port`` on the host (``ssh -O forward``).

        The forward lives on a master of its own that stays until :meth:`end_tunnel` (or until the host
        stops answering: ServerAlive ends it), not on the shared connection that ends a minute after the
        last command. Asking again for a forward that is up changes nothing."""
        socket = self.tunnel_socket()
        if socket is None:
            raise RemoteError(
                f"Cannot tunnel to {self.name}: no private directory for ssh's control sockets.",
                hint="Set TMPDIR to a directory only you can write.",
            )
        if not _accepts(socket):
            socket.unlink(missing_ok=True)
            argv = exec_argv(
                self.target, None, control=socket, persist="yes", connect_timeout=max(1, round(self.connect_timeout))
            )
            self._start_master(argv)
        done = self._mux(socket, "forward", f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}")
        if done.returncode != 0:
            said = _last_line(done.stderr.decode(errors="replace")) or f"ssh -O forward exited {done.returncode}"
            raise RemoteError(
                f"Cannot tunnel local port {local_port} to port {remote_port} on {self.name}: {said}.",
                hint="Another program may be listening on that local port: pick another one.",
            )

    def end_tunnel(self, local_port: int, remote_port: int) -> bool:
        """Cancel that forward (``ssh -O cancel``) and end the tunnel master; False when none was up."""
        socket = self.tunnel_socket()
        if socket is None or not _accepts(socket):
            return False
        self._mux(socket, "cancel", f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}")
        self._mux(socket, "exit")
        return True

    def _mux(self, socket: Path, operation: str, forward: str | None = None) -> subprocess.CompletedProcess[bytes]:
        """``ssh -O operation [-L forward]`` on the master at ``socket``."""
        argv = ["ssh", "-F", "none", "-o", _opt("ControlPath", socket), "-O", operation]
        argv += ["-L", forward] if forward else []
        return subprocess.run([*argv, self.target.host], stdin=subprocess.DEVNULL, capture_output=True, timeout=15)

    def _start(self, command: str, has_stdin: bool) -> _Process:
        if not Path(self.target.key_file).exists():
            raise connect_error(self.target, "no-key")
        if not self._pins_ready:
            pins.check(self.target.known_hosts)  # a corrupt pin file stops us before ssh re-learns keys
            pins.ensure_known_hosts(self.target.known_hosts)  # ssh would not create its directory: no pin saved
            self._pins_ready = True
        fd, name = tempfile.mkstemp(prefix="ec2kit-ssh-", suffix=".log")
        os.close(fd)
        log = Path(name)
        try:
            proc = subprocess.Popen(
                self.argv(command, log),
                stdin=subprocess.PIPE if has_stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as e:
            log.unlink(missing_ok=True)
            raise RemoteError(
                f"Cannot start the OpenSSH client (ssh) for {self.name}: {e.strerror or e}.",
                hint="Install openssh-client, or set EC2KIT_SSH=fabric.",
            ) from None
        return _Process(self, proc, log)

    # -- files: through the same (shared) connection as commands

    def _put_stream(self, stream: IO[bytes], path: str, mode: int | None, size: int) -> None:
        code, _, err = self.execute(put_script(path, mode, size), stream, shown=f"upload {path}")
        if code:
            raise transfer_error(self.target, "write", path, _WHAT.get(code) or _last_line(err.decode(errors="replace")))

    def _get_stream(self, path: str, sink: IO[bytes]) -> None:
        code, _, err = self.execute(get_script(path), shown=f"download {path}", sink=sink)
        if code:
            raise transfer_error(self.target, "read", path, _WHAT.get(code) or _last_line(err.decode(errors="replace")))

    def rsync_argv(self, src: str, dest: str, **options: object) -> list[str]:
        """rsync over ec2kit's ssh, through this host's shared connection when one is up (else its own)."""
        if self.socket is not None:
            options["ssh_options"] = ["-o", "ControlMaster=no", "-o", _opt("ControlPath", self.socket)]
        return super().rsync_argv(src, dest, **options)
