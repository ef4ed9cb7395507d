"""Launching: plan it (:class:`LaunchPlan`, what ``--check`` asks EC2 about), then do it.

    plan = cloud.plan_launch("base", disk=60, type="m5.xlarge")   # validated, nothing created
    cloud.check(plan)                                               # EC2 DryRun
    cloud.launch(plan)                                              # or cloud.launch("base", disk=60, …)

Everything a launch creates is tagged with a launch token, so a failure or Ctrl-C part-way
finds and removes it (:meth:`Launching.cleanup_launch`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from ..errors import AlreadyExists, AwsError, ConfigError
from .aliases import ImageChoice
from .errors import translated
from .fleet import Fleets
from .models import LAUNCH_TAG, LIVE_STATES, MANAGED_TAG, Instance, filters, tag_list
from .network import Networks
from .quotas import QUOTA_ERRORS
from .session import Progress, error_code

__all__ = ["LaunchPlan", "Launching"]


@dataclass(frozen=True)
class LaunchPlan:
    """One instance to launch, from the arguments of ``inv launch`` (pure data: building it calls nothing).

    :attr:`params` is the run_instances call DryRun sends (no key pair or security group:
    the launch creates those); :meth:`spec` adds them for the real call.
    """

    action: ClassVar[str] = "run_instances"
    name: str
    image_id: str
    image_name: str = ""
    root_device: str = "/dev/sda1"
    type: str = "t3.medium"
    disk: int | None = None
    zone: str | None = None
    spot: bool = False
    max_price: str | None = None  # USD/hour; None: up to the on-demand price
    tags: dict[str, str] = field(default_factory=dict)  # all of them: Name and ec2kit:managed included
    user_data: str | None = None
    shutdown_behavior: str | None = None  # stop | terminate
    open_ssh: bool = False  # allow SSH from anywhere (0.0.0.0/0), not just your address
    vpc_id: str | None = None  # where ec2kit's own group goes (None: the default VPC, looked up at launch)
    subnet_id: str | None = None
    security_group_ids: tuple[str, ...] = ()  # extra groups, beside ec2kit-ssh
    instance_profile: str | None = None  # IAM instance profile name
    interruption: str | None = None  # spot: "stop" = a persistent request whose instance (and disk) is stopped, not terminated
    image_note: str = ""  # which image and why: "ubuntu 24.04 arm64 because t4g.large is Graviton: …"

    #: IMDSv2 only (a tokenless metadata request gets 401); hop limit 2 lets containers on the instance use it;
    #: tags in metadata let a cached run confirm on the host that it is the instance named so (hostcache.py).
    METADATA_OPTIONS: ClassVar[dict[str, Any]] = {
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 2,
        "HttpEndpoint": "enabled",
        "InstanceMetadataTags": "enabled",
    }

    @property
    def purpose(self) -> str:
        """For error messages."""
        return f"launch instance {self.name}"

    def spec(self, *, key_name: str | None = None, group_ids: tuple[str, ...] = ()) -> dict[str, Any]:
        """Parameters shared by run_instances and a spot LaunchSpecification."""
        spec: dict[str, Any] = {"ImageId": self.image_id, "InstanceType": self.type}
        if key_name:
            spec["KeyName"] = key_name
        groups = [*group_ids, *(g for g in self.security_group_ids if g not in group_ids)]
        if groups:
            spec["SecurityGroupIds"] = groups
        if self.subnet_id:
            spec["SubnetId"] = self.subnet_id
        if self.instance_profile:
            spec["IamInstanceProfile"] = {"Name": self.instance_profile}
        spec["MetadataOptions"] = dict(self.METADATA_OPTIONS)
        if self.disk:
            spec["BlockDeviceMappings"] = [
                {
                    "DeviceName": self.root_device,
                    "Ebs": {"VolumeSize": int(self.disk), "VolumeType": "gp3", "DeleteOnTermination": True},
                }
            ]
        if self.zone:
            spec["Placement"] = {"AvailabilityZone": self.zone}
        if self.user_data:
            spec["UserData"] = self.user_data
        if self.shutdown_behavior:
            spec["InstanceInitiatedShutdownBehavior"] = self.shutdown_behavior
        return spec

    def tag_specifications(self, tags: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Tags for the instance and its volumes."""
        return [{"ResourceType": r, "Tags": tag_list(tags or self.tags)} for r in ("instance", "volume")]

    @property
    def params(self) -> dict[str, Any]:
        """The run_instances call, as DryRun sends it."""
        params = {**self.spec(), "MinCount": 1, "MaxCount": 1, "TagSpecifications": self.tag_specifications()}
        if self.spot:
            options: dict[str, Any] = {"SpotInstanceType": "one-time"}
            if self.interruption:
                options = {"SpotInstanceType": "persistent", "InstanceInterruptionBehavior": self.interruption}
            if self.max_price is not None:
                options["MaxPrice"] = self.max_price
            params["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": options}
        return params


class Launching(Fleets, ImageChoice, Networks):
    """Launch verbs of :class:`~ec2kit.aws.cloud.Cloud`."""

    @translated("launch instance {0}")
    def plan_launch(
        self,
        name: str,
        *,
        image: str | None = None,
        disk: int | None = None,
        type: str = "t3.medium",
        spot: bool = False,
        max_price: float | str | None = None,
        zone: str | None = None,
        tags: dict[str, str] | None = None,
        user_data: str | None = None,
        shutdown_behavior: str | None = None,
        open_ssh: bool = False,
        subnet: str | None = None,
        security_groups: list[str] | tuple[str, ...] = (),
        instance_profile: str | None = None,
        interruption: str | None = None,
    ) -> LaunchPlan:
        """Check the arguments (name free, image, type, subnet, groups and profile known) and return
        what :meth:`launch` would do.

        ``image``: alias (``ubuntu``, ``ubuntu-22.04``, ``gpu``), name or id (default: ``gpu`` for a
        type with an NVIDIA GPU, else ``ubuntu``, for the type's architecture); ``disk``: root size
        in GiB (gp3); ``spot``: one-time spot request (``max_price`` in USD/hour, default up to
        on-demand); ``subnet``: id or Name tag (default: the default VPC); ``security_groups``:
        extra groups (ids or names in that VPC); ``instance_profile``: IAM instance profile name.
        """
        if shutdown_behavior not in (None, "stop", "terminate"):
            raise ConfigError(f"Shutdown behaviour '{shutdown_behavior}' is not understood.", hint="Use 'stop' or 'terminate'.")
        if interruption not in (None, "stop") or (interruption and not spot):
            raise ConfigError(f"Interruption behaviour '{interruption}' is not understood.", hint="Use 'stop', with spot.")
        if spot and shutdown_behavior == "stop":
            raise ConfigError(
                "A one-time spot instance can only terminate when it shuts down.",
                hint="Drop the shutdown behaviour 'stop' or launch on demand.",
            )
        existing = self.instances(tags={"Name": name})
        if existing:
            raise AlreadyExists(
                f"An instance named '{name}' already exists ({existing[0].id}, {existing[0].state}).",
                hint="Choose another name, or terminate it first with `inv terminate " + name + "`.",
            )
        self.instance_type(type)
        img, image_note = self.choose_image(image, type)
        root_gb = _root_size(img.raw)
        if disk is not None and root_gb and disk < root_gb:
            raise ConfigError(
                f"--disk {disk}: image {img.name or img.id} has a {root_gb} GB root disk, and the disk cannot be smaller.",
                hint=f"Give --disk {root_gb} or more (or leave it out for {root_gb} GB).",
            )
        net = self.network(subnet=subnet, security_groups=security_groups, zone=zone)
        if instance_profile:
            self.instance_profile(instance_profile)
        return LaunchPlan(
            name=name,
            image_id=img.id,
            image_name=img.name,
            root_device=img.raw.get("RootDeviceName") or "/dev/sda1",
            type=type,
            disk=disk,
            zone=zone,
            spot=spot,
            max_price=None if max_price is None else str(max_price),
            tags={"Name": name, MANAGED_TAG: "1", **(tags or {})},
            user_data=user_data,
            shutdown_behavior=shutdown_behavior,
            open_ssh=open_ssh and not self.settings.ssh_cidr,  # EC2KIT_SSH_CIDR / ssh_cidr still decide
            vpc_id=net.vpc_id,
            subnet_id=net.subnet_id,
            security_group_ids=net.group_ids,
            instance_profile=instance_profile,
            image_note=image_note,
            interruption=interruption,
        )

    @translated("launch instance {0}")
    def launch(
        self,
        name: str | LaunchPlan,
        *,
        progress: Progress | None = None,
        types: list[str] | tuple[str, ...] = (),
        on_demand_fallback: bool = False,
        **options: Any,
    ) -> Instance:
        """Launch one instance and wait until it is running: ``launch(plan)`` or ``launch(name, **plan_launch options)``.

        Spot launches go through one instant EC2 Fleet over ``plan.type`` and ``types`` × zones
        (``on_demand_fallback``: then an on-demand fleet when spot has no capacity). vCPU quotas
        are checked first (:mod:`ec2kit.aws.quotas`), then the key pair and security group are set
        up. Ctrl-C or a failure part-way terminates what was created.
        """
        plan = name if isinstance(name, LaunchPlan) else self.plan_launch(name, **options)
        return self._launch(plan, 1, progress=progress, types=types, on_demand_fallback=on_demand_fallback)[0]

    def launch_many(
        self,
        plan: LaunchPlan,
        count: int,
        *,
        progress: Progress | None = None,
        types: list[str] | tuple[str, ...] = (),
        on_demand_fallback: bool = False,
    ) -> list[Instance]:
        """Up to ``count`` spot instances of ``plan`` from ONE instant CreateFleet (a sweep's batch), each running.

        AWS may fill less than the target (the list is then shorter); no capacity at all raises NoCapacity.
        """
        if not plan.spot or plan.interruption:
            raise ConfigError(f"Launching several instances of '{plan.name}' at once needs a one-time spot plan.")
        return self._launch(plan, max(1, count), progress=progress, types=types, on_demand_fallback=on_demand_fallback)

    def _launch(
        self,
        plan: LaunchPlan,
        count: int,
        *,
        progress: Progress | None,
        types: list[str] | tuple[str, ...],
        on_demand_fallback: bool,
    ) -> list[Instance]:
        # A spot launch that must survive interruptions stopped (plan.interruption) is one RunInstances with
        # persistent SpotOptions: an instant fleet's requests are one-time.
        fleet = (
            self.plan_fleet(plan, types=types, on_demand_fallback=on_demand_fallback)
            if plan.spot and not plan.interruption
            else None
        )
        if (types or on_demand_fallback) and fleet is None:
            raise ConfigError(
                "--types and --on-demand-fallback choose among spot capacity pools, and this launch is on-demand.",
                hint="Add --spot, or drop --types / --on-demand-fallback.",
            )
        if fleet is not None:
            fleet = self.fit_quotas(fleet, progress=progress)  # quotas: before any paid call
            room = self.quota_room(fleet, count)
            if room < count and progress:
                progress(f"instance {plan.name}: the vCPU quota lets {room} of {count} instances run now")
            fleet = replace(fleet, count=room)
        else:
            refused = self.check_quotas(plan.type, "spot" if plan.spot else "on-demand", action=f"launch instance {plan.name}")
            if refused is not None:
                raise refused
        self.ensure_key_pair()
        group_ids = (self.ensure_security_group(open_ssh=plan.open_ssh, vpc_id=plan.vpc_id),)
        spec = plan.spec(key_name=self.settings.key_name, group_ids=group_ids)
        token = uuid.uuid4().hex[:16]
        tags = {**plan.tags, LAUNCH_TAG: token}  # finds what this launch created, even if Ctrl-C lost the response
        try:
            if fleet is not None:
                return [self._require_imdsv2(i) for i in self.launch_fleet_instances(fleet, spec, tags, progress)]
            return [self._launch_on_demand(plan, spec, tags, progress)]
        except BaseException as err:
            left = self.cleanup_launch(token)
            if left:
                raise AwsError(
                    f"Launching '{plan.name}' failed ({err or type(err).__name__}) and ec2kit could not remove what it "
                    f"created: {', '.join(left)}.",
                    hint="Remove them in the AWS console or with `inv terminate ID`, then retry.",
                ) from err
            raise

    def _require_imdsv2(self, inst: Instance) -> Instance:
        """Make sure IMDSv2 is required on ``inst``: the launch template asks for it, and where the
        answer shows otherwise (moto's fleets drop template metadata options) it is set now."""
        wanted = LaunchPlan.METADATA_OPTIONS
        options = inst.raw.get("MetadataOptions") or {}
        if all(options.get(k) == v for k, v in wanted.items() if k != "HttpEndpoint"):
            return inst
        self.ec2.modify_instance_metadata_options(InstanceId=inst.id, **wanted)
        inst.raw["MetadataOptions"] = {**options, **wanted}  # keep what the fleet learnt (price, market)
        return inst

    def _launch_on_demand(
        self, plan: LaunchPlan, spec: dict[str, Any], tags: dict[str, str], progress: Progress | None
    ) -> Instance:
        if progress:
            progress(f"instance {plan.name}: launching")
        try:
            market = {"InstanceMarketOptions": plan.params["InstanceMarketOptions"]} if plan.spot else {}
            resp = self.ec2.run_instances(
                MinCount=1,
                MaxCount=1,
                ClientToken=tags[LAUNCH_TAG],
                **spec,
                **market,
                TagSpecifications=plan.tag_specifications(tags),
            )
        except Exception as err:
            if error_code(err) not in QUOTA_ERRORS:
                raise
            said = getattr(err, "response", {}).get("Error", {}).get("Message", "")
            explained = self.explain_quota(plan.type, "on-demand", action=plan.purpose, code=error_code(err), said=said)
            if explained is None:
                raise
            raise explained from err
        return self.wait(Instance.from_raw(resp["Instances"][0]), "running", progress=progress)

    def cleanup_launch(self, token: str) -> list[str]:
        """After a failed or interrupted launch: cancel its spot request, terminate its instance, delete its launch template.

        Finds them by the launch's token tag; returns the ids it could not remove (best effort).
        """
        found: list[str] = []
        instance_ids: set[str] = set()
        try:
            reqs = self.paginate(
                "describe_spot_instance_requests", "SpotInstanceRequests[]", Filters=filters(**{f"tag:{LAUNCH_TAG}": token})
            )
            instance_ids |= {r["InstanceId"] for r in reqs if r.get("InstanceId")}
            live = filters(**{f"tag:{LAUNCH_TAG}": token, "instance-state-name": list(LIVE_STATES)})
            instance_ids |= {
                i["InstanceId"] for i in self.paginate("describe_instances", "Reservations[].Instances[]", Filters=live)
            }
            if instance_ids:  # a fleet's spot requests carry no tags of their own: found through their instances
                reqs += self.paginate(
                    "describe_spot_instance_requests",
                    "SpotInstanceRequests[]",
                    Filters=filters(**{"instance-id": sorted(instance_ids)}),
                )
            found += sorted({r["SpotInstanceRequestId"] for r in reqs if r.get("State") in ("open", "active")})
            if found:
                self.ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=found)
            found = []
            if instance_ids:
                self.ec2.terminate_instances(InstanceIds=sorted(instance_ids))
            self.delete_launch_templates(token)
            return []
        except BaseException:
            return found + sorted(instance_ids) or [f"anything tagged {LAUNCH_TAG}={token}"]


def _root_size(raw: dict[str, Any]) -> int | None:
    """The image's root volume size in GB (its root device's snapshot), when it says."""
    root = raw.get("RootDeviceName")
    for mapping in raw.get("BlockDeviceMappings", []):
        if mapping.get("DeviceName") == root and mapping.get("Ebs", {}).get("VolumeSize"):
            return int(mapping["Ebs"]["VolumeSize"])
    return None
