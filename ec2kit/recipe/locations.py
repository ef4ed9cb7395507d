"""Where things are: the built-in and user recipe/template folders, and a step's file:line with its lines.

A leaf of recipe/: the loader, the renderer and the executor all point at a user's file through it.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..paths import data_dir
from .model import Step


def builtin_recipes_dir() -> Path:
    """Recipes shipped with ec2kit (package data first, then the source checkout)."""
    return data_dir("recipes")


def builtin_templates_dir() -> Path:
    """Templates shipped with ec2kit (package data first, then the source checkout)."""
    return data_dir("templates")


def user_dir(kind: str) -> Path:
    """``~/.ec2kit/recipes`` or ``~/.ec2kit/templates`` (under EC2KIT_HOME): yours, for every project."""
    from ..settings import default_home

    return default_home() / kind


# -- source locations ---------------------------------------------------------------


def source_context(text: str, line: int, around: int = 2) -> str:
    """Lines ``line-around .. line+around`` of ``text``, numbered, the given line marked."""
    lines = text.splitlines()
    out = []
    for n in range(max(1, line - around), min(len(lines), line + around) + 1):
        out.append(f"{'>' if n == line else ' '} {n:4} | {lines[n - 1]}")
    return "\n".join(out)


def step_header_lines(text: str) -> list[int]:
    """1-based line numbers of every ``[[step]]`` header, in order."""
    return [i for i, ln in enumerate(text.splitlines(), 1) if re.match(r"\s*\[\[\s*step\s*\]\]", ln)]


def key_line(text: str, header: int, key: str) -> int:
    """Line of ``key = ...`` inside the step starting at ``header`` (the header when not found)."""
    lines = text.splitlines()
    for n in range(header + 1, len(lines) + 1):
        ln = lines[n - 1]
        if re.match(r"\s*\[", ln):
            break
        if re.match(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", ln):
            return n
    return header


def where(step: Step, key: str | None = None) -> tuple[str, str]:
    """``("recipes/base.toml:14", context)`` for a step (and one of its keys)."""
    if step.source is None or not step.source.exists():
        return (step.recipe, "")
    text = step.source.read_text()
    line = key_line(text, step.line, key) if key else step.line
    return (f"{shown_path(step.source)}:{line}", source_context(text, line))


def shown_path(path: Path) -> str:
    """A path as the user would write it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
