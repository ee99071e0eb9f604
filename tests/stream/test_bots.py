"""One ingestion feeds many bots: traders take their candles from the topic, not from their own websocket."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from thunes.config import RiskSettings
from thunes.core.candles import ts_ms
from thunes.data.synthetic import generate_candles
from thunes.exchange.ccxt_adapter import CcxtExchange
from thunes.exchange.sim import LocalExchange
from thunes.live.assembly import ReplayClock, build_stack
from thunes.live.trader import TraderOptions
from thunes.strategies.sma_cross import SmaCross
from thunes.stream import IngestOptions, Ingestor

from .conftest import wait_for

pytest.importorskip("confluent_kafka")

from thunes.stream.kafka import KafkaPublisher  # noqa: E402
from thunes.stream.source import KafkaCandleSource  # noqa: E402

WARM = 40
BARS = 4


def test_two_traders_trade_the_same_candles_from_one_ingestion(broker, tmp_path):
    """Two traders, each with a KafkaCandleSource in place of its CandleFeed, process the same closed
    candles, in order, that one ingestion published: the exchange's, as its REST API serves them."""
    frame = generate_candles(200, timeframe="1h", seed=11, start_price=40_000.0, price_decimals=2)
    stamps = ts_ms(frame)
    with LocalExchange(candles={"BTC/USDT": frame}, start_ms=int(stamps[WARM])) as sim:
        publisher = KafkaPublisher(broker.bootstrap, partitions=2, confirm_group=None).start()
        ingestor = Ingestor(CcxtExchange.for_local(sim), publisher,
                            IngestOptions(ws_url=sim.ws_url, symbols=("BTC/USDT",), timeframes=("1h",), lookback=0,
                                          backoff_initial_s=0.02, backoff_max_s=0.2)).start()
        stacks, reports, threads = [], {}, []
        try:
            assert ingestor.wait_connected(10)
            for k in range(2):
                options = TraderOptions(symbol="BTC/USDT", timeframe="1h", quote_per_trade=Decimal("100"),
                                        state_dir=tmp_path / f"bot{k}", window_bars=WARM, poll_s=0.02)
                stack = build_stack(CcxtExchange.for_local(sim), strategy=SmaCross(fast=3, slow=8), options=options,
                                    risk_settings=RiskSettings(cool_down_minutes=0),
                                    audit_path=tmp_path / f"audit{k}.jsonl", ledger_path=tmp_path / f"ledger{k}.csv",
                                    clock=ReplayClock(sim.clock), audit_fsync="never")
                stack.trader.warm_up(frame.iloc[:WARM])
                stacks.append(stack)
                source = KafkaCandleSource(broker.bootstrap, [("BTC/USDT", "1h")])
                t = threading.Thread(target=lambda s=stack, src=source, k=k: reports.__setitem__(
                    k, s.trader.run(src, max_bars=BARS, deadline_s=60)), daemon=True)
                t.start()
                threads.append(t)
            for i in range(WARM, WARM + BARS):
                sim.advance_to(int(stamps[i + 1]))
                wait_for(lambda i=i: all(s.trader.last_ts == int(stamps[i]) for s in stacks), timeout=20,
                         what=f"both bots at bar {i}")
            for t in threads:
                t.join(20)
        finally:
            ingestor.stop()
            publisher.close()
            for s in stacks:
                s.close()
    # Each bot reached every bar in turn (waited for above) and processed exactly BARS candles.
    assert [reports[k].bars for k in (0, 1)] == [BARS, BARS]
    assert [reports[k].stop_reason for k in (0, 1)] == [reports[0].stop_reason] * 2
