"""ec2kit from Python: a notebook and REPL facade over the same functions the command line calls.

    from ec2kit import EC2
    ec2 = EC2()                                  # AWS, or the local sandbox (no credentials / EC2KIT_SANDBOX=1)
    ec2.instances()                              # a table in Jupyter
    gpu = ec2.launch("gpu1", type="g5.xlarge", spot=True, disk=80)   # returns once SSH answers
    gpu.ssh().run("nvidia-smi").stdout
    gpu.put("data.csv", "~/data.csv"); gpu.get("~/out.txt", "out.txt")
    gpu.stop(); gpu.state                        # live: 'stopped'
    gpu.change_type("g5.2xlarge"); gpu.start()
    ec2.freeze("gpu1")                           # an image named gpu1
    ec2.create_volume(gpu, 20, name="data")      # create, attach, format, mount at /mnt/data
    ec2.recipe("base").run(on=["gpu1"], vars={"packages": ["htop"]}, check=True)
    run = ec2.spot_run("train.sh", files="train.py")
    run.status; run.logs(); run.metrics()["loss"].ys; run.plot()
    ec2.runs()
    sweep = ec2.sweep("train.sh", grid={"lr": [1e-3, 3e-4]}, parallel=2)
    sweep.summary; ec2.sweeps()

This is the one domain layer: every ``inv``/``ec2kit`` task calls the ``EC2`` method of the same
name with the same options (``tests/test_parity.py``), so defaults and checks live here once.
Every verb goes through :mod:`ec2kit.actions`, :class:`ec2kit.aws.cloud.Cloud`,
:mod:`ec2kit.recipe`, :mod:`ec2kit.spotrun` and :mod:`ec2kit.sweep`; nothing here talks
to AWS or SSH by itself. Objects are live views: an :class:`Instance` re-reads its state when
its snapshot is more than :attr:`Instance.max_age` seconds old (and right after each verb), a
:class:`Run` re-reads its record. Errors are :mod:`ec2kit.errors` classes with the same
messages as on the command line.

Tab completion in IPython: ``ec2.i.<TAB>`` lists instance names (made into identifiers:
``gpu-1`` → ``ec2.i.gpu_1``) and ``ec2["<TAB>`` lists them as written. ``inv repl`` starts
IPython with ``ec2`` ready.

Importing this module is cheap: boto3, rich, jinja2 and matplotlib load on first use.
"""

from __future__ import annotations

from .ec2 import EC2
from .instances import CommandResult, Instance, InstanceNames, Shell, UnknownInstance
from .machines import LaunchCheck
from .recipes import Recipe, RecipeFailed, RecipeReport
from .runs import Run
from .shown import Listing, Text, examples_dir, identifier
from .sweeps import Sweep

__all__ = [
    "EC2",
    "CommandResult",
    "Instance",
    "InstanceNames",
    "LaunchCheck",
    "Listing",
    "Recipe",
    "RecipeFailed",
    "RecipeReport",
    "Run",
    "Shell",
    "Sweep",
    "Text",
    "UnknownInstance",
    "examples_dir",
    "identifier",
]
