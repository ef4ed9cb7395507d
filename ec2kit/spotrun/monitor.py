"""Monitor mode (fastec2's od1): the spot instance pushes results to an always-on instance.

A key pair is generated locally for the run alone. Its public key goes into the monitor's
``~/.ssh/authorized_keys`` as ``command="rrsync -wo ~/ec2kit-runs/RUN",restrict`` (rsync
writes into that one directory, nothing else: no shell, no forwarding); its private key is
uploaded to the spot instance, which runs an rsync loop (templates/spot-run/push.sh.j2).
The line is removed from authorized_keys and the key deleted when the run ends.
The user's own private key never leaves this machine.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RemoteError

if TYPE_CHECKING:
    from ..aws.models import Instance
    from ..context import Context
    from ..runs import RunRecord
    from ..ssh import SshTarget, Transport

AUTHORIZED_KEYS = "~/.ssh/authorized_keys"


def key_comment(run: str) -> str:
    """The comment that marks the run's line in the monitor's authorized_keys."""
    return f"ec2kit-run:{run}"


def make_run_key(directory: Path, run: str) -> Path:
    """Generate the run's own ed25519 key pair in ``directory``; returns the private key path."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = directory / "monitor_key"
    for old in (key, key.with_suffix(".pub")):
        old.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key_comment(run), "-f", str(key)],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    return key


def authorized_line(run: str, public_key: str, directory: str) -> str:
    """The authorized_keys line that lets the run key rsync into ``directory`` only (pure)."""
    key_type, key_data = public_key.split()[:2]
    return f'command="rrsync -wo {directory}",restrict {key_type} {key_data} {key_comment(run)}'


def authorize(monitor: Transport, run: str, public_key: str) -> str:
    """Create ~/ec2kit-runs/RUN on the monitor and admit the run key for it; returns the directory."""
    directory = monitor.expand(f"~/ec2kit-runs/{run}")
    line = authorized_line(run, public_key, directory)
    keys = monitor.expand(AUTHORIZED_KEYS)
    monitor.run(
        f"mkdir -p {shlex.quote(directory)} && mkdir -p -m 700 {shlex.quote(str(Path(keys).parent))} && "
        f"touch {shlex.quote(keys)} && chmod 600 {shlex.quote(keys)} && "
        f"grep -v -F {shlex.quote(key_comment(run))} {shlex.quote(keys)} > {shlex.quote(keys)}.ec2kit; "
        f"echo {shlex.quote(line)} >> {shlex.quote(keys)}.ec2kit && mv {shlex.quote(keys)}.ec2kit {shlex.quote(keys)}"
    )
    return directory


def revoke_key(monitor: Transport, run: str) -> None:
    """Remove the run key's line from the monitor's authorized_keys."""
    keys = monitor.expand(AUTHORIZED_KEYS)
    q = shlex.quote(keys)
    monitor.run(f"[ -f {q} ] || exit 0; grep -v -F {shlex.quote(key_comment(run))} {q} > {q}.ec2kit; mv {q}.ec2kit {q}")


def install_pusher(
    spot: Transport, run: str, private_key: Path, *, user: str, host: str, port: int, host_key: str, interval: float = 2.0
) -> None:
    """Put the run key, the monitor's pinned host key and push.sh on the spot instance, start it."""
    from ..recipe.render import environment
    from .commands import TEMPLATES, check_run_name

    script = (
        environment(TEMPLATES)
        .get_template("push.sh.j2")
        .render(run=check_run_name(run), user=user, host=host, port=port, interval=interval)
    )
    base = f"~/ec2kit/{run}"
    spot.run(f'mkdir -p -m 700 "$HOME/ec2kit/{run}/.monitor" "$HOME/ec2kit/{run}/results"')
    spot.put_bytes(private_key.read_bytes(), f"{base}/.monitor/key", mode=0o600)
    known = f"[{host}]:{port}" if port != 22 else host
    spot.put_bytes(f"{known} {host_key}\n".encode(), f"{base}/.monitor/known_hosts", mode=0o600)
    spot.put_bytes(script.encode(), f"{base}/push.sh", mode=0o755)
    # Braces: only the pusher goes to the background, so this exec returns at once.
    spot.run(f'cd "$HOME/ec2kit/{run}" && {{ setsid nohup bash push.sh > push.log 2>&1 < /dev/null & }}')


def final_push(spot: Transport, run: str) -> None:
    """One last synchronous push (the loop may be between rounds); raises if it failed."""
    result = spot.run(f'cd "$HOME/ec2kit/{run}" && bash push.sh once', check=False, timeout=600)
    if not result.ok:
        raise RemoteError(f"The final push of run {run}'s results to the monitor failed: {result.stderr.strip()[-400:]}")


def _monitor_address(ctx: Context, name: str) -> tuple[Instance, SshTarget]:
    """(monitor instance, the SshTarget as the spot instance should dial it)."""
    from dataclasses import replace

    inst = ctx.cloud.instance(name)
    target = ctx.target(inst)
    if ctx.sandbox is None and inst.private_ip:
        target = replace(target, host=inst.private_ip, port=22)  # same VPC: the private address
    return inst, target


def _host_key(ctx: Context, inst: Instance) -> str:
    from ..ssh.pins import pinned_keys

    ctx.connect(inst).home  # noqa: B018 - connect once so the monitor's key is pinned
    keys = pinned_keys(ctx.settings.known_hosts, inst.id)
    if not keys:
        raise RemoteError(f"No host key is pinned for the monitor {inst.label}; cannot let the run trust it.")
    key = next(iter(keys.values()))
    return f"{key.get_name()} {key.get_base64()}"


def start_push(
    ctx: Context, run: str, spot: Instance, monitor: str, *, interval: float, authorized: Callable[[str], None]
) -> str:
    """Run key, authorize it on ``monitor``, start the pusher on ``spot``; returns the monitor's directory.

    ``authorized(directory)`` is called as soon as the monitor admits the key (to record it).
    """
    inst, target = _monitor_address(ctx, monitor)
    key = make_run_key(ctx.settings.home / "runs" / run, run)
    directory = authorize(ctx.connect(inst), run, key.with_suffix(".pub").read_text())
    authorized(directory)
    install_pusher(
        ctx.connect(spot),
        run,
        key,
        user=target.user,
        host=target.host,
        port=target.port,
        host_key=_host_key(ctx, inst),
        interval=interval,
    )
    return directory


def revoke_record(ctx: Context, record: RunRecord) -> None:
    """Remove run ``record``'s key from its monitor and delete the local copy."""
    if not record.monitor:
        return
    try:
        revoke_key(ctx.connect(record.monitor), record.name)
    finally:
        shutil.rmtree(ctx.settings.home / "runs" / record.name / "monitor_key", ignore_errors=True)
        for path in (ctx.settings.home / "runs" / record.name).glob("monitor_key*"):
            path.unlink(missing_ok=True)
