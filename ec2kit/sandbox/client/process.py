"""Start, find and stop the sandbox daemon for a state directory (one per ``settings.sandbox_dir``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import SandboxError
from ...fsutil import file_lock
from .info import SANDBOX_REGION, SandboxInfo, port_answers, request, volumes_supported

if TYPE_CHECKING:
    from ...settings import Settings

START_TIMEOUT = 30.0  # ~4 s idle; 10-12 s measured on a loaded 2-core machine
PACKAGE_ROOT = Path(__file__).resolve().parents[3]  # the folder holding ec2kit/, for the daemon's PYTHONPATH


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
    if not port_answers(state["endpoint_url"]) or request(state["control_url"] + "/status", timeout=5)[0] != 200:
        return None
    return SandboxInfo(state["endpoint_url"], state["control_url"], state.get("region", SANDBOX_REGION), root, int(state["pid"]))


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


def _moto_installed() -> bool:
    """Whether this Python can import moto (the sandbox daemon's only extra dependency)."""
    import importlib.util

    try:
        return importlib.util.find_spec("moto") is not None
    except (ImportError, ValueError):
        return False


def ensure_running(settings: Settings) -> SandboxInfo:
    """Return the running sandbox for ``settings.sandbox_dir``, starting its daemon if needed.

    Waits up to 30 s for the daemon; on failure raises SandboxError with the log's last lines.
    """
    root = Path(settings.sandbox_dir).expanduser().resolve()
    info = _live_info(root)
    if info:
        return info
    if not _moto_installed():  # the daemon would only say so in its log
        raise SandboxError(
            "The local sandbox needs moto's server, which is not installed in this Python "
            f"({sys.executable}), so it cannot start.",
            hint="Install it with: pip install 'ec2kit[sandbox]'; or configure AWS credentials and set EC2KIT_SANDBOX=0.",
        )
    with file_lock(root / ".start.lock"):
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
    request(state["control_url"] + "/shutdown", "POST", timeout=5)
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


def control(settings_or_info: Settings | SandboxInfo) -> SandboxInfo:
    """The SandboxInfo given, or the running sandbox of these Settings (started if need be)."""
    if isinstance(settings_or_info, SandboxInfo):
        return settings_or_info
    return ensure_running(settings_or_info)


def status(settings: Settings) -> dict[str, Any]:
    """The sandbox's state: running?, endpoints, hosts (instance id/state/port/pid), volumes supported."""
    root = Path(settings.sandbox_dir).expanduser().resolve()
    info = _live_info(root)
    if info is None:
        return {"running": False, "dir": str(root), "volumes": volumes_supported(), "hosts": []}
    code, body = request(info.control_url + "/status")
    if code != 200 or not isinstance(body, dict):
        return {"running": False, "dir": str(root), "volumes": volumes_supported(), "hosts": []}
    return body
