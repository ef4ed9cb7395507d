"""EC2 through boto3 in one object: find things by name, launch, wait, freeze, volumes, snapshots.

    cloud = Cloud(Settings.from_env())
    cloud.launch("base", disk=60, type="m5.xlarge")
    cloud.freeze("base")

:class:`Cloud` composes one class per concern, each layered on the ones it needs::

    AwsSession (session.py)  ←  Access (access.py), Instances (instances.py)
    Instances  ←  Storage (storage.py)  ←  Launching (launch.py, with Access)  ←  Cloud

Every public verb translates botocore errors into :mod:`ec2kit.errors` classes
(:func:`ec2kit.aws.errors.translated`). Knows nothing of SSH (``Context.target`` turns an
instance into an SSH target).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .launch import Launching

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["Cloud"]


class Cloud(Launching):
    """EC2 in one region, through one boto3 session.

    ``endpoint_url`` points the client at the sandbox (moto). ``credentials`` is a dict of
    ``aws_access_key_id`` / ``aws_secret_access_key`` (/ ``aws_session_token``). ``checkip_url``
    answers this machine's public IPv4 (default: settings.checkip_url; the sandbox has its own).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        endpoint_url: str | None = None,
        credentials: dict[str, str] | None = None,
        region: str | None = None,
        checkip_url: str | None = None,
    ) -> None:
        super().__init__(settings, endpoint_url=endpoint_url, credentials=credentials, region=region)
        self._checkip_url = checkip_url

    def spot_price(self, instance_type: str, zone: str) -> float | None:
        """The current spot price of ``instance_type`` in ``zone`` (USD/hour, Linux), or None if AWS has none."""
        from .prices import spot_price

        return spot_price(instance_type, zone, self)
