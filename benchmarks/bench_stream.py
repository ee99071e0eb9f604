"""Streaming pipeline benchmarks: candles/s end to end and latency from candle close to committed row.

Run: ``.venv/bin/python benchmarks/bench_stream.py [--symbols 100] [--candles 3000]`` (needs the ``stream``
extra for the Kafka rows; a Tansu broker is started on a free loopback port). Prints one table:

* plain store upsert (the reference: ``CandleStore.upsert`` of each symbol's candles);
* embedded path (in-process queue -> BatchWriter -> SQLite), in backfill-sized chunks and one candle
  per publish (the live case);
* Kafka path: producer -> Tansu -> ``KafkaSink`` in its own process -> SQLite committed, timed from
  the first publish to the commit of the last candle;
* latency: candles published at a steady rate (all symbols closing together, like a minute boundary),
  from publish (the moment the candle closed) to the commit of its row: p50 / p99.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from thunes.core.candles import candles_frame
from thunes.data.store import open_store
from thunes.stream import EmbeddedTransport, SeriesKey, candle_array

T0 = 1_704_067_200_000
MIN = 60_000


def make_data(symbols: int, n: int, seed: int = 1) -> list[tuple[SeriesKey, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(symbols):
        close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
        open_ = np.r_[close[0], close[:-1]]
        high = np.maximum(open_, close) * 1.0005
        low = np.minimum(open_, close) * 0.9995
        ts = T0 + np.arange(n, dtype="int64") * MIN
        out.append((SeriesKey.of("binance", f"S{k:03d}/USDT", "1m"),
                    candle_array(ts, open_, high, low, close, rng.uniform(1, 10, n))))
    return out


def bench_plain(data, tmp: Path) -> float:
    with open_store(f"sqlite:///{tmp}/plain.sqlite", cache_dir=None) as store:
        t0 = time.perf_counter()
        for series, arr in data:
            store.upsert(series.symbol, series.timeframe,
                         candles_frame(arr["ts"], arr["open"], arr["high"], arr["low"], arr["close"], arr["volume"]))
        return time.perf_counter() - t0


def bench_embedded(data, tmp: Path, name: str, chunk: int) -> float:
    url = f"sqlite:///{tmp}/{name}.sqlite"
    with EmbeddedTransport(lambda: open_store(url, cache_dir=None)) as transport:
        t0 = time.perf_counter()
        n = len(data[0][1])
        for s in range(0, n, chunk):  # interleaved like live feeds: every series advances together
            for series, arr in data:
                transport.publish(series, arr[s:s + chunk])
        transport.flush()
        return time.perf_counter() - t0


def embedded_latency(symbols: int, ticks: int, period_s: float, tmp: Path) -> np.ndarray:
    url = f"sqlite:///{tmp}/lat.sqlite"
    data = make_data(symbols, ticks, seed=2)
    sent: dict[tuple[str, int], float] = {}
    lat: list[float] = []
    transport = EmbeddedTransport(lambda: open_store(url, cache_dir=None), linger_s=0.002)
    transport.on_commit = lambda merged, now: lat.extend(
        now - sent[(s.symbol, int(t))] for s, arr in merged.items() for t in arr["ts"])
    with transport:
        for i in range(ticks):
            tick = time.perf_counter()
            for series, arr in data:
                sent[(series.symbol, int(arr["ts"][i]))] = time.time()
                transport.publish(series, arr[i:i + 1])
            time.sleep(max(0.0, period_s - (time.perf_counter() - tick)))
        transport.flush()
    return np.array(lat) * 1000


def _sink_process(bootstrap: str, url: str, expected: int, out: str, ready) -> None:  # noqa: ANN001
    from thunes.stream.sink import KafkaSink, session_overrides

    commits: list[tuple[str, int, float]] = []
    sink = KafkaSink(bootstrap, lambda: open_store(url, cache_dir=None), wait_s=0.02,
                     consumer_overrides=session_overrides(2.0))
    sink.on_commit = lambda merged, now: commits.extend((s.symbol, int(t), now) for s, arr in merged.items()
                                                        for t in arr["ts"][-1:])  # last of each series
    first = threading.Event()
    threading.Thread(target=lambda: (first.wait(), ready.set()), daemon=True).start()
    orig = sink._on_assign

    def on_assign(consumer, partitions):  # noqa: ANN001
        orig(consumer, partitions)
        if partitions:
            first.set()
    sink._on_assign = on_assign  # type: ignore[method-assign]
    sink.run(max_messages=expected, idle_exit_s=120)
    Path(out).write_text(json.dumps(commits))


def bench_kafka(data, tmp: Path, latency_ticks: int, period_s: float) -> tuple[float, int, np.ndarray]:
    from thunes.stream.broker import TansuBroker
    from thunes.stream.kafka import KafkaPublisher

    n_total = sum(len(a) for _, a in data)
    lat_data = make_data(len(data), latency_ticks, seed=3)
    lat_data = [(SeriesKey.of("binance", s.symbol.replace("S", "L", 1), "1m"), a) for s, a in lat_data]
    n_lat = sum(len(a) for _, a in lat_data)
    ctx = mp.get_context("spawn")
    with TansuBroker() as broker:
        url = f"sqlite:///{tmp}/kafka.sqlite"
        out = str(tmp / "commits.json")
        ready = ctx.Event()
        with KafkaPublisher(broker.bootstrap, partitions=6) as pub:
            proc = ctx.Process(target=_sink_process, args=(broker.bootstrap, url, n_total + n_lat, out, ready))
            proc.start()
            if not ready.wait(60):
                raise RuntimeError("the sink never joined the group")
            # Throughput: everything as fast as the producer can publish it, interleaved by series.
            t0 = time.time()
            n = len(data[0][1])
            for s in range(0, n, 100):
                for series, arr in data:
                    pub.publish(series, arr[s:s + 100])
            pub.flush(300)
            if not pub.wait_confirmed(300):  # the sink's commits cover every candle: the backlog is gone
                raise RuntimeError("the sink did not commit the throughput run")
            # Latency: every series closes one candle per tick.
            sent: dict[tuple[str, int], float] = {}
            for i in range(latency_ticks):
                tick = time.perf_counter()
                for series, arr in lat_data:
                    sent[(series.symbol, int(arr["ts"][i]))] = time.time()
                    pub.publish(series, arr[i:i + 1])
                time.sleep(max(0.0, period_s - (time.perf_counter() - tick)))
            pub.flush(60)
            proc.join(300)
    commits = json.loads(Path(out).read_text())
    thr_end = max(c for s, _, c in commits if s.startswith("S"))
    lat = np.array([(c - sent[(s, t)]) * 1000 for s, t, c in commits if s.startswith("L")])
    return thr_end - t0, n_total, lat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--candles", type=int, default=3000, help="Candles per symbol in the throughput runs.")
    parser.add_argument("--ticks", type=int, default=50, help="Latency runs: candle closes per symbol.")
    parser.add_argument("--period", type=float, default=0.1, help="Latency runs: seconds between closes.")
    parser.add_argument("--no-kafka", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="thunes-bench-stream-"))
    data = make_data(args.symbols, args.candles)
    total = args.symbols * args.candles
    rows = []
    t_plain = bench_plain(data, tmp)
    rows.append(("plain store upsert (reference)", f"{total / t_plain:,.0f} candles/s", ""))
    t_emb = bench_embedded(data, tmp, "emb1000", 1000)
    rows.append(("embedded, 1000-candle chunks", f"{total / t_emb:,.0f} candles/s", f"{t_plain / t_emb:.2f}x plain"))
    small = data if total <= 100_000 else [(s, a[: max(1, 100_000 // args.symbols)]) for s, a in data]
    n_small = sum(len(a) for _, a in small)
    t_emb1 = bench_embedded(small, tmp, "emb1", 1)
    rows.append(("embedded, one candle per publish", f"{n_small / t_emb1:,.0f} candles/s", f"{n_small:,} candles"))
    lat = embedded_latency(args.symbols, args.ticks, args.period, tmp)
    rows.append(("embedded latency close->commit", f"p50 {np.percentile(lat, 50):.1f} ms",
                 f"p99 {np.percentile(lat, 99):.1f} ms"))
    if not args.no_kafka:
        secs, n, klat = bench_kafka(data, tmp, args.ticks, args.period)
        rows.append(("Kafka: producer->Tansu->sink->SQLite", f"{n / secs:,.0f} candles/s", f"{n:,} in {secs:.2f}s"))
        rows.append(("Kafka latency close->commit", f"p50 {np.percentile(klat, 50):.1f} ms",
                     f"p99 {np.percentile(klat, 99):.1f} ms"))
    print(f"stream benchmark: {args.symbols} symbols, {total:,} candles (1m, SQLite WAL); latency: "
          f"{args.symbols} candles every {args.period * 1000:.0f} ms x {args.ticks}")
    print(f"{'measurement':<40} {'result':>22}  note")
    for name, result, note in rows:
        print(f"{name:<40} {result:>22}  {note}")


if __name__ == "__main__":
    main()
