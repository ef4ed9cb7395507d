"""``inv config``: the effective defaults and where each came from."""

from __future__ import annotations

from .. import ui
from ..context import Context
from ._common import command


@command(aws=False, help={"json": "print the values and their sources as JSON"})
def config(ctx: Context, json: bool = False) -> None:
    """Show the defaults ec2kit uses (flag > environment > ./ec2kit.toml > ~/.ec2kit/config.toml > built-in)."""
    from ..config import KEYS, files

    cfg = ctx.settings.defaults
    assert cfg is not None
    if json:
        ui.print_json({k: {"value": cfg.values[k], "source": cfg.sources[k]} for k in KEYS})
        return
    user, project = files(ctx.settings.home)
    rows = [(k, "" if cfg.values[k] in (None, []) else str(cfg.values[k]), cfg.sources[k], KEYS[k].help) for k in KEYS]
    ui.print_table(f"Defaults (files: {project}, {user})", ["key", "value", "from", "what"], rows)
