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

The command lines, transfer scripts and the reading of ``ssh``'s messages are pure and live in
:mod:`.sshcli` (re-exported here: ``exec_argv``, ``control_path``, ``ssh_failure``, ``put_script``,
``get_script``); this module owns the control-socket directory and the processes.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import tempfile
from pathlib import Path
from typing import IO

from ..errors import RemoteError
from . import pins
from .sshcli import TRANSFER_WHAT, control_path, exec_argv, get_script, last_line, put_script, ssh_failure, ssh_option
from .target import SshTarget
from .transport import Transport, closed_while_running, connect_error, transfer_error, who

__all__ = ["OpenSshTransport", "control_dir", "control_path", "exec_argv", "get_script", "put_script", "ssh_failure"]

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
            ["ssh", "-F", "none", "-o", ssh_option("ControlPath", self.socket), "-O", operation, self.target.host],
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
                f"Cannot connect to {who(self.target)}: {last_line(said)}.", hint="Check the instance's address and key."
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
            said = last_line(done.stderr.decode(errors="replace")) or f"ssh -O forward exited {done.returncode}"
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
        argv = ["ssh", "-F", "none", "-o", ssh_option("ControlPath", socket), "-O", operation]
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
            raise transfer_error(self.target, "write", path, TRANSFER_WHAT.get(code) or last_line(err.decode(errors="replace")))

    def _get_stream(self, path: str, sink: IO[bytes]) -> None:
        code, _, err = self.execute(get_script(path), shown=f"download {path}", sink=sink)
        if code:
            raise transfer_error(self.target, "read", path, TRANSFER_WHAT.get(code) or last_line(err.decode(errors="replace")))

    def rsync_argv(self, src: str, dest: str, **options: object) -> list[str]:
        """rsync over ec2kit's ssh, through this host's shared connection when one is up (else its own)."""
        if self.socket is not None:
            options["ssh_options"] = ["-o", "ControlMaster=no", "-o", ssh_option("ControlPath", self.socket)]
        return super().rsync_argv(src, dest, **options)
