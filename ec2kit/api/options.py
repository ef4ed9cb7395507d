"""The options both faces take, checked and completed once: defaults filled in, sizes and tags validated.

The command line and ``from ec2kit import EC2`` both end here, so a default (the instance type, a
disk size from ec2kit.toml) or a check exists once. Messages name the option the way the caller
spelled it: ``--disk 0`` on the command line, ``disk=0`` from Python (``Spelling``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..defaults import LAUNCH_TYPE, MAX_DISK_GB, RESERVED_TAG_PREFIXES, RUN_TYPE
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..idle import AutostopSetting
    from ..settings import Settings


@dataclass(frozen=True)
class Spelling:
    """How the caller names options: flags (``--disk 60``) on the command line, keywords (``disk=60``) in Python."""

    cli: bool = False

    def name(self, option: str) -> str:
        """``--max-price`` or ``max_price``."""
        return "--" + option.replace("_", "-") if self.cli else option

    def given(self, option: str, value: object) -> str:
        """``--disk 0`` or ``disk=0``."""
        return f"{self.name(option)} {value}" if self.cli else f"{option}={value!r}"


PYTHON = Spelling(cli=False)
CLI = Spelling(cli=True)


def check_disk(disk: int | None, option: str = "disk", spelling: Spelling = PYTHON) -> int | None:
    """A root or data disk size in GB within what EBS allows (gp3: 1-16384), or a ConfigError naming the option."""
    if disk is not None and not 1 <= int(disk) <= MAX_DISK_GB:
        raise ConfigError(
            f"{spelling.given(option, disk)}: a disk is 1 to {MAX_DISK_GB} GB.", hint=f"Example: {spelling.given(option, 60)}."
        )
    return None if disk is None else int(disk)


def check_tags(tags: dict[str, str] | None, spelling: Spelling = PYTHON) -> dict[str, str] | None:
    """Extra tags for a launch: the Name tag and ``ec2kit:``/``aws:`` keys are refused (ec2kit and AWS set them)."""
    for key in tags or {}:
        if key == "Name" or key.lower().startswith(RESERVED_TAG_PREFIXES):
            raise ConfigError(
                f"{spelling.name('tag')} '{key}' is reserved: the Name tag is the instance's name argument, and "
                "ec2kit: and aws: tags are set by ec2kit and AWS.",
                hint="Pick another key, e.g. role.",
            )
    return dict(tags) if tags else None


def split_list(value: str | Iterable[str] | None) -> list[str]:
    """``'a,b, c'`` or ``['a,b', 'c']`` → ``['a', 'b', 'c']``."""
    items = [value] if isinstance(value, str) else list(value or [])
    return [v.strip() for item in items for v in item.split(",") if v.strip()]


def parse_ports(value: str | Sequence[int] | None, spelling: Spelling = PYTHON) -> list[int]:
    """``'8888,8008'`` (or ``[8888, 8008]``) → ``[8888, 8008]``; anything but TCP ports 1-65535 is a ConfigError."""
    items = split_list(value) if isinstance(value, str) else [str(v) for v in value or []]
    ports = []
    for item in items:
        if not item.isdigit() or not 1 <= int(item) <= 65535:
            flag = spelling.name("ports")
            raise ConfigError(
                f"{flag} {value!r}: {item!r} is not a TCP port."
                if spelling.cli
                else f"ports={value!r}: {item!r} is not a TCP port.",
                hint=f"Give ports 1-65535, e.g. {spelling.given('ports', '8888,6006')}.",
            )
        ports.append(int(item))
    return ports


def network(
    settings: Settings, subnet: str | None, security_groups: str | Sequence[str] | None, instance_profile: str | None
) -> dict[str, Any]:
    """Subnet, extra security groups and instance profile, with ec2kit.toml's defaults filled in."""
    default = settings.default
    return {
        "subnet": subnet or default("subnet"),
        "security_groups": split_list(security_groups) or list(default("security_groups") or []),
        "instance_profile": instance_profile or default("instance_profile"),
    }


def idle_setting(
    settings: Settings,
    *,
    idle: str | None,
    idle_action: str | None,
    idle_cpu: float | str | None,
    spot: bool,
    spelling: Spelling = PYTHON,
) -> AutostopSetting | None:
    """The autostop a launch arms: ``idle`` (else ec2kit.toml's ``idle``; "off": none), its action and CPU threshold.

    A one-time spot instance can only terminate: its action defaults to terminate and ``stop`` is refused.
    Checked before anything is launched.
    """
    from ..idle import AutostopSetting, check_action, check_cpu, parse_window
    from ..settings import idle_check_every

    default = settings.default
    given = idle if idle is not None else default("idle")
    minimum = 2 * idle_check_every()
    window = parse_window(given, option=spelling.name("idle"), minimum=minimum) if given is not None else None
    if idle_action is not None:
        action = check_action(idle_action, option=spelling.name("idle_action"))
    else:
        action = "terminate" if spot else check_action(default("idle_action"), option="idle_action")
    if spot and action == "stop" and window:
        raise ConfigError(
            f"{spelling.given('idle_action', 'stop')}: a one-time spot instance cannot stop, only terminate (its disk "
            "goes with it).",
            hint=f"Use {spelling.given('idle_action', 'terminate')}, or launch on demand to keep the disk when idle.",
        )
    cpu = check_cpu(idle_cpu if idle_cpu is not None else default("idle_cpu"), option=spelling.name("idle_cpu"))
    if window is None:
        if idle_action is not None or idle_cpu is not None:
            raise ConfigError(
                f"{spelling.name('idle_action')} and {spelling.name('idle_cpu')} shape an idle window: add "
                f"{spelling.given('idle', '30m')} (or set idle in ec2kit.toml)."
            )
        return None
    return AutostopSetting(window, action, cpu)


def launch_options(
    settings: Settings,
    *,
    image: str | None,
    type: str | None,
    disk: int | None,
    spot: bool,
    max_price: float | str | None,
    zone: str | None,
    tags: dict[str, str] | None,
    types: str | Sequence[str] | None,
    on_demand_fallback: bool,
    subnet: str | None,
    security_groups: str | Sequence[str] | None,
    instance_profile: str | None,
    open_ssh: bool,
    spelling: Spelling = PYTHON,
) -> dict[str, Any]:
    """What `launch` launches with: the given options, else ec2kit.toml's, else t3.medium; checked before any AWS call."""
    more_types = split_list(types)
    if (more_types or on_demand_fallback) and not spot:
        raise ConfigError(
            f"{spelling.name('types')} and {spelling.name('on_demand_fallback')} choose among spot capacity pools: "
            f"add {'--spot' if spelling.cli else 'spot=True'} (or drop them)."
        )
    default = settings.default
    options: dict[str, Any] = {
        "image": image or default("image"),
        "disk": check_disk(disk if disk is not None else default("disk"), "disk", spelling),
        "type": type or default("type") or LAUNCH_TYPE,
        "spot": spot,
        "max_price": max_price or default("max_price"),
        "zone": zone,
        "tags": check_tags(tags, spelling),
        "open_ssh": open_ssh,
        **network(settings, subnet, security_groups, instance_profile),
    }
    if spot:
        options.update(types=more_types, on_demand_fallback=on_demand_fallback)
    return options


def run_options(
    settings: Settings,
    *,
    image: str | None,
    type: str | None,
    types: str | Sequence[str] | None,
    disk: int | None,
    max_price: float | str | None,
    on_demand_fallback: bool,
    vars: dict[str, Any] | None,
    open_ssh: bool,
    subnet: str | None,
    security_groups: str | Sequence[str] | None,
    instance_profile: str | None,
    spelling: Spelling = PYTHON,
) -> dict[str, Any]:
    """What `spot-run` and `sweep` launch with: the given options, else ec2kit.toml's, else m5.large."""
    default = settings.default
    return {
        "image": image or default("image"),
        "type": type or default("type") or RUN_TYPE,
        "types": split_list(types) or list(default("types")),
        "on_demand_fallback": on_demand_fallback,
        "disk": check_disk(disk if disk is not None else default("disk"), "disk", spelling),
        "max_price": max_price or default("max_price"),
        "vars": dict(vars or {}),
        "open_ssh": open_ssh,
        **network(settings, subnet, security_groups, instance_profile),
    }
