"""Project set-up tasks: ``inv config`` (the effective defaults) and ``ec2kit init`` (editable copies)."""

from __future__ import annotations

from .. import ui
from ..context import Context
from ._common import command

STARTER_TASKS = '''"""This project's ec2kit tasks: `inv --list` here shows ec2kit's commands plus your own.

Recipes in ./recipes and templates in ./templates override ec2kit's built-ins of the same name.
Add Python tasks that recipes call by name:

    from ec2kit.recipe import register_task

    @register_task("hello")
    def hello(tc, who="world"):
        tc.report(f"hello {who}")
"""

from ec2kit.cli import ns  # noqa: F401  (Invoke looks for `ns`)
'''


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


@command(aws=False, help={"directory": "where to put recipes/, templates/ and tasks.py ('.' for here)"})
def init(ctx: Context, directory: str) -> None:
    """Copy ec2kit's built-in recipes and templates and a starter tasks.py into a project folder to edit.

    Refuses to overwrite anything that exists. Example: ec2kit init myproject (or: ec2kit init .)
    """
    import shutil
    from pathlib import Path

    from ..errors import AlreadyExists
    from ..paths import data_dir

    dest = Path(directory).expanduser().resolve()
    plan = [(data_dir("recipes"), dest / "recipes"), (data_dir("templates"), dest / "templates")]
    clashes = [str(d) for _, d in plan if d.exists()] + ([str(dest / "tasks.py")] if (dest / "tasks.py").exists() else [])
    if clashes:
        raise AlreadyExists(
            f"ec2kit init would overwrite {', '.join(clashes)}.", hint="Move them aside, or init into another directory."
        )
    dest.mkdir(parents=True, exist_ok=True)
    for src, target in plan:  # spot-run/ holds ec2kit's own instance-side scripts, not for editing
        shutil.copytree(src, target, symlinks=False, ignore=shutil.ignore_patterns("spot-run", "__pycache__"))
    (dest / "tasks.py").write_text(STARTER_TASKS)
    made = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    ui.console().print(f"Made {len(made)} files in {dest}:\n  " + "\n  ".join(made))
    ui.console().print("Edit recipes/*.toml; `inv recipes` there shows which recipe comes from where.")
