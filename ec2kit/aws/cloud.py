"""EC2 through boto3 in one object: find things by name, launch, wait, freeze, volumes, snapshots.

    cloud = Cloud(Settings.from_env())
    cloud.launch("base", disk=60, type="m5.xlarge")
    cloud.freeze("base")

:class:`Cloud` composes one class per concern, each layered on the ones it needs::

    AwsSession (session.py)  ←  Access (access.py), Instances (instances.py)
    Instances  ←  Storage (storage.py)  ←  Launching (launch.py, with Access)  ←  Cloud

Every public verb translates botocore errors into :mod:`ec2kit.errors` classes
(:func:`ec2kit.aws.errors.translated`). Knows nothing of SSH beyond building an
:class:`~ec2kit.remote.SshTarget`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import WrongState
from .launch import Launching
from .models import Instance

if TYPE_CHECKING:
    from ..remote import SshTarget
    from ..settings import Settings

__all__ = ["Cloud"]


class Cloud(Launching):
    """EC2 in one region, through one boto3 session.

    ``endpoint_url`` points the client at the sandbox (moto); ``resolver`` maps an
    instance to its SSH address there. ``credentials`` is a dict of
    ``aws_access_key_id`` / ``aws_secret_access_key`` (/ ``aws_session_token``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        endpoint_url: str | None = None,
        resolver: Any = None,
        credentials: dict[str, str] | None = None,
        region: str | None = None,
    ) -> None:
        super().__init__(settings, endpoint_url=endpoint_url, credentials=credentials, region=region)
        self.resolver = resolver

    def spot_price(self, instance_type: str, zone: str) -> float | None:
        """The current spot price of ``instance_type`` in ``zone`` (USD/hour, Linux), or None if AWS has none."""
        from .prices import spot_price

        return spot_price(instance_type, zone, self)

    # -- ssh -------------------------------------------------------------------------------------
    def ssh_target(self, instance: Instance | str) -> SshTarget:
        """Where to SSH to this instance: the sandbox resolver, or its public (or private) IP, port 22."""
        inst = instance if isinstance(instance, Instance) else self.instance(instance)
        settings = self.settings
        if self.resolver is not None:
            target: SshTarget = self.resolver.ssh_target(
                inst.id, key_file=settings.key_file, known_hosts=settings.known_hosts, name=inst.name
            )
            return target
        from ..remote import SshTarget

        host = inst.private_ip if settings.ssh_address == "private" else inst.public_ip
        if not host:
            which = "private" if settings.ssh_address == "private" else "public"
            hint = (
                f"Start it with `inv start {inst.name or inst.id}`."
                if inst.state != "running"
                else "Launch it in a subnet that assigns public IPs, or set EC2KIT_SSH_ADDRESS=private inside the VPC."
            )
            raise WrongState(f"Instance {inst.label} has no {which} IP address (it is {inst.state}).", hint=hint)
        return SshTarget(
            host=host,
            port=22,
            user=settings.login_user,
            key_file=settings.key_file,
            alias=inst.id,
            known_hosts=settings.known_hosts,
            name=inst.name,
        )
