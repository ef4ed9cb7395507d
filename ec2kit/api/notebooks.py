"""Jupyter from both faces (``inv jupyter NAME``, ``ec2.jupyter(NAME)``): provision, start, tunnel, stop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, WrongState
from .base import Face

if TYPE_CHECKING:
    from ..jupyter import JupyterServer
    from .instances import Instance

DEFAULT_JUPYTER_PORT = 8888


class JupyterVerbs(Face):
    """``EC2``'s Jupyter verb."""

    def jupyter(
        self,
        name: str | Instance,
        *,
        port: int = DEFAULT_JUPYTER_PORT,
        stop: bool = False,
        vars: dict[str, Any] | None = None,
    ) -> JupyterServer:
        """JupyterLab on an instance, tunnelled to ``127.0.0.1:port`` here (``inv jupyter``): runs the
        ``jupyter`` recipe when its venv has no Jupyter yet (``vars`` override the recipe's, e.g.
        ``{"jupyter_packages": "jupyterlab ipywidgets"}``), starts the server under tmux bound to the
        instance's localhost with a token made here, and opens the tunnel. Running it again reuses the
        server and re-opens the tunnel. Returns a :class:`~ec2kit.jupyter.JupyterServer`; its ``.url``
        holds the token. ``stop=True`` closes the tunnel and ends the server (kernels included)."""
        from .. import jupyter
        from ..recipe import load_recipe
        from ..recipe.loader import check_overrides
        from ..recipe.variables import resolve_vars

        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(
                f"{self.spelling.given('port', repr(port) if not self.spelling.cli else port)}: not a TCP port.",
                hint=f"Give a local port 1-65535, e.g. {self.spelling.given('port', 8889)}.",
            )
        recipe = load_recipe("jupyter")
        check_overrides(recipe, dict(vars or {}))  # a misspelt variable is refused even when nothing is installed
        values, _ = resolve_vars(recipe, dict(vars or {}))
        venv = str(values.get("jupyter_venv") or "~/jupyter")
        inst = self._api.instance(name)
        if inst.state != "running":
            key = inst.name or inst.id
            start = f"inv start {key}" if self.spelling.cli else f"ec2.start({key!r})"
            raise WrongState(
                f"Instance {inst.label} is {inst.state}: Jupyter needs it running.", hint=f"Start it first: {start}."
            )
        transport = self.ctx.connect(inst.info)
        found = jupyter.probe(transport, venv)
        if stop:
            transport.end_tunnel(port, found.remote_port)
            ended = jupyter.stop(transport)
            server = jupyter.JupyterServer(inst.label, port, found.remote_port, stopped=True)
            said = server.line() if ended else f"No Jupyter was running on {inst.label}; its tunnel is closed."
            self._say(said, note=True)  # stderr: stdout stays for --json
            return server
        server = jupyter.JupyterServer(inst.label, port, app=found.app or "lab")
        if found.app is None:
            import sys

            # step lines to stderr: stdout keeps the URL (or the JSON) alone
            self._api.recipe("jupyter").run([inst.id], vars=dict(vars or {}), stream=sys.stderr).raise_for_failure()
            server.provisioned = True
            found = jupyter.probe(transport, venv)
            if found.app is None:
                raise ConfigError(
                    f"The jupyter recipe ran on {inst.label} but {venv}/bin has neither jupyter-lab nor jupyter-server.",
                    hint="Check the recipe's jupyter_packages and jupyter_venv (inv recipes).",
                )
            server.app = found.app
        if found.running:
            server.remote_port, server.token = found.remote_port, found.token
        else:
            with self._progress(f"Starting Jupyter on {inst.label}"):
                server.remote_port, server.token = jupyter.start(transport, venv, server.app)
            server.started = True
            transport.end_tunnel(port, 0)  # a tunnel left to an earlier server's port would hold the local one
        transport.tunnel(port, server.remote_port)
        self._say(server.line(), note=True)
        return server
