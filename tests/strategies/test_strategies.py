"""Strategy API: typed parameters, helpful errors, registry, causal signals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from thunes.core.errors import StrategyError
from thunes.strategies import (
    Param,
    Signals,
    Strategy,
    crossed_above,
    crossed_below,
    get_strategy,
    list_strategies,
)


def test_registry_lists_builtins_and_hints_on_typos():
    assert {"sma_cross", "rsi_bollinger"} <= set(list_strategies())
    assert get_strategy("sma_cross").name == "sma_cross"
    with pytest.raises(StrategyError, match="did you mean 'sma_cross'"):
        get_strategy("sma_cros")


def test_params_are_typed_validated_and_read_only():
    cls = get_strategy("sma_cross")
    s = cls(fast="12", slow=60.0)
    assert (s.fast, s.slow) == (12, 60) and isinstance(s.fast, int)
    assert s.params == {"fast": 12, "slow": 60, "short": False}
    assert s.with_params(fast=5).params["fast"] == 5 and s.fast == 12
    with pytest.raises(StrategyError, match=r"unknown parameter.*'fsat' \(did you mean 'fast'\?\)"):
        cls(fsat=3)
    with pytest.raises(StrategyError, match=r"'fast' = 1 is below its range \[2, 200\]"):
        cls(fast=1)
    with pytest.raises(StrategyError, match="expects int"):
        cls(fast=2.5)
    with pytest.raises(StrategyError, match="fast < slow"):
        cls(fast=50, slow=20)
    with pytest.raises(StrategyError, match="read-only"):
        s.fast = 3


def test_param_space_and_grid_for_optimisers():
    space = get_strategy("sma_cross").param_space()
    assert (space["fast"].type, space["fast"].low, space["fast"].high) == (int, 2, 200)
    assert Param(int, default=5, low=2, high=10, step=4).grid() == [2, 6, 10]
    assert get_strategy("rsi_bollinger").param_space()["bb_k"].grid() == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]


def test_smallest_strategy_is_a_dozen_lines(btc_1h):
    class Breakout(Strategy):
        n = Param(int, default=20, low=2, high=200)

        @property
        def warmup(self) -> int:
            return self.n + 1

        def signals(self, candles: pd.DataFrame) -> Signals:
            hi = candles["high"].rolling(self.n).max().shift(1).rename(None)  # prior bars only
            return Signals(entries=candles["close"] > hi, exits=candles["close"] < candles["close"].rolling(self.n).mean())

    assert Breakout.name == "breakout"
    arrays = Breakout(n=10).signals(btc_1h.frame.tail(500)).arrays(btc_1h.frame.tail(500).index)
    assert arrays.entries.any() and arrays.exits.any()


def test_target_signals_become_level_events():
    idx = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC")
    a = Signals(target=pd.Series([np.nan, 0.5, 0.0, -1.0], index=idx)).arrays(idx)
    assert a.entries.tolist() == [False, True, False, False]
    assert a.exits.tolist() == [False, False, True, True]
    assert a.short_entries.tolist() == [False, False, False, True]
    assert a.size_scale.tolist() == [1.0, 0.5, 0.0, 1.0]
    with pytest.raises(StrategyError, match=r"\[-1, 1\]"):
        Signals(target=pd.Series([2.0, 0, 0, 0], index=idx)).arrays(idx)


@pytest.mark.parametrize("name", ["sma_cross", "rsi_bollinger"])
def test_signals_are_causal_on_prefixes(btc_1h, name):
    # Values at bar t never change when the future is appended.
    candles = btc_1h.frame.tail(1500)
    strategy = get_strategy(name)()
    full = strategy.signals(candles).arrays(candles.index)
    for cut in (strategy.warmup + 5, 700, 1200):
        part = strategy.signals(candles.iloc[:cut]).arrays(candles.index[:cut])
        for field in ("entries", "exits", "short_entries", "short_exits"):
            np.testing.assert_array_equal(getattr(part, field), getattr(full, field)[:cut], err_msg=f"{field} @ {cut}")


def test_builtins_produce_trades_on_sample_data(btc_1h):
    candles = btc_1h.frame.tail(3000)
    for name in ("sma_cross", "rsi_bollinger"):
        a = get_strategy(name)().signals(candles).arrays(candles.index)
        # Golden entry counts on the last 3000 candles of each data source.
        assert a.entries.sum() == {"sma_cross": (43, 41), "rsi_bollinger": (61, 78)}[name][0 if btc_1h.real else 1], name


def test_crossings_on_a_hand_made_series():
    idx = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")
    a = pd.Series([np.nan, 1.0, 3.0, 3.0, 1.0, 2.0], index=idx)
    b = pd.Series([1.0, 2.0, 2.0, 3.0, 3.0, 2.0], index=idx)
    assert crossed_above(a, b).tolist() == [False, False, True, False, False, False]  # touching is no cross
    assert crossed_below(a, b).tolist() == [False, False, False, False, True, False]  # NaN before: no cross
    assert crossed_above(a, 2.5).tolist() == [False, False, True, False, False, False]
    assert crossed_below(a, 2.5).tolist() == [False, False, False, False, True, False]
    assert crossed_above(a, b).index.equals(idx) and crossed_above(a, b).dtype == bool


def test_refuse_entries_travels_with_events_or_a_target_and_defaults_to_nothing_vetoed():
    idx = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC", name="ts")
    veto = pd.Series([False, True, None, False], index=idx, dtype="boolean")  # unknown counts as no veto
    events = Signals(entries=pd.Series([True, True, False, False], index=idx), refuse_entries=veto)
    assert events.arrays(idx).refuse_entries.tolist() == [False, True, False, False]
    target = Signals.from_target(pd.Series([1.0, 1.0, 0.0, np.nan], index=idx), refuse_entries=veto)
    assert target.arrays(idx).refuse_entries.tolist() == [False, True, False, False]
    plain = Signals(entries=pd.Series([True, False, False, False], index=idx)).arrays(idx)
    assert plain.refuse_entries.tolist() == [False] * 4
