"""The package layout: no import cycles between modules, counting imports inside
functions too (a cycle hidden in a function still ties the two modules together)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "aiki_hooks"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the aiki_hooks modules it imports anywhere in its body."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                base = node.module
                for alias in node.names:
                    # `from aiki_hooks.issues import journal` imports a module.
                    candidate = f"{base}.{alias.name}"
                    targets.add(candidate if candidate in modules else base)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        # A package's __init__ is run by importing anything in it, but it is import-free
        # here; leave packages out so `aiki_hooks` itself is no edge.
        graph[name] = {t for t in targets if t in modules and t != name and not modules[t].name == "__init__.py"}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert "aiki_hooks.cli" in graph and graph["aiki_hooks.cli"], "the graph is empty: the walker is broken"
    assert cycles(graph) == []


def test_package_inits_import_nothing() -> None:
    """Importing `aiki_hooks.hooklib.runtime` runs every package __init__ above it: on the hot path."""
    for init in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert not imports, f"{init.relative_to(REPO)} imports"
