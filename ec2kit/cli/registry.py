"""The one task collection, handed over by ``ec2kit.cli`` once it is built.

Help, usage lines and ``--help`` given as a value need to look tasks up; they read it here
instead of importing the package that imports them (no import circle inside cli/).
"""

from __future__ import annotations

from invoke import Collection

_namespace: Collection | None = None


def set_namespace(ns: Collection) -> None:
    """Record ``ns`` (``ec2kit.cli`` does, right after building it)."""
    global _namespace
    _namespace = ns


def namespace() -> Collection:
    """ec2kit's tasks (importing ``ec2kit.cli`` first if nothing has yet)."""
    if _namespace is None:
        import importlib

        importlib.import_module("ec2kit.cli")  # builds the collection and calls set_namespace
    assert _namespace is not None
    return _namespace
