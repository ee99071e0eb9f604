"""Data quality: every kind of problem is found, reported with numbers, and bad rows never reach the store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from thunes.core.candles import candles_frame, ts_ms
from thunes.data.quality import check_candles, fill_gaps, split_valid

H = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01: timestamps before 2009-01-03 are refused (test_sane_time_range_*)


def _frame(n: int = 10, start: int = T0) -> pd.DataFrame:
    ts = start + np.arange(n, dtype="int64") * H
    close = 100 + np.arange(n, dtype="float64")
    return candles_frame(ts, close - 0.5, close + 1, close - 1, close, np.full(n, 5.0))


def test_clean_series_is_ok():
    report = check_candles(_frame(), "1h")
    assert report.ok and report.gaps == () and report.errors == ()


def test_gap_is_reported_with_missing_bar_count_and_never_filled():
    frame = _frame(10).drop(_frame(10).index[3:6])
    report = check_candles(frame, "1h")
    assert report.ok  # a gap is a warning, not an error
    assert report.gaps == ((T0 + 2 * H, T0 + 6 * H, 3),)
    assert report.missing_bars == 3
    assert len(frame) == 7  # nothing was invented


def test_explicit_fill_returns_flat_zero_volume_bars_at_previous_close():
    frame = _frame(10).drop(_frame(10).index[3:6])
    filled = fill_gaps(frame, "1h")
    assert list(ts_ms(filled)) == [T0 + 3 * H, T0 + 4 * H, T0 + 5 * H]
    assert (filled["close"] == 102.0).all() and (filled["volume"] == 0).all()


def test_duplicate_unsorted_misaligned_and_bad_ohlc_are_errors():
    raw = pd.DataFrame({
        "ts": [T0 + t for t in (0, H, H, 3 * H, 2 * H, 5 * H + 7)],
        "open": [1, 1, 1, 1, 1, 1], "high": [2, 2, 2, 0.5, 2, 2], "low": [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
        "close": [1, 1, 1, 1, 1, 1], "volume": [1, 1, 1, -1, 1, np.nan],
    })
    report = check_candles(raw, "1h")
    counts = {i.kind: i.count for i in report.errors}
    assert counts == {"duplicate_ts": 1, "out_of_order": 1, "misaligned": 1, "high_below_open_close": 1,
                      "negative_volume": 1, "nan_volume": 1}
    assert not report.ok


def test_split_valid_rejects_each_bad_row_with_a_reason_and_keeps_the_good_ones():
    raw = pd.DataFrame({
        "ts": [T0 + t for t in (0, H, 2 * H, 3 * H, 3 * H, 4 * H + 1)],
        "open": [1, 1, -1, 1, 1, 1], "high": [2, 0.9, 2, 2, 2, 2], "low": [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
        "close": [1, 1, 1, 1, 1, 1], "volume": [1, 1, 1, 1, 1, 1],
    })
    result = split_valid(raw, "1h")
    assert list(ts_ms(result.good)) == [T0, T0 + 3 * H]
    reasons = dict(zip(result.rejected["row"], result.rejected["reason"]))
    assert reasons[1] == "'high' is below max(open, close)"
    assert reasons[2] == "'open' is not positive"
    assert reasons[4].startswith("duplicate timestamp")
    assert "not aligned" in reasons[5]


def test_zero_volume_flat_runs_and_jumps_are_warnings():
    frame = _frame(50)
    frame.iloc[10:13, :] = [[109.0, 109.0, 109.0, 109.0, 0.0]] * 3
    frame.iloc[40, :] = [139.0, 2000.0, 138.0, 1999.0, 5.0]
    report = check_candles(frame, "1h")
    assert report.flat_runs == ((T0 + 10 * H, T0 + 12 * H, 3),)
    assert any(ts == T0 + 40 * H for ts, _ in report.jumps)


def test_real_btc_1m_has_exactly_one_80_minute_gap_and_72_flat_bars(sample_dir):
    if sample_dir is None:
        pytest.skip("needs ../shared/data/binance_BTCUSDT_1m.csv.gz (real data)")
    raw = pd.read_csv(sample_dir / "binance_BTCUSDT_1m.csv.gz")
    report = check_candles(raw, "1m")
    assert report.ok
    gap_before = pd.Timestamp("2023-03-24 12:39", tz="UTC").value // 1_000_000
    gap_after = pd.Timestamp("2023-03-24 14:00", tz="UTC").value // 1_000_000
    assert report.gaps == ((gap_before, gap_after, 80),)
    assert report.flat_bars == 72
    (first, last, bars), = report.flat_runs
    assert (first, last, bars) == (pd.Timestamp("2023-03-24 11:28", tz="UTC").value // 1_000_000, gap_before, 72)


# Property: whatever the input, the validation gate splits it exactly, and what it lets through has no errors.
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_value = st.one_of(st.floats(min_value=-5, max_value=200), st.sampled_from([np.nan, np.inf, 100.0, 0.0]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 2), _value, _value, _value, _value, _value),
                min_size=0, max_size=30))
def test_split_valid_partitions_rows_and_good_rows_pass_the_checker(rows):  # noqa: ANN001
    ts = [T0 + slot * H + (offset * 60_000 if offset == 2 else 0) for slot, offset, *_ in rows]
    table = pd.DataFrame({"ts": ts, **{c: [r[2 + i] for r in rows] for i, c in
                                       enumerate(("open", "high", "low", "close", "volume"))}})
    result = split_valid(table, "1h")
    assert len(result.good) + len(result.rejected) == len(rows)
    assert (result.rejected["reason"] != "").all()
    report = check_candles(result.good, "1h")
    assert report.errors == ()


def test_rows_without_a_timestamp_are_an_error_and_the_rest_is_still_checked():
    table = pd.DataFrame({"ts": [T0, "oops", T0 + 2 * H, None], "open": [1.0, 1.0, 1.0, 1.0], "high": [2.0, 2.0, 2.0, 2.0],
                          "low": [0.5, 0.5, 0.5, 0.5], "close": [1.5, 1.5, 1.5, 1.5], "volume": [1.0, 1.0, 1.0, 1.0]})
    report = check_candles(table, "1h")
    assert [(i.kind, i.count) for i in report.errors] == [("nan_ts", 2)]
    assert report.rows == 4 and report.gaps == ((T0, T0 + 2 * H, 1),)


# -- the sane time range (2009-01-03 .. now + one bar), one rule for every write into the store ------------
NOW = T0 + 100 * H


@pytest.mark.parametrize(("ts", "reason"), [
    (-3_600_000, "timestamp before 2009-01-03"),  # 1969-12-31 23:00
    (0, "timestamp before 2009-01-03"),
    (1_230_940_800_000 - H, "timestamp before 2009-01-03"),  # the last hour before the floor
    (NOW + 2 * H, "timestamp in the future"),
    (8_999_999_999_000 // H * H, "timestamp in the future"),  # 2255
    (1e300, "timestamp in the future"),  # beyond int64: clipped, not wrapped around
])
def test_sane_time_range_rejects_rows_outside_2009_to_now_plus_one_bar(ts, reason):
    raw = pd.DataFrame({"ts": [T0, ts], "open": [1.0, 1.0], "high": [2.0, 2.0], "low": [0.5, 0.5],
                        "close": [1.5, 1.5], "volume": [1.0, 1.0]})
    result = split_valid(raw, "1h", now_ms=NOW)
    assert list(ts_ms(result.good)) == [T0]
    (row,) = result.rejected.itertuples()
    assert row.row == 1 and row.reason.startswith(reason)


def test_sane_time_range_bounds_are_inclusive():
    """2009-01-03 00:00 and the bar opening one bar after now (a forming candle a little early) are accepted."""
    floor = 1_230_940_800_000
    raw = pd.DataFrame({"ts": [floor, NOW + H], "open": [1.0, 1.0], "high": [2.0, 2.0], "low": [0.5, 0.5],
                        "close": [1.5, 1.5], "volume": [1.0, 1.0]})
    assert split_valid(raw, "1h", now_ms=NOW).rejected.empty


def test_check_reports_out_of_range_rows_as_errors_not_as_a_huge_gap():
    frame = _frame(5)
    raw = pd.DataFrame({"ts": [-H, *ts_ms(frame), 8_999_996_400_000],
                        **{c: [1.0, *frame[c], 1.0] for c in ("open", "high", "low", "close", "volume")}})
    report = check_candles(raw, "1h", now_ms=NOW)
    kinds = {i.kind: i.count for i in report.errors}
    assert kinds == {"ts_before_2009": 1, "ts_in_future": 1}
    assert report.missing_bars == 0
