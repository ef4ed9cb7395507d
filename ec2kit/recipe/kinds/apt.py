"""``apt = ["tmux", "rsync"]``: Debian packages are installed (apt-get only for the missing ones)."""

from __future__ import annotations

from typing import Any

from ...errors import RecipeError
from .base import Args, Kind, PlanContext, Where, is_templated, q

HELPERS = r"""
__apt() {  # packages...
  local p missing=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q ' installed$' || missing="$missing $p"
  done
  if [ -z "$missing" ]; then __ok "already installed: $*"; return 0; fi
  if [ "$__CHECK" = 1 ]; then __changed "would install:$missing"; return 0; fi
  # a fresh instance's cloud-init / unattended-upgrades may hold the dpkg lock: wait for it
  local updated=0 lock="-o DPkg::Lock::Timeout=300"
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n1)" ]; then
    __sudo apt-get $lock update -q || exit $?
    updated=1
  fi
  if ! __sudo env DEBIAN_FRONTEND=noninteractive apt-get $lock install -y -q $missing; then
    [ "$updated" = 1 ] && exit 1
    __sudo apt-get $lock update -q || exit $?   # stale package lists: refresh once and retry
    __sudo env DEBIAN_FRONTEND=noninteractive apt-get $lock install -y -q $missing || exit $?
  fi
  __changed "installed:$missing"
}
"""


def apt_packages(value: Any) -> list[str]:
    """``"tmux rsync"`` or ``["tmux", "rsync"]`` → ``["tmux", "rsync"]``."""
    items = value.split() if isinstance(value, str) else [str(v) for v in value]
    for p in items:
        if not p or p.startswith("-") or not all(c.isalnum() or c in "+-.:_=~" for c in p):
            raise RecipeError(f"'{p}' is not a Debian package name.")
    return items


def validate(args: Args, where: Where) -> None:
    """A package name, a list of them (strings), or a template giving one."""
    value = args["apt"]
    if not (isinstance(value, str) or isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise where.error("apt", "'apt' must be a package name or a list of them.", 'Write apt = ["tmux", "rsync"].')
    if isinstance(value, str) and is_templated(value):
        return
    try:
        apt_packages(value if isinstance(value, str) else [v for v in value if not is_templated(v)])
    except RecipeError as err:
        raise where.error("apt", err.message) from None


def plan(args: Args, ctx: PlanContext) -> tuple[str, str]:
    """``__apt`` checks dpkg's status and installs what is missing."""
    try:
        pkgs = apt_packages(args["apt"])
    except RecipeError as err:
        raise RecipeError(f"{ctx.where}: {err.message}") from None
    return "__apt " + " ".join(q(p) for p in pkgs), "apt-get install -y " + " ".join(pkgs)


KIND = Kind("apt", validate=validate, plan=plan, helpers=(HELPERS,), pure=True, shows_command=True)
