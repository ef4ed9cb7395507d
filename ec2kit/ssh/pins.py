"""Host-key pins: ec2kit's own known_hosts, one entry per instance id (``HostKeyAlias``).

The file is in the OpenSSH format, so ``ssh -o HostKeyAlias=<id>`` (``inv connect``,
rsync, the OpenSSH transport) and the Fabric transport read and write the same pins.
This module is the one reader and writer of that file; it parses lines itself (plain
and ``|1|`` hashed host names) and imports no paramiko.

A line it cannot make sense of (a comment, a marker, a bad key) is skipped and kept, as
OpenSSH does. A file it cannot read at all (not text: NUL bytes after a crash, binary
junk; unreadable) raises :class:`~ec2kit.errors.ConfigError` naming the file: silently
treating it as empty would let ``accept-new`` trust whatever key answers next.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, HostKeyMismatch
from .target import SshTarget


@dataclass(frozen=True)
class HostKey:
    """A public host key: its type (``ssh-ed25519``) and its wire-format blob.

    ``get_name()`` / ``get_base64()`` are named as paramiko's ``PKey`` methods, so either
    kind of key can be handed to code that only reads those two.
    """

    keytype: str
    blob: bytes

    @property
    def fingerprint(self) -> str:
        """OpenSSH-style ``SHA256:...`` fingerprint."""
        return "SHA256:" + base64.b64encode(hashlib.sha256(self.blob).digest()).decode().rstrip("=")

    def get_name(self) -> str:
        return self.keytype

    def get_base64(self) -> str:
        return base64.b64encode(self.blob).decode()

    def __str__(self) -> str:
        return f"{self.keytype} {self.fingerprint}"


def _corrupt(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"ec2kit's host-key pin file {path} cannot be read ({why}), so no instance's key can be checked. Nothing was run.",
        hint=f"Restore it from a backup, or move it aside (`mv {path} {path}.corrupt`): each instance's key is then "
        "learned again on its next connection, so connect only to instances you trust until then.",
    )


def read_lines(known_hosts: Path | str) -> list[str]:
    """The pin file's lines ([] when it does not exist); raises ConfigError when it is not a readable text file."""
    path = Path(known_hosts)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise _corrupt(path, e.strerror or str(e)) from None
    if b"\0" in data:
        raise _corrupt(path, "it contains NUL bytes, as a file damaged by a crash does")
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        raise _corrupt(path, "it is not text") from None


def check(known_hosts: Path | str) -> None:
    """Raise ConfigError (naming the file and the way out) when the pin file exists but cannot be read.

    For callers that hand the file to ``ssh`` itself, which would skip what it cannot parse.
    """
    read_lines(known_hosts)


def parse_line(line: str) -> tuple[list[str], HostKey] | None:
    """``(host names, key)`` of a known_hosts line, or None for comments, markers and bad keys."""
    fields = line.split()
    if len(fields) < 3 or fields[0].startswith(("#", "@")):
        return None
    names, keytype, text = fields[0].split(","), fields[1], fields[2]
    try:
        blob = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    # The blob starts with its own type name (uint32 length + name): a cheap integrity check.
    n = int.from_bytes(blob[:4], "big")
    if len(blob) < 4 + n or blob[4 : 4 + n] != keytype.encode():
        return None
    return names, HostKey(keytype, blob)


def names_match(names: Iterable[str], alias: str) -> bool:
    """Whether a line's host names include ``alias`` (plain, or hashed as ``|1|salt|hash``)."""
    for name in names:
        if name == alias:
            return True
        if name.startswith("|1|"):
            salt, _, digest = name[3:].partition("|")
            try:
                raw_salt, raw_digest = base64.b64decode(salt), base64.b64decode(digest)
            except (binascii.Error, ValueError):
                continue
            if hmac.compare_digest(hmac.new(raw_salt, alias.encode(), "sha1").digest(), raw_digest):
                return True
    return False


def pinned_keys(known_hosts: Path | str, alias: str) -> dict[str, HostKey]:
    """The keys pinned for ``alias`` in ``known_hosts``, by key type (the first of each type wins)."""
    found: dict[str, HostKey] = {}
    for line in read_lines(known_hosts):
        entry = parse_line(line)
        if entry is not None and names_match(entry[0], alias):
            found.setdefault(entry[1].keytype, entry[1])
    return found


def pinned_fingerprints(known_hosts: Path | str, alias: str) -> list[str]:
    """``ssh-ed25519 SHA256:…`` for each key pinned for ``alias``."""
    return [str(key) for key in pinned_keys(known_hosts, alias).values()]


def ensure_known_hosts(path: Path | str) -> None:
    """Create the pin file (0600) and its directory (0700) if missing."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))


def mismatch(target: SshTarget, got: str, pinned: Iterable[str]) -> HostKeyMismatch:
    """The error for an instance presenting ``got`` (``"host key TYPE SHA256:…"``) while other keys are pinned."""
    name = target.name or target.alias
    who = f"'{target.name}' ({target.alias})" if target.name else f"'{target.alias}'"
    expected = ", ".join(pinned) or "a different key"
    return HostKeyMismatch(
        f"Instance {who} at {target.host}:{target.port} presented {got}, but {target.known_hosts} "
        f"pins {expected} for it. Nothing was run on it.",
        hint=f"If the instance was really rebuilt, run `inv forget-host {name}` and connect again; "
        "otherwise someone may be intercepting the connection: investigate before trusting it.",
    )


def pin(target: SshTarget, key: HostKey) -> None:
    """Learn ``key`` for ``target.alias`` (first contact), or raise the mismatch if another key won a race."""
    import fcntl

    ensure_known_hosts(target.known_hosts)
    with open(target.known_hosts, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        pins = pinned_keys(target.known_hosts, target.alias)
        if pins:
            if pins.get(key.keytype) == key:
                return
            raise mismatch(target, f"host key {key}", map(str, pins.values()))
        f.seek(0, os.SEEK_END)
        prefix = ""
        if f.tell():
            f.seek(f.tell() - 1)
            prefix = "" if f.read(1) == "\n" else "\n"
        f.write(f"{prefix}{target.alias} {key.keytype} {key.get_base64()}\n")


def forget_host(known_hosts: Path | str, alias: str) -> int:
    """Remove every pin for ``alias`` from ``known_hosts``; returns how many lines were removed."""
    import fcntl

    path = Path(known_hosts)
    if not path.exists():
        return 0
    read_lines(path)  # a corrupt file is reported, not rewritten
    with open(path, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        lines = f.read().splitlines(keepends=True)
        kept = [line for line in lines if not ((e := parse_line(line)) is not None and names_match(e[0], alias))]
        if len(kept) != len(lines):
            f.seek(0)
            f.write("".join(kept))
            f.truncate()
        return len(lines) - len(kept)
