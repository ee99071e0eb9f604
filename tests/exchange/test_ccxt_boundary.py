"""One ccxt boundary (issue 20): ccxt is imported only by the exchange adapter package, and ccxt's
exception classes are mapped onto the THUNES error tree in one function, ``thunes.exchange.errors.translate``.
Everything else (downloads, the live trader, the stream ingest) sees ``thunes.core.errors`` types only."""

from __future__ import annotations

import ast
from pathlib import Path

import thunes

ROOT = Path(thunes.__file__).parent
ADAPTER = {"exchange/ccxt_adapter.py", "exchange/errors.py", "exchange/streams.py"}
#: ccxt exceptions the adapter may name itself: the base class (always handed to translate) and the
#: clock-drift error it resyncs on before translating.
ALLOWED_OUTSIDE_TRANSLATE = {"BaseError", "InvalidNonce"}


def _modules() -> list[tuple[str, ast.Module]]:
    return [(str(p.relative_to(ROOT)), ast.parse(p.read_text())) for p in sorted(ROOT.rglob("*.py"))]


def test_only_the_exchange_adapter_imports_ccxt() -> None:
    importers = set()
    for rel, tree in _modules():
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "ccxt" or n.startswith("ccxt.") for n in names):
                importers.add(rel)
    assert "data/download.py" not in importers
    assert importers <= ADAPTER, f"ccxt imported outside the adapter: {sorted(importers - ADAPTER)}"


def test_ccxt_exceptions_are_classified_only_in_translate() -> None:
    import ccxt

    error_names = {name for name in dir(ccxt) if isinstance(getattr(ccxt, name), type)
                   and issubclass(getattr(ccxt, name), ccxt.BaseError)}
    named = []
    for rel, tree in _modules():
        if rel == "exchange/errors.py":
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
                continue
            if node.value.id == "ccxt" and node.attr in error_names - ALLOWED_OUTSIDE_TRANSLATE:
                named.append(f"{rel}: ccxt.{node.attr}")
    assert named == []
