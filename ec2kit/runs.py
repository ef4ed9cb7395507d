"""Spot-run records in SQLite (``settings.runs_db``): what ran where, its state and cost.

One row per run name. The lifecycle writes a row at every phase change, so a crash or
Ctrl-C leaves a record of which instance, request and volumes belonged to the run.

Several processes write the same row (the run's own ``inv spot-run``, ``inv runs``, ``inv pull``,
``inv stop-run``), so :meth:`Runs.save` writes only what the caller changed since it read the
record (dict fields key by key), and a state change is a compare-and-set: it applies only while
the stored state is still the one the caller read.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import AlreadyExists, ConfigError, NotFound

STATES = (
    "requested",
    "starting",
    "running",
    "succeeded",
    "failed",
    "timeout",
    "interrupted",
    "recovering",
    "cancelled",
    "lost",
)  # lost: a detached run's instance went away before anyone saw how the script ended
ACTIVE_STATES = ("requested", "starting", "running", "interrupted", "recovering")  # the script may still run
JSON_FIELDS = ("volumes", "created", "options")
SECRET_PREFIX = "secret:"
MASK = "***"


def masked_vars(values: dict[str, Any]) -> dict[str, Any]:
    """``--set`` variables as they may be stored or shown: every ``secret:NAME`` value is ``***``."""
    return {k: (MASK if k.startswith(SECRET_PREFIX) else v) for k, v in values.items()}


SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY, state TEXT NOT NULL, script TEXT NOT NULL DEFAULT '',
    instance_id TEXT, request_id TEXT, zone TEXT, instance_type TEXT,
    volumes TEXT NOT NULL DEFAULT '[]', created TEXT NOT NULL DEFAULT '{}',
    attempt INTEGER NOT NULL DEFAULT 0, exit_code INTEGER,
    created_at REAL NOT NULL, started_at REAL, ended_at REAL,
    hourly_price REAL, results_dir TEXT NOT NULL DEFAULT '', monitor TEXT,
    options TEXT NOT NULL DEFAULT '{}', instance_hours REAL NOT NULL DEFAULT 0,
    instance_since REAL
)
"""


@dataclass
class RunRecord:
    """One spot run. ``created`` maps resource kind → ids made for the run (to clean up)."""

    name: str
    state: str = "requested"
    script: str = ""
    instance_id: str | None = None
    request_id: str | None = None
    zone: str | None = None
    instance_type: str | None = None
    volumes: list = field(default_factory=list)
    created: dict = field(default_factory=dict)
    attempt: int = 0
    exit_code: int | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None
    hourly_price: float | None = None
    results_dir: str = ""
    monitor: str | None = None
    options: dict = field(default_factory=dict)
    instance_hours: float = 0.0  # closed instance time of earlier attempts
    instance_since: float | None = None  # when the current instance started billing

    @property
    def live(self) -> bool:
        """Whether the run's script may still be running (a follower, or the instance, owns it)."""
        return self.state in ACTIVE_STATES

    @property
    def awaiting_pull(self) -> bool:
        """A detached run (or one whose `inv spot-run` died) that ended: its instance holds the results until `inv pull`."""
        return (
            bool(self.options.get("detach") or self.options.get("orphaned"))
            and not self.live
            and self.state != "lost"
            and not self.options.get("pulled")
            and not self.options.get("stopped")
            and not self.monitor
            and not self.options.get("instance_gone")
        )

    def hours(self, now: float | None = None) -> float:
        """Instance hours so far, over every attempt."""
        current = ((time.time() if now is None else now) - self.instance_since) / 3600 if self.instance_since is not None else 0.0
        return self.instance_hours + max(current, 0.0)

    @property
    def cost(self) -> float | None:
        """Cost so far (USD): hourly price × instance hours; None when the price is unknown."""
        return self.cost_at()

    @property
    def duration(self) -> float | None:
        """Seconds from the script's start to its end (or now)."""
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at

    def cost_at(self, now: float | None = None) -> float | None:
        """Cost at time ``now``: hourly price × instance hours (None when the price is unknown)."""
        return None if self.hourly_price is None else round(self.hourly_price * self.hours(now), 6)

    def add_created(self, kind: str, resource_id: str) -> None:
        """Remember a resource made for this run (kinds: instances, requests, volumes, keys)."""
        ids = self.created.setdefault(kind, [])
        if resource_id not in ids:
            ids.append(resource_id)

    def instance_started(self, now: float | None = None) -> None:
        """Start the billing clock for a new instance."""
        self.instance_stopped(now)
        self.instance_since = time.time() if now is None else now

    def instance_stopped(self, now: float | None = None) -> None:
        """Stop the billing clock (instance terminated or lost)."""
        if self.instance_since is not None:
            self.instance_hours += max(((time.time() if now is None else now) - self.instance_since) / 3600, 0.0)
            self.instance_since = None


def holders(path: Path) -> list[str]:
    """``pid N (command)`` for every process of this user with ``path`` open (Linux /proc; [] elsewhere)."""
    from .untrusted import visible

    found = []
    target = os.path.realpath(path)
    for proc in Path("/proc").glob("[0-9]*"):
        if int(proc.name) == os.getpid():
            continue
        try:
            if any(os.path.realpath(fd) == target for fd in (proc / "fd").iterdir()):
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                found.append(f"pid {proc.name}: {visible(command[:120], one_line=True)}")
        except OSError:
            continue
    return found[:3]


class Runs:
    """The run table. Every method opens its own short connection (safe across threads)."""

    busy_timeout = 10.0  # seconds to wait for another process's write to finish

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _db(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():  # private from its first byte: it names instances, runs and options
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        con = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            con.row_factory = sqlite3.Row
            con.execute(SCHEMA)
            con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) and "busy" not in str(err):
                raise self._unreadable(err) from None
            who = holders(self.path)
            raise ConfigError(
                f"The runs database {self.path} is busy: another process has held it for more than {self.busy_timeout:g} s"
                + (f" ({'; '.join(who)})." if who else "."),
                hint="Wait for that command to finish (or stop it), then run this one again; nothing was changed.",
            ) from None
        except sqlite3.DatabaseError as err:
            raise self._unreadable(err) from None
        finally:
            con.close()

    def _unreadable(self, err: Exception) -> ConfigError:
        return ConfigError(
            f"The runs database {self.path} cannot be read ({err}).",
            hint=f"Move it aside to start a fresh one (your results in runs/ are not in it): mv {self.path} {self.path}.bad",
        )

    def create(self, record: RunRecord) -> RunRecord:
        """Insert a new run; a live run of the same name is an error, a finished one is replaced."""
        existing = self.find(record.name)
        if existing and existing.live:
            raise AlreadyExists(
                f"A run named '{record.name}' is still {existing.state} (instance {existing.instance_id or 'not yet launched'}).",
                hint=f"Pick another --name, or stop it first: inv stop-run {record.name}",
            )
        with self._db(write=True) as con:
            con.execute("DELETE FROM runs WHERE name = ?", (record.name,))
            self._write(con, record)
        return record

    def save(self, record: RunRecord) -> bool:
        """Store what this caller changed in ``record`` since it was read; False when its state
        change lost to another writer's (``record`` then holds the stored state).

        A record that was never read from the table (built by hand) is written whole. Afterwards
        ``record`` holds the merged row, other writers' changes included.
        """
        with self._db(write=True) as con:
            base = _base_of(record)
            row = con.execute("SELECT * FROM runs WHERE name = ?", (record.name,)).fetchone()
            if base is None or row is None:
                self._write(con, record)
                return True
            stored = _record(row)
            merged, won = _merge(base, asdict(record), asdict(stored))
            for key, value in merged.items():
                setattr(record, key, value)
            self._write(con, record)
        return won

    def _write(self, con: sqlite3.Connection, record: RunRecord) -> None:
        data = asdict(record)
        data["options"] = {**data["options"], "vars": masked_vars(data["options"].get("vars") or {})}
        if not data["options"]["vars"]:
            del data["options"]["vars"]
        _remember(record, asdict(record))
        for key in JSON_FIELDS:
            data[key] = json.dumps(data[key])
        cols = ", ".join(data)
        con.execute(f"INSERT OR REPLACE INTO runs ({cols}) VALUES ({', '.join('?' * len(data))})", tuple(data.values()))

    def find(self, name: str) -> RunRecord | None:
        """The run called ``name``, or None."""
        with self._db() as con:
            row = con.execute("SELECT * FROM runs WHERE name = ?", (name,)).fetchone()
        return _record(row) if row else None

    def get(self, name: str) -> RunRecord:
        """The run called ``name``; NotFound (with close names) otherwise."""
        record = self.find(name)
        if record is None:
            raise NotFound("run", name, [r.name for r in self.all()], hint="List runs with: inv runs")
        return record

    def all(self) -> list[RunRecord]:
        """Every run, newest first."""
        with self._db() as con:
            rows = con.execute("SELECT * FROM runs ORDER BY created_at DESC").fetchall()
        return [_record(r) for r in rows]

    def live(self) -> list[RunRecord]:
        """Runs that may still own cloud resources."""
        return [r for r in self.all() if r.live]


def _record(row: sqlite3.Row) -> RunRecord:
    names = {f.name for f in fields(RunRecord)}
    data = {k: row[k] for k in row.keys() if k in names}
    for key in JSON_FIELDS:
        data[key] = json.loads(data[key] or ("[]" if key == "volumes" else "{}"))
    record = RunRecord(**data)
    _remember(record, asdict(record))
    return record


def _remember(record: RunRecord, values: dict[str, Any]) -> None:
    """Keep the values a record was read (or last written) with, to tell what a caller changed."""
    record.__dict__["_base"] = json.loads(json.dumps(values))


def _base_of(record: RunRecord) -> dict[str, Any] | None:
    base: dict[str, Any] | None = record.__dict__.get("_base")
    return base


def _merge(base: dict[str, Any], mine: dict[str, Any], stored: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Apply what changed from ``base`` to ``mine`` onto ``stored``; state is compare-and-set."""
    mine = json.loads(json.dumps(mine))
    merged = dict(stored)
    won = True
    for key, value in mine.items():
        if key == "state":
            if value != base["state"]:
                if stored["state"] == base["state"]:
                    merged["state"] = value
                else:
                    won = False  # someone else moved the run first (e.g. stop-run): theirs stands
        elif isinstance(value, dict) and isinstance(stored.get(key), dict):
            old = base.get(key) or {}
            inner = dict(stored[key])
            for k in set(old) | set(value):
                if k not in value:
                    inner.pop(k, None)
                elif value[k] != old.get(k):
                    inner[k] = value[k]
            merged[key] = inner
        elif value != base.get(key):
            merged[key] = value
    return merged, won
