"""The multi-pair bot on the local exchange: four pairs replayed in lockstep, one risk manager.

Real 5m candles of BTC, ETH, SOL and XRP when ../shared/data is present (synthetic otherwise); the
unchanged Trader per pair, one executor, journal, audit trail and ledger, all against the local exchange.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pandas as pd
import pytest

from thunes.core.candles import ts_ms
from thunes.core.events import (
    CandleClosed,
    KillSwitchChanged,
    OrderFilled,
    OrderSubmitted,
    PositionClosed,
    PositionOpened,
    RiskDenied,
)
from thunes.data.samples import load_sample_candles
from thunes.execution import verify_audit
from thunes.execution.ledger import read_ledger
from thunes.services.bot import BotRunRequest, events, open_bot, set_kill_switch

from .conftest import PAIRS, app_settings, bot_settings

LOOSE = {"max_positions": 10, "cool_down_minutes": 0, "max_daily_loss": "100000", "max_loss_per_trade": "1000",
         "max_position_quote": "1000"}


def _real() -> bool:
    """Whether the four pairs are the real files (the golden values below are given for both sources)."""
    return all(load_sample_candles(sym, "5m", limit=1).real for sym in PAIRS)


def _run(tmp_path, frames, *, bars, risk=None, on_session=None):
    settings = bot_settings(tmp_path / "bot", bars=bars, risk=risk)
    request = BotRunRequest(settings=settings, control=False, audit_fsync="never")
    with open_bot(request, app_settings(tmp_path), frames=frames) as session:
        if on_session is not None:
            on_session(session)
        result = session.run()
        last_reconcile = session.stack.reconciler.last
    return result, last_reconcile


def test_four_pairs_trade_in_lockstep_within_max_positions_and_one_position_per_symbol(tmp_path, four_pairs):
    """Max 2 positions across 4 pairs: the limit binds (entries denied) and is never exceeded; a pair never
    holds two positions; every pair's candles arrive in lockstep; books match the exchange at the end."""
    result, recon = _run(tmp_path, four_pairs, bars=150, risk={"max_positions": 2, "cool_down_minutes": 0})
    r = result.report
    log = events(result.state_dir)

    # Golden orders per pair over the 150 bars, on the real files or the synthetic fallback.
    assert r.orders_by_symbol == ({"BTC/USDT": 8, "ETH/USDT": 4, "SOL/USDT": 4, "XRP/USDT": 2} if _real() else
                                  {"BTC/USDT": 6, "ETH/USDT": 5, "SOL/USDT": 3, "XRP/USDT": 10})
    assert r.candles == 4 * 150

    # Lockstep: the candles come bar by bar, each bar for all four pairs before the next bar.
    bars = [e.bar_ts for e in log if isinstance(e, CandleClosed)]
    assert bars == sorted(bars)
    per_bar = defaultdict(set)
    for e in log:
        if isinstance(e, CandleClosed):
            per_bar[e.bar_ts].add(e.symbol)
    assert all(syms == set(PAIRS) for syms in per_bar.values())

    # Max positions: replay the position events; at no point more than 2 open; the rule did bind.
    open_now: set[str] = set()
    most = 0
    for e in log:
        if isinstance(e, PositionOpened):
            assert e.symbol not in open_now  # one position per symbol
            open_now.add(e.symbol)
        elif isinstance(e, PositionClosed):
            open_now.discard(e.symbol)
        most = max(most, len(open_now))
    assert most == 2
    assert any(isinstance(e, RiskDenied) and e.rule == "max_positions" for e in log)

    # One journal/ledger/audit for all pairs: every fill in the ledger, books reconciled, the trail intact.
    fills = read_ledger(result.state_dir / "ledger.csv")
    assert {f.symbol for f in fills} == set(PAIRS)  # every pair traded
    assert sum(1 for e in log if isinstance(e, OrderFilled)) == len({(f.symbol, f.order_id) for f in fills})
    assert recon is not None and recon.ok, recon
    assert verify_audit(result.state_dir / "audit.jsonl").ok


def test_the_kill_switch_stops_new_entries_on_every_pair(tmp_path, four_pairs):
    """The switch is thrown (through the service, as an operator would) after the first fill: from then on
    no order goes out on any pair, and an entry on each of the four pairs is denied by it."""
    thrown: list[int] = []

    def on_session(session):
        def throw(event):
            if not thrown:
                thrown.append(event.ts_ms)
                set_kill_switch(session.stack.state_dir, True, reason="test", operator="pytest",
                                risk_settings=session.stack.risk.settings)
        session.stack.bus.subscribe(throw, OrderFilled)

    result, _ = _run(tmp_path, four_pairs, bars=150, risk={"cool_down_minutes": 0}, on_session=on_session)
    log = events(result.state_dir)
    switched = [i for i, e in enumerate(log) if isinstance(e, KillSwitchChanged) and e.on]
    assert len(thrown) == 1 and len(switched) == 1, "the switch was never seen by the bot, or seen twice"
    after = log[switched[0]:]
    assert not [e for e in after if isinstance(e, OrderSubmitted)]
    denied = {e.symbol for e in after if isinstance(e, RiskDenied) and e.rule == "kill_switch"}
    assert denied == set(PAIRS), denied
    assert result.status.risk["kill_switch"] is True


def test_each_pair_enters_and_exits_where_its_backtest_does(tmp_path, four_pairs):
    """Parity per pair: with limits that never bind, each pair's round trips in the shared bot start and end
    on the bars of a backtest of that pair alone (the same rule as `thunes parity`)."""
    from thunes.backtest.prepared import gap_flags, run_backtest
    from thunes.config import RiskSettings
    from thunes.exchange.sim import EngineOptions
    from thunes.live.parity import backtest_options_for, compare, ledger_round_trips
    from thunes.strategies import get_strategy

    bars = 150
    result, _ = _run(tmp_path, four_pairs, bars=bars, risk=LOOSE)
    fills = read_ledger(result.state_dir / "ledger.csv")
    engine = EngineOptions()
    tf = 300_000
    checked = 0
    for sym in PAIRS:
        frame = four_pairs[sym]
        stamps = ts_ms(frame)
        pair = next(p for p in result.status.pairs if p.symbol == sym)
        last_bar = pair.last_bar_ts
        first_bar = last_bar - (bars - 1) * tf
        end_idx = int(stamps.searchsorted(last_bar)) + 1
        span = frame.iloc[: end_idx + 1]
        strategy = get_strategy("sma_cross")(fast=5, slow=20)
        opts = backtest_options_for(Decimal("100"), taker_fee=engine.taker_fee, slippage_bps=engine.slippage_bps,
                                    spread_bps=engine.spread_bps, risk_settings=RiskSettings(**LOOSE))
        bt = run_backtest(span, strategy, options=opts, symbol=sym, timeframe="5m")
        # A backtest trade still open when the bot starts flat has no counterpart: start after it.
        bt_trades = bt.trades
        first_entry = pd.Timestamp(first_bar + tf, unit="ms", tz="UTC")
        carried = bt_trades[(bt_trades["entry_ts"] < first_entry) & (bt_trades["exit_ts"] >= first_entry)]
        if len(carried):
            first_entry = max(first_entry, carried["exit_ts"].max() + pd.Timedelta(milliseconds=1))
        paper = ledger_round_trips([f for f in fills if f.symbol == sym])
        paper = paper[paper["entry_ts"] >= first_entry]
        report = compare(bt_trades, paper, tolerance_pct=1.0, first_entry_ts=first_entry,
                         last_ts=pd.Timestamp(int(ts_ms(span)[-1]), unit="ms", tz="UTC"),
                         gap_entries=set(span.index[gap_flags(ts_ms(span), "5m")]))
        assert report.timing_identical, (sym, report.frame())
        checked += report.paper_trades
    assert checked == (17 if _real() else 19)  # golden count of the round trips compared, per data source


def test_a_pair_without_known_rules_trades_on_derived_filters(tmp_path, four_pairs):
    """The local exchange serves any symbol: ADA/USDT (not in its table) gets rules from its price level."""
    from thunes.exchange.sim import LocalExchange, derived_symbol_info

    frame = four_pairs["XRP/USDT"]
    with LocalExchange(candles={"ADA/USDT": frame, "BTC/USDT": four_pairs["BTC/USDT"]}) as sim:
        spec = sim.engine.specs["ADAUSDT"]
    info = derived_symbol_info("ADA/USDT", float(frame["close"].iloc[-1]))
    assert spec.info["filters"] == info["filters"]
    price = float(frame["close"].iloc[-1])
    step = Decimal(info["filters"][1]["stepSize"])
    assert Decimal("0.05") <= step * Decimal(repr(price)) <= Decimal("0.5")


def test_a_pair_assigned_twice_is_refused(tmp_path):
    """Two strategies on one pair would sell each other's coins: the config is refused."""
    from thunes.core.errors import ConfigError
    from thunes.live.config import load_bot_settings

    toml = tmp_path / "bot.toml"
    toml.write_text('pairs = ["BTC/USDT"]\n[[assignments]]\nsymbol = "ETH/USDT"\n'
                    '[[assignments]]\nsymbol = "eth/usdt"\nstrategy = "rsi_bollinger"\n')
    with pytest.raises(ConfigError, match="ETH/USDT is assigned twice"):
        load_bot_settings(toml)


def test_assignments_fill_in_the_pair_defaults(tmp_path):
    from thunes.live.config import load_bot_settings

    toml = tmp_path / "bot.toml"
    toml.write_text('pairs = ["BTC/USDT", "ETH/USDT"]\nparams = { fast = 5, slow = 20 }\ntimeframe = "5m"\n'
                    '[[assignments]]\nsymbol = "ETH/USDT"\nstrategy = "rsi_bollinger"\ntimeframe = "15m"\n'
                    '[risk]\nmax_positions = 2\n')
    s = load_bot_settings(toml)
    btc, eth = s.resolved()
    assert (btc.strategy, btc.params, btc.timeframe) == ("sma_cross", {"fast": 5, "slow": 20}, "5m")
    assert (eth.strategy, eth.params, eth.timeframe) == ("rsi_bollinger", {}, "15m")
    from thunes.config import RiskSettings
    assert s.risk_settings(RiskSettings()).max_positions == 2


def test_the_day_s_loss_trips_the_kill_switch_and_stops_every_pair(tmp_path, four_pairs):
    """A daily-loss limit below one entry's fee: the first open position, marked at its pair's next close,
    trips the switch by itself (realised + unrealised), and from then on nothing leaves on any pair."""
    result, _ = _run(tmp_path, four_pairs, bars=150, risk={"max_daily_loss": "0.05", "cool_down_minutes": 0})
    log = events(result.state_dir)
    tripped = [i for i, e in enumerate(log) if isinstance(e, KillSwitchChanged) and e.on]
    assert len(tripped) == 1, "the daily loss never reached the limit, or tripped the switch twice"
    assert log[tripped[0]].operator == "risk-manager" and "daily loss" in log[tripped[0]].reason
    assert [e for e in log[:tripped[0]] if isinstance(e, OrderSubmitted)]
    assert not [e for e in log[tripped[0]:] if isinstance(e, OrderSubmitted)]
    assert {e.symbol for e in log[tripped[0]:] if isinstance(e, RiskDenied) and e.rule == "kill_switch"} == set(PAIRS)


def test_a_fill_journaled_but_not_in_the_ledger_is_caught_up_at_start(tmp_path, four_pairs):
    """The crash window between the journal (fills applied) and the ledger (written by the trader after):
    reconciliation sees nothing wrong, so every start compares the two and fetches what the ledger lacks."""
    from thunes.core.enums import Side
    from thunes.execution import TradeIntent

    settings = bot_settings(tmp_path / "bot", bars=20)
    request = BotRunRequest(settings=settings, control=False, audit_fsync="never")
    with open_bot(request, app_settings(tmp_path), frames=four_pairs) as session:
        price = Decimal(str(float(four_pairs["ETH/USDT"]["close"].iloc[300])))
        outcome = session.stack.executor.execute(TradeIntent(
            symbol="ETH/USDT", side=Side.BUY, quote_qty=Decimal("100"), price=price, reason="entry signal",
            strategy="sma_cross", bar_ts=1, is_exit=False))
        assert outcome.filled_qty == (Decimal("0.0418") if _real() else Decimal("0.0464"))  # 100 USDT of ETH
        assert read_ledger(settings.state_dir / "ledger.csv") == []  # "crashed" before the trader wrote it
        assert session.bot.ledger_catch_up() == 1  # the one fill the ledger lacked
        assert session.bot.ledger_catch_up() == 0  # idempotent
    rows = read_ledger(settings.state_dir / "ledger.csv")
    assert {r.client_order_id for r in rows} == {outcome.client_order_id}
    assert sum(r.qty for r in rows) == outcome.filled_qty


def test_a_failing_subscriber_never_stops_the_bot(tmp_path, four_pairs):
    """An alert channel that raises on every event: the run trades exactly as without it."""
    subs = []

    def on_session(session):
        def broken(event):
            raise RuntimeError("telegram is down")
        subs.append(session.stack.bus.subscribe(broken, name="broken-alerts"))

    result, recon = _run(tmp_path, four_pairs, bars=80, on_session=on_session)
    baseline, _ = _run(tmp_path / "again", four_pairs, bars=80)
    assert subs[0].failures > 80 * 4
    assert result.report.candles == baseline.report.candles == 80 * 4
    assert result.report.orders_by_symbol == baseline.report.orders_by_symbol
    assert result.report.orders == (15 if _real() else 12)  # golden count over 80 bars, per data source
    assert recon.ok


def test_ten_generated_markets_in_lockstep_some_with_derived_rules(tmp_path):
    """Any number of pairs: ten generated markets (three with no known exchange rules) in one bot."""
    from thunes.live.config import LocalReplaySettings

    pairs = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT", "LTC/USDT", "BNB/USDT", "ADA/USDT",
             "DOT/USDT", "AVAX/USDT"]
    settings = bot_settings(tmp_path / "bot", bars=30).model_copy(update={
        "pairs": pairs, "local": LocalReplaySettings(bars=30, synthetic=True)})
    result = open_bot(BotRunRequest(settings=settings, control=False, audit_fsync="never"), app_settings(tmp_path))
    with result as session:
        run = session.run()
        derived = {s: session.stack.markets[s].filters for s in ("ADA/USDT", "DOT/USDT", "AVAX/USDT")}
    for f in derived.values():  # generated near 100 quote: a lot step worth 0.05-0.5 quote, the usual 5 minimum
        assert f.step_size == Decimal("0.001") and f.min_notional == Decimal("5")
    assert run.report.candles == 300 and {p.bars_processed for p in run.status.pairs} == {30}
    per_bar = defaultdict(set)
    for e in events(run.state_dir):
        if isinstance(e, CandleClosed):
            per_bar[e.bar_ts].add(e.symbol)
    assert len(per_bar) == 30 and all(len(s) == 10 for s in per_bar.values())


def test_a_bar_s_candles_are_traded_together_and_place_the_orders_one_at_a_time_would(tmp_path, four_pairs,
                                                                                       monkeypatch):
    """The four pairs' candles of a bar go to their traders together (one commit for the bar's orders, the
    sends back to back); the orders, fills and books are those of handing the candles out one by one."""
    import thunes.live.trader as trader_module
    from thunes.live.sources import ReplaySource

    groups: list[int] = []
    together = trader_module.trade_together

    def counted(steps):
        groups.append(len(steps))
        return together(steps)

    monkeypatch.setattr(trader_module, "trade_together", counted)
    risk = {"max_positions": 2, "cool_down_minutes": 0}
    grouped, _ = _run(tmp_path / "grouped", four_pairs, bars=150, risk=risk)
    monkeypatch.setattr(ReplaySource, "ready", lambda self, limit: [])  # one candle at a time
    single, _ = _run(tmp_path / "single", four_pairs, bars=150, risk=risk)

    assert groups and set(groups) == {4}  # every bar's four candles together
    assert grouped.report.orders_by_symbol == single.report.orders_by_symbol
    assert grouped.report.denied == single.report.denied and grouped.report.fills == single.report.fills

    def fills(result):
        return [(f.symbol, f.side, f.qty, f.client_order_id) for f in read_ledger(result.state_dir / "ledger.csv")]

    assert sorted(fills(grouped)) == sorted(fills(single))
