"""The sandbox daemon's process: ``python -m ec2kit.sandbox.daemon --dir D``.

One long-lived background process running moto's EC2 server (taught some of AWS's behaviours
by ``aws_behaviours.install()``), the control and metadata server, and the reconciler that
keeps one sshd per running instance.
Writes ``D/state.json`` once both servers listen; logs to ``D/daemon.log``.
SIGTERM or ``POST /shutdown`` stops every host, frees loop devices and exits.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path

from ...fsutil import atomic_write
from ..client.info import SANDBOX_CREDENTIALS as CREDENTIALS
from ..client.info import SANDBOX_REGION as REGION
from ..client.info import volumes_supported
from ..moto.images import write_amis
from .sshd import free_port

MISSING_MOTO = (
    "The sandbox needs moto's server, which is not installed. "
    "Install it with: pip install 'ec2kit[sandbox]'  (or pip install 'moto[server]')."
)

log = logging.getLogger("ec2kit.sandbox")


def write_state(root: Path, state: dict) -> None:
    """Write state.json atomically (readers never see half a file)."""
    atomic_write(root / "state.json", json.dumps(state, indent=2), fsync=False)


def prepare_environment(root: Path) -> None:
    """Seed images and dummy credentials; must run before moto or boto3 are imported."""
    os.environ["MOTO_AMIS_PATH"] = str(write_amis(root / "amis.json"))
    os.environ["AWS_ACCESS_KEY_ID"] = CREDENTIALS["aws_access_key_id"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = CREDENTIALS["aws_secret_access_key"]
    os.environ["AWS_DEFAULT_REGION"] = REGION
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)


def clear_leftovers(root: Path) -> None:
    """moto keeps state in memory: files from a previous daemon describe nothing now."""
    for sub in ("hosts", "images", "volumes", "snapshots"):
        shutil.rmtree(root / sub, ignore_errors=True)


def run(root: Path) -> int:
    """Start everything, serve until asked to stop, clean up; return the exit code."""
    started = time.monotonic()
    prepare_environment(root)
    try:
        import importlib

        import boto3
        from botocore.config import Config

        importlib.import_module("moto.moto_server.werkzeug_app")  # the modules below import moto lazily

        from ..moto.aws_behaviours import install
        from ..moto.motoserver import DAEMON_AGENT, MotoServer
    except ImportError as err:
        log.error("%s (%s)", MISSING_MOTO, err)
        print(MISSING_MOTO, file=sys.stderr)
        return 3
    from .control import Control
    from .reconciler import Reconciler
    from .routes import serve

    log.info("imports done in %.2fs", time.monotonic() - started)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    clear_leftovers(root)
    moto_port = free_port()
    moto = MotoServer(moto_port, request_log=root / "requests.log").start()
    install()  # SSM public parameters, Service Quotas, vCPU quotas, capacity (aws_behaviours)
    endpoint_url = f"http://127.0.0.1:{moto_port}"
    ec2 = boto3.client(
        "ec2",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=CREDENTIALS["aws_secret_access_key"],
        config=Config(user_agent_extra=DAEMON_AGENT),  # its own calls: out of the request log, never throttled
    )

    ctl_port = free_port()
    control_url = f"http://127.0.0.1:{ctl_port}"
    volumes = volumes_supported()
    reconciler = Reconciler(ec2, root, control_url, volumes=volumes, changes=moto.changes)
    stop = threading.Event()

    def reset() -> None:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST"), timeout=30).read()
        reconciler.forget()

    info = {
        "running": True,
        "endpoint_url": endpoint_url,
        "control_url": control_url,
        "region": REGION,
        "pid": os.getpid(),
        "dir": str(root),
        "volumes": volumes,
    }
    control = Control(reconciler, ec2, info=info, on_shutdown=stop.set, on_reset=reset)
    server = serve(control, ctl_port)
    threading.Thread(target=server.serve_forever, name="control", daemon=True).start()
    ec2.describe_regions()  # moto answers before anyone is told where it is
    ec2.describe_images(Owners=["self"])  # load the EC2 backend (AMIs, snapshots) now, not on first use
    log.info("moto ready in %.2fs", time.monotonic() - started)
    worker = threading.Thread(target=reconciler.run, args=(stop,), name="reconciler", daemon=True)
    worker.start()
    from .watchers import Watchers

    threading.Thread(target=Watchers(reconciler).run, args=(stop,), name="watchers", daemon=True).start()

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    write_state(root, {**info, "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    log.info(
        "sandbox up in %.2fs: ec2 %s, control %s, volumes %s", time.monotonic() - started, endpoint_url, control_url, volumes
    )

    while not stop.wait(0.1):
        if not (root / "state.json").exists():  # directory deleted (e.g. an old pytest tmp dir): nobody can find us
            log.warning("state.json is gone: shutting down")
            stop.set()
            break
    log.info("shutting down")
    worker.join(timeout=10)
    reconciler.shutdown()
    (root / "state.json").unlink(missing_ok=True)
    server.shutdown()
    moto.stop()
    log.info("stopped")
    logging.shutdown()
    os._exit(0)  # everything is cleaned up; don't wait on werkzeug's lingering request threads


def main(argv: list[str] | None = None) -> int:
    """Parse ``--dir`` and run the daemon, logging to DIR/daemon.log."""
    parser = argparse.ArgumentParser(prog="python -m ec2kit.sandbox.daemon", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, type=Path, help="sandbox state directory")
    args = parser.parse_args(argv)
    root: Path = args.dir.expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=root / "daemon.log",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(threadName)s %(message)s",
    )
    try:
        return run(root)
    except Exception:
        log.exception("the sandbox daemon failed")
        return 1
