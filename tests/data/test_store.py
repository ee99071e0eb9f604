"""The candle store contract, run against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from thunes.core.candles import candles_frame
from thunes.core.errors import DataError, StoreError
from thunes.data._postgres import decode_copy_binary, encode_copy_binary
from thunes.data.store import SeriesInfo, open_store
from thunes.data.synthetic import generate_candles

H = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def _frame(ts, close, volume=1.0):  # noqa: ANN001, ANN202
    close = np.asarray(close, dtype="float64")
    return candles_frame(np.asarray(ts), close, close + 1, close * 0.5, close, np.full(len(close), volume))


def test_insert_then_load_round_trips_values_exactly(store_url: str, tmp_path) -> None:  # noqa: ANN001
    frame = generate_candles(500, timeframe="1h", seed=3)
    with open_store(store_url, cache_dir=tmp_path / "cache") as store:
        written = store.insert("BTC/USDT", "1h", frame)
        loaded = store.load("BTC/USDT", "1h")
    assert written == 500
    pd.testing.assert_frame_equal(loaded, frame, check_freq=False)
    assert loaded.index.name == "ts" and str(loaded.index.tz) == "UTC"


def test_insert_ignores_existing_timestamps_and_upsert_replaces_them(store_url: str) -> None:
    with open_store(store_url, cache_dir=None) as store:
        store.insert("BTC/USDT", "1h", _frame([T0, T0 + H, T0 + 2 * H], [100.0, 101.0, 102.0]))

        again = store.insert("BTC/USDT", "1h", _frame([T0 + H, T0 + 3 * H], [555.0, 103.0]))
        after_insert = store.load("BTC/USDT", "1h")["close"].tolist()
        changed = store.upsert("BTC/USDT", "1h", _frame([T0, T0 + H, T0 + 4 * H], [100.0, 201.0, 104.0]))
        after_upsert = store.load("BTC/USDT", "1h")["close"].tolist()

    assert again == 1  # only T0+3h is new; T0+1h kept its stored value
    assert after_insert == [100.0, 101.0, 102.0, 103.0]
    assert changed == 2  # T0 is identical (not counted), T0+1h changed, T0+4h is new
    assert after_upsert == [100.0, 201.0, 102.0, 103.0, 104.0]


def test_load_bounds_are_inclusive_start_exclusive_end(store_url: str) -> None:
    ts = [T0 + i * H for i in range(10)]
    with open_store(store_url) as store:
        store.insert("ETH/USDT", "1h", _frame(ts, np.arange(10) + 50.0))
        part = store.load("ETH/USDT", "1h", start=T0 + 2 * H, end=T0 + 5 * H)
        head = store.load("ETH/USDT", "1h", end=T0 + 2 * H)
        tail = store.load("ETH/USDT", "1h", start=T0 + 8 * H)
        none = store.load("SOL/USDT", "1h")
    assert part["close"].tolist() == [52.0, 53.0, 54.0]
    assert head["close"].tolist() == [50.0, 51.0]
    assert tail["close"].tolist() == [58.0, 59.0]
    assert none.empty and list(none.columns) == ["open", "high", "low", "close", "volume"]


def test_bounds_counts_and_series_listing(store_url: str) -> None:
    with open_store(store_url) as store:
        store.insert("btc/usdt", "1h", _frame([T0 + H, T0 + 5 * H, T0 + 3 * H], [1.0, 2.0, 3.0]))
        store.insert("ETH/USDT", "5m", _frame([T0], [9.0]))
        store.upsert("BTC/USDT", "1h", _frame([T0, T0 + H], [4.0, 5.0]))  # one new row, one changed
        infos = store.series()
        bounds = (store.first_ts("BTC/USDT", "1h"), store.last_ts("BTC/USDT", "1h"), store.count("BTC/USDT", "1h"))
        absent = (store.first_ts("XRP/USDT", "1h"), store.last_ts("XRP/USDT", "1h"), store.count("XRP/USDT", "1h"))
    assert bounds == (T0, T0 + 5 * H, 4)
    assert absent == (None, None, 0)
    assert infos == [
        SeriesInfo(symbol="BTC/USDT", timeframe="1h", first=T0, last=T0 + 5 * H, rows=4),
        SeriesInfo(symbol="ETH/USDT", timeframe="5m", first=T0, last=T0, rows=1),
    ]


def test_invalid_rows_are_rejected_with_reasons_and_never_overwrite_stored_candles(store_url: str) -> None:
    with open_store(store_url) as store:
        store.insert("BTC/USDT", "1h", _frame([T0, T0 + H], [100.0, 101.0]))
        bad = pd.DataFrame(
            {"ts": [T0, T0 + 2 * H, T0 + 3 * H + 1, T0 + 4 * H, T0 + 5 * H],
             "open": [100.0, 102.0, 103.0, np.nan, 105.0],
             "high": [90.0, 103.0, 104.0, 105.0, 106.0],   # row 0: high below open/close
             "low": [99.0, 101.0, 102.0, 103.0, 104.0],
             "close": [100.0, 102.5, 103.0, 104.0, 105.0],
             "volume": [1.0, 1.0, 1.0, 1.0, -5.0]}
        )
        result = store.write("BTC/USDT", "1h", bad, mode="upsert")
        stored = store.load("BTC/USDT", "1h")
    assert result.written == 1  # only T0+2h is valid
    assert dict(zip(result.rejected["row"], result.rejected["reason"])) == {
        0: "'high' is below max(open, close)",
        2: "timestamp not aligned to the 1h timeframe",
        3: "'open' is missing, non-numeric or infinite",
        4: "'volume' is negative",
    }
    assert stored["close"].tolist() == [100.0, 101.0, 102.5]
    assert stored["high"].iloc[0] == 101.0  # the stored T0 candle was not replaced by the invalid row


def test_cache_is_never_stale_after_writes_from_another_connection(store_url: str, tmp_path) -> None:  # noqa: ANN001
    cache = tmp_path / "cache"
    ts = [T0 + i * H for i in range(6)]
    reader = open_store(store_url, cache_dir=cache)
    writer = open_store(store_url, cache_dir=cache)
    try:
        writer.insert("BTC/USDT", "1h", _frame(ts, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
        first = reader.load("BTC/USDT", "1h")  # builds the cache file
        files_after_first = sorted(p.name for p in cache.rglob("*.arrow"))
        writer.upsert("BTC/USDT", "1h", _frame([T0 + 2 * H], [30.0]))
        second = reader.load("BTC/USDT", "1h")
        second_ranged = reader.load("BTC/USDT", "1h", start=T0 + 2 * H, end=T0 + 3 * H)
        writer.delete("BTC/USDT", "1h", start=T0 + 5 * H)
        third = reader.load("BTC/USDT", "1h")
        writer.insert("BTC/USDT", "1h", _frame([T0 + 6 * H], [7.0]))
        fourth = reader.load("BTC/USDT", "1h")
        files_at_end = sorted(p.name for p in cache.rglob("*.arrow"))
    finally:
        reader.close()
        writer.close()
    assert files_after_first == ["BTC-USDT__1h__v1.arrow"]
    assert first["close"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert second["close"].tolist() == [1.0, 2.0, 30.0, 4.0, 5.0, 6.0]
    assert second_ranged["close"].tolist() == [30.0]
    assert third["close"].tolist() == [1.0, 2.0, 30.0, 4.0, 5.0]
    assert fourth["close"].tolist() == [1.0, 2.0, 30.0, 4.0, 5.0, 7.0]
    assert files_at_end == ["BTC-USDT__1h__v4.arrow"]  # older versions are cleaned up


def test_recreated_sqlite_database_never_reuses_the_old_cache(tmp_path) -> None:  # noqa: ANN001
    url, cache = f"sqlite:///{tmp_path}/db.sqlite", tmp_path / "cache"
    with open_store(url, cache_dir=cache) as store:
        store.insert("BTC/USDT", "1h", _frame([T0], [1.0]))
        assert store.load("BTC/USDT", "1h")["close"].tolist() == [1.0]
    (tmp_path / "db.sqlite").unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"db.sqlite{suffix}").unlink(missing_ok=True)
    with open_store(url, cache_dir=cache) as store:
        store.insert("BTC/USDT", "1h", _frame([T0], [2.0]))  # version 1 again, but a new store id
        assert store.load("BTC/USDT", "1h")["close"].tolist() == [2.0]


def test_replica_receives_the_same_accepted_writes(tmp_path) -> None:  # noqa: ANN001
    primary_url, replica_url = f"sqlite:///{tmp_path}/a.sqlite", f"sqlite:///{tmp_path}/b.sqlite"
    with open_store(primary_url, replica_url=replica_url) as store:
        store.insert("BTC/USDT", "1h", _frame([T0, T0 + H], [1.0, 2.0]))
        store.upsert("BTC/USDT", "1h", _frame([T0 + H, T0 + 2 * H], [20.0, 3.0]))
        store.delete("BTC/USDT", "1h", end=T0 + H)
    with open_store(replica_url) as replica:
        assert replica.load("BTC/USDT", "1h")["close"].tolist() == [20.0, 3.0]


def test_symbols_must_be_unified_and_urls_known(tmp_path) -> None:  # noqa: ANN001
    with open_store(f"sqlite:///{tmp_path}/x.sqlite") as store:
        with pytest.raises(DataError, match="'BTCUSDT' is not a unified symbol"):
            store.insert("BTCUSDT", "1h", _frame([T0], [1.0]))
        with pytest.raises(DataError, match="invalid timeframe"):
            store.load("BTC/USDT", "1hour")
    with pytest.raises(StoreError, match="unsupported store URL 'mysql://u:\\*\\*\\*@h/db'"):
        open_store("mysql://u:secret@h/db")
    store = open_store(f"sqlite:///{tmp_path}/nested/dir/y.sqlite")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.load("BTC/USDT", "1h")


def test_in_memory_sqlite_works_without_a_cache() -> None:
    with open_store("sqlite:///:memory:") as store:
        assert store.insert("BTC/USDT", "1h", _frame([T0, T0 + H], [1.0, 2.0])) == 2
        assert store.load("BTC/USDT", "1h")["close"].tolist() == [1.0, 2.0]


def test_postgres_binary_copy_codec_round_trips() -> None:
    ts = np.array([T0, T0 + H, 2**53 - 1], dtype="int64")
    cols = [np.array([1.5, -0.0, 1e-300]), np.array([2.0, np.pi, 7.0]), np.array([0.5, 1.0, 3.0]),
            np.array([1.0, 2.0, 5.0]), np.array([0.0, 10.25, 1e12])]
    decoded = decode_copy_binary(encode_copy_binary((ts, *cols)))
    assert decoded[0].tolist() == ts.tolist()
    for got, want in zip(decoded[1:], cols):
        assert got.tobytes() == want.tobytes()
