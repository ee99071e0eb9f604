"""Replay speeds (manual, N x real time, as fast as possible) and ``thunes exchange serve`` as a user starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from thunes.core.candles import ts_ms
from thunes.data.io import write_candle_file
from thunes.data.synthetic import generate_candles
from thunes.exchange.ccxt_adapter import make_local_exchange_client
from thunes.exchange.sim import LocalExchange, SimOptions

M = 60_000


def _frame(n: int = 400):
    return generate_candles(n, timeframe="1m", start=1_704_067_200_000, start_price=40_000.0, seed=11)


def test_without_a_speed_the_market_clock_moves_only_when_told():
    with LocalExchange(SimOptions(history_bars=10), candles={"BTC/USDT": _frame()}) as sim:
        start = sim.now_ms()
        time.sleep(0.3)
        assert sim.now_ms() == start
        assert sim.step(3) == start + 3 * M


def test_speed_n_runs_the_market_clock_n_times_faster_than_the_wall_clock():
    # Arrange: 120x real time, the clock moved every 50 ms
    with LocalExchange(SimOptions(history_bars=10, speed=120.0, tick_s=0.05), candles={"BTC/USDT": _frame()}) as sim:
        t0, m0 = time.monotonic(), sim.now_ms()
        time.sleep(1.0)
        # Act
        t1, m1 = time.monotonic(), sim.now_ms()
    # Assert: market time = 120 x wall time, give or take the driver's tick and a busy machine's scheduling
    # delays at either reading (0.5 s each way; real time would have moved the clock by 1 s, not ~120 s)
    wall_ms = (t1 - t0) * 1000
    assert 120 * (wall_ms - 500) <= m1 - m0 <= 120 * (wall_ms + 500)


def test_max_speed_replays_candle_by_candle():
    frame = _frame(3000)
    with LocalExchange(SimOptions(history_bars=10, speed="max"), candles={"BTC/USDT": frame}) as sim:
        start = sim.now_ms()
        for _ in range(100):  # at most 5 s
            if sim.now_ms() >= start + 50 * M:
                break
            time.sleep(0.05)
        moved = sim.now_ms() - start
    assert moved >= 50 * M
    assert moved % M == 0  # whole candles: each step lands on a candle boundary


def test_serve_command_replays_a_file_for_ccxt_until_sigterm(tmp_path: Path):
    # Arrange: a replay file named like the Binance archives, so the symbol comes from the name
    frame = _frame(600)
    path = tmp_path / "binance_ETHUSDT_1m.csv"
    write_candle_file(frame, path)
    env = {**os.environ, "THUNES_CONFIG": "", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "thunes", "exchange", "serve", "--port", "0", "--replay",
                             str(path), "--speed", "manual"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        assert proc.stdout is not None
        for _ in range(20):
            lines.append(proc.stdout.readline().strip())
            if lines[-1].startswith("markets"):
                break
        banner = "\n".join(lines)
        base = next(line.split()[-1] for line in lines if line.startswith("local exchange listening on"))
        key, secret = next(line for line in lines if line.startswith("api key")).split(":", 1)[1].split(" / ")
        # Act: the unmodified ccxt client pointed at what the banner printed
        client = make_local_exchange_client(base, key.strip(), secret.strip(), timeout_s=5)
        rows = client.fetch_ohlcv("ETH/USDT", "1m", limit=3)
        order = client.create_order("ETH/USDT", "market", "buy", 0.01)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    # Assert: the file's candles are served (history_bars=500 in: bars 498, 499 closed, 500 forming)
    assert "ETHUSDT" in banner and f"{base}/api/v3" in banner
    assert [r[0] for r in rows] == [int(t) for t in ts_ms(frame)[498:501]]
    np.testing.assert_allclose(rows[0][4], frame["close"].iloc[498], rtol=1e-12)
    assert order["status"] == "closed"
    assert proc.returncode == 0 and "local exchange stopped" in out


def test_serve_help_names_every_option():
    from click.testing import CliRunner

    from thunes.cli import root

    out = CliRunner().invoke(root, ["exchange", "serve", "--help"])
    assert out.exit_code == 0
    for option in ("--port", "--replay", "--symbols", "--timeframe", "--speed", "--seed", "--duration"):
        assert option in out.output


def test_the_generated_market_has_fat_tails_volatility_clustering_and_an_intraday_season():
    # Arrange: 30 days of 5m candles, as `thunes exchange serve --timeframe 5m` would generate them
    sim = LocalExchange(SimOptions(symbols=("BTC/USDT",), timeframe="5m", synthetic_bars=8640, seed=7))
    feed = sim.engine.feeds["BTCUSDT"]
    r = np.diff(np.log(feed.close))
    hours = (feed.ts[1:] // 3_600_000) % 24
    # Act
    kurtosis = ((r - r.mean()) ** 4).mean() / r.var() ** 2
    abs_autocorr = np.corrcoef(np.abs(r[:-1]), np.abs(r[1:]))[0, 1]
    autocorr = np.corrcoef(r[:-1], r[1:])[0, 1]
    hourly_vol = np.array([r[hours == h].std() for h in range(24)])
    hourly_volume = np.array([feed.volume[1:][hours == h].mean() for h in range(24)])
    # Assert: Gaussian returns would give kurtosis 3, no |r| autocorrelation and a flat day
    assert kurtosis > 6
    assert abs_autocorr > 0.1 and abs(autocorr) < 0.05  # clustered volatility, but no predictable drift
    assert hourly_vol.max() / hourly_vol.min() > 1.8
    assert hourly_volume.max() / hourly_volume.min() > 1.8


def test_serve_replays_candles_from_the_candle_store(tmp_path: Path, monkeypatch):
    from click.testing import CliRunner

    from thunes.cli import root
    from thunes.cli.exchange import load_from_store
    from thunes.config import DataSettings
    from thunes.data.store import open_store

    # Arrange: 1h candles of ETH/USDT in a SQLite candle store
    url = f"sqlite:///{tmp_path}/candles.sqlite"
    frame = generate_candles(700, timeframe="1h", start=1_704_067_200_000, start_price=2300.0, seed=4)
    store = open_store(url, cache_dir=None)
    store.write("ETH/USDT", "1h", frame)
    store.close()
    monkeypatch.chdir(tmp_path)
    # Act: what the command loads, then the command itself for a moment
    loaded = load_from_store(("eth/usdt@1h",), DataSettings(url=url, cache_dir=tmp_path / "cache"))
    out = CliRunner().invoke(root, ["exchange", "serve", "--port", "0", "--store", url, "--from-store", "ETH/USDT@1h",
                                    "--speed", "manual", "--duration", "0.1"], env={"THUNES_CONFIG": ""})
    bad = CliRunner().invoke(root, ["exchange", "serve", "--port", "0", "--store", url, "--from-store", "BTC/USDT@1h",
                                    "--duration", "0.1"], env={"THUNES_CONFIG": ""})
    # Assert
    np.testing.assert_allclose(loaded["ETH/USDT"]["close"].to_numpy(), frame["close"].to_numpy())
    assert out.exit_code == 0, out.output
    assert "markets            : ETHUSDT" in out.output and "local exchange stopped" in out.output
    assert bad.exit_code == 2 and "0 1h candles of BTC/USDT" in bad.output


def test_serve_sets_the_demo_account_balances(monkeypatch, tmp_path: Path):
    from click.testing import CliRunner

    from thunes.cli import root

    monkeypatch.chdir(tmp_path)
    args = ["exchange", "serve", "--port", "0", "--symbols", "BTC/USDT", "--speed", "manual", "--duration", "0.1"]
    default = CliRunner().invoke(root, args, env={"THUNES_CONFIG": ""})
    funded = CliRunner().invoke(root, [*args, "--balance", "usdt=250.5", "--balance", "BTC=0"], env={"THUNES_CONFIG": ""})
    bad = CliRunner().invoke(root, [*args, "--balance", "USDT:5"], env={"THUNES_CONFIG": ""})
    assert "balances           : USDT 10000, BTC 0.5, ETH 5" in default.output
    assert funded.exit_code == 0 and "balances           : USDT 250.5, BTC 0" in funded.output
    assert bad.exit_code == 2 and "ASSET=AMOUNT" in bad.output
