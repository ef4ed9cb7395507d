"""Leave the process without tearing the interpreter down (~20-40 ms of a 0.2 s command).

Once an ec2kit task has finished, nothing is left to do but exit: Python would still free every
module and object one by one. :func:`arm` records the code ``sys.exit`` is called with (by
``inv``/``ec2kit`` after the tasks ran) and, at exit, flushes the output, runs what must run
(logging's flush, ``weakref.finalize`` callbacks such as temporary directories' clean-up) and
ends with that code via ``os._exit``. When ``sys.exit`` was not called (an uncaught exception),
or outside the ``inv``/``ec2kit`` programs (tests calling tasks in-process), the normal exit runs.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any

PROGRAMS = ("inv", "invoke", "ec2kit")
_state: dict[str, Any] = {"armed": False, "called": False, "code": None}


def is_cli() -> bool:
    """Whether this process is one of the command-line programs (not tests calling tasks in-process)."""
    program = sys.argv[0] if sys.argv else ""
    return os.path.basename(program) in PROGRAMS or program.endswith(os.path.join("invoke", "__main__.py"))


def arm() -> None:
    """Exit fast once ``sys.exit`` is called (idempotent; only in the command-line programs)."""
    if _state["armed"] or not is_cli():
        return
    _state["armed"] = True
    real_exit = sys.exit

    def recording_exit(code: Any = None) -> None:
        _state["called"], _state["code"] = True, code
        real_exit(code)

    sys.exit = recording_exit  # type: ignore[assignment]
    atexit.register(_exit_now)


def _status(code: Any) -> int:
    """The process status ``sys.exit(code)`` gives (None → 0, an int as is, anything else → 1 after printing it)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _exit_now() -> None:
    if not _state["called"]:
        return  # an uncaught exception (or no sys.exit): the normal exit prints and sets the status
    status = _status(_state["code"])
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    if "weakref" in sys.modules:
        sys.modules["weakref"].finalize._exitfunc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe (`| head`): nothing more to say
            pass
    os._exit(status)
