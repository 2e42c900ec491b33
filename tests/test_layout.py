"""The package's shape (issue 43): imports go one way, with no cycle, and nothing imports the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "src" / "hificodec"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every hificodec module -> the hificodec modules it imports (at the top or in functions)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hificodec"):
                for alias in node.names:  # `from hificodec.x import y`: y may be a module of x
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("hificodec")}
        graph[name] = {t for t in targets if t != name and t != "hificodec"}  # the package's own __init__: lazy API
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(path: list[str]) -> list[str] | None:
        state[path[-1]] = 1
        for nxt in sorted(graph.get(path[-1], ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(path + [nxt])):
                return cycle
        state[path[-1]] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit([module])):
            return cycle
    return None


def test_no_import_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check itself
    assert find_cycle(import_graph()) is None


def test_layers_import_one_way():
    """The library (format, imaging, nn, zoo, codec) never imports training, evaluation or the
    CLI; training and evaluation never import the CLI."""
    graph = import_graph()
    library = ("hificodec.format", "hificodec.imaging", "hificodec.nn", "hificodec.zoo", "hificodec.codec",
               "hificodec.refine", "hificodec.tiling", "hificodec.runtime", "hificodec.metrics")
    for module, targets in graph.items():
        if not module.startswith("hificodec.cli"):
            assert not any(t.startswith("hificodec.cli") for t in targets), (module, targets)
        if module.startswith(library):
            assert not any(t.startswith(("hificodec.training", "hificodec.evaluation")) for t in targets), (module, targets)
    assert "hificodec.codec" in graph["hificodec.cli.app"] and "hificodec.nn.models" in graph["hificodec.codec"]
