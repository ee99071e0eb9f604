"""Parameter decay: a falling rolling Sharpe raises the flag alerts read."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from thunes.core.candles import candles_frame
from thunes.core.errors import InsufficientData
from thunes.optimize.decay import check_decay, decay_path, read_decay_flag, rolling_sharpe, write_decay_flag
from thunes.strategies import get_strategy


def _market(trend_up: int, trend_down: int) -> pd.DataFrame:
    """A market that rises steadily (with small wiggles) and then falls steadily."""
    rng = np.random.default_rng(0)
    steps = np.r_[np.full(trend_up, 0.002), np.full(trend_down, -0.002)] + rng.normal(0, 0.004, trend_up + trend_down)
    close = 100.0 * np.exp(np.cumsum(steps))
    open_ = np.r_[100.0, close[:-1]]
    ts = 1_700_000_000_000 + np.arange(close.size, dtype=np.int64) * 3_600_000
    return candles_frame(ts, open_, np.maximum(open_, close) * 1.001, np.minimum(open_, close) * 0.999, close,
                         np.full(close.size, 5.0))


def test_rolling_sharpe_by_hand() -> None:
    r = pd.Series([0.01, -0.005, 0.02, 0.0, 0.01])

    out = rolling_sharpe(r, 3, 365.0)

    w = np.array([-0.005, 0.02, 0.0])
    assert out.iloc[:2].isna().all()
    assert out.iloc[3] == pytest.approx(w.mean() / w.std(ddof=1) * math.sqrt(365))
    assert rolling_sharpe(pd.Series([0.0] * 5), 3, 365.0).iloc[-1] == 0.0


def test_decay_is_flagged_when_the_trend_strategy_stops_working(tmp_path) -> None:  # noqa: ANN001
    strategy = get_strategy("sma_cross")(fast=5, slow=30)
    good = _market(1500, 0)
    bad = _market(1000, 500)

    healthy = check_decay(good, strategy, window_bars=300, min_sharpe=1.0)
    decayed = check_decay(bad, strategy, window_bars=300, min_sharpe=1.0)

    assert healthy.latest_sharpe > 1.0 and not healthy.decayed
    assert decayed.latest_sharpe < 1.0 and decayed.decayed
    path = write_decay_flag(decayed, decay_path(tmp_path, "sma_cross", "BTC/USDT", "1h"))
    flag = read_decay_flag(path)
    assert path.name == "sma_cross_BTCUSDT_1h.json"
    assert flag["decayed"] is True and flag["params"] == {"fast": 5, "slow": 30, "short": False}
    assert flag["latest_sharpe"] == pytest.approx(decayed.latest_sharpe)


def test_decay_needs_a_full_window() -> None:
    with pytest.raises(InsufficientData, match="at least 331 bars"):
        check_decay(_market(200, 0), get_strategy("sma_cross")(fast=5, slow=30), window_bars=300)
