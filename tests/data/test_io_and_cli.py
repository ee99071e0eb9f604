"""Import/export formats and the ``thunes data`` commands, end to end on a real SQLite store."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
from click.testing import CliRunner

from thunes.cli import root
from thunes.core.candles import ts_ms
from thunes.core.errors import DataError
from thunes.data.io import detect_format, read_candle_file, write_candle_file
from thunes.data.store import open_store
from thunes.data.synthetic import generate_candles

M = 60_000
T0 = 1_704_067_200_000  # 2024-01-01 (candles before 2009-01-03 are refused)


def _run(args, db):
    result = CliRunner().invoke(root, [*args, "--db", db] if args[0] == "data" else args, catch_exceptions=False)
    return result


def test_binance_archive_klines_with_ms_and_us_timestamps_are_read(tmp_path):
    rows = [
        [1735689540000, "1", "2", "0.5", "1.5", "10", 0, "0", 1, "0", "0", "0"],  # 2024-12-31 23:59 ms
        [1735689600000000, "1.5", "3", "1", "2", "11", 0, "0", 1, "0", "0", "0"],  # 2025-01-01 00:00 in µs
    ]
    path = tmp_path / "BTCUSDT-1m.csv"
    path.write_text("\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    assert detect_format(path) == "binance"
    table = read_candle_file(path)
    assert list(table["ts"]) == [1735689540000, 1735689600000]
    assert list(table["close"]) == [1.5, 2.0]


def test_csv_gzip_and_parquet_round_trip(tmp_path):
    frame = generate_candles(50, timeframe="1m", seed=3)
    for name in ("c.csv.gz", "c.parquet", "c.csv"):
        write_candle_file(frame, tmp_path / name)
        back = read_candle_file(tmp_path / name)
        np.testing.assert_array_equal(back["ts"].to_numpy(), ts_ms(frame))
        np.testing.assert_allclose(back["close"].to_numpy(), frame["close"].to_numpy(), rtol=0, atol=0)
    with gzip.open(tmp_path / "c.csv.gz", "rt") as fh:
        assert fh.readline().strip() == "ts,open,high,low,close,volume"


def test_cli_import_skip_bad_rows_keeps_good_ones_and_stored_rows_survive(tmp_path):
    db = f"sqlite:///{tmp_path}/s.sqlite"
    good = tmp_path / "good.csv"
    good.write_text(f"ts,open,high,low,close,volume\n{T0},1,2,0.5,1.5,10\n{T0 + M},1.5,2,1,1.8,3\n")
    assert _run(["data", "import", str(good), "--symbol", "BTC/USDT", "--timeframe", "1m"], db).exit_code == 0
    bad = tmp_path / "bad.csv"
    # row 0 would overwrite a stored candle with an invalid one; row 1 is new and valid; row 2 is NaN.
    bad.write_text(f"ts,open,high,low,close,volume\n{T0},1,0.1,0.5,1.5,10\n{T0 + 2 * M},1.8,2.2,1.7,2.0,4\n"
                   f"{T0 + 3 * M},,2,1,1,1\n")
    out = _run(["data", "import", str(bad), "--symbol", "BTC/USDT", "--timeframe", "1m", "--upsert",
                "--skip-bad-rows"], db)
    assert out.exit_code == 0
    assert "written 1, rejected 2" in out.output
    with open_store(db) as store:
        frame = store.load("BTC/USDT", "1m")
    assert list(ts_ms(frame)) == [T0, T0 + M, T0 + 2 * M]
    assert frame["high"].iloc[0] == 2.0  # the stored candle was not overwritten by the invalid row


def test_cli_import_without_skip_bad_rows_refuses_the_whole_file(tmp_path):
    db = f"sqlite:///{tmp_path}/s.sqlite"
    bad = tmp_path / "bad.csv"
    bad.write_text(f"ts,open,high,low,close,volume\n{T0},1,2,0.5,1.5,10\n{T0 + M},,2,1,1,1\n")
    out = CliRunner().invoke(root, ["data", "import", str(bad), "--symbol", "BTC/USDT", "--timeframe", "1m",
                                    "--db", db])
    assert isinstance(out.exception, DataError)  # `thunes` prints "error: ..." and exits 2
    assert "1 of 2 row(s) invalid: row 1" in str(out.exception)
    with open_store(db) as store:
        assert store.count("BTC/USDT", "1m") == 0


def test_cli_list_check_export(tmp_path):
    db = f"sqlite:///{tmp_path}/s.sqlite"
    frame = generate_candles(300, timeframe="1h", seed=5)
    frame = frame.drop(frame.index[100:104])
    with open_store(db) as store:
        store.insert("ETH/USDT", "1h", frame)
    listed = _run(["data", "list", "--json"], db)
    (row,) = json.loads(listed.output)
    assert (row["symbol"], row["rows"], row["gaps"], row["missing_bars"]) == ("ETH/USDT", 296, 1, 4)
    checked = _run(["data", "check", "--symbol", "ETH/USDT", "--timeframe", "1h", "--json"], db)
    assert checked.exit_code == 0
    report = json.loads(checked.output)
    assert report["missing_bars"] == 4 and report["ok"] is True
    out = tmp_path / "eth.parquet"
    assert _run(["data", "export", "--symbol", "ETH/USDT", "--timeframe", "1h", "--out", str(out)], db).exit_code == 0
    assert len(pd.read_parquet(out)) == 296


def test_cli_check_exits_nonzero_on_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(f"ts,open,high,low,close,volume\n{T0},1,2,0.5,1.5,10\n{T0},1,2,0.5,1.5,10\n"
                   f"{T0 + M},1,0.2,0.5,1.5,10\n")
    result = CliRunner().invoke(root, ["data", "check", str(bad), "--timeframe", "1m"])
    assert result.exit_code == 1
    assert "duplicate" in result.output and "ERROR" in result.output


def test_cli_import_sample_says_whether_data_is_real(tmp_path, sample_dir):
    db = f"sqlite:///{tmp_path}/s.sqlite"
    result = _run(["data", "import", "--sample", "ETH/USDT", "--timeframe", "1h"], db)
    assert result.exit_code == 0
    assert ("real data" in result.output) == (sample_dir is not None)
    with open_store(db) as store:
        assert store.count("ETH/USDT", "1h") > 1000
