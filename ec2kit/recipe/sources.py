"""Which laptop files a recipe may read: the project's own tree, or paths written out on purpose.

A recipe can come with a cloned repository, so a relative ``copy`` source, a template and a
``uses`` entry must stay inside the project once symlinks are resolved (``../../etc/shadow``, a
``data -> /home/me/.ssh`` link, a ``templates/`` link are refused). A source written as an absolute
or ``~`` path is taken as meant and shown in the plan. A project recipe that shadows a built-in
one of the same name says so once per process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import RecipeError

_NOTED: set[str] = set()


def explicit(text: str) -> bool:
    """Whether a source is written as an absolute or ``~`` path (taken as meant, shown in the plan)."""
    return text.startswith(("/", "~"))


def inside(path: Path | str, root: Path | str) -> bool:
    """Whether ``path`` is ``root`` or under it once both are resolved (symlinks followed)."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def _at(where: str | Callable[[], str]) -> str:
    return where() if callable(where) else where


def project_source(text: str, base_dir: Path, where: str | Callable[[], str], key: str = "copy") -> Path:
    """The local file a step reads: relative ones must stay inside ``base_dir`` (symlinks resolved)."""
    src = Path(text).expanduser()
    if explicit(text):
        return src
    src = base_dir / src
    if not inside(src, base_dir):
        raise RecipeError(
            f"{_at(where)}: {key} = {text!r} is outside the project ({base_dir}): it resolves to "
            f"{os.path.realpath(src)}. ec2kit does not read files outside a recipe's project from a relative path "
            "or through a symlink.",
            hint="Copy the file into the project, or write its absolute or ~/ path to read it on purpose.",
        )
    return src


def check_tree(directory: Path, where: str | Callable[[], str]) -> None:
    """Refuse a directory to copy when a symlink in it points outside it (its target is never read)."""
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = Path(root) / name
            if path.is_symlink() and not inside(path, directory):
                raise RecipeError(
                    f"{_at(where)}: {path} is a symlink to {path.readlink()}, outside {directory}; "
                    "ec2kit does not follow links out of a copied directory.",
                    hint="Replace the link with the file itself, or remove it.",
                )


def template_root(directory: Path, trusted: tuple[Path, ...]) -> Path:
    """What a template directory's files must stay inside: itself for ec2kit's and your own, else its parent."""
    if any(os.path.realpath(directory) == os.path.realpath(t) for t in trusted):
        return directory
    return directory.parent


def check_template(filename: str, searchpaths: list[str], trusted: tuple[Path, ...]) -> None:
    """Refuse a template found through a symlink that leaves its project (a RecipeError naming both)."""
    for sp in searchpaths:
        if filename.startswith(sp.rstrip(os.sep) + os.sep):
            root = template_root(Path(sp), trusted)
            if not inside(filename, root):
                raise RecipeError(
                    f"template {filename} resolves to {os.path.realpath(filename)}, outside {root}; "
                    "ec2kit does not follow symlinks out of a project.",
                    hint="Put the template itself in the project's templates/ directory.",
                )
            return


def recipe_file(text: str, where: str) -> None:
    """Refuse a recipe path that is not a ``.toml`` file (never read, never quoted: it may hold secrets)."""
    if not text.endswith(".toml"):
        raise RecipeError(
            f"{where}: {text!r} is not a recipe: a recipe is a .toml file (a name such as 'base', or a path ending in .toml).",
            hint="Name a recipe from ./recipes, ~/.ec2kit/recipes or the built-ins (`inv recipes` lists them).",
        )


def note_shadow(name: str, path: Path) -> None:
    """Say once that a project/user recipe replaces the built-in one of the same name."""
    if name in _NOTED:
        return
    _NOTED.add(name)
    print(f"Note: {path} replaces the built-in recipe '{name}'.", file=sys.stderr)
