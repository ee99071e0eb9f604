"""Look-ahead audits as a service: recompute a strategy's signals or a feature set on random prefixes of the
candles and report every value that changes once the future is appended (``thunes audit lookahead``; the
API's ``GET /audit/lookahead``; the dashboard's Audit page).

Only registered strategies and named feature sets are audited here: a user strategy given as
``module:Class`` is imported by the CLI alone (a web request never names code to import).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from thunes.core.errors import ConfigError

__all__ = ["MAX_PREFIXES", "MAX_ROWS", "lookahead_audit", "signal_columns"]

MAX_ROWS = 10_000
MAX_PREFIXES = 100


def signal_columns(strategy: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """``candles -> DataFrame`` of the strategy's signal columns (what a look-ahead audit compares)."""

    def fn(frame: pd.DataFrame) -> pd.DataFrame:
        sig = strategy.signals(frame)
        cols = {k: getattr(sig, k) for k in ("entries", "exits", "short_entries", "short_exits", "target")
                if getattr(sig, k) is not None}
        return pd.DataFrame(cols, index=frame.index)

    return fn


def lookahead_audit(settings: Any, *, target: str, symbol: str = "BTC/USDT", timeframe: str = "1h",
                    source: str = "auto", params: dict[str, Any] | None = None, prefixes: int = 20,
                    rows: int = 3000, seed: int = 0) -> dict[str, Any]:
    """Audit ``target`` (a registered strategy name, or ``features[:SET]``) on the last ``rows`` candles."""
    from thunes.data.sources import CandleQuery, load_candles
    from thunes.features import check_prefix_invariance, compute_features
    from thunes.strategies import get_strategy

    if not 1 <= prefixes <= MAX_PREFIXES or not 50 <= rows <= MAX_ROWS:
        raise ConfigError(f"prefixes must be 1..{MAX_PREFIXES} and rows 50..{MAX_ROWS}")
    if target == "features" or target.startswith("features:"):
        set_name = target.partition(":")[2] or "default"

        def fn(f: pd.DataFrame) -> pd.DataFrame:
            return compute_features(f, set_name)

        label = f"feature set {set_name}"
    else:
        strategy = get_strategy(target)(**(params or {}))
        fn, label = signal_columns(strategy), f"strategy {strategy!r}"
    query = CandleQuery(symbol=symbol.upper(), timeframe=timeframe, source=source)  # type: ignore[arg-type]
    loaded = load_candles(query, settings.data)
    frame = loaded.frame.iloc[-rows:]
    report = check_prefix_invariance(fn, frame, n_prefixes=prefixes, seed=seed, name=label)
    return {"target": label, "ok": report.ok, "rows": report.rows, "prefixes": len(report.prefix_lengths),
            "columns": list(report.columns), "bad_columns": list(report.bad_columns),
            "violations": [{"column": v.column, "ts": str(v.ts), "prefix_len": v.prefix_len,
                            "prefix_value": str(v.prefix_value), "full_value": str(v.full_value)}
                           for v in report.violations[:50]],
            "n_violations": len(report.violations), "errors": list(report.errors),
            "candles": loaded.source}
