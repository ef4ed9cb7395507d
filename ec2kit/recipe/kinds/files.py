"""What ``template`` and ``copy`` share: a file's new content → ``__put_file``, and its quick check."""

from __future__ import annotations

from .base import Args, PlanContext, Where, ansi_c, attrs_glob, b64, check_mode_owner, check_string, mode_word, q, sh_path

#: Content up to this size is compared with bash builtins (larger: base64 + cmp in the full step).
QUICK_MAX_BYTES = 64 * 1024

PUT_FILE = r"""
__put_file() {  # dest shown mode owner; new content in $__T/new
  local d="$1" show="$2" ch=""
  __regular "$d" "$show"
  if ! { $S test -f "$d" && $S cmp -s "$__T/new" "$d"; }; then
    ch=" content"
    if [ "$__DIFF" = 1 ]; then  # the diff only when someone will look at it (--check, --diff, the API)
      if $S test -f "$d"; then $S cat "$d" > "$__T/old" || exit 1; else : > "$__T/old"; fi
      diff -u --label "$show (current)" --label "$show (new)" "$__T/old" "$__T/new" > "$__T/diff"
    fi
  fi
  if $S test -e "$d" || [ -z "$ch" ]; then __attrs "$d" "$3" "$4"; ch="$ch$__A"; fi
  if [ -z "$ch" ]; then __ok "$show already has this content"; return 0; fi
  if [ "$__CHECK" = 1 ]; then __changed "would update$ch of $show"; return 0; fi
  __owner_ok "$4" || exit 1
  case "$ch" in
    " content"*) __replace_file "$d" "$__T/new" "$3" "$4";;
    *) __fix_attrs "$d" "$3" "$4";;
  esac
  __changed "updated$ch of $show"
}
__qfile() {  # path shown want size content
  __get "$1"; [[ $__G == $3 ]] || return 1
  if [ "$4" != 0 ]; then
    __read "$1" || return 1  # a NUL byte: not this text
    [[ $__R == "$5" ]] || return 1
  fi
  __QS=ok; __QW="$2 already has this content"
}
"""


def validate_dest(args: Args, where: Where) -> None:
    """``dest`` a path string; ``mode`` and ``owner`` as :func:`check_mode_owner` wants them."""
    check_string(args, where, "dest", "a path", '"~/app.conf"')
    check_mode_owner(args, where)


def file_body(data: bytes, args: Args, ctx: PlanContext | None = None) -> str:
    """Bash writing ``data`` to ``dest`` (with mode/owner) unless it already has it."""
    if ctx is not None and ctx.on_content is not None:
        ctx.on_content(data)
    dest, show = sh_path(str(args["dest"])), str(args["dest"])
    # text goes through printf (a builtin); binary or large content through base64 (one fork)
    if b"\0" in data or len(data) > QUICK_MAX_BYTES:
        write = f'base64 -d <<< {q(b64(data))} > "$__T/new" || exit 1\n'
    else:
        write = f'printf %s {ansi_c(data)} > "$__T/new" || exit 1\n'
    return write + (f"__put_file {dest} {q(show)} {q(mode_word(args))} {q(args.get('owner'))}")


def quick_file(args: Args, content: bytes | None) -> tuple[list[str], list[str]]:
    """ "``dest`` has this content, mode and owner" with builtins only, for text up to QUICK_MAX_BYTES."""
    attrs = attrs_glob(args)
    # bash words cannot hold NUL bytes: such content is compared by the full step
    if not attrs or content is None or b"\0" in content or len(content) > QUICK_MAX_BYTES:
        return [], []
    dest, kind_word = str(args["dest"]), "regular file" if content else "regular empty file"
    want = f"{attrs} {len(content)} {kind_word}"
    return [f"__qfile {sh_path(dest)} {q(dest)} {q(want)} {len(content)} {ansi_c(content)}"], [sh_path(dest)]
