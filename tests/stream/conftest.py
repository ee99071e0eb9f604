"""Fixtures of the streaming tests: the local exchange (manual clock), a real Tansu broker, helpers that
compare the store with the exchange's own candles."""

from __future__ import annotations

import time

import numpy as np
import pytest

from thunes.core.candles import ts_ms
from thunes.core.timeframes import parse_timeframe
from thunes.exchange.ccxt_adapter import CcxtExchange
from thunes.exchange.sim import LocalExchange, SimOptions

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
TIMEFRAMES = ("1m", "5m")
LOOKBACK = 12


def wait_for(cond, timeout: float = 15.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.02)


@pytest.fixture()
def sim():
    """Three synthetic 1m markets; the clock moves only when a test steps it."""
    opts = SimOptions(symbols=SYMBOLS, synthetic_bars=2_000, history_bars=200, ws_ping_interval_s=1.0)
    with LocalExchange(opts) as running:
        yield running


@pytest.fixture()
def port(sim):
    ex = CcxtExchange.for_local(sim, timeout_s=3)
    yield ex
    ex.close()


@pytest.fixture()
def broker():
    pytest.importorskip("confluent_kafka")
    from thunes.stream.broker import TansuBroker

    running = TansuBroker().start()
    yield running
    running.stop(kill=True)


_REST: dict[str, CcxtExchange] = {}


def truth(sim: LocalExchange, symbol: str, timeframe: str, start: int) -> np.ndarray:
    """The exchange's closed candles of a series from ``start`` to now, as its REST API serves them:
    (n, 6) ts, open, high, low, close, volume."""
    rest = _REST.get(sim.base_url)
    if rest is None:
        rest = _REST[sim.base_url] = CcxtExchange.for_local(sim, timeout_s=5)
    frame = rest.fetch_candles(symbol, timeframe, since=start, limit=100_000)
    rows = np.column_stack([ts_ms(frame).astype("float64")] + [frame[c].to_numpy() for c in
                                                             ("open", "high", "low", "close", "volume")])
    return rows[rows[:, 0] + parse_timeframe(timeframe).ms <= sim.now_ms()]


def start_of(sim: LocalExchange, timeframe: str, started_at: int, lookback: int = LOOKBACK) -> int:
    """First candle the ingestion stores: ``lookback`` candles before the one forming at start."""
    tf = parse_timeframe(timeframe).ms
    return (started_at // tf) * tf - lookback * tf


def store_rows(store, symbol: str, timeframe: str) -> np.ndarray:
    frame = store.load(symbol, timeframe)
    return np.column_stack([ts_ms(frame).astype("float64")] + [frame[c].to_numpy() for c in
                                                             ("open", "high", "low", "close", "volume")])


def assert_store_equals_exchange(store, sim, started_at: int, symbols=SYMBOLS, timeframes=TIMEFRAMES) -> None:
    """Every closed candle the exchange has since the start, each once, bit-identical; no open candle."""
    for symbol in symbols:
        for tf in timeframes:
            want = truth(sim, symbol, tf, start_of(sim, tf, started_at))
            got = store_rows(store, symbol, tf)
            assert len(got) == len(want), f"{symbol} {tf}: {len(got)} stored, exchange has {len(want)}"
            np.testing.assert_array_equal(got, want, err_msg=f"{symbol} {tf}")
            assert got[-1, 0] + parse_timeframe(tf).ms <= sim.now_ms(), "an open candle was stored"


def caught_up(store, sim, started_at: int, symbols=SYMBOLS, timeframes=TIMEFRAMES):
    """A condition: the store holds as many candles as the exchange has closed (call after the last step)."""
    want = {(s, tf): len(truth(sim, s, tf, start_of(sim, tf, started_at))) for s in symbols for tf in timeframes}
    return lambda: all(store.count(s, tf) >= n for (s, tf), n in want.items())


def step(sim: LocalExchange, n: int, pause_s: float = 0.01) -> None:
    """Close ``n`` one-minute candles, one at a time, letting the websocket carry each."""
    for _ in range(n):
        sim.step()
        time.sleep(pause_s)


@pytest.fixture(scope="session")
def influx_url(tmp_path_factory):
    """An InfluxDB 1.x server (Debian's influxd) on private ports and a private data dir."""
    import os
    import shutil
    import subprocess

    from thunes.stream.broker import free_port

    binary = shutil.which("influxd")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("influxd missing in CI: scripts/install-system-deps.sh should install it")
        pytest.skip("InfluxDB not installed (run `make system-deps`)")
    root = tmp_path_factory.mktemp("influx")
    http, rpc = free_port(), free_port()
    (root / "influxdb.conf").write_text(
        f'bind-address = "127.0.0.1:{rpc}"\nreporting-disabled = true\n'
        f'[meta]\n  dir = "{root}/meta"\n'
        f'[data]\n  dir = "{root}/data"\n  wal-dir = "{root}/wal"\n  query-log-enabled = false\n'
        f'[http]\n  bind-address = "127.0.0.1:{http}"\n  log-enabled = false\n'
        f'[monitor]\n  store-enabled = false\n')
    proc = subprocess.Popen([binary, "-config", str(root / "influxdb.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{http}"
    try:
        wait_for(lambda: _pings(url), timeout=30, what="influxd listening")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _pings(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=1) as resp:
            return resp.status == 204
    except OSError:
        return False
