"""Teach the daemon's in-process moto the AWS behaviours a first-time user meets (``install()``).

Patched on moto's classes (so they survive ``POST /moto-api/reset``), reading ``account.ACCOUNT``:

- SSM public parameters: Canonical's Ubuntu 24.04/22.04 (amd64, arm64) and AWS's Deep Learning
  Base OSS Nvidia Driver GPU AMI (x86_64, arm64) ``…/ami-id`` parameters, naming the images
  ``images.py`` seeds (moto refuses ``put_parameter`` under ``/aws/service/``).
- Service Quotas: ``GetServiceQuota(ServiceCode="ec2", QuotaCode=…)`` for the EC2 vCPU quotas
  (moto answers "not available in the current Region"), or AccessDeniedException when denied.
- vCPU quotas on RunInstances, RequestSpotInstances and CreateFleet: ``VcpuLimitExceeded``
  (on-demand) and ``MaxSpotInstanceCountExceeded`` (spot), with AWS's wording.
- Capacity: an empty (type, zone, market) pool fails RunInstances with
  ``InsufficientInstanceCapacity``; without a requested zone the launch goes to a zone that has
  capacity. RequestSpotInstances for an empty pool leaves the request ``open`` with status
  ``capacity-not-available`` (as AWS does; no API error) until :func:`fulfil_waiting` finds
  capacity again. CreateFleet tries each override in turn and lists the empty pools in ``Errors``.
- An instance launched with ``NetworkInterfaces`` (e.g. to ask for a public IPv4) lists the primary
  interface's groups as its ``SecurityGroups``, as AWS does.
- GPU types moto's list lacks (p3: V100, g4ad: Radeon Pro V520), with ``GpuInfo`` and offerings (``gpus.py``).
- DeregisterImage lets go of the image's snapshots only after a while: for ``DEREGISTER_LAG`` s
  DeleteSnapshot of one answers ``InvalidSnapshot.InUse`` naming the image, as AWS does (boto/boto#3019:
  one delete in five right after a deregistration; moto lets go at once).
- Prices (``pricelist.py``): DescribeSpotPriceHistory answers a realistic price per type and zone
  (moto: $0.00001 everywhere); the Pricing API's GetProducts is answered on moto's port.
- The spot options moto drops from RunInstances (``InstanceMarketOptions.SpotOptions``) are kept
  in ``MARKET_OPTIONS`` per instance id, for stop-instead-of-terminate interruptions.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .account import ACCOUNT, ACCOUNT_ID, QUOTAS_BY_CODE, REGION, quota_record
from .images import SSM_PARAMETERS
from .interfaces import interface_groups
from .limits import (
    check_quota,
    choose_zone,
    ec2_backend,
    subnet_zone,
)

log = logging.getLogger("ec2kit.sandbox")

MARKET_OPTIONS: dict[str, dict[str, Any]] = {}  # instance id -> RunInstances' InstanceMarketOptions
DEREGISTER_LAG = 1.5  # seconds a deregistered image still holds its snapshots
RELEASING: dict[str, float] = {}  # image id -> time.monotonic() when its snapshots are let go
_local = threading.local()  # the InstanceMarketOptions of the RunInstances call being served
_installed = False


def spot_launched(reservation: Any) -> Any:
    """Tell the control layer about spot instances launched into pools marked to be interrupted."""
    hook = ACCOUNT.on_spot_launch
    for instance in reservation.instances:
        after = ACCOUNT.interrupt_pools.get((instance.instance_type, instance.placement.zone))
        if hook is not None and after is not None:
            hook(instance.id, after)
    return reservation


# patches ---------------------------------------------------------------------------
def _patch_run_instances() -> None:
    from moto.ec2.models.instances import InstanceBackend
    from moto.ec2.responses.instances import InstanceResponse

    original = InstanceBackend.run_instances
    original_response = InstanceResponse.run_instances

    def run_instances(self: Any, image_id: str, count: int, user_data: Any, security_group_names: Any, **kwargs: Any) -> Any:
        if self.region_name != REGION:  # its machines (one sshd each) live in one region; say so rather than hang
            from moto.ec2.exceptions import EC2ClientError

            raise EC2ClientError(
                "Unsupported",
                f"The local sandbox runs instances in {REGION} only, not in {self.region_name}: drop --region "
                "(prices, volumes and snapshots of other regions work), or use AWS.",
            )
        if kwargs.get("lifecycle") == "spot":  # a spot request's instance: checked by the request
            return spot_launched(original(self, image_id, count, user_data, security_group_names, **kwargs))
        market = "spot" if kwargs.get("instance_market_options") else "on-demand"
        instance_type = kwargs.get("instance_type") or "m1.small"
        with ACCOUNT.lock:
            zone = kwargs.get("placement") or subnet_zone(self, kwargs.get("subnet_id"))
            chosen = choose_zone(self, instance_type, zone, market)
            if chosen and not zone:
                kwargs["placement"] = chosen
            check_quota(self, instance_type, count, market)
            reservation = original(self, image_id, count, user_data, security_group_names, **kwargs)
        for instance in reservation.instances:
            interface_groups(instance)
        options = getattr(_local, "market_options", None)
        if market == "spot" and options:
            for instance in reservation.instances:
                MARKET_OPTIONS[instance.id] = options
        return spot_launched(reservation) if market == "spot" else reservation

    def run_instances_response(self: Any) -> Any:
        _local.market_options = self._get_param("InstanceMarketOptions", {}) or None
        try:
            return original_response(self)
        finally:
            _local.market_options = None

    InstanceBackend.run_instances = run_instances  # type: ignore[method-assign]
    InstanceResponse.run_instances = run_instances_response  # type: ignore[method-assign]


def _patch_spot_requests() -> None:
    from moto.ec2.models.spot_requests import SpotInstanceRequest, SpotRequestBackend
    from moto.ec2.responses.spot_instances import SpotInstances

    original_request = SpotRequestBackend.request_spot_instances
    original_response = SpotInstances.request_spot_instances

    def request_spot_instances_response(self: Any) -> Any:
        # moto reads LaunchSpecification.SecurityGroups (names) only; AWS also takes SecurityGroupIds
        _local.spot_group_ids = self._get_param("LaunchSpecification.SecurityGroupIds", []) or []
        try:
            return original_response(self)
        finally:
            _local.spot_group_ids = []

    original_init = SpotInstanceRequest.__init__

    def request_spot_instances(self: Any, *args: Any, **kwargs: Any) -> Any:
        group_ids = getattr(_local, "spot_group_ids", None)
        if group_ids and kwargs.get("spot_fleet_id") is None:
            kwargs["security_groups"] = list(kwargs.get("security_groups") or []) + list(group_ids)
        if kwargs.get("spot_fleet_id") is None:  # fleets check their own quota per override
            check_quota(self, kwargs.get("instance_type") or "m1.small", int(kwargs.get("count") or 1), "spot")
        return original_request(self, *args, **kwargs)

    class NoCapacity(Exception):
        pass

    def launch_instance(self: Any) -> Any:
        """moto's launch, but in the requested zone (moto ignores it) or one with capacity."""
        spec = self.launch_specification
        zone = spec.availability_zone or subnet_zone(self.ec2_backend, spec.subnet_id)
        try:
            chosen = choose_zone(self.ec2_backend, spec.instance_type, zone, "spot")
        except Exception as err:
            raise NoCapacity() from err
        reservation = self.ec2_backend.run_instances(
            image_id=spec.image_id,
            count=1,
            user_data=self.user_data,
            instance_type=spec.instance_type,
            is_instance_type_default=not spec.instance_type,
            subnet_id=spec.subnet_id,
            placement=None if spec.subnet_id else chosen,
            key_name=spec.key_name,
            security_group_names=[],
            security_group_ids=spec.groups,
            spot_fleet_id=self.spot_fleet_id,
            tags=self.all_tags,
            lifecycle="spot",
        )
        return reservation.instances[0]

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            original_init(self, *args, **kwargs)
        except NoCapacity:  # AWS keeps the request open until capacity returns
            self.instance = None
            self.state = "open"
            self._status_code = "capacity-not-available"
            self.status_message = "There is not enough capacity available for the instances that you requested."

    def instance_id(self: Any) -> str | None:
        return self.instance.id if self.instance is not None else None

    SpotRequestBackend.request_spot_instances = request_spot_instances  # type: ignore[method-assign]
    SpotInstances.request_spot_instances = request_spot_instances_response  # type: ignore[method-assign]
    SpotInstanceRequest.launch_instance = launch_instance  # type: ignore[method-assign]
    SpotInstanceRequest.__init__ = init  # type: ignore[method-assign]
    SpotInstanceRequest.instance_id = property(instance_id)  # type: ignore[method-assign,assignment]


def fulfil_waiting() -> list[str]:
    """Launch open spot requests whose pool has capacity again; returns the new instance ids."""
    backend = ec2_backend()
    launched = []
    with ACCOUNT.lock:
        for request in list(backend.spot_instance_requests.values()):
            if request.state != "open" or request.instance is not None:
                continue
            try:
                request.instance = request.launch_instance()
            except Exception:
                continue
            request.state, request._status_code, request.status_message = "active", "fulfilled", ""
            launched.append(request.instance.id)
    return launched


def _patch_deregister_lag() -> None:
    import time

    from moto.ec2.exceptions import InvalidSnapshotInUse
    from moto.ec2.models.amis import AmiBackend
    from moto.ec2.models.elastic_block_store import EBSBackend

    deregister, delete_snapshot = AmiBackend.deregister_image, EBSBackend.delete_snapshot

    def deregister_image(self: Any, ami_id: str) -> None:
        deregister(self, ami_id)
        now = time.monotonic()
        for image_id in [i for i, until in RELEASING.items() if until < now]:
            del RELEASING[image_id]
        RELEASING[ami_id] = now + DEREGISTER_LAG

    def delete_snapshot_lagging(self: Any, snapshot_id: str) -> Any:
        snapshot = self.snapshots.get(snapshot_id)
        held_by = getattr(snapshot, "from_ami", None)
        if held_by and RELEASING.get(held_by, 0.0) > time.monotonic():
            raise InvalidSnapshotInUse(snapshot_id, held_by)
        return delete_snapshot(self, snapshot_id)

    AmiBackend.deregister_image = deregister_image  # type: ignore[method-assign]
    EBSBackend.delete_snapshot = delete_snapshot_lagging  # type: ignore[method-assign]


def _patch_service_quotas() -> None:
    from moto.core.exceptions import JsonRESTError
    from moto.servicequotas.models import ServiceQuotasBackend

    original_get = ServiceQuotasBackend.get_service_quota
    original_list = ServiceQuotasBackend.list_aws_default_service_quotas

    def denied(action: str) -> Exception:
        return JsonRESTError(
            "AccessDeniedException",
            f"User: arn:aws:iam::{ACCOUNT_ID}:user/sandbox is not authorized to perform: servicequotas:{action} "
            f"because no identity-based policy allows the servicequotas:{action} action",
        )

    def get_service_quota(self: Any, service_code: str, quota_code: str) -> dict[str, Any]:
        if ACCOUNT.quota_access_denied:
            raise denied("GetServiceQuota")
        if service_code == "ec2" and quota_code in QUOTAS_BY_CODE:
            return quota_record(QUOTAS_BY_CODE[quota_code], ACCOUNT.reported_value(quota_code))
        return original_get(self, service_code, quota_code)

    def list_defaults(self: Any, service_code: str) -> list[dict[str, Any]]:
        if ACCOUNT.quota_access_denied:
            raise denied("ListAWSDefaultServiceQuotas")
        if service_code == "ec2":
            return [quota_record(q, q.default) for q in QUOTAS_BY_CODE.values()]
        return original_list(self, service_code)

    ServiceQuotasBackend.get_service_quota = get_service_quota  # type: ignore[method-assign]
    ServiceQuotasBackend.list_aws_default_service_quotas = list_defaults  # type: ignore[method-assign]


def _patch_ssm() -> None:
    from moto.ssm.models import Parameter, ParameterDict

    original = ParameterDict._check_loading_status

    def check_loading_status(self: Any, key: str) -> None:
        original(self, key)
        if str(key or "").startswith(("/aws/service/canonical", "/aws/service/deeplearning")) and not getattr(
            self, "sandbox_images_loaded", False
        ):
            self.sandbox_images_loaded = True
            from moto.core.utils import utcnow

            for name, value in SSM_PARAMETERS.items():
                self.setdefault(name, []).append(
                    Parameter(  # type: ignore[abstract]
                        account_id=self.account_id,
                        name=name,
                        value=value,
                        parameter_type="String",
                        description=None,
                        allowed_pattern=None,
                        keyid=None,
                        last_modified_date=utcnow(),
                        version=1,
                        data_type="aws:ec2:image",
                    )
                )

    ParameterDict._check_loading_status = check_loading_status  # type: ignore[method-assign]


def install() -> None:
    """Apply every patch once (idempotent); call after moto is imported, before serving."""
    global _installed
    if _installed:
        return
    from . import gpus, storage_behaviours
    from .fleets import patch_fleets
    from .pricelist import patch_spot_price_history

    gpus.install()  # p3 and g4ad, with their GpuInfo (moto's list lacks them)
    storage_behaviours.install()
    _patch_run_instances()
    _patch_spot_requests()
    _patch_service_quotas()
    _patch_ssm()
    _patch_deregister_lag()
    patch_fleets()
    patch_spot_price_history()
    _installed = True
    log.info("AWS behaviours installed (SSM public parameters, quotas, capacity, pending snapshots, image volumes)")
