"""A project folder to edit: ``ec2kit init DIR`` copies the built-in recipes and templates and writes a tasks.py."""

from __future__ import annotations

from pathlib import Path

from ..errors import AlreadyExists
from ..fsutil import atomic_write

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


def init_project(directory: Path) -> list[Path]:
    """Copy recipes/ and templates/ (not spot-run/, ec2kit's own) and a starter tasks.py into ``directory``;
    refuses to overwrite anything that exists. Returns the files made, relative to ``directory``."""
    import shutil

    from ..paths import data_dir

    dest = directory.expanduser().resolve()
    plan = [(data_dir("recipes"), dest / "recipes"), (data_dir("templates"), dest / "templates")]
    clashes = [str(d) for _, d in plan if d.exists()] + ([str(dest / "tasks.py")] if (dest / "tasks.py").exists() else [])
    if clashes:
        raise AlreadyExists(
            f"ec2kit init would overwrite {', '.join(clashes)}.", hint="Move them aside, or init into another directory."
        )
    dest.mkdir(parents=True, exist_ok=True)
    for src, target in plan:  # spot-run/ holds ec2kit's own instance-side scripts, not for editing
        shutil.copytree(src, target, symlinks=False, ignore=shutil.ignore_patterns("spot-run", "__pycache__"))
    atomic_write(dest / "tasks.py", STARTER_TASKS, mode=0o644)
    return sorted(p.relative_to(dest) for p in dest.rglob("*") if p.is_file())
