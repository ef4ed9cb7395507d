"""The Context handed to every command: settings, where it acts, and the SSH connections it holds.

Two parts with one job each: :class:`~ec2kit.where.Where` decides AWS or the sandbox, makes the
Cloud and says how an instance is reached; :class:`~ec2kit.connections.Connections` holds the
transports (closed by :meth:`Context.close`). The Context adds the host-cache fast path on top:
instances found by name without AWS, which no command acts on before they are confirmed.

The fast path, in order: :meth:`instances_named` answers from the host cache (no boto3);
:meth:`reachable` connects to them (a stale address or another machine's key sends it to AWS);
the first batch on each host confirms from its instance metadata that it is still the instance
named so, and :meth:`not_confirmed` sends a host that is not to AWS (see ec2kit.recipe.script).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .connections import Connections
from .settings import Settings
from .where import Reach, Where, aws_credentials_available, ssh_address

if TYPE_CHECKING:
    from .aws.cloud import Cloud
    from .aws.models import Instance
    from .hostcache import HostCache
    from .sandbox import SandboxInfo
    from .ssh import SshTarget, Transport

__all__ = ["Context", "aws_credentials_available", "ssh_address"]


class Context:
    """Settings, where the command acts (:attr:`where`) and its SSH connections (:attr:`connections`)."""

    def __init__(
        self, settings: Settings | None = None, *, quiet: bool = False, cloud: Cloud | None = None, reach: Reach | None = None
    ) -> None:
        """``cloud``/``reach``: use this EC2 layer (e.g. a bare moto server) and this way to reach its
        instances instead of choosing AWS or the sandbox."""
        self.settings = settings or Settings.from_env()
        self.settings.ensure_home()
        self.quiet = quiet
        self.where = Where(self.settings, quiet=quiet, cloud=cloud, reach=reach)
        self.connections = Connections(self.where)
        self._unconfirmed: set[str] = set()  # instance ids taken from the host cache, not yet confirmed
        self._lock = threading.Lock()

    # -- where ---------------------------------------------------------------------
    @property
    def uses_sandbox(self) -> bool:
        """True when commands go to the local sandbox instead of AWS."""
        return self.where.uses_sandbox

    @property
    def host_cache(self) -> HostCache | None:
        """Where instances were last seen, for this account scope (see :attr:`Where.host_cache`)."""
        return self.where.host_cache

    @property
    def sandbox(self) -> SandboxInfo | None:
        """The running sandbox's endpoints, when the sandbox is in use."""
        return self.where.sandbox

    @property
    def cloud(self) -> Cloud:
        """The EC2 layer, pointed at AWS or at the sandbox (started on demand)."""
        return self.where.cloud

    def instance(self, name_or_id: str) -> Instance:
        """The instance called ``name_or_id`` (Name tag or id), from AWS."""
        return self.cloud.instance(name_or_id)

    # -- the host-cache fast path ----------------------------------------------------
    def instances_named(self, names: list[str]) -> dict[str, Instance]:
        """Name or id → Instance for each of ``names`` from one DescribeInstances; names that
        match nothing (or several) are left out, for each caller's own lookup to report.

        When every name is fresh in the host cache, no AWS call is made: those instances are
        marked unconfirmed; :meth:`reachable` connects to them and the first batch on each
        confirms it (:meth:`unconfirmed`)."""
        from .aws.models import match_instance
        from .errors import Ec2kitError

        cache = self.host_cache
        if cache is not None and not self.where.contacted:
            hit = cache.lookup(names)
            if hit is not None:
                with self._lock:
                    self._unconfirmed.update(i.id for i in hit.values())
                return hit
        candidates = self.cloud.instances()
        found = {}
        for name in names:
            try:
                found[name] = match_instance(name, candidates)
            except Ec2kitError:
                pass
        return found

    def unconfirmed(self, inst: Instance) -> bool:
        """Whether ``inst`` came from the host cache and no batch has confirmed it is still itself."""
        with self._lock:
            return inst.id in self._unconfirmed

    def reachable(self, found: dict[str, Instance]) -> dict[str, Instance]:
        """Connect now to every instance of ``found`` that came from the host cache (in parallel). If
        any cannot be reached where it was seen, or presents another host key, forget the cache for
        them and return the map from one DescribeInstances instead (the instance moved, stopped, or
        its name now belongs to a new one); otherwise ``found`` as it is (still to be confirmed)."""
        from .errors import Ec2kitError

        cached = [i for i in found.values() if self.unconfirmed(i)]
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
        if not stale:
            return found
        self._drop([i.id for i in cached], stale=[i.id for i in stale])
        if not self.quiet:
            from .ui import info

            info(f"[dim]{', '.join(i.name or i.id for i in stale)}: not where last seen; asking AWS.[/dim]")
        return self.instances_named(list(found))

    def not_confirmed(self, name: str, instance_id: str, why: str) -> Instance | None:
        """The host the cache gave for ``name`` is not that instance (``why``: what it said): forget
        it, say so, and return what AWS says ``name`` is now (None when nothing is called so)."""
        from .untrusted import markup_safe

        self._drop([instance_id], stale=[instance_id])
        if not self.quiet:
            from .ui import info

            info(
                f"[dim]{markup_safe(name, one_line=True)}: not the instance last seen under that name ({why}); asking AWS.[/dim]"
            )
        return self.instances_named([name]).get(name)

    def _drop(self, ids: list[str], *, stale: list[str]) -> None:
        """No longer treat ``ids`` as cached; forget the ``stale`` ones (connections and cache entries)."""
        with self._lock:
            self._unconfirmed.difference_update(ids)
        for instance_id in stale:
            self.connections.forget(instance_id)
        cache = self.host_cache
        if cache is not None:
            cache.forget(stale)

    # -- connections -----------------------------------------------------------------
    def target(self, name_or_id: str | Instance) -> SshTarget:
        """How to reach an instance over SSH: the sandbox's loopback sshd, or on AWS its public IP
        when it has one, else its private one (EC2KIT_SSH_ADDRESS=public|private forces one); port
        22, pinned by instance id. First makes sure ec2kit's group admits this machine's address."""
        inst = self.instance(name_or_id) if isinstance(name_or_id, str) else name_or_id
        return self.connections.target(inst, cached=self.unconfirmed(inst))

    def admit_caller(self, inst: Instance, *, fresh: bool = False) -> None:
        """Once per command and instance: if this machine's public address changed, add its /32 to
        ec2kit's group and say so."""
        self.connections.admit_caller(inst, fresh=fresh)

    def connect(self, name_or_id: str | Instance) -> Transport:
        """The SSH transport to an instance, made once per instance id and reused."""
        inst = self.instance(name_or_id) if isinstance(name_or_id, str) else name_or_id
        return self.connections.connect(inst, cached=self.unconfirmed(inst))

    def forget_host(self, instance_id: str) -> None:
        """End and drop a cached connection (the instance went away, or the link is suspect)."""
        self.connections.forget(instance_id)

    def close(self) -> None:
        """Close every SSH connection this context opened (shared ones linger, then end by themselves)."""
        self.connections.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
