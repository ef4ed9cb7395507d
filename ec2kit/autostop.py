"""Idle autostop, enforced on the instance: install (or disarm) the watcher over SSH, read how long it has been idle.

The watcher is one shell script (``templates/autostop/autostop.sh.j2``) that root runs every
``EC2KIT_IDLE_CHECK`` seconds (a systemd timer ``ec2kit-autostop.timer``; cron where there is no
systemd; the sandbox runs it from its own loop, ``EC2KIT_ONBOOT=sandbox``). It decides from probes
and logs why it acts; the instance's InstanceInitiatedShutdownBehavior makes its power-off a stop or
a terminate, so the laptop can be closed and ec2kit need not run. On the instance (as root)::

    /var/lib/ec2kit/autostop/autostop.sh      the watcher
    /var/lib/ec2kit/autostop/autostop.conf    WINDOW (s, 0: off) ACTION CPU GPU EVERY NOTTY_AGE
    /var/lib/ec2kit/autostop/last-active      "<epoch> <what was seen last>": idle time = now - epoch
    /var/lib/ec2kit/autostop/autostop.log     every decision that changed something (and the journal)
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import RemoteError, WrongState
from .idle import DEFAULT_GPU, AutostopSetting, format_window
from .paths import data_dir
from .tags import IDLE_TAG

if TYPE_CHECKING:
    from .aws.models import Instance
    from .context import Context
    from .ssh import Transport

DIR = "/var/lib/ec2kit/autostop"
NOTTY_AGE = 120  # an SSH connection without a terminal counts once open this long (a tunnel, a long command)
UNIT = "ec2kit-autostop"


def watcher_script(every: int) -> str:
    """The watcher's text (templates/autostop/autostop.sh.j2 rendered)."""
    from .recipe.render import environment  # the one Jinja factory

    return environment(data_dir("templates") / "autostop").get_template("autostop.sh.j2").render(every=int(every))


def conf_text(setting: AutostopSetting, every: int) -> str:
    """autostop.conf: shell assignments the watcher sources (WINDOW=0 disarms it)."""
    return (
        f"# written by ec2kit: {setting}\n"
        f"WINDOW={int(setting.window or 0)}\nACTION={setting.action}\nCPU={setting.cpu:g}\nGPU={DEFAULT_GPU}\n"
        f"EVERY={int(every)}\nNOTTY_AGE={NOTTY_AGE}\n"
    )


def install_script(setting: AutostopSetting, every: int) -> str:
    """The one bash script (run as root) that writes the watcher and its settings and arms or disarms the timer.

    Prints ``mechanism: systemd|cron|sandbox``. The idle window starts again whenever it runs.
    """
    every = max(1, int(every))
    units = (
        f"[Unit]\nDescription=ec2kit autostop: power off when idle (log: {DIR}/autostop.log)\n\n"
        f"[Service]\nType=oneshot\nEnvironment=EC2KIT_AUTOSTOP_DIR={DIR}\nExecStart={DIR}/autostop.sh\n"
    )
    timer = (
        f"[Unit]\nDescription=ec2kit autostop check every {every}s\n\n"
        f"[Timer]\nOnBootSec={every}\nOnUnitActiveSec={every}\nAccuracySec=1s\n\n[Install]\nWantedBy=timers.target\n"
    )
    armed = "1" if setting.armed else "0"
    return f"""set -e
DIR="${{EC2KIT_AUTOSTOP_DIR:-{DIR}}}"
umask 022
mkdir -p "$DIR"
cat >"$DIR/autostop.sh.tmp" <<'EC2KIT_WATCHER'
{watcher_script(every)}
EC2KIT_WATCHER
chmod 755 "$DIR/autostop.sh.tmp" && mv -f "$DIR/autostop.sh.tmp" "$DIR/autostop.sh"
cat >"$DIR/autostop.conf.tmp" <<'EC2KIT_CONF'
{conf_text(setting, every)}EC2KIT_CONF
mv -f "$DIR/autostop.conf.tmp" "$DIR/autostop.conf"
rm -f "$DIR/powering-off" "$DIR/cpu.prev"
echo "$(date +%s) {"armed" if setting.armed else "disarmed"}" >"$DIR/last-active"
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) ec2kit: {setting}" >>"$DIR/autostop.log"
if [ "${{EC2KIT_ONBOOT:-}}" = sandbox ]; then
    echo "mechanism: sandbox"   # the sandbox runs $DIR/autostop.sh itself every EVERY s
elif [ -d /run/systemd/system ]; then
    printf '%s' {shlex.quote(units)} >/etc/systemd/system/{UNIT}.service
    printf '%s' {shlex.quote(timer)} >/etc/systemd/system/{UNIT}.timer
    systemctl daemon-reload
    if [ {armed} = 1 ]; then systemctl enable --now {UNIT}.timer >/dev/null 2>&1; systemctl restart {UNIT}.timer
    else systemctl disable --now {UNIT}.timer >/dev/null 2>&1 || true; fi
    echo "mechanism: systemd"
else
    if [ {armed} = 1 ]; then echo "* * * * * root EC2KIT_AUTOSTOP_DIR=$DIR $DIR/autostop.sh >/dev/null 2>&1" >/etc/cron.d/{UNIT}
    else rm -f /etc/cron.d/{UNIT}; fi
    echo "mechanism: cron"
fi
"""


def as_root(script_var: str = "") -> str:
    """The remote command that runs stdin as root, keeping the two variables the watcher's place depends on."""
    keep = 'env "EC2KIT_AUTOSTOP_DIR=${EC2KIT_AUTOSTOP_DIR:-' + DIR + '}" "EC2KIT_ONBOOT=${EC2KIT_ONBOOT:-}" bash -s'
    return f'if [ "$(id -u)" = 0 ]; then {keep}; else sudo -n {keep}; fi'


@dataclass(frozen=True)
class AutostopResult:
    """What ``autostop`` did: the instance, its setting and how the watcher runs there."""

    name: str
    instance_id: str
    setting: AutostopSetting
    mechanism: str

    def __str__(self) -> str:
        if not self.setting.armed:
            return f"{self.name}: autostop off"
        return f"{self.name}: {self.setting} (watcher: {self.mechanism})"


def check_action_fits(inst: Instance, setting: AutostopSetting) -> None:
    """A one-time spot instance can only terminate: refuse ``stop`` for it, naming what to do."""
    if setting.armed and setting.action == "stop" and inst.lifecycle == "spot":
        raise WrongState(
            f"Instance {inst.label} is a one-time spot instance: when idle it can only terminate, not stop.",
            hint=f"Give the action terminate (`inv autostop {inst.name or inst.id} {format_window(setting.window or 0)} "
            "--action terminate`), or launch on demand to keep the disk.",
        )


def apply(ctx: Context, inst: Instance, setting: AutostopSetting, every: int) -> AutostopResult:
    """Arm (or disarm) the watcher on a running instance: shutdown behaviour, the watcher over one SSH
    round trip, then the ``ec2kit:idle`` tag."""
    if inst.state != "running":
        raise WrongState(
            f"Instance {inst.label} is {inst.state}; its autostop is set on the machine itself, over SSH.",
            hint=f"Start it first (`inv start {inst.name or inst.id}`).",
        )
    check_action_fits(inst, setting)
    cloud = ctx.cloud
    before = None
    if setting.armed and inst.lifecycle != "spot":  # first: the watcher must never power off with the old behaviour
        before = cloud.shutdown_behavior(inst.id)
        if before != setting.action:
            cloud.set_shutdown_behavior(inst.id, setting.action)
    transport = ctx.connect(inst)
    result = transport.run(as_root(), stdin=install_script(setting, every), check=False, timeout=120)
    if not result.ok:
        if before is not None and before != setting.action:  # no watcher: a shutdown does what it did before
            cloud.set_shutdown_behavior(inst.id, before)
        raise RemoteError(
            f"Could not set the autostop of {inst.label} (exit {result.exit_code}): "
            f"{(result.stderr or result.stdout).strip()[-400:]}",
            hint="The instance runs without an idle autostop. The watcher is installed as root, so the login user "
            f"needs passwordless sudo (as on Ubuntu AMIs); then `inv autostop {inst.name or inst.id} "
            f"{format_window(setting.window) if setting.window else 'off'}` tries again.",
        )
    mechanism = next((line.split(":", 1)[1].strip() for line in result.stdout.splitlines() if line.startswith("mechanism:")), "?")
    cloud.tag(inst.id, {IDLE_TAG: setting.tag})
    return AutostopResult(inst.name or inst.id, inst.id, setting, mechanism)


def idle_seconds_command() -> str:
    """A remote command printing ``<seconds idle> <window>`` (nothing when no watcher is armed)."""
    return (
        f'd="${{EC2KIT_AUTOSTOP_DIR:-{DIR}}}"; [ -s "$d/last-active" ] && . "$d/autostop.conf" 2>/dev/null '
        '&& [ "${WINDOW:-0}" -gt 0 ] && read -r t _ <"$d/last-active" && echo "$(( $(date +%s) - t )) $WINDOW"; true'
    )


def idle_seconds(ctx: Context, inst: Instance, timeout: float = 8.0) -> int | None:
    """How long the armed watcher on ``inst`` has seen no work (one short SSH command), or None."""
    from .ssh import connect, openssh_preferred

    try:
        target = ctx.target(inst)
        # A connection of its own that ends with the command: a shared one lingers, and a listing repeated
        # every minute would keep it open past NOTTY_AGE, which the watcher rightly counts as work.
        if openssh_preferred():
            from .ssh.openssh import OpenSshTransport

            transport: Transport = OpenSshTransport(target, connect_timeout=timeout, persist=0)
        else:
            transport = connect(target, connect_timeout=timeout)
        with transport:
            out = transport.run(idle_seconds_command(), check=False, timeout=timeout).stdout.split()
        return max(0, int(out[0])) if out else None
    except Exception:  # noqa: BLE001 - a listing never fails for one unreachable machine: it shows "?"
        return None
