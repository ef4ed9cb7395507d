"""What a spot run is asked to do: :class:`SpotRunOptions`, checked before anything is paid for.

``validate`` (pure: the options and local files), ``preflight`` (resolves named resources in the
cloud, checks the results directory), ``bundle`` (the upload: script, files, wrapper).
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..defaults import DEFAULT_MOUNT, RUN_TYPE
from ..errors import ConfigError
from ..tags import RUN_TAG as RUN_TAG  # re-exported for the modules that read it here
from .commands import check_run_name

if TYPE_CHECKING:
    from ..context import Context

DATA_MOUNT = DEFAULT_MOUNT


@dataclass
class SpotRunOptions:
    """What to run and how; mirrors ``inv spot-run``'s flags."""

    script: str
    files: str | None = None  # a directory (its contents) or one file, uploaded next to the script
    name: str | None = None  # default: script stem + timestamp
    image: str | None = None  # default: 'base' if it exists, else the latest Ubuntu LTS
    type: str = RUN_TYPE
    types: list[str] = field(default_factory=list)  # more types for the fleet to choose from (every attempt)
    on_demand_fallback: bool = False  # no spot capacity in any pool: an on-demand instance instead
    disk: int | None = None
    snapshot: str | None = None  # data volume from this snapshot at /mnt/data
    results: str | None = None  # default runs/RUN (relative to cwd)
    max_price: str | float | None = None
    retries: int = 0
    monitor: str | None = None
    detach: bool = False
    keep: bool = False
    max_hours: float | None = None
    subnet: str | None = None  # id or Name tag (default: the default VPC)
    security_groups: list[str] = field(default_factory=list)  # extra groups beside ec2kit-ssh
    instance_profile: str | None = None  # IAM instance profile name
    open_ssh: bool = False  # SSH from anywhere, not just this machine's address
    on: str | None = None  # `inv exec`: the instance (name or id) the run uses; ec2kit never stops or terminates it
    queue: bool = False  # `inv exec --queue`: start once the instance's earlier exec runs ended
    workdir: str | None = None  # a local tree synced to ~/work/<its name> before the script starts (EC2KIT_WORKDIR)
    vars: dict = field(default_factory=dict)  # variables for recipes/spot-run.toml
    env: dict = field(default_factory=dict)  # extra environment variables for the script (a sweep's settings)
    recipe: str | None = "spot-run"  # pre-script steps (None: none)
    pull_interval: float = 3.0  # seconds between result pulls
    poll_interval: float = 1.0  # seconds between status/log polls
    notice_poll: float = 5.0  # the instance's interruption-notice polling (s)
    pull_wait: int = 120  # how long the instance waits for the final pull
    detach_pull_wait: int = -1  # detached: how long a finished instance waits for `inv pull` (< 0: until it comes)
    out: Callable[[str], None] | None = None  # log lines (default: print)
    say: Callable[[str], None] | None = None  # phase messages (default: ui.info)


def resumable(opts: SpotRunOptions) -> bool:
    """Whether the run launches so that an interruption stops its instance (disk and results kept) and the
    next boot resumes the script: detached runs that wait for `inv pull` (nothing follows them to bring
    their results home before a terminated instance takes them away). Never an `inv exec` run (its instance is not ours)."""
    return opts.detach and not opts.monitor and opts.detach_pull_wait < 0 and not opts.on


def default_name(script: str) -> str:
    """``train.sh`` → ``train-20261126-061530``."""
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(script).stem) or "run"
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def validate(options: SpotRunOptions) -> tuple[str, Path]:
    """Check the options before any resource is created; returns (run name, results dir)."""
    script = Path(options.script)
    if script.is_dir():
        raise ConfigError(
            f"--script '{options.script}' is a directory, not a script.",
            hint="Give the script to run (e.g. --script train.sh); upload a directory beside it with --files DIR.",
        )
    if not script.is_file():
        raise ConfigError(
            f"The script '{options.script}' does not exist.", hint="Give the path of the script to run, e.g. --script train.sh."
        )
    if not os.access(script, os.R_OK):
        raise ConfigError(f"The script '{options.script}' cannot be read (permissions).", hint=f"Fix with: chmod u+r {script}")
    if options.files and not Path(options.files).exists():
        raise ConfigError(
            f"--files '{options.files}' does not exist.",
            hint="Give a directory (its files are uploaded next to the script) or a file.",
        )
    if options.retries < 0:
        raise ConfigError("--retries cannot be negative.")
    if options.max_hours is not None and options.max_hours <= 0:
        raise ConfigError(f"--max-hours {options.max_hours} must be more than 0.")
    name = check_run_name(options.name or default_name(options.script))
    results = Path(options.results or Path("runs") / name).expanduser().resolve()
    return name, results


def preflight(ctx: Context, options: SpotRunOptions, results: Path) -> None:
    """Resolve every named resource and check the results directory before anything is paid for."""
    if options.recipe:
        from ..recipe import load_recipe
        from ..recipe.loader import check_overrides

        check_overrides(load_recipe(options.recipe), options.vars)
    if options.image:
        ctx.cloud.choose_image(options.image, options.type)
    if not options.on:  # an exec run launches nothing
        ctx.cloud.network(subnet=options.subnet, security_groups=options.security_groups)
    if options.instance_profile:
        ctx.cloud.instance_profile(options.instance_profile)
    if options.snapshot:  # a pending one would refuse CreateVolume after the instance is paid for
        from ..ui import info

        say = options.say or info
        ctx.cloud.wait_snapshot(options.snapshot, progress=lambda line: say(f"waiting for the data snapshot: {line}"))
    if options.monitor:
        monitor = ctx.cloud.instance(options.monitor)
        if monitor.state != "running":
            raise ConfigError(
                f"--monitor {options.monitor} is {monitor.state}, not running.",
                hint=f"Start it first: inv start {options.monitor}",
            )
    from .follower import check_no_special_files

    if results.exists() or results.is_symlink():
        check_no_special_files(results)  # a device, FIFO or socket there would be written over, or through
    probe = results
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            f"The results directory {results} cannot be created ({probe} is not a writable directory).",
            hint="Give a writable place with --results DIR.",
        )


def bundle(options: SpotRunOptions, wrapper: str) -> bytes:
    """A gzipped tar of the script, its files and the wrapper (one upload over stdin)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        if options.files:
            files = Path(options.files)
            if files.is_dir():
                for child in sorted(files.iterdir()):
                    tar.add(child, arcname=child.name)
            else:
                tar.add(files, arcname=files.name)
        script = Path(options.script)
        info = tar.gettarinfo(str(script), arcname=script.name)
        info.mode |= 0o755
        with open(script, "rb") as f:
            tar.addfile(info, f)
        from .. import checkpoint  # `from ec2kit_checkpoint import save` on the instance (stdlib only)

        tar.add(checkpoint.__file__, arcname="ec2kit_checkpoint.py")
        data = wrapper.encode()
        info = tarfile.TarInfo("wrapper.sh")
        info.size, info.mode, info.mtime = len(data), 0o755, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
