"""The local sandbox cloud: moto's EC2 server plus one real sshd per running instance.

A newcomer with no AWS account (and every test) uses it::

    from ec2kit.sandbox import ensure_running, Resolver
    info = ensure_running(settings)          # starts the daemon once, reuses it after
    ec2 = info.client()                      # boto3 EC2 client for the sandbox
    target = Resolver(info).ssh_target(instance_id, key_file=..., known_hosts=...)

Only stdlib is imported here; moto and boto3 live in the daemon process.

What the sandbox imitates of a real AWS account (knobs in ``knobs.py``, re-exported here; all
back to their defaults on ``reset()``):

- "What is my IP": ``GET info.checkip_url`` answers the caller's public IPv4 + "\n" like
  https://checkip.amazonaws.com (default 198.51.100.7; ``set_caller_ip``).
- Security groups gate SSH (``enforce_ssh_rules``, on by default: ec2kit's own launches admit
  the caller IP /32 it learns from ``checkip_url``, as on AWS): without a tcp/22 rule for the caller IP (or, with
  ``Resolver.ssh_target(..., from_instance=…)``, a rule naming the source's group or private IP)
  the address handed out is a blackhole port and connecting times out, as on AWS.
- SSM public parameters for Canonical Ubuntu 24.04/22.04 (amd64, arm64) and the Deep Learning
  Base OSS Nvidia Driver GPU AMIs (x86_64, arm64), naming images describe_images knows.
- Service Quotas' EC2 vCPU quotas (young-account defaults: 5 Standard, 0 for G/VT, P, Inf, F,
  X, DL, Trn, High Memory), settable (``set_quota``), enforced on RunInstances,
  RequestSpotInstances and CreateFleet (VcpuLimitExceeded / MaxSpotInstanceCountExceeded) for
  quotas a test set or all (``enforce_quotas``); GetServiceQuota answers what is enforced (a
  roomy 1024 for a quota nobody set while not all are enforced); AccessDeniedException
  (``deny_quota_access``).
- CreateFleet with ``DryRun=True`` answers DryRunOperation (moto's own) and launches nothing.
- Capacity (``set_capacity``): InsufficientInstanceCapacity for empty (type, zone, market)
  pools; spot requests wait ``open``/capacity-not-available; instant fleets skip empty pools and
  list them in ``Errors``; ``interrupt_after=S`` makes a pool interrupt its spot instances.
- Spot interruptions (``interrupt``): the 2-minute notice in instance metadata, then terminate,
  or stop (InstanceInterruptionBehavior=stop, disk kept) and start again with a new public IP on
  ``capacity_returns`` or after ``restart_after`` s.
- Throttling (``knobs.throttle(settings, seconds)``): every API call answers HTTP 503
  RequestLimitExceeded for the window; ``knobs.throttled()`` lists the calls refused and answered.

Not imitated: IAM and permissions beyond the quota AccessDenied switch; security groups for
anything but SSH, egress rules, NACLs, IPv6; real public IPs (instances live on 127.0.0.1
ports); quota usage of stopped or open-request capacity; persistent requests relaunching
a *terminated* instance; spot prices and price-driven interruptions; hibernation; the
instance-type/AMI validation AWS does (see docs/ARCHITECTURE.md and /work/shared/NOTES.md).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import SandboxError
from .volumes import require_volumes, volumes_supported

if TYPE_CHECKING:
    from ..settings import Settings
    from ..ssh.target import SshTarget

__all__ = [
    "SANDBOX_CREDENTIALS",
    "SANDBOX_REGION",
    "SandboxInfo",
    "Resolver",
    "ensure_running",
    "up",
    "down",
    "status",
    "interrupt",
    "reset",
    "volumes_supported",
    "require_volumes",
    "account",
    "caller_ip",
    "set_caller_ip",
    "enforce_ssh_rules",
    "set_quota",
    "enforce_quotas",
    "deny_quota_access",
    "set_capacity",
    "capacity_returns",
]

SANDBOX_REGION = "us-east-1"
SANDBOX_CREDENTIALS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}
START_TIMEOUT = 30.0  # ~4 s idle; 10-12 s measured on a loaded 2-core machine
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SandboxInfo:
    """Where a running sandbox answers: moto's EC2 endpoint and the control server."""

    endpoint_url: str
    control_url: str
    region: str
    dir: Path
    pid: int

    @property
    def checkip_url(self) -> str:
        """The sandbox's https://checkip.amazonaws.com: the caller's public IPv4 + newline."""
        return f"{self.control_url}/checkip"

    def client(self, service: str = "ec2") -> Any:
        """A boto3 client for the sandbox (dummy credentials, us-east-1)."""
        import boto3

        make: Any = boto3.client  # any service name (the stubs want a literal one)
        return make(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=SANDBOX_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=SANDBOX_CREDENTIALS["aws_secret_access_key"],
        )


# small HTTP helpers ---------------------------------------------------------------
def _request(url: str, method: str = "GET", timeout: float = 10.0) -> tuple[int, Any]:
    """(status, JSON body) of a request to the control server; status 0 when unreachable."""
    import urllib.error
    import urllib.request  # lazy: ~30 ms, and the CLI imports this package at start-up

    req = urllib.request.Request(url, method=method, data=b"" if method in ("POST", "PUT") else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read() or b"null")
        except ValueError:
            return err.code, None
    except (OSError, ValueError):
        return 0, None


def _port_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=1):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (reaps it first if it is our exited child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_daemon(pid: int, root: Path) -> bool:
    """True when ``pid`` is the sandbox daemon for ``root`` (never signal a recycled pid)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        text = " ".join(a.decode(errors="replace") for a in argv)
    except OSError:
        done = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True)
        text = done.stdout
    return "ec2kit.sandbox.daemon" in text and str(root) in text


def _signal_daemon(pid: int, root: Path, sig: int) -> bool:
    """Send ``sig`` to the daemon if ``pid`` still is it; False when it is gone."""
    if not _is_daemon(pid, root):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _log_tail(root: Path, lines: int = 15) -> str:
    log = root / "daemon.log"
    if not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _read_state(root: Path, *, strict: bool = False) -> dict[str, Any] | None:
    """root/state.json, or None when there is none. A file that cannot be read is an error when
    ``strict``: starting a new daemon over it would wipe every sandbox instance's files."""
    path = root / "state.json"
    try:
        state = json.loads(path.read_text())
        if not isinstance(state, dict) or not {"pid", "endpoint_url", "control_url"} <= state.keys():
            raise ValueError("it lacks pid, endpoint_url or control_url")
        return state
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        if not strict:
            return None
        raise SandboxError(
            f"The sandbox's state file {path} cannot be read ({err}). ec2kit will not start a new sandbox over it: "
            "that would discard every sandbox instance's files.",
            hint="To reset the sandbox on purpose (its instances, images and volumes are lost): inv sandbox.down",
        ) from None


def _daemons_for(root: Path) -> list[int]:
    """Pids of sandbox daemons serving ``root`` (found without state.json)."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        text = " ".join(a.decode(errors="replace") for a in argv)
        if "ec2kit.sandbox.daemon" in text and str(root) in text:
            pids.append(int(entry.name))
    return pids


def _live_info(root: Path) -> SandboxInfo | None:
    """The running sandbox described by root/state.json, or None if it is gone."""
    state = _read_state(root, strict=True)
    if not state or not _pid_alive(int(state.get("pid", 0))):
        return None
    if not _port_answers(state["endpoint_url"]) or _request(state["control_url"] + "/status", timeout=5)[0] != 200:
        return None
    return SandboxInfo(state["endpoint_url"], state["control_url"], state.get("region", SANDBOX_REGION), root, int(state["pid"]))


@contextmanager
def _start_lock(root: Path) -> Iterator[None]:
    """Serialise starts so two processes never spawn two daemons for one directory."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".start.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _spawn(root: Path) -> int:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
    with open(root / "daemon.log", "a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ec2kit.sandbox.daemon", "--dir", str(root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd=str(root),
            env=env,
        )
    return proc.pid


def ensure_running(settings: Settings) -> SandboxInfo:
    """Return the running sandbox for ``settings.sandbox_dir``, starting its daemon if needed.

    Waits up to 30 s for the daemon; on failure raises SandboxError with the log's last lines.
    """
    root = Path(settings.sandbox_dir).expanduser().resolve()
    info = _live_info(root)
    if info:
        return info
    with _start_lock(root):
        info = _live_info(root)
        if info:
            return info
        stale = _read_state(root)
        if stale and _pid_alive(int(stale.get("pid", 0))):  # alive but not answering: replace it
            _signal_daemon(int(stale["pid"]), root, signal.SIGTERM)
        (root / "state.json").unlink(missing_ok=True)
        pid = _spawn(root)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            state = _read_state(root)
            if state and state.get("pid") == pid:
                return SandboxInfo(state["endpoint_url"], state["control_url"], state.get("region", SANDBOX_REGION), root, pid)
            if not _pid_alive(pid):
                tail = _log_tail(root)
                hint = "Install it with: pip install 'ec2kit[sandbox]'." if "moto" in tail and "not installed" in tail else None
                raise SandboxError(f"The sandbox daemon exited while starting (log: {root / 'daemon.log'}):\n{tail}", hint=hint)
            time.sleep(0.05)
        _signal_daemon(pid, root, signal.SIGTERM)
        raise SandboxError(
            f"The sandbox daemon did not start within {START_TIMEOUT:.0f}s (log: {root / 'daemon.log'}):\n{_log_tail(root)}",
            hint="Look at the log above; `inv sandbox.down` then try again.",
        )


def up(settings: Settings) -> SandboxInfo:
    """Start the sandbox (or find it running) and return where it answers."""
    return ensure_running(settings)


def down(settings: Settings, timeout: float = 15.0) -> bool:
    """Stop the sandbox: every sshd host, loop device and moto. Returns False if it was not running."""
    root = Path(settings.sandbox_dir).expanduser().resolve()
    state = _read_state(root)
    pid = int((state or {}).get("pid", 0))
    if state is None and (root / "state.json").exists():  # unreadable: stop whatever serves this directory
        pids = _daemons_for(root)
        for other in pids:
            _signal_daemon(other, root, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
            time.sleep(0.05)
        for other in pids:
            _signal_daemon(other, root, signal.SIGKILL)
        (root / "state.json").unlink(missing_ok=True)
        return bool(pids)
    if not state or not _pid_alive(pid) or not _is_daemon(pid, root):
        (root / "state.json").unlink(missing_ok=True)
        return False
    _request(state["control_url"] + "/shutdown", "POST", timeout=5)
    deadline = time.monotonic() + timeout
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            if not _signal_daemon(pid, root, sig):
                break
            deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.05)
        if not _pid_alive(pid):
            break
    (root / "state.json").unlink(missing_ok=True)
    return True


def _control(settings_or_info: Settings | SandboxInfo) -> SandboxInfo:
    if isinstance(settings_or_info, SandboxInfo):
        return settings_or_info
    return ensure_running(settings_or_info)


def status(settings: Settings) -> dict[str, Any]:
    """The sandbox's state: running?, endpoints, hosts (instance id/state/port/pid), volumes supported."""
    root = Path(settings.sandbox_dir).expanduser().resolve()
    info = _live_info(root)
    if info is None:
        return {"running": False, "dir": str(root), "volumes": volumes_supported(), "hosts": []}
    code, body = _request(info.control_url + "/status")
    if code != 200 or not isinstance(body, dict):
        return {"running": False, "dir": str(root), "volumes": volumes_supported(), "hosts": []}
    return body


def interrupt(
    settings: Settings | SandboxInfo, instance_id: str, delay: float = 120.0, *, restart_after: float | None = None
) -> dict[str, Any]:
    """Schedule a spot interruption: the notice shows now, the instance is reclaimed after ``delay`` s
    (AWS's 120 by default; 0 at once with no notice, which AWS may also do). Reclaimed means
    terminated, or stopped when its request asked InstanceInterruptionBehavior=stop; a stopped one
    starts again after ``restart_after`` s, or when ``capacity_returns(settings, instance_id)``."""
    info = _control(settings)
    url = f"{info.control_url}/interrupt/{instance_id}?delay={float(delay)}"
    if restart_after is not None:
        url += f"&restart_after={float(restart_after)}"
    code, body = _request(url, "POST")
    if code != 200:
        raise SandboxError(f"Could not interrupt {instance_id} in the sandbox: {(body or {}).get('error', code)}.")
    return body


def reset(settings: Settings | SandboxInfo) -> None:
    """Wipe the sandbox's EC2 state (moto reset) and drop every host, volume and image file."""
    info = _control(settings)
    code, body = _request(f"{info.control_url}/reset", "POST", timeout=60)
    if code != 200:
        raise SandboxError(f"The sandbox reset failed: {(body or {}).get('error', code)}. See {info.dir / 'daemon.log'}.")


class Resolver:
    """Finds a sandbox instance's sshd: ``Resolver(info).ssh_target(instance_id, key_file=…, known_hosts=…)``."""

    def __init__(self, info: SandboxInfo | Settings) -> None:
        self.info = _control(info)

    def address(self, instance_id: str, *, from_instance: str | None = None) -> dict[str, Any] | None:
        """{"host","port","user"} of the instance's sshd now, or None when it is not running.

        With SSH enforcement on, the port may be a blackhole (``"filtered": True``) when no security
        group rule lets this machine (or instance ``from_instance``) in."""
        query = f"?from={from_instance}" if from_instance else ""
        code, body = _request(f"{self.info.control_url}/address/{instance_id}{query}")
        if code == 200 and isinstance(body, dict):
            return body
        if code == 0:
            raise SandboxError(
                f"The sandbox at {self.info.control_url} does not answer.", hint="Restart it: `inv sandbox.down`, then retry."
            )
        return None

    def ssh_target(
        self,
        instance_id: str,
        *,
        key_file: Path,
        known_hosts: Path,
        name: str = "",
        timeout: float = 10,
        from_instance: str | None = None,
    ) -> SshTarget:
        """The SshTarget of a running sandbox instance, waiting up to ``timeout`` s for its sshd
        (as seen from this machine, or from instance ``from_instance``: security groups decide)."""
        from ..ssh.target import SshTarget

        deadline = time.monotonic() + timeout
        while True:
            address = self.address(instance_id, from_instance=from_instance)
            if address:
                return SshTarget(
                    host=address["host"],
                    port=int(address["port"]),
                    user=address["user"],
                    key_file=Path(key_file),
                    alias=instance_id,
                    known_hosts=Path(known_hosts),
                    name=name,
                )
            if time.monotonic() >= deadline:
                raise SandboxError(
                    f"Sandbox instance {name + ' ' if name else ''}({instance_id}) has no running SSH server after {timeout:.0f}s.",
                    hint="Is it running? Check `inv instances`; start it with `inv start NAME`.",
                )
            time.sleep(0.1)


from .knobs import (  # noqa: E402  (they use SandboxInfo, _control and _request above)
    account,
    caller_ip,
    capacity_returns,
    deny_quota_access,
    enforce_quotas,
    enforce_ssh_rules,
    set_caller_ip,
    set_capacity,
    set_quota,
)
