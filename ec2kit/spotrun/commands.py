"""Pure builders for the instance side of a spot run: the wrapper script and shell commands.

Nothing here talks to a host; every function returns text that a caller runs over SSH.
Remote layout of run RUN (``$HOME`` is the login user's home on the instance)::

    ~/ec2kit/RUN/            the script and its files (the script's cwd)
    ~/ec2kit/RUN/results/    $EC2KIT_RESULTS: synced home while the run goes
    ~/ec2kit/RUN/log         script output, appended per attempt with a header
    ~/ec2kit/RUN/status      JSON: state, exit_code, attempt, started_at, ended_at
    ~/ec2kit/RUN/pulled      touched by ec2kit after its final pull (lets the wrapper power off)
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..paths import data_dir

TEMPLATES = data_dir("templates") / "spot-run"
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
LOG_MARK = "--ec2kit-log--"
BEAT_MARK = "--ec2kit-beat--"


def tmux(run: str) -> str:
    """tmux on a server of the run's own (socket named by home and run).

    Sandbox instances share a user, and a server shared across homes would hand every session
    the first client's HOME; a server shared across runs would make a run that starts just as
    another ends race that server's exit ("server exited unexpectedly").
    """
    return f'tmux -L "ec2kit-$(printf %s "$HOME" | cksum | cut -d" " -f1)-{check_run_name(run)}"'


def check_run_name(name: str) -> str:
    """Return ``name`` if it is usable as a run name (tmux session, directory, tag), else raise."""
    if not RUN_NAME.match(name or ""):
        raise ConfigError(
            f"'{name}' cannot be a run name.",
            hint="Use letters, digits, '-', '_' or '.', starting with a letter or digit (at most 63 characters).",
        )
    return name


def run_dir(run: str) -> str:
    """The run's directory on the instance, as a shell word relative to $HOME."""
    return f'"$HOME/ec2kit/{check_run_name(run)}"'


def render_wrapper(
    run: str,
    script: str,
    *,
    max_hours: float = 0,
    pull_wait: int = 120,
    keep: bool = False,
    poll: float = 5,
    follower_stale: float = 30,
    resume_on_boot: bool = False,
    owned: bool = True,
    queue: bool = False,
    stop_after: int = 0,
    data_mount: str = "",
) -> str:
    """The wrapper.sh text for this run (templates/spot-run/wrapper.sh.j2 rendered).

    ``stop_after``: a resumable run whose script ended and that nothing pulled for that many seconds stops its
    instance (0: never); ``data_mount``: where the run's data volume is mounted; a resumed run mounts it again
    (./mount-data.sh) first.
    """
    from ..recipe.render import environment  # the one Jinja factory (sandboxed; `quote` makes one shell word)

    return (
        environment(TEMPLATES)
        .get_template("wrapper.sh.j2")
        .render(
            run=check_run_name(run),
            script=Path(script).name,
            max_seconds=int(round(max_hours * 3600)) if max_hours else 0,
            pull_wait=int(pull_wait),
            keep=keep,
            poll=poll,
            follower_stale=max(1, int(round(follower_stale))),
            tmux=tmux(run),
            resume_on_boot=resume_on_boot,
            owned=owned,
            queue=queue,
            stop_after=max(0, int(stop_after)) if resume_on_boot else 0,
            data_mount=data_mount,
        )
    )


def start_command(run: str, attempt: int, *, env: dict[str, str] | None = None) -> str:
    """Start the wrapper in a detached tmux session named after the run (fails if it exists).

    A client that connects while the tmux server is exiting (its last session just
    ended) gets "server exited unexpectedly" and nothing is started; that race is
    retried (a run has a server of its own, so only a restart of the same run can meet it).
    Any other failure is reported at once.
    """
    exports = "".join(f" -e {shlex.quote(f'{k}={v}')}" for k, v in (env or {}).items())
    new_session = f"{tmux(run)} new-session -d -s {run}{exports} bash wrapper.sh {int(attempt)}"
    return (
        f"cd {run_dir(run)} && {{ ok=1; for try in 1 2 3 4 5 6 7 8 9 10; do "
        f"if out=$({new_session} 2>&1); then ok=0; break; fi; "
        f'case "$out" in *"server exited unexpectedly"*) sleep 0.1;; *) break;; esac; done; '
        f'[ $ok = 0 ] || {{ echo "$out" >&2; false; }}; }}'
    )


def kill_command(run: str) -> str:
    """Stop the run's tmux session and the script's process group (best effort, never fails)."""
    d = run_dir(run)
    return (
        f"pid=$(sed -n 's/.*\"script_pid\": \\([0-9]*\\).*/\\1/p' {d}/status 2>/dev/null); "
        f'[ -n "$pid" ] && [ "$pid" != 0 ] && kill -TERM -- -"$pid" 2>/dev/null; '
        f"{tmux(run)} kill-session -t {run} 2>/dev/null; true"
    )


def poll_command(run: str, offset: int, *, follower: bool = False) -> str:
    """One exec: the status file, the heartbeat's age, the log's size, then the log bytes after ``offset``.

    ``follower``: the run's own follower polls; it touches ``.follower`` so the wrapper knows
    someone will make the final pull (without one it waits for ``inv pull`` as a detached run does).
    """
    d = run_dir(run)
    touch = "touch .follower 2>/dev/null; " if follower else ""
    return (
        f"cd {d} 2>/dev/null || exit 0; {touch}cat status 2>/dev/null; echo; "
        f"echo {BEAT_MARK} $(( $(date +%s) - $(cat .beat 2>/dev/null || echo 0) )); "
        f"size=$(stat -c %s log 2>/dev/null || echo 0); echo {LOG_MARK} $size; "
        f"[ $size -gt {int(offset)} ] && tail -c +{int(offset) + 1} log | head -c $((size - {int(offset)})); true"
    )


def attach_command(run: str) -> str:
    """The remote command that attaches a terminal to the run's tmux session."""
    return f"{tmux(run)} attach -t {check_run_name(run)}"


@dataclass
class Poll:
    """What one poll saw: the parsed status (empty if none yet), new log text, next offset."""

    status: dict
    text: str
    offset: int
    beat_age: float | None = None  # seconds since the wrapper's last heartbeat (None: not reported)


def parse_poll(stdout: str, offset: int) -> Poll:
    """Split :func:`poll_command` output into status, new log text and the next offset."""
    head, sep, rest = stdout.partition(LOG_MARK)
    status: dict = {}
    beat_age: float | None = None
    for line in head.splitlines():
        line = line.strip()
        if line.startswith(BEAT_MARK):
            try:
                beat_age = float(line[len(BEAT_MARK) :])
            except ValueError:
                pass
        elif line.startswith("{"):
            try:
                status = json.loads(line)
            except ValueError:
                pass  # a half-written file cannot happen (atomic mv), but never crash the follower
    if not sep:
        return Poll(status, "", offset, beat_age)
    size_line, _, text = rest.partition("\n")
    try:
        size = int(size_line.strip())
    except ValueError:
        size = offset
    return Poll(status, text if size > offset else "", max(size, offset), beat_age)
