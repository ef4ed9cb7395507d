"""The local sandbox: moto's EC2 server and one real sshd per running instance."""

from __future__ import annotations

from .. import ui
from ..context import Context
from ._common import command, fail


@command(aws=False)
def up(ctx: Context) -> None:
    """Start the local sandbox cloud (idempotent); ec2kit starts it by itself when needed."""
    import time

    from .. import sandbox

    t0 = time.monotonic()
    info = sandbox.up(ctx.settings)
    ui.console().print(f"Sandbox up in {time.monotonic() - t0:.2f}s: EC2 API at {info.endpoint_url}, state in {info.dir}")


@command(aws=False)
def down(ctx: Context) -> None:
    """Stop the sandbox: its EC2 server and every sandbox host (their state is lost)."""
    from .. import sandbox

    sandbox.down(ctx.settings)
    ui.console().print("Sandbox stopped.")


@command(aws=False, help={"json": "print JSON"})
def status(ctx: Context, json: bool = False) -> None:
    """Show whether the sandbox runs, its endpoint and its hosts."""
    from .. import sandbox

    st = sandbox.status(ctx.settings)
    if json:
        ui.print_json(st)
        return
    if not st.get("running"):
        ui.console().print("Sandbox is not running. `inv sandbox.up` starts it (any ec2kit command does too).")
        return
    ui.console().print(
        f"Sandbox running: EC2 API at {st.get('endpoint_url')}; volumes {'supported' if st.get('volumes') else 'need root'}"
    )
    hosts = st.get("hosts") or []
    rows = [(h.get("instance_id"), h.get("state", "running"), h.get("port"), h.get("pid")) for h in hosts]
    ui.print_table("Sandbox hosts", ["instance", "state", "ssh port", "sshd pid"], rows, empty="No sandbox hosts running.")


@command(
    aws=False,
    help={
        "instance": "instance name or id",
        "delay": "seconds between the notice and the reclaim (default 120, as on AWS; 0: no notice at all)",
        "restart_after": "an instance its spot request stops (a detached run's) starts again after this many seconds"
        " (default: never, as when capacity does not return)",
    },
)
def interrupt(ctx: Context, instance: str, delay: float = 120.0, restart_after: float | None = None) -> None:
    """Deliver a spot interruption: a notice on the instance's metadata endpoint, then it is terminated or stopped.

    Example: ec2kit sandbox.interrupt run1 --delay 30 --restart-after 60 (a detached run resumes a minute after)
    """
    from dataclasses import replace

    from .. import sandbox

    if restart_after is not None and restart_after < 0:
        raise fail(f"--restart-after must be 0 or more seconds, not {restart_after:g}.")
    sctx = Context(replace(ctx.settings, sandbox=True), quiet=True)
    inst = sctx.instance(instance)
    notice = sandbox.interrupt(ctx.settings, inst.id, delay=delay, restart_after=restart_after)
    who = f"{inst.name or inst.id} ({inst.id})"
    if notice.get("action") == "stop":
        fate = "is stopped (its disk kept) and "
        fate += (
            f"starts again {restart_after:g}s later"
            if restart_after is not None
            else "stays stopped (give --restart-after SECONDS)"
        )
    else:
        fate = "is terminated"
        if restart_after is not None:
            fate += " (--restart-after does not apply: its spot request does not ask to be stopped)"
    if delay <= 0:
        ui.console().print(f"{who} was reclaimed with no notice: it {fate}.")
    else:
        ui.console().print(f"Interruption notice sent to {who}; in {delay:g}s it {fate}.")
