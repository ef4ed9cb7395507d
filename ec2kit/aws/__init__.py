"""AWS (EC2, Pricing) through boto3. No SSH.

    models.py    Instance, Image, Volume, Snapshot, SpotRequest; pick / match_instance; tag names
    errors.py    translate_client_error, @translated: the one place a botocore error becomes an ec2kit error
    session.py   AwsSession (lazy boto3 session and clients), paginate, wait_until, DryRun check
    address.py   this machine's public IPv4 from a "what is my IP" URL, cached a few minutes
    access.py    key pair, ec2kit-ssh group and its rules (your /32), ssh_cidr (Access)
    network.py   subnet, VPC, extra security groups, instance profile       (Networks)
    aliases.py   image aliases via SSM per architecture, GPU default        (ImageChoice)
    instances.py find, wait, start/stop/terminate/change_type, spot requests (Instances)
    storage.py   images and freeze, volumes, snapshots                     (Storage, FreezePlan, VolumePlan)
    quotas.py    EC2 vCPU quotas: checked before a launch, explained after  (Quotas)
    fleet.py     spot capacity through one instant EC2 Fleet over types × zones (Fleets, FleetPlan)
    launch.py    LaunchPlan, plan_launch, launch, cleanup by launch token   (Launching)
    cloud.py     Cloud: the facade composing the above
    prices.py    on-demand (Pricing API) and spot prices;  regions.py  "Ohio" -> us-east-2
    (EC2, SSM and IAM; every call is in docs/iam-policy.json: tests/test_real_aws_access.py checks)

Nothing here imports boto3 or botocore at module level.
"""
