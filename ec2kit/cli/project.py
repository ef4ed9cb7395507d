"""Project set-up tasks: ``inv config`` (the effective defaults) and ``ec2kit init`` (editable copies)."""

from __future__ import annotations

from .. import ui
from ..context import Context
from ._common import command, domain


@command(aws=False, help={"json": "print the values and their sources as JSON"})
def config(ctx: Context, json: bool = False) -> None:
    """Show the defaults ec2kit uses (flag > environment > ./ec2kit.toml > ~/.ec2kit/config.toml > built-in)."""
    from ..config import KEYS, files

    cfg = domain(ctx).config()
    if json:
        ui.print_json({k: {"value": cfg.values[k], "source": cfg.sources[k]} for k in KEYS})
        return
    user, project = files(ctx.settings.home)
    rows = [(k, "" if cfg.values[k] in (None, []) else str(cfg.values[k]), cfg.sources[k], KEYS[k].help) for k in KEYS]
    ui.print_table(f"Defaults (files: {project}, {user})", ["key", "value", "from", "what"], rows)


@command(aws=False, help={"directory": "where to put recipes/, templates/ and tasks.py ('.' for here)"})
def init(ctx: Context, directory: str) -> None:
    """Copy ec2kit's built-in recipes and templates and a starter tasks.py into a project folder to edit.

    Refuses to overwrite anything that exists. Example: ec2kit init myproject (or: ec2kit init .)
    """
    from pathlib import Path

    made = domain(ctx).init(directory)
    dest = Path(directory).expanduser().resolve()
    ui.console().print(f"Made {len(made)} files in {dest}:\n  " + "\n  ".join(str(p) for p in made))
    ui.console().print("Edit recipes/*.toml; `inv recipes` there shows which recipe comes from where.")
