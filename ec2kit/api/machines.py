"""Instances from both faces: list, launch (or check a launch), start/stop/terminate, sync, autostop, SSH access."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..untrusted import markup_safe
from .base import Face
from .instances import INSTANCE_COLUMNS, Instance, _instance_row
from .options import apply_gpus, gpu_request, idle_setting, launch_options, workdir_option
from .shown import Listing

if TYPE_CHECKING:
    from ..autostop import AutostopResult
    from ..aws.access import SshRule
    from ..workdir import SyncReport


@dataclass
class LaunchCheck:
    """What ``launch(..., check=True)`` found: the plan's lines and the EC2 call that DryRun accepted."""

    name: str
    lines: list[str] = field(default_factory=list)
    action: str = ""

    def __str__(self) -> str:
        return "\n".join(self.lines)


class AccessRules(Listing["SshRule"]):
    """The SSH rules of ec2kit's security groups, and ``removed``: the ones a prune just took away."""

    def __init__(self, rules: list[SshRule], removed: list[SshRule], **shown: Any) -> None:
        super().__init__(rules, **shown)
        self.removed = removed


class MachineVerbs(Face):
    """``EC2``'s instance verbs (``inv instances``, ``launch``, ``start``, ``stop``, …)."""

    _names_cache: tuple[float, list[str]] = (0.0, [])

    def instances(self, *, all: bool = False, tags: dict[str, str | None] | None = None) -> Listing[Instance]:
        """Instances (not terminated unless ``all``), with these tag values (None: any value); one EC2 call, then the
        price of each running one (``hourly_price``: its pool's spot price, or its type's on-demand price), and
        for each running instance with an idle autostop one short SSH command reading how long it has been idle
        (``Instance.idle_seconds``; a command without a terminal does not count as work)."""
        from ..aws.models import LIVE_STATES

        found = self.cloud.instances(states=[*LIVE_STATES, "terminated"] if all else None, tags=tags)
        self._api._price_instances(found)
        items = [Instance(self._api, i) for i in sorted(found, key=lambda i: (i.name or "", i.id))]
        self._read_idle([i for i in items if i._info.state == "running" and i.autostop is not None and i.autostop.armed])
        if not tags:  # a complete listing doubles as the names tab completion offers
            self._names_cache = (time.monotonic(), sorted({i.name for i in found if i.name and i.state != "terminated"}))
        return Listing(
            items,
            title="Instances",
            columns=INSTANCE_COLUMNS,
            row=_instance_row,
            empty="No instances. Launch one with ec2.launch(NAME).",
        )

    def _read_idle(self, armed: list[Instance]) -> None:
        """How long each armed instance's watcher has seen no work: one short SSH command each, in parallel."""
        if not armed:
            return
        from concurrent.futures import ThreadPoolExecutor

        from ..autostop import idle_seconds

        with ThreadPoolExecutor(max_workers=min(8, len(armed))) as pool:
            for inst, seconds in zip(armed, pool.map(lambda i: idle_seconds(self.ctx, i._info), armed)):
                inst.idle_seconds = seconds

    def instance(self, name_or_id: str | Instance) -> Instance:
        """The instance with this Name tag or id; :class:`~ec2kit.errors.NotFound` suggests close names."""
        if isinstance(name_or_id, Instance):
            return name_or_id
        return Instance(self._api, self.cloud.instance(name_or_id))

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
        types: str | Sequence[str] = (),
        on_demand_fallback: bool = False,
        check: bool = False,
        subnet: str | None = None,
        security_groups: str | Sequence[str] = (),
        instance_profile: str | None = None,
        open_ssh: bool = False,
        gpus: str | None = None,
        gpu_memory: str | None = None,
        yes: bool = False,
        workdir: str | Path | None = None,
        idle: str | None = None,
        idle_action: str | None = None,
        idle_cpu: float | str | None = None,
    ) -> Any:
        """Launch an instance named ``name`` and return it once SSH answers (``inv launch``).

        ``type``, ``image`` (name or id), ``disk`` (root GB), ``max_price`` and the network
        (``subnet``, extra ``security_groups``, IAM ``instance_profile``) default as on the command
        line (ec2kit.toml, then t3.medium and the latest Ubuntu LTS); ``spot`` asks for a one-time
        spot instance through one EC2 Fleet call over ``type`` and ``types`` (``on_demand_fallback``:
        on-demand when no pool has capacity); ``tags`` are extra tags (``{"role": "web"}``);
        ``open_ssh`` opens port 22 to everyone; ``workdir`` (default: ``workdir`` in ec2kit.toml) is synced to
        ``~/work/<its name>`` once SSH answers. ``gpus="A10G:1"`` (MODEL[:COUNT]) and/or ``gpu_memory="24GB"``
        (per GPU) choose the type instead: the cheapest that fits, or with ``spot`` every one that fits as the
        fleet's pools (from DescribeInstanceTypes' GpuInfo; :meth:`gpus` lists them). ``idle="30m"`` arms the idle
        watcher on the instance (ec2kit.toml's ``idle`` by default; ``"off"``: none): with no SSH session, tmux
        client, busy process (above ``idle_cpu`` % of a core), busy GPU or running ec2kit run for that long, it
        powers itself off and ``idle_action`` (``stop``; a one-time spot instance can only ``terminate``) follows,
        laptop closed or not. ``check=True`` changes nothing: it returns a :class:`LaunchCheck` after asking EC2
        with DryRun. The expected hourly cost is shown first; above ``confirm_above`` (config, default $2/h) it
        asks on a terminal and refuses without one, unless ``yes``. Example: ``ec2.launch("gpu1", type="g5.xlarge", spot=True)``.
        """
        from ..actions import launch

        request = gpu_request(gpus, gpu_memory, type=type, types=types, spelling=self.spelling)
        options = launch_options(
            self.settings,
            image=image,
            type=type,
            disk=disk,
            spot=spot,
            max_price=max_price,
            zone=zone,
            tags=tags,
            types=types,
            on_demand_fallback=on_demand_fallback,
            subnet=subnet,
            security_groups=security_groups,
            instance_profile=instance_profile,
            open_ssh=open_ssh,
            spelling=self.spelling,
        )
        if request is not None:
            apply_gpus(options, self._gpu_types(request, spot=spot))
        local = workdir_option(self.settings, workdir, self.spelling)
        if local is not None and not wait:
            raise ConfigError(
                f"{self.spelling.name('workdir')} syncs once SSH answers; it cannot go with "
                f"{'--no-wait' if self.spelling.cli else 'wait=False'}.",
                hint=f"Drop one of them (sync later with {'`inv sync NAME`' if self.spelling.cli else 'inst.sync()'}).",
            )
        autostop = idle_setting(
            self.settings, idle=idle, idle_action=idle_action, idle_cpu=idle_cpu, spot=spot, spelling=self.spelling
        )
        if autostop is not None:
            if not wait:
                raise ConfigError(
                    f"{self.spelling.name('idle')} is set up on the instance over SSH, so the launch waits for SSH.",
                    hint=f"Drop {'--no-wait' if self.spelling.cli else 'wait=False'}, or arm it later with "
                    f"`inv autostop {name} 30m`.",
                )
            options["shutdown_behavior"] = autostop.action  # shutdown -h now on the instance does what the window says
        if check:
            return self._check_launch(name, options)
        self._api._confirm_cost(self._launch_estimate(options), yes=yes, what=f"instance {name}")
        with self._progress(f"Launching {name}") as progress:
            info = launch(self.ctx, name, wait=wait, progress=progress, **options)
        self._names_cache = (0.0, [])
        if autostop is not None:
            self._say(markup_safe(str(self._arm(info, autostop))), note=True)
        inst = Instance(self._api, info)
        if local is not None:
            self.sync(inst, local)
        return inst

    def sync(self, name: str | Instance, directory: str | Path | None = None) -> SyncReport:
        """Send a local directory (default: ``workdir`` in ec2kit.toml, else the current one) to the instance's
        ``~/work/<its name>`` (``inv sync``): .gitignore and .ec2kitignore honoured, links out of the tree
        skipped, results directories never sent, nothing deleted there; an unchanged tree sends no file.
        Returns a :class:`~ec2kit.workdir.SyncReport` (``.files``, ``.bytes_sent``, ``.skipped``, ``.seconds``)."""
        from ..workdir import check_workdir, sync

        given = directory if directory is not None and str(directory) != "" else None
        local = workdir_option(self.settings, given, self.spelling) if given is None else check_workdir(given, flag="DIR")
        local = local or check_workdir(".", flag="DIR")
        inst = self.instance(name)
        with self._progress(f"Syncing {local} to {inst.label}") as progress:
            sent = [0]

            def told(name: str) -> None:
                sent[0] += 1
                if progress is not None:
                    progress(f"{sent[0]} sent: {name}")

            report = sync(self.ctx, inst.info, local, progress=told)
        self._say(markup_safe(report.line()), note=True)
        return report

    def _launch_estimate(self, options: dict[str, Any]) -> Any:
        """The expected cost of a launch with these (completed) options."""
        return self._api._estimate(
            [options["type"], *options.get("types", [])],
            spot=options["spot"],
            on_demand_fallback=options.get("on_demand_fallback", False),
            disk=options["disk"],
        )

    def autostop(
        self, name: str | Instance, idle: str, *, action: str | None = None, cpu: float | str | None = None
    ) -> AutostopResult:
        """Arm the idle watcher on a running instance (``inv autostop NAME 45m``), or disarm it (``idle="off"``).

        ``action``: ``stop`` (default; the disk is kept) or ``terminate`` (the only one a one-time spot
        instance has); ``cpu``: a process above this % of one core counts as work (default 10, or
        ``idle_cpu`` in ec2kit.toml). The window starts again now. Example: ``ec2.autostop("gpu1", "45m")``.
        """
        from ..idle import AutostopSetting, check_action, check_cpu, parse_window
        from ..settings import idle_check_every

        window = parse_window(idle, option="idle" if not self.spelling.cli else "the idle window", minimum=2 * idle_check_every())
        chosen = check_action(action, option=self.spelling.name("action")) if action is not None else None
        threshold = check_cpu(cpu if cpu is not None else self.settings.default("idle_cpu"), option=self.spelling.name("cpu"))
        inst = name.info if isinstance(name, Instance) else self.cloud.instance(name)
        if chosen is None:
            chosen = "terminate" if inst.lifecycle == "spot" else str(self.settings.default("idle_action") or "stop")
        return self._arm(inst, AutostopSetting(window, chosen, threshold))

    def _arm(self, inst: Any, setting: Any) -> AutostopResult:
        from ..autostop import apply
        from ..settings import idle_check_every

        with self._progress(f"Setting the autostop of {inst.name or inst.id}"):
            return apply(self.ctx, inst, setting, idle_check_every())

    def _check_launch(self, name: str, options: dict[str, Any]) -> LaunchCheck:
        """The plan, then the very call the launch makes, sent with DryRun (its refusal is raised)."""
        cloud = self.cloud
        found = LaunchCheck(name)

        def say(line: str) -> None:
            found.lines.append(line)
            self._say(markup_safe(line))

        types, fallback = options.pop("types", []), options.pop("on_demand_fallback", False)
        plan = cloud.plan_launch(name, **options)
        if plan.image_note:
            say(f"image: {plan.image_note}")
        if plan.network_note:
            say(f"network: {plan.network_note}")
        if plan.spot:
            fleet = cloud.fit_quotas(cloud.plan_fleet(plan, types=types, on_demand_fallback=fallback))
            by_type: dict[str, list[str]] = {}
            for type_, place in fleet.pools("spot"):
                by_type.setdefault(type_, []).append(place)
            say(f"would launch {name}: one instant EC2 Fleet, spot, price-capacity-optimized, over")
            for type_, places in by_type.items():
                say(f"  {type_} in {', '.join(places)}")
            if fallback:
                say("then, only if no pool had spot capacity, an on-demand fleet over the same types")
            cloud.check(fleet)
            found.action = fleet.action
        else:
            refused = cloud.check_quotas(plan.type, "on-demand", action=f"launch instance {name}")
            if refused is not None:
                raise refused
            say(f"would launch {name}: {plan.type} on-demand{' in ' + plan.zone if plan.zone else ''}")
            cloud.check(plan)
            found.action = plan.action
        say(f"ec2.{found.action} with DryRun: would succeed")
        say(self._launch_estimate({**options, "types": types, "on_demand_fallback": fallback}).line())
        return found

    def start(self, name: str | Instance, *, wait: bool = True) -> Instance:
        """Start a stopped instance; returns once SSH answers (``wait=False``: once EC2 accepted the start)."""
        from ..actions import start

        key = name.id if isinstance(name, Instance) else name
        with self._progress(f"Starting {name.label if isinstance(name, Instance) else name}") as progress:
            info = start(self.ctx, key, wait=wait, progress=progress)
        return Instance(self._api, info)

    def stop(self, name: str | Instance, *, wait: bool = True) -> Instance:
        """Stop an instance (its disk is kept; you pay for storage only); spot instances cannot stop."""
        key = name.id if isinstance(name, Instance) else name
        with self._progress(f"Stopping {name.label if isinstance(name, Instance) else name}") as progress:
            info = self.cloud.stop(key, wait=wait, progress=progress)
        self.ctx.forget_host(info.id)
        return Instance(self._api, info)

    def terminate(self, name: str | Instance, *, wait: bool = False) -> Instance:
        """Terminate an instance (its spot request is cancelled first; the root disk is deleted)."""
        key = name.id if isinstance(name, Instance) else name
        with self._progress(f"Terminating {name.label if isinstance(name, Instance) else name}") as progress:
            info = self.cloud.terminate(key, wait=wait, progress=progress)
        self.ctx.forget_host(info.id)
        self._names_cache = (0.0, [])
        return Instance(self._api, info)

    def change_type(self, name: str | Instance, type: str) -> Instance:
        """Change the type of a stopped instance, e.g. ``ec2.change_type("gpu1", "g5.2xlarge")``."""
        key = name.id if isinstance(name, Instance) else name
        return Instance(self._api, self.cloud.change_type(key, type))

    def ssh_command(self, name: str | Instance, *, ports: str | Sequence[int] = (), command: str | None = None) -> list[str]:
        """The ``ssh`` argv that logs in to an instance (``inv connect``): host key pinned, ``-L`` tunnels for
        ``ports`` (``"8888,6006"`` or ``[8888]``), ``command`` run instead of a login shell."""
        from ..ssh.pins import check
        from ..ssh.target import ssh_argv
        from .options import parse_ports

        forwards = parse_ports(ports, self.spelling)
        target = self.ctx.target(name.info if isinstance(name, Instance) else name)
        check(target.known_hosts)  # ssh itself would skip a damaged pin file and re-learn the key
        return ssh_argv(target, ports=forwards, command=command, tty=command is None)

    def ssh_config(self, *, path: str | Path | None = None, include: bool = False) -> Path:
        """Write a Host entry per running instance so ``ssh NAME`` works everywhere (``inv ssh-config``)."""
        from ..ssh.target import ssh_config_blocks, write_ssh_config

        out = Path(path).expanduser() if path else self.settings.home / "ssh_config"
        running = [i for i in self.cloud.instances(states=["running"]) if i.name]
        blocks, skipped = ssh_config_blocks((i.name, self.ctx.target(i)) for i in sorted(running, key=lambda i: i.name))
        for warning in skipped:  # a Name tag such as "*" or one with a newline would plant ssh options
            if not self.quiet:
                print(warning, file=sys.stderr)
        write_ssh_config(out, blocks)
        self._say(f"Wrote {len(blocks)} host(s) to {out}")
        line = f"Include {out}"
        user_config = Path.home() / ".ssh" / "config"
        present = user_config.exists() and line in user_config.read_text()
        if include and not present:
            from ..fsutil import atomic_write

            user_config.parent.mkdir(mode=0o700, exist_ok=True)
            old = user_config.read_text() if user_config.exists() else ""
            atomic_write(user_config, (line + "\n\n" + old).encode())  # Include must come before any Host block
            self._say(f"Added `{line}` to {user_config}")
        elif not present:
            self._say(f"Add this line at the top of {user_config} (or rerun with --include):\n  {line}")
        return out

    def forget_host(self, name: str) -> bool:
        """Forget an instance's pinned SSH host key (after you really rebuilt it); True when one was pinned."""
        from ..ssh.pins import forget_host

        alias = name if name.startswith("i-") else self.ctx.instance(name).id
        removed = forget_host(self.settings.known_hosts, alias) > 0
        self._say(f"Forgot the host key of {alias}." if removed else f"No host key was pinned for {alias}.")
        return removed

    def access(self, *, prune: bool = False) -> AccessRules:
        """Who may reach port 22 through ec2kit's security groups (your current address is added first);
        ``prune`` removes every address rule but yours (``inv access``). The removed rules are ``.removed``."""
        cloud = self.cloud
        said = cloud.admit_caller(sorted({r.group_id for r in cloud.ssh_rules()}), fresh=True)
        if said:
            self._say(said, note=True)
        removed = cloud.prune_ssh_rules() if prune else []
        return AccessRules(
            cloud.ssh_rules(),
            removed,
            title="SSH access (tcp/22)",
            columns=("group", "vpc", "from", "description", ""),
            row=lambda r: (r.group_id, r.vpc_id, r.source, r.description, _rule_mark(r)),
            empty="ec2kit has no security group in this region yet; ec2.launch(NAME) makes one.",
        )


def _rule_mark(rule: SshRule) -> str:
    return "everyone!" if rule.everyone else "current" if rule.current else "old"
