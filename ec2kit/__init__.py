"""ec2kit: AWS EC2 for regular folks.

Layers (dependencies point down only)::

    ec2kit.cli        Invoke task collections: parse, call, print
    ec2kit.spotrun    the spot-run lifecycle
    ec2kit.recipe     TOML playbooks: load, render, plan, execute
    ec2kit.aws        EC2 and prices through boto3 (knows nothing of SSH)
    ec2kit.ssh        SSH transports: system ssh or Fabric (knows nothing of AWS)
    ec2kit.sandbox    the local cloud: moto's EC2 server + real sshd hosts

The Python API for notebooks and the REPL sits beside the command line, over the same
functions: ``from ec2kit import EC2`` (:mod:`ec2kit.api`).

Heavy libraries (boto3, fabric, rich, jinja2) are imported lazily so the
command line starts fast.
"""

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .api import EC2

if sys.dont_write_bytecode and not os.environ.get("PYTHONDONTWRITEBYTECODE"):
    # Invoke turns bytecode caching off before it loads tasks.py (no .pyc beside a user's tasks);
    # from a checkout or an editable install, no .pyc of ec2kit would ever be written and every
    # `inv` would compile ec2kit from source again (~0.1 s). Python's default again, from here on.
    sys.dont_write_bytecode = False

__version__ = "0.1.0"

__all__ = ["EC2", "__version__"]


def __getattr__(name: str) -> object:
    """``from ec2kit import EC2`` loads the Python API on first use (boto3 only when it talks to EC2)."""
    if name == "EC2":
        from .api import EC2

        return EC2
    raise AttributeError(f"module 'ec2kit' has no attribute {name!r}")
