"""A boot on the sandbox runs what a real boot runs (issue 22, findings 3 and 12).

A stopped instance loses its mounts; on start the sandbox re-attaches its volumes, then runs the
executable files of the instance's ``/var/lib/cloud/scripts/per-boot/`` in order, as cloud-init's
scripts-per-boot module does on an Ubuntu AMI. A resumable spot run installs its boot hook there, and
the hook mounts the run's data volume before the script resumes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import wait_for as wait_until
from test_spotrun_sandbox import options, run_resources, script

from ec2kit.context import Context
from ec2kit.runs import Runs
from ec2kit.spotrun import list_runs, pull, refresh, spot_run

PER_BOOT = "/var/lib/cloud/scripts/per-boot"


@pytest.fixture
def ctx(sandbox):
    with Context(sandbox.settings, quiet=True) as c:
        yield c


def test_a_restarted_instance_runs_its_executable_per_boot_scripts_in_order_and_nothing_else(ctx, sandbox):
    from ec2kit import actions

    inst = ctx.cloud.launch("boot-hooks", type="t3.micro")
    try:
        actions.wait_ssh(ctx, inst)
        host = ctx.connect(inst)
        host.run(
            f"sudo mkdir -p {PER_BOOT} && cd {PER_BOOT} && "
            "printf '#!/bin/sh\\necho b >>%s/booted\\n' \"$HOME\" | sudo tee 20-b >/dev/null && "
            'printf \'#!/bin/sh\\necho a "$(id -u)" >>%s/booted\\n\' "$HOME" | sudo tee 10-a >/dev/null && '
            "printf '#!/bin/sh\\necho off >>%s/booted\\n' \"$HOME\" | sudo tee 30-not-executable >/dev/null && "
            "sudo chmod 755 10-a 20-b && mkdir -p ~/.ec2kit/boot && printf 'echo old >>~/booted\\n' >~/.ec2kit/boot/x.sh"
        )
        assert host.run("cat ~/booted 2>/dev/null || echo none").stdout == "none\n"  # not run at first boot's end
        ctx.forget_host(inst.id)
        ctx.cloud.stop(inst.id)
        actions.start(ctx, inst.id)
        host = ctx.connect(inst)
        got = wait_until(lambda: host.run("cat ~/booted 2>/dev/null", check=False).stdout.count("\n") >= 2 and host, 30, "boot")
        assert got.run("cat ~/booted").stdout == "a 0\nb\n"  # as root, in name order, only executable files
        # The files are the instance's own: another instance's per-boot directory is empty.
        other = ctx.cloud.launch("boot-hooks-2", type="t3.micro")
        try:
            actions.wait_ssh(ctx, other)
            assert ctx.connect(other).run(f"ls {PER_BOOT} 2>/dev/null | wc -l").stdout.strip() == "0"
        finally:
            ctx.forget_host(other.id)
            ctx.cloud.terminate(other.id)
    finally:
        ctx.forget_host(inst.id)
        ctx.cloud.terminate(inst.id)


def test_a_resumable_run_stopped_by_an_interruption_sees_its_data_volume_when_it_resumes(ctx, sandbox, tmp_path):
    from ec2kit import actions
    from ec2kit import sandbox as sb

    base = ctx.cloud.launch("boot-snap-src", type="t3.micro")
    try:
        actions.wait_ssh(ctx, base)
        vol = actions.make_volume(ctx, base.id, size=1, name="boot-data-src")
        ctx.connect(base).run("echo dataset-v1 > /mnt/data/dataset.txt && sync")
        snap = actions.snapshot(ctx, vol.id, name="boot-data", wait=True)
    finally:
        ctx.forget_host(base.id)
        ctx.cloud.terminate(base.id)
    s = script(
        tmp_path,
        """\
        seen=$(cat /mnt/data/dataset.txt 2>/dev/null || echo missing)
        mountpoint -q /mnt/data && m=mounted || m=not-mounted
        echo "$EC2KIT_ATTEMPT $seen $m" >>"$EC2KIT_RESULTS/seen.txt"
        [ "$EC2KIT_ATTEMPT" = 1 ] && sleep 300
        exit 0
        """,
    )
    rec = spot_run(ctx, options(tmp_path, s, "boot-data-run", detach=True, snapshot=snap.id))
    iid = rec.instance_id
    host = ctx.connect(iid)
    wait_until(
        lambda: "1 " in host.run("cat ~/ec2kit/boot-data-run/results/seen.txt 2>/dev/null", check=False).stdout, 60, "attempt 1"
    )
    hook = host.run(f"ls -l {PER_BOOT}/ec2kit-boot-data-run.sh && cat {PER_BOOT}/ec2kit-boot-data-run.sh").stdout
    assert hook.startswith("-rwx") and "/ec2kit/boot-data-run/boot.sh" in hook, hook
    assert "wrapper.sh resume" in host.run("cat ~/ec2kit/boot-data-run/boot.sh").stdout
    assert "@reboot" not in host.run("crontab -l 2>/dev/null", check=False).stdout
    sb.interrupt(sandbox.settings, iid, delay=2)
    ctx.forget_host(iid)
    wait_until(lambda: ctx.cloud.instance(iid).state == "stopped", 60, "the instance to stop")
    sb.capacity_returns(sandbox.settings, iid)
    wait_until(
        lambda: refresh(ctx, list_runs(ctx)).get("boot-data-run") == "waiting for `inv pull boot-data-run`",
        120,
        "the resumed end",
    )
    home = next(h["home"] for h in sb.status(sandbox.settings)["hosts"] if h["instance_id"] == iid)
    boot_log = (Path(home).parent / "boot.log").read_text()  # what the sandbox's "cloud-init" ran on start
    assert "--- ec2kit-boot-data-run.sh: exit 0" in boot_log, boot_log
    where = pull(ctx, "boot-data-run")
    assert (where / "seen.txt").read_text() == "1 dataset-v1 mounted\n2 dataset-v1 mounted\n"
    assert Runs(sandbox.settings.runs_db).find("boot-data-run").attempt == 2
    assert run_resources(sandbox, "boot-data-run") == {}


def test_a_resumed_run_whose_data_volume_is_gone_fails_instead_of_running_on_an_empty_directory(ctx, sandbox, tmp_path):
    from ec2kit import actions
    from ec2kit import sandbox as sb

    base = ctx.cloud.launch("boot-snap-src2", type="t3.micro")
    try:
        actions.wait_ssh(ctx, base)
        vol = actions.make_volume(ctx, base.id, size=1, name="boot-data-src2")
        ctx.connect(base).run("echo dataset-v2 > /mnt/data/dataset.txt && sync")
        snap = actions.snapshot(ctx, vol.id, name="boot-data2", wait=True)
    finally:
        ctx.forget_host(base.id)
        ctx.cloud.terminate(base.id)
    s = script(
        tmp_path,
        """\
        echo "$EC2KIT_ATTEMPT $(cat /mnt/data/dataset.txt 2>/dev/null || echo missing)" >>"$EC2KIT_RESULTS/seen.txt"
        [ "$EC2KIT_ATTEMPT" = 1 ] && sleep 300
        exit 0
        """,
    )
    rec = spot_run(ctx, options(tmp_path, s, "boot-gone-run", detach=True, snapshot=snap.id))
    iid = rec.instance_id
    host = ctx.connect(iid)
    wait_until(
        lambda: "1 " in host.run("cat ~/ec2kit/boot-gone-run/results/seen.txt 2>/dev/null", check=False).stdout, 60, "attempt 1"
    )
    sb.interrupt(sandbox.settings, iid, delay=2)
    ctx.forget_host(iid)
    wait_until(lambda: ctx.cloud.instance(iid).state == "stopped", 60, "the instance to stop")
    data = Runs(sandbox.settings.runs_db).find("boot-gone-run").volumes[-1]
    ctx.cloud.detach_volume(ctx.cloud.volume(data))  # someone took the volume away while it was stopped
    sb.capacity_returns(sandbox.settings, iid)
    host = ctx.connect(iid)
    status = wait_until(
        lambda: "no-data-volume" in (out := host.run("cat ~/ec2kit/boot-gone-run/status", check=False).stdout) and out,
        90,
        "the resumed wrapper to give up",
    )
    assert '"state": "failed"' in status and '"attempt": 2' in status, status
    log = host.run("cat ~/ec2kit/boot-gone-run/log").stdout
    assert "its data volume is not mounted at /mnt/data" in log and "the script is not resumed" in log, log
    assert host.run("cat ~/ec2kit/boot-gone-run/results/seen.txt").stdout == "1 dataset-v2\n"  # attempt 2 never ran
    refresh(ctx, list_runs(ctx))
    got = Runs(sandbox.settings.runs_db).find("boot-gone-run")
    assert got.state == "failed" and "could not be mounted again at /mnt/data" in got.options.get("note", ""), got
    where = pull(ctx, "boot-gone-run")
    assert (where / "seen.txt").read_text() == "1 dataset-v2\n"
    assert run_resources(sandbox, "boot-gone-run") == {}


def test_with_boot_scripts_off_a_restart_runs_nothing_of_the_per_boot_directory(ctx, sandbox):
    from ec2kit import actions
    from ec2kit import sandbox as sb

    inst = ctx.cloud.launch("boot-off", type="t3.micro")
    try:
        actions.wait_ssh(ctx, inst)
        ctx.connect(inst).run(
            f'sudo mkdir -p {PER_BOOT} && printf \'#!/bin/sh\\necho ran "$(cat %s/boot-n)" >>%s/booted\\n\' "$HOME" "$HOME" '
            f"| sudo tee {PER_BOOT}/10-a >/dev/null && sudo chmod 755 {PER_BOOT}/10-a && echo 1 >~/boot-n"
        )
        sb.run_boot_scripts(sandbox.settings, False)
        assert sb.account(sandbox.settings)["boot_scripts"] is False
        ctx.forget_host(inst.id)
        ctx.cloud.stop(inst.id)
        actions.start(ctx, inst.id)
        ctx.connect(inst).run("echo 2 >~/boot-n")
        sb.run_boot_scripts(sandbox.settings, True)
        ctx.forget_host(inst.id)
        ctx.cloud.stop(inst.id)
        actions.start(ctx, inst.id)
        host = ctx.connect(inst)
        # Only the second boot ran it (the first would have written "ran 1").
        booted = wait_until(
            lambda: (out := host.run("cat ~/booted 2>/dev/null", check=False).stdout).endswith("ran 2\n") and out, 30, "boot 2"
        )
        assert booted == "ran 2\n"
    finally:
        sb.run_boot_scripts(sandbox.settings, True)
        ctx.forget_host(inst.id)
        ctx.cloud.terminate(inst.id)
