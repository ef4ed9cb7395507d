"""ec2kit from Python: a notebook and REPL facade over the same functions the command line calls.

    from ec2kit import EC2
    ec2 = EC2()                                  # AWS, or the local sandbox (no credentials / EC2KIT_SANDBOX=1)
    ec2.instances()                              # a table in Jupyter
    gpu = ec2.launch("gpu1", type="g5.xlarge", spot=True, disk=80)   # returns once SSH answers
    gpu.ssh().run("nvidia-smi").stdout
    gpu.put("data.csv", "~/data.csv"); gpu.get("~/out.txt", "out.txt")
    gpu.stop(); gpu.state                        # live: 'stopped'
    gpu.change_type("g5.2xlarge"); gpu.start()
    ec2.freeze("gpu1")                           # an image named gpu1
    ec2.create_volume(gpu, 20, name="data")      # create, attach, format, mount at /mnt/data
    ec2.recipe("base").run(on=["gpu1"], vars={"packages": ["htop"]}, check=True)
    run = ec2.spot_run("train.sh", files="train.py")
    run.status; run.logs(); run.metrics()["loss"].ys; run.plot()
    ec2.runs()

Every verb goes through :mod:`ec2kit.actions`, :class:`ec2kit.aws.cloud.Cloud`,
:mod:`ec2kit.recipe` and :mod:`ec2kit.spotrun`, exactly as ``inv`` does; nothing here talks
to AWS or SSH by itself. Objects are live views: an :class:`Instance` re-reads its state when
its snapshot is more than :attr:`Instance.max_age` seconds old (and right after each verb), a
:class:`Run` re-reads its record. Errors are :mod:`ec2kit.errors` classes with the same
messages as on the command line.

Tab completion in IPython: ``ec2.i.<TAB>`` lists instance names (made into identifiers:
``gpu-1`` → ``ec2.i.gpu_1``) and ``ec2["<TAB>`` lists them as written. ``inv repl`` starts
IPython with ``ec2`` ready.

Importing this module is cheap: boto3, rich, jinja2 and matplotlib load on first use.
"""

from __future__ import annotations

import keyword
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import display
from .errors import ConfigError, Ec2kitError, NotFound, StepFailed, WrongState
from .ssh.transport import Result

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .aws.cloud import Cloud
    from .aws.models import Image, Snapshot, Volume
    from .aws.models import Instance as InstanceInfo
    from .context import Context
    from .metrics import Metrics, Series
    from .recipe import Recipe as RecipeModel
    from .recipe import RecipeInfo
    from .recipe.model import HostReport, RunReport
    from .runs import RunRecord
    from .settings import Settings
    from .spotrun import Leftover
    from .ssh import Transport

__all__ = [
    "EC2",
    "CommandResult",
    "Instance",
    "InstanceNames",
    "Listing",
    "Recipe",
    "RecipeReport",
    "Run",
    "Shell",
    "Text",
    "examples_dir",
    "identifier",
]

T = TypeVar("T")
Progress = Callable[[str], None] | None
DEFAULT_MOUNT = "/mnt/data"
_RESERVED_TAGS = ("ec2kit:", "aws:")


def examples_dir() -> Path:
    """The example scripts shipped with ec2kit (``train.sh``, ``train.py``, ``quickstart.ipynb``), wherever it is installed."""
    return Path(__file__).resolve().parent / "data" / "examples"


def identifier(name: str) -> str:
    """An instance name as a Python attribute name for ``ec2.i.<name>``: ``gpu-1`` → ``gpu_1``,
    ``1st`` → ``i_1st``, ``class`` → ``class_``. Never starts with ``_`` (IPython probes those)."""
    ident = re.sub(r"\W", "_", name).lstrip("_")
    if not ident or ident[0].isdigit():
        ident = "i_" + ident
    return ident + "_" if keyword.iskeyword(ident) else ident


class Text(str):
    """Text that Jupyter and IPython show as it is (a log, command output) instead of a quoted string."""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        return display.html_pre(str(self))


class _Shown:
    """Mixin: one description (``_show()``) rendered as HTML for Jupyter and as text for IPython."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # IPython's pretty printer stops at the first class in the MRO that defines __repr__ (or is a
        # registered type such as list): every subclass carries _repr_pretty_ itself so it is found first.
        if "_repr_pretty_" not in cls.__dict__:
            cls._repr_pretty_ = _Shown._repr_pretty_  # type: ignore[method-assign]

    def _show(self) -> tuple[str, Sequence[str], Sequence[Sequence[Any]], str]:
        """``(title, columns, rows, empty)``; subclasses with fields override ``_fields`` instead."""
        raise NotImplementedError

    def _fields(self) -> tuple[str, list[tuple[str, Any]]] | None:
        return None

    def _repr_html_(self) -> str:
        fields = self._fields()
        if fields is not None:
            return display.html_fields(fields[1], title=fields[0])
        title, columns, rows, empty = self._show()
        return display.html_table(columns, rows, title=title, empty=empty)

    def _text(self) -> str:
        fields = self._fields()
        if fields is not None:
            return display.text_fields(fields[1], title=fields[0])
        title, columns, rows, empty = self._show()
        return display.text_table(columns, rows, title=title, empty=empty)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self) if cycle else self._text())


class Listing(list[T], _Shown, Generic[T]):
    """A list of ec2kit objects that shows as a table in Jupyter and IPython (still a plain list)."""

    def __init__(
        self,
        items: Iterable[T],
        *,
        title: str,
        columns: Sequence[str],
        row: Callable[[T], Sequence[Any]],
        empty: str = "",
    ) -> None:
        super().__init__(items)
        self._title, self._columns, self._row, self._empty = title, list(columns), row, empty

    def _show(self) -> tuple[str, Sequence[str], Sequence[Sequence[Any]], str]:
        return self._title, self._columns, [self._row(x) for x in self], self._empty

    @property
    def names(self) -> list[str]:
        """The ``name`` of each item."""
        return [str(getattr(x, "name", "")) for x in self]


# -- commands on an instance ------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult(Result):
    """What a remote command did: ``.stdout``, ``.stderr``, ``.exit_code``, ``.ok`` (shows its output)."""

    host: str = ""

    def __str__(self) -> str:
        return self.stdout

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self._text())

    def _text(self) -> str:
        status = "" if self.ok else f"[exit code {self.exit_code}]\n"
        gap = "\n" if self.stderr and self.stdout and not self.stdout.endswith("\n") else ""
        return status + self.stdout + gap + self.stderr

    def _repr_html_(self) -> str:
        title = f"{self.host} $ {self.command}" + ("" if self.ok else f"  (exit code {self.exit_code})")
        return f"<p><code>{display.html.escape(title)}</code></p>" + display.html_pre(self.stdout + self.stderr)


class Shell:
    """Commands and files on one instance over SSH (the transport ``inv provision`` uses, shared per instance).

    ``run`` raises :class:`~ec2kit.errors.UnexpectedExit` on a non-zero exit unless ``check=False``.
    """

    def __init__(self, instance: Instance) -> None:
        self.instance = instance

    @property
    def transport(self) -> Transport:
        """The underlying :class:`ec2kit.ssh.Transport` (made once per instance, reused)."""
        return self.instance._ec2.ctx.connect(self.instance.info)

    @property
    def home(self) -> str:
        """The remote ``$HOME``."""
        return self.transport.home

    def run(
        self,
        command: str,
        *,
        sudo: bool = False,
        env: dict[str, object] | None = None,
        cwd: str | None = None,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
        echo: bool = False,
    ) -> CommandResult:
        """Run a shell command (in ``$HOME``, or ``cwd``); the result has ``.stdout``, ``.stderr``, ``.exit_code``, ``.ok``.

        Example: ``inst.ssh().run("nvidia-smi", check=False).ok``.
        """
        transport = self.transport
        r = transport.run(command, sudo=sudo, env=env, cwd=cwd, stdin=stdin, timeout=timeout, check=check, echo=echo)
        return CommandResult(r.command, r.stdout, r.stderr, r.exit_code, host=transport.name)

    def put(self, local: Path | str, remote: str, mode: int | None = None) -> str:
        """Copy a local file to ``remote`` (``~`` expanded; atomic); returns the absolute remote path."""
        transport = self.transport
        transport.put(Path(local).expanduser(), remote, mode=mode)
        return transport.expand(remote)

    def put_bytes(self, data: bytes, remote: str, mode: int | None = None) -> str:
        """Write ``data`` to the file ``remote`` (atomic); returns the absolute remote path."""
        transport = self.transport
        transport.put_bytes(data, remote, mode=mode)
        return transport.expand(remote)

    def get(self, remote: str, local: Path | str | None = None) -> Path:
        """Copy the file ``remote`` here (default: its name in the current directory); returns the local path."""
        target = Path(local).expanduser() if local is not None else Path(remote.rstrip("/").rsplit("/", 1)[-1])
        self.transport.get(remote, target)
        return target.resolve()

    def __repr__(self) -> str:
        return f"<Shell {self.instance.label}>"


# -- instances --------------------------------------------------------------------------------


class Instance(_Shown):
    """An EC2 instance as a live view: ``state``, ``type`` and addresses are re-read when older than
    :attr:`max_age` seconds, and right after :meth:`stop`, :meth:`start`, :meth:`terminate`…

    ``info`` is the current :class:`ec2kit.aws.models.Instance` snapshot.
    """

    #: seconds a snapshot of the instance is trusted before the next attribute access re-reads it
    max_age: float = 2.0

    def __init__(self, ec2: EC2, info: InstanceInfo) -> None:
        self._ec2 = ec2
        self._info = info
        self._read_at = time.monotonic()
        self._gone = False

    # -- what it is (live) ------------------------------------------------------------
    @property
    def id(self) -> str:
        """The instance id (``i-…``)."""
        return self._info.id

    @property
    def name(self) -> str:
        """Its Name tag."""
        return self._info.name

    @property
    def label(self) -> str:
        """``name (i-…)`` for messages."""
        return self._info.label

    @property
    def info(self) -> InstanceInfo:
        """The current snapshot (re-read when older than :attr:`max_age`)."""
        if not self._gone and time.monotonic() - self._read_at > self.max_age:
            self.refresh()
        return self._info

    def refresh(self) -> Instance:
        """Re-read the instance from EC2 now; returns itself."""
        from .aws.models import LIVE_STATES

        try:
            self._set(self._ec2.cloud.instance(self.id, states=[*LIVE_STATES, "terminated"]))
        except NotFound:  # terminated long enough ago that EC2 forgot it
            self._gone = True
            self._info.state = "terminated"
        return self

    def _set(self, info: InstanceInfo) -> Instance:
        self._info, self._read_at = info, time.monotonic()
        return self

    @property
    def state(self) -> str:
        """``pending``, ``running``, ``stopping``, ``stopped``, ``shutting-down`` or ``terminated`` (live)."""
        return self.info.state

    @property
    def type(self) -> str:
        """The instance type, e.g. ``t3.medium``."""
        return self.info.type

    @property
    def public_ip(self) -> str | None:
        """Its public IPv4 address (None when stopped or private)."""
        return self.info.public_ip

    @property
    def private_ip(self) -> str | None:
        """Its private IPv4 address."""
        return self.info.private_ip

    @property
    def zone(self) -> str:
        """Its availability zone."""
        return self.info.zone

    @property
    def lifecycle(self) -> str:
        """``spot`` or ``on-demand``."""
        return self.info.lifecycle

    @property
    def tags(self) -> dict[str, str]:
        """Its tags."""
        return dict(self.info.tags)

    # -- SSH ---------------------------------------------------------------------------
    def ssh(self) -> Shell:
        """Commands and files over SSH: ``inst.ssh().run("nvidia-smi").stdout``."""
        return Shell(self)

    def run(self, command: str, **options: Any) -> CommandResult:
        """``inst.ssh().run(command, **options)``."""
        return self.ssh().run(command, **options)

    def put(self, local: Path | str, remote: str, mode: int | None = None) -> str:
        """Copy a local file to the instance; returns the absolute remote path."""
        return self.ssh().put(local, remote, mode=mode)

    def get(self, remote: str, local: Path | str | None = None) -> Path:
        """Copy a file from the instance here; returns the local path."""
        return self.ssh().get(remote, local)

    def ssh_command(self, ports: Sequence[int] = ()) -> str:
        """The ``ssh`` command line that logs in to it (host key pinned), with ``-L`` tunnels for ``ports``."""
        import shlex

        from .ssh.target import ssh_argv

        return shlex.join(ssh_argv(self._ec2.ctx.target(self.info), ports=list(ports), tty=True))

    # -- lifecycle (the CLI's verbs) ------------------------------------------------------
    def stop(self, *, wait: bool = True) -> Instance:
        """Stop it (its disk is kept); waits until stopped unless ``wait=False``. Spot instances cannot stop."""
        with self._ec2._progress(f"Stopping {self.label}") as progress:
            info = self._ec2.cloud.stop(self.id, wait=wait, progress=progress)
        self._ec2.ctx.forget_host(self.id)
        return self._set(info)

    def start(self, *, wait: bool = True) -> Instance:
        """Start it; returns once SSH answers (``wait=False``: once EC2 accepted the start)."""
        from .actions import start

        with self._ec2._progress(f"Starting {self.label}") as progress:
            info = start(self._ec2.ctx, self.id, wait=wait, progress=progress)
        return self._set(info)

    def terminate(self, *, wait: bool = False) -> Instance:
        """Terminate it (its spot request is cancelled first; the root disk is deleted)."""
        with self._ec2._progress(f"Terminating {self.label}") as progress:
            info = self._ec2.cloud.terminate(self.id, wait=wait, progress=progress)
        self._ec2.ctx.forget_host(self.id)
        return self._set(info)

    def change_type(self, type: str) -> Instance:
        """Change the type of a stopped instance, e.g. ``inst.change_type("g5.2xlarge")``."""
        return self._set(self._ec2.cloud.change_type(self.id, type))

    def freeze(self, image_name: str | None = None) -> Image:
        """Make an image of it (see :meth:`EC2.freeze`)."""
        return self._ec2.freeze(self, image_name=image_name)

    def create_volume(
        self, size: int | None = None, *, name: str | None = None, snapshot: str | None = None, mountpoint: str = DEFAULT_MOUNT
    ) -> Volume:
        """Create, attach, format and mount a volume on it (see :meth:`EC2.create_volume`)."""
        return self._ec2.create_volume(self, size, name=name, snapshot=snapshot, mountpoint=mountpoint)

    # -- showing -------------------------------------------------------------------------
    def _fields(self) -> tuple[str, list[tuple[str, Any]]]:
        i = self.info
        return f"Instance {i.name or i.id}", [
            ("name", i.name),
            ("id", i.id),
            ("type", i.type),
            ("state", i.state),
            ("lifecycle", i.lifecycle),
            ("public ip", i.public_ip),
            ("private ip", i.private_ip),
            ("zone", i.zone),
            ("image", i.image_id),
            ("uptime", _uptime(i)),
            ("tags", ", ".join(f"{k}={v}" for k, v in sorted(i.tags.items()) if k != "Name")),
        ]

    def __repr__(self) -> str:
        i = self._info  # no AWS call for a repr
        return f"<Instance {i.name or '-'} {i.id} {i.type} {i.state}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Instance) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


def _uptime(info: InstanceInfo) -> str:
    from datetime import datetime, timezone

    from .ui import human_duration

    lt = info.launch_time
    if info.state != "running" or not isinstance(lt, datetime):
        return ""
    lt = lt if lt.tzinfo else lt.replace(tzinfo=timezone.utc)
    return human_duration((datetime.now(timezone.utc) - lt).total_seconds())


def _instance_row(i: Instance) -> tuple[Any, ...]:
    info = i._info  # the listing's own snapshot: one DescribeInstances for the whole table
    return (info.name, info.id, info.type, info.state, info.lifecycle, info.public_ip, info.private_ip, _uptime(info))


INSTANCE_COLUMNS = ("name", "id", "type", "state", "lifecycle", "public ip", "private ip", "uptime")


class InstanceNames:
    """``ec2.i.<TAB>``: the instances as attributes named by :func:`identifier` (a fresh lookup on each access)."""

    def __init__(self, ec2: EC2) -> None:
        self._ec2 = ec2

    def _names(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for name in self._ec2._instance_names():
            found.setdefault(identifier(name), name)
        return found

    def __dir__(self) -> list[str]:
        return sorted(self._names())

    def __getattr__(self, attr: str) -> Instance:
        if attr.startswith("_"):  # IPython and pickle probe these: never an AWS call
            raise AttributeError(attr)
        names = self._names()
        if attr not in names:
            raise UnknownInstance(attr, list(names))
        return self._ec2.instance(names[attr])

    def __repr__(self) -> str:
        return "<instances: " + " ".join(sorted(self._names())) + ">"


class UnknownInstance(NotFound, AttributeError):  # type: ignore[misc]  # name: str vs str | None
    """``ec2.i.<name>`` with no such instance: a NotFound (with suggestions) that is also an AttributeError."""

    def __init__(self, name: str, candidates: list[str]) -> None:
        NotFound.__init__(self, "instance", name, candidates, hint="List them with ec2.instances() (or dir(ec2.i)).")


# -- recipes --------------------------------------------------------------------------------


class RecipeReport(_Shown):
    """A recipe run's report: the :class:`ec2kit.recipe.RunReport` (``.report``) with its
    ``.ok``, ``.hosts`` (name → HostReport with each step's result), ``.summary``, shown as a table."""

    def __init__(self, report: RunReport, recipe: str = "") -> None:
        self.report = report
        self.recipe = recipe

    @property
    def ok(self) -> bool:
        """True when every host succeeded."""
        return self.report.ok

    @property
    def hosts(self) -> dict[str, HostReport]:
        """Host name → its report (``.steps``, ``.recap``, ``.failure``)."""
        return self.report.hosts

    @property
    def check(self) -> bool:
        """Whether it ran in check mode (nothing changed)."""
        return self.report.check

    @property
    def failed_hosts(self) -> list[str]:
        """Names of the hosts that failed."""
        return self.report.failed_hosts

    @property
    def summary(self) -> str:
        """``All 3 hosts succeeded in 1.20s.`` or ``1 of 3 hosts failed: web2.``"""
        return self.report.summary

    def raise_for_failure(self) -> None:
        """Raise the error that stopped the first failed host (the same message ``inv recipe`` prints)."""
        for host in self.hosts.values():
            if not host.ok:
                if isinstance(host.error, Ec2kitError):
                    raise host.error
                raise StepFailed(f"Recipe {self.recipe} failed on {host.name}: {host.failure}")

    def _show(self) -> tuple[str, Sequence[str], Sequence[Sequence[Any]], str]:
        from .recipe.report import status_word

        rows: list[tuple[Any, ...]] = []
        for host, report in self.hosts.items():
            for s in report.steps:
                rows.append(
                    (host, s.number, s.name, status_word(s), s.reason or (f"exit code {s.exit_code}" if s.exit_code else ""))
                )
            if report.failure:
                rows.append((host, "", "failure", "failed", report.failure))
        title = f"Recipe {self.recipe}" + (" (check mode: nothing changed)" if self.check else "") + f": {self.summary}"
        return title, ("host", "#", "step", "status", "why"), rows, "No steps ran."

    def _repr_html_(self) -> str:
        recaps = [(name, " ".join(f"{k}={v}" for k, v in h.recap.items())) for name, h in self.hosts.items()]
        return super()._repr_html_() + display.html_table(("host", "recap"), recaps)

    def __repr__(self) -> str:
        return f"<RecipeReport {self.recipe}: {self.summary}>"


class Recipe:
    """A loaded recipe (``ec2.recipe("base")``): ``.run(on=[...], vars={...}, check=True)``."""

    def __init__(self, ec2: EC2, model: RecipeModel) -> None:
        self._ec2 = ec2
        self.model = model

    @property
    def name(self) -> str:
        """The recipe's name."""
        return self.model.name

    @property
    def description(self) -> str:
        """Its description."""
        return self.model.description

    @property
    def vars(self) -> dict[str, Any]:
        """Its variables and their defaults."""
        return dict(self.model.vars)

    @property
    def steps(self) -> list[str]:
        """Its steps' names, in order."""
        return [s.name for s in self.model.steps]

    def run(
        self,
        on: str | Instance | Iterable[str | Instance] | None = None,
        *,
        vars: dict[str, Any] | None = None,
        check: bool = False,
        tags: Sequence[str] = (),
        skip_tags: Sequence[str] = (),
        start_at: str | int | None = None,
    ) -> RecipeReport:
        """Run on each host in ``on`` (names, ids or Instances; ``"a,b"`` works too) in parallel, like ``inv recipe``.

        ``vars`` override the recipe's (a name it neither declares nor uses is refused); ``check``
        changes nothing and reports what would change. Step lines print as they complete (not
        with ``EC2(quiet=True)``). Failures are in the report (``.ok``, ``.raise_for_failure()``).
        """
        from .recipe import run_recipe
        from .recipe.loader import check_overrides

        overrides = dict(vars or {})
        check_overrides(self.model, overrides)
        report = run_recipe(
            self._ec2.ctx,
            self.model,
            hosts=_host_names(on),
            vars=overrides,
            check=check,
            tags=tuple(tags),
            skip_tags=tuple(skip_tags),
            start_at=start_at,
            reporter=self._ec2._reporter(),
        )
        return RecipeReport(report, self.name)

    def __repr__(self) -> str:
        return f"<Recipe {self.name}: {self.description}>"


def _host_names(on: str | Instance | Iterable[str | Instance] | None) -> list[str]:
    if on is None:
        return []
    items: Iterable[str | Instance] = [on] if isinstance(on, (str, Instance)) else on
    names: list[str] = []
    for item in items:
        if isinstance(item, Instance):
            names.append(item.name or item.id)
        else:
            names += [part.strip() for part in str(item).split(",") if part.strip()]
    return names


# -- runs ---------------------------------------------------------------------------------------


class Run(_Shown):
    """A spot run as a live view of its record: ``.status``, ``.logs()``, ``.pull()``, ``.stop()``, ``.metrics()``, ``.plot()``."""

    #: seconds a read of the run's record is trusted
    max_age: float = 1.0

    def __init__(self, ec2: EC2, name: str, record: RunRecord | None = None) -> None:
        self._ec2 = ec2
        self.name = name
        self._record = record
        self._read_at = time.monotonic() if record is not None else 0.0

    @property
    def record(self) -> RunRecord:
        """The run's :class:`ec2kit.runs.RunRecord` as stored now (re-read when older than :attr:`max_age`)."""
        if self._record is None or time.monotonic() - self._read_at > self.max_age:
            from .runs import Runs

            self._record = Runs(self._ec2.settings.runs_db).get(self.name)
            self._read_at = time.monotonic()
        return self._record

    def _fresh(self) -> RunRecord:
        self._record = None
        return self.record

    @property
    def status(self) -> str:
        """Its state now: ``running``, ``succeeded``, ``failed``, ``cancelled``, ``lost``…; a detached run
        is checked on its instance first (as ``inv runs`` does)."""
        record = self._fresh()
        if record.options.get("detach") and (record.live or record.awaiting_pull):
            from . import spotrun

            spotrun.refresh(self._ec2.ctx, [record])
            record = self._fresh()
        return record.state

    @property
    def state(self) -> str:
        """Its recorded state (no instance check; see :attr:`status`)."""
        return self.record.state

    @property
    def exit_code(self) -> int | None:
        """The script's exit code, once it ended."""
        return self.record.exit_code

    @property
    def results(self) -> Path:
        """The local directory its results come home to."""
        return Path(self.record.results_dir)

    @property
    def cost(self) -> float | None:
        """Cost so far in USD (None when the price is unknown)."""
        return self.record.cost

    @property
    def instance(self) -> Instance | None:
        """Its current instance, while it has one."""
        iid = self.record.instance_id
        if not iid:
            return None
        try:
            return self._ec2.instance(iid)
        except (NotFound, WrongState):  # gone, or terminated and still listed
            return None

    def logs(self) -> Text:
        """Its log so far: from the instance while it runs, else the copy that came home."""
        from . import spotrun

        lines: list[str] = []
        spotrun.logs(self._ec2.ctx, self.name, out=lines.append)
        return Text("\n".join(lines) + ("\n" if lines else ""))

    def follow(self) -> str:
        """Print its log as it grows until the script ends; returns the final state."""
        from . import spotrun

        spotrun.logs(self._ec2.ctx, self.name, follow=True, out=print)
        return self.status

    def attach_command(self) -> str:
        """The ``ssh -t … tmux attach`` command line that shows its tmux session in a terminal (Ctrl-b d detaches)."""
        import shlex

        from . import spotrun

        return shlex.join(spotrun.attach_argv(self._ec2.ctx, self.name))

    def pull(self) -> Path:
        """Bring its results home now (``inv pull``); returns the results directory."""
        from . import spotrun

        return spotrun.pull(self._ec2.ctx, self.name)

    def stop(self) -> Run:
        """Stop it (``inv stop-run``): final pull, then its instance and volumes are removed."""
        from . import spotrun

        self._record, self._read_at = spotrun.stop_run(self._ec2.ctx, self.name), time.monotonic()
        return self

    def _metrics(self) -> Metrics | None:
        from . import metrics

        results = self.record.results_dir
        return metrics.load(results) if results else None

    def metrics(self) -> dict[str, Series]:
        """Its metrics so far from ``metrics.csv``/``metrics.jsonl`` in the results: name →
        :class:`ec2kit.metrics.Series` (``.xs`` steps, ``.ys`` values, ``.latest``); ``{}`` without any."""
        found = self._metrics()
        return dict(found.series) if found else {}

    def latest(self) -> dict[str, float]:
        """Each metric's last value."""
        found = self._metrics()
        return found.latest() if found else {}

    def plot(self, metric: str | Sequence[str] | None = None, *, title: str | None = None) -> Figure:
        """A matplotlib figure of its metrics (one subplot each; ``metric`` picks some), shown inline in Jupyter.

        Needs matplotlib (``pip install 'ec2kit[plot]'``). The same chart as ``inv plot RUN --png``.
        """
        from . import plot

        record = self.record
        found = self._metrics()
        if not found or not found.series:
            raise plot.no_metrics_error(record)
        wanted = [metric] if isinstance(metric, str) else list(metric or [])
        names = plot.choose(found, wanted, self.name)
        return plot.figure(found, names, title=title if title is not None else f"{self.name} ({record.state})", inline=True)

    def _fields(self) -> tuple[str, list[tuple[str, Any]]]:
        r = self.record
        from .ui import human_duration

        return f"Run {r.name}", [
            ("state", r.state),
            ("script", r.script),
            ("instance", " ".join(x for x in (r.instance_type or "", r.instance_id or "") if x)),
            ("attempt", r.attempt or None),
            ("exit code", r.exit_code),
            ("time", human_duration(r.duration) if r.duration is not None else ""),
            ("cost", f"${r.cost:.4f}" if r.cost is not None else ""),
            ("results", r.results_dir),
            ("note", r.options.get("note")),
        ]

    def _metric_rows(self) -> list[tuple[Any, ...]]:
        from .metrics import format_value, sparkline

        found = self._metrics()
        if not found:
            return []
        return [
            (name, format_value(s.ys[-1]), f"{found.x} {format_value(s.xs[-1])}", sparkline(s.ys))
            for name, s in found.series.items()
            if s.ys
        ]

    def _repr_html_(self) -> str:
        rows = self._metric_rows()
        metrics = display.html_table(("metric", "latest", "at", "trend"), rows, title="Metrics") if rows else ""
        return super()._repr_html_() + metrics

    def _text(self) -> str:
        rows = self._metric_rows()
        return super()._text() + ("\n" + display.text_table(("metric", "latest", "at", "trend"), rows) if rows else "")

    def __repr__(self) -> str:
        state = self._record.state if self._record is not None else "?"
        return f"<Run {self.name} {state}>"


def _run_row(run: Run) -> tuple[Any, ...]:
    from .metrics import load, summary
    from .ui import human_duration

    r = run.record
    found = load(r.results_dir) if r.results_dir else None
    return (
        r.name,
        r.state,
        r.instance_type,
        r.instance_id,
        r.exit_code,
        human_duration(r.duration) if r.duration is not None else "",
        f"${r.cost:.4f}" if r.cost is not None else "",
        summary(found, limit=3, width=12) if found else "",
    )


# -- the facade ---------------------------------------------------------------------------------


class EC2:
    """EC2 for notebooks and the REPL: ``EC2(region="Ohio", profile="work")``.

    The same rules as the command line pick AWS or the local sandbox: ``EC2KIT_SANDBOX=1`` (or
    ``sandbox=True``) forces the sandbox, ``EC2KIT_SANDBOX=0`` (or ``sandbox=False``) forbids it,
    otherwise the sandbox is used when no AWS credentials are found. ``home`` moves ec2kit's state
    (default ``EC2KIT_HOME`` or ``~/.ec2kit``); ``quiet`` drops progress and step lines. Nothing is
    contacted until the first call.
    """

    def __init__(
        self,
        region: str | None = None,
        profile: str | None = None,
        *,
        sandbox: bool | None = None,
        home: Path | str | None = None,
        quiet: bool = False,
        context: Context | None = None,
    ) -> None:
        if context is None:
            from .context import Context
            from .settings import Settings

            if region:
                from .aws.regions import find_region

                region = find_region(region)
            settings = Settings.from_env(
                profile=profile, region=region, sandbox=sandbox, home=Path(home).expanduser() if home else None
            )
            context = Context(settings, quiet=quiet)
        self.ctx = context
        self.quiet = quiet
        #: ``ec2.i.<TAB>``: instances by attribute name
        self.i = InstanceNames(self)
        self._names_cache: tuple[float, list[str]] = (0.0, [])

    # -- plumbing -----------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """ec2kit's settings (home, profile, region, sandbox…)."""
        return self.ctx.settings

    @property
    def cloud(self) -> Cloud:
        """The :class:`ec2kit.aws.cloud.Cloud` underneath (starts the sandbox when it is used)."""
        return self.ctx.cloud

    @property
    def uses_sandbox(self) -> bool:
        """True when calls go to the local sandbox instead of AWS."""
        self.cloud  # noqa: B018 - decides (and starts) first
        return self.ctx.sandbox is not None

    @property
    def region(self) -> str:
        """The AWS region in use."""
        return str(self.cloud.region)

    @property
    def volumes_supported(self) -> bool:
        """Whether volumes can be made here: always on AWS; in the sandbox only as root."""
        if not self.uses_sandbox:
            return True
        from .sandbox import volumes_supported

        return volumes_supported()

    @contextmanager
    def _progress(self, title: str) -> Iterator[Progress]:
        if self.quiet:
            yield None
            return
        from . import ui

        with ui.progress(title) as update:
            yield update

    def _reporter(self) -> Any:
        from .recipe import CollectingReporter, TextReporter

        return CollectingReporter() if self.quiet else TextReporter(sys.stdout)

    def close(self) -> None:
        """Close the SSH connections this object opened."""
        self.ctx.close()

    def __enter__(self) -> EC2:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- instances --------------------------------------------------------------------------
    def instances(self, *, all: bool = False, tags: dict[str, str | None] | None = None) -> Listing[Instance]:
        """Instances (not terminated unless ``all``), with these tag values (None: any value); one EC2 call."""
        from .aws.models import LIVE_STATES

        found = self.cloud.instances(states=[*LIVE_STATES, "terminated"] if all else None, tags=tags)
        items = [Instance(self, i) for i in sorted(found, key=lambda i: (i.name or "", i.id))]
        if not tags:  # a complete listing doubles as the names tab completion offers
            self._names_cache = (time.monotonic(), sorted({i.name for i in found if i.name and i.state != "terminated"}))
        return Listing(
            items,
            title="Instances",
            columns=INSTANCE_COLUMNS,
            row=_instance_row,
            empty="No instances. Launch one with ec2.launch(NAME).",
        )

    def instance(self, name_or_id: str | Instance) -> Instance:
        """The instance with this Name tag or id; :class:`~ec2kit.errors.NotFound` suggests close names."""
        if isinstance(name_or_id, Instance):
            return name_or_id
        return Instance(self, self.cloud.instance(name_or_id))

    def __getitem__(self, name_or_id: str) -> Instance:
        """``ec2["gpu1"]``: the instance called gpu1 (``ec2["<TAB>`` completes names in IPython)."""
        return self.instance(name_or_id)

    def __contains__(self, name_or_id: object) -> bool:
        """``"gpu1" in ec2``: whether a (not terminated) instance has this name or id."""
        if not isinstance(name_or_id, str):
            return False
        return any(name_or_id in (i.name, i.id) for i in self.cloud.instances())

    def _instance_names(self, max_age: float = 5.0) -> list[str]:
        at, names = self._names_cache
        if time.monotonic() - at > max_age:
            found = self.cloud.instances()
            names = sorted({i.name for i in found if i.name})
            self._names_cache = (time.monotonic(), names)
        return names

    def _ipython_key_completions_(self) -> list[str]:
        """Instance names for ``ec2["<TAB>``."""
        return self._instance_names()

    def launch(
        self,
        name: str,
        *,
        type: str | None = None,
        image: str | None = None,
        disk: int | None = None,
        spot: bool = False,
        max_price: float | str | None = None,
        zone: str | None = None,
        tags: dict[str, str] | None = None,
        wait: bool = True,
    ) -> Instance:
        """Launch an instance named ``name`` and return once SSH answers (``inv launch``).

        ``type``, ``image`` (name or id), ``disk`` (root GB) and ``max_price`` default as on the
        command line (ec2kit.toml, then t3.medium and the latest Ubuntu LTS); ``spot`` asks for a
        one-time spot instance; ``tags`` are extra tags (``{"role": "web"}``).
        Example: ``ec2.launch("gpu1", type="g5.xlarge", spot=True, disk=80)``.
        """
        from .actions import launch

        default = self.settings.default
        if disk is None:
            disk = default("disk")
        if disk is not None and not 1 <= int(disk) <= 16384:
            raise ConfigError(f"disk={disk}: a disk is 1 to 16384 GB.", hint="Example: disk=60.")
        for key in tags or {}:
            if key == "Name" or key.lower().startswith(_RESERVED_TAGS):
                raise ConfigError(
                    f"Tag '{key}' is reserved: the Name tag is the instance's name, and ec2kit: and aws: tags are set "
                    "by ec2kit and AWS.",
                    hint="Pick another key, e.g. role.",
                )
        with self._progress(f"Launching {name}") as progress:
            info = launch(
                self.ctx,
                name,
                wait=wait,
                progress=progress,
                image=image or default("image"),
                disk=disk,
                type=type or default("type") or "t3.medium",
                spot=spot,
                max_price=max_price or default("max_price"),
                zone=zone,
                tags=dict(tags) if tags else None,
            )
        self._names_cache = (0.0, [])
        return Instance(self, info)

    # -- images, volumes, snapshots ----------------------------------------------------------
    def freeze(self, instance: str | Instance, *, image_name: str | None = None) -> Image:
        """Make an image of an instance through recipes/freeze.toml (``inv freeze``); waits until it is available.

        Named after the instance unless ``image_name``; launch from it with ``ec2.launch(NAME, image=...)``.
        """
        from .recipe import load_recipe, run_recipe

        inst = self.instance(instance)
        host = inst.name or inst.id
        report = run_recipe(
            self.ctx,
            load_recipe("freeze"),
            hosts=[host],
            vars={"image_name": image_name} if image_name else {},
            reporter=self._reporter(),
        )
        RecipeReport(report, "freeze").raise_for_failure()
        return self.cloud.image(image_name or host)

    def images(self) -> Listing[Image]:
        """Your images (AMIs)."""
        found = sorted(self.cloud.images(), key=lambda i: i.name or "")
        return Listing(
            found,
            title="Images",
            columns=("name", "id", "state", "created", "snapshots"),
            row=lambda i: (i.name, i.id, i.state, i.creation_date, ", ".join(i.snapshot_ids)),
            empty="No images yet. Make one with ec2.freeze(NAME).",
        )

    def image(self, name_or_id: str) -> Image:
        """The image with this name or id."""
        return self.cloud.image(name_or_id)

    def create_volume(
        self,
        instance: str | Instance,
        size: int | None = None,
        *,
        name: str | None = None,
        snapshot: str | None = None,
        mountpoint: str = DEFAULT_MOUNT,
    ) -> Volume:
        """Create a volume in the instance's zone, attach it, format it (blank ones) and mount it (``inv make-volume``).

        ``size`` in GB, or ``snapshot`` (name or id) to start from. Example:
        ``ec2.create_volume("base", 20, name="data")`` → mounted at /mnt/data, owned by the login user.
        """
        from .actions import make_volume

        if size is None and snapshot is None:
            raise ConfigError("create_volume needs a size in GB for a blank volume, or snapshot=NAME.")
        if size is not None and not 1 <= int(size) <= 16384:
            raise ConfigError(f"size={size}: a volume is 1 to 16384 GB.", hint="Example: ec2.create_volume(inst, 20).")
        inst = self.instance(instance)
        with self._progress(f"Making volume for {inst.label}") as progress:
            return make_volume(
                self.ctx, inst.id, size=size, name=name, snapshot=snapshot, mountpoint=mountpoint, progress=progress
            )

    def mount_volume(self, volume: str | Volume, instance: str | Instance, *, mountpoint: str = DEFAULT_MOUNT) -> Volume:
        """Attach an existing volume to an instance (if needed) and mount it (``inv mount-volume``)."""
        from .actions import mount_volume

        with self._progress(f"Mounting {_id(volume)}") as progress:
            return mount_volume(self.ctx, _id(volume), self.instance(instance).id, mountpoint=mountpoint, progress=progress)

    def detach_volume(self, volume: str | Volume, *, mountpoint: str = DEFAULT_MOUNT) -> Volume:
        """Unmount a volume on its instance, then detach it (``inv detach-volume``)."""
        from .actions import detach_volume

        with self._progress(f"Detaching {_id(volume)}") as progress:
            return detach_volume(self.ctx, _id(volume), mountpoint=mountpoint, progress=progress)

    def delete_volume(self, volume: str | Volume, *, mountpoint: str = DEFAULT_MOUNT) -> None:
        """Unmount and detach a volume if attached, then delete it (its data is gone; snapshot it first to keep it)."""
        vol = self.detach_volume(volume, mountpoint=mountpoint)
        self.cloud.delete_volume(vol)

    def snapshot(self, volume: str | Volume, *, name: str | None = None, wait: bool = False) -> Snapshot:
        """Snapshot a volume, detaching it cleanly first if attached (``inv snapshot``)."""
        from .actions import snapshot

        with self._progress(f"Snapshotting {_id(volume)}") as progress:
            snap: Snapshot = snapshot(self.ctx, _id(volume), name=name, wait=wait, progress=progress)
        return snap

    def volumes(self) -> Listing[Volume]:
        """Your EBS volumes."""
        found = sorted(self.cloud.volumes(), key=lambda v: v.name or "")
        return Listing(
            found,
            title="Volumes",
            columns=("name", "id", "size", "state", "zone", "attached to", "from snapshot"),
            row=lambda v: (v.name, v.id, f"{v.size} GB", v.state, v.zone, v.attached_to, v.snapshot_id),
            empty="No volumes. Make one with ec2.create_volume(INSTANCE, GB).",
        )

    def volume(self, name_or_id: str) -> Volume:
        """The volume with this Name tag or id."""
        return self.cloud.volume(name_or_id)

    def snapshots(self) -> Listing[Snapshot]:
        """Your EBS snapshots."""
        found = sorted(self.cloud.snapshots(), key=lambda s: s.name or "")
        return Listing(
            found,
            title="Snapshots",
            columns=("name", "id", "size", "state", "progress", "volume"),
            row=lambda s: (s.name, s.id, f"{s.size} GB", s.state, s.progress, s.volume_id),
            empty="No snapshots. Make one with ec2.snapshot(VOLUME).",
        )

    # -- recipes -------------------------------------------------------------------------------
    def recipes(self) -> Listing[RecipeInfo]:
        """The recipes in ./recipes and the built-in ones."""
        from .recipe import list_recipes

        return Listing(
            list_recipes(),
            title="Recipes",
            columns=("name", "description", "variables"),
            row=lambda r: (r.name, r.description, ", ".join(f"{k}={v!r}" for k, v in (r.vars or {}).items())),
            empty="No recipes found.",
        )

    def recipe(self, name_or_path: str) -> Recipe:
        """Load a recipe by name (./recipes, then the built-ins) or path: ``ec2.recipe("base").run(on="web1")``."""
        from .recipe import load_recipe

        return Recipe(self, load_recipe(name_or_path))

    # -- spot runs -------------------------------------------------------------------------------
    def spot_run(
        self,
        script: str | Path,
        *,
        files: str | Path | None = None,
        name: str | None = None,
        image: str | None = None,
        type: str | None = None,
        types: Sequence[str] = (),
        disk: int | None = None,
        snapshot: str | None = None,
        results: str | Path | None = None,
        max_price: float | str | None = None,
        retries: int = 0,
        monitor: str | None = None,
        detach: bool = False,
        keep: bool = False,
        max_hours: float | None = None,
        vars: dict[str, Any] | None = None,
    ) -> Run:
        """Run a script on a spot instance (``inv spot-run``): results sync to ``runs/RUN`` (or ``results``), everything
        is cleaned up at the end. Returns when the script ended (``detach=True``: once it started).

        Example: ``run = ec2.spot_run("train.sh", files="train.py", retries=1); run.metrics()["loss"].latest``.
        """
        from . import spotrun

        default = self.settings.default
        options = spotrun.SpotRunOptions(
            script=str(script),
            files=str(files) if files is not None else None,
            name=name,
            image=image or default("image"),
            type=type or default("type") or "m5.large",
            types=list(types) or list(default("types")),
            disk=disk if disk is not None else default("disk"),
            snapshot=snapshot,
            results=str(results) if results is not None else None,
            max_price=max_price or default("max_price"),
            retries=retries,
            monitor=monitor,
            detach=detach,
            keep=keep,
            max_hours=max_hours,
            vars=dict(vars or {}),
        )
        if self.quiet:
            options.out = options.say = _silent
        record = spotrun.spot_run(self.ctx, options)
        return Run(self, record.name, record)

    def runs(self, *, all: bool = False) -> Listing[Run]:
        """Spot runs, newest first (finished ones older than a week only with ``all``); detached runs are checked first."""
        from . import spotrun

        found = spotrun.list_runs(self.ctx)
        if not all:
            week_ago = time.time() - 7 * 86400
            found = [r for r in found if r.live or r.awaiting_pull or r.created_at >= week_ago]
        spotrun.refresh(self.ctx, found)
        return Listing(
            [Run(self, r.name, r) for r in found],
            title="Runs",
            columns=("name", "state", "type", "instance", "exit", "time", "cost", "metrics"),
            row=_run_row,
            empty="No runs yet. Start one with ec2.spot_run('train.sh').",
        )

    def cleanup(self, *, dry_run: bool = True) -> Listing[Leftover]:
        """What spot runs left behind (instances, volumes, spot requests of runs that are over), as ``inv cleanup``
        lists it; ``dry_run=False`` removes them. Your named machines, volumes and snapshots are never touched."""
        from . import spotrun

        return Listing(
            spotrun.cleanup(self.ctx, dry_run=dry_run),
            title="Leftovers" if dry_run else "Removed",
            columns=("kind", "id", "name", "why"),
            row=lambda x: (x.kind, x.id, x.name, x.reason),
            empty="Nothing to clean up.",
        )

    def run(self, name: str) -> Run:
        """The spot run called ``name``; NotFound with close names otherwise."""
        from .runs import Runs

        return Run(self, name, Runs(self.settings.runs_db).get(name))

    def __repr__(self) -> str:
        ctx = self.ctx
        if ctx._cloud is None:
            mode = {True: "sandbox", False: "AWS", None: "AWS, or the sandbox without credentials"}[self.settings.sandbox]
            return f"<EC2 {mode} (not contacted yet), home {self.settings.home}>"
        where = "sandbox" if ctx.sandbox is not None else f"AWS profile {self.settings.profile or 'default'}"
        return f"<EC2 {where}, region {ctx.cloud.region}, home {self.settings.home}>"


def _silent(_line: str) -> None:
    pass


def _id(thing: str | Any) -> str:
    return thing if isinstance(thing, str) else str(thing.id)
