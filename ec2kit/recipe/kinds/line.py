"""``line = "text"`` + ``path`` (+ ``regexp``): a file has this line (replacing the one matching regexp)."""

from __future__ import annotations

from .base import Args, Kind, PlanContext, Where, ansi_c, check_string, q, sh_path

HELPERS = r"""
__line() {  # path shown line regexp
  local f="$1" show="$2" how did
  __regular "$f" "$show"
  if [ -z "$S$4" ] && [[ $3 != *$'\n'* ]] && { [ ! -e "$f" ] || __read "$f"; }; then
    __line_text "$@"; return  # no sudo, no regexp, text: decided and written with builtins
  fi
  if $S test -f "$f"; then $S cat "$f" > "$__T/old" || exit 1; else : > "$__T/old"; fi
  if [ -z "$4" ] && grep -qxF -- "$3" "$__T/old"; then __ok "$show already has this line"; return 0; fi
  # with a regexp: done only when the line is there and no *other* line matches (a later one would win)
  if [ -n "$4" ] && RE="$4" LINE="$3" awk '$0 == ENVIRON["LINE"] { has = 1; next } $0 ~ ENVIRON["RE"] { other = 1 }
      END { exit !(has && !other) }' "$__T/old"; then __ok "$show already has this line"; return 0; fi
  if [ -n "$4" ] && RE="$4" awk '$0 ~ ENVIRON["RE"] { found = 1 } END { exit !found }' "$__T/old"; then
    RE="$4" LINE="$3" awk '$0 ~ ENVIRON["RE"] { print ENVIRON["LINE"]; next } { print }' "$__T/old" > "$__T/new" || exit 1
    how="replace the line matching $4 in"; did="replaced the line matching $4 in"
  else
    cp "$__T/old" "$__T/new"
    if [ -s "$__T/new" ] && [ -n "$(tail -c1 "$__T/new")" ]; then echo >> "$__T/new"; fi
    printf '%s\n' "$3" >> "$__T/new"
    how="add a line to"; did="added a line to"
  fi
  if [ "$__DIFF" = 1 ]; then diff -u --label "$show (current)" --label "$show (new)" "$__T/old" "$__T/new" > "$__T/diff"; fi
  if [ "$__CHECK" = 1 ]; then __changed "would $how $show"; return 0; fi
  __replace_file "$f" "$__T/new" "" ""
  __changed "$did $show"
}
__line_text() {  # path shown line: as __line without a regexp, the file's text (if any) in __R
  local f="$1" show="$2" cur=""
  [ -e "$f" ] && cur=$__R
  if [[ $'\n'"$cur"$'\n' == *$'\n'"$3"$'\n'* ]]; then __ok "$show already has this line"; return 0; fi
  { printf %s "$cur"; if [ -n "$cur" ] && [ "${cur: -1}" != $'\n' ]; then printf '\n'; fi; printf '%s\n' "$3"; } > "$__T/new" || exit 1
  if [ "$__DIFF" = 1 ]; then
    printf %s "$cur" > "$__T/old"
    diff -u --label "$show (current)" --label "$show (new)" "$__T/old" "$__T/new" > "$__T/diff"
  fi
  if [ "$__CHECK" = 1 ]; then __changed "would add a line to $show"; return 0; fi
  __replace_file "$f" "$__T/new" "" ""
  __changed "added a line to $show"
}
__qline() {  # path shown line [regexp]
  local r="" sz="" t="" l
  __get "$1"; r=$__G
  [ "$r" != - ] || return 1
  t=${r#* * }; sz=${t%% *}; t=${t#* }
  [ "$t" = "regular file" ] && [ "$sz" -le 262144 ] || return 1
  __read "$1" || return 1
  [[ $'\n'"$__R"$'\n' == *$'\n'"$3"$'\n'* ]] || return 1
  if [ -n "${4-}" ]; then  # another line matching the regexp: the full step rewrites it
    while IFS= read -r l; do
      [[ $l != "$3" && $l =~ $4 ]] && return 1
    done <<< "$__R"
  fi
  __QS=ok; __QW="$2 already has this line"
}
"""


def validate(args: Args, where: Where) -> None:
    """The line, ``path`` and ``regexp`` are strings (``line = 5`` would write "5")."""
    check_string(args, where, "line", "the text of the line", '"export EDITOR=vim"')
    check_string(args, where, "path", "a path", '"~/.bashrc"')
    check_string(args, where, "regexp", "an extended regular expression", '"^export EDITOR="')


def plan(args: Args, ctx: PlanContext) -> tuple[str, str]:
    """Add the line (or replace the one matching ``regexp``) unless it is there."""
    path, line = str(args["path"]), str(args["line"])
    body = f"__line {sh_path(path)} {q(path)} {q(line)} {q(args.get('regexp', ''))}"
    return body, f"ensure line in {path}: {line}"


def quick(args: Args, content: bytes | None) -> tuple[list[str], list[str]]:
    """ "The file has this exact line" with builtins only (one line of text).

    With ``regexp`` too, only when no *other* line matches it (``max_conn=5`` appended after
    ``max_conn=100`` would win); otherwise the full step rewrites every matching line.
    """
    line = str(args["line"]).encode()
    if not line or b"\n" in line or b"\0" in line:
        return [], []
    path = str(args["path"])
    regexp = f" {q(args['regexp'])}" if args.get("regexp") else ""
    return [f"__qline {sh_path(path)} {q(path)} {ansi_c(line)}{regexp}"], [sh_path(path)]


KIND = Kind(
    "line",
    keys=("path", "regexp"),
    required=("path",),
    validate=validate,
    plan=plan,
    quick=quick,
    quick_reads=True,
    helpers=(HELPERS,),
    pure=True,
)
