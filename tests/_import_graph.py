"""The import graph of ``thunes/``, read from the source (AST), for the architecture tests.

Every ``import``/``from ... import`` of a ``thunes`` module counts, at module level or inside a function
(a deferred import is still a dependency: it only moves the failure to run time). Imports under
``if TYPE_CHECKING:`` are left out: they never run, so they make no cycle and load nothing.
``from thunes.a import b`` is an edge to ``thunes.a.b`` when ``b`` is a submodule, else to ``thunes.a``.
``from thunes import __version__`` is no edge: the root package is the public facade (it loads
``thunes.backtest`` lazily for ``thunes.backtest_strategy``), and reading the version constant does not
depend on that facade.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "thunes"


def module_names(root: Path = ROOT) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file of the package."""
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """``{module: modules of thunes it imports}`` (every module of the package is a key)."""
    modules = module_names(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif node.level == 0 and node.module == "thunes" and all(
                alias.name == "__version__" for alias in node.names
            ):
                continue
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = []
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                while target and target not in modules:  # `import thunes.a.b.Name` style: nearest module
                    target = target.rpartition(".")[0]
                if target and target != name and target.split(".")[0] == "thunes":
                    graph[name].add(target)
    return graph


def layer_of(module: str) -> str:
    """The package a module belongs to: ``thunes.optimize.study`` -> ``optimize``; ``thunes`` -> itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "thunes"


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    packages: dict[str, set[str]] = defaultdict(set)
    for src, targets in graph.items():
        packages[layer_of(src)]
        for target in targets:
            if layer_of(target) != layer_of(src):
                packages[layer_of(src)].add(layer_of(target))
    return dict(packages)


def strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The cycles of a graph, as its strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[frozenset[str]] = []
    counter = 0

    def connect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            members = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                members.add(top)
                if top == node:
                    break
            if len(members) > 1:
                components.append(frozenset(members))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def shortest_cycle(graph: dict[str, set[str]], members: frozenset[str]) -> list[str]:
    """One shortest cycle inside a strongly connected component, to name it in a failure message."""
    best: list[str] = []
    for start in sorted(members):
        parents: dict[str, str | None] = {start: None}
        frontier = [start]
        found = None
        while frontier and found is None:
            nxt = []
            for node in frontier:
                for succ in sorted(graph.get(node, ()) & members):
                    if succ == start:
                        found = node
                        break
                    if succ not in parents:
                        parents[succ] = node
                        nxt.append(succ)
                if found is not None:
                    break
            frontier = nxt
        if found is not None:
            path = [found]
            while parents[path[-1]] is not None:
                path.append(parents[path[-1]])  # type: ignore[arg-type]
            cycle = [*reversed(path), start]
            if not best or len(cycle) < len(best):
                best = cycle
    return best
