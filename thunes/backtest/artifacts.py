"""Files a run leaves behind in ``settings.backtest.artifacts_dir`` (default ``artifacts/backtest``).

Per run, named by symbol and timeframe: ``stats_BTCUSDT_1h.csv`` (one row: strategy, parameters,
metrics, settings hash), ``trades_BTCUSDT_1h.csv``, ``equity_BTCUSDT_1h.csv`` and
``run_BTCUSDT_1h.json`` (strategy, parameters, options, market filters, metrics and the settings
hash, so a number can always be traced to what produced it). Sweeps write
``sweep_BTCUSDT_1h_<strategy>.csv``. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from thunes.backtest.engine import BacktestResult

__all__ = ["write_artifacts", "write_sweep", "artifact_stem"]


def artifact_stem(symbol: str, timeframe: str) -> str:
    """``BTC/USDT``, ``1h`` -> ``BTCUSDT_1h``."""
    return f"{symbol.replace('/', '').upper()}_{timeframe}"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
    """Write stats/trades/equity CSVs and the run JSON; returns their paths by kind."""
    directory = Path(directory)
    stem = artifact_stem(result.symbol, result.timeframe)
    paths = {
        "stats": directory / f"stats_{stem}.csv",
        "trades": directory / f"trades_{stem}.csv",
        "equity": directory / f"equity_{stem}.csv",
        "run": directory / f"run_{stem}.json",
    }
    row = {"strategy": result.strategy, "symbol": result.symbol, "timeframe": result.timeframe,
           **{f"param_{k}": v for k, v in result.params.items()}, **result.stats,
           "settings_hash": result.settings_hash}
    _atomic_write(paths["stats"], pd.DataFrame([row]).to_csv(index=False))
    _atomic_write(paths["trades"], result.trades.to_csv(index=False))
    _atomic_write(paths["equity"], result.equity.to_frame().to_csv())
    run = {
        "settings_hash": result.settings_hash, "strategy": result.strategy, "params": result.params,
        "symbol": result.symbol, "timeframe": result.timeframe, "options": result.options.to_dict(),
        "market": None if result.market is None else {
            "tick_size": str(result.market.filters.tick_size), "step_size": str(result.market.filters.step_size),
            "min_qty": str(result.market.filters.min_qty), "min_notional": str(result.market.filters.min_notional)},
        "stats": result.stats,
    }
    _atomic_write(paths["run"], json.dumps(_jsonable(run), indent=2, default=str) + "\n")
    return paths


def write_sweep(table: pd.DataFrame, directory: str | Path, *, symbol: str, timeframe: str, strategy: str) -> Path:
    path = Path(directory) / f"sweep_{artifact_stem(symbol, timeframe)}_{strategy}.csv"
    _atomic_write(path, table.to_csv(index=False))
    return path
