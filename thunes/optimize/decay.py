"""Parameter decay: do the deployed parameters still work on recent data?

Why: parameters chosen on history stop working as markets change. This check re-runs the deployed
parameters (fees, slippage and risk limits on) over the most recent candles, computes the annualised
Sharpe ratio over a rolling window of ``window_bars`` bars, and flags decay when the latest value is
below the threshold (``settings.optimize.decay_min_sharpe``, default 1.0). The flag is written as a small
JSON file (``artifacts/optuna/decay/<strategy>_<SYMBOL>_<tf>.json``) that alerting reads later.

Deployed parameters are recorded by ``thunes optimize`` when its recommendation is DEPLOY
(``artifacts/optuna/deployed/<strategy>_<SYMBOL>_<tf>.json``); ``thunes optimize decay`` reads them unless
parameters are given on the command line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from thunes.backtest.metrics import bars_per_year
from thunes.core.errors import ConfigError, InsufficientData
from thunes.optimize import _evaluate
from thunes.strategies import Strategy

__all__ = [
    "DecayReport",
    "check_decay",
    "decay_path",
    "deployed_path",
    "read_decay_flag",
    "read_deployed",
    "rolling_sharpe",
    "series_key",
    "write_decay_flag",
    "write_deployed",
    "write_json_atomic",
]


def series_key(strategy: str, symbol: str, timeframe: str) -> str:
    return f"{strategy}_{symbol.replace('/', '').upper()}_{timeframe}"


def deployed_path(artifacts_dir: str | Path, strategy: str, symbol: str, timeframe: str) -> Path:
    return Path(artifacts_dir) / "deployed" / f"{series_key(strategy, symbol, timeframe)}.json"


def decay_path(artifacts_dir: str | Path, strategy: str, symbol: str, timeframe: str) -> Path:
    return Path(artifacts_dir) / "decay" / f"{series_key(strategy, symbol, timeframe)}.json"


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> Path:
    """Write JSON via a temporary file and a rename, so a reader never sees half a file."""
    from thunes.files import atomic_write

    return atomic_write(path, json.dumps(payload, indent=2, sort_keys=True, default=str))


def write_deployed(path: Path, *, strategy: str, symbol: str, timeframe: str, params: Mapping[str, Any],
                   study: str, evidence: Mapping[str, Any]) -> Path:
    return write_json_atomic(path, {
        "strategy": strategy, "symbol": symbol, "timeframe": timeframe, "params": dict(params),
        "study": study, "deployed_at": datetime.now(UTC).isoformat(), "evidence": dict(evidence),
    })


def read_deployed(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"no deployed parameters at {path}: run `thunes optimize` until it recommends "
                          "DEPLOY, or give --param NAME=VALUE")
    return json.loads(path.read_text())


def rolling_sharpe(returns: pd.Series, window: int, periods_per_year: float) -> pd.Series:
    """Annualised Sharpe ratio over the trailing ``window`` returns (sample std; 0 where flat; NaN before
    the first full window)."""
    if window < 2:
        raise ConfigError(f"rolling Sharpe window must be >= 2 bars, got {window}")
    mean = returns.rolling(window).mean()
    std = returns.rolling(window).std(ddof=1)
    # Rolling sums leave ~1e-19 noise on a flat stretch: treat it as flat, not as a huge Sharpe.
    flat = std <= 1e-12
    out = (mean / std.where(~flat, np.nan)) * math.sqrt(periods_per_year)
    return out.where(~flat | mean.isna(), 0.0).rename("rolling_sharpe")


@dataclass(frozen=True, slots=True, kw_only=True)
class DecayReport:
    """The outcome of one decay check; ``decayed`` is the flag alerts act on."""

    strategy: str
    symbol: str
    timeframe: str
    params: dict[str, Any]
    window_bars: int
    min_sharpe: float
    latest_sharpe: float
    worst_sharpe: float
    decayed: bool
    start: pd.Timestamp
    end: pd.Timestamp
    checked_at: str
    rolling: pd.Series = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy, "symbol": self.symbol, "timeframe": self.timeframe,
            "params": self.params, "window_bars": self.window_bars, "min_sharpe": self.min_sharpe,
            "latest_sharpe": self.latest_sharpe,
            "worst_sharpe": self.worst_sharpe, "decayed": self.decayed, "start": self.start.isoformat(),
            "end": self.end.isoformat(), "checked_at": self.checked_at,
        }


def check_decay(
    candles: pd.DataFrame,
    strategy: Strategy,
    *,
    window_bars: int,
    min_sharpe: float = 1.0,
    options: Any = None,
    symbol: str = "BTC/USDT",
    timeframe: str = "1h",
) -> DecayReport:
    """Backtest ``strategy`` over ``candles`` (the recent data) and flag decay when the latest rolling
    Sharpe ratio over ``window_bars`` bars is below ``min_sharpe``."""
    needed = window_bars + int(strategy.warmup)
    if len(candles) < needed:
        raise InsufficientData(
            f"decay check needs at least {needed} bars (window {window_bars} + warmup {strategy.warmup}), "
            f"got {len(candles)}"
        )
    opts = options if options is not None else _evaluate.make_options({})
    stats, equity, _ = _evaluate.run(candles, strategy, opts, symbol, timeframe)
    returns = _evaluate.bar_returns(equity, float(stats["initial_cash"]))
    roll = rolling_sharpe(returns, window_bars, bars_per_year(timeframe)).iloc[int(strategy.warmup):].dropna()
    latest = float(roll.iloc[-1])
    return DecayReport(
        strategy=strategy.name, symbol=symbol, timeframe=timeframe, params=strategy.params,
        window_bars=window_bars, min_sharpe=float(min_sharpe), latest_sharpe=latest,
        worst_sharpe=float(roll.min()), decayed=bool(latest < min_sharpe), start=candles.index[0],
        end=candles.index[-1], checked_at=datetime.now(UTC).isoformat(), rolling=roll,
    )


def write_decay_flag(report: DecayReport, path: Path) -> Path:
    """Write the flag for alerting (atomically): ``{"decayed": true, "latest_sharpe": …, …}``."""
    return write_json_atomic(path, report.as_dict())


def read_decay_flag(path: Path) -> dict[str, Any] | None:
    """The last decay check written at ``path``, or None when none was run."""
    return json.loads(path.read_text()) if path.exists() else None
