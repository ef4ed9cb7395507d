"""Spot-run records in SQLite (``settings.runs_db``): what ran where, its state and cost.

One row per run name. The lifecycle writes a row at every phase change, so a crash or
Ctrl-C leaves a record of which instance, request and volumes belonged to the run.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .errors import AlreadyExists, NotFound

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
LIVE_STATES = ("requested", "starting", "running", "interrupted", "recovering")
JSON_FIELDS = ("volumes", "created", "options")

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
        return self.state in LIVE_STATES

    @property
    def awaiting_pull(self) -> bool:
        """A detached run that ended: its instance holds the results until `inv pull`."""
        return (
            bool(self.options.get("detach"))
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


class Runs:
    """The run table. Every method opens its own short connection (safe across threads)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=10)
        try:
            con.row_factory = sqlite3.Row
            con.execute(SCHEMA)
            with con:
                yield con
        finally:
            con.close()

    def create(self, record: RunRecord) -> RunRecord:
        """Insert a new run; a live run of the same name is an error, a finished one is replaced."""
        existing = self.find(record.name)
        if existing and existing.live:
            raise AlreadyExists(
                f"A run named '{record.name}' is still {existing.state} (instance {existing.instance_id or 'not yet launched'}).",
                hint=f"Pick another --name, or stop it first: inv stop-run {record.name}",
            )
        with self._db() as con:
            con.execute("DELETE FROM runs WHERE name = ?", (record.name,))
            self._write(con, record)
        return record

    def save(self, record: RunRecord) -> RunRecord:
        """Write every field of ``record`` (insert or update)."""
        with self._db() as con:
            self._write(con, record)
        return record

    def _write(self, con: sqlite3.Connection, record: RunRecord) -> None:
        data = asdict(record)
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
    return RunRecord(**data)
