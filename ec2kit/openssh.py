"""Remote commands through the system OpenSSH client, multiplexed over a ControlMaster.

:class:`OpenSshHost` keeps :class:`ec2kit.remote.CommandHost`'s contract (``run``,
``home``, ``expand``), as the paramiko :class:`~ec2kit.remote.Host` does, without
importing paramiko: each command is one ``ssh`` process. The first one to a host becomes a ControlMaster that stays up
for ``persist`` seconds after its last use (as Ansible's ControlPersist does),
so a recipe's later batches, and the next ``inv recipe`` a moment later, skip
the SSH handshake: a command then costs one local socket hop.

Host keys are checked exactly as :class:`~ec2kit.remote.Host` checks them: the
pins in ec2kit's known_hosts under ``HostKeyAlias=<instance id>``, learnt on
first contact, refused when changed. The user's ``~/.ssh/config`` is not read
(``-F none``), as the paramiko path does not read it either: a ``Host *``
RemoteCommand or ControlMaster setting there cannot change what a recipe runs.

:func:`exec_argv`, :func:`control_path` and :func:`ssh_failure` are pure.
"""

from __future__ import annotations

import hashlib
import os
import re
import selectors
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError, Ec2kitError, HostKeyMismatch, RemoteError, TimedOut
from .remote import CommandHost, LineSplitter, SshTarget, ensure_known_hosts

#: Seconds an idle ControlMaster stays up (``EC2KIT_SSH_PERSIST``; 0 turns multiplexing off).
DEFAULT_PERSIST = 60


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
    command: str,
    *,
    control: Path | None = None,
    persist: int = DEFAULT_PERSIST,
    connect_timeout: int = 10,
    log: Path | None = None,
) -> list[str]:
    """The ``ssh`` command line that runs ``command`` on ``target`` (stdin and output are pipes).

    With ``control`` (a socket path) the connection is shared: the first call
    becomes the master and lingers ``persist`` seconds once idle. ``log`` takes
    ssh's own messages (``-E``), so the command's stderr stays the command's.
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
    if control is not None and persist > 0:
        argv += ["-o", "ControlMaster=auto", "-o", _opt("ControlPath", control), "-o", f"ControlPersist={persist}"]
    else:
        argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
    argv += ["--", target.host, command]
    return argv


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
    name = target.name or target.alias
    who = f"{name} ({target.user}@{target.host}:{target.port})"

    def fail(what: str, hint: str) -> RemoteError:
        return RemoteError(f"Cannot connect to {who}: {what}.", hint=hint)

    if "Host key verification failed" in stderr or "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
        sent = _KEY_SENT.search(stderr)
        got = f"host key {sent['type']} {sent['fp']}" if sent else "a host key"
        who = f"'{name}' ({target.alias})" if target.name else f"'{target.alias}'"
        pins = ", ".join(pinned_fingerprints(target.known_hosts, target.alias)) or "a different key"
        return HostKeyMismatch(
            f"Instance {who} at {target.host}:{target.port} presented {got}, but {target.known_hosts} "
            f"pins {pins} for it. Nothing was run on it.",
            hint=f"If the instance was really rebuilt, run `inv forget-host {name}` and connect again; "
            "otherwise someone may be intercepting the connection: investigate before trusting it.",
        )
    if m := _RESOLVE.search(stderr):
        return fail(f"cannot resolve '{m['name']}' ({m['why']})", "Check the instance's address.")
    if m := _CONNECT.search(stderr):
        why = m["why"].rstrip(".")
        if "refused" in why:
            return fail(
                "connection refused (nothing listens on the SSH port)",
                f"Is the instance running and booted? `inv start {name}`, or wait a minute and retry.",
            )
        if "timed out" in why:
            return fail(
                "no answer (connection timed out)",
                f"Is the instance running (`inv start {name}`) and does its security group allow SSH from this machine?",
            )
        return fail(why, f"Is the instance running? `inv start {name}`.")
    if "Permission denied" in stderr:
        return fail(
            f"authentication as '{target.user}' with key {target.key_file} failed",
            "Was the instance launched with this key pair, and is the login user right?",
        )
    if any(s in stderr for s in _DROPPED) or (started and any(s in stderr for s in _HANDSHAKE)):
        return RemoteError(
            f"The connection to {who} closed while running a command.",
            hint="Did the instance stop or reboot? Check with `inv instances`.",
        )
    if any(s in stderr for s in _HANDSHAKE):
        return fail(
            f"the SSH handshake failed ({_last_line(stderr)})",
            f"The instance may still be booting: retry in a moment (or `inv start {name}`).",
        )
    if any(s in stderr for s in _MUX):
        return RemoteError(
            f"Sharing the SSH connection to {who} failed ({_last_line(stderr)}).",
            hint="Retry; set EC2KIT_SSH_PERSIST=0 to stop sharing connections.",
        )
    if re.search(r"^(ssh|Load key|Warning: Identity file)\b.*", stderr, re.M):
        return fail(_last_line(stderr), "Check the key file and the instance's address.")
    return None


def pinned_fingerprints(known_hosts: Path, alias: str) -> list[str]:
    """``ssh-ed25519 SHA256:…`` for each key pinned for ``alias`` (plain or hashed entries), without paramiko."""
    import base64
    import hmac

    found = []
    try:
        lines = Path(known_hosts).read_text(errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 3 or line.startswith(("#", "@")):
            continue
        names, keytype, blob = fields[0].split(","), fields[1], fields[2]
        for entry in names:
            if entry.startswith("|1|"):
                try:
                    salt, digest = (base64.b64decode(part) for part in entry[3:].split("|", 1))
                except ValueError:
                    continue
                match = hmac.compare_digest(hmac.new(salt, alias.encode(), "sha1").digest(), digest)
            else:
                match = entry == alias
            if match:
                try:
                    raw = base64.b64decode(blob)
                except ValueError:
                    break
                fp = base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
                found.append(f"{keytype} SHA256:{fp}")
                break
    return found


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1].rstrip(".") if lines else "no message"


# --------------------------------------------------------------------------- control sockets


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


def persist_seconds() -> int:
    """``EC2KIT_SSH_PERSIST`` (seconds an idle shared connection lingers; 0 = no sharing)."""
    raw = os.environ.get("EC2KIT_SSH_PERSIST", "").strip()
    if not raw:
        return DEFAULT_PERSIST
    try:
        return max(0, int(raw))
    except ValueError:
        raise ConfigError(
            f"EC2KIT_SSH_PERSIST={raw!r} is not a number of seconds.",
            hint="Use e.g. EC2KIT_SSH_PERSIST=60, or 0 to open a new connection per command.",
        ) from None


def preferred() -> bool:
    """Whether recipes should use the OpenSSH client: ``EC2KIT_SSH`` (openssh, the default,
    or paramiko) and whether ``ssh`` is on PATH."""
    choice = os.environ.get("EC2KIT_SSH", "openssh").strip().lower() or "openssh"
    if choice not in ("openssh", "paramiko"):
        raise ConfigError(
            f"EC2KIT_SSH={choice!r} is not a known SSH client.",
            hint="Use EC2KIT_SSH=openssh (the system ssh, the default) or EC2KIT_SSH=paramiko.",
        )
    return choice == "openssh" and shutil.which("ssh") is not None


# --------------------------------------------------------------------------- host


class OpenSshHost(CommandHost):
    """Runs commands on one instance through ``ssh`` (see the module docstring).

    ``with OpenSshHost(target) as h: h.run("uname -a").stdout``: the contract of
    :meth:`ec2kit.remote.CommandHost.run`, as :class:`~ec2kit.remote.Host` has it.
    """

    def __init__(self, target: SshTarget, *, connect_timeout: float = 10, persist: int | None = None) -> None:
        self.target = target
        self.name = target.name or target.alias or target.host
        self.connect_timeout = connect_timeout
        self.persist = persist_seconds() if persist is None else persist
        self._control = control_dir() if self.persist > 0 else None
        self._home: str | None = None
        self._pins_ready = False

    def argv(self, command: str, log: Path | None = None) -> list[str]:
        """The ``ssh`` command line for ``command`` (already wrapped)."""
        control = control_path(self.target, self._control) if self._control else None
        return exec_argv(
            self.target,
            command,
            control=control,
            persist=self.persist,
            connect_timeout=max(1, round(self.connect_timeout)),
            log=log,
        )

    def _shared_connection_alive(self) -> bool:
        """Whether this host's ControlMaster still answers (``ssh -O check``)."""
        if self._control is None:
            return False
        sock = control_path(self.target, self._control)
        done = subprocess.run(
            ["ssh", "-F", "none", "-o", _opt("ControlPath", sock), "-O", "check", self.target.host],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
        )
        return done.returncode == 0

    def close(self) -> None:
        """Nothing to close: the shared connection lingers ``persist`` s, then exits by itself."""

    def disconnect(self) -> None:
        """Stop the shared connection now (e.g. before the instance goes away)."""
        if self._control is None:
            return
        sock = control_path(self.target, self._control)
        if sock.exists():
            subprocess.run(
                ["ssh", "-F", "none", "-o", _opt("ControlPath", sock), "-O", "exit", self.target.host],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=10,
            )

    def _exec(
        self, command: str, stdin: bytes | None, timeout: float | None, stream: Callable[[str], None] | None, shown: str
    ) -> tuple[int, bytes, bytes]:
        """One ``ssh`` process; ssh's own failures (exit 255 with its message) become RemoteErrors."""
        if not Path(self.target.key_file).exists():
            raise RemoteError(
                f"Cannot connect to {self.name} ({self.address}): the private key {self.target.key_file} does not exist.",
                hint="Check EC2KIT_HOME / the key name.",
            )
        if not self._pins_ready:
            ensure_known_hosts(Path(self.target.known_hosts))  # ssh would not create its directory: no pin saved
            self._pins_ready = True
        fd, name = tempfile.mkstemp(prefix="ec2kit-ssh-", suffix=".log")
        os.close(fd)
        log = Path(name)
        try:
            code, out, err = self._spawn(self.argv(command, log), stdin, timeout, stream, shown)
            said = log.read_text(errors="replace")
        finally:
            log.unlink(missing_ok=True)
        if code == 255:
            if failure := ssh_failure(said, self.target, started=bool(out or err)):
                raise failure
            if self._control is not None and not self._shared_connection_alive():
                # a shared connection that drops ends its clients with 255 and no message
                raise RemoteError(
                    f"The connection to {self.name} ({self.address}) closed while running: {shown}",
                    hint="Did the instance stop or reboot? Check with `inv instances`.",
                )
        if code < 0:
            raise RemoteError(
                f"The ssh client for {self.name} ({self.address}) was killed (signal {-code}) while running: {shown}",
                hint="Retry the command.",
            )
        return code, out, err

    def _spawn(
        self, argv: list[str], data: bytes | None, timeout: float | None, stream: Callable[[str], None] | None, shown: str
    ) -> tuple[int, bytes, bytes]:
        """Start ``argv``: feed stdin from a thread, read both pipes until EOF."""
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE if data else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except OSError as e:
            raise RemoteError(
                f"Cannot start the OpenSSH client (ssh) for {self.name}: {e.strerror or e}.",
                hint="Install openssh-client, or set EC2KIT_SSH=paramiko.",
            ) from None
        if data:
            threading.Thread(target=_feed, args=(proc.stdin, data), daemon=True).start()
        deadline = time.monotonic() + timeout if timeout else None
        try:
            out, err = _drain(proc, deadline, stream)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if out is None:
            proc.kill()
            proc.wait()
            raise TimedOut(
                f"Command on {self.name} ({self.address}) did not finish within {timeout:g}s: {shown}",
                hint="Raise the timeout, or run long jobs in tmux (spot-run) and follow their log.",
            )
        return proc.wait(), out, err


def _feed(pipe: object, data: bytes) -> None:
    """Write ``data`` to the command's stdin, then close it (a thread: output may back up meanwhile)."""
    try:
        pipe.write(data)  # type: ignore[attr-defined]
    except (BrokenPipeError, OSError):
        pass  # the command exited without reading all of its input
    finally:
        try:
            pipe.close()  # type: ignore[attr-defined]
        except OSError:
            pass


def _drain(proc: subprocess.Popen, deadline: float | None, stream: Callable[[str], None] | None) -> tuple[bytes | None, bytes]:
    """Read stdout and stderr until both close; ``(None, b"")`` when the deadline passes."""
    chunks = {1: bytearray(), 2: bytearray()}
    lines = LineSplitter(stream) if stream else None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, 1)  # type: ignore[arg-type]
    sel.register(proc.stderr, selectors.EVENT_READ, 2)  # type: ignore[arg-type]
    try:
        while sel.get_map():
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return None, b""
            for key, _ in sel.select(wait):
                fd = key.data
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                chunks[fd] += chunk
                if lines:
                    lines.feed(chunk, fd)
    finally:
        sel.close()
    if lines:
        lines.flush()
    return bytes(chunks[1]), bytes(chunks[2])
