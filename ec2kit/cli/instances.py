"""Instances: list, launch, start, stop, terminate, change type, connect."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from typing import Any

from .. import ui
from ..context import Context
from ._common import (
    NETWORK_HELP,
    WIDE_HELP,
    check_disk,
    command,
    fail,
    network_options,
    parse_ports,
    parse_tags,
    shown,
    split_list,
)


def uptime(launch_time: object, state: str) -> str:
    if state != "running" or not isinstance(launch_time, datetime):
        return ""
    lt = launch_time if launch_time.tzinfo else launch_time.replace(tzinfo=timezone.utc)
    return ui.human_duration((datetime.now(timezone.utc) - lt).total_seconds())


@command(help={"json": "print JSON instead of a table", "all": "include terminated instances", "wide": WIDE_HELP})
def instances(ctx: Context, json: bool = False, all: bool = False, wide: bool = False) -> None:
    """List instances: name, id, type, state, spot/on-demand, IPs, uptime (one EC2 call)."""
    states = None if all else ["pending", "running", "stopping", "stopped", "shutting-down"]
    found = ctx.cloud.instances(states=states)
    if json:
        ui.print_json(found)
        return
    rows = [
        (i.name, i.id, i.type, i.state, i.lifecycle, i.public_ip, i.private_ip, uptime(i.launch_time, i.state))
        for i in sorted(found, key=lambda i: (i.name or "", i.id))
    ]
    ui.print_table(
        "Instances",
        ["name", "id", "type", "state", "lifecycle", "public ip", "private ip", "uptime"],
        rows,
        empty="No instances. Launch one with `inv launch NAME`.",
        priority=("name", "state", "type", "public ip", "uptime", "id", "lifecycle", "private ip"),
        minimum={"name": 24, "id": 19},
        wide=wide,
    )


@command(
    iterable=["tag", "security_group"],
    help={
        "name": "Name tag for the new instance (must be unique)",
        "image": "ubuntu (24.04), ubuntu-22.04, gpu (NVIDIA driver + CUDA), or an AMI name or id "
        "(default: gpu for a type with an NVIDIA GPU, else ubuntu; the architecture follows --type)",
        "disk": "root disk size in GB (default: the image's, or `disk` in ec2kit.toml)",
        "type": "instance type, e.g. m5.xlarge (default: `type` in ec2kit.toml, else t3.medium)",
        "spot": "launch a spot instance instead of on-demand (through one EC2 Fleet call over --type, --types and the zones)",
        "types": "spot: more instance types AWS may pick from when --type has no capacity, comma-separated, e.g. g6.xlarge,g5.2xlarge",
        "on_demand_fallback": "spot: when no pool has spot capacity, launch on-demand instead (a second fleet call)",
        "check": "change nothing: show the launch and ask AWS with DryRun whether it would succeed (CreateFleet for --spot)",
        "max_price": "spot: the highest hourly price you accept (default: on-demand price)",
        "zone": "availability zone (default: any)",
        "no_wait": "return once running, without waiting for SSH",
        "tag": "add a tag KEY=VALUE (repeatable), e.g. --tag role=web; `inv provision role=web` then selects by it",
        "json": "print the instance as JSON",
        **NETWORK_HELP,
    },
)
def launch(
    ctx: Context,
    name: str,
    image: str | None = None,
    disk: int | None = None,
    type: str | None = None,
    spot: bool = False,
    max_price: str | None = None,
    zone: str | None = None,
    no_wait: bool = False,
    tag: list[str] | None = None,
    json: bool = False,
    types: str = "",  # after the older flags, so their short forms (-o: --no-wait) stay as they were
    on_demand_fallback: bool = False,
    check: bool = False,
    subnet: str | None = None,
    security_group: list[str] | None = None,
    instance_profile: str | None = None,
    open_ssh: bool = False,
) -> None:
    """Launch an instance and wait until SSH answers. Example: inv launch base --disk 60 --type m5.xlarge"""
    from ..actions import launch as do_launch

    tags = parse_tags(tag)
    more_types = split_list(types)
    if (more_types or on_demand_fallback) and not spot:
        raise fail("--types and --on-demand-fallback choose among spot capacity pools: add --spot (or drop them).")
    defaults = ctx.settings.default
    type = type or defaults("type") or "t3.medium"
    image = image or defaults("image")
    disk = check_disk(disk if disk is not None else defaults("disk"))
    max_price = max_price or defaults("max_price")
    options: dict[str, Any] = dict(
        image=image,
        disk=disk,
        type=type,
        spot=spot,
        max_price=max_price,
        zone=zone,
        tags=tags or None,
        open_ssh=open_ssh,
        **network_options(ctx, subnet, security_group, instance_profile),
    )
    if check:
        _check_launch(ctx, name, types=more_types, on_demand_fallback=on_demand_fallback, **options)
        return
    if spot:
        options.update(types=more_types, on_demand_fallback=on_demand_fallback)
    with ui.progress(f"Launching {name}") as progress:
        inst = do_launch(ctx, name, wait=not no_wait, progress=progress, **options)
    _show(inst, json)


def _check_launch(ctx: Context, name: str, *, types: list[str], on_demand_fallback: bool, **options: Any) -> None:
    """``inv launch --check``: the plan, then the very call the launch makes, sent with DryRun."""
    cloud, console = ctx.cloud, ui.console()
    plan = cloud.plan_launch(name, **options)
    if plan.image_note:
        console.print(f"image: {plan.image_note}", soft_wrap=True)
    if plan.spot:
        fleet = cloud.fit_quotas(cloud.plan_fleet(plan, types=types, on_demand_fallback=on_demand_fallback))
        by_type: dict[str, list[str]] = {}
        for type_, place in fleet.pools("spot"):
            by_type.setdefault(type_, []).append(place)
        console.print(f"would launch {name}: one instant EC2 Fleet, spot, price-capacity-optimized, over", soft_wrap=True)
        for type_, places in by_type.items():
            console.print(f"  {type_} in {', '.join(places)}", soft_wrap=True)
        if on_demand_fallback:
            console.print("then, only if no pool had spot capacity, an on-demand fleet over the same types", soft_wrap=True)
        cloud.check(fleet)
        action = fleet.action
    else:
        refused = cloud.check_quotas(plan.type, "on-demand", action=f"launch instance {name}")
        if refused is not None:
            raise refused
        console.print(f"would launch {name}: {plan.type} on-demand{' in ' + plan.zone if plan.zone else ''}", soft_wrap=True)
        cloud.check(plan)
        action = plan.action
    console.print(f"ec2.{action} with DryRun: would succeed", soft_wrap=True)


def _show(inst, json: bool) -> None:
    if json:
        ui.print_json(inst)
    else:
        ui.console().print(shown(f"{inst.name}  {inst.id}  {inst.type}  {inst.state}  {inst.public_ip or ''}"))


@command(help={"name": "instance name or id", "no_wait": "do not wait for SSH", "json": "print JSON"})
def start(ctx: Context, name: str, no_wait: bool = False, json: bool = False) -> None:
    """Start a stopped instance; returns when SSH answers."""
    from ..actions import start as do_start

    with ui.progress(f"Starting {name}") as progress:
        inst = do_start(ctx, name, wait=not no_wait, progress=progress)
    _show(inst, json)


@command(help={"name": "instance name or id", "json": "print JSON"})
def stop(ctx: Context, name: str, json: bool = False) -> None:
    """Stop an instance (its disk is kept; you pay for storage only)."""
    with ui.progress(f"Stopping {name}") as progress:
        inst = ctx.cloud.stop(name, progress=progress)
    _show(inst, json)


@command(help={"name": "instance name or id", "json": "print JSON"})
def terminate(ctx: Context, name: str, json: bool = False) -> None:
    """Terminate an instance (cancels its spot request first). Its root disk is deleted."""
    with ui.progress(f"Terminating {name}") as progress:
        inst = ctx.cloud.terminate(name, progress=progress)
    _show(inst, json)


@command(name="change-type", help={"name": "instance name or id (must be stopped)", "type": "new instance type, e.g. p3.2xlarge"})
def change_type(ctx: Context, name: str, type: str) -> None:
    """Change the type of a stopped instance, e.g. to add or remove a GPU."""
    inst = ctx.cloud.change_type(name, type)
    ui.console().print(shown(f"{inst.name}  {inst.id}  now {inst.type}"))


@command(
    help={
        "name": "instance name or id",
        "ports": "ports to tunnel to localhost, e.g. 8888,8008",
        "command": "run this command instead of a login shell (or give it after `--`: connect NAME -- nvidia-smi)",
    },
    rest="command",
)
def connect(ctx: Context, name: str, ports: str = "", command: str | None = None) -> None:
    """SSH to an instance (host key pinned), optionally with -L tunnels. Example: inv connect base --ports 8888, or inv connect base -- nvidia-smi"""
    from ..ssh.pins import check
    from ..ssh.target import ssh_argv

    forwards = parse_ports(ports)
    target = ctx.target(name)
    check(target.known_hosts)  # ssh itself would skip a damaged pin file and re-learn the key
    argv = ssh_argv(target, ports=forwards, command=command, tty=command is None)
    ctx.close()
    os.execvp(argv[0], argv)


@command(
    name="ssh-config",
    help={"path": "file to write (default: ~/.ec2kit/ssh_config)", "include": "also add an Include line to ~/.ssh/config"},
)
def ssh_config(ctx: Context, path: str | None = None, include: bool = False) -> None:
    """Write a Host entry per running instance so `ssh NAME` works everywhere."""
    from pathlib import Path

    from ..ssh.target import ssh_config_blocks, write_ssh_config

    out = Path(path).expanduser() if path else ctx.settings.home / "ssh_config"
    running = [i for i in ctx.cloud.instances(states=["running"]) if i.name]
    blocks, skipped = ssh_config_blocks((i.name, ctx.target(i)) for i in sorted(running, key=lambda i: i.name))
    for warning in skipped:  # a Name tag such as "*" or one with a newline would plant ssh options
        print(warning, file=sys.stderr)
    write_ssh_config(out, blocks)
    ui.console().print(f"Wrote {len(blocks)} host(s) to {out}")
    line = f"Include {out}"
    user_config = Path.home() / ".ssh" / "config"
    present = user_config.exists() and line in user_config.read_text()
    if include and not present:
        user_config.parent.mkdir(mode=0o700, exist_ok=True)
        old = user_config.read_text() if user_config.exists() else ""
        user_config.write_text(line + "\n\n" + old)  # Include must come before any Host block
        user_config.chmod(0o600)
        ui.console().print(f"Added `{line}` to {user_config}")
    elif not present:
        ui.console().print(f"Add this line at the top of {user_config} (or rerun with --include):\n  {line}")


@command(name="forget-host", help={"name": "instance name or id whose pinned host key to forget"})
def forget_host(ctx: Context, name: str) -> None:
    """Forget an instance's pinned SSH host key (after you really rebuilt it)."""
    from ..ssh.pins import forget_host as forget

    inst = ctx.instance(name) if not name.startswith("i-") else None
    alias = inst.id if inst else name
    removed = forget(ctx.settings.known_hosts, alias)
    ui.console().print(f"Forgot the host key of {alias}." if removed else f"No host key was pinned for {alias}.")


@command(
    help={
        "json": "print the rules as JSON",
        "prune": "remove every address rule except your current address (the rule between ec2kit instances stays)",
    }
)
def access(ctx: Context, json: bool = False, prune: bool = False) -> None:
    """SSH rules of ec2kit's security groups: who may reach port 22. Re-checks your public address and adds it."""
    cloud = ctx.cloud
    groups = sorted({r.group_id for r in cloud.ssh_rules()})
    said = cloud.admit_caller(groups, fresh=True)
    if said:
        ui.info(said)
    removed = cloud.prune_ssh_rules() if prune else []
    rules = cloud.ssh_rules()
    if json:
        ui.print_json([{k: v for k, v in vars(r).items() if k != "permission"} for r in rules])
    else:
        ui.print_table(
            "SSH access (tcp/22)",
            ["group", "vpc", "from", "description", ""],
            [
                (r.group_id, r.vpc_id, r.source, r.description, "everyone!" if r.everyone else "current" if r.current else "old")
                for r in rules
            ],
            empty="ec2kit has no security group in this region yet; `inv launch` makes one.",
        )
    for rule in removed:
        ui.info(f"Removed SSH from {rule.source} ({rule.description or 'no description'}) in {rule.group_id}.")
    if not prune and any(not r.current for r in rules):
        ui.info("`inv access --prune` removes the rules marked old.")


@command(aws=False, help={"text": "part of a region's name, e.g. Ohio, Frankfurt, Tokyo"})
def region(ctx: Context, text: str) -> None:
    """Print the code of the first region whose name contains TEXT: inv region Ohio → us-east-2."""
    from ..aws.regions import find_region

    print(find_region(text))
