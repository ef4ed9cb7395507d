"""ec2kit: AWS EC2 for regular folks.

Layers (dependencies point down only)::

    ec2kit.cli        Invoke task collections: parse, call, print
    ec2kit.spotrun    the spot-run lifecycle
    ec2kit.recipe     TOML playbooks: load, render, plan, execute
    ec2kit.aws        EC2 and prices through boto3 (knows nothing of SSH)
    ec2kit.ssh        SSH transports: system ssh or Fabric (knows nothing of AWS)
    ec2kit.sandbox    the local cloud: moto's EC2 server + real sshd hosts

Heavy libraries (boto3, fabric, rich, jinja2) are imported lazily so the
command line starts fast.
"""

__version__ = "0.1.0"
