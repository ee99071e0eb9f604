"""The package's shape: dependencies point toward ``core``, and no two modules or packages import each other.

The import graph is read from the source (`tests/_import_graph.py`: every import, inside functions too).
Today's known exceptions are listed below, each with why it exists and how it goes away; an entry that no
longer holds fails the test too, so the lists only shrink.
"""

from __future__ import annotations

import pytest
from _import_graph import ROOT, import_graph, layer_of, package_graph, shortest_cycle, strongly_connected

# The layers of /work/shared/STYLE.md, innermost first. A module may import its own layer or any layer
# before it, never one after it. Packages on one line are peers (they may import each other, but a cycle
# between them still fails `test_no_cycle_between_packages`).
LAYERS: list[set[str]] = [
    {"core", "files", "progress"},  # core: types, errors, clock (no I/O); files/progress: leaf helpers
    {"config", "logs"},
    {"data", "exchange"},
    {"features"},
    {"strategies"},
    {"backtest", "reports"},
    {"optimize", "ml"},
    {"execution"},
    {"live", "stream"},
    {"services"},
    {"ops", "api", "cli", "__main__", "thunes"},  # the edges; `thunes` = the root facade (__init__.py)
]
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}

# Imports that point outward (importer -> imported module), to be turned around.
KNOWN_UPWARD: dict[tuple[str, str], str] = {
    ("thunes.strategies.model_signal", "thunes.ml.serving"):
        "the model strategy loads its Forecaster lazily by folder; fix: the strategy receives a loaded "
        "forecaster (ModelSignalStrategy.from_forecaster) from the layer that builds it",
    ("thunes.services.bot", "thunes.ops.metrics"):
        "the bot service feeds the Prometheus metrics; fix: metrics move below services (or a hook)",
}

# Cycles between packages (strongly connected sets of packages); each comes from an edge above.
KNOWN_PACKAGE_CYCLES: dict[frozenset[str], str] = {
    frozenset({"strategies", "ml", "backtest"}): "strategies.model_signal -> ml.serving (see KNOWN_UPWARD)",
    frozenset({"services", "ops"}): "services.bot -> ops.metrics (see KNOWN_UPWARD)",
}

# Cycles between modules (strongly connected sets of modules).
KNOWN_MODULE_CYCLES: dict[frozenset[str], str] = {
    frozenset({"thunes.backtest.engine", "thunes.backtest.report", "thunes.backtest.artifacts"}):
        "the engine builds its report and artifacts, which import engine types; fix: the result types "
        "move to a module of their own",
}

GRAPH = import_graph()


def _upward_edges() -> set[tuple[str, str]]:
    return {(src, dst) for src, targets in GRAPH.items() for dst in targets
            if RANK[layer_of(dst)] > RANK[layer_of(src)]}


def test_every_package_has_a_layer():
    """A new package is placed in LAYERS (and so in the rule) before it can be imported."""
    packages = {layer_of(module) for module in GRAPH}
    assert packages - RANK.keys() == set(), "add the package to LAYERS (and to STYLE.md's tree)"
    assert (ROOT / "core").is_dir() and len(GRAPH) > 100  # the graph was really read


def test_core_imports_nothing_else_from_thunes():
    """``thunes.core`` is the centre: it imports only itself."""
    outside = sorted((src, dst) for src, targets in GRAPH.items() if layer_of(src) == "core"
                     for dst in targets if layer_of(dst) != "core")
    assert outside == []


def test_dependencies_point_toward_core():
    """A module imports its own layer or an inner one (LAYERS), except the listed, explained edges."""
    upward = _upward_edges()
    new = sorted(upward - KNOWN_UPWARD.keys())
    assert new == [], "imports pointing away from core (turn them around): " + ", ".join(
        f"{src} -> {dst}" for src, dst in new)
    fixed = sorted(KNOWN_UPWARD.keys() - upward)
    assert fixed == [], f"no longer imported, remove from KNOWN_UPWARD: {fixed}"


@pytest.mark.parametrize(("level", "known"),
                         [("package", KNOWN_PACKAGE_CYCLES), ("module", KNOWN_MODULE_CYCLES)])
def test_no_import_cycle(level, known):
    """No two packages, and no two modules, import each other (directly or round a loop)."""
    graph = package_graph(GRAPH) if level == "package" else GRAPH
    cycles = set(strongly_connected(graph))
    new = [shortest_cycle(graph, cycle) for cycle in sorted(cycles - known.keys(), key=sorted)]
    assert new == [], f"{level} import cycles: " + "; ".join(" -> ".join(c) for c in new)
    gone = sorted(sorted(cycle) for cycle in known.keys() - cycles)
    assert gone == [], f"{level} cycles that no longer exist, remove them from the known list: {gone}"


def test_the_graph_sees_deferred_imports_and_cycles(tmp_path):
    """The reader itself: a function-level import counts, TYPE_CHECKING imports do not, loops are found."""
    pkg = tmp_path / "thunes"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                             "    from thunes import c\n")
    (pkg / "a" / "x.py").write_text("def f():\n    from thunes.b import y\n")
    (pkg / "b.py").write_text("from .a import x\n")
    graph = import_graph(pkg)
    assert graph["thunes.a.x"] == {"thunes.b"} and graph["thunes.b"] == {"thunes.a.x"}
    assert graph["thunes.a"] == set()
    assert strongly_connected(graph) == [frozenset({"thunes.a.x", "thunes.b"})]
