"""The device layer and the library facades stay where the layering puts them
(`docs/architecture.md` §2): the device layer imports no configuration, MQTT or core
module, the package's static import graph (`TYPE_CHECKING` imports included) has no
cycle, and `import conduyt_bridge` loads nothing but the version until a library name
is used."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "conduyt_bridge"

FORBIDDEN_IN_DEVICE = (
    "conduyt_bridge.app",
    "conduyt_bridge.northbound",
    "conduyt_bridge.core",
    "pydantic",
    "pydantic_settings",
    "aiomqtt",
    "paho",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def static_imports(path: Path, *, include_type_checking: bool = True) -> set[str]:
    """Modules imported at module level (in `if`/`try` blocks too), as absolute names."""
    name = module_name(path)
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = name.split(".")
                    if path.name != "__init__.py":
                        package = package[:-1]
                    package = package[: len(package) - node.level + 1]
                    base = ".".join([*package, *([node.module] if node.module else [])])
                found.add(base)
                found.update(
                    f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES
                )
            elif isinstance(node, ast.If):
                is_type_checking = ast.unparse(node.test) in (
                    "TYPE_CHECKING",
                    "typing.TYPE_CHECKING",
                )
                if include_type_checking or not is_type_checking:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def test_the_device_layer_imports_no_upper_layer() -> None:
    problems = [
        f"{name} imports {imported}"
        for name, path in MODULES.items()
        if name.startswith("conduyt_bridge.device")
        for imported in sorted(static_imports(path))
        if imported.startswith(FORBIDDEN_IN_DEVICE)
    ]
    assert problems == []


def test_the_facades_import_only_the_device_layer_and_below() -> None:
    allowed = (
        "__future__",
        "importlib",
        "typing",
        "conduyt_bridge.device",
        "conduyt_bridge.errors",
        "conduyt_bridge.protocol",
        "conduyt_bridge.version",
    )
    facades = ["conduyt_bridge"] + [
        name
        for name in MODULES
        if name.startswith(("conduyt_bridge.transports", "conduyt_bridge.modules"))
    ]
    assert "conduyt_bridge.transports.serial" in facades  # conduyt-py's import paths
    assert "conduyt_bridge.modules.servo" in facades
    for name in facades:
        outside = [m for m in static_imports(MODULES[name]) if not m.startswith(allowed)]
        assert outside == [], name


def test_the_package_root_loads_the_library_lazily() -> None:
    runtime = static_imports(MODULES["conduyt_bridge"], include_type_checking=False)
    assert runtime == {"__future__", "importlib", "typing", "conduyt_bridge.version"}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles of `graph` (module → modules it imports), each as a closed path."""
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def walk(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, [*trail, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    return cycles


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_static_import_graph_has_no_cycle() -> None:
    graph = {
        name: {m for m in static_imports(path) if m in MODULES and m != name}
        for name, path in MODULES.items()
    }
    assert find_cycles(graph) == []


def test_library_modules_stay_small() -> None:
    # capabilities.py is being split by its owner; every other device module and the
    # facades keep under the house limit.
    paths = [p for p in (PACKAGE / "device").glob("*.py") if p.name != "capabilities.py"]
    paths += [PACKAGE / "__init__.py"]
    paths += [*(PACKAGE / "transports").glob("*.py"), *(PACKAGE / "modules").glob("*.py")]
    too_long = {p.name: n for p in paths if (n := len(p.read_text().splitlines())) > 500}
    assert too_long == {}
