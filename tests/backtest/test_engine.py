"""Specification of the engine: next-bar execution, fees/slippage, stops, filters, risk limits."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from thunes.backtest import (
    BacktestOptions,
    FixedQuote,
    FixedSlippage,
    FractionOfEquity,
    RiskLimits,
    VolatilitySlippage,
    VolTarget,
    VolumeSlippage,
    default_market,
    run_backtest,
)
from thunes.config import BacktestSettings, RiskSettings
from thunes.core.candles import candles_frame
from thunes.core.errors import ConfigError
from thunes.strategies import Signals, get_strategy

HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC

# No fees, no slippage, no filters, no risk: the bare mechanics.
BARE = BacktestOptions(taker_fee_bps=0, maker_fee_bps=0, slippage=FixedSlippage(bps=0), risk=None,
                       apply_filters=False, sizing=FixedQuote(amount=1000))


def make_candles(opens, highs=None, lows=None, closes=None, ts=None):
    o = np.asarray(opens, dtype=float)
    h = np.asarray(highs if highs is not None else o * 1.001)
    lo = np.asarray(lows if lows is not None else o * 0.999)
    c = np.asarray(closes if closes is not None else o)
    t = np.asarray(ts if ts is not None else T0 + np.arange(len(o)) * HOUR)
    return candles_frame(t, o, h, lo, c, np.full(len(o), 10.0))


def events(candles, entries=(), exits=()):
    n = len(candles)
    e = np.zeros(n, bool)
    x = np.zeros(n, bool)
    e[list(entries)] = True
    x[list(exits)] = True
    return Signals(entries=pd.Series(e, index=candles.index), exits=pd.Series(x, index=candles.index))


SMA = get_strategy("sma_cross")()


def run(candles, signals, options=BARE, **kw):
    return run_backtest(candles, SMA, options=options, signals=signals, **kw)


def test_signal_fills_at_next_bar_open():
    candles = make_candles([100, 101, 102, 103, 104, 105])
    result = run(candles, events(candles, entries=[1], exits=[3]))
    trade = result.trades.iloc[0]
    assert (trade.entry_bar, trade.exit_bar) == (2, 4)
    assert trade.entry_price == 102.0 and trade.exit_price == 104.0
    assert trade.entry_ts == candles.index[2] and trade.exit_reason == "signal"


def test_signal_on_last_bar_never_trades():
    candles = make_candles([100, 101, 102, 103])
    result = run(candles, events(candles, entries=[3]))
    assert result.trades.empty
    assert result.stats["final_equity"] == 10_000.0


def test_open_trade_is_marked_at_last_close():
    candles = make_candles([100, 100, 110, 120], closes=[100, 100, 110, 125])
    result = run(candles, events(candles, entries=[0]))
    trade = result.trades.iloc[0]
    assert trade.exit_reason == "open" and pd.isna(trade.exit_ts)
    assert trade.qty == pytest.approx(10.0)
    assert result.stats["final_equity"] == pytest.approx(10_000 + 10 * 25)


def test_fee_and_slippage_arithmetic_hand_computed():
    # Arrange: buy 1000 quote at open 100 with 5 bps slippage and 10 bps taker fee, sell at open 110.
    candles = make_candles([100, 100, 105, 110, 110])
    options = BARE.replace(taker_fee_bps=10, slippage=FixedSlippage(bps=5))
    # Act
    trade = run(candles, events(candles, entries=[0], exits=[2]), options).trades.iloc[0]
    # Assert (hand-computed)
    buy = 100 * 1.0005                       # 100.05
    qty = 1000 / buy                         # 9.99500249875...
    sell = 110 * 0.9995                      # 109.945
    fees = 1000 * 0.001 + qty * sell * 0.001  # 1.0 + 1.09890...
    assert trade.entry_price == pytest.approx(100.05)
    assert trade.exit_price == pytest.approx(109.945)
    assert trade.fees == pytest.approx(fees)
    assert trade.fees == pytest.approx(2.098900549725137)
    assert trade.pnl == pytest.approx(qty * (sell - buy) - fees)
    assert trade.pnl == pytest.approx(96.80164917541238)


def test_fraction_of_equity_keeps_fees_inside_the_budget():
    candles = make_candles([50, 50, 50])
    options = BARE.replace(sizing=FractionOfEquity(fraction=1.0), taker_fee_bps=10)
    result = run(candles, events(candles, entries=[0]), options)
    trade = result.trades.iloc[0]
    assert trade.qty * 50 + trade.fees == pytest.approx(10_000)
    assert trade.qty == pytest.approx(10_000 / (50 * 1.001))


def test_stop_wins_when_stop_and_target_are_hit_in_the_same_bar():
    # Bar 2 ranges 94..106: both the 5 % stop (95) and the 5 % target (105) are inside it.
    candles = make_candles([100, 100, 100, 100], highs=[100, 101, 106, 101], lows=[100, 99, 94, 99])
    options = BARE.replace(stop_loss=0.05, take_profit=0.05)
    trade = run(candles, events(candles, entries=[0]), options).trades.iloc[0]
    assert trade.exit_reason == "stop_loss"
    assert trade.exit_bar == 2 and trade.exit_price == pytest.approx(95.0)


def test_take_profit_fills_at_its_level_with_the_maker_fee():
    candles = make_candles([100, 100, 100, 100], highs=[100, 101, 111, 101], lows=[100, 99, 99.5, 99])
    options = BARE.replace(take_profit=0.10, taker_fee_bps=10, maker_fee_bps=2)
    trade = run(candles, events(candles, entries=[0]), options).trades.iloc[0]
    assert trade.exit_reason == "take_profit" and trade.exit_price == pytest.approx(110.0)
    assert trade.fees == pytest.approx(1000 * 0.001 + 10 * 110 * 0.0002)


def test_stop_checked_on_the_entry_bar_and_gap_through_fills_at_the_open():
    # Entry bar 1 dips to 96 (stop 97 at 3 %): stopped on its own entry bar.
    candles = make_candles([100, 100, 100], lows=[100, 96, 99])
    trade = run(candles, events(candles, entries=[0]), BARE.replace(stop_loss=0.03)).trades.iloc[0]
    assert (trade.entry_bar, trade.exit_bar, trade.exit_reason) == (1, 1, "stop_loss")
    assert trade.exit_price == pytest.approx(97.0)
    # The open of bar 3 gaps below the stop: filled at that open, not at the stop.
    candles = make_candles([100, 100, 100, 90, 90], lows=[100, 99, 99, 89, 89])
    trade = run(candles, events(candles, entries=[0]), BARE.replace(stop_loss=0.03)).trades.iloc[0]
    assert (trade.exit_bar, trade.exit_price, trade.exit_reason) == (3, 90.0, "stop_loss")


def test_trailing_stop_ratchets_after_the_bar_not_within_it():
    # Entry at 100, 10 % trail. Bar 2 runs to 120 then dips to 107: the stop is still 90 during bar 2
    # (pessimistic), becomes 108 after it, and bar 3's low of 107 hits it.
    candles = make_candles([100, 100, 110, 112, 112], highs=[100, 101, 120, 113, 113],
                           lows=[100, 99, 107, 107, 111])
    trade = run(candles, events(candles, entries=[0]), BARE.replace(trailing_stop=0.10)).trades.iloc[0]
    assert (trade.exit_bar, trade.exit_reason) == (3, "trailing_stop")
    assert trade.exit_price == pytest.approx(108.0)


def test_short_side_mirrors_long():
    candles = make_candles([100, 100, 90, 80])
    n = len(candles)
    s = Signals(entries=pd.Series(False, index=candles.index),
                short_entries=pd.Series([True] + [False] * (n - 1), index=candles.index),
                short_exits=pd.Series([False, True, False, False], index=candles.index))
    trade = run(candles, s, BARE.replace(allow_short=True)).trades.iloc[0]
    assert trade.side == "short" and trade.exit_price == 90.0
    assert trade.pnl == pytest.approx(10 * (100 - 90))
    assert run(candles, s, BARE).trades.empty  # spot: shorts need allow_short


def test_quantity_rounded_down_to_the_lot_step():
    candles = make_candles([30_000.123] * 4)
    options = BARE.replace(apply_filters=True, sizing=FixedQuote(amount=100))
    trade = run(candles, events(candles, entries=[0]), options, market=default_market("BTC/USDT")).trades.iloc[0]
    # 100 / 30000.13 = 0.0033333 -> down to the step 0.00001; the buy price is rounded up to the tick.
    assert Decimal(repr(float(trade.qty))) == Decimal("0.00333")
    assert Decimal(repr(float(trade.entry_price))) == Decimal("30000.13")
    # The floats are the decimals the exchange writes: 592 lots is 0.00592, not 592 x 0.00001 =
    # 0.005920000000000001 (which a trade list would show).
    candles = make_candles([16_869.49] * 4)
    trade = run(candles, events(candles, entries=[0]), options, market=default_market("BTC/USDT")).trades.iloc[0]
    assert repr(float(trade.qty)) == "0.00592" and repr(float(trade.entry_price)) == "16869.49"


def test_order_below_min_notional_is_refused_not_rounded_up():
    candles = make_candles([30_000.0] * 4)
    options = BARE.replace(apply_filters=True, sizing=FixedQuote(amount=9.99))
    result = run(candles, events(candles, entries=[0]), options, market=default_market("BTC/USDT"))
    assert result.trades.empty
    assert result.stats["refused_filters"] == 1


def test_risk_caps_size_by_position_quote_and_loss_per_trade():
    candles = make_candles([100.0] * 4)
    limits = RiskLimits(max_position_quote=500, max_loss_per_trade=5, default_stop_pct=0.02, cool_down_minutes=0)
    # loss at the 2 % default stop <= 5 -> notional <= 250 (tighter than the 500 cap)
    result = run(candles, events(candles, entries=[0]), BARE.replace(risk=limits))
    trade = result.trades.iloc[0]
    assert trade.qty * trade.entry_price == pytest.approx(250.0)
    assert result.stats["capped_loss_per_trade"] == 1 and result.stats["capped_position_quote"] == 0
    assert trade.exit_reason == "open"  # the 2 % default stop sizes the trade; it is not placed (as live)
    # a 10 % stop: loss cap allows 50 quote
    trade = run(candles, events(candles, entries=[0]), BARE.replace(risk=limits, stop_loss=0.10)).trades.iloc[0]
    assert trade.qty * trade.entry_price == pytest.approx(50.0)


def test_cool_down_after_a_loss_refuses_the_next_entry():
    # Loss: buy 100 (bar 1), sell 90 (bar 2). New entry signal on bar 2 -> bar 3 (1 h later) refused
    # by a 2 h cool-down; the one on bar 4 -> bar 5 (3 h after the exit) goes through.
    candles = make_candles([100, 100, 90, 90, 90, 90, 90])
    limits = RiskLimits(max_position_quote=1e9, max_loss_per_trade=1e9, max_daily_loss=1e9, cool_down_minutes=120)
    result = run(candles, events(candles, entries=[0, 2, 4], exits=[1]), BARE.replace(risk=limits))
    assert list(result.trades.entry_bar) == [1, 5]
    assert result.stats["refused_risk"] == 1 and result.stats["refused_cool_down"] == 1


def test_daily_loss_kill_switch_stays_on_for_the_rest_of_the_run():
    # 1 h bars from 20:00; a loss of 100 on the first trade trips a 50 kill-switch. As live, where only
    # an operator switches it off, it stays on after midnight (bar 4 = 00:00): every later entry is refused.
    ts = T0 - 4 * HOUR + np.arange(7) * HOUR
    candles = make_candles([100, 100, 90, 90, 90, 90, 90], ts=ts)
    limits = RiskLimits(max_position_quote=1e9, max_loss_per_trade=1e9, max_daily_loss=50, cool_down_minutes=0)
    result = run(candles, events(candles, entries=[0, 2, 4], exits=[1]), BARE.replace(risk=limits))
    assert list(result.trades.entry_bar) == [1]
    assert result.stats["refused_kill_switch"] == 2 and result.stats["refused_risk"] == 2
    assert result.stats["kill_switch_bar"] == 2


def test_entry_refused_on_a_bar_that_follows_a_data_gap():
    ts = T0 + np.array([0, 1, 2, 5, 6, 7]) * HOUR  # bar 3 follows a 3 h hole
    candles = make_candles([100] * 6, ts=ts)
    # sma_cross(slow=50) signals read 51 bars: the fill at bar 3 follows the hole, and the signal of
    # bar 3 (filled at bar 4) has the hole in its window, so both entries are refused.
    result = run(candles, events(candles, entries=[2, 3]))
    assert list(result.trades.entry_bar) == []
    assert result.stats["refused_gap"] == 2 and result.stats["refused_risk"] == 0
    # With a 6-bar window (sma_cross 2/5) the signal of bar 7 (bars 2..7 + the fill at bar 8) is
    # still refused, the one of bar 8 (bars 3..8 + the fill at bar 9) is clear of the hole.
    ts = T0 + np.array([0, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12]) * HOUR
    candles = make_candles([100] * 11, ts=ts)
    result = run_backtest(candles, get_strategy("sma_cross")(fast=2, slow=5), options=BARE,
                          signals=events(candles, entries=[6, 7, 8]))
    assert list(result.trades.entry_bar) == [9] and result.stats["refused_gap"] == 2


def test_live_limits_cap_positions_and_place_no_stop_nobody_asked_for(btc_1h):
    candles = btc_1h.frame.tail(3000)
    result = run_backtest(candles, get_strategy("sma_cross")(), options=BacktestOptions.from_settings(
        BacktestSettings(), RiskSettings()), symbol="BTC/USDT", timeframe="1h")
    notional = result.trades.qty * result.trades.entry_price
    assert (notional <= 100.0 + 1e-6).all()
    assert set(result.trades.exit_reason) <= {"signal", "open"}
    assert result.stats["capped_position_quote"] == len(result.trades)


def test_two_runs_give_identical_trades(btc_1h):
    candles = btc_1h.frame.tail(5000)
    strategy = get_strategy("sma_cross")(fast=8, slow=40)
    options = BacktestOptions(stop_loss=0.03, take_profit=0.06)
    a = run_backtest(candles, strategy, options=options)
    b = run_backtest(candles, strategy, options=options)
    assert len(a.trades) > 10
    pdt.assert_frame_equal(a.trades, b.trades)
    pdt.assert_series_equal(a.equity, b.equity)
    assert a.settings_hash == b.settings_hash
    assert a.settings_hash != run_backtest(candles, strategy, options=options.replace(stop_loss=0.04)).settings_hash


def test_invalid_options_name_the_problem():
    with pytest.raises(ConfigError, match="stop_loss is a fraction"):
        BacktestOptions(stop_loss=2.0)


def test_equity_matches_trade_pnl(btc_1h):
    candles = btc_1h.frame.tail(4000)
    result = run_backtest(candles, get_strategy("sma_cross")(), options=BacktestOptions(risk=None))
    assert result.stats["final_equity"] == pytest.approx(10_000 + result.trades.pnl.sum(), rel=1e-9)
    assert math.isfinite(result.stats["sharpe"])


# Closes 100, 110, 99, 108.9: bar returns +10 %, -10 %, +10 %; over the last 2 returns at bar 3 the
# (population) standard deviation is exactly 0.1, the volatility known at a signal on bar 3.
VOL_CLOSES = [100.0, 110.0, 99.0, 108.9, 100.0, 100.0]


def test_volatility_scaled_slippage_hand_computed():
    # Arrange: slippage = 2 bps + 0.5 x 0.1 = 5.02 %; entry decided at bar 3, filled at bar 4's open 100.
    candles = make_candles(VOL_CLOSES, closes=VOL_CLOSES)
    options = BARE.replace(slippage=VolatilitySlippage(bps=2, k=0.5, window=2))
    # Act
    trade = run(candles, events(candles, entries=[3]), options).trades.iloc[0]
    # Assert
    assert trade.entry_bar == 4
    assert trade.entry_price == pytest.approx(100 * 1.0502, rel=1e-12)
    assert trade.qty == pytest.approx(1000 / 105.02, rel=1e-12)


def test_volume_scaled_slippage_hand_computed():
    # Arrange: the signal bar traded 10 units at 100 = 1000 quote; a 500 quote order takes half of it:
    # slippage = 2 bps + 0.1 x 0.5 = 5.02 %. The exit sells qty x 100 against the same 1000 quote.
    candles = make_candles([100.0] * 5)
    options = BARE.replace(slippage=VolumeSlippage(bps=2, k=0.1), sizing=FixedQuote(amount=500))
    # Act
    trade = run(candles, events(candles, entries=[0], exits=[2]), options).trades.iloc[0]
    # Assert
    qty = 500 / 105.02
    assert trade.entry_price == pytest.approx(105.02, rel=1e-12)
    assert trade.qty == pytest.approx(qty, rel=1e-12)
    exit_slip = 0.0002 + 0.1 * (qty * 100) / 1000    # 0.04780998...
    assert trade.exit_price == pytest.approx(100 * (1 - exit_slip), rel=1e-12)
    assert trade.exit_price == pytest.approx(95.21900209483908, rel=1e-12)


def test_volatility_target_sizing_hand_computed():
    # Arrange: 20 % annual target, bar volatility 0.1 on 1 h bars (8760 a year):
    # notional = 10 000 x 0.2 / (0.1 x sqrt(8760)) = 213.68692...
    candles = make_candles(VOL_CLOSES, closes=VOL_CLOSES)
    options = BARE.replace(sizing=VolTarget(annual_vol=0.2, window=2))
    # Act
    result = run(candles, events(candles, entries=[0, 3]), options)
    # Assert: the signal on bar 0 has no volatility yet (warm-up) and is refused, not sized at random.
    trade = result.trades.iloc[0]
    assert len(result.trades) == 1 and trade.entry_bar == 4
    assert trade.qty * trade.entry_price == pytest.approx(10_000 * 0.2 / (0.1 * math.sqrt(8760)), rel=1e-12)
    assert trade.qty * trade.entry_price == pytest.approx(213.68692158534, rel=1e-12)
    assert result.stats["refused_filters"] == 1


def test_live_preset_equals_the_live_settings_and_sizes_with_the_default_stop():
    options = BacktestOptions.from_settings(BacktestSettings(), RiskSettings())
    live = RiskSettings()
    assert options.risk == RiskLimits.from_settings(live) == BacktestOptions(risk="live").risk
    assert (options.risk.max_positions, options.risk.max_daily_loss, options.risk.max_loss_per_trade) == (
        live.max_positions, float(live.max_daily_loss), float(live.max_loss_per_trade))
    assert options.sizing_stop == float(live.default_stop_pct) and options.stop_loss is None


def test_kill_switch_halts_every_order_but_resting_stops_still_fill():
    # Arrange: 1 h bars from 20:00. The 10 units bought at 100 (bar 1) close bar 1 at 40: -600 trips
    # the 50 kill-switch while the position is still open. As live (HALTED: nothing goes out) the
    # exit signal and the new entry are both refused; the position is held to the end.
    ts = T0 - 4 * HOUR + np.arange(5) * HOUR
    candles = make_candles([100, 100, 40, 40, 40], closes=[100, 40, 40, 40, 40], lows=[100, 39, 39, 39, 39], ts=ts)
    limits = RiskLimits(max_position_quote=1e9, max_loss_per_trade=1e9, max_daily_loss=50, cool_down_minutes=0,
                        default_stop_pct=0.9)
    # Act
    result = run(candles, events(candles, entries=[0, 2], exits=[1]), BARE.replace(risk=limits))
    # Assert
    assert list(result.trades.exit_reason) == ["open"]
    assert result.stats["exits_refused_kill_switch"] == 1 and result.stats["refused_kill_switch"] == 0
    # A stop is an order resting at the exchange: it fills while the trader is halted.
    candles = make_candles([100, 100, 40, 40, 40], closes=[100, 40, 40, 40, 40], lows=[100, 39, 30, 39, 39], ts=ts)
    stopped = run(candles, events(candles, entries=[0], exits=[2]), BARE.replace(risk=limits, stop_loss=0.65))
    assert list(stopped.trades.exit_reason) == ["stop_loss"] and list(stopped.trades.exit_bar) == [2]


def test_lean_compiled_variant_gives_the_full_engines_results(btc_1h):
    # Research runs (no risk limits, stops or shorts) use a variant compiled without that code; it
    # must produce the very same trades, curve and statistics.
    from thunes.backtest import _kernels as K
    from thunes.backtest.prepared import PreparedBacktest, options_vector

    candles = btc_1h.frame.tail(5000)
    options = BacktestOptions(risk=None)
    inputs = PreparedBacktest.from_candles(candles, options, timeframe="1h")
    p = options_vector(options, default_market("BTC/USDT"), "1h")
    np.testing.assert_array_equal(inputs.params, p)
    assert K.is_lean(p) is True and K.is_lean(options_vector(BacktestOptions(risk="live"), None, "1h")) is None
    a = get_strategy("sma_cross")(fast=8, slow=40).signals(candles).arrays(candles.index)
    out = {}
    for lean in (None, True):
        records, equity, stats = np.empty((len(candles) + 1, K.N_REC)), np.empty(len(candles)), np.zeros(K.N_STATS)
        k = K.simulate(inputs.open, inputs.high, inputs.low, inputs.close, inputs.volume, inputs.vol, inputs.gap_flags(1),
                       inputs.ts, a.entries, a.exits, a.short_entries, a.short_exits, a.size_scale, p, records,
                       equity, stats, lean)
        out[lean] = (records[:k], equity, stats)
    assert len(out[None][0]) > 10
    for full, lean in zip(out[None], out[True]):
        np.testing.assert_array_equal(full, lean)


def test_fee_in_base_holds_fewer_coins_and_writes_the_unsellable_remainder_off():
    # Binance spot takes a buy's fee in the base asset: 0.3333 ETH bought at 3000 with a 10 bps fee
    # leaves 0.3329667 ETH; the exit sells 0.3329 (the lot step is 0.0001), the rest is written off.
    candles = make_candles([3000, 3000, 3300, 3300])
    options = BARE.replace(taker_fee_bps=10, apply_filters=True, fee_in_base=True)
    trade = run(candles, events(candles, entries=[0], exits=[1]), options, market=default_market("ETH/USDT")).trades.iloc[0]
    assert trade.qty == pytest.approx(0.3333 * 0.999)
    assert trade.pnl == pytest.approx(0.3329 * 3300 * 0.999 - 0.3333 * 3000)
    # Without it the fee is charged in quote and the whole quantity is sold.
    plain = run(candles, events(candles, entries=[0], exits=[1]), options.replace(fee_in_base=False),
                market=default_market("ETH/USDT")).trades.iloc[0]
    assert plain.qty == pytest.approx(0.3333)
    assert plain.pnl == pytest.approx(0.3333 * 300 - 0.3333 * 3000 * 0.001 - 0.3333 * 3300 * 0.001)
