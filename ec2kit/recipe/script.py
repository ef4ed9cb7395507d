"""The batch script: many planned steps in one bash program, and the parser of its output.

One SSH exec runs the script (``bash -s``, script on stdin so secrets and file
contents never appear in a process list). For each step it evaluates the
guards, probes the state, applies the change unless in check mode, and prints
one marker line::

    @@ec2kit:<nonce>:<number>:<status>:<exit code>:<ms>:<b64 reason>:<b64 stdout>:<b64 stderr>:<b64 diff>

It stops after the first failed step.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from .steps import PlannedStep

PRELUDE = r"""
set -u
__T=$(mktemp -d "${TMPDIR:-/tmp}/ec2kit.XXXXXX") || exit 97
trap 'rm -rf "$__T"' EXIT
__sudo() { if [ "$EUID" -eq 0 ]; then "$@"; else sudo -n -- "$@"; fi; }
__set() { printf %s "$1" > "$__T/st"; printf %s "$2" > "$__T/why"; }
__ok() { __set ok "$1"; }
__changed() { __set changed "$1"; }
__skip() { __set skipped "$1"; }
__attrs() {  # path mode owner -> sets __A to the words for what differs (no subshell: forks are slow)
  local d="$1" mode="$2" owner="$3" cur=""
  __A=""
  [ -z "$mode$owner" ] && return 0
  cur=$($S stat -c '%a %U' "$d" 2>/dev/null)
  while [ "${#mode}" -gt 1 ] && [ "${mode#0}" != "$mode" ]; do mode="${mode#0}"; done
  if [ -n "$mode" ] && [ "${cur%% *}" != "$mode" ]; then __A="$__A mode"; fi
  if [ -n "$owner" ] && [ "${cur#* }" != "${owner%%:*}" ]; then __A="$__A owner"; fi
}
__mkparent() { case "$1" in */*) if [ -n "${1%/*}" ]; then $S mkdir -p "${1%/*}" || exit 1; fi;; esac; }
__fix_attrs() {
  if [ -n "$2" ]; then $S chmod "$2" "$1" || exit 1; fi
  if [ -n "$3" ]; then $S chown "$3" "$1" || exit 1; fi
}
__put_file() {  # dest shown mode owner; new content in $__T/new
  local d="$1" show="$2" ch=""
  if ! { $S test -f "$d" && $S cmp -s "$__T/new" "$d"; }; then
    ch=" content"
    if $S test -f "$d"; then $S cat "$d" > "$__T/old" || exit 1; else : > "$__T/old"; fi
    diff -u --label "$show (current)" --label "$show (new)" "$__T/old" "$__T/new" > "$__T/diff"
  fi
  if $S test -e "$d" || [ -z "$ch" ]; then __attrs "$d" "$3" "$4"; ch="$ch$__A"; fi
  if [ -z "$ch" ]; then __ok "$show already has this content"; return 0; fi
  if [ "$__CHECK" = 1 ]; then __changed "would update$ch of $show"; return 0; fi
  case "$ch" in " content"*)
    __mkparent "$d"
    if $S test -f "$d"; then $S tee "$d" < "$__T/new" > /dev/null || exit 1; else $S cp "$__T/new" "$d" || exit 1; fi
  esac
  __fix_attrs "$d" "$3" "$4"
  __changed "updated$ch of $show"
}
__put_dir() {  # dest shown mode owner; gzip tar in $__T/new.tar
  local d="$1" show="$2" f n=0 diffs=""
  mkdir -p "$__T/nd" && tar -xzf "$__T/new.tar" -C "$__T/nd" || exit 1
  while IFS= read -r f; do
    n=$((n+1))
    $S cmp -s "$__T/nd/$f" "$d/$f" || { diffs="$diffs${f#./}"$'\n'; }
  done < <(cd "$__T/nd" && find . -type f | sort)
  printf %s "$diffs" > "$__T/diff"
  local ch="" what
  [ -n "$diffs" ] && ch=" $(printf %s "$diffs" | grep -c .) file(s)"
  if $S test -d "$d"; then __attrs "$d" "$3" "$4"; ch="$ch$__A"; what="update$ch in $show"; else ch=" new"; what="create $show with $n file(s)"; fi
  if [ -z "$ch" ]; then __ok "$show already has these $n files"; return 0; fi
  if [ "$__CHECK" = 1 ]; then __changed "would $what"; return 0; fi
  $S mkdir -p "$d" && $S cp -R "$__T/nd/." "$d/" || exit 1
  __fix_attrs "$d" "$3" "$4"
  if [ -n "$4" ]; then $S chown -R "$4" "$d" || exit 1; fi
  __changed "$(printf %s "$what" | sed 's/^update/updated/;s/^create/created/')"
}
__line() {  # path shown line regexp
  local f="$1" show="$2" how did
  if $S test -f "$f"; then $S cat "$f" > "$__T/old" || exit 1; else : > "$__T/old"; fi
  if grep -qxF -- "$3" "$__T/old"; then __ok "$show already has this line"; return 0; fi
  if [ -n "$4" ] && grep -qE -- "$4" "$__T/old"; then
    RE="$4" LINE="$3" awk '$0 ~ ENVIRON["RE"] { print ENVIRON["LINE"]; next } { print }' "$__T/old" > "$__T/new" || exit 1
    how="replace the line matching $4 in"; did="replaced the line matching $4 in"
  else
    cp "$__T/old" "$__T/new"
    if [ -s "$__T/new" ] && [ -n "$(tail -c1 "$__T/new")" ]; then echo >> "$__T/new"; fi
    printf '%s\n' "$3" >> "$__T/new"
    how="add a line to"; did="added a line to"
  fi
  diff -u --label "$show (current)" --label "$show (new)" "$__T/old" "$__T/new" > "$__T/diff"
  if [ "$__CHECK" = 1 ]; then __changed "would $how $show"; return 0; fi
  __mkparent "$f"
  $S tee "$f" < "$__T/new" > /dev/null || exit 1
  __changed "$did $show"
}
__dir() {  # path shown mode owner
  local d="$1" show="$2" ch=""
  if $S test -e "$d" && ! $S test -d "$d"; then echo "$show exists and is not a directory" >&2; exit 1; fi
  if $S test -d "$d"; then __attrs "$d" "$3" "$4"; ch="$__A"; else ch=" create"; fi
  if [ -z "$ch" ]; then __ok "$show already exists"; return 0; fi
  if [ "$__CHECK" = 1 ]; then
    if [ "$ch" = " create" ]; then __changed "would create $show"; else __changed "would fix$ch of $show"; fi
    return 0
  fi
  $S mkdir -p "$d" || exit 1
  __fix_attrs "$d" "$3" "$4"
  if [ "$ch" = " create" ]; then __changed "created $show"; else __changed "fixed$ch of $show"; fi
}
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
__now() {  # milliseconds into __NOW, without forking when bash has EPOCHREALTIME
  if [ -n "${EPOCHREALTIME:-}" ]; then __NOW="${EPOCHREALTIME/[.,]/}"; __NOW="${__NOW:0:-3}"
  else __NOW=$(( $(date +%s%N) / 1000000 )); fi
}
__field() { printf ':'; if [ -s "$1" ]; then base64 -w0 < "$1"; fi; }
__step() {  # number function retries delay
  local n="$1" f="$2" tries=$(( $3 + 1 )) delay="$4" a=1 rc t0 st=""
  __now; t0=$__NOW
  while :; do
    : > "$__T/out"; : > "$__T/err"; : > "$__T/diff"; : > "$__T/why"; : > "$__T/st"
    ( "$f" ) > "$__T/out" 2> "$__T/err" < /dev/null
    rc=$?
    if [ "$rc" -eq 0 ] || [ "$a" -ge "$tries" ]; then break; fi
    a=$((a + 1)); sleep "$delay"
  done
  read -r st < "$__T/st" || :
  if [ "$rc" -ne 0 ]; then st=failed; elif [ -z "$st" ]; then st=changed; fi
  __now
  printf '%s:%s:%s:%s:%s' "$__M" "$n" "$st" "$rc" $(( __NOW - t0 ))
  __field "$__T/why"; __field "$__T/out"; __field "$__T/err"; __field "$__T/diff"; printf '\n'
  [ "$st" != failed ]
}
"""


@dataclass
class Marker:
    """One step's outcome as printed by the batch script."""

    number: int
    status: str
    exit_code: int
    ms: int
    reason: str
    stdout: str
    stderr: str
    diff: str


def new_nonce() -> str:
    """A random token so a step's own output can never look like a marker."""
    return os.urandom(8).hex()


def build_script(steps: list[PlannedStep], *, check: bool = False, nonce: str) -> str:
    """The whole batch: prelude, one function per step, then the calls (stopping at a failure)."""
    parts = [f"__M='@@ec2kit:{nonce}'", f"__CHECK={1 if check else 0}", PRELUDE]
    for s in steps:
        parts.append(f"__b{s.number}() {{\n{s.body}\n}}")
    parts.append("__main() {\n  :")
    for s in steps:
        parts.append(f"  __step {s.number} __b{s.number} {s.retries} {s.delay:g} || exit 1")
    parts.append("}\n__main")
    return "\n".join(parts) + "\n"


def _d(text: str) -> str:
    return base64.b64decode(text).decode("utf-8", errors="replace") if text else ""


def parse_output(stdout: str, nonce: str) -> tuple[list[Marker], str]:
    """The markers in a batch's stdout, and whatever else it printed (for diagnostics)."""
    prefix = f"@@ec2kit:{nonce}:"
    markers, other = [], []
    for line in stdout.splitlines():
        if line.startswith(prefix):
            f = line[len(prefix):].split(":")
            if len(f) == 8:
                markers.append(Marker(int(f[0]), f[1], int(f[2]), int(f[3]), _d(f[4]), _d(f[5]), _d(f[6]), _d(f[7])))
                continue
        other.append(line)
    return markers, "\n".join(other)
