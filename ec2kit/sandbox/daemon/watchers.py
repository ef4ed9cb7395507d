"""The machines' own timers: what systemd runs on an instance, the sandbox runs from one loop.

On AWS, ec2kit's idle watcher (``autostop.sh``) is run by a systemd timer every ``EVERY`` seconds.
Sandbox hosts are plain sshd processes with no systemd, so this loop runs exactly the same script,
inside the host's namespaces with the machine's environment (``SshdHost.spawn``), every ``EVERY``
seconds read from the host's ``autostop/autostop.conf`` (``EC2KIT_IDLE_CHECK`` when ec2kit wrote it).
Its power-off goes to the control server like every sandbox ``shutdown -h now``.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
import time
from pathlib import Path

from .reconciler import Reconciler

log = logging.getLogger("ec2kit.sandbox")
EVERY = re.compile(r"^EVERY=(\d+)\s*$", re.M)
WINDOW = re.compile(r"^WINDOW=(\d+)\s*$", re.M)


def watcher_dir(host_root: Path) -> Path:
    """Where the watcher lives on a sandbox host (``/var/lib/ec2kit/autostop`` on AWS): the host's own directory."""
    return host_root / "autostop"


class Watchers:
    """Runs each running host's ``autostop/autostop.sh`` every ``EVERY`` s (its conf says), one at a time."""

    def __init__(self, reconciler: Reconciler, tick: float = 0.5) -> None:
        self.reconciler, self.tick = reconciler, tick
        self.last_run: dict[str, float] = {}
        self.runs = 0  # completed watcher runs, for tests that wait for the next one

    def due(self, instance_id: str, root: Path, now: float) -> bool:
        try:
            conf = (watcher_dir(root) / "autostop.conf").read_text()
        except OSError:
            return False
        window, every = WINDOW.search(conf), EVERY.search(conf)
        if not window or int(window.group(1)) <= 0 or not (watcher_dir(root) / "autostop.sh").exists():
            return False
        interval = max(1, int(every.group(1))) if every else 60
        return now - self.last_run.get(instance_id, 0.0) >= interval

    def run_once(self) -> None:
        """One pass: every host whose watcher is due runs it (and is waited for, up to 60 s)."""
        with self.reconciler.lock:
            hosts = [(i, h) for i, h in self.reconciler.hosts.items() if h.running()]
        for instance_id, host in hosts:
            now = time.monotonic()
            if not self.due(instance_id, host.root, now):
                continue
            self.last_run[instance_id] = now
            script = watcher_dir(host.root) / "autostop.sh"
            proc = host.spawn(
                ["bash", str(script)],
                env={"EC2KIT_AUTOSTOP_DIR": str(watcher_dir(host.root)), "EC2KIT_HOMES": str(host.home)},
                log_name="autostop.out",
            )
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                log.warning("%s: autostop watcher ran over 60 s: killed", instance_id)
            self.runs += 1

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: a pass every ``tick`` s (errors logged, never fatal)."""
        while not stop.wait(self.tick):
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - the next tick tries again
                log.exception("autostop watchers failed")
