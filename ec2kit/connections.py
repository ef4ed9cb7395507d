"""The SSH connections one command holds: one transport per instance id, made once and reused.

Where an instance answers is :class:`~ec2kit.where.Where`'s business (one :class:`~ec2kit.where.Reach`);
this module turns that address into an :class:`~ec2kit.ssh.target.SshTarget` with ec2kit's key and
the host-key pin of the instance id, first makes sure ec2kit's security group admits this machine,
keeps the transports, and at the end records in the host cache the sandbox addresses it reached.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .aws.models import Instance
    from .ssh import SshTarget, Transport
    from .where import Address, Where

_DOWN = ("stopped", "stopping", "shutting-down", "terminated")


class Connections:
    """Transports to instances, keyed by instance id, for one command (closed by :meth:`close`)."""

    def __init__(self, where: Where) -> None:
        self.where = where
        self._hosts: dict[str, Transport] = {}
        self._admitted: set[str] = set()  # instance ids whose groups were checked for this machine's address
        self._reached: dict[str, tuple[Instance, SshTarget]] = {}  # sandbox addresses, remembered once reached
        self._lock = threading.RLock()

    def target(self, inst: Instance, *, cached: bool = False) -> SshTarget:
        """How to reach ``inst`` over SSH (port, user, key, pinned by instance id). ``cached``: it came
        from the host cache, so its address is too and nothing is asked of AWS or the sandbox;
        otherwise ec2kit's group is first made to admit this machine's address."""
        from .errors import WrongState
        from .where import cached_address

        if inst.state in _DOWN:
            which = "private" if self.where.settings.ssh_address == "private" else "public"
            raise WrongState(
                f"Instance {inst.label} is {inst.state}: it has no {which} IP address and nothing answers SSH there.",
                hint=f"Start it with `inv start {inst.name or inst.id}`."
                if inst.state in ("stopped", "stopping")
                else "Launch a new one with `inv launch NAME`.",
            )
        if cached and (address := cached_address(self.where, inst)) is not None:
            return self._target_at(inst, address)
        reach = self.where.reach
        self.admit_caller(inst)
        target = self._target_at(inst, reach.address(inst))
        if self.where.sandbox is not None:
            self._reached[inst.id] = (inst, target)
        return target

    def _target_at(self, inst: Instance, address: Address) -> SshTarget:
        from .ssh.target import SshTarget

        settings = self.where.settings
        return SshTarget(
            host=address.host,
            port=address.port,
            user=address.user,
            key_file=settings.key_file,
            alias=inst.id,
            known_hosts=settings.known_hosts,
            name=inst.name,
            via=address.via,
        )

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
            said = self.where.cloud.admit_caller(groups, fresh=fresh)
        except Ec2kitError as err:  # connecting may still work (e.g. from inside the VPC): warn, go on
            said = f"Could not check that SSH is allowed from your address: {err}"
        if said and not self.where.quiet:
            from .ui import info

            info(said)

    def connect(self, inst: Instance, *, cached: bool = False) -> Transport:
        """The transport to ``inst``, made once per instance id and reused: the system ``ssh`` with
        shared connections, or Fabric with ``EC2KIT_SSH=fabric`` or no ``ssh`` installed. A cached
        address may be stale: it is given up on sooner (5 s), and the caller then asks AWS."""
        from .ssh import connect

        with self._lock:
            host = self._hosts.get(inst.id)
            if host is None:
                target = self.target(inst, cached=cached)
                host = self._hosts[inst.id] = connect(target, connect_timeout=5 if cached else 10)
            return host

    def forget(self, instance_id: str) -> None:
        """End and drop a connection (the instance went away, or the link is suspect)."""
        with self._lock:
            host = self._hosts.pop(instance_id, None)
            self._reached.pop(instance_id, None)
        if host is not None:
            try:
                host.disconnect()
                host.close()
            except Exception:  # noqa: BLE001 - best effort: callers are cleaning up after a lost instance
                pass

    def close(self) -> None:
        """Close every connection (shared ones linger, then end by themselves); remember in the host
        cache where the sandbox's instances were reached, so the next command needs no sandbox call."""
        with self._lock:
            hosts, self._hosts = list(self._hosts.values()), {}
            reached, self._reached = list(self._reached.values()), {}
        cache = self.where.host_cache if reached else None
        for inst, target in reached:
            if cache is not None and any(h.target is target and h.reached for h in hosts):
                cache.remember_address(inst.id, inst.public_ip, target.host, target.port, target.user)
        for host in hosts:
            try:
                host.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
