"""Every third-party module the package imports is declared, in the core or in the extra that needs it.

A user gets what ``pip install thunes`` (or ``thunes[ml]``) resolves, not the test environment: a module
imported by core code but only present because a test oracle pulled it in (scipy through vectorbt,
scikit-learn through optuna's fANOVA) works in CI and fails for users. The source is scanned, so a new
import cannot slip through.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "thunes"
# Modules whose code is only reached with an extra installed (they say which one when it is missing).
EXTRA_AREAS = {
    "ml": ("thunes/ml/", "thunes/strategies/model_signal.py"),
    "api": ("thunes/api/",),
    "telegram": ("thunes/ops/telegram/",),
    "stream": ("thunes/stream/",),
}


def _requirement_name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_requirement_name(r) for r in project["dependencies"]}
    extras = {name: {_requirement_name(r) for r in reqs} for name, reqs in project["optional-dependencies"].items()}
    return core, extras


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def _third_party(module: str) -> bool:
    return module != "thunes" and module not in sys.stdlib_module_names and module != "__future__"


def test_every_imported_distribution_is_declared_where_it_is_needed():
    core, extras = _declared()
    dists = {m: {d.lower().replace("_", "-") for d in ds} for m, ds in md.packages_distributions().items()}
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        area = next((extra for extra, prefixes in EXTRA_AREAS.items() if rel.startswith(prefixes)), None)
        allowed = core | (extras.get(area, set()) if area else set())
        for module in sorted(m for m in _imports(path) if _third_party(m)):
            owners = dists.get(module)
            if not owners and area is not None and module.lower().replace("_", "-") in extras.get(area, set()):
                continue  # an extra that is not installed here, declared under its own name
            if not owners:
                problems.append(f"{rel}: imports {module!r}, which no installed distribution provides")
                continue
            if not owners & allowed:
                where = f"the core or the [{area}] extra" if area else "the core dependencies"
                problems.append(f"{rel}: imports {module!r} ({', '.join(sorted(owners))}), not declared in {where}")
    assert problems == []
