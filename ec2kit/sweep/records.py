"""Sweep records: one JSON file per sweep under ``EC2KIT_HOME/sweeps/NAME.json`` (atomic writes, a lock per update).

The sweep's runs are ordinary run records (``inv runs``, ``inv logs``, ``inv attach`` work on each); this
file holds what only the sweep knows: its options, every run's settings and place, its owner process,
its state, the fleet calls it made and what it spent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import AlreadyExists, ConfigError, NotFound
from ..fsutil import atomic_write, file_lock
from ..tags import SWEEP_TAG  # noqa: F401 - re-exported: the tag names live in ec2kit.tags

LIVE = ("starting", "running", "stopping")  # the sweep's process may still start runs


@dataclass
class SweepRecord:
    """One sweep: ``runs`` lists ``{"name", "settings", "outcome"}`` in grid order."""

    name: str
    state: str = "starting"
    options: dict = field(default_factory=dict)
    runs: list = field(default_factory=list)
    owner: dict = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    results_dir: str = ""
    fleet_calls: int = 0  # CreateFleet calls made (one per batch)
    launched: int = 0  # instances obtained
    reused: int = 0  # runs started on an instance a run before it had used
    spent: float = 0.0  # USD so far, over every instance the sweep held
    note: str = ""
    log: str = ""  # a detached sweep's output

    @property
    def live(self) -> bool:
        """Whether the sweep's process may still start or follow runs."""
        return self.state in LIVE

    @property
    def run_names(self) -> list[str]:
        """Its runs' names, in grid order."""
        return [r["name"] for r in self.runs]


class Sweeps:
    """The sweep files of one EC2KIT_HOME."""

    def __init__(self, home: Path) -> None:
        self.dir = Path(home) / "sweeps"

    def path(self, name: str) -> Path:
        """Where sweep ``name``'s record lives."""
        return self.dir / f"{name}.json"

    def find(self, name: str) -> SweepRecord | None:
        """Sweep ``name``'s record, or None."""
        path = self.path(name)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"The sweep record {path} cannot be read ({err}).", hint=f"Move it aside: mv {path} {path}.bad"
            ) from None
        known = {k: v for k, v in data.items() if k in SweepRecord.__dataclass_fields__}
        return SweepRecord(**known)

    def get(self, name: str) -> SweepRecord:
        """Sweep ``name``'s record, or NotFound with the names there are."""
        found = self.find(name)
        if found is None:
            names = [r.name for r in self.all()]
            raise NotFound(
                "sweep", name, hint=("Sweeps: " + ", ".join(names[:10])) if names else "No sweeps yet: inv sweep --help"
            )
        return found

    def all(self) -> list[SweepRecord]:
        """Every sweep, newest first."""
        if not self.dir.is_dir():
            return []
        found = [self.find(p.stem) for p in self.dir.glob("*.json")]
        return sorted((r for r in found if r is not None), key=lambda r: r.created_at, reverse=True)

    def create(self, record: SweepRecord) -> SweepRecord:
        """Write a new sweep; a live sweep of the same name is an error, a finished one is replaced."""
        with self._locked(record.name):
            old = self.find(record.name)
            if old is not None and old.live:
                raise AlreadyExists(
                    f"A sweep named '{record.name}' is still {old.state}.",
                    hint=f"Pick another --name, or stop it first: inv stop-run {record.name}",
                )
            self._write(record)
        return record

    def update(self, name: str, change: Callable[[SweepRecord], None]) -> SweepRecord:
        """Read, change and write sweep ``name`` under its lock (several processes may update it)."""
        with self._locked(name):
            record = self.get(name)
            change(record)
            self._write(record)
        return record

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with file_lock(self.dir / f".{name}.lock"):
            yield

    def _write(self, record: SweepRecord) -> None:
        atomic_write(self.path(record.name), json.dumps(asdict(record), indent=1, default=str))


def live_sweep_names(home: Path) -> set[str]:
    """Names of sweeps whose process may still hand their instances new runs (``inv cleanup`` leaves those)."""
    from ..spotrun import owner

    return {s.name for s in Sweeps(home).all() if s.live and owner.alive(s.owner) is not False}
