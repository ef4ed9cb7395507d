"""Instances from Python: live views with ssh(), put/get, stop/start/terminate, and completion of names."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import display
from ..defaults import DEFAULT_MOUNT
from ..errors import NotFound
from ..ssh.transport import Result
from .shown import _Shown, identifier

if TYPE_CHECKING:
    from ..aws.models import Image, Volume
    from ..aws.models import Instance as InstanceInfo
    from ..idle import AutostopSetting
    from ..jupyter import JupyterServer
    from ..ssh import Transport
    from ..workdir import SyncReport
    from .ec2 import EC2
    from .runs import Run


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
        #: seconds its idle watcher has seen no work, as ``ec2.instances()`` read it (None: not read, or not armed)
        self.idle_seconds: int | None = None

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
    def autostop(self) -> AutostopSetting | None:
        """The idle autostop ec2kit set on it (its ``ec2kit:idle`` tag), or None when it never set one."""
        from ..idle import AutostopSetting
        from ..tags import IDLE_TAG

        return AutostopSetting.from_tag(self._info.tags.get(IDLE_TAG))

    @property
    def snapshot(self) -> InstanceInfo:
        """The snapshot as last read (no AWS call: a listing's rows come from its one DescribeInstances)."""
        return self._info

    @property
    def info(self) -> InstanceInfo:
        """The current snapshot (re-read when older than :attr:`max_age`)."""
        if not self._gone and time.monotonic() - self._read_at > self.max_age:
            self.refresh()
        return self._info

    def refresh(self) -> Instance:
        """Re-read the instance from EC2 now; returns itself."""
        from ..aws.models import LIVE_STATES

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

        return shlex.join(self._ec2.ssh_command(self, ports=ports))

    def jupyter(self, **options: Any) -> JupyterServer:
        """JupyterLab here, tunnelled to this machine: ``inst.jupyter().url`` (see :meth:`EC2.jupyter`)."""
        return self._ec2.jupyter(self, **options)

    def sync(self, directory: str | Path | None = None) -> SyncReport:
        """Send a local directory to ``~/work/<its name>`` here (see :meth:`EC2.sync`); an unchanged tree sends no file."""
        return self._ec2.sync(self, directory)

    def exec(self, script: str | Path, **options: Any) -> Run:
        """Run a script here, recorded like a spot run (see :meth:`EC2.exec`); this instance is never stopped or
        terminated by it. Example: ``inst.exec("train.sh", detach=True, queue=True)``."""
        return self._ec2.exec(self, script=script, **options)

    # -- lifecycle (the CLI's verbs) ------------------------------------------------------
    def stop(self, *, wait: bool = True) -> Instance:
        """Stop it (its disk is kept); waits until stopped unless ``wait=False``. Spot instances cannot stop."""
        return self._set(self._ec2.stop(self, wait=wait).snapshot)

    def start(self, *, wait: bool = True) -> Instance:
        """Start it; returns once SSH answers (``wait=False``: once EC2 accepted the start)."""
        return self._set(self._ec2.start(self, wait=wait).snapshot)

    def terminate(self, *, wait: bool = False) -> Instance:
        """Terminate it (its spot request is cancelled first; the root disk is deleted)."""
        return self._set(self._ec2.terminate(self, wait=wait).snapshot)

    def change_type(self, type: str) -> Instance:
        """Change the type of a stopped instance, e.g. ``inst.change_type("g5.2xlarge")``."""
        return self._set(self._ec2.change_type(self, type).snapshot)

    def freeze(self, image_name: str | None = None) -> Image:
        """Make an image of it (see :meth:`EC2.freeze`)."""
        image: Image = self._ec2.freeze(self, image_name=image_name)
        return image

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

    from ..ui import human_duration

    lt = info.launch_time
    if info.state != "running" or not isinstance(lt, datetime):
        return ""
    lt = lt if lt.tzinfo else lt.replace(tzinfo=timezone.utc)
    return human_duration((datetime.now(timezone.utc) - lt).total_seconds())


def _autostop_cell(i: Instance) -> str:
    setting = i.autostop
    return setting.tag if setting is not None and setting.armed else ""


def _idle_cell(i: Instance) -> str:
    from ..ui import human_duration

    if i.idle_seconds is None:
        return "?" if i.autostop is not None and i.autostop.armed and i._info.state == "running" else ""
    return human_duration(i.idle_seconds)


def _instance_row(i: Instance) -> tuple[Any, ...]:
    from ..aws.costs import BILLED_STATES, dollars

    info = i._info  # the listing's own snapshot: one DescribeInstances for the whole table
    price = dollars(info.hourly_price) if info.state in BILLED_STATES else ""
    return (
        info.name,
        info.id,
        info.type,
        info.state,
        info.lifecycle,
        info.public_ip,
        info.private_ip,
        _uptime(info),
        price,
        _autostop_cell(i),
        _idle_cell(i),
    )


INSTANCE_COLUMNS = ("name", "id", "type", "state", "lifecycle", "public ip", "private ip", "uptime", "$/h", "autostop", "idle")


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
