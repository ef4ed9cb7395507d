"""Instances: list, launch, start, stop, terminate, change type, connect."""

from __future__ import annotations

import os

from .. import ui
from ..context import Context
from ._common import GPU_HELP, NETWORK_HELP, WIDE_HELP, command, domain, parse_tags, shown


@command(help={"json": "print JSON instead of a table", "all": "include terminated instances", "wide": WIDE_HELP})
def instances(ctx: Context, json: bool = False, all: bool = False, wide: bool = False) -> None:
    """List instances: name, id, type, state, spot/on-demand, IPs, uptime, $/h, autostop and idle time (one EC2 call, then prices)."""
    from ..api.instances import INSTANCE_COLUMNS, _instance_row

    found = domain(ctx).instances(all=all)
    if json:
        from dataclasses import asdict

        ui.print_json([asdict(i.snapshot) | {"idle_seconds": i.idle_seconds} for i in found])
        return
    ui.print_table(
        "Instances",
        list(INSTANCE_COLUMNS),
        [_instance_row(i) for i in found],
        empty="No instances. Launch one with `inv launch NAME`.",
        priority=("name", "state", "type", "$/h", "autostop", "idle", "public ip", "uptime", "id", "lifecycle", "private ip"),
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
        "yes": "go ahead without asking even when the expected cost is above confirm_above (config; default $2/h)",
        "workdir": "sync this directory to ~/work/<its name> once SSH answers (default: `workdir` in ec2kit.toml, else none)",
        "idle": "stop the machine when idle this long, e.g. 30m, 2h (default: `idle` in ec2kit.toml; off: never); "
        "enforced on the instance, laptop closed or not",
        "idle_action": "what an idle machine does: stop (default; disk kept) or terminate (a one-time spot one can only terminate)",
        "idle_cpu": "a process above this percentage of one core counts as work for --idle (default 10)",
        **NETWORK_HELP,
        **GPU_HELP,
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
    gpus: str | None = None,
    gpu_memory: str | None = None,
    yes: bool = False,
    workdir: str | None = None,
    idle: str | None = None,
    idle_action: str | None = None,
    idle_cpu: str | None = None,
) -> None:
    """Launch an instance and wait until SSH answers. Example: inv launch base --disk 60 --type m5.xlarge --idle 30m"""
    done = domain(ctx).launch(
        name,
        image=image,
        disk=disk,
        type=type,
        spot=spot,
        max_price=max_price,
        zone=zone,
        tags=parse_tags(tag),
        wait=not no_wait,
        types=types,
        on_demand_fallback=on_demand_fallback,
        check=check,
        subnet=subnet,
        security_groups=security_group or [],
        instance_profile=instance_profile,
        open_ssh=open_ssh,
        gpus=gpus,
        gpu_memory=gpu_memory,
        yes=yes,
        workdir=workdir,
        idle=idle,
        idle_action=idle_action,
        idle_cpu=idle_cpu,
    )
    if not check:  # a check printed its plan line by line
        _show(done.snapshot, json)


@command(
    help={
        "name": "instance name or id (running)",
        "idle": "idle window, e.g. 45m, 2h, 1h30m; off disarms the watcher",
        "action": "what the idle machine does: stop (default; disk kept) or terminate (a one-time spot one can only terminate)",
        "cpu": "a process above this percentage of one core counts as work (default 10, or idle_cpu in ec2kit.toml)",
        "json": "print the setting as JSON",
    }
)
def autostop(ctx: Context, name: str, idle: str, action: str | None = None, cpu: str | None = None, json: bool = False) -> None:
    """Stop (or terminate) a machine by itself once idle this long, or `off`. Example: inv autostop gpu1 45m

    Idle means, for the whole window: no SSH session with a terminal (nor a connection open 2 min or
    more), no attached tmux client, no process above --cpu percent of one core, no GPU above 5 percent, and no
    running ec2kit run. A root systemd timer on the instance checks every minute and logs why it acts
    (/var/lib/ec2kit/autostop/autostop.log).
    """
    done = domain(ctx).autostop(name, idle, action=action, cpu=cpu)
    if json:
        s = done.setting
        ui.print_json(
            {
                "name": done.name,
                "id": done.instance_id,
                "idle": s.window,
                "action": s.action if s.armed else None,
                "cpu": s.cpu if s.armed else None,
                "watcher": done.mechanism,
            }
        )
    else:
        ui.console().print(shown(str(done)))


def _show(inst, json: bool) -> None:
    if json:
        ui.print_json(inst)
    else:
        ui.console().print(shown(f"{inst.name}  {inst.id}  {inst.type}  {inst.state}  {inst.public_ip or ''}"))


@command(help={"name": "instance name or id", "no_wait": "do not wait for SSH", "json": "print JSON"})
def start(ctx: Context, name: str, no_wait: bool = False, json: bool = False) -> None:
    """Start a stopped instance; returns when SSH answers."""
    _show(domain(ctx).start(name, wait=not no_wait).snapshot, json)


@command(help={"name": "instance name or id", "json": "print JSON", "yes": "go on even if the instance belongs to a live run"})
def stop(ctx: Context, name: str, json: bool = False, yes: bool = False) -> None:
    """Stop an instance (its disk is kept; you pay for storage only)."""
    confirm_instance_action(ctx, name, "stop", yes=yes)
    _show(domain(ctx).stop(name).snapshot, json)


@command(help={"name": "instance name or id", "json": "print JSON", "yes": "go on even if the instance belongs to a live run"})
def terminate(ctx: Context, name: str, json: bool = False, yes: bool = False) -> None:
    """Terminate an instance (cancels its spot request first). Its root disk is deleted."""
    confirm_instance_action(ctx, name, "terminate", yes=yes)
    _show(domain(ctx).terminate(name).snapshot, json)


@command(
    name="change-type",
    help={
        "name": "instance name or id (must be stopped)",
        "type": "new instance type, e.g. p3.2xlarge",
        "yes": "go on even if the instance belongs to a live run",
    },
)
def change_type(ctx: Context, name: str, type: str, yes: bool = False) -> None:
    """Change the type of a stopped instance, e.g. to add or remove a GPU."""
    confirm_instance_action(ctx, name, "change-type", yes=yes)
    inst = domain(ctx).change_type(name, type).snapshot
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
    argv = domain(ctx).ssh_command(name, ports=ports, command=command)
    ctx.close()
    os.execvp(argv[0], argv)


@command(
    iterable=["set"],
    help={
        "name": "instance name or id (running)",
        "port": "local port of the tunnel (default 8888); the server listens on a free port of the instance's localhost",
        "stop": "close the tunnel and end the server (its kernels too) and its tmux session",
        "set": "variable for the jupyter recipe when it runs first, KEY=VALUE (repeatable), e.g. jupyter_packages=jupyterlab",
        "no_browser": "only print the URL (the browser opens by itself where there is a display)",
        "json": "print the server (URL with token, ports) as JSON",
    },
)
def jupyter(
    ctx: Context,
    name: str,
    port: int | None = None,  # optional, so a bad number is ec2kit's message (coerce_numbers), not Invoke's traceback
    stop: bool = False,
    set: list[str] | None = None,  # noqa: A002 - the flag is --set everywhere
    no_browser: bool = False,
    json: bool = False,
) -> None:
    """JupyterLab on an instance through an SSH tunnel: sets it up if needed (the jupyter recipe), starts it under
    tmux bound to the instance's localhost, prints http://127.0.0.1:PORT/lab?token=... Example: inv jupyter gpu1"""
    from ..api.notebooks import DEFAULT_JUPYTER_PORT
    from ..recipe.loader import parse_overrides

    given = DEFAULT_JUPYTER_PORT if port is None else port
    server = domain(ctx).jupyter(name, port=given, stop=stop, vars=parse_overrides(set))
    if json:
        ui.print_json({"name": server.name, "url": server.url, "local_port": server.local_port,
                       "remote_port": server.remote_port, "app": server.app, "started": server.started,
                       "provisioned": server.provisioned, "stopped": server.stopped})  # fmt: skip
        return
    if server.stopped:
        return
    print(server.url)
    if not no_browser and _has_display():
        import webbrowser

        webbrowser.open(server.url)


def _has_display() -> bool:
    """Whether a graphical browser can open here (never a text browser that would take the terminal)."""
    import sys

    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@command(
    help={
        "name": "instance name or id",
        "dir": "local directory to send (default: `workdir` in ec2kit.toml, else the current directory)",
        "json": "print what was sent as JSON",
    },
)
def sync(ctx: Context, name: str, dir: str | None = None, json: bool = False) -> None:
    """Send a directory to ~/work/<its name> on an instance (.gitignore and .ec2kitignore honoured, links out of
    the tree skipped, results never sent, nothing deleted there). Example: inv sync gpu1 --dir ~/src/proj"""
    report = domain(ctx).sync(name, dir or None)
    if json:
        ui.print_json(report)


@command(
    name="ssh-config",
    help={"path": "file to write (default: ~/.ec2kit/ssh_config)", "include": "also add an Include line to ~/.ssh/config"},
)
def ssh_config(ctx: Context, path: str | None = None, include: bool = False) -> None:
    """Write a Host entry per running instance so `ssh NAME` works everywhere."""
    domain(ctx).ssh_config(path=path, include=include)


@command(name="forget-host", help={"name": "instance name or id whose pinned host key to forget"})
def forget_host(ctx: Context, name: str) -> None:
    """Forget an instance's pinned SSH host key (after you really rebuilt it)."""
    domain(ctx).forget_host(name)


@command(
    help={
        "json": "print the rules as JSON",
        "prune": "remove every address rule except your current address (the rule between ec2kit instances stays)",
    }
)
def access(ctx: Context, json: bool = False, prune: bool = False) -> None:
    """SSH rules of ec2kit's security groups: who may reach port 22. Re-checks your public address and adds it."""
    rules = domain(ctx).access(prune=prune)
    if json:
        ui.print_json([{k: v for k, v in vars(r).items() if k != "permission"} for r in rules])
    else:
        title, columns, rows, _ = rules._show()
        ui.print_table(title, columns, rows, empty="ec2kit has no security group in this region yet; `inv launch` makes one.")
    for rule in rules.removed:
        ui.info(f"Removed SSH from {rule.source} ({shown(rule.description or 'no description')}) in {rule.group_id}.")
    if not prune and any(not r.current for r in rules):
        ui.info("`inv access --prune` removes the rules marked old.")


@command(help={"json": "print JSON: every item and the totals", "wide": WIDE_HELP})
def costs(ctx: Context, json: bool = False, wide: bool = False) -> None:
    """What ec2kit's resources cost now: instances, volumes, snapshots, images, public IPv4; per hour and per month."""
    from ..aws.costs import dollars

    found = domain(ctx).costs()
    if json:
        ui.print_json(found.as_dict())
        return
    title, columns, rows, empty = found._show()
    ui.print_table(
        title, list(columns), rows, empty=empty, priority=("kind", "name", "$/h", "$/month", "what", "spent", "since"), wide=wide
    )
    total = found.total
    if found:
        ui.console().print(
            f"In all: {dollars(total.hourly)}/h, {dollars(total.monthly)} a month (730 h) at today's prices"
            + (f"; {dollars(total.spent)} spent so far by the running instances" if total.spent else "")
            + "."
        )
    if total.upper_bound:
        ui.info("Snapshots and images are priced at their full size: an upper bound (AWS bills only changed blocks).")
    if total.unpriced:
        ui.info(f"Not counted (no price found): {', '.join(total.unpriced)}.")
    for note in found.notes:
        ui.info(note)


@command(aws=False, help={"text": "part of a region's name, e.g. Ohio, Frankfurt, Tokyo"})
def region(ctx: Context, text: str) -> None:
    """Print the code of the first region whose name contains TEXT: inv region Ohio → us-east-2."""
    from ..aws.regions import find_region

    print(find_region(text))


def confirm_instance_action(ctx: Context, name: str, verb: str, *, yes: bool) -> None:
    """Ask before touching a live run's instance (spotrun.outcome; imported here only when called)."""
    from ..spotrun.outcome import confirm_instance_action as confirm

    confirm(ctx, name, verb, yes=yes)
