"""The batch script: many planned steps in one bash program, and the parser of its output.

One SSH exec runs the script (:data:`COMMAND`: bash sources it from stdin so secrets and file
contents never appear in a process list). For each step it evaluates the
guards, probes the state, applies the change unless in check mode, and prints
one marker line::

    @@ec2kit:<nonce>:<number>:<status>:<exit code>:<ms>:<reason>:<stdout>:<stderr>:<diff>

(each field empty, base64, or ``~`` + text with ``% : CR LF`` escaped). It stops after the
first failed step. A step's optional *quick* function decides "already ok" with bash
builtins only, from one ``stat`` of all the batch's paths taken at its start (re-probed
after any step that may have changed something); otherwise the full step runs in a subshell.
A sudo step's check sees what root sees: when the shell is not root, through one ``sudo -n``
process for the batch (``__sprobe``), whose answers are dropped with the rest of the cache.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
from dataclasses import dataclass

from .kinds import KINDS
from .plan import PlannedStep

#: The remote command: bash sources the script from stdin in one read (``bash -s`` reads a pipe
#: byte by byte: ~10 ms for a 15 kB script); ``bash -s`` only where /dev/stdin is not readable.
COMMAND = "exec bash -c 'if [ -r /dev/stdin ]; then . /dev/stdin; else exec bash -s; fi'"

PRELUDE = r"""
set -u
__T=""  # the scratch directory, made by the first step that needs it (a no-op pass needs none)
trap '[ -z "$__T" ] || rm -rf "$__T"' EXIT
__tmp() { [ -n "$__T" ] || __T=$(mktemp -d "${TMPDIR:-/tmp}/ec2kit.XXXXXX") || exit 97; }
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
__owner_ok() {  # user[:group]: fail with a message before anything changes when either is unknown here
  [ -z "$1" ] && return 0
  local u="${1%%:*}" g=""
  case "$1" in *:*) g="${1#*:}";; esac
  if [ -n "$u" ] && ! id -u -- "$u" >/dev/null 2>&1; then echo "owner $1: there is no user '$u' on this host" >&2; return 1; fi
  if [ -n "$g" ] && ! getent group -- "$g" >/dev/null 2>&1; then echo "owner $1: there is no group '$g' on this host" >&2; return 1; fi
}
__regular() {  # path shown: absent, or a regular file (through links); never a device, FIFO, socket or directory
  if $S test -e "$1" && ! $S test -f "$1"; then
    echo "$2 exists and is not a regular file (a directory, device, FIFO or socket): ec2kit will not write into it" >&2; exit 1
  fi
}
__replace_file() {  # path newfile mode owner: the new content under its final mode and owner, then one rename
  local d="$1" t="" p="" um="" m=""
  if $S test -L "$d"; then d=$($S readlink -f -- "$d") || exit 1; fi  # write where a link points, keep the link
  case "$d" in */*) p="${d%/*}"; [ -n "$p" ] || p=/;; *) p=.;; esac
  $S test -d "$p" || __mkparent "$d"
  um=$(umask)
  if [ -z "$S" ]; then  # the temp file made by the shell itself (no fork): O_EXCL, 0600 from its first byte
    umask 077; set -C
    while t="$p/.ec2kit.$RANDOM$RANDOM$RANDOM"; ! { : > "$t"; } 2>/dev/null; do
      [ -e "$t" ] || { : > "$t"; set +C; umask "$um"; exit 1; }  # no clash: the directory refuses (say why)
    done
    set +C; umask "$um"
  else
    t=$($S mktemp "$p/.ec2kit.XXXXXX") || exit 1  # 0600 from its first byte
  fi
  printf -v m %o $((0666 & ~0$um))
  if ! { $S cp -- "$2" "$t" &&
    if [ -n "$3" ]; then $S chmod "$3" "$t"; elif $S test -f "$d"; then $S chmod --reference="$d" "$t"; else $S chmod "$m" "$t"; fi &&
    if [ -n "$4" ]; then $S chown "$4" "$t"; elif [ -z "$S" ] && [ -O "$d" ] && [ -G "$d" ] && [ ! -g "$p" ]; then :;  # ours already, as $t is
    elif $S test -f "$d"; then $S chown --reference="$d" "$t"; else :; fi &&
    $S mv -f -- "$t" "$d"; }; then
    $S rm -f -- "$t"; exit 1
  fi
}
if [ -n "${EPOCHREALTIME:-}" ]; then  # milliseconds into __NOW, without forking when bash has EPOCHREALTIME
  __now() { __NOW=${EPOCHREALTIME/[.,]/}; __NOW=${__NOW%???}; }
else
  __now() { __NOW=$(( $(date +%s%N) / 1000000 )); }
fi
# -- the no-fork fast path: one `stat` for all paths of the batch, then builtins only.
# __SC caches "mode owner size type" (or "-": missing) per path. It is emptied after any step
# that ran a command or changed something, so a probe never sees state older than the step.
declare -A __SC=()
__stat() {  # paths... -> __SC entries (one fork for all of them)
  local r p
  for p in "$@"; do __SC[$p]=-; done
  while IFS= read -r -d '' r; do __SC[${r#*$'\t'}]=${r%%$'\t'*}; done < <(stat --printf '%a %U %s %F\t%n\0' -- "$@" 2>/dev/null)
}
__get() {  # path -> __G (probes the path again if an earlier step may have touched it; root's view when __P=1)
  if [ "$__P" = 1 ]; then __G=${__SP[$1]-?}; return 0; fi
  [ -n "${__SC[$1]+x}" ] || __stat "$1"
  __G=${__SC[$1]}
}
__read() {  # path -> __R: its text; false when it holds a NUL byte or cannot be read (root's view when __P=1)
  __R=""
  if [ "$__P" = 1 ]; then [ -n "${__SPC[$1]+x}" ] || return 1; __R=${__SPC[$1]}; return 0; fi
  [ -r "$1" ] || return 1
  ! IFS= read -r -d '' __R < "$1"
}
# -- root's view for the quick checks of sudo steps. As root it is the shell's own. Otherwise ONE
# `sudo -n` process (at the first sudo step's check) stats all the batch's sudo-step paths (__SPP)
# and reads the text of those whose content the checks compare (__SPR, regular files up to 256 KiB)
# into __SP (records as in __SC) and __SPC (path -> text). Its answer comes back on its stdout,
# never in an argument list, as "ok:" then <bytes>:<field> frames (one block read: bash reads a
# pipe byte by byte) and a final ".". __SPS: "" not probed, y probed, n sudo refused (a password
# is needed) or an answer cut short: the sudo steps then run their full step, which reports
# sudo's error. Emptied with __SC.
declare -A __SP=() __SPC=()
__SPS=""; __P=0; __SPP=(); __SPR=(); __SPO=""; __SPI=0; __SPV=""
IFS= read -r -d '' __SPX <<'__EC2KIT_PRIV' || :
LC_ALL=C
n=$1; shift
declare -A t=()
printf 'ok:'
while IFS= read -r -d '' r; do t[${r#*$'\t'}]=${r%%$'\t'*}; printf '%d:%s' "${#r}" "$r"; done < <(stat --printf '%a %U %s %F\t%n\0' -- "${@:1:n}" 2>/dev/null)
printf '0:'
for p in "${@:n+1}"; do
  r=${t[$p]-}; s=${r#* * }; s=${s%% *}
  case $r in *" regular file"|*" regular empty file") ;; *) continue;; esac
  [ "$s" -le 262144 ] && [ -r "$p" ] || continue
  c=""
  if IFS= read -r -d '' c < "$p"; then continue; fi
  printf '%d:%s%d:%s' "${#p}" "$p" "${#c}" "$c"
done
printf '0:.'
__EC2KIT_PRIV
__spf() {  # the next <bytes>:<field> frame of __SPO at __SPI -> __SPV (false: none, the answer is cut short)
  local h=${__SPO:__SPI:24} n o
  n=${h%%:*}
  [[ $h == *:* && -n $n && $n != *[!0-9]* ]] || return 1
  o=$(( __SPI + ${#n} + 1 ))
  __SPV=${__SPO:o:n}
  [ "${#__SPV}" -eq "$n" ] || return 1
  __SPI=$(( o + n ))
}
__sprobe() {  # root's view of __SPP/__SPR through one `sudo -n` -> __SP, __SPC, __SPS
  local LC_ALL=C p end=0  # field lengths count bytes
  __SP=(); __SPC=(); __SPS=n
  for p in "${__SPP[@]}"; do __SP[$p]=-; done
  __SPO=$(sudo -n -- bash -c "$__SPX" ec2kit "${#__SPP[@]}" "${__SPP[@]}" "${__SPR[@]}" < /dev/null 2>/dev/null)
  __SPI=3
  if [ "${__SPO:0:3}" = ok: ]; then
    while __spf; do [ -n "$__SPV" ] || { end=1; break; }; __SP[${__SPV#*$'\t'}]=${__SPV%%$'\t'*}; done
    while [ "$end" = 1 ] && __spf; do [ -n "$__SPV" ] || { end=2; break; }; p=$__SPV; __spf || break; __SPC[$p]=$__SPV; done
    if [ "$end" = 2 ] && [ "${__SPO:__SPI}" = . ]; then __SPS=y; fi
  fi
  __SPO=""
}
__qpriv() {  # a sudo step's quick check sees what root sees (false: it cannot, the full step decides)
  [ "$EUID" -eq 0 ] && return 0
  [ -n "$__SPS" ] || __sprobe
  [ "$__SPS" = y ] && __P=1
}
__qcreates() {  # path: 0 exists, 1 does not, 2 cannot say (a link `test -e` follows, as root, is left to the full step)
  if [ "$__P" != 1 ]; then test -e "$1"; return; fi
  __get "$1"
  case $__G in -) return 1;; '?'|*" symbolic link") return 2;; esac
}
__field() { printf ':'; if [ -s "$1" ]; then base64 -w0 < "$1"; fi; }
__tf() {  # text field into __F: ~ then the text with % : CR LF escaped (no fork)
  __F="$1"
  [ -n "$__F" ] || return 0
  if [[ $__F == *[%:$'\n\r']* ]]; then
    __F=${__F//%/%25}; __F=${__F//:/%3A}; __F=${__F//$'\n'/%0A}; __F=${__F//$'\r'/%0D}
  fi
  __F="~$__F"
}
__step() {  # number function retries delay quick pure
  local n="$1" f="$2" tries=$(( $3 + 1 )) delay="$4" q="$5" a=1 rc=0 t0 st="" why=""
  __now; t0=$__NOW
  __QS=""; __QW=""; __P=0
  if [ -n "$q" ] && "$q" 2>/dev/null; then
    __now; __tf "$__QW"
    printf '%s:%s:%s:0:%s:%s:::\n' "$__M" "$n" "$__QS" $(( __NOW - t0 )) "$__F"
    return 0
  fi
  __P=0  # the full step looks for itself
  __tmp
  while :; do
    : > "$__T/out"; : > "$__T/err"; : > "$__T/diff"; : > "$__T/why"; : > "$__T/st"
    ( "$f" ) > "$__T/out" 2> "$__T/err" < /dev/null
    rc=$?
    if [ "$rc" -eq 0 ] || [ "$a" -ge "$tries" ]; then break; fi
    a=$((a + 1)); sleep "$delay"
  done
  read -r st < "$__T/st" || :
  IFS= read -r -d '' why < "$__T/why" || :
  if [ "$rc" -ne 0 ]; then st=failed; elif [ -z "$st" ]; then st=changed; fi
  if [ "$6" != 1 ] || { [ "$st" != ok ] && [ "$st" != skipped ]; }; then __SC=(); __SP=(); __SPC=(); __SPS=""; fi
  __now
  __tf "$why"
  printf '%s:%s:%s:%s:%s:%s' "$__M" "$n" "$st" "$rc" $(( __NOW - t0 )) "$__F"
  __field "$__T/out"; __field "$__T/err"; __field "$__T/diff"; printf '\n'
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


#: Exit code of a batch whose host is not the instance it was taken for (nothing ran).
NOT_CONFIRMED = 79


@dataclass(frozen=True)
class Identity:
    """What a host taken from the host cache must be: this instance id, with this Name tag (None: by id)."""

    instance_id: str
    name: str | None = None


def confirm_script(identity: Identity) -> str:
    """Shell that stops the batch (exit :data:`NOT_CONFIRMED`, one ``$__M:who:BASE64`` line of what the
    instance metadata said) unless this host is ``identity``: its instance id, and its Name tag read from
    ``tags/instance/Name`` (IMDSv2 token; the sandbox's endpoint is ``$EC2KIT_IMDS``). One curl for the
    token, one for both values; no curl, no metadata or no tags in it: not confirmed."""
    urls = " ".join(
        f'"$__I/latest/meta-data/{key}"' for key in ("instance-id", "tags/instance/Name")[: 2 if identity.name else 1]
    )
    expected = "\n".join(f"{value}\n200" for value in (identity.instance_id, identity.name) if value is not None)
    return "\n".join(
        [
            '__I="${EC2KIT_IMDS:-http://169.254.169.254}"',
            "__tok=$(curl -fsS -m 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' \"$__I/latest/api/token\" 2>/dev/null)",
            f"__who=$(curl -sS -m 2 -H \"X-aws-ec2-metadata-token: $__tok\" -w '\\n%{{http_code}}\\n' {urls} 2>/dev/null)",
            f'if [ "$__who" != {shlex.quote(expected)} ]; then',
            f'  printf \'%s:who:%s\\n\' "$__M" "$(printf %s "$__who" | head -c 2000 | base64 | tr -d \'\\n\')"; exit {NOT_CONFIRMED}',
            "fi",
        ]
    )


def seen_identity(stdout: str, nonce: str) -> str | None:
    """What the metadata said when :func:`confirm_script` stopped the batch (None when it did not)."""
    prefix = f"@@ec2kit:{nonce}:who:"
    for line in stdout.split("\n"):
        if line.startswith(prefix):
            try:
                return base64.b64decode(line[len(prefix) :]).decode("utf-8", errors="replace")
            except ValueError:
                return ""
    return None


def build_script(
    steps: list[PlannedStep], *, check: bool = False, nonce: str, diff: bool = True, confirm: Identity | None = None
) -> str:
    """The whole batch: prelude, the helpers its kinds call, one function per step, then the calls (stopping at a
    failure). ``diff``: file and line steps produce the unified diff of what they change (always in check mode).
    ``confirm``: first make sure the host is that instance (:func:`confirm_script`), else run nothing."""
    parts = [f"__M='@@ec2kit:{nonce}'", f"__CHECK={1 if check else 0}", f"__DIFF={1 if check or diff else 0}"]
    if confirm is not None:
        parts.append(confirm_script(confirm))
    parts.append(PRELUDE)
    # only the helpers of the kinds in this batch (in table order, each once)
    parts += dict.fromkeys(h for k in KINDS.values() if any(s.kind == k.name for s in steps) for h in k.helpers)
    for s in steps:
        parts.append(f"__b{s.number}() {{\n{s.body}\n}}")
        if s.quick:
            parts.append(f"__q{s.number}() {{\n{s.quick}\n}}")
    parts.append("__main() {\n  :")
    paths = list(dict.fromkeys(p for s in steps for p in s.probe))
    if paths:
        parts.append("  __stat " + " ".join(paths))
    privileged = list(dict.fromkeys(p for s in steps if s.sudo for p in s.probe))
    if privileged:  # root's view of these, for sudo steps' checks when the shell is not root
        reads = dict.fromkeys(p for s in steps if s.sudo for p in s.reads)
        parts.append(f"  __SPP=({' '.join(privileged)}); __SPR=({' '.join(reads)})")
    for s in steps:
        quick = f"__q{s.number}" if s.quick else "''"
        parts.append(f"  __step {s.number} __b{s.number} {s.retries} {s.delay:g} {quick} {1 if s.pure else 0} || exit 1")
    parts.append("}\n__main")
    return "\n".join(parts) + "\n"


_ESCAPED = re.compile("%(25|3A|0A|0D)")


def _d(text: str) -> str:
    """A marker field: empty, ``~`` + text with ``% : CR LF`` percent-escaped, or base64."""
    if not text:
        return ""
    if text[0] == "~":
        return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text[1:])
    return base64.b64decode(text).decode("utf-8", errors="replace")


def parse_output(stdout: str, nonce: str) -> tuple[list[Marker], str]:
    """The markers in a batch's stdout, and whatever else it printed (for diagnostics)."""
    prefix = f"@@ec2kit:{nonce}:"
    markers, other = [], []
    lines = stdout.split("\n")
    if lines and not lines[-1]:
        lines.pop()
    for line in lines:
        if line.startswith(prefix):
            f = line[len(prefix) :].split(":")
            if len(f) == 8:
                markers.append(Marker(int(f[0]), f[1], int(f[2]), int(f[3]), _d(f[4]), _d(f[5]), _d(f[6]), _d(f[7])))
                continue
        other.append(line)
    return markers, "\n".join(other)
