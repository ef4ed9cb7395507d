"""Spot runs from both faces: start one, list them, logs, pull, stop (a run or a whole sweep), clean up, the demo."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .base import Face
from .instances import Instance
from .runs import Run, _run_row
from .shown import Listing, Text, _silent

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..spotrun import Leftover
    from .sweeps import Sweep
    from .unused import Leftovers

WEEK = 7 * 86400


class RunVerbs(Face):
    """``EC2``'s spot-run verbs (``inv spot-run``, ``runs``, ``logs``, ``pull``, ``stop-run``, ``cleanup``, …)."""

    def spot_run(
        self,
        script: str | Path,
        *,
        files: str | Path | None = None,
        name: str | None = None,
        image: str | None = None,
        type: str | None = None,
        types: str | Sequence[str] = (),
        disk: int | None = None,
        snapshot: str | None = None,
        results: str | Path | None = None,
        max_price: float | str | None = None,
        retries: int = 0,
        monitor: str | None = None,
        detach: bool = False,
        keep: bool = False,
        max_hours: float | None = None,
        vars: dict[str, Any] | None = None,
        on_demand_fallback: bool = False,
        subnet: str | None = None,
        security_groups: str | Sequence[str] = (),
        instance_profile: str | None = None,
        open_ssh: bool = False,
        gpus: str | None = None,
        gpu_memory: str | None = None,
        yes: bool = False,
        workdir: str | Path | None = None,
    ) -> Run:
        """Run a script on a spot instance (``inv spot-run``): results sync to ``runs/RUN`` (or ``results``), everything
        is cleaned up at the end. Returns when the script ended (``detach=True``: once it started).

        Launch options default as on the command line (ec2kit.toml, else m5.large); ``types`` are more
        instance types one EC2 Fleet call may pick from; ``on_demand_fallback`` runs on-demand when no
        pool has spot capacity; ``vars`` are spot-run.toml's variables; ``gpus="A10G"`` (MODEL[:COUNT]) and/or
        ``gpu_memory="24GB"`` make every type that fits a pool instead of ``type``/``types``. The expected hourly
        cost (and the worst case with ``max_hours``) is shown first; above ``confirm_above`` it asks, unless ``yes``.
        ``workdir`` (default: ``workdir`` in ec2kit.toml) is synced to ``~/work/<its name>`` before the script
        starts (``$EC2KIT_WORKDIR``).
        Example: ``run = ec2.spot_run("train.sh", files="train.py", retries=1); run.metrics()["loss"].latest``.
        """
        from .. import spotrun

        launch = self._spot_launch(
            gpus=gpus,
            gpu_memory=gpu_memory,
            image=image,
            type=type,
            types=types,
            disk=disk,
            max_price=max_price,
            on_demand_fallback=on_demand_fallback,
            vars=vars,
            open_ssh=open_ssh,
            subnet=subnet,
            security_groups=security_groups,
            instance_profile=instance_profile,
            workdir=workdir,
        )
        options = spotrun.SpotRunOptions(
            script=str(script),
            files=str(files) if files is not None else None,
            name=name,
            snapshot=snapshot,
            results=str(results) if results is not None else None,
            retries=retries,
            monitor=monitor,
            detach=detach,
            keep=keep,
            max_hours=max_hours,
            **launch,
        )
        if self.quiet:
            options.out = options.say = _silent
        spotrun.options.validate(
            options
        )  # the script and files first: asking about money for a run that cannot start helps no one
        estimate = self._api._estimate(
            [options.type, *options.types],
            spot=True,
            on_demand_fallback=options.on_demand_fallback,
            disk=options.disk,
            max_hours=options.max_hours,
        )
        self._api._confirm_cost(estimate, yes=yes, what="this spot run")
        record = spotrun.spot_run(self.ctx, options)
        return Run(self._api, record.name, record)

    def exec(
        self,
        name: str | Instance,
        *,
        script: str | Path,
        files: str | Path | None = None,
        run: str | None = None,
        results: str | Path | None = None,
        detach: bool = False,
        queue: bool = False,
        max_hours: float | None = None,
        vars: dict[str, Any] | None = None,
        workdir: str | Path | None = None,
    ) -> Run:
        """Run a script on an instance you already have (``inv exec NAME``), recorded like a spot run: ``runs``,
        ``logs``, ``pull``, ``plot``, ``stop_run`` work on it; results come home to ``runs/RUN`` (or ``results``).
        The instance is never stopped, terminated or powered off by the run. ``queue`` waits for the instance's
        other exec runs to end (else they run side by side); ``run`` names the run (default: script + time);
        ``workdir`` (default: ``workdir`` in ec2kit.toml) is synced to ``~/work/<its name>`` first.
        Example: ``ec2.exec("gpu1", script="train.sh", detach=True).logs(follow=True)`` (or ``inst.exec("train.sh")``).
        """
        from .. import spotrun
        from .options import workdir_option

        local = workdir_option(self.settings, workdir, self.spelling)
        key = name.id if isinstance(name, Instance) else name
        options = spotrun.SpotRunOptions(
            script=str(script),
            files=str(files) if files is not None else None,
            name=run,
            results=str(results) if results is not None else None,
            detach=detach,
            max_hours=max_hours,
            vars=dict(vars or {}),
            on=key,
            queue=queue,
            workdir=str(local) if local is not None else None,
        )
        if self.quiet:
            options.out = options.say = _silent
        record = spotrun.exec_run(self.ctx, options)
        return Run(self._api, record.name, record)

    def runs(self, *, all: bool = False, on: str | Instance | None = None) -> Listing[Run]:
        """Spot and exec runs, newest first (finished ones older than a week only with ``all``; ``on``: only those
        on this instance, by name or id); detached runs are checked on their instances first, and what that found
        is each run's ``.note``."""
        from .. import spotrun

        found = spotrun.list_runs(self.ctx)
        if on is not None:
            inst = self._api.instance(on)
            found = [r for r in found if r.instance_id == inst.id]
        if not all:
            week_ago = time.time() - WEEK
            found = [r for r in found if r.live or r.awaiting_pull or r.created_at >= week_ago]
        notes = spotrun.refresh(self.ctx, found)
        return Listing(
            [Run(self._api, r.name, r, note=notes.get(r.name, "")) for r in found],
            title="Runs",
            columns=("name", "state", "type", "instance", "exit", "time", "cost", "metrics"),
            row=_run_row,
            empty="No runs yet. Start one with ec2.spot_run('train.sh').",
        )

    def run(self, name: str) -> Run:
        """The spot run called ``name``; NotFound with close names otherwise."""
        from ..runs import Runs

        return Run(self._api, name, Runs(self.settings.runs_db).get(name))

    def logs(self, run: str, *, follow: bool = False, out: Callable[[str], None] | None = None) -> Text:
        """A run's log (``inv logs``): from its instance while it runs, else the copy that came home; ``follow``
        prints it as it grows until the script ends (then returns it all). ``out`` gets each line as it comes."""
        from .. import spotrun
        from ..untrusted import visible

        lines: list[str] = []

        def take(line: str) -> None:
            lines.append(line)
            if out is not None:
                out(line)
            elif follow and not self.quiet:
                print(visible(line), flush=True)

        spotrun.logs(self.ctx, run, follow=follow, out=take)
        return Text("\n".join(lines) + ("\n" if lines else ""))

    def _sweep_named(self, name: str) -> Sweep | None:
        """Sweep ``name`` when no run has that name (``pull`` and ``stop_run`` take either)."""
        from .. import spotrun, sweep
        from .sweeps import Sweep

        if spotrun.find_run(self.ctx, name) is not None:
            return None
        record = sweep.find_sweep(self.ctx, name)
        return Sweep(self._api, name, record) if record is not None else None

    def pull(self, run: str) -> Run | Sweep:
        """Bring a run's results home now (``inv pull``); a sweep's name pulls every run of it that still has an
        instance. Returns the Run or :class:`Sweep` (``.results`` is where they are)."""
        from .. import spotrun

        found = self._sweep_named(run)
        if found is not None:
            return found.pull()
        spotrun.pull(self.ctx, run)
        return self.run(run)

    def stop_run(self, run: str) -> Run | Sweep:
        """Stop a run (``inv stop-run``): final pull of its results, then its instance and volumes are removed.
        A sweep's name stops the sweep and every run of it."""
        found = self._sweep_named(run)
        if found is not None:
            return found.stop()
        return self.run(run).stop()

    def attach_command(self, run: str) -> list[str]:
        """The ``ssh -t … tmux attach`` argv that shows a run's tmux session in a terminal (``inv attach``)."""
        from .. import spotrun

        return spotrun.attach_argv(self.ctx, run)

    def cleanup(self, *, dry_run: bool = True, older_than: str | float = "7d") -> Leftovers:
        """What costs money and nothing uses, as ``inv cleanup`` lists it; ``dry_run=False`` removes it.

        Leftovers of spot runs that are over (instances, volumes, spot requests, launch templates), and
        ec2kit's storage older than ``older_than`` (``"7d"``, ``"36h"``, ``0``; seconds as a number): unattached
        volumes, snapshots no image, recipe or live run uses, images no config file, recipe or live run
        names, each with its monthly cost at the region's prices (those of :meth:`costs`; ``.prices_note`` says
        when the Pricing API could not be reached and a us-east-1 table was used). Storage ec2kit did not make is
        never touched.
        """
        from .. import spotrun
        from ..aws.costs import dollars
        from ..sweep.records import live_sweep_names
        from .options import parse_age
        from .unused import Leftovers, unused_storage

        age = parse_age(older_than, "older_than", self.spelling)
        live = live_sweep_names(self.ctx.settings.home)
        runs = spotrun.cleanup(self.ctx, dry_run=dry_run, live_sweeps=live)
        prices = self._api._storage_prices()
        storage = unused_storage(self.ctx, age, prices, skip={x.id for x in runs})
        if not dry_run:
            self._remove_storage(storage)
        found = Leftovers(
            [*runs, *storage],
            title="Leftovers" if dry_run else "Removed",
            columns=("kind", "id", "name", "why", "size", "$/month"),
            row=lambda x: (
                x.kind,
                x.id,
                x.name,
                x.reason,
                f"{x.size} GB" if x.size else "",
                dollars(x.monthly),
            ),
            empty="Nothing to clean up.",
        )
        if storage and prices.fallback:
            found.prices_note = f"Storage priced at {prices.fallback}."
        return found

    def _remove_storage(self, storage: list[Leftover]) -> None:
        """Delete unused volumes, images (with their snapshots) and then lone snapshots; what fails is said at the end."""
        from ..errors import Ec2kitError, RunError

        failed = []
        order = {"volume": 0, "image": 1, "snapshot": 2}
        for left in sorted(storage, key=lambda x: order[x.kind]):
            try:
                if left.kind == "volume":
                    self.cloud.delete_volume(left.id)
                elif left.kind == "image":
                    self.cloud.delete_image(left.id)
                else:
                    self.cloud.delete_snapshot(left.id)
            except Ec2kitError as err:
                failed.append(f"{left.kind} {left.id} ({err.message})")
        if failed:
            raise RunError("Cleanup could not remove: " + "; ".join(failed))

    def plot(self, run: str, *, metric: str | Sequence[str] | None = None, png: str | Path | None = None) -> Figure | Path:
        """A run's metrics as a matplotlib figure (``png``: written to that file, whose path is returned), as ``inv plot``."""
        from .. import plot
        from ..runs import Runs

        record, found = plot.run_metrics(Runs(self.settings.runs_db), run)
        names = plot.choose(found, plot.wanted(metric), run)
        if png is not None:
            plot.write_png(found, names, str(png), title=f"{record.name} ({record.state})")
            return Path(png)
        return plot.figure(found, names, title=f"{record.name} ({record.state})", inline=True)

    def demo(self, *, retries: int = 1) -> Run:
        """The main job on the local sandbox (never AWS): examples/train.sh on a spot instance, results synced home."""
        from dataclasses import replace

        from .. import spotrun
        from ..context import Context
        from .shown import examples_dir

        examples = examples_dir()
        if not (examples / "train.sh").exists():
            raise ConfigError(f"the demo needs {examples / 'train.sh'}, which this installation lacks; reinstall ec2kit.")
        sandbox = Context(replace(self.settings, sandbox=True), quiet=self.quiet)
        name = time.strftime("demo-%Y%m%d-%H%M%S")
        self._say(f"[bold]ec2kit demo[/bold]: spot-run of {examples / 'train.sh'} on the local sandbox as run {name}")
        try:
            options = spotrun.SpotRunOptions(
                script=str(examples / "train.sh"), files=str(examples / "train.py"), name=name, retries=retries
            )
            if self.quiet:
                options.out = options.say = _silent
            record = spotrun.spot_run(sandbox, options)
        finally:
            sandbox.close()
        return Run(self._api, record.name, record)
