"""A realistic synthetic market, reproducible by seed.

Used when no real data is available (a fresh clone without ``../shared``) and by the local exchange
when it is started without a replay file. Returns follow a GARCH(1,1) process with Student-t shocks
(volatility clustering and fat tails) and an intraday volatility/volume seasonality; each candle's
high/low come from a simulated sub-bar path so OHLC is internally consistent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from thunes.core.candles import candles_frame
from thunes.core.timeframes import parse_timeframe, utc_ms

__all__ = ["generate_candles"]


def generate_candles(
    n: int,
    *,
    timeframe: str = "1h",
    start: str | int = "2024-01-01",
    start_price: float = 40_000.0,
    annual_vol: float = 0.6,
    seed: int = 7,
    price_decimals: int = 2,
    volume_scale: float = 50.0,
) -> pd.DataFrame:
    """Generate ``n`` candles in the canonical frame (no gaps)."""
    if n <= 0:
        raise ValueError("n must be positive")
    tf = parse_timeframe(timeframe)
    rng = np.random.default_rng(seed)
    start_ms = start if isinstance(start, int) else utc_ms(start)
    ts = start_ms + np.arange(n, dtype="int64") * tf.ms
    bars_per_year = 365 * 86400 / tf.seconds
    target_var = (annual_vol**2) / bars_per_year
    alpha, beta = 0.08, 0.90
    omega = target_var * (1 - alpha - beta)
    dof = 5.0
    # Student-t shocks (fat tails), clipped at 10 sigma so one draw cannot blow up the variance recursion.
    shocks = np.clip(rng.standard_t(dof, size=n) / np.sqrt(dof / (dof - 2)), -10.0, 10.0)
    max_var = 16.0 * target_var
    hour = (ts // 3_600_000) % 24
    season = 1.0 + 0.35 * np.cos((hour - 15) / 24 * 2 * np.pi)  # busier around US/EU overlap
    var = np.empty(n)
    ret = np.empty(n)
    v = target_var
    for i in range(n):
        var[i] = v
        ret[i] = np.sqrt(v) * season[i] * shocks[i]
        v = min(omega + alpha * v * shocks[i] ** 2 + beta * v, max_var)
    close = start_price * np.exp(np.cumsum(ret))
    open_ = np.concatenate(([start_price], close[:-1]))
    # Intrabar excursions scale with the bar's volatility (Brownian-bridge-like range).
    spread = np.sqrt(var) * season * np.abs(rng.normal(0.0, 1.0, size=(2, n))) * 0.8
    high = np.maximum(open_, close) * np.exp(spread[0])
    low = np.minimum(open_, close) * np.exp(-spread[1])
    scale = 10.0**price_decimals
    open_, close = np.round(open_ * scale) / scale, np.round(close * scale) / scale
    high = np.maximum(np.ceil(high * scale) / scale, np.maximum(open_, close))
    low = np.minimum(np.floor(low * scale) / scale, np.minimum(open_, close))
    low = np.maximum(low, 1.0 / scale)
    volume = volume_scale * season * np.exp(rng.normal(0.0, 0.5, size=n)) * (1 + 40 * np.abs(ret))
    volume = np.round(volume, 5)
    return candles_frame(ts, open_, high, low, close, volume)
