"""``script = '''...'''``: a multi-line bash script, run like ``run``."""

from __future__ import annotations

from .base import Kind
from .run import plan, validate

KIND = Kind("script", validate=validate, plan=plan, shows_command=True)
