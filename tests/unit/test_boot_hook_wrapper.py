"""The wrapper a resumable run gets: its boot hook is a cloud-init per-boot script, never a crontab line."""

from __future__ import annotations

import subprocess

from ec2kit.spotrun.commands import render_wrapper


def test_a_resumable_wrapper_with_a_data_volume_is_valid_bash_and_installs_a_per_boot_script():
    text = render_wrapper("r1", "train.sh", resume_on_boot=True, data_mount="/mnt/data")
    assert subprocess.run(["bash", "-n"], input=text, text=True, capture_output=True).returncode == 0
    assert 'BOOT_HOOK="$CLOUD_DIR/scripts/per-boot/ec2kit-$RUN.sh"' in text
    assert "DATA_MOUNT=/mnt/data" in text and "bash mount-data.sh" in text
    assert "crontab" not in text and "@reboot" not in text


def test_a_run_without_a_data_volume_mounts_nothing_when_it_resumes():
    text = render_wrapper("r1", "train.sh", resume_on_boot=True)
    assert "DATA_MOUNT=''" in text
