"""ec2kit.checkpoint.save: a checkpoint is written whole or not at all (host-free)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from ec2kit.checkpoint import TEMP_SUFFIX, save


def test_save_replaces_the_file_with_what_write_fn_wrote_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "ckpt" / "model.bin"
    assert save(target, lambda tmp: Path(tmp).write_bytes(b"v1")) == target
    save(target, lambda tmp: Path(tmp).write_bytes(b"v2"))
    assert target.read_bytes() == b"v2"
    assert os.listdir(target.parent) == ["model.bin"]


def test_a_failing_write_fn_keeps_the_previous_checkpoint_and_removes_its_temporary_file(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"good")

    def half_then_crash(tmp: str) -> None:
        Path(tmp).write_bytes(b"ha")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        save(target, half_then_crash)
    assert target.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["model.bin"]


def test_a_reader_never_sees_half_a_checkpoint_while_it_is_saved_again_and_again(tmp_path):
    target = tmp_path / "model.bin"
    sizes = [1 << 20, 3 << 20]  # each version has its own size and one byte value throughout
    save(target, lambda tmp: Path(tmp).write_bytes(b"\0" * sizes[0]))
    done = threading.Event()
    bad: list[str] = []

    def read_all_the_time() -> None:
        while not done.is_set():
            data = target.read_bytes()
            if len(data) not in sizes or len(set(data)) != 1 or data[0] != sizes.index(len(data)):
                bad.append(f"{len(data)} bytes")

    reader = threading.Thread(target=read_all_the_time)
    reader.start()
    try:
        for i in range(40):
            version = i % 2

            def write(tmp: str, version: int = version) -> None:
                with open(tmp, "wb") as f:  # in pieces, as torch.save writes
                    for _ in range(sizes[version] >> 16):
                        f.write(bytes([version]) * 65536)

            save(target, write)
    finally:
        done.set()
        reader.join()
    assert not bad, bad[:5]


def test_the_temporary_name_is_one_pulls_and_pushes_never_carry(tmp_path):
    from ec2kit.spotrun.follower import LOCAL_ONLY

    seen: list[str] = []
    save(tmp_path / "m.pt", lambda tmp: seen.append(Path(tmp).name) or Path(tmp).write_bytes(b"x"))
    assert seen[0].startswith(".m.pt.") and seen[0].endswith(TEMP_SUFFIX)
    assert "*" + TEMP_SUFFIX in LOCAL_ONLY


def test_a_spot_runs_bundle_ships_the_helper_and_it_imports_with_the_standard_library_alone(tmp_path):
    import io

    from ec2kit.spotrun.options import SpotRunOptions, bundle

    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n")
    with tarfile.open(fileobj=io.BytesIO(bundle(SpotRunOptions(script=str(script)), "#!/bin/bash\n")), mode="r:gz") as tar:
        tar.extractall(tmp_path / "instance", filter="data")
    code = "from ec2kit_checkpoint import save; save('out.txt', lambda t: open(t, 'w').write('ok'))"
    done = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, '.'); {code}"], cwd=tmp_path / "instance")
    assert done.returncode == 0 and (tmp_path / "instance" / "out.txt").read_text() == "ok"
