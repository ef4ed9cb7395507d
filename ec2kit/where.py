"""Where a command acts: AWS or the local sandbox, the cloud there, and how an instance there is reached.

:class:`Where` decides the mode once per process (the setting, else whether boto3 finds
credentials; remembered in ``EC2KIT_HOME/mode.json`` so a warm command needs no boto3), builds the
:class:`~ec2kit.aws.cloud.Cloud` for it (starting the sandbox on demand) and the host cache of
that account scope. How an instance is reached is one :class:`Reach`: an instance in, an
:class:`Address` out, the same on AWS (its public or private IP, port 22) as in the sandbox
(the loopback sshd the sandbox runs for it). Holding connections is :mod:`ec2kit.connections`'s job.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .errors import ConfigError, CredentialsError, WrongState
from .settings import Settings

if TYPE_CHECKING:
    from .aws.cloud import Cloud
    from .aws.models import Instance
    from .hostcache import HostCache
    from .sandbox import SandboxInfo


@dataclass(frozen=True)
class Address:
    """Where an instance's sshd answers, as whom to log in, and why that address (for messages)."""

    host: str
    port: int
    user: str
    via: str = ""


class Reach(Protocol):
    """How an instance is reached over SSH now (WrongState or SandboxError when it cannot be)."""

    def address(self, inst: Instance) -> Address:
        """The address to dial for ``inst``."""
        ...


def aws_credentials_available(profile: str | None) -> bool:
    """Whether boto3's standard chain finds credentials (env, profile, SSO, IMDS…)."""
    import boto3
    import botocore.exceptions

    try:
        return boto3.Session(profile_name=profile).get_credentials() is not None
    except botocore.exceptions.ProfileNotFound as err:
        raise ConfigError(f"The AWS profile '{profile}' does not exist.", hint="Check ~/.aws/config or drop --profile.") from err
    except botocore.exceptions.BotoCoreError as err:
        raise CredentialsError(
            f"Your AWS credentials could not be read: {err}.",
            hint="Run `aws configure` or set EC2KIT_SANDBOX=1 to use the local sandbox.",
        ) from err


def ssh_address(inst: Instance, choice: str = "auto") -> tuple[str, str]:
    """(address to dial, why that one) for ``inst``: ``auto`` takes the public IP when there is one,
    else the private; ``public`` / ``private`` (EC2KIT_SSH_ADDRESS) force one. WrongState without one."""
    if inst.state not in ("pending", "running"):
        raise WrongState(
            f"Instance {inst.label} is {inst.state}, so it has no public IP address to SSH to.",
            hint=f"Start it with `inv start {inst.name or inst.id}`.",
        )
    if choice != "private" and inst.public_ip:
        return inst.public_ip, "its public IP"
    if choice != "public" and inst.private_ip:
        why = "EC2KIT_SSH_ADDRESS=private" if choice == "private" else "it has no public IP"
        return inst.private_ip, f"its private IP ({why}): reachable only from inside its VPC (VPN, bastion, another instance)"
    if choice == "public":
        hint = "It has a private IP only: unset EC2KIT_SSH_ADDRESS (auto uses it) from inside its VPC, or launch in a subnet that assigns public IPs."
    else:
        hint = "Launch it in a subnet that assigns public IPs, or set EC2KIT_SSH_ADDRESS=private inside the VPC."
    which = {"public": "public ", "private": "private "}.get(choice, "")
    raise WrongState(f"Instance {inst.label} has no {which}IP address (it is {inst.state}).", hint=hint)


class AwsReach:
    """On AWS: port 22 of the address :func:`ssh_address` picks, as the login user."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def address(self, inst: Instance) -> Address:
        host, via = ssh_address(inst, self.settings.ssh_address)
        return Address(host, 22, self.settings.login_user, via)


class SandboxReach:
    """In the sandbox: the loopback sshd it runs for the instance, waited for up to ``timeout`` s."""

    def __init__(self, info: SandboxInfo, timeout: float = 10) -> None:
        from .sandbox import Resolver

        self.resolver, self.timeout = Resolver(info), timeout

    def address(self, inst: Instance) -> Address:
        from .errors import SandboxError

        deadline = time.monotonic() + self.timeout
        while True:
            found = self.resolver.address(inst.id)
            if found:
                return Address(str(found["host"]), int(found["port"]), str(found["user"]), "the sandbox's sshd for it")
            if time.monotonic() >= deadline:
                raise SandboxError(
                    f"Sandbox instance {inst.label} has no running SSH server after {self.timeout:.0f}s.",
                    hint="Is it running? Check `inv instances`; start it with `inv start NAME`.",
                )
            time.sleep(0.1)


def cached_address(where: Where, inst: Instance) -> Address | None:
    """Where an instance taken from the host cache answers, without AWS or the sandbox's help: on AWS
    its recorded address; in the sandbox, the sshd address last reached there (None: none remembered)."""
    if not where.mode_without_boto3():
        return AwsReach(where.settings).address(inst)
    cache = where.host_cache
    found = cache.address(inst.id, inst.public_ip) if cache is not None else None
    if found is None:
        return None
    return Address(str(found["host"]), int(found["port"]), str(found["user"]), "where it was last reached")


class Where:
    """AWS or the sandbox for this command, its Cloud and host cache, and how its instances are reached.

    ``cloud``/``reach``: use this EC2 layer (e.g. a bare moto server) and this way to reach its
    instances instead of choosing AWS or the sandbox (no host cache then).
    """

    def __init__(
        self, settings: Settings, *, quiet: bool = False, cloud: Cloud | None = None, reach: Reach | None = None
    ) -> None:
        self.settings, self.quiet = settings, quiet
        self._cloud: Cloud | None = cloud
        self._reach: Reach | None = reach if reach is not None else (AwsReach(settings) if cloud is not None else None)
        self._sandbox: SandboxInfo | None = None
        self._sandbox_mode: bool | None = None
        self._cache_wanted = cloud is None  # a cloud handed in: no host cache
        self._cache: HostCache | None = None
        self._lock = threading.RLock()

    # -- the mode ------------------------------------------------------------------
    @property
    def uses_sandbox(self) -> bool:
        """True when commands go to the local sandbox instead of AWS."""
        if self.settings.sandbox is not None:
            return self.settings.sandbox
        if self._sandbox_mode is None:
            from .hostcache import ModeMemo, credentials_fingerprint

            fingerprint = credentials_fingerprint(self.settings.profile)
            self._sandbox_mode = not aws_credentials_available(self.settings.profile)
            ModeMemo(self.settings.home).put(fingerprint, self._sandbox_mode)
        return self._sandbox_mode

    def mode_without_boto3(self) -> bool | None:
        """Sandbox (True) or AWS (False) as far as known without asking boto3: the setting, else what
        the last command found while the credential files and variables were as they are now."""
        if self.settings.sandbox is not None:
            return self.settings.sandbox
        if self._sandbox_mode is None:
            from .hostcache import ModeMemo, credentials_fingerprint

            self._sandbox_mode = ModeMemo(self.settings.home).get(credentials_fingerprint(self.settings.profile))
        return self._sandbox_mode

    @property
    def host_cache(self) -> HostCache | None:
        """Where instances were last seen, for this account scope (None when a cloud was handed in,
        with EC2KIT_HOST_CACHE=0, or while the mode is unknown without boto3)."""
        if self._cache is None and self._cache_wanted:
            from .hostcache import HostCache
            from .settings import host_cache_enabled

            sandbox = self.mode_without_boto3()
            if not host_cache_enabled() or sandbox is None:
                return None
            self._cache = HostCache(self.settings.home, "sandbox" if sandbox else self.settings.aws_scope())
        return self._cache

    # -- the cloud -----------------------------------------------------------------
    @property
    def contacted(self) -> bool:
        """Whether the Cloud exists yet (a warm cached command never makes one)."""
        return self._cloud is not None

    @property
    def cloud(self) -> Cloud:
        """The EC2 layer, pointed at AWS or at the sandbox (started on demand); every DescribeInstances
        it makes updates the host cache."""
        with self._lock:
            if self._cloud is None:
                self._cloud = self._make_cloud()
                cache = self.host_cache
                if cache is not None:
                    self._cloud.on_instances = cache.remember
            return self._cloud

    @property
    def sandbox(self) -> SandboxInfo | None:
        """The running sandbox's endpoints, when the sandbox is in use."""
        self.cloud  # noqa: B018 - decides and starts it
        return self._sandbox

    @property
    def reach(self) -> Reach:
        """How this command's instances are reached (decides the mode, so may start the sandbox)."""
        self.cloud  # noqa: B018
        assert self._reach is not None
        return self._reach

    def _make_cloud(self) -> Cloud:
        from .aws.cloud import Cloud

        if not self.uses_sandbox:
            self._reach = AwsReach(self.settings)
            return Cloud(self.settings)
        from . import sandbox

        info = sandbox.ensure_running(self.settings)
        self._sandbox, self._reach = info, SandboxReach(info)
        if not self.quiet:
            from .ui import info as say

            why = "EC2KIT_SANDBOX=1" if self.settings.sandbox else "no AWS credentials found"
            say(f"[dim]Using the local sandbox ({why}; state in {info.dir}). Set EC2KIT_SANDBOX=0 to use AWS.[/dim]")
        return Cloud(
            self.settings,
            endpoint_url=info.endpoint_url,
            credentials=dict(sandbox.SANDBOX_CREDENTIALS),
            region=self.settings.region_asked or info.region,  # AWS_REGION is for AWS; a --region is for here too
            checkip_url=info.checkip_url,
        )
