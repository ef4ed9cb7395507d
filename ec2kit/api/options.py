"""The options both faces take, checked and completed once: defaults filled in, sizes and tags validated.

The command line and ``from ec2kit import EC2`` both end here, so a default (the instance type, a
disk size from ec2kit.toml) or a check exists once. Messages name the option the way the caller
spelled it: ``--disk 0`` on the command line, ``disk=0`` from Python (``Spelling``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..defaults import LAUNCH_TYPE, MAX_DISK_GB, RESERVED_TAG_PREFIXES, RUN_TYPE
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..aws.gpus import GpuType
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


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(value: str | float | int, option: str = "older_than", spelling: Spelling = PYTHON) -> float:
    """``'7d'``, ``'36h'``, ``'90m'``, ``'2w'``, ``'0'`` (or seconds as a number from Python) → seconds.

    A bare number other than 0 on the command line is refused: 7 could be days or hours.
    """
    import math
    import re

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw]?)", text)
        if found is None or (not found.group(2) and float(found.group(1)) != 0):
            raise ConfigError(
                f"{spelling.given(option, value)}: not an age; give a number and a unit (s, m, h, d, w).",
                hint=f"Examples: {spelling.given(option, '7d')}, {spelling.given(option, '36h')}, or 0 for any age.",
            )
        seconds = float(found.group(1)) * _DURATION_UNITS[found.group(2) or "s"]
    if not math.isfinite(seconds) or seconds < 0 or seconds > 100 * 365 * 86400:
        raise ConfigError(
            f"{spelling.given(option, value)}: an age is 0 up to 100 years.", hint=f"Example: {spelling.given(option, '7d')}."
        )
    return seconds


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
    workdir: str | Path | None = None,
) -> dict[str, Any]:
    """What `spot-run` and `sweep` launch with: the given options, else ec2kit.toml's, else m5.large."""
    from ..settings import release_patience

    release_patience()  # a bad EC2KIT_RELEASE_PATIENCE is said now, not when the run's instance is released
    default = settings.default
    local = workdir_option(settings, workdir, spelling)
    return {
        "workdir": str(local) if local is not None else None,
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


# GPUs by name ---------------------------------------------------------------------------
MAX_GPU_POOLS = 10  # types a spot fleet gets from --gpus (AWS allows 300 overrides: types × zones)
_GPU_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(gb|g|gib|mb|mib|)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class GpuRequest:
    """What ``--gpus MODEL[,MODEL…][:COUNT]`` and ``--gpu-memory`` ask for: one of ``models`` (none: any),
    exactly ``count`` GPUs (1 unless given), each with at least ``memory_mib``."""

    models: tuple[str, ...]
    count: int
    memory_mib: int | None = None
    memory_text: str = ""

    @property
    def model(self) -> str | None:
        """The models as said: ``A10G`` or ``A10G or L4`` (None: any GPU)."""
        return " or ".join(self.models) or None

    def __str__(self) -> str:
        what = f"{self.count}× {self.model or 'GPU'}"
        return what + (f" with ≥ {self.memory_text} each" if self.memory_text else "")


def parse_gpu_memory(value: str | int | float | None, spelling: Spelling = PYTHON) -> tuple[int, str] | None:
    """``"24GB"`` → (22888, "24GB"): MiB per GPU, as DescribeInstanceTypes counts it. GB are decimal, as AWS
    sizes GPUs (its A10G of 22888 MiB is 24 GB); GiB and MB/MiB are accepted; a bare number is GB."""
    if value is None or value == "":
        return None
    found = _GPU_MEMORY.match(str(value))
    amount = float(found.group(1)) if found else 0.0
    if not found or amount <= 0:
        raise ConfigError(
            f"{spelling.given('gpu_memory', value)}: not an amount of GPU memory.",
            hint=f"Give it in GB, e.g. {spelling.given('gpu_memory', '24GB')} (also GiB or MB).",
        )
    unit = found.group(2).lower()
    mib = {"": amount * 1e9 / 2**20, "g": amount * 1e9 / 2**20, "gb": amount * 1e9 / 2**20, "gib": amount * 1024}.get(
        unit, amount * 1e6 / 2**20 if unit == "mb" else amount
    )
    return int(mib), f"{found.group(1)}{found.group(2) or 'GB'}"


def gpu_request(
    gpus: str | None,
    gpu_memory: str | int | float | None,
    *,
    type: str | None,
    types: str | Sequence[str] | None,
    spelling: Spelling = PYTHON,
) -> GpuRequest | None:
    """``--gpus A10G:1`` (or ``A10G,L4``: either) / ``--gpu-memory 24GB`` checked (no AWS call); None when neither is given.
    ``--gpus`` chooses the instance types, so ``--type``/``--types`` with it is an error."""
    memory = parse_gpu_memory(gpu_memory, spelling)
    if not gpus and memory is None:
        return None
    if type or split_list(types):
        given = spelling.name("type") if type else spelling.name("types")
        raise ConfigError(
            f"{spelling.name('gpus') if gpus else spelling.name('gpu_memory')} chooses the instance types itself: "
            f"drop {given}, or drop {spelling.name('gpus') if gpus else spelling.name('gpu_memory')} to name the types.",
            hint=f"`{'inv gpus' if spelling.cli else 'ec2.gpus()'}` lists the GPU types with their prices.",
        )
    models: tuple[str, ...] = ()
    count = 1
    if gpus:
        text = str(gpus).strip()
        names, sep, number = text.rpartition(":") if ":" in text else (text, "", "")
        models = tuple(dict.fromkeys(n.strip() for n in names.split(",")))
        bad_count = (sep and not number.strip().isdigit()) or (number.strip().isdigit() and int(number) < 1)
        if not all(models) or any(":" in m for m in models) or bad_count:
            raise ConfigError(
                f"{spelling.given('gpus', gpus)}: give a GPU model (or several, comma-separated: any of them will do) "
                "and, optionally, how many: MODEL[,MODEL…][:COUNT] with COUNT a whole number of at least 1.",
                hint=f"For example {spelling.given('gpus', 'A10G')}, {spelling.given('gpus', 'L4:1')}, "
                f"{spelling.given('gpus', 'A10G,L4')} or {spelling.given('gpus', 'A100:8')}.",
            )
        count = int(number) if sep else 1
    return GpuRequest(models, count, memory[0] if memory else None, memory[1] if memory else "")


def check_gpu_model(
    model: str, offered: Sequence[GpuType], region: str, spelling: Spelling = PYTHON, *, option: str | None = "gpus"
) -> str:
    """``model`` when the region offers it (any case: ``a10g``), else a ConfigError listing the models it offers."""
    from ..aws.gpus import model_key, models

    if not any(model_key(t.model) == model_key(model) for t in offered):
        raise ConfigError(
            f"{spelling.given(option, model) if option else repr(model)}: {region} offers no GPU model of that name. "
            f"Models offered: {', '.join(models(offered)) or 'none'}.",
            hint=f"{'`inv gpus`' if spelling.cli else 'ec2.gpus()'} lists every GPU type with its prices.",
        )
    return model


def choose_gpu_types(request: GpuRequest, offered: Sequence[GpuType], region: str, spelling: Spelling = PYTHON) -> list[str]:
    """The instance types that fit ``request`` among the region's GPU types (from ``GpuInfo``), cheapest
    first, all with the first one's CPU architecture and GPU maker (one image fits them all); at most
    :data:`MAX_GPU_POOLS`. A ConfigError lists what the region offers when nothing fits."""
    from ..aws.gpus import cost_key, matching

    lister = "`inv gpus`" if spelling.cli else "ec2.gpus()"
    for model in request.models:
        check_gpu_model(model, offered, region, spelling)

    def among(count: int | None) -> list[GpuType]:  # every model's fitting types, cheapest first
        found = {t.type: t for m in request.models or (None,) for t in matching(offered, m, count, request.memory_mib)}
        return sorted(found.values(), key=cost_key)

    fit = among(request.count)
    if not fit:
        same = among(None)
        counts = sorted({int(t.count) for t in same})
        what = f"{request.model or 'GPU'}" + (f" with ≥ {request.memory_text}" if request.memory_text else "")
        listed = ", ".join(str(c) for c in counts[:-1]) + (" or " if len(counts) > 1 else "") + str(counts[-1]) if counts else ""
        offers = f"its types have {listed} {what} each" if counts else f"no type has {what}"
        raise ConfigError(
            f"No instance type in {region} has {request}: {offers}.",
            hint=f"{lister} lists every GPU type with its GPUs and memory.",
        )
    first = fit[0]
    return [t.type for t in fit if (t.arch, t.manufacturer) == (first.arch, first.manufacturer)][:MAX_GPU_POOLS]


def apply_gpus(options: dict[str, Any], types: list[str]) -> dict[str, Any]:
    """Launch options with ``--gpus``' types: the cheapest is ``type``; with spot the rest are the fleet's ``types``."""
    options["type"] = types[0]
    if "types" in options:
        options["types"] = types[1:]
    return options


def workdir_option(settings: Settings, workdir: str | Path | None, spelling: Spelling = PYTHON) -> Path | None:
    """The directory to sync (``--workdir``, else ``workdir`` in ec2kit.toml, else none), checked before any AWS call."""
    from ..workdir import check_workdir

    chosen = workdir if workdir is not None and str(workdir) != "" else settings.default("workdir")
    if chosen is None or str(chosen) == "":
        return None
    return check_workdir(chosen, flag=spelling.name("workdir"))
