"""The house stays layered: no package of mmgene imports a package that imports it back.

Imports are read from the source (module level and inside functions alike), so a lazy import
cannot hide a loop. A top-level module (``mmgene/atomic.py``) counts as a package of its own.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "mmgene"


def _unit(module: str) -> str:
    """The package (or top-level module) a dotted ``mmgene.*`` module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "mmgene"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path) -> list[tuple[str, int]]:
    """Every ``mmgene.*`` module ``path`` imports, with the line."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
    return [(m, line) for m, line in found if m.startswith("mmgene.")]


def package_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], list[str]]]:
    edges: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(ROOT.rglob("*.py")):
        source = _unit(_module_name(path))
        for module, line in _imported(path):
            target = _unit(module)
            if target != source and target != "mmgene":
                edges[source].add(target)
                where[(source, target)].append(f"{path.relative_to(ROOT.parent)}:{line} imports {module}")
    return edges, where


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_sees_loops_of_any_length():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_package_imports_a_package_that_imports_it_back():
    edges, where = package_graph()
    cycle = find_cycle(edges)
    if cycle:
        lines = [f"{a} -> {b}: {where[(a, b)][0]}" for a, b in zip(cycle, cycle[1:])]
        pytest.fail("package import cycle " + " -> ".join(cycle) + "\n" + "\n".join(lines))


def test_evaluate_is_at_the_top_of_the_library():
    """Only the command line, the demo and benchmarks build on evaluate."""
    edges, where = package_graph()
    users = sorted(p for p, targets in edges.items() if "evaluate" in targets)
    assert set(users) <= {"cli", "demo"}, {u: where[(u, "evaluate")] for u in users}
