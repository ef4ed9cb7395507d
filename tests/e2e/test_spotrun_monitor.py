"""Monitor mode on two real sshd hosts: the run key can only rsync into its directory."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from ec2kit.sandbox.daemon.sshd import SshdHost
from ec2kit.spotrun.monitor import authorize, final_push, install_pusher, make_run_key, revoke_key
from ec2kit.ssh import SshTarget, Transport, connect


class MonitorHost(SshdHost):
    """A plain sshd host that also reads ~/.ssh/authorized_keys in its own home (as on AWS)."""

    def write_config(self) -> Path:
        config = super().write_config()
        text = config.read_text().replace(
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'} {self.home / '.ssh' / 'authorized_keys'}",
        )
        config.write_text(text)
        return config


@pytest.fixture(scope="module")
def monitor_sshd(tmp_path_factory, user_key):
    host = MonitorHost(tmp_path_factory.mktemp("monitor"), authorized_keys=[user_key.with_suffix(".pub").read_text()])
    host.start()
    yield host
    host.stop()


def host_for(sshd: SshdHost, key: Path, alias: str, known: Path) -> Transport:
    return connect(SshTarget("127.0.0.1", sshd.port, sshd.user, key, alias, known, alias))


def run_key_ssh(monitor_sshd, key: Path, *args: str) -> subprocess.CompletedProcess:
    ssh = [
        "ssh",
        "-i",
        str(key),
        "-p",
        str(monitor_sshd.port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
    ]
    return subprocess.run([*ssh, f"{monitor_sshd.user}@127.0.0.1", *args], capture_output=True, text=True, timeout=20)


def rsync_with(monitor_sshd, key: Path, src: Path, dest: str) -> subprocess.CompletedProcess:
    e = f"ssh -i {key} -p {monitor_sshd.port} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes -o LogLevel=ERROR"
    return subprocess.run(
        ["rsync", "-az", "-e", e, str(src), f"{monitor_sshd.user}@127.0.0.1:{dest}"], capture_output=True, text=True, timeout=20
    )


def test_run_key_can_rsync_into_its_directory_and_nowhere_else(monitor_sshd, user_key, tmp_path):
    monitor = host_for(monitor_sshd, user_key, "i-monitor", tmp_path / "kh")
    key = make_run_key(tmp_path / "keys", "mon1")
    directory = authorize(monitor, "mon1", key.with_suffix(".pub").read_text())
    assert directory == f"{monitor_sshd.home}/ec2kit-runs/mon1"
    (tmp_path / "f.txt").write_text("ok")
    assert rsync_with(monitor_sshd, key, tmp_path / "f.txt", "").returncode == 0
    assert (Path(directory) / "f.txt").read_text() == "ok"
    # outside the directory: refused, nothing written
    rsync_with(monitor_sshd, key, tmp_path / "f.txt", "../escaped.txt")
    rsync_with(monitor_sshd, key, tmp_path / "f.txt", f"{monitor_sshd.home}/abs.txt")
    assert not (monitor_sshd.home / "ec2kit-runs" / "escaped.txt").exists()
    assert not (monitor_sshd.home / "abs.txt").exists()
    assert not any(p.name in ("escaped.txt", "abs.txt") for p in monitor_sshd.home.rglob("*"))
    # no shell, no reading back
    shell = run_key_ssh(monitor_sshd, key, "touch", str(monitor_sshd.home / "pwned"))
    assert shell.returncode != 0 and not (monitor_sshd.home / "pwned").exists()
    e = f"ssh -i {key} -p {monitor_sshd.port} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes"
    back = subprocess.run(
        ["rsync", "-az", "-e", e, f"{monitor_sshd.user}@127.0.0.1:f.txt", str(tmp_path / "back.txt")],
        capture_output=True,
        timeout=20,
    )
    assert back.returncode != 0 and not (tmp_path / "back.txt").exists()
    revoke_key(monitor, "mon1")
    assert "ec2kit-run:mon1" not in (monitor_sshd.home / ".ssh" / "authorized_keys").read_text()
    assert rsync_with(monitor_sshd, key, tmp_path / "f.txt", "").returncode != 0


def test_pusher_on_the_spot_host_sends_results_to_the_monitor(monitor_sshd, sshd_host, user_key, tmp_path):
    monitor = host_for(monitor_sshd, user_key, "i-monitor2", tmp_path / "kh")
    spot = host_for(sshd_host, user_key, "i-spot", tmp_path / "kh")
    key = make_run_key(tmp_path / "keys", "mon2")
    directory = Path(authorize(monitor, "mon2", key.with_suffix(".pub").read_text()))
    host_key = monitor_sshd.host_public_key().split()
    install_pusher(
        spot,
        "mon2",
        key,
        user=monitor_sshd.user,
        host="127.0.0.1",
        port=monitor_sshd.port,
        host_key=f"{host_key[0]} {host_key[1]}",
        interval=0.5,
    )
    results = sshd_host.home / "ec2kit" / "mon2" / "results"
    (results / "metrics.csv").write_text("1,0.5\n")
    written = time.monotonic()
    while not (directory / "metrics.csv").exists():
        assert time.monotonic() - written < 10, (sshd_host.home / "ec2kit" / "mon2" / "push.log").read_text()
        time.sleep(0.05)
    (results / "final.json").write_text("{}")
    (sshd_host.home / "ec2kit" / "mon2" / "status").write_text('{"state": "succeeded", "ended_at": "now"}\n')
    final_push(spot, "mon2")
    assert (directory / "final.json").exists()
    deadline = time.monotonic() + 5  # the loop sees the ended status and exits by itself
    while "push.sh" in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout:
        assert time.monotonic() < deadline, "push loop still running after the run ended"
        time.sleep(0.2)
    monitor.close()
    spot.close()
