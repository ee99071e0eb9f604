"""`thunes paper --testnet` and `thunes live` against the local exchange, reached through the configured
base URLs exactly as the Spot Testnet or Binance would be (ccxt sandbox mode for the testnet).

The local exchange replays synthetic 1m candles that start at the wall clock's current minute and run
1200x faster (one candle every 0.05 s), so the trader's signals are fresh by the wall clock it trades on.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
from click.testing import CliRunner

from thunes.cli import root
from thunes.core.candles import ts_ms
from thunes.data.synthetic import generate_candles
from thunes.exchange.sim import LocalExchange
from thunes.execution.ledger import read_ledger
from thunes.live.state import load_state

HISTORY = 300  # candles before the market clock's start: the trader's warm-up window is 259
# 2000 candles after it: 100 s of market at 1200x, far more than both runs of a test need on a slow machine.


@pytest.fixture()
def remote(tmp_path):
    minute = int(time.time() // 60 * 60_000)
    frame = generate_candles(HISTORY + 2000, timeframe="1m", start=minute - HISTORY * 60_000, seed=5,
                             start_price=40_000.0)
    sim = LocalExchange(candles={"BTC/USDT": frame}, start_ms=int(ts_ms(frame)[HISTORY]), speed=1200,
                        tick_s=0.02).start()
    env = {
        "THUNES_EXCHANGE__BASE_URL": sim.base_url, "THUNES_EXCHANGE__WS_URL": sim.ws_url,
        "THUNES_EXCHANGE__API_KEY": sim.api_key, "THUNES_EXCHANGE__API_SECRET": sim.secret,
        "THUNES_TRADER__STATE_DIR": str(tmp_path / "state"),
        "THUNES_TRADER__LEDGER_PATH": str(tmp_path / "ledger.csv"),
        "THUNES_AUDIT__PATH": str(tmp_path / "audit.jsonl"),
        "THUNES_DATA__URL": f"sqlite:///{tmp_path / 'candles.sqlite'}",
        "THUNES_RISK__COOL_DOWN_MINUTES": "0",
        "COLUMNS": "200",
    }
    yield sim, env
    sim.stop()


def trade(env: dict, *args: str):
    strategy = ("--strategy", "sma_cross", "--param", "fast=3", "--param", "slow=8", "--timeframe", "1m")
    return CliRunner().invoke(root, [*args, *strategy, "--bars", "50", "--duration", "60"], env=env)


def test_testnet_mode_trades_through_the_configured_urls_and_a_restart_resumes(remote, tmp_path):
    sim, env = remote
    result = trade(env, "paper", "--testnet")
    assert result.exit_code == 0, result.output
    assert "testnet: trading BTC/USDT 1m" in result.output
    fills = read_ledger(tmp_path / "ledger_testnet.csv")  # testnet fills never mix with live ones
    assert len(fills) >= 4 and {f.side for f in fills} == {"BUY", "SELL"}
    assert all(f.order_id.isdigit() and f.client_order_id for f in fills)
    state_file = tmp_path / "state" / "testnet" / "trader_sma_cross_BTCUSDT_1m.json"
    first = load_state(state_file)
    assert first.clean_stop and first.bars_processed == 50
    assert "bars 50" in result.output and "reconciliations 2 (ok)" in result.output

    again = trade(env, "paper", "--testnet")  # a restart: same state folder, same account
    assert again.exit_code == 0, again.output
    second = load_state(state_file)
    assert second.bars_processed == 100 and second.last_bar_ts > first.last_bar_ts, again.output
    started = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()
               if '"trader_started"' in line]
    assert [s["payload"]["resume_after"] for s in started] == [None, first.last_bar_ts]
    assert "(ok)" in again.output  # positions carried over match the exchange
    client_ids = [f.client_order_id for f in read_ledger(tmp_path / "ledger_testnet.csv")]
    assert len(client_ids) == len(set(client_ids)) > len(fills)


def test_live_mode_caps_the_position_size_and_reports_the_withdrawal_check(remote, tmp_path):
    sim, env = remote
    result = trade(env, "live", "--live", "--i-understand-the-risks")
    assert result.exit_code == 0, result.output
    assert "withdrawal permission of the keys: unknown" in result.output  # the local exchange has no sapi
    assert "live limits: 25 quote per trade, max position 25" in result.output  # settings say 100
    buys = [f for f in read_ledger(tmp_path / "ledger.csv") if f.side == "BUY"]
    assert buys
    # 25 quote at the signal's close; the fill comes a few market minutes later at 1200x (up to 2 % away).
    assert all(Decimal("20") < f.qty * f.price <= Decimal("25.5") for f in buys)
