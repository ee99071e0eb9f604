"""The backtest's risk model takes the live risk manager's decisions, rule for rule.

A reference loop drives the real :class:`thunes.execution.risk.RiskManager` (simulated clock) the way
the trader does: at each candle close it marks the open positions, asks ``check`` for the signal's
order (priced at the close, without a stop), and books the fill at the next bar's open with
``record_fill``. On candles whose open equals the previous close (so that sizing on the signal close,
as live, and on the fill open, as the backtest, give the same quantity) and without fees, slippage
or filters, the backtest must enter and exit on exactly the same bars and count the same refusals per
rule, for random signals and for limits chosen so that each rule binds.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from thunes.backtest import (
    BacktestOptions,
    FixedQuote,
    FixedSlippage,
    RiskLimits,
    run_backtest,
    run_portfolio,
)
from thunes.config import RiskSettings
from thunes.core.candles import candles_frame, ts_ms
from thunes.core.clock import SimulatedClock
from thunes.core.enums import Side
from thunes.execution.risk import Approved, RiskManager, TradeIntent
from thunes.strategies import Signals, get_strategy

MIN = 60_000
T0 = 1_704_150_000_000  # 2024-01-01 23:00 UTC: the runs cross midnight
QUOTE = 100.0

# Limits that make one rule bind at a time (the others are loose), and all of them at once.
LOOSE = dict(max_positions=3, max_daily_loss=1e9, max_loss_per_trade=1e9, max_position_quote=1e9,
             cool_down_minutes=0, default_stop_pct=0.02)
CASES = {
    "cool_down": dict(LOOSE, cool_down_minutes=20),
    "kill_switch": dict(LOOSE, max_daily_loss=1.5),
    "loss_per_trade": dict(LOOSE, max_loss_per_trade=1.0),
    "position_quote": dict(LOOSE, max_position_quote=60),
    "all": dict(max_positions=2, max_daily_loss=6, max_loss_per_trade=1.5, max_position_quote=80,
                cool_down_minutes=15, default_stop_pct=0.02),
}


def walk(n: int, seed: int, tf_ms: int) -> pd.DataFrame:
    """A random walk whose every open is the previous close (no gaps between bars)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    return candles_frame(T0 + np.arange(n) * tf_ms, open_, high, low, close, np.full(n, 10.0))


def random_signals(candles: pd.DataFrame, seed: int, rate: float = 0.15) -> Signals:
    rng = np.random.default_rng(seed + 1000)
    n = len(candles)
    entries = rng.random(n) < rate
    exits = (rng.random(n) < rate) & ~entries
    return Signals(entries=pd.Series(entries, index=candles.index), exits=pd.Series(exits, index=candles.index))


def settings_of(limits: dict) -> RiskSettings:
    return RiskSettings(**{k: (Decimal(str(v)) if k not in ("max_positions", "cool_down_minutes") else int(v))
                           for k, v in limits.items()})


OPTIONS = BacktestOptions(taker_fee_bps=0, maker_fee_bps=0, slippage=FixedSlippage(bps=0), apply_filters=False,
                          sizing=FixedQuote(amount=QUOTE), refuse_gap_entries=False)


def reference(frames: dict[str, pd.DataFrame], signals: dict[str, Signals], settings: RiskSettings):
    """Trades (symbol, entry bar, exit bar) and refusals per rule, decided by the live risk manager."""
    first = next(iter(frames.values()))
    ts = ts_ms(first)
    tf = int(ts[1] - ts[0])
    clock = SimulatedClock(int(ts[0]))
    risk = RiskManager(settings, clock=clock)
    held: dict[str, tuple[Decimal, int]] = {}
    trades, refused = [], Counter()
    for i in range(1, len(ts)):
        clock.set_ms(int(ts[i]))  # the candle of bar i-1 has closed: the trader decides now
        t = i - 1
        for sym, frame in frames.items():
            if sym in held:
                risk.mark(sym, Decimal(repr(float(frame.close.iloc[t]))))
        for sym, frame in frames.items():  # exits first, then entries, in symbol order (as the portfolio)
            s = signals[sym]
            if sym in held and s.exits.iloc[t]:
                qty, entry_bar = held[sym]
                d = risk.check(TradeIntent(symbol=sym, side=Side.SELL, qty=qty, is_exit=True,
                                           price=Decimal(repr(float(frame.close.iloc[t])))))
                if isinstance(d, Approved):
                    px = Decimal(repr(float(frame.open.iloc[i])))
                    risk.record_fill(sym, Side.SELL, qty, qty * px)
                    trades.append((sym, entry_bar, i))
                    del held[sym]
                else:
                    refused["exit:" + d.rule] += 1
        for sym, frame in frames.items():
            s = signals[sym]
            if sym not in held and s.entries.iloc[t] and not s.exits.iloc[t]:
                d = risk.check(TradeIntent(symbol=sym, side=Side.BUY, quote_qty=Decimal(repr(QUOTE)),
                                           price=Decimal(repr(float(frame.close.iloc[t])))))
                if isinstance(d, Approved):
                    px = Decimal(repr(float(frame.open.iloc[i])))
                    risk.record_fill(sym, Side.BUY, d.qty, d.qty * px)
                    held[sym] = (d.qty, i)
                else:
                    refused[d.rule] += 1
    assert tf > 0
    for sym, (_, entry_bar) in held.items():
        trades.append((sym, entry_bar, -1))
    return sorted(trades), refused


def backtest_view(result) -> tuple[list, Counter]:
    tr = result.trades
    trades = sorted((s, int(e), -1 if r == "open" else int(x))
                    for s, e, x, r in zip(tr.symbol, tr.entry_bar, tr.exit_bar, tr.exit_reason))
    st = result.stats
    refused = Counter({k: v for k, v in {"kill_switch": st["refused_kill_switch"],
                                        "max_positions": st["refused_max_positions"],
                                        "cool_down": st["refused_cool_down"],
                                        "exit:kill_switch": st["exits_refused_kill_switch"]}.items() if v})
    return trades, refused


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize(("timeframe", "tf_ms"), [("1m", MIN), ("5m", 5 * MIN)])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_single_symbol_decisions_equal_the_risk_managers(case, timeframe, tf_ms, seed):
    candles = walk(400, seed, tf_ms)
    signals = random_signals(candles, seed)
    limits = CASES[case]
    result = run_backtest(candles, get_strategy("sma_cross")(), signals=signals, symbol="BTC/USDT",
                          timeframe=timeframe, options=OPTIONS.replace(risk=RiskLimits(**limits)))
    expected = reference({"BTC/USDT": candles}, {"BTC/USDT": signals}, settings_of(limits))
    assert backtest_view(result) == expected
    # The rule the case is about did bind (the test is not vacuous).
    bound = {"cool_down": "refused_cool_down", "loss_per_trade": "capped_loss_per_trade", "position_quote": "capped_position_quote"}
    if case in bound:
        assert result.stats[bound[case]] > 0
    if case == "kill_switch":
        assert result.stats["kill_switch_bar"] > 0
        assert result.stats["refused_kill_switch"] + result.stats["exits_refused_kill_switch"] > 0


@pytest.mark.parametrize("case", ["cool_down", "max_positions", "all_but_kill"])
@pytest.mark.parametrize("seed", [4, 5])
def test_portfolio_decisions_equal_the_risk_managers(case, seed):
    limits = {"cool_down": dict(LOOSE, cool_down_minutes=20), "max_positions": dict(LOOSE, max_positions=2),
              "all_but_kill": dict(CASES["all"], max_daily_loss=1e9)}[case]
    frames = {sym: walk(300, seed + k, 5 * MIN) for k, sym in enumerate(("BTC/USDT", "ETH/USDT", "SOL/USDT"))}
    signals = {sym: random_signals(f, seed + 7 * k, rate=0.2) for k, (sym, f) in enumerate(frames.items())}

    class Fixed(get_strategy("sma_cross")):
        def signals(self, candles):  # noqa: D102 - the precomputed signals of the symbol these candles are
            for sym, f in frames.items():
                if f.index.equals(candles.index) and np.array_equal(f.close.to_numpy(), candles.close.to_numpy()):
                    return signals[sym]
            raise AssertionError("unknown candles")

    result = run_portfolio(frames, Fixed(), options=OPTIONS.replace(risk=RiskLimits(**limits)), timeframe="5m")
    expected = reference(frames, signals, settings_of(limits))
    assert backtest_view(result) == expected
    if case == "max_positions":
        assert result.stats["refused_max_positions"] > 0
