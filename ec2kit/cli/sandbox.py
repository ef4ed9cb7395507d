"""The local sandbox: moto's EC2 server and one real sshd per running instance."""

from __future__ import annotations

from .. import ui
from ..context import Context
from ._common import command


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
        "delay": "seconds between the notice and the termination (default 120, as on AWS; 0: no notice at all)",
    },
)
def interrupt(ctx: Context, instance: str, delay: float = 120.0) -> None:
    """Deliver a spot interruption: a notice on the instance's metadata endpoint, then termination."""
    from dataclasses import replace

    from .. import sandbox

    sctx = Context(replace(ctx.settings, sandbox=True), quiet=True)
    inst = sctx.instance(instance)
    sandbox.interrupt(ctx.settings, inst.id, delay=delay)
    if delay <= 0:
        ui.console().print(f"{inst.name or inst.id} ({inst.id}) was reclaimed with no notice.")
    else:
        ui.console().print(f"Interruption notice sent to {inst.name or inst.id} ({inst.id}); it terminates in {delay:g}s.")
