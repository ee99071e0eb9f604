"""Data commands refuse nonsense instead of answering it with exit status 0 (issue 14, item 8).

Rules: ``data export`` of a series that is not stored is an error, not a header-only file; ``--out``
must name a format that is written (.csv, .csv.gz, .parquet), never CSV under an .xlsx name; an import
whose rows are spaced differently from ``--timeframe`` (an hourly file as 1m) is refused and names the
timeframe the rows have; a file import never claims its candles are "real data" (only the sample
import knows its provenance). Real SQLite store, real entry point.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from thunes.cli import main
from thunes.core.errors import DataError
from thunes.data.quality import check_spacing, typical_step_ms

H = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01


def _thunes(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _hourly_csv(path, rows: int = 48) -> None:
    ts = T0 + H * np.arange(rows)
    close = 100 + np.arange(rows, dtype=float)
    pd.DataFrame({"ts": ts, "open": close, "high": close + 1, "low": close - 1, "close": close,
                  "volume": 1.0}).to_csv(path, index=False)


def test_export_of_a_series_that_is_not_stored_is_an_error_and_writes_nothing(tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/s.sqlite"
    _hourly_csv(tmp_path / "h.csv")
    assert _thunes(capsys, "data", "import", str(tmp_path / "h.csv"), "--symbol", "BTC/USDT", "--timeframe", "1h",
                   "--db", db)[0] == 0
    code, _, err = _thunes(capsys, "data", "export", "--symbol", "FOO/USDT", "--timeframe", "1h", "--db", db,
                           "--out", str(tmp_path / "foo.csv"))
    assert code == 2
    assert err.strip() == "error: no FOO/USDT 1h candles in the store, nothing exported; stored: BTC/USDT 1h"
    assert not (tmp_path / "foo.csv").exists()


@pytest.mark.parametrize("name", ["btc.xlsx", "btc.json", "btc"])
def test_export_refuses_a_name_whose_format_it_does_not_write(tmp_path, capsys, name):
    code, _, err = _thunes(capsys, "data", "export", "--symbol", "BTC/USDT", "--timeframe", "1h",
                           "--db", f"sqlite:///{tmp_path}/s.sqlite", "--out", str(tmp_path / name))
    assert code == 2 and "--out" in err and ".csv, .csv.gz, .parquet" in err
    assert not (tmp_path / name).exists()


def test_an_hourly_file_imported_as_1m_is_refused_and_names_its_timeframe(tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/s.sqlite"
    _hourly_csv(tmp_path / "h.csv")
    code, _, err = _thunes(capsys, "data", "import", str(tmp_path / "h.csv"), "--symbol", "BTC/USDT",
                           "--timeframe", "1m", "--db", db)
    assert code == 2
    assert "are 1h apart, not 1m" in err and "--timeframe 1h" in err and len(err.strip().splitlines()) == 1
    code, out, _ = _thunes(capsys, "data", "list", "--db", db)
    assert "the store is empty" in out


def test_the_typical_step_ignores_gaps_and_refuses_a_contradiction():
    ts = T0 + H * np.array([0, 1, 2, 3, 10, 11, 12, 40, 41])  # hourly with two gaps
    assert typical_step_ms(ts) == H
    check_spacing(ts, "1h")
    with pytest.raises(DataError, match="1h apart, not 4h"):
        check_spacing(ts, "4h")
    check_spacing(ts[:2], "1m")  # too few rows to tell


def test_a_file_import_does_not_claim_real_data(tmp_path, capsys):
    _hourly_csv(tmp_path / "h.csv")
    code, out, _ = _thunes(capsys, "data", "import", str(tmp_path / "h.csv"), "--symbol", "BTC/USDT",
                           "--timeframe", "1h", "--db", f"sqlite:///{tmp_path}/s.sqlite")
    assert code == 0
    assert "real" not in out and "from a file" in out


def test_commands_for_one_series_refuse_a_repeated_symbol_or_timeframe(capsys):
    for argv in (["features", "compute", "--sample", "--symbol", "BTC/USDT", "--symbol", "ETH/USDT"],
                 ["audit", "lookahead", "sma_cross", "--sample", "--timeframe", "1h", "--timeframe", "4h"],
                 ["plot", "--sample", "--symbol", "BTC/USDT", "--symbol", "ETH/USDT"]):
        code, _, err = _thunes(capsys, *argv)
        assert code == 2 and "this command takes one" in err, (argv, err)


def test_features_compute_refuses_an_output_name_it_does_not_write(tmp_path, capsys):
    code, _, err = _thunes(capsys, "features", "compute", "--sample", "--out", str(tmp_path / "f.xlsx"))
    assert code == 2 and "--out" in err and ".parquet or .csv" in err
    assert not (tmp_path / "f.xlsx").exists()


def test_data_check_of_an_hourly_file_as_1m_reports_the_timeframe_error(tmp_path, capsys):
    _hourly_csv(tmp_path / "h.csv")
    code, out, _ = _thunes(capsys, "data", "check", str(tmp_path / "h.csv"), "--timeframe", "1m")
    assert code == 1
    assert "ERROR timeframe: the rows are 1h apart, not 1m" in out
    assert _thunes(capsys, "data", "check", str(tmp_path / "h.csv"), "--timeframe", "1h")[0] == 0
