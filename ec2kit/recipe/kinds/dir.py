"""``dir = "path"``: a directory exists (with ``mode``/``owner`` when given)."""

from __future__ import annotations

from .base import Args, Kind, PlanContext, Where, attrs_glob, check_mode_owner, check_string, mode_word, q, sh_path

HELPERS = r"""
__dir() {  # path shown mode owner
  local d="$1" show="$2" ch=""
  if $S test -e "$d" && ! $S test -d "$d"; then echo "$show exists and is not a directory" >&2; exit 1; fi
  if $S test -d "$d"; then __attrs "$d" "$3" "$4"; ch="$__A"; else ch=" create"; fi
  if [ -z "$ch" ]; then __ok "$show already exists"; return 0; fi
  if [ "$__CHECK" = 1 ]; then
    if [ "$ch" = " create" ]; then __changed "would create $show"; else __changed "would fix$ch of $show"; fi
    return 0
  fi
  __owner_ok "$4" || exit 1
  local top="$d"
  while [ "${top%/*}" != "$top" ] && [ -n "${top%/*}" ] && ! $S test -e "${top%/*}"; do top="${top%/*}"; done
  $S mkdir -p "$d" || exit 1
  if ! { { [ -z "$3" ] || $S chmod "$3" "$d"; } && { [ -z "$4" ] || $S chown "$4" "$d"; }; }; then
    [ "$ch" = " create" ] && $S rm -rf -- "$top"  # undo what this step made
    exit 1
  fi
  if [ "$ch" = " create" ]; then __changed "created $show"; else __changed "fixed$ch of $show"; fi
}
__qdir() {  # path shown want (a glob for its __SC record): ok without forking, or false
  __get "$1"; [[ $__G == $3 ]] || return 1
  __QS=ok; __QW="$2 already exists"
}
"""


def validate(args: Args, where: Where) -> None:
    """The path is a string; mode/owner as :func:`check_mode_owner` wants them."""
    check_string(args, where, "dir", "a path", '"~/data"')
    check_mode_owner(args, where)


def plan(args: Args, ctx: PlanContext) -> tuple[str, str]:
    """mkdir -p, then fix mode/owner when they differ."""
    path = str(args["dir"])
    shown = f"mkdir -p {path}" + (f" && chmod {mode_word(args)}" if args.get("mode") else "")
    shown += f" && chown {args['owner']}" if args.get("owner") else ""
    return f"__dir {sh_path(path)} {q(path)} {q(mode_word(args))} {q(args.get('owner'))}", shown


def quick(args: Args, content: bytes | None) -> tuple[list[str], list[str]]:
    """ "It is a directory with this mode and owner" from the batch's one ``stat``."""
    attrs = attrs_glob(args)
    if not attrs:
        return [], []
    path = str(args["dir"])
    return [f"__qdir {sh_path(path)} {q(path)} {q(attrs + ' * directory')}"], [sh_path(path)]


KIND = Kind("dir", keys=("mode", "owner"), validate=validate, plan=plan, quick=quick, helpers=(HELPERS,), pure=True)
