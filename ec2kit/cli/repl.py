"""The interactive REPL: IPython with ``ec2`` ready."""

from __future__ import annotations

from ..context import Context
from ._common import command


@command()
def repl(ctx: Context) -> None:
    """IPython with `ec2` ready (ec2.instances(), ec2.i.<TAB>, ec2.launch(...)); needs pip install 'ec2kit[repl]'."""
    from ..api import EC2
    from ..repl import require_ipython, start

    require_ipython()  # before anything else, so a missing IPython is the first and only message
    start(EC2(context=ctx))
