"""``file = "path"``: an existing path's ``mode``/``owner``; ``state = "touch"`` first makes it (empty)
when missing; ``state = "absent"`` removes it (a directory with what is in it)."""

from __future__ import annotations

from .base import Args, Kind, PlanContext, Where, attrs_glob, check_mode_owner, check_string, mode_word, q, sh_path

STATES = ("present", "touch", "absent")

HELPERS = r"""
__file() {  # path shown mode owner state
  local f="$1" show="$2" st="${5:-present}" ch=""
  if [ "$st" = absent ]; then
    if ! $S test -e "$f" && ! $S test -L "$f"; then __ok "$show is already absent"; return 0; fi
    if [ "$__CHECK" = 1 ]; then __changed "would remove $show"; return 0; fi
    $S rm -rf -- "$f" || exit 1
    __changed "removed $show"; return 0
  fi
  if $S test -e "$f"; then
    __attrs "$f" "$3" "$4"; ch="$__A"
  elif [ "$st" = touch ]; then
    ch=" create"
  else
    echo "$show does not exist (state = \"touch\" makes it, empty)" >&2; exit 1
  fi
  if [ -z "$ch" ]; then __ok "$show already has this mode and owner"; return 0; fi
  if [ "$__CHECK" = 1 ]; then
    if [ "$ch" = " create" ]; then __changed "would create $show"; else __changed "would fix$ch of $show"; fi
    return 0
  fi
  __owner_ok "$4" || exit 1
  if [ "$ch" = " create" ]; then
    __tmp; : > "$__T/empty"
    __replace_file "$f" "$__T/empty" "$3" "$4"
    __changed "created $show"
  else
    __fix_attrs "$f" "$3" "$4"
    __changed "fixed$ch of $show"
  fi
}
__qfileattr() {  # path shown want: ok without forking, or false
  __get "$1"; [[ $__G == $3 ]] || return 1
  __QS=ok; __QW="$2 already has this mode and owner"
}
__qabsent() {  # path shown
  __get "$1"; [[ $__G == - ]] || return 1
  __QS=ok; __QW="$2 is already absent"
}
"""


def validate(args: Args, where: Where) -> None:
    """A path; ``state`` one of present/touch/absent; nothing to set on what is removed."""
    check_string(args, where, "file", "a path", '"~/.ssh/config"')
    check_mode_owner(args, where)
    state = args.get("state", "present")
    if state not in STATES and not (isinstance(state, str) and "{" in state):
        raise where.error("state", f"state = {state!r} is not one of {', '.join(STATES)}.", 'Write state = "absent".')
    if state == "absent" and (args.get("mode") or args.get("owner")):
        raise where.error("state", 'A path with state = "absent" is removed: it takes no mode or owner.', "Drop mode/owner.")
    if state == "present" and not (args.get("mode") or args.get("owner")):
        raise where.error(
            "file", "A file step needs mode, owner or a state.", 'Add mode = "0600", owner = "ubuntu" or state = "absent".'
        )


def plan(args: Args, ctx: PlanContext) -> tuple[str, str]:
    """Fix mode/owner, create empty, or remove."""
    path, state = str(args["file"]), str(args.get("state", "present"))
    body = f"__file {sh_path(path)} {q(path)} {q(mode_word(args))} {q(args.get('owner'))} {q(state)}"
    if state == "absent":
        return body, f"rm -rf {path}"
    shown = " && ".join(
        ([f"touch {path}"] if state == "touch" else [])
        + ([f"chmod {mode_word(args)} {path}"] if args.get("mode") else [])
        + ([f"chown {args['owner']} {path}"] if args.get("owner") else [])
    )
    return body, shown


def quick(args: Args, content: bytes | None) -> tuple[list[str], list[str]]:
    """ "Already absent" or "already this mode and owner" from the batch's one ``stat``."""
    path, state = str(args["file"]), str(args.get("state", "present"))
    if state == "absent":
        return [f"__qabsent {sh_path(path)} {q(path)}"], [sh_path(path)]
    attrs = attrs_glob(args)
    if not attrs:
        return [], []
    return [f"__qfileattr {sh_path(path)} {q(path)} {q(attrs + ' *')}"], [sh_path(path)]


KIND = Kind("file", keys=("mode", "owner", "state"), validate=validate, plan=plan, quick=quick, helpers=(HELPERS,), pure=True)
