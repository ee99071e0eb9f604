"""Data quality: what is wrong with a candle series, and which rows may be written to the store.

Two entry points share the same vectorised numpy checks (a 1M-row series is checked in well under a
second):

* :func:`check_candles` / :func:`check_table` describe a whole series in a :class:`QualityReport`:
  errors (duplicate, out-of-order or misaligned timestamps, OHLC violations, non-positive prices,
  negative volume, NaN/inf) and warnings (gaps with their missing-bar counts, zero-volume flat runs,
  price jumps beyond ``jump_sigmas`` robust standard deviations). ``thunes data check`` prints it and
  exits non-zero when ``errors`` is not empty.
* :func:`split_valid` (:func:`valid_rows` on arrays) is the gate in front of every store write (imports, downloads, stream writes):
  it returns the good rows as a canonical frame and the rejected rows with a per-row reason, so a bad
  row never overwrites a stored candle. (``thunes data import`` goes further and refuses a whole file
  with any bad row unless ``--skip-bad-rows`` is given.)

The sane time range, the same for every path into the store: a candle's open time is refused when it
is before :data:`EARLIEST_CANDLE_MS` (2009-01-03, the first Bitcoin block: no crypto market existed
before it, so such a value is a wrong unit, column or a corrupt file, e.g. 1969 from a negative number)
or after now plus one bar (a candle that has not opened yet, e.g. 2255 from a seconds/ms mix-up). The
store is not tied to one exchange, so the floor is not Binance's launch (2017-07-14, see
:data:`BINANCE_LAUNCH_MS`): older Bitstamp or Kraken history stays importable.

Gaps are reported, never silently filled; :func:`fill_gaps` is the explicit option (flat bars at the
previous close with zero volume), and the caller logs what it filled.

A gap is described as ``(before_ts, after_ts, missing_bars)``: the open time of the last candle before
the hole, the open time of the first candle after it, and how many candles are absent between them
(BTC 1m on 2023-03-24: ``(12:39, 14:00, 80)``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from thunes.core.candles import OHLCV, candles_frame, ts_ms
from thunes.core.errors import DataError
from thunes.core.timeframes import Timeframe, align_ms, index_ms, parse_timeframe

__all__ = [
    "BINANCE_LAUNCH_MS",
    "DEFAULT_JUMP_SIGMAS",
    "EARLIEST_CANDLE_MS",
    "Issue",
    "QualityReport",
    "ValidationResult",
    "check_candles",
    "check_spacing",
    "check_table",
    "fill_gaps",
    "find_gaps",
    "format_ms",
    "out_of_range",
    "split_valid",
    "typical_step_ms",
    "valid_rows",
]

log = logging.getLogger(__name__)

#: Log-return outliers beyond this many robust (MAD-based) standard deviations are reported. Crypto
#: returns are fat-tailed, so a normal-theory 4-5 sigma would flag hundreds of genuine moves.
DEFAULT_JUMP_SIGMAS = 30.0
_MAD_TO_SIGMA = 1.4826
#: No candle opens before 2009-01-03 00:00 UTC, the Bitcoin genesis block (see the module docstring).
EARLIEST_CANDLE_MS = 1_230_940_800_000
#: Binance opened on 2017-07-14; for reference only, the store accepts older data from other exchanges.
BINANCE_LAUNCH_MS = 1_499_990_400_000
#: Timestamps are clipped to this magnitude before the int64 cast (1e300 would wrap to garbage).
_TS_CLIP = 2**62
_PRICES = ("open", "high", "low", "close")


@dataclass(frozen=True, slots=True, kw_only=True)
class Issue:
    """One kind of problem: how many rows have it and the first few timestamps (epoch ms)."""

    kind: str
    count: int
    message: str
    examples: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "message": self.message,
            "examples": [_iso(t) for t in self.examples],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityReport:
    """The result of :func:`check_candles`. ``ok`` is True when there are no errors (warnings allowed)."""

    timeframe: str
    rows: int
    first: int | None
    last: int | None
    errors: tuple[Issue, ...]
    warnings: tuple[Issue, ...]
    gaps: tuple[tuple[int, int, int], ...]
    flat_runs: tuple[tuple[int, int, int], ...]
    jumps: tuple[tuple[int, float], ...]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def missing_bars(self) -> int:
        return int(sum(g[2] for g in self.gaps))

    @property
    def flat_bars(self) -> int:
        return int(sum(r[2] for r in self.flat_runs))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "timeframe": self.timeframe,
            "rows": self.rows,
            "first": _iso(self.first),
            "last": _iso(self.last),
            "errors": [i.to_dict() for i in self.errors],
            "warnings": [i.to_dict() for i in self.warnings],
            "gaps": [
                {"before": _iso(a), "after": _iso(b), "missing_bars": m, "before_ms": a, "after_ms": b}
                for a, b, m in self.gaps
            ],
            "missing_bars": self.missing_bars,
            "flat_runs": [{"first": _iso(a), "last": _iso(b), "bars": n} for a, b, n in self.flat_runs],
            "flat_bars": self.flat_bars,
            "jumps": [{"ts": _iso(t), "sigmas": round(s, 2)} for t, s in self.jumps],
        }


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """Rows fit for the store (canonical frame) and rejected rows (``ts`` in ms, OHLCV, ``reason``)."""

    good: pd.DataFrame
    rejected: pd.DataFrame = field(repr=False)

    @property
    def n_rejected(self) -> int:
        return len(self.rejected)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return format_ms(ms)


def format_ms(ms: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` UTC, or ``ts=<ms>`` for a value pandas cannot show (beyond 1677..2262)."""
    try:
        return pd.Timestamp(int(ms), unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError):  # OutOfBoundsDatetime is a ValueError
        return f"ts={int(ms)}"


def out_of_range(ts: np.ndarray, timeframe: str | Timeframe, *, now_ms: int | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Masks of open times ``(too_early, too_late)``: before :data:`EARLIEST_CANDLE_MS`, or after
    ``now_ms`` (default: the wall clock) plus one bar."""
    tf = parse_timeframe(timeframe)
    now = time.time_ns() // 1_000_000 if now_ms is None else int(now_ms)
    ts = np.asarray(ts, dtype="int64")
    return ts < EARLIEST_CANDLE_MS, ts > now + tf.ms


def _range_reasons(tf: Timeframe) -> tuple[str, str]:
    return ("timestamp before 2009-01-03, when no crypto market existed (wrong unit or column?)",
            f"timestamp in the future, after now + one {tf} bar (wrong unit or column?)")


def _examples(ts: np.ndarray, mask: np.ndarray, k: int) -> tuple[int, ...]:
    idx = np.flatnonzero(mask)[:k]
    return tuple(int(ts[i]) for i in idx)


def _table_arrays(table: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """ts (int64 ms), float64 OHLCV arrays and a mask of rows whose ``ts`` is missing or non-numeric.

    Accepts a canonical frame or a raw table with a ``ts`` column (epoch ms, or datetimes).
    Non-numeric OHLCV values become NaN (and are then reported or rejected as such).
    """
    missing = [c for c in OHLCV if c not in table.columns]
    if missing:
        raise DataError(f"candle table lacks column(s) {missing}; expected ts + {list(OHLCV)}")
    if "ts" in table.columns:
        raw = table["ts"]
        if pd.api.types.is_datetime64_any_dtype(raw):
            index = pd.DatetimeIndex(raw)
            bad_ts = np.asarray(index.isna())
            ts = np.where(bad_ts, 0, index_ms(index)).astype("int64")
        else:
            values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64")
            bad_ts = ~np.isfinite(values)
            ts = np.clip(np.where(bad_ts, 0, values), -_TS_CLIP, _TS_CLIP).astype("int64")
    else:
        ts = ts_ms(table)
        bad_ts = np.zeros(len(ts), dtype=bool)
    cols = {c: pd.to_numeric(table[c], errors="coerce").to_numpy(dtype="float64") for c in OHLCV}
    return ts, cols, bad_ts


def find_gaps(ts_sorted: np.ndarray, timeframe: str | Timeframe) -> list[tuple[int, int, int]]:
    """Gaps in sorted unique epoch-ms timestamps as ``(before_ts, after_ts, missing_bars)``."""
    tf = parse_timeframe(timeframe)
    if len(ts_sorted) < 2:
        return []
    if tf.is_calendar:
        dt = pd.to_datetime(ts_sorted, unit="ms", utc=True)
        months = np.asarray((dt.year - 1970) * 12 + (dt.month - 1), dtype="int64") // tf.count
        steps = np.diff(months)
        where = np.flatnonzero(steps > 1)
        return [(int(ts_sorted[i]), int(ts_sorted[i + 1]), int(steps[i] - 1)) for i in where]
    d = np.diff(ts_sorted)
    where = np.flatnonzero(d > tf.ms)
    # Misaligned neighbours can leave a partial step; count only whole candles that fit in between.
    missing = (d[where] - 1) // tf.ms
    return [(int(ts_sorted[i]), int(ts_sorted[i + 1]), int(m)) for i, m in zip(where, missing)]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first_index, last_index) of each run of True."""
    if not mask.any():
        return []
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


def check_candles(
    frame: pd.DataFrame,
    timeframe: str | Timeframe,
    *,
    jump_sigmas: float = DEFAULT_JUMP_SIGMAS,
    max_examples: int = 5,
    now_ms: int | None = None,
) -> QualityReport:
    """Check a candle frame (canonical, or a raw table with a ``ts`` ms column) for every known problem.

    The frame need not be sorted or unique: duplicate and out-of-order timestamps are reported as
    errors, and gaps, flat runs and jumps are computed on the sorted unique timestamps.
    """
    ts, cols, bad_ts = _table_arrays(frame)
    if not bad_ts.any():
        return check_table(ts, cols, timeframe, jump_sigmas=jump_sigmas, max_examples=max_examples, now_ms=now_ms)
    # Rows without a usable timestamp cannot be placed in time: report them, check the rest.
    keep = ~bad_ts
    report = check_table(ts[keep], {k: v[keep] for k, v in cols.items()}, timeframe,
                         jump_sigmas=jump_sigmas, max_examples=max_examples, now_ms=now_ms)
    count = int(bad_ts.sum())
    issue = Issue(kind="nan_ts", count=count,
                  message=f"{count} row(s) with a missing or non-numeric 'ts' (first at row {int(np.flatnonzero(bad_ts)[0])})")
    return replace(report, rows=len(ts), errors=(issue, *report.errors))


def check_table(
    ts: np.ndarray,
    cols: dict[str, np.ndarray],
    timeframe: str | Timeframe,
    *,
    jump_sigmas: float = DEFAULT_JUMP_SIGMAS,
    max_examples: int = 5,
    now_ms: int | None = None,
) -> QualityReport:
    """:func:`check_candles` on arrays: ``ts`` epoch ms (int64) and float64 columns open..volume."""
    tf = parse_timeframe(timeframe)
    ts = np.asarray(ts, dtype="int64")
    n = len(ts)
    errors: list[Issue] = []
    warnings: list[Issue] = []
    k = max_examples

    def err(kind: str, mask: np.ndarray, text: str, at: np.ndarray = ts) -> None:
        count = int(mask.sum())
        if count:
            errors.append(Issue(kind=kind, count=count, message=f"{count} {text}", examples=_examples(at, mask, k)))

    o, h, lo, c, v = (np.asarray(cols[name], dtype="float64") for name in OHLCV)
    finite = np.ones(n, dtype=bool)
    for name in OHLCV:
        bad = ~np.isfinite(cols[name])
        finite &= ~bad
        err(f"nan_{name}", bad, f"row(s) with NaN/inf '{name}'")
    for name in _PRICES:
        values = cols[name]
        err(f"nonpositive_{name}", np.isfinite(values) & (values <= 0), f"row(s) with non-positive '{name}'")
    err("negative_volume", np.isfinite(v) & (v < 0), "row(s) with negative volume")
    with np.errstate(invalid="ignore"):
        err("high_below_open_close", finite & (h < np.maximum(o, c)), "row(s) with high < max(open, close)")
        err("low_above_open_close", finite & (lo > np.minimum(o, c)), "row(s) with low > min(open, close)")
    early, late = out_of_range(ts, tf, now_ms=now_ms)
    err("ts_before_2009", early, _range_reasons(tf)[0].replace("timestamp", "row(s) with a timestamp", 1))
    err("ts_in_future", late, _range_reasons(tf)[1].replace("timestamp", "row(s) with a timestamp", 1))
    in_range = ~(early | late)
    if n:
        misaligned = np.zeros(n, dtype=bool)
        misaligned[in_range] = np.asarray(align_ms(ts[in_range], tf), dtype="int64") != ts[in_range]
        err("misaligned", misaligned, f"timestamp(s) not aligned to the {tf} timeframe")
    step = None if tf.is_calendar else typical_step_ms(ts[in_range])
    if step is not None and step != tf.ms:
        errors.append(Issue(kind="timeframe", count=n, message=f"the rows are {_step_text(step)} apart, not {tf}: "
                            f"the candles are {_step_text(step)} ones (use --timeframe {_step_text(step)})"))
    if n > 1:
        d = np.diff(ts)
        err("duplicate_ts", d == 0, "duplicate timestamp(s)", at=ts[1:])
        err("out_of_order", d < 0, "timestamp(s) earlier than the previous row", at=ts[1:])

    # Series-shape checks on time order, one row per timestamp (the first occurrence).
    order = np.argsort(ts, kind="stable")
    ts_sorted = ts[order]
    keep = np.ones(n, dtype=bool)
    if n > 1:
        keep[1:] = np.diff(ts_sorted) != 0
    idx = order[keep]
    idx = idx[in_range[idx]]  # an absurd timestamp is an error above, not a 2-million-bar gap here
    ts_u = ts[idx]

    gaps = find_gaps(ts_u, tf)
    if gaps:
        missing = sum(g[2] for g in gaps)
        warnings.append(Issue(kind="gaps", count=len(gaps), message=f"{len(gaps)} gap(s), {missing} missing bar(s)",
                              examples=tuple(g[0] for g in gaps[:k])))

    ou, hu, lu, cu, vu = o[idx], h[idx], lo[idx], c[idx], v[idx]
    flat = (vu == 0) & (ou == hu) & (hu == lu) & (lu == cu)
    flat_runs = [(int(ts_u[a]), int(ts_u[b]), int(b - a + 1)) for a, b in _runs(flat)]
    if flat_runs:
        bars = sum(r[2] for r in flat_runs)
        warnings.append(Issue(kind="zero_volume_flat", count=bars,
                              message=f"{bars} zero-volume flat bar(s) in {len(flat_runs)} run(s)",
                              examples=tuple(r[0] for r in flat_runs[:k])))

    jumps: list[tuple[int, float]] = []
    good_close = np.isfinite(cu) & (cu > 0)
    if good_close.sum() > 10:
        closes = cu[good_close]
        times = ts_u[good_close]
        r = np.diff(np.log(closes))
        med = float(np.median(r))
        sigma = float(np.median(np.abs(r - med))) * _MAD_TO_SIGMA
        if sigma > 0:
            z = np.abs(r - med) / sigma
            where = np.flatnonzero(z > jump_sigmas)
            jumps = [(int(times[i + 1]), float(z[i])) for i in where]
            if jumps:
                warnings.append(Issue(kind="price_jumps", count=len(jumps),
                                      message=f"{len(jumps)} close-to-close jump(s) beyond {jump_sigmas:g} robust sigmas",
                                      examples=tuple(j[0] for j in jumps[:k])))

    return QualityReport(
        timeframe=str(tf),
        rows=n,
        first=int(ts.min()) if n else None,
        last=int(ts.max()) if n else None,
        errors=tuple(errors),
        warnings=tuple(warnings),
        gaps=tuple(gaps),
        flat_runs=tuple(flat_runs),
        jumps=tuple(jumps),
    )


def split_valid(table: pd.DataFrame, timeframe: str | Timeframe, *, now_ms: int | None = None) -> ValidationResult:
    """Split candles into rows fit for the store and rejected rows, each with a clear reason.

    Accepts a canonical frame or a raw table with a ``ts`` column (epoch ms). Good rows come back as a
    canonical frame sorted by time; for a timestamp given more than once, the first row wins and the
    others are rejected as duplicates. A row is rejected for: NaN/inf in any column, a non-positive
    price, negative volume, high below max(open, close), low above min(open, close), a timestamp
    outside the sane range (before 2009-01-03 or after ``now_ms`` + one bar; ``now_ms`` defaults to the
    wall clock) or a timestamp not aligned to the timeframe.
    """
    tf = parse_timeframe(timeframe)
    ts, cols, bad_ts = _table_arrays(table)
    good_idx, reasons = valid_rows(ts, cols, tf, bad_ts=bad_ts, now_ms=now_ms)
    good = candles_frame(ts[good_idx], *(cols[name][good_idx] for name in OHLCV))
    bad_idx = np.flatnonzero(reasons != "")
    rejected = pd.DataFrame(
        {"row": bad_idx, "ts": ts[bad_idx], **{name: cols[name][bad_idx] for name in OHLCV},
         "reason": reasons[bad_idx].astype(str)}
    )
    return ValidationResult(good, rejected)


def valid_rows(ts: np.ndarray, cols: dict[str, np.ndarray], timeframe: str | Timeframe, *,
               bad_ts: np.ndarray | None = None, now_ms: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The checks of :func:`split_valid` on arrays (no pandas: the stream writer's hot path).

    ``ts``: int64 epoch ms; ``cols``: float64 arrays named ``open high low close volume``. Returns the
    indices of the good rows in time order and a per-row reason array (``""`` for good rows).
    """
    tf = parse_timeframe(timeframe)
    n = len(ts)
    reasons = np.full(n, "", dtype=object)
    if bad_ts is None:
        bad_ts = np.zeros(n, dtype=bool)

    def reject(mask: np.ndarray, text: str) -> None:
        fresh = mask & (reasons == "")
        reasons[fresh] = text

    reject(bad_ts, "'ts' is missing or non-numeric")
    early, late = out_of_range(ts, tf, now_ms=now_ms)
    before, after = _range_reasons(tf)
    reject(early, before)
    reject(late, after)

    for name in OHLCV:
        reject(~np.isfinite(cols[name]), f"'{name}' is missing, non-numeric or infinite")
    for name in _PRICES:
        with np.errstate(invalid="ignore"):
            reject(cols[name] <= 0, f"'{name}' is not positive")
    with np.errstate(invalid="ignore"):
        reject(cols["volume"] < 0, "'volume' is negative")
        o, h, lo, c = (cols[p] for p in _PRICES)
        reject(h < np.maximum(o, c), "'high' is below max(open, close)")
        reject(lo > np.minimum(o, c), "'low' is above min(open, close)")
    if n:
        live = reasons == ""  # align only sane timestamps (a calendar alignment of year 1e9 would fail)
        misaligned = np.zeros(n, dtype=bool)
        misaligned[live] = np.asarray(align_ms(ts[live], tf), dtype="int64") != ts[live]
        reject(misaligned, f"timestamp not aligned to the {tf} timeframe")
        order = np.argsort(ts, kind="stable")
        candidate = order[reasons[order] == ""]
        dup = np.zeros(len(candidate), dtype=bool)
        if len(candidate) > 1:
            dup[1:] = np.diff(ts[candidate]) == 0
        reasons[candidate[dup]] = "duplicate timestamp in the input (the first row was kept)"
        good_idx = candidate[~dup]
    else:
        good_idx = np.zeros(0, dtype="int64")
    return good_idx, reasons


def fill_gaps(frame: pd.DataFrame, timeframe: str | Timeframe, *, method: str = "ffill") -> pd.DataFrame:
    """Return only the candles that fill the gaps of a canonical frame (an explicit, opt-in repair).

    ``ffill``: each missing bar is flat at the previous close with zero volume (what Binance itself
    publishes for minutes without trades). Calendar timeframes (``1M``) cannot be filled this way.
    """
    if method != "ffill":
        raise DataError(f"unknown gap-fill method {method!r}; supported: 'ffill'")
    tf = parse_timeframe(timeframe)
    if tf.is_calendar:
        raise DataError("gap filling is not supported for calendar timeframes (1M)")
    ts = ts_ms(frame)
    closes = frame["close"].to_numpy(dtype="float64")
    parts_ts: list[np.ndarray] = []
    parts_px: list[np.ndarray] = []
    gaps = find_gaps(ts, tf)
    before_pos = np.searchsorted(ts, [g[0] for g in gaps])
    for (before, _after, missing), i in zip(gaps, before_pos):
        new_ts = before + tf.ms * np.arange(1, missing + 1, dtype="int64")
        parts_ts.append(new_ts)
        parts_px.append(np.full(missing, closes[i]))
    if not parts_ts:
        return candles_frame(np.zeros(0, dtype="int64"), *([np.zeros(0)] * 5))
    fill_ts = np.concatenate(parts_ts)
    px = np.concatenate(parts_px)
    return candles_frame(fill_ts, px, px, px, px, np.zeros(len(px)))


_STEP_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000))


def _step_text(ms: int) -> str:
    for unit, size in _STEP_UNITS:
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms} ms"


def typical_step_ms(ts: np.ndarray) -> int | None:
    """The most common spacing of the distinct timestamps (ms), or None when no spacing is shared by at
    least two steps and half of them (too few rows, or scattered ones). Gaps do not move it: a series with
    missing bars is still mostly spaced one bar apart."""
    values = np.unique(np.asarray(ts, dtype="float64")[np.isfinite(np.asarray(ts, dtype="float64"))])
    if len(values) < 3:
        return None
    steps, counts = np.unique(np.diff(values).astype("int64"), return_counts=True)
    best = int(np.argmax(counts))
    if counts[best] < 2 or 2 * counts[best] < counts.sum():
        return None
    return int(steps[best])


def check_spacing(ts: np.ndarray, timeframe: str, *, what: str = "the rows") -> None:
    """Refuse candles whose typical spacing contradicts ``timeframe`` (an hourly file imported as 1m
    would otherwise be stored as a 1m series with 59 missing bars in every hour)."""
    tf = parse_timeframe(timeframe)
    if tf.is_calendar:  # months differ in length
        return
    step = typical_step_ms(ts)
    if step is not None and step != tf.ms:
        raise DataError(f"{what} are {_step_text(step)} apart, not {timeframe}: the file holds "
                        f"{_step_text(step)} candles (pass --timeframe {_step_text(step)})")
