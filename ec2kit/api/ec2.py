"""The ``EC2`` entry point: everything ec2kit does, from a notebook, IPython, or the command line's tasks.

``EC2`` is the one domain layer both faces call: each ``inv``/``ec2kit`` task parses its flags,
calls the ``EC2`` method of the same name (``tests/test_parity.py`` holds them to it) and prints
what it returns. Its verbs live by concern: machines, storage, recipes, running, sweeps, costs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .costs import CostVerbs
from .machines import MachineVerbs
from .notebooks import JupyterVerbs
from .prices import PriceVerbs
from .recipes import RecipeVerbs
from .running import RunVerbs
from .storage import StorageVerbs
from .sweeps import SweepVerbs

if TYPE_CHECKING:
    from ..config import Config
    from ..context import Context


class EC2(MachineVerbs, PriceVerbs, StorageVerbs, RecipeVerbs, RunVerbs, SweepVerbs, CostVerbs, JupyterVerbs):
    """EC2 for notebooks, the REPL and the command line: ``EC2(region="Ohio", profile="work")``.

    The same rules as the command line pick AWS or the local sandbox: ``EC2KIT_SANDBOX=1`` (or
    ``sandbox=True``) forces the sandbox, ``EC2KIT_SANDBOX=0`` (or ``sandbox=False``) forbids it,
    otherwise the sandbox is used when no AWS credentials are found. ``home`` moves ec2kit's state
    (default ``EC2KIT_HOME`` or ``~/.ec2kit``); ``quiet`` drops progress and step lines. Nothing is
    contacted until the first call. ``context=`` and ``cli=True`` are how the command line's tasks
    make theirs (errors then name ``--flags``).
    """

    def __init__(
        self,
        region: str | None = None,
        profile: str | None = None,
        *,
        sandbox: bool | None = None,
        home: Path | str | None = None,
        quiet: bool = False,
        context: Context | None = None,
        cli: bool = False,
    ) -> None:
        super().__init__(region, profile, sandbox=sandbox, home=home, quiet=quiet, context=context, cli=cli)
        from .instances import InstanceNames

        #: ``ec2.i.<TAB>``: instances by attribute name
        self.i = InstanceNames(self)

    # -- project ------------------------------------------------------------------------------
    def config(self) -> Config:
        """The defaults ec2kit uses and where each comes from (flag > environment > ./ec2kit.toml >
        ~/.ec2kit/config.toml > built-in), as ``inv config`` shows them: ``.values``, ``.sources``."""
        from .. import config

        return self.settings.defaults or config.load(self.settings.home)

    def init(self, directory: str | Path) -> list[Path]:
        """Copy ec2kit's built-in recipes and templates and a starter tasks.py into ``directory`` to edit
        (``ec2kit init``); refuses to overwrite anything. Returns the files made."""
        from .project import init_project

        return init_project(Path(directory))

    def __repr__(self) -> str:
        ctx = self.ctx
        if not ctx.where.contacted:
            mode = {True: "sandbox", False: "AWS", None: "AWS, or the sandbox without credentials"}[self.settings.sandbox]
            return f"<EC2 {mode} (not contacted yet), home {self.settings.home}>"
        where = "sandbox" if ctx.sandbox is not None else f"AWS profile {self.settings.profile or 'default'}"
        return f"<EC2 {where}, region {ctx.cloud.region}, home {self.settings.home}>"
