"""Download through ccxt against a local Binance-format server: paging, open candle, resume, 429s."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from thunes.core.errors import DataError, RateLimited
from thunes.data.download import download_candles
from thunes.data.store import open_store
from thunes.exchange.ccxt_adapter import CcxtExchange, CcxtOptions


def make_exchange(exchange_id: str, *, base_url: str) -> CcxtExchange:
    """The adapter as ``thunes data download`` builds it (public data, rate-limited, the given host)."""
    return CcxtExchange(CcxtOptions(exchange_id=exchange_id, mode="live", base_url=base_url))

HOUR = 3_600_000
KLINE_START = 1_704_067_200_000  # the kline server's first candle (see conftest.KlineServer)


def test_download_pages_stores_closed_candles_only_and_resumes(kline_server, tmp_path) -> None:  # noqa: ANN001
    exchange = make_exchange("binance", base_url=kline_server.base_url)
    with open_store(f"sqlite:///{tmp_path}/d.sqlite") as store:
        first = download_candles(store, exchange, "BTC/USDT", "1h", since=KLINE_START, sleep=lambda s: None)
        stored = store.load("BTC/USDT", "1h")
        first_requests = list(kline_server.requests)

        kline_server.now += 3 * HOUR  # three more candles close; the fourth is open
        second = download_candles(store, exchange, "BTC/USDT", "1h", since=KLINE_START, sleep=lambda s: None)
        after = store.load("BTC/USDT", "1h")

    # Candles 0..1499 are closed; #1500 (open 30 minutes ago) must not be stored.
    assert (first.fetched, first.written, first.pages, first.resumed) == (1500, 1500, 2, False)
    assert [int(r["startTime"]) for r in first_requests] == [KLINE_START, KLINE_START + 1000 * HOUR]
    assert all(r["limit"] == "1000" and r["symbol"] == "BTCUSDT" and r["interval"] == "1h" for r in first_requests)
    assert stored.index[-1] == pd.Timestamp(KLINE_START + 1499 * HOUR, unit="ms", tz="UTC")
    expected = kline_server.frame.iloc[:1500].round({"open": 2, "high": 2, "low": 2, "close": 2, "volume": 5})
    pd.testing.assert_frame_equal(stored, expected, check_freq=False)

    assert second.resumed and (second.fetched, second.written) == (3, 3)
    assert int(kline_server.requests[len(first_requests)]["startTime"]) == KLINE_START + 1500 * HOUR
    assert len(after) == 1503


def test_rate_limit_answers_are_retried_with_retry_after(kline_server, tmp_path) -> None:  # noqa: ANN001
    kline_server.fail_next = 2
    slept: list[float] = []
    exchange = make_exchange("binance", base_url=kline_server.base_url)
    with open_store(f"sqlite:///{tmp_path}/d.sqlite") as store:
        result = download_candles(store, exchange, "BTC/USDT", "1h", since=KLINE_START + 1400 * HOUR,
                                  sleep=slept.append)
    assert slept == [2.0, 2.0]
    assert result.written == 100


def test_rate_limit_that_never_clears_raises_the_retryable_error(kline_server, tmp_path) -> None:  # noqa: ANN001
    kline_server.fail_next = 10
    exchange = make_exchange("binance", base_url=kline_server.base_url)
    with open_store(f"sqlite:///{tmp_path}/d.sqlite") as store, pytest.raises(RateLimited):
        download_candles(store, exchange, "BTC/USDT", "1h", since=KLINE_START, max_retries=2, sleep=lambda s: None)


def test_first_download_needs_a_start(tmp_path) -> None:  # noqa: ANN001
    exchange = make_exchange("binance", base_url="http://127.0.0.1:9/api/v3")
    with open_store(f"sqlite:///{tmp_path}/d.sqlite") as store, pytest.raises(DataError, match="--since"):
        download_candles(store, exchange, "BTC/USDT", "1h")


def test_make_exchange_points_spot_rest_at_the_base_url() -> None:
    client = make_exchange("binance", base_url="http://127.0.0.1:8765/api/v3/").client
    assert client.urls["api"]["public"] == client.urls["api"]["private"] == "http://127.0.0.1:8765/api/v3"
    assert client.options["fetchMarkets"]["types"] == ["spot"]
    assert client.options["fetchCurrencies"] is False and client.options["fetchMargins"] is False
    assert client.enableRateLimit is True


def test_cli_download_with_base_url(kline_server, tmp_path) -> None:  # noqa: ANN001
    from click.testing import CliRunner

    from thunes.cli import root

    db = f"sqlite:///{tmp_path}/s.sqlite"
    result = CliRunner().invoke(root, ["data", "download", "--symbol", "BTC/USDT", "--timeframe", "1h",
                                       "--since", "2024-01-01", "--until", "2024-01-03",
                                       "--base-url", kline_server.base_url, "--db", db], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "48 candles" in result.output


def test_cli_download_from_the_local_exchange_rides_out_a_429_storm_through_the_adapter(tmp_path) -> None:  # noqa: ANN001
    """``thunes data download`` talks to the exchange through ``CcxtExchange``: two 429 answers (with
    ``Retry-After: 1``) on the klines path become ``RateLimited`` there, are waited out, and the download
    completes with every closed candle stored exactly once."""
    from click.testing import CliRunner

    from thunes.cli import root
    from thunes.data.synthetic import generate_candles
    from thunes.exchange.sim import LocalExchange, SimOptions

    frame = generate_candles(120, timeframe="1h", start=KLINE_START, seed=11)
    db = f"sqlite:///{tmp_path}/s.sqlite"
    with LocalExchange(SimOptions(history_bars=60), candles={"BTC/USDT": frame}) as sim:
        sim.faults.set(storm_status=429, storm_count=2, storm_retry_after=1, paths=["/api/v3/klines"])
        result = CliRunner().invoke(root, ["data", "download", "--symbol", "BTC/USDT", "--timeframe", "1h",
                                           "--since", "2024-01-01", "--base-url", sim.base_url, "--db", db,
                                           "--json"])
        storms_left = sim.faults.state.storm_count
        now = sim.now_ms()
    assert result.exit_code == 0, result.output
    assert storms_left == 0  # both 429s were served, so both were retried
    with open_store(db) as store:
        stored = store.load("BTC/USDT", "1h")
    closed = [int(t) for t in range(KLINE_START, now - HOUR + 1, HOUR)]
    assert len(closed) >= 59
    stamps = [int(t.value // 1_000_000) for t in stored.index]
    assert len(set(stamps)) == len(stamps)  # each candle once
    assert stamps[:len(closed)] == closed  # none of the closed candles missing
    # The local exchange's /time is the wall clock, not its market clock, so the candle that opens at the
    # market's "now" also counts as closed here (at most that one more).
    assert len(stamps) - len(closed) <= 1
    assert json.loads(result.stdout)[0]["written"] == len(stamps)
