"""The bot's Prometheus metrics: they follow the events, stay bounded, and cover what the dashboard and
the alert rules query."""

from __future__ import annotations

import time
import urllib.request
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from tests.live.conftest import PAIRS as BOT_PAIRS
from thunes.core.enums import OrderType, Side
from thunes.core.errors import InsufficientFunds
from thunes.core.events import (
    BotState,
    BotStateChanged,
    CandleClosed,
    DecisionAction,
    FeedReconnected,
    JobRan,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    RiskDenied,
    SignalDecided,
)
from thunes.data.samples import load_sample_candles
from thunes.execution.ledger import LedgerRow, read_ledger
from thunes.ops import BotMetrics, PipelineMetrics
from thunes.services.bot import events

from .conftest import dashboard_exprs, exposed_names, family_of, metric_names, rule_exprs

PAIRS = [("BTC/USDT", "5m"), ("ETH/USDT", "1h")]


@pytest.fixture()
def metrics() -> BotMetrics:
    return BotMetrics(pairs=PAIRS, process=False)


def value(m: BotMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_a_fill_event_counts_one_filled_order_of_its_side_and_type(metrics):
    """OrderSubmitted then OrderFilled: submitted +1, outcome filled +1 (labels symbol, side, type)."""
    metrics.handle(OrderSubmitted(ts_ms=1, symbol="BTC/USDT", side="BUY", client_order_id="c1", bar_ts=0,
                                  strategy="sma_cross"))
    metrics.handle(OrderFilled(ts_ms=2, symbol="BTC/USDT", side="BUY", client_order_id="c1", qty=Decimal("0.1"),
                               avg_price=Decimal("100"), status="FILLED"))
    metrics.handle(OrderFilled(ts_ms=3, symbol="BTC/USDT", side="BUY", client_order_id="c2", qty=Decimal("0.1"),
                               avg_price=Decimal("100"), status="FILLED"))
    metrics.handle(OrderRejected(ts_ms=4, symbol="ETH/USDT", side="SELL", client_order_id="c3", reason="-2010"))
    assert value(metrics, "thunes_orders_submitted_total", symbol="BTC/USDT", side="buy", type="market") == 1
    assert value(metrics, "thunes_orders_total", symbol="BTC/USDT", side="buy", type="market", outcome="filled") == 2
    assert value(metrics, "thunes_orders_total", symbol="ETH/USDT", side="sell", type="market",
                 outcome="rejected") == 1


def test_a_denial_counts_under_its_rule(metrics):
    for rule in ("max_positions", "max_positions", "kill_switch"):
        metrics.handle(RiskDenied(ts_ms=1, symbol="ETH/USDT", side="BUY", rule=rule, reason="no"))
    assert value(metrics, "thunes_risk_denials_total", symbol="ETH/USDT", rule="max_positions") == 2
    assert value(metrics, "thunes_risk_denials_total", symbol="ETH/USDT", rule="kill_switch") == 1
    assert value(metrics, "thunes_risk_denials_total", symbol="BTC/USDT", rule="max_positions") is None


def test_a_symbol_outside_the_configured_pairs_is_counted_as_other(metrics):
    """The symbol label is bounded by the configuration: an unexpected symbol never adds a series."""
    metrics.handle(RiskDenied(ts_ms=1, symbol="DOGE/USDT", side="BUY", rule="max_positions", reason="no"))
    metrics.handle(CandleClosed(ts_ms=1, symbol="DOGE/USDT", timeframe="1m", bar_ts=0, close=1.0))
    assert value(metrics, "thunes_risk_denials_total", symbol="other", rule="max_positions") == 1
    assert value(metrics, "thunes_candles_processed_total", symbol="other", timeframe="other") == 1
    assert "DOGE" not in metrics.render().decode()


def test_a_candle_counts_per_pair_and_sets_its_lag_and_receipt_time():
    wall = [1_000.0]
    m = BotMetrics(pairs=PAIRS, process=False, wall=lambda: wall[0])
    assert value(m, "thunes_candle_last_received_timestamp_seconds", symbol="BTC/USDT", timeframe="5m") == 1_000.0
    wall[0] = 1_500.0
    # a 5m candle opened at t=0 closes at 300 s; the bot takes it at 302.5 s: 2.5 s of lag
    m.handle(CandleClosed(ts_ms=302_500, symbol="BTC/USDT", timeframe="5m", bar_ts=0, close=100.0))
    assert value(m, "thunes_candles_processed_total", symbol="BTC/USDT", timeframe="5m") == 1
    assert value(m, "thunes_candle_lag_seconds", symbol="BTC/USDT", timeframe="5m") == pytest.approx(2.5)
    assert value(m, "thunes_candle_last_received_timestamp_seconds", symbol="BTC/USDT", timeframe="5m") == 1_500.0
    assert value(m, "thunes_candle_interval_seconds", symbol="ETH/USDT", timeframe="1h") == 3600


def test_order_latency_and_signals_follow_decisions(metrics):
    metrics.handle(SignalDecided(ts_ms=1, symbol="BTC/USDT", timeframe="5m", strategy="s", bar_ts=0,
                                 action=DecisionAction.BUY, latency_s=0.003))
    metrics.handle(SignalDecided(ts_ms=1, symbol="BTC/USDT", timeframe="5m", strategy="s", bar_ts=0,
                                 action=DecisionAction.HOLD))
    assert value(metrics, "thunes_signals_total", symbol="BTC/USDT", action="buy") == 1
    assert value(metrics, "thunes_signals_total", symbol="BTC/USDT", action="hold") == 1
    assert value(metrics, "thunes_order_send_latency_seconds_count", symbol="BTC/USDT") == 1
    assert value(metrics, "thunes_order_send_latency_seconds_bucket", symbol="BTC/USDT", le="0.0025") == 0
    assert value(metrics, "thunes_order_send_latency_seconds_bucket", symbol="BTC/USDT", le="0.005") == 1


def test_feed_reconnects_add_what_is_new_in_the_feeds_running_count(metrics):
    for n in (1, 2, 5):
        metrics.handle(FeedReconnected(ts_ms=1, symbol="BTC/USDT", timeframe="5m", reconnects=n))
    assert value(metrics, "thunes_feed_reconnects_total", symbol="BTC/USDT", timeframe="5m") == 5
    metrics.handle(FeedReconnected(ts_ms=1, symbol="BTC/USDT", timeframe="5m", reconnects=1))  # a restarted feed
    assert value(metrics, "thunes_feed_reconnects_total", symbol="BTC/USDT", timeframe="5m") == 6


def test_bot_state_is_one_state_at_a_time(metrics):
    metrics.handle(BotStateChanged(ts_ms=1, state=BotState.PAUSED))
    states = {s.value: value(metrics, "thunes_bot_state", state=s.value) for s in BotState}
    assert states == {"starting": 0, "running": 0, "paused": 1, "stopping": 0, "stopped": 0}


def test_jobs_count_runs_by_outcome_and_time_successes():
    m = BotMetrics(pairs=PAIRS, process=False, wall=lambda: 42.0)
    m.handle(JobRan(ts_ms=1, job="reconcile", outcome="ok", duration_s=0.2))
    m.handle(JobRan(ts_ms=2, job="reconcile", outcome="failed", duration_s=1.5))
    m.handle(JobRan(ts_ms=3, job="backup", outcome="missed"))
    assert value(m, "thunes_job_runs_total", job="reconcile", outcome="ok") == 1
    assert value(m, "thunes_job_runs_total", job="reconcile", outcome="failed") == 1
    assert value(m, "thunes_job_runs_total", job="backup", outcome="missed") == 1
    assert value(m, "thunes_job_duration_seconds_sum", job="reconcile") == pytest.approx(1.7)
    assert value(m, "thunes_job_duration_seconds_count", job="backup") is None  # a missed run has no duration
    assert value(m, "thunes_job_last_success_timestamp_seconds", job="reconcile") == 42.0
    assert value(m, "thunes_job_last_success_timestamp_seconds", job="backup") is None


def test_ledger_rows_count_fills_and_fees_in_quote(metrics):
    """Fees in quote count as they are; in base, at the fill price; in a third asset, as unpriced fills."""
    def row(fee: str, asset: str, side: Side = Side.BUY) -> LedgerRow:
        return LedgerRow(time_ms=1, symbol="BTC/USDT", side=side, qty=Decimal("0.5"), price=Decimal("100"),
                         fee=Decimal(fee), fee_asset=asset, order_id="1", client_order_id="c", trade_id="t",
                         strategy="s", reason="r")
    metrics.on_ledger_row(row("0.05", "USDT"))
    metrics.on_ledger_row(row("0.001", "BTC"))
    metrics.on_ledger_row(row("0.01", "BNB", Side.SELL))
    assert value(metrics, "thunes_fills_total", symbol="BTC/USDT", side="buy") == 2
    assert value(metrics, "thunes_fills_total", symbol="BTC/USDT", side="sell") == 1
    assert value(metrics, "thunes_filled_quote_total", symbol="BTC/USDT", side="buy") == 100
    assert value(metrics, "thunes_fees_quote_total", symbol="BTC/USDT") == pytest.approx(0.15)
    assert value(metrics, "thunes_fees_unpriced_fills_total", symbol="BTC/USDT") == 1


def test_two_bots_in_one_process_keep_separate_registries():
    a, b = BotMetrics(pairs=PAIRS), BotMetrics(pairs=PAIRS)
    a.handle(RiskDenied(ts_ms=1, symbol="BTC/USDT", side="BUY", rule="paused", reason="x"))
    assert value(a, "thunes_risk_denials_total", symbol="BTC/USDT", rule="paused") == 1
    assert value(b, "thunes_risk_denials_total", symbol="BTC/USDT", rule="paused") is None
    assert isinstance(a.registry, CollectorRegistry) and a.registry is not b.registry


def test_the_port_counts_calls_and_errors_by_code(tmp_path):
    """Against the local exchange: an order beyond the balance is refused; the error is counted under the
    exchange's code when the adapter kept it, else under the error class (InsufficientFunds here: ccxt's
    message for Binance's -2010 carries no code)."""
    from thunes.core.candles import ts_ms
    from thunes.data.synthetic import generate_candles
    from thunes.exchange.ccxt_adapter import CcxtExchange
    from thunes.exchange.sim import LocalExchange
    from thunes.exchange.types import OrderRequest

    frame = generate_candles(60, timeframe="1h", seed=3, start_price=100.0, price_decimals=2)
    sim = LocalExchange(candles={"BTC/USDT": frame}, start_ms=int(ts_ms(frame)[30])).start()
    try:
        m = BotMetrics(pairs=[("BTC/USDT", "1h")], process=False)
        port = m.instrument_port(CcxtExchange.for_local(sim))
        port.load_markets()
        port.fetch_balance()
        with pytest.raises(InsufficientFunds):
            port.place_order(OrderRequest(symbol="BTC/USDT", side=Side.BUY, type=OrderType.MARKET,
                                          client_order_id="too-big", quote_qty=Decimal("1e9")))
    finally:
        sim.stop()
    assert value(m, "thunes_exchange_requests_total", method="place_order") == 1
    assert value(m, "thunes_exchange_errors_total", method="place_order", code="InsufficientFunds") == 1
    assert value(m, "thunes_exchange_errors_total", method="fetch_balance", code="InsufficientFunds") is None
    assert value(m, "thunes_exchange_request_duration_seconds_count", method="load_markets") == 1
    assert value(m, "thunes_exchange_weight_used") > 0  # X-MBX-USED-WEIGHT-1M from the exchange


def test_pipeline_metrics_count_messages_batches_and_lag():
    p = PipelineMetrics()
    p.received("binance_ws", 5)
    with p.sink_write("candle_store", 3):
        pass
    with pytest.raises(ValueError):
        with p.sink_write("candle_store", 2):
            raise ValueError("disk full")
    p.consumer_lag("candles", "store", 12)
    v = p.registry.get_sample_value
    assert v("thunes_pipeline_messages_in_total", {"source": "binance_ws"}) == 5
    assert v("thunes_pipeline_messages_out_total", {"sink": "candle_store"}) == 3  # the failed batch is not out
    assert v("thunes_pipeline_batch_size_messages_count", {"sink": "candle_store"}) == 1
    assert v("thunes_pipeline_errors_total", {"stage": "sink:candle_store"}) == 1
    assert v("thunes_pipeline_consumer_lag_messages", {"topic": "candles", "group": "store"}) == 12


# -- a real paper run ------------------------------------------------------------------------------------
def test_a_paper_run_exposes_what_happened(paper_run):
    """The exposition over HTTP agrees with the bot's own report, event log and ledger."""
    session, result = paper_run
    text = urllib.request.urlopen(session.metrics_server.url, timeout=5).read().decode()
    assert session.metrics_server.host == "127.0.0.1"
    m = session.metrics
    r = result.report
    log = events(result.state_dir)
    total = lambda name: sum(s.value for f in m.registry.collect() for s in f.samples if s.name == name)  # noqa: E731
    assert total("thunes_candles_processed_total") == r.candles == 4 * 60
    real = all(load_sample_candles(sym, "5m", limit=1).real for sym in BOT_PAIRS)
    # Golden counts of the run per data source (real files or synthetic fallback): 7 or 11 market orders.
    assert total("thunes_fills_total") == len(read_ledger(result.state_dir / "ledger.csv")) == (7 if real else 11)
    assert total("thunes_orders_submitted_total") == r.orders
    denied = [e for e in log if isinstance(e, RiskDenied)]
    assert len(denied) == (3 if real else 1) and total("thunes_risk_denials_total") == len(denied)
    assert value(m, "thunes_bot_state", state="stopped") == 1
    assert value(m, "thunes_kill_switch_active") == 0
    # A bound on the runs: the reconcile job's runs during the replay depend on how fast it went.
    assert value(m, "thunes_reconcile_runs_total") == r.reconciles >= 2
    # equity at the stop: the quote balance plus every base asset at its pair's last close
    marks = session.bot._last_close
    expected = sum(Decimal(b) * (Decimal(1) if a == "USDT" else marks[f"{a}/USDT"])
                   for a, b in result.status.balances.items())
    assert value(m, "thunes_equity_quote") == pytest.approx(float(expected), rel=1e-12)
    assert 0 <= value(m, "thunes_drawdown_ratio") < 1
    assert value(m, "thunes_realised_pnl_quote") == pytest.approx(float(result.status.realised_total))
    assert 'thunes_build_info{exchange="local"' in text
    assert "client_order_id" not in text and "thunes_" in text


def test_every_metric_in_the_dashboard_and_alert_rules_is_exposed(paper_run):
    """Parse the shipped Grafana JSON and alert rules; each metric they name exists in the exposition of
    a wired bot (or of the pipeline's registry), as a sample or at least a declared family."""
    session, _ = paper_run
    exposed = exposed_names(session.metrics.render().decode()) | exposed_names(PipelineMetrics().render().decode())
    exposed.add("up")  # written by Prometheus itself for every target
    used = set()
    for expr in dashboard_exprs() + rule_exprs():
        used |= metric_names(expr)
    assert len(used) >= 40  # a bound: the dashboards and the alert rules gain metrics over time
    missing = sorted(n for n in used if family_of(n, exposed) not in exposed)
    assert not missing, missing


def test_exposition_cost_per_scrape_stays_small(paper_run):
    """Rendering /metrics of the 4-pair bot after a run takes milliseconds (figure in docs/observability.md)."""
    session, _ = paper_run
    n = 50
    t0 = time.perf_counter()
    for _ in range(n):
        body = session.metrics.render()
    per_scrape = (time.perf_counter() - t0) / n
    assert per_scrape < 0.05, per_scrape
    assert len(body) < 200_000


def test_a_model_strategy_exports_its_training_time_and_times_each_inference():
    """The real Forecaster (features, windows, gaps) around a stand-in network: a window's mean return."""
    import numpy as np

    from thunes.data.synthetic import generate_candles
    from thunes.ml.artifacts import ModelMeta
    from thunes.ml.serving import Forecaster
    from thunes.strategies.model_signal import ModelSignalStrategy
    from thunes.strategies.sma_cross import SmaCross

    meta = ModelMeta(feature_cols=["sma_dist_10"], seq_len=4, horizon=1, trained_at="2026-01-02T03:04:05+00:00")
    net = lambda w: (w[:, :, 0].mean(axis=1), np.ones(len(w)))  # noqa: E731
    strategy = ModelSignalStrategy.from_forecaster(Forecaster(net, meta, None, backend="test"))
    m = BotMetrics(pairs=PAIRS, process=False)
    assert m.instrument_model("BTC/USDT", strategy)
    assert not m.instrument_model("ETH/USDT", SmaCross(fast=3, slow=8))
    assert value(m, "thunes_model_trained_timestamp_seconds", symbol="BTC/USDT") == 1767323045.0
    candles = generate_candles(120, timeframe="5m", seed=1)
    strategy.signals(candles)
    strategy.signals(candles)  # the same candles again: predictions reused, no inference
    strategy.signals(generate_candles(120, timeframe="5m", seed=2))
    assert value(m, "thunes_model_prediction_duration_seconds_count", symbol="BTC/USDT") == 2
    assert value(m, "thunes_model_prediction_duration_seconds_sum", symbol="BTC/USDT") > 0


def test_an_order_observes_candle_close_to_order_on_the_bots_clock(metrics):
    """A 5m candle opened at 0 closes at 300 s; its order decided at 301.2 s took 1.2 s from the close."""
    metrics.handle(SignalDecided(ts_ms=301_200, symbol="BTC/USDT", timeframe="5m", strategy="s", bar_ts=0,
                                 action=DecisionAction.BUY, latency_s=0.002))
    assert value(metrics, "thunes_candle_close_to_order_seconds_sum", symbol="BTC/USDT") == pytest.approx(1.2)
    assert value(metrics, "thunes_candle_close_to_order_seconds_bucket", symbol="BTC/USDT", le="1.0") == 0
    assert value(metrics, "thunes_candle_close_to_order_seconds_bucket", symbol="BTC/USDT", le="2.0") == 1


def test_bot_run_serves_metrics_and_a_busy_port_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    """`thunes bot run --metrics-port` prints where the metrics are; a port in use stops it with one line."""
    import socket

    from thunes.cli import main

    monkeypatch.chdir(tmp_path)
    args = ["bot", "run", "--synthetic", "--bars", "3", "--pairs", "BTC/USDT", "--quiet"]
    main([*args, "--metrics-port", "0", "--state-dir", str(tmp_path / "a")])
    assert "metrics: http://127.0.0.1:" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as done:
            main([*args, "--metrics-port", str(port), "--state-dir", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert f"error: cannot serve metrics on 127.0.0.1:{port}" in err and "Traceback" not in err
