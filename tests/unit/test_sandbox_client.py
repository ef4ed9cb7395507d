"""The sandbox's client side stays light: importing ``ec2kit.sandbox`` loads neither the daemon, moto,
boto3 nor ec2kit's SSH layer (the sandbox hands out addresses; Context turns them into SSH targets);
and no import anywhere in ec2kit names a module that moved away."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
import ec2kit.sandbox as sb
names = ("ensure_running", "up", "down", "status", "interrupt", "reset", "Resolver", "SandboxAddress", "set_capacity",
         "capacity_returns", "set_quota", "enforce_ssh_rules", "set_caller_ip", "volumes_supported")
print(json.dumps({"missing": [n for n in names if not hasattr(sb, n)],
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore", "moto", "ec2kit"))}))
"""


def test_importing_the_sandbox_loads_only_its_client_and_the_bottom_modules():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    found = json.loads(done.stdout)
    assert found["missing"] == []
    heavy = (
        "boto3",
        "botocore",
        "moto",
        "ec2kit.ssh",
        "ec2kit.aws",
        "ec2kit.context",
        "ec2kit.sandbox.daemon",
        "ec2kit.sandbox.moto",
    )
    assert [m for m in found["loaded"] if m.startswith(heavy)] == []
    sandbox = [m for m in found["loaded"] if m.startswith("ec2kit.sandbox")]
    assert sandbox == [
        "ec2kit.sandbox",
        "ec2kit.sandbox.client",
        "ec2kit.sandbox.client.info",
        "ec2kit.sandbox.client.knobs",
        "ec2kit.sandbox.client.process",
        "ec2kit.sandbox.client.resolver",
    ]


def _module_exists(root: Path, dotted: str) -> bool:
    path = root.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_every_import_of_an_ec2kit_module_names_one_that_exists():
    """In ec2kit, its tests and bench, imports inside functions too: after modules move (the sandbox's
    client/, daemon/, moto/), a stale import there would only fail when that code path runs."""
    root = Path(__file__).resolve().parents[2]
    stale = []
    files = [*(root / "ec2kit").rglob("*.py"), *(root / "tests").rglob("*.py"), *(root / "bench").glob("*.py"), root / "tasks.py"]
    for path in sorted(files):
        parts = list(path.relative_to(root).with_suffix("").parts)
        package = parts[:-1]  # a package's __init__ and its modules resolve relative imports alike
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ec2kit":
                target = node.module or ""
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.split(".")[0] == "ec2kit"]
                stale += [f"{path.relative_to(root)}:{node.lineno} {n}" for n in names if not _module_exists(root, n)]
                continue
            else:
                continue
            if not _module_exists(root, target):
                stale.append(f"{path.relative_to(root)}:{node.lineno} {target}")
            elif node.module is None:  # `from . import x`: x is a submodule or a name the package defines
                init = root.joinpath(*target.split(".")) / "__init__.py"
                text = init.read_text() if init.is_file() else ""
                stale += [
                    f"{path.relative_to(root)}:{node.lineno} {target}.{a.name}"
                    for a in node.names
                    if not _module_exists(root, f"{target}.{a.name}") and a.name not in text
                ]
    assert stale == []


SANDBOX_LAYERS = ("daemon", "moto", "client")  # top first: each may import only the ones after it


def test_inside_the_sandbox_imports_go_daemon_then_moto_then_client_and_never_up_to_ssh():
    root = Path(__file__).resolve().parents[2]
    wrong = []
    for layer in SANDBOX_LAYERS:
        below = SANDBOX_LAYERS[SANDBOX_LAYERS.index(layer) :]
        for path in sorted((root / "ec2kit" / "sandbox" / layer).rglob("*.py")):
            package = list(path.relative_to(root).with_suffix("").parts)[:-1]
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom) or not (node.level or (node.module or "").startswith("ec2kit")):
                    continue
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join([*base, *([node.module] if node.module else [])])
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
                for name in names:
                    inside = name.split(".")[2] if name.startswith("ec2kit.sandbox.") else None
                    if (inside in SANDBOX_LAYERS and inside not in below) or name.startswith(("ec2kit.ssh", "ec2kit.aws")):
                        wrong.append(f"{path.relative_to(root)}:{node.lineno} imports {name}")
    assert wrong == []


def test_a_control_request_gives_status_and_json_and_zero_when_unreachable_or_not_json():
    """``request`` against a real local HTTP server (plain http.client: no urllib.request, no proxy)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ec2kit.sandbox.client.info import request

    seen: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append((self.command, self.path, self.rfile.read(length)))
            status, body = {"/ok": (200, b'{"a": 1}'), "/missing": (404, b'{"error": "no"}'), "/text": (200, b"<html>")}.get(
                self.path.split("?")[0], (500, b"")
            )
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert request(f"{base}/ok?x=1") == (200, {"a": 1})
        assert request(f"{base}/missing", "POST") == (404, {"error": "no"})
        assert request(f"{base}/text") == (0, None)
        assert request(f"{base}/broken") == (500, None)
        assert seen[:2] == [("GET", "/ok?x=1", b""), ("POST", "/missing", b"")]
    finally:
        server.shutdown()
        server.server_close()
    assert request(f"{base}/ok", timeout=2) == (0, None)  # nobody listens any more
    assert request("http://127.0.0.1:notaport/ok") == (0, None)
