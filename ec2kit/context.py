"""The Context handed to every command: settings, the cloud, SSH hosts.

Decides once per process whether ec2kit talks to real AWS or to the local
sandbox, and owns the SSH connections it opens (closed by :meth:`close`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, CredentialsError
from .settings import Settings

if TYPE_CHECKING:
    from .aws.cloud import Cloud
    from .aws.models import Instance
    from .hostcache import HostCache
    from .sandbox import SandboxInfo
    from .ssh import SshTarget, Transport


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
    from .errors import WrongState

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


class Context:
    """Settings plus lazily created cloud and SSH hosts, shared by a command."""

    def __init__(
        self, settings: Settings | None = None, *, quiet: bool = False, cloud: Cloud | None = None, resolver: Any = None
    ) -> None:
        """``cloud``/``resolver``: use this EC2 layer (e.g. a bare moto server) and instance → SSH
        address map instead of choosing AWS or the sandbox."""
        self.settings = settings or Settings.from_env()
        self.settings.ensure_home()
        self.quiet = quiet
        self._cloud: Cloud | None = cloud
        self._sandbox: SandboxInfo | None = None
        self._resolver: Any = resolver  # the sandbox's instance → loopback sshd map; None on AWS
        self._hosts: dict[str, Transport] = {}
        self._admitted: set[str] = set()  # instance ids whose groups were checked for this machine's address
        self._lock = threading.RLock()
        self._sandbox_mode: bool | None = None
        self._resolved: dict[str, tuple[Instance, SshTarget]] = {}  # sandbox addresses, remembered once reached
        self._cached: set[str] = set()  # instance ids this command took from the host cache (not yet checked)
        self._host_cache: HostCache | None | bool = cloud is None  # False: none (a cloud was handed in)

    # -- the cloud -----------------------------------------------------------------
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

    def _mode_without_boto3(self) -> bool | None:
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
        if self._host_cache is True:
            from .hostcache import HostCache
            from .settings import host_cache_enabled

            sandbox = self._mode_without_boto3()
            if not host_cache_enabled() or sandbox is None:
                return None
            self._host_cache = HostCache(self.settings.home, "sandbox" if sandbox else self.settings.aws_scope())
        return self._host_cache or None

    @property
    def sandbox(self) -> SandboxInfo | None:
        """The running sandbox's endpoints, when the sandbox is in use."""
        self.cloud  # noqa: B018 - decides and starts it
        return self._sandbox

    @property
    def cloud(self) -> Cloud:
        """The EC2 layer, pointed at AWS or at the sandbox (started on demand)."""
        with self._lock:
            if self._cloud is None:
                self._cloud = self._make_cloud()
            return self._cloud

    def _make_cloud(self) -> Cloud:
        """The Cloud for this command; every DescribeInstances it makes updates the host cache."""
        cloud = self._make_cloud_uncached()
        cache = self.host_cache
        if cache is not None:
            cloud.on_instances = cache.remember
        return cloud

    def _make_cloud_uncached(self) -> Cloud:
        from .aws.cloud import Cloud

        if not self.uses_sandbox:
            return Cloud(self.settings)
        from . import sandbox

        info = sandbox.ensure_running(self.settings)
        self._sandbox = info
        self._resolver = sandbox.Resolver(info)
        if not self.quiet:
            from .ui import info as say

            why = "EC2KIT_SANDBOX=1" if self.settings.sandbox else "no AWS credentials found"
            say(f"[dim]Using the local sandbox ({why}; state in {info.dir}). Set EC2KIT_SANDBOX=0 to use AWS.[/dim]")
        return Cloud(
            self.settings,
            endpoint_url=info.endpoint_url,
            credentials=dict(sandbox.SANDBOX_CREDENTIALS),
            region=info.region,
            checkip_url=info.checkip_url,
        )

    # -- hosts ---------------------------------------------------------------------
    def instance(self, name_or_id: str) -> Instance:
        """The instance called ``name_or_id`` (Name tag or id)."""
        return self.cloud.instance(name_or_id)

    def instances_named(self, names: list[str]) -> dict[str, Instance]:
        """Name or id → Instance for each of ``names`` from one DescribeInstances; names that
        match nothing (or several) are left out, for each caller's own lookup to report.

        When every name is fresh in the host cache, no AWS call is made: those instances are
        marked as cached, and :meth:`reachable` confirms them by connecting."""
        from .aws.models import match_instance
        from .errors import Ec2kitError

        cache = self.host_cache
        if cache is not None and self._cloud is None:
            hit = cache.lookup(names)
            if hit is not None:
                self._cached.update(i.id for i in hit.values())
                return hit
        candidates = self.cloud.instances()
        found = {}
        for name in names:
            try:
                found[name] = match_instance(name, candidates)
            except Ec2kitError:
                pass
        return found

    def target(self, name_or_id: str | Instance) -> SshTarget:
        """How to reach an instance over SSH: the sandbox's loopback sshd, or on AWS its public IP
        when it has one, else its private one (EC2KIT_SSH_ADDRESS=public|private forces one); port
        22, pinned by instance id. First makes sure ec2kit's group admits this machine's address."""
        from .errors import WrongState

        inst = self.instance(name_or_id) if isinstance(name_or_id, str) else name_or_id
        settings = self.settings
        if inst.state in ("stopped", "stopping", "shutting-down", "terminated"):
            which = "private" if settings.ssh_address == "private" else "public"
            raise WrongState(
                f"Instance {inst.label} is {inst.state}: it has no {which} IP address and nothing answers SSH there.",
                hint=f"Start it with `inv start {inst.name or inst.id}`."
                if inst.state in ("stopped", "stopping")
                else "Launch a new one with `inv launch NAME`.",
            )
        if inst.id in self._cached and (cached := self._cached_target(inst)) is not None:
            return cached
        self.cloud  # noqa: B018 - decides sandbox or AWS (and so the resolver)
        self.admit_caller(inst)
        if self._resolver is not None:
            found = self._resolver.wait_address(inst.id, label=inst.label)
            target = self._target_at(inst, found.host, found.port, found.user)
            self._resolved[inst.id] = (inst, target)
            return target
        return self._aws_target(inst)

    def _aws_target(self, inst: Instance) -> SshTarget:
        """Port 22 of the address :func:`ssh_address` picks, as the login user."""
        host, via = ssh_address(inst, self.settings.ssh_address)
        return self._target_at(inst, host, 22, self.settings.login_user, via)

    def _target_at(self, inst: Instance, host: str, port: int, user: str, via: str = "") -> SshTarget:
        """An SshTarget for ``inst`` at this address, with ec2kit's key, pinned by instance id."""
        from .ssh.target import SshTarget

        settings = self.settings
        return SshTarget(
            host=host,
            port=port,
            user=user,
            key_file=settings.key_file,
            alias=inst.id,
            known_hosts=settings.known_hosts,
            name=inst.name,
            via=via,
        )

    def _cached_target(self, inst: Instance) -> SshTarget | None:
        """The SshTarget of an instance taken from the host cache, without AWS or the sandbox's help:
        on AWS from its recorded address; in the sandbox, the sshd address last reached there."""
        if not self._mode_without_boto3():
            return self._aws_target(inst)
        cache = self.host_cache
        found = cache.address(inst.id, inst.public_ip) if cache is not None else None
        if found is None:
            return None
        return self._target_at(inst, str(found["host"]), int(found["port"]), str(found["user"]))

    def reachable(self, found: dict[str, Instance]) -> dict[str, Instance]:
        """Connect now to every instance of ``found`` that came from the host cache (in parallel). If
        any cannot be reached where it was seen, or presents another host key, forget the cache for
        them and return the map from one DescribeInstances instead (the instance moved, stopped, or
        its name now belongs to a new one); otherwise ``found`` as it is."""
        from .errors import Ec2kitError

        cached = [i for i in found.values() if i.id in self._cached]
        if not cached:
            return found
        stale: list[Instance] = []

        def probe(inst: Instance) -> None:
            try:
                self.connect(inst).open()
            except Ec2kitError:
                stale.append(inst)

        threads = [threading.Thread(target=probe, args=(i,)) for i in cached]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self._cached.clear()
        if not stale:
            return found
        for inst in stale:
            self.forget_host(inst.id)
        cache = self.host_cache
        if cache is not None:
            cache.forget(i.id for i in stale)
        if not self.quiet:
            from .ui import info

            info(f"[dim]{', '.join(i.name or i.id for i in stale)}: not where last seen; asking AWS.[/dim]")
        return self.instances_named(list(found))

    def admit_caller(self, inst: Instance, *, fresh: bool = False) -> None:
        """Once per command and instance: if this machine's public address changed, add its /32 to
        ec2kit's group and say so (free while the cached address still stands: see aws/address.py)."""
        from .aws.models import SECURITY_GROUP
        from .errors import Ec2kitError

        with self._lock:
            if inst.id in self._admitted and not fresh:
                return
            self._admitted.add(inst.id)
        groups = [g["GroupId"] for g in inst.raw.get("SecurityGroups", []) if g.get("GroupName") == SECURITY_GROUP]
        if not groups or inst.state not in ("pending", "running"):
            return
        try:
            said = self.cloud.admit_caller(groups, fresh=fresh)
        except Ec2kitError as err:  # connecting may still work (e.g. from inside the VPC): warn, go on
            said = f"Could not check that SSH is allowed from your address: {err}"
        if said and not self.quiet:
            from .ui import info

            info(said)

    def connect(self, name_or_id: str | Instance) -> Transport:
        """The SSH transport to an instance, made once per instance id and reused.

        The system ``ssh`` with shared connections (no paramiko import, no handshake on
        reuse), or the Fabric transport with ``EC2KIT_SSH=fabric`` or no ``ssh`` installed.
        """
        from .ssh import connect

        inst = self.instance(name_or_id) if isinstance(name_or_id, str) else name_or_id
        with self._lock:
            host = self._hosts.get(inst.id)
            if host is None:
                # a cached address may be stale: give up on it sooner (reachable() then asks AWS)
                timeout = 5 if inst.id in self._cached else 10
                host = self._hosts[inst.id] = connect(self.target(inst), connect_timeout=timeout)
            return host

    def forget_host(self, instance_id: str) -> None:
        """End and drop a cached connection (the instance went away, or the link is suspect)."""
        with self._lock:
            host = self._hosts.pop(instance_id, None)
        if host is not None:
            try:
                host.disconnect()
                host.close()
            except Exception:  # noqa: BLE001 - best effort: callers are cleaning up after a lost instance
                pass

    def close(self) -> None:
        """Close every SSH connection this context opened (shared ones linger, then end by themselves)."""
        with self._lock:
            hosts, self._hosts = list(self._hosts.values()), {}
        cache = self.host_cache if self._resolved else None
        for inst, target in self._resolved.values():
            if cache is not None and any(h.target is target and h.reached for h in hosts):
                cache.remember_address(inst.id, inst.public_ip, target.host, target.port, target.user)
        self._resolved.clear()
        for host in hosts:
            try:
                host.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
