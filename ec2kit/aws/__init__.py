"""AWS (EC2, Pricing) through boto3. No SSH.

Plain services over one session, composed by :class:`~ec2kit.aws.cloud.Cloud` (nothing inherits;
each service is given the others it needs). Imports go down this list (tests/test_imports.py)::

    cloud.py         Cloud: makes the session and the services, forwards every verb to its service
    launch.py        Launcher: plan_launch, launch, launch_many, cleanup by launch token
    fleet.py         Fleets: spot capacity through one instant EC2 Fleet over types × zones
    aliases.py       ImageChoice: image aliases via SSM per architecture, GPU default
    network.py       Networks: subnet, VPC, extra security groups, instance profile
    storage.py       Storage: volumes and snapshots (VolumePlan)
    images.py        Images: find images, freeze (FreezePlan), delete an image with its snapshots
    quotas.py        Quotas: EC2 vCPU quotas read and checked before a launch, explained after
    access.py        Access: key pair, ec2kit-ssh group and its rules (your /32), ssh_cidr
    instances.py     Instances: find, wait, start/stop/terminate/change_type, spot requests
    prices.py        on-demand (Pricing API) and spot prices, over any Ec2Api (a session or the Cloud)
    instance_types.py  InstanceTypes: DescribeInstanceTypes, cached per command
    session.py       AwsSession (lazy boto3 session and clients), paginate, wait_until, DryRun check
    plans.py         LaunchPlan, FleetPlan (pure);  address.py  this machine's public IPv4;  regions.py  "Ohio"
    errors.py        translate_client_error, @translated: the one place a botocore error becomes an ec2kit error
    quota_table.py   the vCPU quota of each family and market, and the one quota message (pure)
    models.py        Instance, Image, Volume, Snapshot, SpotRequest; pick / match_instance; tag names
    (EC2, SSM and IAM; every call is in docs/iam-policy.json: tests/test_real_aws_access.py checks)

Nothing here imports boto3 or botocore at module level.
"""
