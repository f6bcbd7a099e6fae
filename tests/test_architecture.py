"""The package's layers (docs/architecture.rst): each module imports only from its own
layer or the ones below, there are no import cycles, and the lower layers know no
Flask. Imports are read from the source, those inside functions and under
``TYPE_CHECKING`` included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "flask_uwsgicache"

#: Bottom to top. The package itself (its public names) sits above them all.
LAYERS: dict[str, set[str]] = {
    "entries": {
        "errors",
        "keys",
        "serializers",
        "envelope",
        "timeouts",
        "logs",
        "cache2",
        "ini",
        "flaskcaching",
        "config",
    },
    "backends": {"backends", "backends.base", "backends.memory", "backends.null"}
    | {"backends.cache2store", "backends.redis", "backends.uwsgi"}
    # Shared memory of a uWSGI instance: the tiered backend's coherence table lives
    # there, as the views' generations and counts do.
    | {"sharedtables", "backends.coherence", "backends.tiered"},
    # _speedups: the C get and set (a stub, _speedups.pyi, stands for it here).
    "key-value": {"keyspaces", "counters", "speedups", "cache", "flight", "_speedups"},
    "views": {
        "contexts",
        "callables",
        "viewkeys",
        "privacy",
        "responses",
        "viewcounts",
        "generations",
        "appcache",
        "hashing",
        "wrapping",
        "cachedkeys",
        "cached",
        "memoize",
        "fastpath",
        "edgeroutes",
        "edgeindex",
        "edge",
        "jinja",
    },
    # The commands know the config and the entries; init_app registers them.
    "cli": {"cli", "cli.config", "cli.doctor", "cli.cacheline", "cli.report", "cli.stats"},
    "extension": {"extension"},
    # The users' pytest plugin builds caches as init_app does.
    "plugin": {"testing"},
}
RANK = {module: rank for rank, names in enumerate(LAYERS.values()) for module in names}
WITHOUT_FLASK = ("entries", "backends", "key-value")
WEB = ("flask", "werkzeug", "jinja2", "markupsafe", "click")


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.joinpath(*name.split(".")) if name else PACKAGE
    return (
        path.with_suffix(".py").exists()
        or path.with_suffix(".pyi").exists()  # a C extension's stub
        or (path / "__init__.py").exists()
    )


def _sources() -> list[Path]:
    """The package's modules: its .py files, and the stubs of its C extensions."""
    sources = sorted(PACKAGE.rglob("*.py"))
    return sources + [
        stub
        for stub in sorted(PACKAGE.rglob("*.pyi"))
        if not stub.with_suffix(".py").exists()
    ]


def imports(path: Path) -> tuple[set[str], set[str]]:
    """``(modules of the package, other top-level packages)`` that ``path`` imports."""
    name = _name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    own: set[str] = set()
    other: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top, _, rest = alias.name.partition(".")
                (own.add(rest) if top == "flask_uwsgicache" else other.add(top))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                top, _, rest = (node.module or "").partition(".")
                if top != "flask_uwsgicache":
                    other.add(top)
                    continue
                base = rest
            else:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                own.add(sub if _is_module(sub) else base)
    own.discard(name)
    return own, other


def _graph() -> dict[str, set[str]]:
    return {_name(path): imports(path)[0] for path in _sources()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_every_module_has_a_layer() -> None:
    modules = {name for name in _graph() if name}
    assert modules == set(RANK), "add the new module to LAYERS and docs/architecture.rst"


def test_there_are_no_import_cycles() -> None:
    graph = {
        name: {target for target in targets if target} for name, targets in _graph().items()
    }
    assert cycles(graph) == []


@pytest.mark.parametrize("path", _sources(), ids=_name)
def test_a_module_imports_only_from_its_layer_or_below(path: Path) -> None:
    name = _name(path)
    if not name:
        return  # the package's public names may come from any layer
    upward = {target for target in imports(path)[0] if target and RANK[target] > RANK[name]}
    assert upward == set()


@pytest.mark.parametrize("layer", WITHOUT_FLASK)
def test_the_lower_layers_know_no_flask(layer: str) -> None:
    for name in LAYERS[layer]:
        path = PACKAGE.joinpath(*name.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        if not path.exists():
            path = path.with_suffix(".pyi")
        assert not imports(path)[1] & set(WEB), name
