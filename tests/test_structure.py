"""The package's shape: imports run one way (no cycles, and between subpackages only in the direction each
subpackage's docstring states), and no function runs past a screen."""

from __future__ import annotations

import ast
import re
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
    assert {"vae_hub.hub.repo", "vae_hub.evaluation.classifier", "vae_hub.model.vae"} <= graph.keys()
    assert "vae_hub.hub.cards" in graph["vae_hub.evaluation.classifier"]  # the graph sees real edges
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle)


# the parts of vae_hub, each with what it may import; the root's leaves (checks, cli) import nothing of vae_hub,
# and its entry points (the package itself, the ``python -m vae_hub.evaluate`` / ``vae_hub.onnx`` commands) anything
LEAVES = {"checks", "cli"}
ENTRY_POINTS = {"vae_hub", "vae_hub.evaluate", "vae_hub.onnx"}
SUBPACKAGES = ("files", "model", "data", "training", "hub", "evaluation", "sweep")


def _part(mod: str) -> str:
    return mod.split(".")[1]


def _declared(part: str) -> set[str]:
    """The parts a subpackage's docstring says it may import (its ``May import:`` paragraph)."""
    doc = ast.get_docstring(ast.parse((PACKAGE / part / "__init__.py").read_text())) or ""
    assert "May import:" in doc, f"vae_hub/{part}/__init__.py: the docstring does not say what it may import"
    return set(re.findall(r"``vae_hub\.(\w+)``", doc.split("May import:", 1)[1]))


def test_subpackages_import_only_what_their_docstrings_allow():
    graph = _import_graph()
    parts = {_part(m) for m in graph if m not in ENTRY_POINTS}
    assert parts == LEAVES | set(SUBPACKAGES), f"vae_hub's parts changed: {sorted(parts)}"
    allowed = {p: _declared(p) for p in SUBPACKAGES} | {leaf: set() for leaf in LEAVES}
    wrong = sorted(f"{m} -> {d}" for m, deps in graph.items() if m not in ENTRY_POINTS for d in deps
                   if _part(d) != _part(m) and _part(d) not in allowed[_part(m)])
    assert not wrong, wrong
    # the declared order has no cycle either (a subpackage may not allow one that allows it back)
    assert _cycle({p: allowed[p] for p in allowed}) is None
    assert "vae_hub.model.vae" in graph["vae_hub.hub.repo"]  # the graph sees edges between parts


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


def test_no_function_is_longer_than_a_screen():
    """vae_hub, train.py, the benchmarks and the Space (its app and every module, the tabs' layouts included)."""
    space = ROOT / "space"
    paths = [*PACKAGE.rglob("*.py"), ROOT / "train.py", *(ROOT / "bench").glob("*.py"), *space.glob("*.py"),
             *(space / "vae_space").rglob("*.py")]
    lengths = _function_lengths(paths)
    assert any("space/vae_space/tabs/" in where for _, where in lengths), "no Space functions found"
    too_long = [f"{where} ({n} lines)" for n, where in lengths if n > MAX_FUNCTION_LINES]
    assert not too_long, too_long


# the Space's state, below the request layer: it raises errors.Unavailable, and only the handler layer speaks Gradio
SPACE_STATE = ("engine", "entries", "prepare", "diskcache", "errors")


def test_the_spaces_state_imports_nothing_of_the_request_layer():
    found = {}
    for name in SPACE_STATE:
        tree = ast.parse((ROOT / "space" / "vae_space" / f"{name}.py").read_text())
        mods = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        found[name] = sorted(m for m in mods if m.split(".")[0] in ("gradio", "handler", "guard", "limits", "tabs"))
    assert not any(found.values()), found


def test_no_file_edits_sys_path():
    """vae_hub and vae_space are installed (``pip install -e .``; on a Space they sit beside app.py), and a bench
    script's siblings are on the path because Python puts the script's folder there: nothing edits sys.path."""
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "space").rglob("*.py"), *(ROOT / "bench").glob("*.py"),
             *(ROOT / "tests").glob("*.py"), ROOT / "train.py"]
    edits = [f"{p.relative_to(ROOT)}:{i}" for p in files if "node_modules" not in p.parts
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"sys\.path(\.insert|\.append|\.extend|\[:?0?:?\] =| \+=)", line)]
    assert not edits, edits
