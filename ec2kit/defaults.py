"""ec2kit's built-in defaults, written once: every layer and both faces (command line, Python) read them here.

``./ec2kit.toml``, ``~/.ec2kit/config.toml`` and flags override the ones config.py knows (see
``inv config``); ``ec2kit.api.options`` fills them in and checks values against the limits below.
"""

from __future__ import annotations

LAUNCH_TYPE = "t3.medium"  # `launch`: a small general-purpose machine
RUN_TYPE = "m5.large"  # `spot-run`, `sweep`, `demo`: a spot instance for a job
DEFAULT_MOUNT = "/mnt/data"  # where data volumes are mounted
MAX_DISK_GB = 16384  # the largest gp3 volume AWS makes
RESERVED_TAG_PREFIXES = ("ec2kit:", "aws:")  # set by ec2kit and AWS, never by a user
PRICE_CACHE = "prices.json"  # under EC2KIT_HOME: list prices (on-demand, EBS, IPv4) by region, kept a day (aws/prices.py)
