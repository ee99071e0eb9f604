"""Candle store benchmarks: load 1M candles (store vs Parquet vs plain sqlite3), bulk import and upsert rows/s.

Run: ``.venv/bin/python benchmarks/bench_store.py [--rows 1000000] [--postgres URL]``. Prints one table.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import pandas as pd

from thunes.core.timeframes import index_ms
from thunes.data.store import open_store
from thunes.data.synthetic import generate_candles


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="Also measure a PostgreSQL store at URL (an empty database).")
    args = parser.parse_args()
    frame = generate_candles(args.rows, timeframe="1m", start="2022-01-01", seed=1)
    tmp = Path(tempfile.mkdtemp(prefix="thunes-bench-"))
    url = f"sqlite:///{tmp}/bench.sqlite"
    rows = []
    with open_store(url) as store:
        t0 = time.perf_counter()
        store.insert("BTC/USDT", "1m", frame)
        t_insert = time.perf_counter() - t0
        rows.append(("bulk import (insert, validated)", t_insert, f"{args.rows / t_insert:,.0f} rows/s"))
        changed = frame.copy()
        changed["close"] = changed["close"] * 1.0001
        changed["high"] = changed[["high", "close"]].max(axis=1)
        changed["low"] = changed[["low", "close"]].min(axis=1)
        t0 = time.perf_counter()
        store.upsert("BTC/USDT", "1m", changed)
        t_upsert = time.perf_counter() - t0
        rows.append(("upsert (every row changed)", t_upsert, f"{args.rows / t_upsert:,.0f} rows/s"))
        store.load("BTC/USDT", "1m")  # builds the columnar cache once
        t_store = best_of(lambda: store.load("BTC/USDT", "1m"))
    with open_store(url, cache_dir=None) as nocache:
        t_nocache = best_of(lambda: nocache.load("BTC/USDT", "1m"), repeat=2)
    # SQLite's own ceiling: plain executemany of prepared tuples in one transaction, no validation.
    raw = sqlite3.connect(tmp / "raw.sqlite", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("CREATE TABLE ohlcv (id INTEGER PRIMARY KEY, symbol TEXT, timeframe TEXT, ts INTEGER, open REAL, "
                "high REAL, low REAL, close REAL, volume REAL, source TEXT, UNIQUE(symbol, timeframe, ts))")
    ts = index_ms(frame.index).tolist()
    tuples = list(zip(["BTC/USDT"] * len(ts), ["1m"] * len(ts), ts, *(frame[c].tolist() for c in
                      ("open", "high", "low", "close", "volume")), ["raw"] * len(ts)))
    t0 = time.perf_counter()
    raw.execute("BEGIN")
    raw.executemany("INSERT INTO ohlcv (symbol, timeframe, ts, open, high, low, close, volume, source) "
                    "VALUES (?,?,?,?,?,?,?,?,?)", tuples)
    raw.execute("COMMIT")
    t_raw = time.perf_counter() - t0
    rows.append(("plain sqlite3 executemany (baseline)", t_raw, f"{args.rows / t_raw:,.0f} rows/s"))
    raw.close()
    if args.postgres:
        with open_store(args.postgres, cache_dir=tmp / "pgcache") as pg:
            t0 = time.perf_counter()
            pg.insert("BTC/USDT", "1m", frame)
            t_pg = time.perf_counter() - t0
            rows.append(("PostgreSQL bulk import (COPY)", t_pg, f"{args.rows / t_pg:,.0f} rows/s"))
            t0 = time.perf_counter()
            pg.upsert("BTC/USDT", "1m", changed)
            t_pgu = time.perf_counter() - t0
            rows.append(("PostgreSQL upsert (every row changed)", t_pgu, f"{args.rows / t_pgu:,.0f} rows/s"))
        with open_store(args.postgres, cache_dir=None) as pg:
            t_pgload = best_of(lambda: pg.load("BTC/USDT", "1m"), repeat=2)
            rows.append(("load 1M: PostgreSQL, no cache (COPY)", t_pgload, ""))
    parquet = tmp / "bench.parquet"
    frame.to_parquet(parquet)
    t_parquet = best_of(lambda: pd.read_parquet(parquet))
    con = sqlite3.connect(tmp / "bench.sqlite")
    t_fetchall = best_of(lambda: con.execute(
        "SELECT ts, open, high, low, close, volume FROM ohlcv WHERE symbol='BTC/USDT' AND timeframe='1m' ORDER BY ts"
    ).fetchall(), repeat=2)
    rows += [
        ("load 1M: store (columnar cache)", t_store, f"{t_store / t_parquet:.2f}x Parquet"),
        ("load 1M: store, cache disabled", t_nocache, f"{t_nocache / t_parquet:.2f}x Parquet"),
        ("load 1M: pandas.read_parquet", t_parquet, "1.00x"),
        ("load 1M: plain sqlite3 fetchall", t_fetchall, f"{t_fetchall / t_parquet:.2f}x Parquet"),
    ]
    print(f"candle store benchmark, {args.rows:,} rows of 1m candles (SQLite, WAL)")
    print(f"{'measurement':<36} {'seconds':>9}  result")
    for name, secs, note in rows:
        print(f"{name:<36} {secs:>9.3f}  {note}")


if __name__ == "__main__":
    main()
