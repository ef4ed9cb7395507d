"""The local side of a running spot run: print its log, pull its results, see it end.

One :class:`~ec2kit.ssh.Transport` carries the polls (status file + new log
bytes in one exec); results come home with rsync over the same (shared) connection, pinned host key.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, RemoteError
from .commands import parse_poll, poll_command, tmux

if TYPE_CHECKING:
    from ..ssh import Transport

FINAL_STATES = ("succeeded", "failed", "timeout", "interrupted")
RSYNC_OK = (0, 24)  # 24: files vanished while rsync ran (a checkpoint renamed mid-transfer)
PARTIAL_DIR = ".rsync-partial"
# Pushes: a transfer is written into PARTIAL_DIR (--temp-dir: even a SIGKILLed rsync leaves nothing
# half-written beside the results) and all of a push's updates are renamed into place at its end
# (--delay-updates). Devices, FIFOs and sockets never travel.
SAFE_RSYNC = ("--partial-dir=" + PARTIAL_DIR, "--temp-dir=" + PARTIAL_DIR, "--delay-updates", "--no-devices", "--no-specials")
# Pulls go further: a file the script rewrites in place while rsync reads it arrives torn. A pull brings
# what changed into PARTIAL_DIR (the results themselves are its --compare-dest: unchanged files stay put,
# changed ones use them as the delta basis), then lists the instance's results again and moves into place,
# one rename each, only the files whose size and mtime did not move meanwhile; the others wait for the next
# pull. A pull cut short (a dropped link, a killed rsync) leaves the results as they were. So what is at
# home is always a complete version, at every moment.
PULL_RSYNC = ("--compare-dest=..", "--partial-dir=" + PARTIAL_DIR, "--temp-dir=" + PARTIAL_DIR, "--no-devices",
              "--no-specials", "--out-format=%n")  # fmt: skip
# Never travel either way: rsync's and the pull's own, the wrapper's disk probe, checkpoints being written
# (ec2kit.checkpoint.save and its shell idiom name them *.ec2kit-tmp until they are renamed whole).
LOCAL_ONLY = (PARTIAL_DIR, ".ec2kit-disk-probe", "*.ec2kit-tmp")
LISTING_MARK = "--ec2kit-listing--"
LINKED_MARK = "--ec2kit-results-is-a-link--"
# Logs are appended to all the time, so a pull nearly always meets one mid-append; a log caught so is a fine
# copy (its start), unlike a checkpoint. Such a file comes home as it is while it only grows (grew_from), and,
# when it is new, if its name says it is a log; anything else waits for a moment when it is not being written.
LOG_SUFFIXES = (".log", ".csv", ".jsonl", ".tsv", ".txt", ".out", ".err")
SPECIAL_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def special_kind(path: Path) -> str | None:
    """'a FIFO', 'a socket', … when ``path`` is a special file (not followed if a link), else None."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    return SPECIAL_KINDS.get(stat.S_IFMT(mode))


def check_no_special_files(root: Path, what: str = "results directory") -> None:
    """Raise a ConfigError naming the first device, FIFO or socket in ``root`` (ec2kit never writes over or through one)."""
    kind = special_kind(root)
    found: tuple[Path, str] | None = (root, kind) if kind else None
    stack = [root] if found is None and root.is_dir() and not root.is_symlink() else []
    while stack and found is None:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            kind = special_kind(Path(entry.path))
            if kind:
                found = (Path(entry.path), kind)
                break
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
    if found:
        raise ConfigError(
            f"{found[0]} in the {what} is {found[1]}; ec2kit never writes over or through a special file.",
            hint=f"Move it out of {root} (or give another --results), then pull again.",
        )


#: The local copy of a run's log stops growing here (a script printing gigabytes must not fill the laptop);
#: the instance keeps the whole log.
LOG_COPY_LIMIT = 1 << 30


def append_regular(path: Path, text: str, *, limit: int | None = None) -> None:
    """Append to ``path``, refusing to follow a link or write into a device, FIFO or socket.

    With ``limit`` (bytes) the file never grows past it: the text that fits is written, then one line
    saying the copy stopped, and nothing more.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as err:
        raise ConfigError(
            f"Cannot write the run's log copy {path}: {err.strerror} (it is {special_kind(path) or 'not a regular file'}?).",
            hint=f"Move {path} away; ec2kit never writes through links or into special files.",
        ) from None
    with os.fdopen(fd, "a") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ConfigError(
                f"The run's log copy {path} is {special_kind(path) or 'not a regular file'}; ec2kit never writes into special files.",
                hint=f"Move {path} away.",
            )
        if limit is None:
            f.write(text)
            return
        size = os.fstat(f.fileno()).st_size
        data = text.encode()
        if size + len(data) <= limit:
            f.write(text)
        elif size < limit:
            f.flush()
            os.write(f.fileno(), data[: limit - size])
            os.write(
                f.fileno(),
                f"\n[ec2kit: this copy of the log stops at {limit} bytes; the instance keeps the whole log]\n".encode(),
            )


def grew_from(home: Path, staged: Path, chunk: int = 1 << 20) -> bool:
    """Whether ``staged`` is ``home`` with bytes appended (an append-only file caught mid-append is a fine copy;
    a checkpoint rewritten in place never starts with the whole previous one)."""
    try:
        if not home.is_file() or home.is_symlink() or staged.stat().st_size <= home.stat().st_size:
            return False
        with open(home, "rb") as old, open(staged, "rb") as new:
            while block := old.read(chunk):
                if new.read(len(block)) != block:
                    return False
        return True
    except OSError:
        return False


def _empty_stage(stage: Path) -> None:
    """Remove what a pull left in its staging directory, but rsync's partial files (a cut transfer resumes)."""
    if not stage.is_dir() or stage.is_symlink():
        return
    for entry in os.scandir(stage):
        if entry.name == PARTIAL_DIR:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)


def last_lines(text: str, count: int = 3) -> str:
    """The last ``count`` non-empty lines of a tool's stderr, shown as one (never hundreds of rsync lines)."""
    from ..untrusted import visible

    lines = [l for l in text.strip().splitlines() if l.strip()]
    more = f"(… {len(lines) - count} lines before) " if len(lines) > count else ""
    return more + visible(" / ".join(lines[-count:]), one_line=True)


@dataclass
class Follower:
    """Follows run ``run`` on ``host``; results go to ``results`` (None: the monitor gets them).

    ``out`` receives each log line; ``local_log`` keeps a copy of the log on this machine.
    """

    host: Transport
    run: str
    results: Path | None
    local_log: Path | None = None
    out: Callable[[str], None] = print
    pull_interval: float = 3.0
    poll_interval: float = 1.0
    attached: bool = False  # the run's own follower: each poll tells the wrapper it is still followed
    beat_stale: float = 0.0  # > 0: a 'running' status whose heartbeat is older than this is checked (dead wrapper?)
    poll_timeout: float = 30.0
    contact: Callable[[], None] | None = None  # called after each poll that got an answer
    pull_failed: Callable[[], None] | None = None  # called after each failed pull (last_error says why)
    offset: int = 0
    status: dict = field(default_factory=dict)
    beat_age: float | None = None
    last_pull: float = 0.0
    pulls: int = 0
    last_error: str = ""
    busy: Callable[[], None] | None = None  # told once when a pull has to wait for another pull of the run
    torn: list[str] = field(default_factory=list)  # files the last pull put back (changed while they travelled)
    _partial: str = ""

    def poll(self) -> dict:
        """One round trip: refresh :attr:`status`, hand new complete log lines to ``out``."""
        command = poll_command(self.run, self.offset, follower=self.attached)
        result = self.host.run(command, check=False, timeout=self.poll_timeout)
        if not result.ok:
            raise RemoteError(f"Could not read the status of run {self.run} on {self.host.name}: {result.stderr.strip()}")
        seen = parse_poll(result.stdout, self.offset)
        self.offset = seen.offset
        self.beat_age = seen.beat_age
        if seen.status:
            self.status = seen.status
        if seen.text:
            self._emit(seen.text)
        if self.contact is not None:
            self.contact()
        return self.status

    def wrapper_dead(self) -> bool:
        """The status says running but the wrapper's heartbeat is stale and its tmux session is gone."""
        running = self.status.get("state") == "running" and not self.status.get("ended_at")
        if not (self.beat_stale > 0 and running and self.beat_age is not None and self.beat_age > self.beat_stale):
            return False
        check = self.host.run(f"{tmux(self.run)} has-session -t {self.run} 2>/dev/null", check=False, timeout=self.poll_timeout)
        return not check.ok

    def _emit(self, text: str) -> None:
        if self.local_log is not None:
            append_regular(self.local_log, text, limit=LOG_COPY_LIMIT)
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self.out(line)

    def flush(self) -> None:
        """Hand a trailing line without newline to ``out``."""
        if self._partial:
            self.out(self._partial)
            self._partial = ""

    def remote_results(self) -> str:
        """The results directory on the instance, absolute (rsync starts in the login dir)."""
        return self.host.expand(f"~/ec2kit/{self.run}/results") + "/"

    def not_through_a_link(self) -> tuple[str, ...]:
        """rsync's remote command, refusing (before any file travels, in the same round trip) when the run's
        results directory on the instance is a symbolic link: the trailing slash would make rsync follow it and
        pull, or push into, whatever it points at."""
        results = shlex.quote(self.remote_results().rstrip("/"))
        return (f"--rsync-path=if [ -L {results} ]; then echo {LINKED_MARK} >&2; exit 3; fi; rsync",)

    def linked_error(self, stderr: str) -> str | None:
        """The message for an rsync that :meth:`not_through_a_link` stopped, else None."""
        if LINKED_MARK not in stderr:
            return None
        return (
            f"The results directory of run {self.run} on {self.host.name} (~/ec2kit/{self.run}/results) is a "
            "symbolic link; ec2kit does not follow it, so nothing was pulled from it. Write results into that "
            "directory itself (copy or move them there; a link inside it arrives as a link)."
        )

    def pull_argv(self) -> list[str]:
        """The rsync that brings what changed on the instance into :attr:`results`' PARTIAL_DIR (see PULL_RSYNC)."""
        assert self.results is not None
        stage = self.results / PARTIAL_DIR
        (stage / PARTIAL_DIR).mkdir(parents=True, exist_ok=True)  # rsync's --temp-dir must exist
        return self.host.rsync_argv(
            self.remote_results(),
            str(stage) + "/",
            connect_timeout=5,
            options=(*PULL_RSYNC, *self.not_through_a_link()),
            excludes=LOCAL_ONLY,
        )

    def lock_path(self) -> Path:
        """The flock that serialises pulls into :attr:`results` (the follower, `inv pull`, `inv stop-run`: each
        would clean PARTIAL_DIR under the other's transfer): a hidden file beside the results directory."""
        assert self.results is not None
        return self.results.parent / f".{self.results.name}.ec2kit-pull.lock"

    def pull(self, *, wait: bool = True) -> bool:
        """rsync the instance's results into :attr:`results`; False when rsync failed.

        A file is replaced only by a complete new version; a device, FIFO or socket in the
        results directory stops the pull before rsync runs (False; :attr:`last_error` names it).
        One pull of a run at a time (:meth:`lock_path`): when another runs, ``wait`` waits for it
        (telling :attr:`busy` first), else this pull is skipped (True: the other one brings the results).
        """
        from ..fsutil import file_lock

        if self.results is None:
            return True
        self.results.mkdir(parents=True, exist_ok=True)
        with file_lock(self.lock_path(), blocking=False) as free:
            if free:
                return self._pull()
        if not wait:
            return True
        if self.busy is not None:
            self.busy()
        with file_lock(self.lock_path()):
            return self._pull()

    def _pull(self) -> bool:
        assert self.results is not None
        try:
            check_no_special_files(self.results)
        except ConfigError as err:  # a located error for the caller to say; the run itself goes on
            self.last_error = f"{err} {err.hint or ''}".strip()
            return False
        stage = self.results / PARTIAL_DIR
        _empty_stage(stage)
        done = subprocess.run(self.pull_argv(), stdin=subprocess.DEVNULL, capture_output=True, timeout=600)
        self.last_pull = time.monotonic()
        brought = [n for n in done.stdout.decode(errors="surrogateescape").splitlines() if n and not n.endswith("/")]
        try:
            self.torn = self._settle(brought)
        except RemoteError as err:  # the instance cannot say what it holds now: none of what came is trusted
            self.last_error = str(err)
            return False
        finally:
            _empty_stage(stage)
        if done.returncode in RSYNC_OK:
            self.pulls += 1
            if done.returncode == 0:  # everything arrived: what a cut pull left in PARTIAL_DIR is of no more use
                shutil.rmtree(stage, ignore_errors=True)
            return True
        stderr = done.stderr.decode(errors="replace")
        self.last_error = self.linked_error(stderr) or last_lines(stderr)
        # What the failed pull left in PARTIAL_DIR must not fill the disk for the next one (a full disk stays full).
        shutil.rmtree(self.results / PARTIAL_DIR, ignore_errors=True)
        if self.pull_failed is not None:
            self.pull_failed()
        return False

    def _settle(self, brought: list[str]) -> list[str]:
        """Move into place each file this pull ``brought`` whose instance copy kept its size and mtime since
        (or that only grew from the version at home: a log, metrics.csv, appended to as it travelled); return
        the others (rewritten during their transfer: maybe torn; the next pull tries again)."""
        assert self.results is not None
        if not brought:
            return []
        stage, now, torn = self.results / PARTIAL_DIR, self.remote_listing(), []
        for name in brought:
            staged = stage / name
            try:
                st = os.lstat(staged)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and name in now:
                size, mtime = now[name]
                whole_seconds = st.st_mtime_ns % 1_000_000_000 == 0  # an rsync that keeps no sub-second times
                same = int(mtime) == int(st.st_mtime) if whole_seconds else abs(mtime - st.st_mtime_ns / 1e9) < 2e-6
                home = self.results / name
                appended = grew_from(home, staged) or (name.endswith(LOG_SUFFIXES) and not home.exists())
                if (size != st.st_size or not same) and not appended:
                    torn.append(name)
                    continue
            # else: gone from the instance since (what came is what there was), or a link: as it came
            target = self.results / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir() and not target.is_symlink():
                continue  # a directory where a file came: leave both; rsync names it next time
            os.replace(staged, target)
        return torn

    def remote_listing(self) -> dict[str, tuple[int, float]]:
        """Size and mtime of every file in the instance's results now (one exec)."""
        root = self.remote_results()
        got = self.host.run(
            f"cd {shlex.quote(root)} 2>/dev/null && echo {LISTING_MARK} && find . -type f -printf '%s %T@ %P\\0'",
            check=False,
            timeout=self.poll_timeout,
        )
        if LISTING_MARK not in got.stdout:
            raise RemoteError(f"Could not list the results of run {self.run} on {self.host.name}: {last_lines(got.stderr)}")
        listing: dict[str, tuple[int, float]] = {}
        for entry in got.stdout.split(LISTING_MARK, 1)[1].lstrip("\n").split("\0"):
            size, _, rest = entry.partition(" ")
            mtime, _, name = rest.partition(" ")
            try:
                listing[name] = (int(size), float(mtime))
            except ValueError:
                continue
        return listing

    def push(self) -> None:
        """rsync :attr:`results` up to the instance (a replacement resumes from them): complete files only."""
        if self.results is None or not self.results.exists():
            return
        check_no_special_files(self.results)
        results = f'"$HOME/ec2kit/{self.run}/results"'
        self.host.run(f"[ -L {results} ] || mkdir -p {results}/{PARTIAL_DIR}")  # the rsync below names a link
        argv = self.host.rsync_argv(
            str(self.results) + "/",
            self.remote_results(),
            remote_src=False,
            options=(*SAFE_RSYNC, *self.not_through_a_link()),
            excludes=LOCAL_ONLY,
        )
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
        if done.returncode not in RSYNC_OK:
            stderr = done.stderr.decode(errors="replace")
            raise RemoteError(
                self.linked_error(stderr)
                or f"Could not push the results of run {self.run} back to {self.host.name}: {last_lines(stderr)}",
                hint=f"The local copy in {self.results} is intact.",
            )

    def mark_pulled(self) -> None:
        """Tell the wrapper the final pull is done, so it may power off now."""
        self.host.run(f'touch "$HOME/ec2kit/{self.run}/pulled"', check=False, timeout=15)

    def follow(self, *, should_stop: Callable[[], bool] = lambda: False) -> dict:
        """Poll and pull until the script ends (or ``should_stop()``); return the last status.

        Raises :class:`RemoteError` when the instance stops answering (the caller decides
        whether it was lost); the results pulled so far stay in :attr:`results`.
        """
        next_poll = 0.0
        while not should_stop():
            now = time.monotonic()
            if now >= next_poll:
                self.poll()
                next_poll = now + self.poll_interval
                if self.status.get("state") in FINAL_STATES and self.status.get("ended_at"):
                    break
                if self.wrapper_dead():
                    self.status = {**self.status, "state": "lost", "why": "wrapper", "beat_age": self.beat_age}
                    break
            if self.results is not None and now - self.last_pull >= self.pull_interval:
                self.pull(wait=False)  # skipped while `inv pull` is at it: look again one interval later
                self.last_pull = max(self.last_pull, now)
            time.sleep(max(0.0, min(next_poll, self.last_pull + self.pull_interval) - time.monotonic()) or 0.05)
        self.flush()
        return self.status

    def finish(self) -> bool:
        """Final pull, then the ``pulled`` marker; False when the final pull failed."""
        ok = self.pull()
        if ok:
            self.mark_pulled()
        return ok
