"""The trading services: a paper run on the local exchange, and testnet/live runs on a served one, with the
live rules enforced by the service whatever the edge."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from thunes.config import (
    AuditSettings,
    DataSettings,
    ExchangeSettings,
    RiskSettings,
    Settings,
    TraderSettings,
)
from thunes.core.candles import ts_ms
from thunes.core.errors import ConfigError
from thunes.data.sources import LoadedCandles, Origin
from thunes.data.synthetic import generate_candles
from thunes.exchange.sim import LocalExchange
from thunes.execution.ledger import read_ledger
from thunes.execution.risk import read_run_pointer
from thunes.live.state import load_state
from thunes.live.trader import ALREADY_PROCESSED
from thunes.services.safety import LiveConfirmation
from thunes.services.trading import PaperRequest, RemoteRequest, run_paper, run_remote

SMA = {"fast": 3, "slow": 8}
HISTORY = 300  # candles before the market clock's start: the trader's window is 259


def _settings(tmp_path, **exchange) -> Settings:
    return Settings(trader=TraderSettings(state_dir=tmp_path / "state", ledger_path=tmp_path / "ledger.csv"),
                    audit=AuditSettings(path=tmp_path / "audit.jsonl", fsync="never"),
                    data=DataSettings(url=f"sqlite:///{tmp_path / 'candles.sqlite'}"),
                    risk=RiskSettings(cool_down_minutes=0), exchange=ExchangeSettings(**exchange))


def _loaded(frame, source: str) -> LoadedCandles:
    return LoadedCandles(frame=frame, source=source, real=False, origin=Origin.SYNTHETIC)


def test_a_paper_run_replays_the_candles_trades_and_reports_its_round_trips(tmp_path):
    frame = generate_candles(HISTORY + 400, timeframe="1m", seed=5, start_price=40_000.0)
    lines, decisions = [], []
    result = run_paper(_settings(tmp_path), PaperRequest(strategy="sma_cross", params=SMA, timeframe="1m",
                                                         replay_speed=1200, max_bars=60, out_dir=tmp_path / "run"),
                       candles=_loaded(frame, "synthetic"), notify=lines.append, on_decision=decisions.append)
    assert result.mode == "local" and result.report.bars == 60 and result.report.stop_reason == "60 bars processed"
    assert result.report.orders >= 2 and result.reconcile_ok is True
    fills = read_ledger(tmp_path / "run" / "ledger.csv")
    assert result.ledger_path == tmp_path / "run" / "ledger.csv" and len(fills) == result.report.fills >= 2
    assert result.round_trips is not None and len(result.round_trips) >= 1
    assert lines and lines[0].startswith("local exchange replaying BTC/USDT 1m from synthetic")
    assert len([d for d in decisions if d.reason != ALREADY_PROCESSED]) == 60
    # Where `thunes risk status` finds the run's journal; the operator state is shared by every local run.
    assert read_run_pointer(tmp_path / "state" / "local")["run_dir"] == str(tmp_path / "run")


def test_a_paper_run_refuses_too_few_candles_and_a_stopped_replay(tmp_path):
    frame = generate_candles(100, timeframe="1m", seed=5, start_price=40_000.0)
    with pytest.raises(ConfigError, match="the replay needs at least"):
        run_paper(_settings(tmp_path), PaperRequest(params=SMA, timeframe="1m", out_dir=tmp_path / "r"),
                  candles=_loaded(frame, "short"))
    with pytest.raises(ConfigError, match="replay speed must be > 0"):
        run_paper(_settings(tmp_path), PaperRequest(replay_speed=0), candles=_loaded(frame, "short"))


@pytest.fixture()
def served(tmp_path):
    minute = int(time.time() // 60 * 60_000)
    frame = generate_candles(HISTORY + 2000, timeframe="1m", start=minute - HISTORY * 60_000, seed=5,
                             start_price=40_000.0)
    sim = LocalExchange(candles={"BTC/USDT": frame}, start_ms=int(ts_ms(frame)[HISTORY]), speed=1200,
                        tick_s=0.02).start()
    yield sim, _settings(tmp_path, base_url=sim.base_url, ws_url=sim.ws_url, api_key=sim.api_key,
                         api_secret=sim.secret)
    sim.stop()


def test_live_is_refused_without_both_confirmations_before_any_exchange_call(tmp_path):
    settings = _settings(tmp_path, base_url="http://127.0.0.1:9/api/v3", api_key="k" * 16, api_secret="s" * 16)
    for confirmation in (LiveConfirmation(), LiveConfirmation(live=True), LiveConfirmation(understood=True)):
        with pytest.raises(ConfigError, match="--live and --i-understand-the-risks"):
            run_remote(settings, RemoteRequest(mode="live", confirmation=confirmation))


def test_a_live_run_is_capped_and_checks_the_keys_withdrawal_permission(served, tmp_path):
    sim, settings = served
    lines = []
    result = run_remote(settings, RemoteRequest(
        mode="live", strategy="sma_cross", params=SMA, timeframe="1m", max_bars=40, duration_s=60,
        confirmation=LiveConfirmation(live=True, understood=True), max_quote=Decimal("20")), notify=lines.append)
    assert result.withdrawals == "unknown"  # the local exchange has no sapi; Binance answers it
    assert result.limits.quote_per_trade == Decimal("20") and result.limits.risk.max_position_quote == Decimal("20")
    assert "live limits: 20 quote per trade, max position 20" in lines
    buys = [f for f in read_ledger(tmp_path / "ledger.csv") if f.side == "BUY"]
    assert buys and all(f.qty * f.price <= Decimal("20.5") for f in buys)


def test_a_restarted_run_decides_every_candle_that_closed_while_it_was_down(tmp_path):
    """The window is warmed up to the last decided candle, not to now: the feed then backfills the gap.

    One-second candles at market speed (the exchange's time is the wall clock's, as on Binance), so that
    candles close while the trader is down."""
    second = int(time.time()) * 1000
    frame = generate_candles(HISTORY + 600, timeframe="1s", start=second - HISTORY * 1000, seed=5,
                             start_price=40_000.0)
    sim = LocalExchange(candles={"BTC/USDT": frame}, start_ms=int(ts_ms(frame)[HISTORY]), speed=1,
                        tick_s=0.02).start()
    settings = _settings(tmp_path, base_url=sim.base_url, ws_url=sim.ws_url, api_key=sim.api_key,
                         api_secret=sim.secret)
    request = RemoteRequest(mode="testnet", strategy="sma_cross", params=SMA, timeframe="1s", max_bars=3,
                            duration_s=30)
    try:
        run_remote(settings, request)
        first = load_state(tmp_path / "state" / "testnet" / "trader_sma_cross_BTCUSDT_1s.json")
        time.sleep(2.5)  # candles close while nothing runs
        decided = []
        run_remote(settings, request, on_decision=decided.append)
    finally:
        sim.stop()
    fresh = [d.bar_ts for d in decided if d.reason != ALREADY_PROCESSED]
    assert fresh[0] == first.last_bar_ts + 1000, (first.last_bar_ts, fresh)
    assert fresh == list(range(fresh[0], fresh[0] + 1000 * len(fresh), 1000))  # none skipped
