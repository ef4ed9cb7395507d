"""The local sandbox cloud: moto's EC2 server plus one real sshd per running instance.

A newcomer with no AWS account (and every test) uses it::

    from ec2kit.sandbox import ensure_running, Resolver
    info = ensure_running(settings)          # starts the daemon once, reuses it after
    ec2 = info.client()                      # boto3 EC2 client for the sandbox
    address = Resolver(info).wait_address(instance_id)   # host, port, user of its sshd

Three sub-packages, imports going down: ``daemon/`` (the background process: control and metadata
server, reconciler, one sshd per instance, loop-device volumes) → ``moto/`` (moto's server and the
AWS behaviours taught to it: the pretend account, quotas, capacity, fleets, seeded images) →
``client/`` (standard library only: start/stop the daemon, knobs, resolver; all this package
imports, so the CLI starts fast). Moto and boto3 live in the daemon process.

What the sandbox imitates of a real AWS account (knobs in ``client/knobs.py``, re-exported here; all
back to their defaults on ``reset()``):

- "What is my IP": ``GET info.checkip_url`` answers the caller's public IPv4 + "\n" like
  https://checkip.amazonaws.com (default 198.51.100.7; ``set_caller_ip``).
- Security groups gate SSH (``enforce_ssh_rules``, on by default: ec2kit's own launches admit
  the caller IP /32 it learns from ``checkip_url``, as on AWS): without a tcp/22 rule for the caller IP (or, with
  ``Resolver.wait_address(..., from_instance=…)``, a rule naming the source's group or private IP)
  the address handed out is a blackhole port and connecting times out, as on AWS.
- SSM public parameters for Canonical Ubuntu 24.04/22.04 (amd64, arm64) and the Deep Learning
  Base OSS Nvidia Driver GPU AMIs (x86_64, arm64), naming images describe_images knows.
- Service Quotas' EC2 vCPU quotas (young-account defaults: 5 Standard, 0 for G/VT, P, Inf, F,
  X, DL, Trn, High Memory), settable (``set_quota``), enforced on RunInstances,
  RequestSpotInstances and CreateFleet (VcpuLimitExceeded / MaxSpotInstanceCountExceeded) for
  quotas a test set or all (``enforce_quotas``); GetServiceQuota answers what is enforced (a
  roomy 1024 for a quota nobody set while not all are enforced); AccessDeniedException
  (``deny_quota_access``).
- CreateFleet with ``DryRun=True`` answers DryRunOperation (moto's own) and launches nothing.
- Capacity (``set_capacity``): InsufficientInstanceCapacity for empty (type, zone, market)
  pools; spot requests wait ``open``/capacity-not-available; instant fleets skip empty pools and
  list them in ``Errors``; ``interrupt_after=S`` makes a pool interrupt its spot instances.
- Spot interruptions (``interrupt``): the 2-minute notice in instance metadata, then terminate,
  or stop (InstanceInterruptionBehavior=stop, disk kept) and start again with a new public IP on
  ``capacity_returns`` or after ``restart_after`` s.
- Stop and start: a stopped instance runs nothing and has no mounts (its sshd's mount and PID namespaces end
  with it; its volumes stay attached and come back as devices, unmounted, on start: no setting, AWS always
  behaves so). Started again, it runs its own ``/var/lib/cloud/scripts/per-boot/`` (each instance's
  ``cloud/`` directory, bind-mounted there) as cloud-init's scripts-per-boot module does: the executable
  files in name order, one after the other, as root, once its volumes are attached (``run_boot_scripts``,
  on by default; output in the host's ``boot.log``). Not imitated: the rest of cloud-init (per-instance and
  per-once scripts, user data), /etc/fstab, systemd units.
- Deleting: DeleteVolume of an attached volume answers VolumeInUse and DeleteSnapshot of an image's
  snapshot InvalidSnapshot.InUse (moto's own), and still for ``DEREGISTER_LAG`` (1.5) s after
  DeregisterImage, as AWS does for a while (moto lets go at once).
- Prices (``moto/pricelist.py``): the Pricing API's GetProducts on the EC2 port (AWS's us-east-1 list
  prices of the common families, EBS by type, snapshots, public IPv4; AWS's filters and paging), and
  DescribeSpotPriceHistory with a price per type and zone (a fixed share of on-demand per zone).
  us-west-1 is priced apart (dearer EBS, snapshots and on-demand, as on AWS), so a region's own prices
  show; the sandbox runs in us-east-1 unless ``--region`` / ``EC2(region=)`` names another, where prices,
  volumes and snapshots work but a launch is refused (``Unsupported``: its machines live in us-east-1,
  the only region seeded with images). A throttle window answers JSON-protocol calls in JSON, as AWS does.
- Throttling (``knobs.throttle(settings, seconds, actions=())``): every API call (or only those
  actions: AWS throttles by action bucket) answers HTTP 503 RequestLimitExceeded for the window;
  ``knobs.throttled()`` lists the calls refused and answered.
- Eventual consistency (``eventual_consistency(settings, lookups=1)``, on by default; 0 turns it
  off): a just-created instance, security group, volume or image answers ``*.NotFound`` to its
  first lookup by id (Describe* by id, CreateTags, AuthorizeSecurityGroupIngress, AttachVolume);
  ``not_found_lookups()`` lists the calls refused (``moto/consistency.py``).
- Snapshots are ``pending`` for 2 s with a growing Progress (``snapshot_pending(settings, S)``)
  and CreateVolume from a pending one fails with ``IncorrectState``; CreateImage takes every
  attached EBS volume into the image unless its BlockDeviceMappings say ``NoDevice``, and tags
  snapshots from its TagSpecifications (``image_takes_volumes``; ``moto/storage_behaviours.py``).

Not imitated: IAM and permissions beyond the quota AccessDenied switch; security groups for
anything but SSH, egress rules, NACLs, IPv6; real public IPs (instances live on 127.0.0.1
ports); quota usage of stopped or open-request capacity; persistent requests relaunching
a *terminated* instance; NotFound from filter-based describes or from calls that use a fresh
id as a parameter (RunInstances with a just-made group); extra volumes created by launching
from an image that maps them; spot prices that move over time and price-driven interruptions;
billing itself (ec2kit's costs are computed from the price table, never read from a bill); hibernation; the
instance-type/AMI validation AWS does (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from .client import knobs  # the module too: `from ec2kit.sandbox import knobs; knobs.set_quota(...)`
from .client.info import SANDBOX_CREDENTIALS, SANDBOX_REGION, SandboxInfo, require_volumes, volumes_supported
from .client.knobs import (
    account,
    caller_ip,
    capacity_returns,
    deny_quota_access,
    enforce_quotas,
    enforce_ssh_rules,
    interrupt,
    reset,
    run_boot_scripts,
    set_caller_ip,
    set_capacity,
    set_quota,
)
from .client.process import down, ensure_running, status, up
from .client.resolver import Resolver, SandboxAddress

__all__ = [
    "knobs",
    "SANDBOX_CREDENTIALS",
    "SANDBOX_REGION",
    "SandboxInfo",
    "SandboxAddress",
    "Resolver",
    "ensure_running",
    "up",
    "down",
    "status",
    "interrupt",
    "reset",
    "volumes_supported",
    "require_volumes",
    "account",
    "caller_ip",
    "set_caller_ip",
    "enforce_ssh_rules",
    "set_quota",
    "enforce_quotas",
    "deny_quota_access",
    "set_capacity",
    "capacity_returns",
    "run_boot_scripts",
]
