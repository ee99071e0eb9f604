"""``thunes data import`` refuses absurd or unreadable input with one clear line, and stores nothing from it.

Rules: a candle's open time must lie in 2009-01-03 .. now + one bar (thunes.data.quality); a file with any
refused row is refused whole unless ``--skip-bad-rows`` is given; a file that cannot be read (empty, UTF-16,
binary, the wrong ``--format``, a truncated gzip) is one ``error: ...`` line and exit status 2, never a
traceback. Runs the real ``thunes`` entry point (``thunes.cli.main``) on a real SQLite store.
"""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from thunes.cli import main
from thunes.data.store import open_store

H = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01
HEADER = "ts,open,high,low,close,volume\n"
Y1969 = -H  # 1969-12-31 23:00 UTC
Y2255 = 8_999_996_400_000  # 2255-03-14 UTC


def _thunes(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``thunes ARGV`` in-process: (exit status, stdout, stderr)."""
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _import(capsys, db: str, path, *extra: str) -> tuple[int, str, str]:
    return _thunes(capsys, "data", "import", str(path), "--symbol", "BTC/USDT", "--timeframe", "1h",
                   "--db", db, *extra)


def _stored(db: str) -> list:
    with open_store(db) as store:
        return [(s.symbol, s.timeframe, s.first, s.last, s.rows) for s in store.series()]


def _assert_one_line_error(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture()
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/store.sqlite"


def test_timestamps_in_1969_and_2255_refuse_the_file_naming_the_rows_and_store_nothing(tmp_path, db, capsys):
    # Arrange: one sane candle between a 1969 and a 2255 one (the reported import)
    path = tmp_path / "absurd.csv"
    path.write_text(HEADER + f"{Y1969},1,2,0.5,1.5,10\n{T0},1,2,0.5,1.5,10\n{Y2255},1,2,0.5,1.5,10\n")
    # Act
    code, _, err = _import(capsys, db, path)
    # Assert: one line naming both rows, their reasons and the count; the store holds nothing
    line = _assert_one_line_error(code, err)
    assert "refused, nothing stored: 2 of 3 row(s) invalid" in line
    assert "row 0 (1969-12-31 23:00:00): timestamp before 2009-01-03" in line
    assert "row 2 (2255-03-14 " in line and "timestamp in the future" in line
    assert "--skip-bad-rows" in line
    assert _stored(db) == []


def test_skip_bad_rows_stores_the_valid_rows_and_lists_the_rejected(tmp_path, db, capsys):
    path = tmp_path / "absurd.csv"
    path.write_text(HEADER + f"{Y1969},1,2,0.5,1.5,10\n{T0},1,2,0.5,1.5,10\n{Y2255},1,2,0.5,1.5,10\n")
    code, out, err = _import(capsys, db, path, "--skip-bad-rows")
    assert code == 0, err
    assert "written 1, rejected 2" in out
    assert "rejected row 0 (1969-12-31 23:00:00): timestamp before 2009-01-03" in err
    assert _stored(db) == [("BTC/USDT", "1h", T0, T0, 1)]


def test_data_list_after_a_refused_import_shows_only_sane_candles(tmp_path, db, capsys):
    good = tmp_path / "good.csv"
    good.write_text(HEADER + "".join(f"{T0 + i * H},1,2,0.5,1.5,10\n" for i in range(3)))
    assert _import(capsys, db, good)[0] == 0
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + f"{T0},9,9,9,9,9\n{Y2255},1,2,0.5,1.5,10\n")
    _assert_one_line_error(*_import(capsys, db, bad, "--upsert")[::2])
    # The stored candle the refused file would have replaced is untouched, and list shows no absurd range
    with open_store(db) as store:
        assert store.load("BTC/USDT", "1h")["close"].tolist() == [1.5, 1.5, 1.5]
    code, out, _ = _thunes(capsys, "data", "list", "--db", db)
    assert code == 0 and "2024-01-01 00:00" in out and "2255" not in out


@pytest.mark.parametrize(("name", "content", "fmt", "cause"), [
    ("utf16.csv", (HEADER + f"{T0},1,2,0.5,1.5,10\n").encode("utf-16"), None, "UTF-16"),
    ("utf16le.csv", (HEADER + f"{T0},1,2,0.5,1.5,10\n").encode("utf-16-le"), None, "UTF-16"),
    ("random.csv", np.random.default_rng(7).bytes(4096), None, "cannot read"),
    ("latin1.csv", (HEADER + f"{T0},1,2,0.5,1.5,10\n").encode() + "# prix en €\n".encode("cp1252"), "csv",
     "not UTF-8"),
    ("empty.csv", b"", None, "empty"),
    ("empty.csv.gz", gzip.compress(b""), None, "empty"),
    ("empty.parquet", b"", "parquet", "empty"),
    ("blank.csv", b"\n\n  \n", None, "empty"),
    ("header-only.csv", HEADER.encode(), None, "no candle rows"),
    ("truncated.csv.gz", gzip.compress((HEADER + f"{T0},1,2,0.5,1.5,10\n" * 500).encode())[:40], None, "gzip"),
    ("candles.csv", (HEADER + f"{T0},1,2,0.5,1.5,10\n").encode(), "parquet", "Parquet"),
    ("candles.parquet", b"PAR1 this is not really parquet PAR1", None, "as parquet"),
])
def test_unreadable_files_are_one_clear_line_and_exit_2(tmp_path, db, capsys, name, content, fmt, cause):
    path = tmp_path / name
    path.write_bytes(content)
    code, _, err = _import(capsys, db, path, *(["--format", fmt] if fmt else []))
    line = _assert_one_line_error(code, err)
    assert str(path) in line and cause in line
    assert _stored(db) == []


def test_an_empty_parquet_table_is_refused(tmp_path, db, capsys):
    path = tmp_path / "zero-rows.parquet"
    pd.DataFrame({c: pd.Series(dtype="float64") for c in ("ts", "open", "high", "low", "close", "volume")}) \
        .to_parquet(path)
    line = _assert_one_line_error(*_import(capsys, db, path)[::2])
    assert "no candle rows" in line
    assert _stored(db) == []


def test_data_check_of_a_utf16_file_is_one_line_too(tmp_path, capsys):
    path = tmp_path / "utf16.csv"
    path.write_bytes((HEADER + f"{T0},1,2,0.5,1.5,10\n").encode("utf-16"))
    line = _assert_one_line_error(*_thunes(capsys, "data", "check", str(path), "--timeframe", "1h")[::2])
    assert "UTF-16" in line


def test_data_check_flags_absurd_timestamps_as_errors(tmp_path, capsys):
    path = tmp_path / "absurd.csv"
    path.write_text(HEADER + f"{Y1969},1,2,0.5,1.5,10\n{T0},1,2,0.5,1.5,10\n{Y2255},1,2,0.5,1.5,10\n")
    code, out, _ = _thunes(capsys, "data", "check", str(path), "--timeframe", "1h")
    assert code == 1
    assert "ERROR ts_before_2009" in out and "ERROR ts_in_future" in out
    assert "(0 missing bars)" in out
