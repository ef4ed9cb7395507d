"""AWS (EC2, Pricing) through boto3. No SSH.

    models.py    Instance, Image, Volume, Snapshot, SpotRequest; pick / match_instance; tag names
    errors.py    translate_client_error, @translated: the one place a botocore error becomes an ec2kit error
    session.py   AwsSession (lazy boto3 session and clients), paginate, wait_until, DryRun check
    access.py    key pair, security group, ssh_cidr                        (Access)
    instances.py find, wait, start/stop/terminate/change_type, spot requests (Instances)
    storage.py   images and freeze, volumes, snapshots                     (Storage, FreezePlan, VolumePlan)
    quotas.py    EC2 vCPU quotas: checked before a launch, explained after  (Quotas)
    fleet.py     spot capacity through one instant EC2 Fleet over types × zones (Fleets, FleetPlan)
    launch.py    LaunchPlan, plan_launch, launch, cleanup by launch token   (Launching)
    cloud.py     Cloud: the facade composing the above
    prices.py    on-demand (Pricing API) and spot prices;  regions.py  "Ohio" -> us-east-2

Nothing here imports boto3 or botocore at module level.
"""
