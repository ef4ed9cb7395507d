"""What every part of :class:`~ec2kit.api.EC2` stands on: the Context, progress lines, how options are spelled."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .options import CLI, PYTHON, GpuRequest, Spelling, choose_gpu_types
from .shown import Progress

if TYPE_CHECKING:
    from ..aws.cloud import Cloud
    from ..aws.gpus import GpuCatalog
    from ..context import Context
    from ..settings import Settings
    from .ec2 import EC2


class Face:
    """The state one ``EC2`` holds: the :class:`~ec2kit.context.Context`, quietness, and which face calls it.

    ``cli=True`` is the command line's: messages name options as flags (``--disk 0``) and progress
    goes to the terminal as the tasks always showed it.
    """

    def __init__(
        self,
        region: str | None = None,
        profile: str | None = None,
        *,
        sandbox: bool | None = None,
        home: Path | str | None = None,
        quiet: bool = False,
        context: Context | None = None,
        cli: bool = False,
    ) -> None:
        if context is None:
            from ..context import Context
            from ..settings import Settings

            if region:
                from ..aws.regions import find_region

                region = find_region(region)
            settings = Settings.from_env(
                profile=profile, region=region, sandbox=sandbox, home=Path(home).expanduser() if home else None
            )
            context = Context(settings, quiet=quiet)
        self.ctx = context
        self.quiet = quiet
        self.spelling: Spelling = CLI if cli else PYTHON

    @property
    def _api(self) -> EC2:
        return cast("EC2", self)

    @property
    def settings(self) -> Settings:
        """ec2kit's settings (home, profile, region, sandbox…)."""
        return self.ctx.settings

    @property
    def cloud(self) -> Cloud:
        """The :class:`ec2kit.aws.cloud.Cloud` underneath (starts the sandbox when it is used)."""
        return self.ctx.cloud

    @property
    def uses_sandbox(self) -> bool:
        """True when calls go to the local sandbox instead of AWS."""
        self.cloud  # noqa: B018 - decides (and starts) first
        return self.ctx.sandbox is not None

    @property
    def region(self) -> str:
        """The AWS region in use."""
        return str(self.cloud.region)

    @property
    def volumes_supported(self) -> bool:
        """Whether volumes can be made here: always on AWS; in the sandbox only as root."""
        if not self.uses_sandbox:
            return True
        from ..sandbox import volumes_supported

        return volumes_supported()

    def _gpu_catalog(self) -> GpuCatalog:
        """The region's GPU types (one DescribeInstanceTypes pass, kept a day in EC2KIT_HOME/gpu-types.json)."""
        from ..aws.gpus import GpuCatalog

        cloud = self.cloud
        sandbox = self.uses_sandbox

        def on_demand() -> dict[str, float]:
            from ..aws.prices import gpu_on_demand_prices
            from ..errors import Ec2kitError

            try:
                return gpu_on_demand_prices(cloud.region, session=cloud.session, endpoint_url=cloud.endpoint_url)
            except Ec2kitError as err:  # no pricing:GetProducts permission: sizes order the types instead
                self._say(f"[dim]On-demand prices unavailable ({err}); GPU types are ordered by size.[/dim]", note=True)
                return {}

        return GpuCatalog(
            cloud.aws,
            self.settings.home / "gpu-types.json",
            scope=f"{'sandbox' if sandbox else 'aws'}:{cloud.region}",
            on_demand=on_demand,  # the sandbox answers the Pricing API too (sandbox/moto/pricelist.py)
        )

    def _spot_launch(self, *, gpus: str | None, gpu_memory: str | None, **given: Any) -> dict[str, Any]:
        """What a spot run or a sweep launches with (``run_options``: given, else ec2kit.toml's), with
        ``--gpus``/``--gpu-memory`` turned into the fleet's pools."""
        from .options import apply_gpus, gpu_request, run_options

        request = gpu_request(gpus, gpu_memory, type=given.get("type"), types=given.get("types"), spelling=self.spelling)
        launch = run_options(self.settings, spelling=self.spelling, **given)
        if request is not None:
            apply_gpus(launch, self._gpu_types(request, spot=True))
        return launch

    def _gpu_types(self, request: GpuRequest, *, spot: bool) -> list[str]:
        """The instance types that fit ``--gpus``/``--gpu-memory``, cheapest first (said in one line): with
        ``spot`` all of them are the fleet's pools, else the cheapest is launched."""
        offered = self._gpu_catalog().types()
        chosen = choose_gpu_types(request, offered, self.region, self.spelling)
        if request.models:  # as AWS spells them: a10g → A10G
            from ..aws.gpus import model_key

            spelt = {model_key(t.model): t.model for t in offered}
            request = replace(request, models=tuple(spelt.get(model_key(m), m) for m in request.models))
        if spot:
            self._say(f"GPUs {request}: spot pools {', '.join(chosen)}", note=True)
        else:
            self._say(f"GPUs {request}: {chosen[0]} (the cheapest of {len(chosen)} types that fit)", note=True)
        return chosen

    @contextmanager
    def _progress(self, title: str) -> Iterator[Progress]:
        if self.quiet:
            yield None
            return
        from .. import ui

        with ui.progress(title) as update:
            yield update

    def _say(self, line: str, *, note: bool = False) -> None:
        """One line for the person watching (nothing when quiet); a ``note`` goes to stderr, keeping stdout for data."""
        if not self.quiet:
            from .. import ui

            ui.console(stderr=note).print(line, soft_wrap=True)

    def _reporter(self, *, stream: Any = None, diff: bool = False) -> Any:
        from ..recipe import CollectingReporter, TextReporter

        return CollectingReporter() if self.quiet else TextReporter(stream or sys.stdout, diff=diff)

    def close(self) -> None:
        """Close the SSH connections this object opened."""
        self.ctx.close()

    def __enter__(self) -> EC2:
        return self._api

    def __exit__(self, *exc: object) -> None:
        self.close()
