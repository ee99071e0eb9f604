"""The multi-pair bot: candle -> order latency and throughput as the number of pairs grows.

One process, one thread, one risk manager; the local exchange replays real 5m candles of N pairs in lockstep
(synthetic when ../shared/data is absent). Beyond the six sample pairs, synthetic pairs (``P07/USDT`` ...,
exchange rules derived from their price) make up 10 and 50 pairs. Latency is the trader's own figure: candle handed out by the
bar's candles were all in (as a websocket delivers them) -> order handed to the exchange port, so a pair's wait
behind the pairs handled before it counts (audit fsync "always", journal durable; network is loopback). ``bar``:
``together``, the bot's way (a bar's candles at hand traded together: every pair decides, the orders are
journaled in one commit and sent back to back); ``one by one``, each pair's whole candle path in turn.

    python benchmarks/bench_bot.py [BARS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from thunes.config import Settings
from thunes.core.candles import ts_ms
from thunes.data.samples import load_sample_candles
from thunes.data.synthetic import generate_candles
from thunes.live.config import BotSettings, JobSettings, LocalReplaySettings
from thunes.services.bot import BotRunRequest, open_bot

PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT", "LTC/USDT")


def main() -> None:
    bars = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    frames = {}
    real = True
    warmed = False
    for sym in PAIRS:
        loaded = load_sample_candles(sym, "5m")
        frames[sym] = loaded.frame.iloc[: 300 + bars + 20]
        real &= loaded.real
    start = int(ts_ms(frames[PAIRS[0]])[0])
    pairs = list(PAIRS) + [f"P{i:02d}/USDT" for i in range(len(PAIRS) + 1, 51)]
    for i, sym in enumerate(pairs[len(PAIRS):], start=len(PAIRS) + 1):
        frames[sym] = generate_candles(300 + bars + 20, timeframe="5m", start=start, start_price=10.0 * i, seed=i)
    print(f"data: {'real' if real else 'SYNTHETIC'} 5m candles for {len(PAIRS)} pairs, synthetic beyond; {bars} bars "
          "per pair, sma_cross 5/20")
    print(f"{'pairs':>5} {'bar':10} {'candles':>8} {'orders':>7} {'wall s':>7} {'candles/s':>10} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'max ms':>7}")
    runs = [(1, True), (1, True), (2, True), (4, True), (6, True), (10, False), (10, True), (50, False), (50, True)]
    for n, together in runs:  # the first run warms imports, numba caches and the decay check's scipy: not shown
        tmp = Path(tempfile.mkdtemp(prefix="bench-bot-"))
        settings = BotSettings(pairs=pairs[:n], params={"fast": 5, "slow": 20}, timeframe="5m",
                               quote_per_trade=Decimal("100"), state_dir=tmp / "bot",
                               risk={"max_positions": 50, "cool_down_minutes": 0},
                               local=LocalReplaySettings(bars=bars), jobs=JobSettings(reconcile_minutes=60))
        app = Settings(data={"url": f"sqlite:///{tmp / 'c.sqlite'}"})
        with open_bot(BotRunRequest(settings=settings, control=False), app, frames=frames) as session:
            if not together:  # the source hands out one candle at a time: each pair's whole path in turn
                session.bot.source.ready = lambda limit: []  # type: ignore[method-assign]
            t = time.perf_counter()
            result = session.run()
            wall = time.perf_counter() - t
        r = result.report
        if not warmed:
            warmed = True
            continue
        lat = sorted(x * 1000 for x in r.latencies_s)
        pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else (lambda q: float("nan"))
        print(f"{n:>5} {'together' if together else 'one by one':10} {r.candles:>8} {r.orders:>7} {wall:>7.2f} "
              f"{r.candles / wall:>10.1f} {pct(0.5):>7.2f} {pct(0.99):>7.2f} {(lat[-1] if lat else float('nan')):>7.2f}")

if __name__ == "__main__":
    main()
