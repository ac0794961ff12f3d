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
}


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
    return {
        name: set(imports_of(path, name, modules)) for name, path in modules.items()
    }


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return parts[1]


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
    assert "conduyt_bridge.northbound.conduyt.command" in edges[
        "conduyt_bridge.northbound.conduyt.handlers.pins"
    ]  # a TYPE_CHECKING import
    assert "!aiomqtt" in edges["conduyt_bridge.northbound.mqtt.connection"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_graph_is_acyclic() -> None:
    cycle = find_cycle({k: {m for m in v if not m.startswith("!")} for k, v in graph().items()})
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("module", sorted(all_modules()))
def test_imports_point_down_the_layers(module: str) -> None:
    layer = layer_of(module)
    if layer is None or layer in ANYWHERE or layer in FACADES:
        return
    assert layer in LAYERS, f"{module} is in no layer; add it to LAYERS or ANYWHERE"
    rank = LAYERS.index(layer)
    for target in sorted(graph()[module]):
        if target.startswith("!"):
            banned = FORBIDDEN_EXTERNAL.get(layer, set())
            assert target[1:] not in banned, f"{module} ({layer}) imports {target[1:]}"
            continue
        other = layer_of(target)
        if other is None or other in ANYWHERE:
            continue
        assert other not in FACADES, f"{module} imports the public facade {target}"
        assert LAYERS.index(other) <= rank, f"{module} ({layer}) imports {target} ({other})"


def test_core_names_no_topic() -> None:
    """The core is format-agnostic: no module of `core/` spells a topic level."""
    for path in (PACKAGE / "core").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for needle in ("{base}", "/set\"", "homeassistant/", "evt/"):
            assert needle not in text, f"{path.name} mentions {needle!r}"


def test_no_module_over_500_lines() -> None:
    """Small modules; the module catalog (`protocol/modules.py`) is a data table."""
    exempt = {"conduyt_bridge.protocol.modules"}
    long = {
        name: n
        for name, path in all_modules().items()
        if name not in exempt and (n := len(path.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert long == {}
