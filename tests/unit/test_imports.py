"""Imports go down the layers of docs/ARCHITECTURE.md and never in a circle (read from the source with ``ast``).

Three graphs are read from every module of ``ec2kit``: module-level imports (those under
``if TYPE_CHECKING:`` included: they are still what a module depends on), and, separately, the
imports inside functions (lazy imports). A circle is a group of modules each reaching the
others (a strongly connected component). ``KNOWN_*`` list what other owners still have to
untie: they may only shrink (a new circle fails, and so does an entry that no longer exists).
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

#: the checkout (found upwards, wherever tests/ puts this file)
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "ec2kit" / "__init__.py").is_file())

#: top first; a module may import only from its own package or a layer below. Modules of one layer are
#: peers that never import each other (``aws`` and ``ssh``: ``Context.target`` joins them).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("ec2kit.cli",),
    ("ec2kit",),  # the package's own __init__ (only): __version__ and the lazy ``from ec2kit import EC2``
    ("ec2kit.repl",),
    ("ec2kit.api",),
    ("ec2kit.sweep",),
    ("ec2kit.spotrun",),
    ("ec2kit.workdir", "ec2kit.jupyter"),  # a local tree kept on an instance (inv sync, --workdir); inv jupyter
    ("ec2kit.plot",),
    ("ec2kit.runs", "ec2kit.metrics"),
    ("ec2kit.autostop",),  # the idle watcher: rendered, installed over SSH, read back
    ("ec2kit.recipe",),
    ("ec2kit.actions",),
    ("ec2kit.context",),
    ("ec2kit.connections",),  # transports, admission, remembered sandbox addresses
    ("ec2kit.where",),  # mode, cloud, host cache, how an instance is reached
    ("ec2kit.hostcache",),
    ("ec2kit.aws", "ec2kit.ssh"),
    ("ec2kit.sandbox",),
    ("ec2kit.keypair", "ec2kit.display", "ec2kit.ui"),
    ("ec2kit.settings",),
    ("ec2kit.config",),
    ("ec2kit.idle",),  # idle windows, actions, CPU thresholds (pure): config.py checks ec2kit.toml's with it
    (
        "ec2kit.errors",
        "ec2kit.fsutil",
        "ec2kit.untrusted",
        "ec2kit.paths",
        "ec2kit.defaults",
        "ec2kit.checkpoint",
        "ec2kit.tags",
        "ec2kit.idle",
    ),
)

#: inside aws/: plain services over one session, composed by ``Cloud`` (top first; same rules as LAYERS)
AWS_LAYERS: tuple[tuple[str, ...], ...] = (
    ("ec2kit.aws",),  # the package's docstring only
    ("ec2kit.aws.cloud",),  # the facade: makes the session and the services, forwards the verbs
    ("ec2kit.aws.launch",),
    ("ec2kit.aws.fleet",),
    ("ec2kit.aws.aliases", "ec2kit.aws.network"),
    ("ec2kit.aws.storage", "ec2kit.aws.quotas", "ec2kit.aws.access", "ec2kit.aws.costs"),
    ("ec2kit.aws.images",),
    ("ec2kit.aws.instances", "ec2kit.aws.prices"),
    ("ec2kit.aws.instance_types", "ec2kit.aws.gpus"),
    ("ec2kit.aws.ebs_prices",),  # storage prices (EBS, snapshots, IPv4)
    ("ec2kit.aws.price_api",),  # the Pricing API and the price cache
    ("ec2kit.aws.session",),
    ("ec2kit.aws.modelcache",),  # botocore's data files parsed once (the session's data_loader)
    ("ec2kit.aws.plans", "ec2kit.aws.address", "ec2kit.aws.regions"),  # pure data / stdlib only
    ("ec2kit.aws.errors",),
    ("ec2kit.aws.quota_table",),
    ("ec2kit.aws.models",),
)

#: circles of module-level imports that other owners still have to untie (may only shrink)
KNOWN_MODULE_CIRCLES: set[frozenset[str]] = {
    # api, the one facade cycle we keep: EC2 is composed of its parts (machines, storage, recipes, running,
    # sweeps, costs over base) and hands out Instance/Recipe/Run/Sweep objects; they name EC2 back in type hints only
    frozenset(
        {
            "ec2kit.api.base",
            "ec2kit.api.costs",
            "ec2kit.api.ec2",
            "ec2kit.api.instances",
            "ec2kit.api.machines",
            "ec2kit.api.notebooks",
            "ec2kit.api.prices",
            "ec2kit.api.recipes",
            "ec2kit.api.running",
            "ec2kit.api.runs",
            "ec2kit.api.storage",
            "ec2kit.api.sweeps",
        }
    ),
}
#: further circles once imports inside functions count (may only shrink)
KNOWN_LAZY_CIRCLES: set[frozenset[str]] = set(KNOWN_MODULE_CIRCLES)
#: imports that go up (importer, imported), to be removed by their owners (may only shrink)
KNOWN_UPWARD: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Import:
    """One import statement of one ec2kit module, resolved to the ec2kit module it loads."""

    source: str
    target: str
    path: Path
    line: int
    lazy: bool  # inside a function

    def where(self) -> str:
        """``ec2kit/aws/cloud.py:21``."""
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{shown}:{self.line}"


def modules(root: Path, package: str = "ec2kit") -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package) for every module under ``root/package``."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _resolve(mods: dict[str, tuple[Path, bool]], source: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The ec2kit modules an import statement loads (``from pkg import mod`` names the submodule)."""
    package = next(iter(mods)).split(".")[0]

    def known(name: str) -> str:
        while name not in mods and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    if isinstance(node, ast.Import):
        return [known(a.name) for a in node.names if a.name.split(".")[0] == package]
    if node.level:
        base = source.split(".")[: None if is_package else -1]
        base = base[: len(base) - node.level + 1]
        target = ".".join([*base, *([node.module] if node.module else [])])
    else:
        target = node.module or ""
    if target.split(".")[0] != package:
        return []
    return [f"{target}.{a.name}" if f"{target}.{a.name}" in mods else known(target) for a in node.names]


@functools.cache
def read_imports(root: Path, package: str = "ec2kit") -> list[Import]:
    """Every import between modules of ``package`` under ``root`` (read once per test session)."""
    mods = modules(root, package)
    found: list[Import] = []
    for source, (path, is_package) in mods.items():

        def visit(node: ast.AST, lazy: bool, source: str = source, path: Path = path, is_package: bool = is_package) -> None:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _resolve(mods, source, is_package, node):
                    if target != source:
                        found.append(Import(source, target, path, node.lineno, lazy))
            for child in ast.iter_child_nodes(node):
                visit(child, lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

        visit(ast.parse(path.read_text(), str(path)), False)
    return found


def circles(imports: list[Import]) -> list[frozenset[str]]:
    """Groups of two or more modules that import each other, directly or around a loop (Tarjan's SCC)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.source, set()).add(imp.target)
        graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(frozenset(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def loop(group: frozenset[str], imports: list[Import]) -> list[Import]:
    """One concrete loop through ``group``: the import statements, in order, from its first module back to it."""
    start = min(group)
    edges = [i for i in imports if i.source in group and i.target in group]
    paths: dict[str, list[Import]] = {start: []}
    todo = [start]
    while todo:
        node = todo.pop(0)
        for edge in sorted((e for e in edges if e.source == node), key=lambda e: e.target):
            if edge.target == start:
                return [*paths[node], edge]
            if edge.target not in paths:
                paths[edge.target] = [*paths[node], edge]
                todo.append(edge.target)
    return []


def layer_of(module: str, layers: tuple[tuple[str, ...], ...]) -> tuple[int, str] | None:
    """(layer index, the declared group) of ``module``: the longest declared prefix wins (a top-level
    package's name stands for its ``__init__`` alone)."""
    best: tuple[int, str] | None = None
    for depth, names in enumerate(layers):
        for name in names:
            if (module == name or ("." in name and module.startswith(name + "."))) and (best is None or len(name) > len(best[1])):
                best = (depth, name)
    return best


def upward(imports: list[Import], layers: tuple[tuple[str, ...], ...], scope: str = "") -> list[Import]:
    """Imports (of modules under ``scope``) that go up the layers, or sideways between peers of one layer."""
    wrong = []
    for imp in imports:
        if scope and not (imp.source.startswith(scope) and imp.target.startswith(scope)):
            continue
        here, there = layer_of(imp.source, layers), layer_of(imp.target, layers)
        if here and there and here[1] != there[1] and there[0] <= here[0]:
            wrong.append(imp)
    return wrong


def _explain(group: frozenset[str], imports: list[Import]) -> str:
    steps = loop(group, imports)
    return " → ".join([steps[0].source, *(f"{s.target} ({s.where()})" for s in steps)]) if steps else ", ".join(sorted(group))


def _check_circles(imports: list[Import], known: set[frozenset[str]], what: str) -> None:
    found = set(circles(imports))
    new = [c for c in found if not any(c <= k for k in known)]
    stale = [k for k in known if k not in found]
    assert not new, f"New import circle(s) {what}; make one side import down (or move the shared part below both):\n" + "\n".join(
        _explain(c, imports) for c in new
    )
    assert not stale, f"These known circles {what} are gone (or smaller): update KNOWN in tests/test_imports.py:\n" + "\n".join(
        f"{sorted(k)} now: {[sorted(c) for c in found if c <= k]}" for k in stale
    )


def test_no_modules_import_each_other_in_a_circle_at_module_level():
    imports = [i for i in read_imports(ROOT) if not i.lazy]
    _check_circles(imports, KNOWN_MODULE_CIRCLES, "between module-level imports")


def test_no_new_circle_appears_when_imports_inside_functions_count_too():
    _check_circles(read_imports(ROOT), KNOWN_LAZY_CIRCLES, "counting imports inside functions")


def test_aws_has_no_import_circle_at_all():
    inside = [i for i in read_imports(ROOT) if i.source.startswith("ec2kit.aws") and i.target.startswith("ec2kit.aws")]
    assert circles(inside) == [], "\n".join(_explain(c, inside) for c in circles(inside))


def test_imports_go_down_the_layers_of_the_architecture():
    wrong = upward(read_imports(ROOT), LAYERS)
    new = sorted(f"{i.where()}: {i.source} imports {i.target}" for i in wrong if (i.source, i.target) not in KNOWN_UPWARD)
    assert not new, "Imports that go up (or sideways between peers) the layers in tests/test_imports.py:\n" + "\n".join(new)
    gone = KNOWN_UPWARD - {(i.source, i.target) for i in wrong}
    assert not gone, f"These known upward imports are gone: remove them from KNOWN_UPWARD: {sorted(gone)}"


def test_inside_aws_the_services_import_only_down():
    wrong = upward(read_imports(ROOT), AWS_LAYERS, scope="ec2kit.aws")
    assert not wrong, "\n".join(f"{i.where()}: {i.source} imports {i.target}" for i in wrong)


def test_every_module_has_a_declared_layer():
    mods = modules(ROOT)
    missing = sorted(m for m in mods if layer_of(m, LAYERS) is None)
    assert not missing, f"Place these modules in LAYERS of tests/test_imports.py: {missing}"
    in_aws = sorted(m for m in mods if m.startswith("ec2kit.aws.") and layer_of(m, AWS_LAYERS) in (None, (0, "ec2kit.aws")))
    assert not in_aws, f"Place these aws modules in AWS_LAYERS of tests/test_imports.py: {in_aws}"


def test_the_checker_finds_a_circle_a_lazy_circle_and_an_upward_import_in_a_made_up_package(tmp_path):
    pkg = tmp_path / "toy"
    (pkg / "low").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "high.py": "from .low import a\n",
        "low/__init__.py": "",
        "low/a.py": "from __future__ import annotations\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n",
        "low/b.py": "from .a import x\n\ndef later():\n    from ..high import y\n    from toy.low import c\n",
        "low/c.py": "import toy.high\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    found = read_imports(tmp_path, "toy")
    eager = [i for i in found if not i.lazy]
    assert circles(eager) == [frozenset({"toy.low.a", "toy.low.b"})]
    assert set(circles(found)) == {frozenset({"toy.high", "toy.low.a", "toy.low.b", "toy.low.c"})}
    assert [(s.source, s.target, s.line) for s in loop(frozenset({"toy.low.a", "toy.low.b"}), eager)] == [
        ("toy.low.a", "toy.low.b", 4),
        ("toy.low.b", "toy.low.a", 1),
    ]
    layers = (("toy.high",), ("toy.low",))
    assert sorted((i.source, i.target, i.lazy) for i in upward(found, layers)) == [
        ("toy.low.b", "toy.high", True),
        ("toy.low.c", "toy.high", False),
    ]
