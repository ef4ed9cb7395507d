"""What ec2kit tells the OpenSSH client and what it reads back from it, as pure functions.

Owns the ``ssh`` command line (:func:`exec_argv`, :func:`ssh_option`), the ControlMaster socket's
name (:func:`control_path`), the shell scripts that move files through an ``ssh`` session
(:func:`put_script`, :func:`get_script`, their exit codes in :data:`TRANSFER_WHAT`), and the reading of
``ssh``'s own messages into ec2kit errors (:func:`ssh_failure`, which reads the pins only to name a
changed host key). Nothing here starts a process; :mod:`.openssh`, the transport, runs what these
build, and the two are read (and tested) apart.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from pathlib import Path

from ..errors import Ec2kitError, RemoteError
from . import pins
from .target import SshTarget
from .transport import closed_while_running, connect_error, who


def ssh_option(name: str, value: object) -> str:
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
        "-o", ssh_option("HostKeyAlias", target.alias),
        "-o", ssh_option("UserKnownHostsFile", target.known_hosts),
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
        argv += ["-o", "ControlMaster=auto", "-o", ssh_option("ControlPath", control), "-o", f"ControlPersist={persist}"]
    else:
        argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
    if command is None:
        return [*argv, "-N", "-f", "--", target.host]
    return [*argv, "--", target.host, command]


# Exit codes of the transfer scripts (chosen outside what cat/mv/chmod return).
_MISSING, _DENIED, _FAILED, _IS_DIR, _SHORT = 71, 72, 73, 74, 75
#: what a transfer script's exit code says went wrong (put in a transfer error's message)
TRANSFER_WHAT = {
    _MISSING: "missing",
    _DENIED: "denied",
    _IS_DIR: "directory",
    _SHORT: "it arrived incomplete (the connection dropped?)",
}


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
        return connect_error(target, "handshake", last_line(stderr))
    if any(s in stderr for s in _MUX):
        return RemoteError(
            f"Sharing the SSH connection to {who(target)} failed ({last_line(stderr)}).",
            hint="Retry; set EC2KIT_SSH_PERSIST=0 to stop sharing connections.",
        )
    if re.search(r"^(ssh|Load key|Warning: Identity file)\b.*", stderr, re.M):
        return RemoteError(
            f"Cannot connect to {who(target)}: {last_line(stderr)}.", hint="Check the key file and the instance's address."
        )
    return None


def last_line(text: str) -> str:
    """The last non-blank line of ``text`` without its final period (``"no message"`` when there is none)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1].rstrip(".") if lines else "no message"
