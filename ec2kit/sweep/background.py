"""A detached sweep's own process: ``python -m ec2kit.sweep.background NAME [--profile P] [--region R]``.

Started by ``inv sweep --detach`` (in a session of its own, output in EC2KIT_HOME/sweeps/NAME.log); it
runs the recorded sweep to its end exactly as an attached ``inv sweep`` would. If it dies, ``inv sweeps``
sees its owner gone and settles the sweep.
"""

from __future__ import annotations

import argparse
import signal
import time


def main(argv: list[str] | None = None) -> int:
    """Run the recorded sweep NAME; exit 0 when every run succeeded."""
    from ..context import Context
    from ..settings import Settings
    from . import pending, run
    from .options import SweepOptions
    from .plan import Plan
    from .records import Sweeps
    from .summary import parse_objective  # noqa: F401 - fail early on a broken install

    parser = argparse.ArgumentParser(prog="ec2kit.sweep.background")
    parser.add_argument("name")
    parser.add_argument("--profile")
    parser.add_argument("--region")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill PID` stops it as Ctrl-C does: cleanly
    ctx = Context(Settings.from_env(profile=args.profile, region=args.region), quiet=True)
    try:
        record = Sweeps(ctx.settings.home).get(args.name)
        options = SweepOptions.from_stored(record.options)
        options.say = lambda m: print(f"{time.strftime('%H:%M:%S')} {m}", flush=True)
        items = pending(record)  # every run of a new sweep; the never-started ones of a resumed one
        plan = Plan(items, parallel=options.parallel, retries=options.retries, fresh=options.fresh, max_cost=options.max_cost)
        final = run(ctx, options, record, plan)
        print(f"{time.strftime('%H:%M:%S')} sweep {final.name} {final.state}", flush=True)
        return 0 if final.state == "succeeded" else 3
    finally:
        ctx.close()


if __name__ == "__main__":
    raise SystemExit(main())
