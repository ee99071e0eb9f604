"""Files a run leaves behind in ``settings.backtest.artifacts_dir`` (default ``artifacts/backtest``).

Per run, named by symbol, timeframe, strategy and parameters (:func:`run_stem`, e.g.
``BTCUSDT_1h_sma_cross_1a2b3c4d``, the last part the first 8 hex digits of a hash of the sorted
parameters), so runs of other strategies or parameters never overwrite each other:
``stats_<stem>.csv`` (one row: strategy, parameters, metrics, settings hash), ``trades_<stem>.csv``,
``equity_<stem>.csv`` and ``run_<stem>.json`` (strategy, parameters, options, market filters, metrics
and the settings hash, so a number can always be traced to what produced it); the HTML report is
``report_<stem>.html``. The same run written again replaces its own files. Sweeps write
``sweep_BTCUSDT_1h_<strategy>.csv``. Files are written atomically (:func:`thunes.files.atomic_write`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from thunes.backtest.engine import BacktestResult
from thunes.files import atomic_write

__all__ = ["artifact_stem", "params_hash", "run_stem", "write_artifacts", "write_sweep"]


def artifact_stem(symbol: str, timeframe: str) -> str:
    """``BTC/USDT``, ``1h`` -> ``BTCUSDT_1h``."""
    return f"{symbol.replace('/', '').upper()}_{timeframe}"


def params_hash(params: dict[str, Any]) -> str:
    """First 8 hex digits of the SHA-256 of the parameters, sorted by name (order-independent)."""
    text = json.dumps(_jsonable(params), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def run_stem(result: BacktestResult) -> str:
    """``BTCUSDT_1h_sma_cross_1a2b3c4d``: symbol, timeframe, strategy and :func:`params_hash` of a run."""
    strategy = re.sub(r"[^A-Za-z0-9_.+-]", "-", result.strategy) or "strategy"
    return f"{artifact_stem(result.symbol, result.timeframe)}_{strategy}_{params_hash(result.params)}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


def write_artifacts(result: BacktestResult, directory: str | Path) -> dict[str, Path]:
    """Write stats/trades/equity CSVs and the run JSON (named by :func:`run_stem`); returns their paths by kind."""
    directory = Path(directory)
    stem = run_stem(result)
    paths = {
        "stats": directory / f"stats_{stem}.csv",
        "trades": directory / f"trades_{stem}.csv",
        "equity": directory / f"equity_{stem}.csv",
        "run": directory / f"run_{stem}.json",
    }
    row = {"strategy": result.strategy, "symbol": result.symbol, "timeframe": result.timeframe,
           **{f"param_{k}": v for k, v in result.params.items()}, **result.stats,
           "settings_hash": result.settings_hash}
    atomic_write(paths["stats"], pd.DataFrame([row]).to_csv(index=False))
    atomic_write(paths["trades"], result.trades.to_csv(index=False))
    atomic_write(paths["equity"], result.equity.to_frame().to_csv())
    run = {
        "settings_hash": result.settings_hash, "strategy": result.strategy, "params": result.params,
        "symbol": result.symbol, "timeframe": result.timeframe, "options": result.options.to_dict(),
        "market": None if result.market is None else {
            "tick_size": str(result.market.filters.tick_size), "step_size": str(result.market.filters.step_size),
            "min_qty": str(result.market.filters.min_qty), "min_notional": str(result.market.filters.min_notional)},
        "stats": result.stats,
    }
    atomic_write(paths["run"], json.dumps(_jsonable(run), indent=2, default=str) + "\n")
    return paths


def write_sweep(table: pd.DataFrame, directory: str | Path, *, symbol: str, timeframe: str, strategy: str) -> Path:
    path = Path(directory) / f"sweep_{artifact_stem(symbol, timeframe)}_{strategy}.csv"
    atomic_write(path, table.to_csv(index=False))
    return path
