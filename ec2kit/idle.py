"""Idle autostop settings, pure: an idle window (``30m``, ``2h``, ``90s``, ``off``), the action, the CPU threshold.

Both faces and ec2kit.toml end here, so ``--idle 0``, ``idle = "-5m"`` and ``idle="abc"`` fail the same
way, before anything is launched. The watcher on the instance (templates/autostop/autostop.sh.j2) reads
the numbers this module writes; ``AutostopSetting.tag`` is what ``inv instances`` shows without SSH.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigError

ACTIONS = ("stop", "terminate")
DEFAULT_ACTION = "stop"
DEFAULT_CPU = 10.0  # percent of one core, per process, averaged over one check interval
DEFAULT_GPU = 5  # percent utilisation of any GPU (nvidia-smi)
OFF_WORDS = ("off", "none", "no", "false")
_PART = re.compile(r"(\d+)\s*([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_WINDOW = 30 * 86400


def parse_window(value: object, *, option: str = "--idle", minimum: int = 120, allow_off: bool = True) -> int | None:
    """``"30m"`` → 1800, ``"1h30m"`` → 5400, ``"90s"`` → 90, a bare number means minutes; ``"off"`` → None.

    Anything else (0, a negative, a word, below ``minimum`` seconds) is a ConfigError naming ``option``.
    """
    text = str(value).strip().lower() if value is not None else ""
    if allow_off and text in OFF_WORDS:
        return None
    hint = f"Give a duration such as 30m, 2h or 1h30m (at least {format_window(minimum)}){', or off' if allow_off else ''}."
    seconds = 0
    if re.fullmatch(r"\d+", text):
        seconds = int(text) * 60
    elif text and re.fullmatch(r"(\s*\d+\s*[smhd])+\s*", text):
        seconds = sum(int(n) * _UNIT[u] for n, u in _PART.findall(text))
    else:
        raise ConfigError(f"{option} {value!r}: an idle window is a duration, not {value!r}.", hint=hint)
    if seconds <= 0:
        raise ConfigError(f"{option} {value!r}: an idle window of zero would stop the machine at once.", hint=hint)
    if seconds < minimum:
        raise ConfigError(
            f"{option} {value!r}: the watcher looks every {format_window(minimum // 2)}, so the shortest idle window "
            f"is {format_window(minimum)}.",
            hint=hint,
        )
    if seconds > MAX_WINDOW:
        raise ConfigError(f"{option} {value!r}: an idle window is at most 30 days.", hint=hint)
    return seconds


def format_window(seconds: int) -> str:
    """1800 → ``30m``, 5400 → ``1h30m``, 90 → ``1m30s``."""
    out, rest = "", int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"


def check_action(value: object, *, option: str = "--idle-action") -> str:
    """``stop`` or ``terminate``, else a ConfigError naming ``option``."""
    text = str(value).strip().lower() if value is not None else ""
    if text not in ACTIONS:
        raise ConfigError(
            f"{option} {value!r}: an idle instance can stop (disk kept) or terminate (disk deleted).",
            hint="Give stop or terminate.",
        )
    return text


def check_cpu(value: object, *, option: str = "--idle-cpu") -> float:
    """A per-process CPU threshold in percent of one core, 0 < x <= 100, else a ConfigError naming ``option``."""
    try:
        number = float(str(value).strip().rstrip("%"))
    except ValueError:
        number = float("nan")
    if not 0 < number <= 100:  # refuses nan too
        raise ConfigError(
            f"{option} {value!r}: the CPU threshold is a percentage of one core above 0 and at most 100.",
            hint="Give e.g. 10: a process using more than 10% of a core counts as work.",
        )
    return number


@dataclass(frozen=True)
class AutostopSetting:
    """An instance's autostop: ``window`` seconds (None: off), what it does then, and the CPU threshold."""

    window: int | None
    action: str = DEFAULT_ACTION
    cpu: float = DEFAULT_CPU

    @property
    def armed(self) -> bool:
        return self.window is not None

    @property
    def tag(self) -> str:
        """The ``ec2kit:idle`` tag's value: ``30m stop`` or ``off``."""
        return f"{format_window(self.window)} {self.action}" if self.window else "off"

    def __str__(self) -> str:
        if not self.window:
            return "off"
        return f"{self.action} after {format_window(self.window)} idle (CPU above {self.cpu:g}% counts as work)"

    @classmethod
    def from_tag(cls, value: str | None) -> AutostopSetting | None:
        """What ``tag`` wrote (None when there is no tag or it cannot be read)."""
        if not value:
            return None
        if value.strip() == "off":
            return cls(None)
        parts = value.split()
        try:
            window = parse_window(parts[0], minimum=1, allow_off=False)
            action = check_action(parts[1] if len(parts) > 1 else DEFAULT_ACTION)
        except ConfigError:
            return None
        return cls(window, action)
