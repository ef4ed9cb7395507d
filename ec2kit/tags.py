"""Every tag name ec2kit writes or reads, in one place (a leaf module: it imports nothing).

Everything ec2kit creates carries ``MANAGED`` and ``Name``; a run's resources also ``RUN``, a sweep's
instances ``SWEEP``. ``LAUNCH`` ties the resources of one launch together so a crash can clean them up.
"""

from __future__ import annotations

MANAGED_TAG = "ec2kit:managed"  # "1" on everything ec2kit made
SOURCE_INSTANCE_TAG = "ec2kit:source-instance"  # on an image: the instance frozen into it
IMAGE_TAG = "ec2kit:image"  # on an image's snapshots: the image they belong to
LAUNCH_TAG = "ec2kit:launch"  # the launch token: one launch's instances, requests and launch template
SPOT_REQUEST_TAG = "ec2kit:spot-request"  # on an instance: the spot request that launched it
RUN_TAG = "ec2kit:run"  # the spot run an instance, request or volume serves
SWEEP_TAG = "ec2kit:sweep"  # the sweep an instance serves (it serves one run at a time: RUN_TAG)
IDLE_TAG = "ec2kit:idle"  # on an instance: its autostop ("30m stop", "off"), what `inv instances` shows
NAME_CLAIM_TAG = "ec2kit:name-claimed"  # "1" on an instance that won its Name from launches of that name at the same time

__all__ = [
    "IDLE_TAG",
    "IMAGE_TAG",
    "LAUNCH_TAG",
    "MANAGED_TAG",
    "RUN_TAG",
    "SOURCE_INSTANCE_TAG",
    "SPOT_REQUEST_TAG",
    "SWEEP_TAG",
]
