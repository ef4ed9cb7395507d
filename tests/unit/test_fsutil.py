"""The atomic-write and file-lock helpers every layer shares."""

from __future__ import annotations

import multiprocessing
import os
import stat

import pytest

from ec2kit.fsutil import atomic_write, file_lock


def test_atomic_write_replaces_the_file_with_the_exact_bytes_at_the_mode(tmp_path):
    path = tmp_path / "sub" / "f.json"
    path.parent.mkdir()
    path.write_text("old")
    atomic_write(path, b"new \x00 bytes", mode=0o640)
    assert path.read_bytes() == b"new \x00 bytes"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("complete")

    class Boom(str):
        def encode(self, *a, **k):  # raises while the payload is prepared, before any rename
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write(path, Boom("x"))
    assert path.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def _hold(path, ready, release):
    with file_lock(path) as taken:
        assert taken
        ready.set()
        release.wait(10)


def test_a_non_blocking_lock_held_by_another_process_is_reported_not_taken(tmp_path):
    lock = tmp_path / "x.lock"
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    proc = multiprocessing.Process(target=_hold, args=(lock, ready, release))
    proc.start()
    try:
        assert ready.wait(10)
        with file_lock(lock, blocking=False) as taken:
            assert taken is False
    finally:
        release.set()
        proc.join(10)
    with file_lock(lock, blocking=False) as taken:
        assert taken is True
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600
