"""No import cycles among ecocascade's modules: each part can be imported (and understood) on
its own. Function-level (lazy) imports count too; ``if TYPE_CHECKING:`` imports do not."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ecocascade"


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def import_graph() -> dict[str, set[str]]:
    """Module → the ecocascade modules it imports, including the packages that importing a
    submodule runs (``import a.b.c`` runs ``a/__init__`` and ``a/b/__init__``)."""
    modules = module_names()

    def owner(name: str) -> str | None:
        parts = name.split(".")
        while parts and ".".join(parts) not in modules:
            parts.pop()
        return ".".join(parts) or None

    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: list[str] = []
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets += [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets += [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for target in targets:
            found = owner(target) if target.startswith("ecocascade") else None
            if found is None:
                continue
            parts = found.split(".")
            for i in range(1, len(parts) + 1):
                step = ".".join(parts[:i])
                if step != module and not module.startswith(step + "."):
                    graph[module].add(step)
    return graph


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        found += _imports(node)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(graph) | set(module_names())):
        if node not in index:
            visit(node)
    return found


def test_no_module_of_ecocascade_imports_itself_through_others() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    pair = {"ecocascade.a": {"ecocascade.b"}, "ecocascade.b": {"ecocascade.a"}}
    assert ["ecocascade.a", "ecocascade.b"] in cycles(pair)
    graph = import_graph()
    graph["ecocascade.types"].add("ecocascade.controller.cascade")  # cascade imports types
    found = cycles(graph)
    assert any({"ecocascade.types", "ecocascade.controller.cascade"} <= set(c) for c in found)
