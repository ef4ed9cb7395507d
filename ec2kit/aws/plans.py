"""What a launch will ask EC2 for, as pure data: building a plan calls nothing.

    LaunchPlan   one instance, from the arguments of ``inv launch``; .params is the RunInstances DryRun sends
    FleetPlan    a spot launch as an instant EC2 Fleet over types × zones; .params is the CreateFleet DryRun sends
    FreezePlan   an image of an instance (CreateImage);  VolumePlan  a gp3 volume (CreateVolume)

``cloud.plan_launch(…)`` and ``cloud.plan_fleet(…)`` build them (checking names against AWS),
``cloud.check(plan)`` sends them with DryRun, ``cloud.launch(plan)`` does them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from ..defaults import LAUNCH_TYPE
from .models import MANAGED_TAG, tag_list

__all__ = ["FleetPlan", "FreezePlan", "LaunchPlan", "VolumePlan", "replace_types"]


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
    type: str = LAUNCH_TYPE
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
    #: the subnet assigns no public IPv4 by itself: ask for one on the primary interface (or the laptop cannot dial it)
    associate_public_ip: bool = False
    instance_profile: str | None = None  # IAM instance profile name
    interruption: str | None = None  # spot: "stop" = a persistent request whose instance (and disk) is stopped, not terminated
    network_note: str = ""  # how the laptop will reach it when the subnet assigns no public IPv4
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
        if self.associate_public_ip:  # AWS takes the address only on an interface, which then holds subnet and groups
            nic: dict[str, Any] = {"DeviceIndex": 0, "AssociatePublicIpAddress": True, "DeleteOnTermination": True}
            if self.subnet_id:
                nic["SubnetId"] = self.subnet_id
            if groups:
                nic["Groups"] = groups
            spec["NetworkInterfaces"] = [nic]
        else:
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


@dataclass(frozen=True)
class FleetPlan:
    """One spot launch as an instant EC2 Fleet (pure data): the pools to try, per market.

    :attr:`params` is the CreateFleet call ``--check`` sends with DryRun (against a launch
    template named :attr:`template_name`).
    """

    action: ClassVar[str] = "create_fleet"
    launch: LaunchPlan
    types: tuple[str, ...]  # spot pools: these types × zones
    zones: tuple[str, ...] = ()  # () with subnets: the subnets place the instance
    subnets: tuple[str, ...] = ()
    on_demand_types: tuple[str, ...] = ()  # the fallback fleet's types (none: no fallback)
    offered: dict[str, tuple[str, ...]] = field(default_factory=dict)  # type -> zones it is offered in
    zone_subnets: dict[str, str] = field(default_factory=dict)  # zone -> its default subnet (the default VPC)
    skipped_zones: tuple[str, ...] = ()  # zones left out: no default subnet there
    template_name: str = "ec2kit-check"
    count: int = 1  # instances wanted from the one call (a sweep's batch); AWS may give fewer

    @property
    def name(self) -> str:
        """The instance's name (for messages)."""
        return self.launch.name

    @property
    def purpose(self) -> str:
        """For error messages."""
        return f"launch instance {self.launch.name}"

    def pools(self, market: str = "spot") -> list[tuple[str, str]]:
        """(type, zone or subnet) pairs to try for ``market``."""
        types = self.types if market == "spot" else self.on_demand_types
        places = self.subnets or self.zones
        return [(t, p) for t in types for p in places if self.subnets or p in self.offered.get(t, places)]

    def overrides(self, market: str = "spot") -> list[dict[str, Any]]:
        """The fleet's overrides: one per pool (Priority follows the order of --types, for on-demand)."""
        found = []
        order = {t: i for i, t in enumerate(self.types if market == "spot" else self.on_demand_types)}
        for type_, place in self.pools(market):
            item: dict[str, Any] = {"InstanceType": type_}
            if self.launch.associate_public_ip:  # the template's interface names the one subnet
                pass
            elif self.subnets or place in self.zone_subnets:  # a subnet places the instance in its zone
                item["SubnetId"] = self.zone_subnets.get(place, place)
            else:
                item["AvailabilityZone"] = place
            if market == "spot" and self.launch.max_price is not None:
                item["MaxPrice"] = str(self.launch.max_price)
            if market == "on-demand":
                item["Priority"] = float(order[type_])
            found.append(item)
        return found

    def fleet_params(self, market: str = "spot", *, template_name: str | None = None, token: str | None = None) -> dict[str, Any]:
        """The CreateFleet call for ``market`` against launch template ``template_name``."""
        params: dict[str, Any] = {
            "Type": "instant",
            "LaunchTemplateConfigs": [
                {
                    "LaunchTemplateSpecification": {
                        "LaunchTemplateName": template_name or self.template_name,
                        "Version": "$Latest",
                    },
                    "Overrides": self.overrides(market),
                }
            ],
            "TargetCapacitySpecification": {"TotalTargetCapacity": self.count, "DefaultTargetCapacityType": market},
            "TagSpecifications": [{"ResourceType": "fleet", "Tags": tag_list(self.launch.tags)}],
        }
        if market == "spot":
            params["SpotOptions"] = {"AllocationStrategy": "price-capacity-optimized"}
        else:
            params["OnDemandOptions"] = {"AllocationStrategy": "prioritized"}
        if token:
            params["ClientToken"] = f"{token}-{market}"
        return params

    @property
    def params(self) -> dict[str, Any]:
        """The spot CreateFleet call, as DryRun sends it."""
        return self.fleet_params("spot" if self.types else "on-demand")

    def template_data(self, spec: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
        """LaunchTemplateData from a run_instances ``spec``: type and place come from the overrides."""
        data = {k: v for k, v in spec.items() if k not in ("InstanceType", "Placement", "SubnetId", "MinCount", "MaxCount")}
        if isinstance(data.get("UserData"), str):  # templates want it base64-encoded by the caller
            data["UserData"] = base64.b64encode(data["UserData"].encode()).decode()
        data["TagSpecifications"] = [{"ResourceType": r, "Tags": tag_list(tags)} for r in ("instance", "volume")]
        return data


@dataclass(frozen=True)
class FreezePlan:
    """An image of an instance, as create_image will be asked for it."""

    action: ClassVar[str] = "create_image"
    subject: str  # the instance as the caller named it
    instance_id: str
    instance_label: str
    image_name: str
    tags: dict[str, str] = field(default_factory=dict)
    #: attached EBS volumes other than the root disk (a data volume): left out of the image with NoDevice,
    #: or every launch from it would bring a copy of the volume that outlives the instance
    left_out: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The image's name."""
        return self.image_name

    @property
    def purpose(self) -> str:
        """For error messages."""
        return f"freeze instance {self.subject} into an image"

    @property
    def params(self) -> dict[str, Any]:
        """The create_image parameters."""
        return {
            "InstanceId": self.instance_id,
            "Name": self.image_name,
            "Description": f"ec2kit freeze of {self.instance_label}",
            "TagSpecifications": [
                {"ResourceType": "image", "Tags": tag_list(self.tags)},
                {"ResourceType": "snapshot", "Tags": tag_list({"Name": self.image_name, MANAGED_TAG: "1"})},
            ],
            **({"BlockDeviceMappings": [{"DeviceName": d, "NoDevice": ""} for d in self.left_out]} if self.left_out else {}),
        }


@dataclass(frozen=True)
class VolumePlan:
    """A gp3 volume, as create_volume will be asked for it."""

    action: ClassVar[str] = "create_volume"
    name: str
    zone: str
    size: int | None = None
    snapshot_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def purpose(self) -> str:
        """For error messages."""
        return f"create volume {self.name}"

    @property
    def params(self) -> dict[str, Any]:
        """The create_volume parameters."""
        params: dict[str, Any] = {
            "AvailabilityZone": self.zone,
            "VolumeType": "gp3",
            "TagSpecifications": [{"ResourceType": "volume", "Tags": tag_list(self.tags)}],
        }
        if self.size:
            params["Size"] = int(self.size)
        if self.snapshot_id:
            params["SnapshotId"] = self.snapshot_id
        return params


def replace_types(fleet: FleetPlan, *, spot: tuple[str, ...], on_demand: tuple[str, ...]) -> FleetPlan:
    """The fleet with these types per market."""
    return replace(fleet, types=spot, on_demand_types=on_demand)
