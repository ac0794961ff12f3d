"""The package's layering (`docs/architecture.md` §2): the static import graph of
`conduyt_bridge` (every `import` statement, those under `TYPE_CHECKING` and inside
functions included) is acyclic, and imports point one way only:

    protocol ← simulator ← device ← core ← northbound ← app

with `errors` and `version` importable from everywhere, `protocol/` sans-IO (no asyncio,
sockets or logging), `device/` free of MQTT and pydantic, `core/` free of MQTT and topic
strings.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "conduyt_bridge"

LAYERS = ["protocol", "simulator", "device", "core", "northbound", "app"]
"""Lowest first: a module may import its own layer and those to its left."""

ANYWHERE = {"errors", "version"}
"""Top-level modules every layer may import."""

FACADES = {"__init__", "transports", "modules"}
"""Top-level modules of the public library API (re-exports of `device/`)."""

FORBIDDEN_EXTERNAL = {
    "protocol": {"asyncio", "socket", "logging", "structlog", "aiomqtt", "paho", "pydantic"},
    "device": {"aiomqtt", "paho", "pydantic", "pydantic_settings"},
    "core": {"aiomqtt", "paho", "pydantic", "pydantic_settings"},
    "northbound": {"pydantic", "pydantic_settings"},
}

FACADE_RANK = "device"
"""The public facades re-export the library (`device/`) and may import nothing above it."""


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> Iterator[str]:
    """Every module named by an import statement anywhere in the file (package modules
    resolved to the most specific module that exists; external ones by their top-level
    name, prefixed with `!`)."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            if target.startswith("conduyt_bridge"):
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    yield target
            elif target:
                yield "!" + target.split(".")[0]


@functools.cache
def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: set(imports_of(path, name, modules)) for name, path in modules.items()}


def layer_of(module: str) -> str:
    """The layer (first level below the package) of a package module; the package root
    itself counts as a facade."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of package modules, or None (iterative DFS with colours)."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(edges, white)
    for start in edges:
        if colour[start] != white:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        path = [start]
        colour[start] = grey
        while stack:
            node, children = stack[-1]
            child = next((c for c in children if c in edges), None)
            if child is None:
                colour[node] = black
                stack.pop()
                path.pop()
                continue
            if colour[child] == grey:
                return [*path[path.index(child) :], child]
            if colour[child] == white:
                colour[child] = grey
                path.append(child)
                stack.append((child, iter(sorted(edges[child]))))
    return None


def test_the_graph_sees_every_kind_of_import() -> None:
    """The graph builder resolves relative, `from … import module` and TYPE_CHECKING
    imports (else the acyclicity test below could pass on a blind graph)."""
    edges = graph()
    assert "conduyt_bridge.core.board" in edges["conduyt_bridge.northbound.conduyt.command"]
    assert (
        "conduyt_bridge.northbound.conduyt.command"
        in edges["conduyt_bridge.northbound.conduyt.handlers.pins"]
    )  # a TYPE_CHECKING import
    assert "!aiomqtt" in edges["conduyt_bridge.northbound.mqtt.connection"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_graph_is_acyclic() -> None:
    cycle = find_cycle({k: {m for m in v if not m.startswith("!")} for k, v in graph().items()})
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("module", sorted(all_modules()))
def test_imports_point_down_the_layers(module: str) -> None:
    layer = layer_of(module)
    targets = sorted(t for t in graph()[module] if not t.startswith("!"))
    if layer in ANYWHERE:
        # The error model and the version are leaves: importable from every layer.
        assert all(layer_of(t) in ANYWHERE for t in targets), f"{module} imports {targets}"
        return
    rank = (
        LAYERS.index(FACADE_RANK if layer in FACADES else layer)
        if (layer in FACADES or layer in LAYERS)
        else None
    )
    assert rank is not None, f"{module} is in no layer; add it to LAYERS, FACADES or ANYWHERE"
    banned = FORBIDDEN_EXTERNAL.get(FACADE_RANK if layer in FACADES else layer, set())
    for target in sorted(graph()[module]):
        if target.startswith("!"):
            assert target[1:] not in banned, f"{module} ({layer}) imports {target[1:]}"
            continue
        other = layer_of(target)
        if other in ANYWHERE:
            continue
        if other in FACADES:
            assert layer in FACADES, f"{module} imports the public facade {target}"
            continue
        assert LAYERS.index(other) <= rank, f"{module} ({layer}) imports {target} ({other})"


TOPIC_LEVEL = re.compile(
    r"(^|/|\{)(ds|pin|evt|cmd|module|status|meta|hello|error|log|bridge|homeassistant)/"
    r"|\{base\}|/set\b"
)
"""What a Conduyt or Home Assistant topic looks like inside a string."""


def _strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every string constant and f-string part that is not a docstring."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            yield node.lineno, node.value


def test_core_names_no_topic() -> None:
    """The core is format-agnostic: no string in `core/` (code, not docstrings) looks like
    a topic."""
    found = [
        f"{path.name}:{line}: {text!r}"
        for path in sorted((PACKAGE / "core").rglob("*.py"))
        for line, text in _strings(ast.parse(path.read_text(encoding="utf-8")))
        if TOPIC_LEVEL.search(text)
    ]
    assert found == []


def test_topic_check_sees_topics() -> None:
    tree = ast.parse('"""ds/x/set"""\nA = f"{p}/cmd/20"\nB = "pin/3/set"\nC = "x / y"\n')
    assert sorted(t for _, t in _strings(tree) if TOPIC_LEVEL.search(t)) == ["/cmd/20", "pin/3/set"]


def test_no_module_over_500_lines() -> None:
    """Small modules, the module catalog included (`protocol/module_catalog.py`)."""
    exempt: set[str] = set()
    long = {
        name: n
        for name, path in all_modules().items()
        if name not in exempt and (n := len(path.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert long == {}
