"""Timestamps are converted to epoch milliseconds explicitly, whatever unit pandas gave the index.

pandas 2 builds datetime indexes in nanoseconds, pandas 3 in microseconds (``datetime64[us]``); code that
divides ``index.asi8`` by 1e6 silently gets dates in 1970 or filters out everything. Every command that
filters by date must select the same candles whatever the unit of the frame it was handed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from thunes.core.candles import candles_frame, ts_ms
from thunes.core.timeframes import index_ms, resample

UNITS = ("s", "ms", "us", "ns")
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def _frame(unit: str, rows: int = 2000, step_ms: int = 3_600_000) -> pd.DataFrame:
    ts = T0 + np.arange(rows, dtype="int64") * step_ms
    rng = np.random.default_rng(7)
    close = 100 + np.cumsum(rng.normal(0, 1, rows))
    frame = candles_frame(ts, close, close + 1, close - 1, close, np.full(rows, 10.0))
    frame.index = frame.index.as_unit(unit)
    return frame


@pytest.mark.parametrize("unit", UNITS)
def test_index_ms_is_epoch_milliseconds_for_every_unit(unit):
    frame = _frame(unit, rows=3)
    assert frame.index.unit == unit
    assert index_ms(frame.index).tolist() == [T0, T0 + 3_600_000, T0 + 7_200_000]
    assert ts_ms(frame).tolist() == [T0, T0 + 3_600_000, T0 + 7_200_000]


@pytest.mark.parametrize("unit", UNITS)
def test_resample_keeps_the_dates_whatever_the_unit(unit):
    out = resample(_frame(unit, rows=48), "1d")
    assert [str(d.date()) for d in out.index] == ["2024-01-01", "2024-01-02"]


@pytest.mark.parametrize("unit", ("us", "ns"))
@pytest.mark.parametrize("command", (["backtest", "--json"], ["features", "compute"]))
def test_since_and_until_select_the_same_candles_whatever_the_unit(unit, command, monkeypatch, tmp_path):
    """``--since/--until`` on a microsecond index (pandas 3) keep exactly the requested window."""
    import thunes.data.samples as samples

    frame = _frame(unit)
    real = samples.load_sample_candles

    def sample_in_unit(symbol, timeframe, **kw):  # the sample loader, handing back a frame in ``unit``
        return dataclasses.replace(real(symbol, timeframe, **kw), frame=frame)

    monkeypatch.setattr(samples, "load_sample_candles", sample_in_unit)
    monkeypatch.chdir(tmp_path)
    from thunes.cli import root

    out = tmp_path / "features.parquet"
    args = [*command, "--sample", "--since", "2024-01-10", "--until", "2024-02-10"]
    if command[0] == "features":
        args += ["--out", str(out)]
    result = CliRunner().invoke(root, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    if command[0] == "features":
        got = pd.read_parquet(out)
        stamps = pd.DatetimeIndex(got.index if isinstance(got.index, pd.DatetimeIndex) else got["ts"])
        assert str(stamps.min().date()) == "2024-01-10"
        assert stamps.max() < pd.Timestamp("2024-02-10", tz="UTC")
        assert len(stamps) == 31 * 24
    else:
        assert '"n_trades"' in result.output


def test_ml_candles_resampled_from_a_microsecond_index_keep_their_dates():
    """The candle loader's 30m candles keep their dates; a µs index must not become 1970 (the resampling
    from a stored finer timeframe on a µs index: tests/data/test_sources.py)."""
    from thunes.config import DataSettings
    from thunes.data.sources import CandleQuery, load_candles

    loaded = load_candles(CandleQuery(symbol="BTC/USDT", timeframe="30m", source="synthetic"), DataSettings())
    assert len(loaded.frame) > 1000
    assert loaded.frame.index[0].year >= 2017
    steps = set(pd.Series(ts_ms(loaded.frame)).diff().dropna().astype(int).unique())
    assert 1_800_000 in steps


def test_no_code_reads_a_datetime_index_in_an_assumed_unit():
    """``index.asi8`` is in the index's own unit (ns, µs, ...): only :func:`index_ms` may read it."""
    root = Path(__file__).resolve().parents[2]
    offenders = [f"{path.relative_to(root)}:{n}" for folder in ("thunes", "tests", "benchmarks")
                 for path in sorted((root / folder).rglob("*.py")) if path.name != "test_time_units.py"
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if ".asi8" in line and path.relative_to(root).as_posix() != "thunes/core/timeframes.py"]
    assert offenders == []
