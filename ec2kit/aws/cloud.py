"""EC2 through boto3 in one object: find things by name, launch, wait, freeze, volumes, snapshots.

    cloud = Cloud(Settings.from_env())
    cloud.launch("base", disk=60, type="m5.xlarge")
    cloud.freeze("base")                 # the same as cloud.amis.freeze("base")

:class:`Cloud` makes one :class:`~ec2kit.aws.session.AwsSession` and the plain services over
it, each given the others it needs (nothing inherits; no service reads what another sets)::

    types (InstanceTypes)   compute (Instances: types)      amis (Images: compute)
    storage (Storage: compute, amis)                        image_choice (ImageChoice: types, amis)
    access (Access)         networks (Networks: access)
    quotas (Quotas: types, compute)     fleets (Fleets: types, compute, quotas)
    launcher (Launcher: all of the above)

and forwards each verb to its service by name (``cloud.instances()`` is
``cloud.compute.instances()``), so callers keep one object. Every public verb translates
botocore errors into :mod:`ec2kit.errors` classes (:func:`ec2kit.aws.errors.translated`).
Knows nothing of SSH (``Context.target`` turns an instance into an SSH target).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .access import Access
from .aliases import ImageChoice
from .fleet import Fleets
from .images import Images
from .instance_types import InstanceTypes
from .instances import Instances
from .launch import Launcher
from .network import Networks
from .prices import spot_price
from .quotas import Quotas
from .session import AwsSession
from .storage import Storage

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["Cloud"]


class Cloud:
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
        self.settings = settings
        self.aws = AwsSession(settings, endpoint_url=endpoint_url, credentials=credentials, region=region)
        self.types = InstanceTypes(self.aws)
        self.compute = Instances(self.aws, self.types)
        self.amis = Images(self.aws, self.compute)
        self.storage = Storage(self.aws, self.compute, self.amis)
        self.access = Access(self.aws, checkip_url=checkip_url)
        self.networks = Networks(self.aws, self.access)
        self.image_choice = ImageChoice(self.aws, self.types, self.amis)
        self.quotas = Quotas(self.aws, self.types, self.compute)
        self.fleets = Fleets(self.aws, self.types, self.compute, self.quotas)
        self.launcher = Launcher(
            self.aws,
            types=self.types,
            instances=self.compute,
            images=self.image_choice,
            networks=self.networks,
            access=self.access,
            quotas=self.quotas,
            fleets=self.fleets,
        )
        self._forward()

    def _forward(self) -> None:
        """The verbs callers use on the Cloud, each its service's own method (same name, same signature)."""
        compute, amis, storage, access, networks, fleets, launcher = (
            self.compute,
            self.amis,
            self.storage,
            self.access,
            self.networks,
            self.fleets,
            self.launcher,
        )
        # instances (instances.py)
        self.instances = compute.instances
        self.instance = compute.instance
        self.instance_type = self.types.info
        self.vcpus = self.types.vcpus
        self.wait = compute.wait
        self.start = compute.start
        self.stop = compute.stop
        self.tag = compute.tag
        self.set_shutdown_behavior = compute.set_shutdown_behavior
        self.shutdown_behavior = compute.shutdown_behavior
        self.terminate = compute.terminate
        self.change_type = compute.change_type
        self.spot_request_for = compute.spot_request_for
        self.spot_requests = compute.spot_requests
        self.cancel_spot_request = compute.cancel_spot_request
        self.live_instances = compute.live_instances
        # images (images.py, aliases.py), volumes and snapshots (storage.py)
        self.images = amis.images
        self.image = amis.image
        self.default_image = amis.default_image
        self.choose_image = self.image_choice.choose_image
        self.plan_freeze = amis.plan_freeze
        self.freeze = amis.freeze
        self.volumes = storage.volumes
        self.volume = storage.volume
        self.plan_volume = storage.plan_volume
        self.create_volume = storage.create_volume
        self.attach_volume = storage.attach_volume
        self.delete_with_instance = storage.delete_with_instance
        self.detach_volume = storage.detach_volume
        self.delete_volume = storage.delete_volume
        self.snapshots = storage.snapshots
        self.snapshot = storage.snapshot
        self.create_snapshot = storage.create_snapshot
        self.images_using = amis.images_using
        self.delete_snapshot = storage.delete_snapshot
        self.delete_image = amis.delete_image
        self.wait_snapshot = storage.wait_snapshot
        # SSH access and networks (access.py, network.py)
        self.ensure_key_pair = access.ensure_key_pair
        self.caller_ip = access.caller_ip
        self.ssh_cidr = access.ssh_cidr
        self.default_vpc = access.default_vpc
        self.ensure_security_group = access.ensure_security_group
        self.admit_caller = access.admit_caller
        self.ssh_rules = access.ssh_rules
        self.prune_ssh_rules = access.prune_ssh_rules
        self.pruned_note = access.pruned_note
        self.subnet = networks.subnet
        self.security_group_ids = networks.security_group_ids
        self.network = networks.network
        self.instance_profile = networks.instance_profile
        # quotas, fleets, launching (quotas.py, fleet.py, launch.py)
        self.quota_limit = self.quotas.quota_limit
        self.vcpus_in_use = self.quotas.vcpus_in_use
        self.check_quotas = self.quotas.check_quotas
        self.explain_quota = self.quotas.explain_quota
        self.plan_fleet = fleets.plan_fleet
        self.fit_quotas = fleets.fit_quotas
        self.quota_room = fleets.quota_room
        self.check = fleets.check  # DryRun any plan: a FleetPlan's CreateFleet against a template made for the check
        self.launch_fleet = fleets.launch_fleet
        self.launch_fleet_instances = fleets.launch_fleet_instances
        self.zones = fleets.zones
        self._zones = fleets.zones  # the name tests/test_sweep_sandbox.py reads
        self.stale_launch_templates = fleets.stale_launch_templates
        self.delete_launch_template = fleets.delete_launch_template
        self.delete_launch_templates = fleets.delete_launch_templates
        self.plan_launch = launcher.plan_launch
        self.launch = launcher.launch
        self.launch_many = launcher.launch_many
        self.cleanup_launch = launcher.cleanup_launch

    # -- the session underneath (what prices.py and the tests' call counters use) -------------
    @property
    def region(self) -> str:
        """The region's code (settings.region, else the profile's, else us-east-1)."""
        return self.aws.region

    @property
    def endpoint_url(self) -> str | None:
        """The sandbox's EC2 endpoint, or None for AWS."""
        return self.aws.endpoint_url

    @property
    def session(self) -> Any:
        """The boto3 Session."""
        return self.aws.session

    @property
    def ec2(self) -> Any:
        """The boto3 EC2 client (created on first use)."""
        return self.aws.ec2

    def client(self, service: str) -> Any:
        """A cached boto3 client for ``service`` in this region."""
        return self.aws.client(service)

    def paginate(self, operation: str, expression: str, **params: Any) -> list[Any]:
        """Every item ``expression`` selects across the pages of EC2 ``operation``."""
        return self.aws.paginate(operation, expression, **params)

    def waiter_verdict(self, waiter: str, response: dict[str, Any]) -> str | None:
        """What botocore's EC2 waiter ``waiter`` makes of ``response`` (see AwsSession.waiter_verdict)."""
        return self.aws.waiter_verdict(waiter, response)

    @property
    def checkip_url(self) -> str | None:
        """Where this machine's public IPv4 is learnt (None on a bare local endpoint)."""
        return self.access.checkip_url

    @property
    def on_instances(self) -> Callable[..., None] | None:
        """Told of every DescribeInstances answer: ``(instances, complete=…)`` (the host cache listens)."""
        return self.aws.on_instances

    @on_instances.setter
    def on_instances(self, listener: Callable[..., None] | None) -> None:
        self.aws.on_instances = listener

    def spot_price(self, instance_type: str, zone: str) -> float | None:
        """The current spot price of ``instance_type`` in ``zone`` (USD/hour, Linux), or None if AWS has none."""
        return spot_price(instance_type, zone, self.aws)
