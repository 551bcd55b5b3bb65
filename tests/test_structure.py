"""The package's shape: imports run one way (no cycles) and no function outside the Space runs past a screen."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / "vae_hub"
MAX_FUNCTION_LINES = 59  # under 60: a function reads in one screen


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """module -> vae_hub modules it imports, at the top or inside a function (a lazy import still runs one way).

    Edges to a package's ``__init__`` are left out: ``from . import __version__`` reads an attribute of the
    package, which is imported before any of its modules."""
    files = {_name(p): p for p in PACKAGE.rglob("*.py")}
    packages = {_name(p) for p in PACKAGE.rglob("__init__.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                anchor = ".".join(base[: len(base) - node.level + 1]) if node.level else ""
                src = ".".join(p for p in (anchor, node.module or "") if p)
                targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in files else src for a in node.names]
            deps |= {t for t in targets if t in files and t not in packages and t != mod}
        graph[mod] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_import_graph_has_no_cycles():
    graph = _import_graph()
    assert {"vae_hub.hub", "vae_hub.classifier", "vae_hub.models"} <= graph.keys()
    assert "vae_hub.cards" in graph["vae_hub.classifier"]  # the graph sees real edges
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _function_lengths(paths: list[Path]) -> list[tuple[int, str]]:
    out = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                out.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(out, reverse=True)


def test_no_function_outside_the_space_is_longer_than_a_screen():
    paths = [*PACKAGE.rglob("*.py"), ROOT / "train.py", *(ROOT / "bench").glob("*.py")]
    lengths = _function_lengths(paths)
    assert lengths, "no functions found"
    too_long = [f"{where} ({n} lines)" for n, where in lengths if n > MAX_FUNCTION_LINES]
    assert not too_long, too_long
