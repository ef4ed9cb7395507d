"""ec2kit's command line: Invoke task collections.

`inv` in a checkout reads the top-level ``tasks.py`` (which imports ``ns`` from
here); a pip-installed ec2kit exposes the same tasks as the ``ec2kit`` command.
"""

from __future__ import annotations

from invoke import Collection, Task

from .. import __version__
from . import instances, project, recipes, runs, sandbox, storage, sweeps
from .fastexit import is_cli
from .registry import set_namespace
from .repl import repl as repl_task

if is_cli():
    import gc

    # A command allocates hundreds of thousands of long-lived objects as it starts (Invoke, boto3,
    # botocore's models) and little garbage; at Python's default (a pass every 700 allocations) the
    # cyclic collector spent ~30 ms of a 0.45 s `inv instances` re-scanning them. Fewer passes (in the
    # command-line programs only); cycles are still collected.
    gc.set_threshold(20_000, 20, 20)

ns = Collection()
for _module in (instances, storage, recipes, runs, sweeps, project):
    for _obj in vars(_module).values():
        if isinstance(_obj, Task) and _obj.body.__module__ == _module.__name__:
            ns.add_task(_obj)
ns.add_collection(Collection.from_module(sandbox, name="sandbox"))
ns.add_task(repl_task)
ns.configure({"run": {"echo": False}})
set_namespace(ns)


def main() -> None:
    """Entry point of the ``ec2kit`` console script (ec2kit's tasks; a local tasks.py is not loaded: use `inv` there)."""
    from ..ui import set_program
    from .program import Ec2kitProgram

    set_program("ec2kit")
    try:
        Ec2kitProgram(namespace=ns, version=__version__, name="ec2kit", binary="ec2kit", binary_names=["ec2kit"]).run()
    except BrokenPipeError:  # `ec2kit | head`: the reader left; say nothing more
        import os
        import sys

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
