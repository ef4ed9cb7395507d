"""The sandbox's pretend AWS account, turned from outside: spot interruptions, capacity, quotas,
the caller's IP, SSH enforcement, and ``reset()`` (re-exported by ``ec2kit.sandbox``).

Each function takes Settings or a SandboxInfo, talks to the daemon's control server and raises
SandboxError when it refuses. ``reset()`` puts every knob back to its default.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ...errors import SandboxError
from .info import SandboxInfo, request
from .process import control

if TYPE_CHECKING:
    from ...settings import Settings

__all__ = [
    "interrupt",
    "reset",
    "account",
    "caller_ip",
    "set_caller_ip",
    "enforce_ssh_rules",
    "set_quota",
    "enforce_quotas",
    "deny_quota_access",
    "set_capacity",
    "capacity_returns",
    "run_boot_scripts",
    "throttle",
    "throttled",
    "eventual_consistency",
    "not_found_lookups",
    "snapshot_pending",
    "image_takes_volumes",
]


def _post(settings_or_info: Settings | SandboxInfo, path: str, what: str, **params: Any) -> dict[str, Any]:
    info = control(settings_or_info)
    query = urlencode({k: v for k, v in params.items() if v is not None})
    code, body = request(f"{info.control_url}{path}{'?' + query if query else ''}", "POST")
    if code != 200:
        raise SandboxError(f"The sandbox refused to {what}: {(body or {}).get('error', code)}.")
    return body


def account(settings_or_info: Settings | SandboxInfo) -> dict[str, Any]:
    """The account's knobs now: caller_ip, enforce_ssh, quotas, enforced_quotas, no_capacity, …"""
    info = control(settings_or_info)
    code, body = request(f"{info.control_url}/account")
    if code != 200:
        raise SandboxError(f"The sandbox did not describe its account ({code}).")
    return body


def caller_ip(settings_or_info: Settings | SandboxInfo) -> str:
    """The public IPv4 the sandbox says this machine has (what ``GET info.checkip_url`` answers)."""
    return str(account(settings_or_info)["caller_ip"])


def set_caller_ip(settings_or_info: Settings | SandboxInfo, ip: str) -> None:
    """Pretend this machine's public IPv4 is ``ip`` (a laptop that moved networks)."""
    _post(settings_or_info, "/account", f"set the caller IP to {ip!r}", caller_ip=ip)


def enforce_ssh_rules(settings_or_info: Settings | SandboxInfo, on: bool = True) -> None:
    """Gate SSH by security groups (on by default; ``on=False`` opens every instance): an instance whose groups do not allow tcp/22
    from the caller IP gets a blackhole address, so connecting times out as on AWS."""
    _post(settings_or_info, "/account", "switch SSH enforcement", enforce_ssh=int(on))


def run_boot_scripts(settings_or_info: Settings | SandboxInfo, on: bool = True) -> None:
    """Run an instance's ``/var/lib/cloud/scripts/per-boot/*`` when it starts again after a stop, as cloud-init does on
    Ubuntu AMIs (on by default; ``on=False``: an image without cloud-init, whose boots run nothing of the user's)."""
    _post(settings_or_info, "/account", "switch boot scripts", boot_scripts=int(on))


def set_quota(settings_or_info: Settings | SandboxInfo, quota_code: str, value: float, *, enforce: bool = True) -> None:
    """Set EC2 vCPU quota ``quota_code`` (e.g. ``L-DB2E81BA``, Running On-Demand G and VT) to
    ``value``: GetServiceQuota reports it and, unless ``enforce=False``, launches past it fail."""
    _post(settings_or_info, f"/quota/{quota_code}", f"set quota {quota_code}", value=value, enforce=int(enforce))


def enforce_quotas(settings_or_info: Settings | SandboxInfo, on: bool = True) -> None:
    """Check launches against every vCPU quota, defaults included (5 Standard, 0 for G/P/…)."""
    _post(settings_or_info, "/account", "switch quota enforcement", enforce_quotas=int(on))


def deny_quota_access(settings_or_info: Settings | SandboxInfo, denied: bool = True) -> None:
    """Service Quotas calls fail with AccessDeniedException (a user without servicequotas:*)."""
    _post(settings_or_info, "/account", "change quota access", quota_access="denied" if denied else "allowed")


def set_capacity(
    settings_or_info: Settings | SandboxInfo,
    instance_type: str,
    zone: str,
    available: bool = True,
    *,
    market: str | None = None,
    interrupt_after: float | None = None,
) -> list[str]:
    """Empty (``available=False``) or refill pool (type, zone[, market: spot|on-demand; both when
    None]). Refilling fulfils spot requests waiting on it; returns the instance ids launched.
    ``interrupt_after=S`` marks the pool as one that interrupts: each spot instance launched into
    it from now on is reclaimed S s after launch (notice min(S, 120) s before); -1 unmarks it."""
    body = _post(
        settings_or_info,
        "/capacity",
        f"change capacity of {instance_type} in {zone}",
        type=instance_type,
        zone=zone,
        market=market,
        available=int(available),
        interrupt_after=interrupt_after,
    )
    return list(body.get("launched", []))


def capacity_returns(settings_or_info: Settings | SandboxInfo, instance_id: str) -> None:
    """EC2 starts again an instance it stopped for a spot interruption (new public IP)."""
    _post(settings_or_info, f"/capacity-returns/{instance_id}", f"restart {instance_id}")


def throttle(
    settings_or_info: Settings | SandboxInfo, seconds: float, *, code: str = "RequestLimitExceeded", actions: Iterable[str] = ()
) -> dict[str, Any]:
    """For ``seconds`` from now every EC2 (SSM, quota) API call answers HTTP 503 ``code``, as AWS does when it
    throttles an account; ``actions`` limits it to those (AWS throttles by action bucket); 0 ends it. The log
    of refused calls starts afresh (see :func:`throttled`)."""
    names = ",".join(actions) or None
    return _post(settings_or_info, "/throttle", f"throttle for {seconds} s", seconds=seconds, code=code, actions=names)


def throttled(settings_or_info: Settings | SandboxInfo) -> dict[str, Any]:
    """``{"left": s, "refused": [actions…], "passed": [actions answered since the window opened]}``."""
    info = control(settings_or_info)
    code, body = request(f"{info.control_url}/throttle")
    if code != 200:
        raise SandboxError(f"The sandbox did not describe its throttle ({code}).")
    return body


def eventual_consistency(settings_or_info: Settings | SandboxInfo, lookups: int = 1) -> None:
    """A just-created instance, group, volume or image answers NotFound to its first ``lookups`` calls
    naming it by id (AWS's eventual consistency; 1 by default, 0 turns it off)."""
    _post(settings_or_info, "/account", f"set eventual consistency to {lookups} lookups", fresh_lookups=int(lookups))


def not_found_lookups(settings_or_info: Settings | SandboxInfo) -> list[tuple[str, str]]:
    """The calls the sandbox answered NotFound for a just-created id since the last reset: [(action, id), …]."""
    info = control(settings_or_info)
    code, body = request(f"{info.control_url}/consistency")
    if code != 200:
        raise SandboxError(f"The sandbox did not describe its eventual consistency ({code}).")
    return [(str(a), str(i)) for a, i in body.get("refused", [])]


def snapshot_pending(settings_or_info: Settings | SandboxInfo, seconds: float) -> None:
    """New snapshots stay ``pending`` for ``seconds`` (2 by default), refusing CreateVolume meanwhile."""
    _post(settings_or_info, "/account", f"keep snapshots pending {seconds} s", snapshot_seconds=float(seconds))


def image_takes_volumes(settings_or_info: Settings | SandboxInfo, on: bool = True) -> None:
    """CreateImage maps every attached EBS volume into the image unless told NoDevice (on by default, as AWS)."""
    _post(settings_or_info, "/account", "switch CreateImage's volume mapping", image_takes_volumes=int(on))


def interrupt(
    settings: Settings | SandboxInfo, instance_id: str, delay: float = 120.0, *, restart_after: float | None = None
) -> dict[str, Any]:
    """Schedule a spot interruption: the notice shows now, the instance is reclaimed after ``delay`` s
    (AWS's 120 by default; 0 at once with no notice, which AWS may also do). Reclaimed means
    terminated, or stopped when its request asked InstanceInterruptionBehavior=stop; a stopped one
    starts again after ``restart_after`` s, or when ``capacity_returns(settings, instance_id)``."""
    info = control(settings)
    url = f"{info.control_url}/interrupt/{instance_id}?delay={float(delay)}"
    if restart_after is not None:
        url += f"&restart_after={float(restart_after)}"
    code, body = request(url, "POST")
    if code != 200:
        raise SandboxError(f"Could not interrupt {instance_id} in the sandbox: {(body or {}).get('error', code)}.")
    return dict(body)


def reset(settings: Settings | SandboxInfo) -> None:
    """Wipe the sandbox's EC2 state (moto reset) and drop every host, volume and image file."""
    info = control(settings)
    code, body = request(f"{info.control_url}/reset", "POST", timeout=60)
    if code != 200:
        raise SandboxError(f"The sandbox reset failed: {(body or {}).get('error', code)}. See {info.dir / 'daemon.log'}.")
