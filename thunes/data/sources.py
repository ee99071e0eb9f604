"""Where a command's candles come from: one query, one loader, one rule.

Every command and service that reads candles (backtest, features, plot, paper, parity, optimize, train,
forecast, the audits, the API's charts) asks :func:`load_candles` with a :class:`CandleQuery`. The rule:

* ``file`` given (``--csv FILE``): that file, nothing else.
* ``source="auto"`` (the default): the candle store (``store_url``, default ``data.url``; an SQLite file
  that does not exist is not created), at the timeframe asked or, failing that, resampled from the
  *coarsest* stored timeframe that divides it (``30m`` from ``5m`` before ``1m``; gaps stay gaps); else the
  real sample files (``data.sample_dir``, ``$THUNES_SAMPLE_DIR`` or ``../shared/data``, resampled the same
  way); else :class:`~thunes.core.errors.InsufficientData` naming ``thunes data download``/``thunes data
  import``, ``--sample`` and ``--source synthetic``. Auto never gives synthetic candles.
* ``source="store"``: the store only (same resampling); nothing there is an error.
* ``source="sample"`` (the ``--sample`` flag): the real sample files; where none exists, synthetic candles,
  labelled ``SYNTHETIC`` (``real=False``) so that the caller warns. This keeps ``make demo`` running
  offline on a fresh clone.
* ``source="synthetic"``: generated candles (a seeded random walk), whatever data exists.

``since``/``until`` (UTC dates or epoch ms; ``until`` exclusive) bound the result. A store series with no
row in that range counts as absent (auto goes on to the sample files). An empty result is an error.
:attr:`LoadedCandles.source` says where the candles came from, for people; :attr:`LoadedCandles.origin`
says it for code (an optimisation study records it so that its workers reload the same window).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from thunes.core.errors import DataError, InsufficientData
from thunes.core.timeframes import index_ms, parse_timeframe, resample, utc_ms

__all__ = ["SOURCES", "CandleQuery", "LoadedCandles", "Origin", "Source", "load_candles", "no_data_message"]

Source = Literal["auto", "store", "sample", "synthetic"]
SOURCES: tuple[str, ...] = ("auto", "store", "sample", "synthetic")


class Origin(StrEnum):
    """What kind of place the candles came from."""

    FILE = "file"
    STORE = "store"
    SAMPLE = "sample"
    SYNTHETIC = "synthetic"


@dataclass(frozen=True, slots=True, kw_only=True)
class CandleQuery:
    """What candles a caller wants and where it allows them to come from (see the module docstring)."""

    symbol: str
    timeframe: str
    since: str | int | None = None  # first candle: UTC date text or epoch ms
    until: str | int | None = None  # end, exclusive
    source: Source = "auto"
    file: Path | None = None
    store_url: str | None = None  # default: data_settings.url
    synthetic_rows: int = 20_000


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedCandles:
    frame: pd.DataFrame
    source: str  # for people: the file, store or sample file, resampling, SYNTHETIC
    real: bool  # False only for synthetic candles
    origin: Origin
    store_url: str | None = None  # the store read (origin STORE), with its password


def _as_ms(value: str | int | None, name: str) -> int | None:
    if value is None or isinstance(value, int):
        return value
    try:
        return utc_ms(value)
    except ValueError as exc:
        raise DataError(f"cannot read {name}={value!r} as a date (use e.g. 2024-01-31 or "
                        "2024-01-31T12:00)") from exc


def _divides(source: str, target: str) -> bool:
    s, t = parse_timeframe(source), parse_timeframe(target)
    if s.is_calendar or t.is_calendar:
        return str(s) == str(t)
    return s.ms <= t.ms and t.ms % s.ms == 0


def _cut(frame: pd.DataFrame, start: int | None, end: int | None) -> pd.DataFrame:
    if start is None and end is None:
        return frame
    ts = index_ms(frame.index)
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= ts >= start
    if end is not None:
        keep &= ts < end
    return frame.loc[keep]


def _store_exists(url: str) -> bool:
    """False for an SQLite file that is not there: looking must not create an empty store."""
    if not url.startswith("sqlite:"):
        return True
    from thunes.data._sqlite import sqlite_path

    path = sqlite_path(url)
    return path is not None and path.exists()


def _from_store(query: CandleQuery, tf: str, url: str, data_settings: Any, start: int | None,
                end: int | None) -> tuple[pd.DataFrame, str] | None:
    from thunes.core.redact import redact_url
    from thunes.data.store import normalize_symbol, open_store

    if not _store_exists(url):
        return None
    symbol = normalize_symbol(query.symbol)
    # Reading needs no replica; the read cache is the settings' (beside an SQLite file without settings).
    with open_store(url, cache_dir=getattr(data_settings, "cache_dir", "auto")) as store:
        stored = [s.timeframe for s in store.series() if s.symbol == symbol and s.rows > 0]
        # The timeframe itself first, then the coarsest one dividing it (fewest rows to read, same bars).
        usable = sorted((t for t in stored if _divides(t, tf)), key=lambda t: -parse_timeframe(t).ms)
        for chosen in usable:
            finer = str(parse_timeframe(chosen)) != tf
            lo, hi = start, end
            if finer:  # whole target bars: from the one holding `since` to the end of the one before `until`
                step = parse_timeframe(tf).ms
                lo = None if start is None else start - start % step
                hi = None if end is None else -(-end // step) * step
            frame = store.load(symbol, chosen, lo, hi)
            if frame.empty:
                continue
            where = f"store {redact_url(url)}"
            if finer:
                frame = resample(frame, tf)
                where += f" {chosen} resampled to {tf}"
            return frame, where
    return None


def _from_sample(query: CandleQuery, tf: str, sample_dir: Any, *, synthetic_ok: bool) -> Any:
    from thunes.data.samples import finer_sample_file, load_sample_candles, sample_file

    has_real = sample_file(query.symbol, tf, sample_dir) or finer_sample_file(query.symbol, tf, sample_dir)
    if not has_real and not synthetic_ok:
        return None
    return load_sample_candles(query.symbol, tf, sample_dir=sample_dir, synthetic_rows=query.synthetic_rows)


def _from_file(path: Path) -> pd.DataFrame:
    from thunes.core.candles import candles_frame
    from thunes.data.io import read_candle_file

    raw = read_candle_file(path).dropna().drop_duplicates("ts").sort_values("ts")
    return candles_frame(raw.ts.to_numpy(dtype="int64"), raw.open, raw.high, raw.low, raw.close, raw.volume)


def _load_hint(symbol: str, timeframe: str) -> str:
    return (f"`thunes data download --symbol {symbol} --timeframe {timeframe} --since 2024-01-01` or "
            f"`thunes data import FILE --symbol {symbol} --timeframe {timeframe}`")


def no_data_message(symbol: str, timeframe: str, store: str) -> str:
    """The one-line error of ``auto`` without data: what to run to get some."""
    return (f"no {symbol} {timeframe} candles (nor at a finer timeframe dividing it) in the candle store "
            f"{store} and no sample file (../shared/data, $THUNES_SAMPLE_DIR or data.sample_dir); load some "
            f"with {_load_hint(symbol, timeframe)}, or pass --sample (the sample files, synthetic candles "
            "without them) or --source synthetic")


def load_candles(query: CandleQuery, data_settings: Any = None) -> LoadedCandles:
    """The candles ``query`` asks for, by the rule of the module docstring.

    ``data_settings`` is ``settings.data`` (``url``, ``cache_dir``, ``sample_dir``); without it, the store
    is ``query.store_url`` and the sample folder the default one.
    Raises :class:`InsufficientData` when the allowed sources hold nothing in the range, and
    :class:`DataError` for an unknown source or an unreadable date or file.
    """
    from thunes.core.redact import redact_url

    if query.source not in SOURCES:
        raise DataError(f"unknown candle source {query.source!r}: use {', '.join(SOURCES)}")
    tf = str(parse_timeframe(query.timeframe))
    start, end = _as_ms(query.since, "since"), _as_ms(query.until, "until")
    span = f" between {query.since or 'the start'} and {query.until or 'the end'}"
    ranged = (start, end) != (None, None)
    if query.file is not None:
        frame = _cut(_from_file(Path(query.file)), start, end)
        if frame.empty:
            raise InsufficientData(f"no candles in {query.file}{span if ranged else ''}")
        return LoadedCandles(frame=frame, source=f"file {query.file}", real=True, origin=Origin.FILE)

    url = str(query.store_url or getattr(data_settings, "url", "") or "")
    sample_dir = getattr(data_settings, "sample_dir", None)
    if query.source in ("auto", "store") and url:
        found = _from_store(query, tf, url, data_settings, start, end)
        if found is not None:
            frame, where = found
            frame = _cut(frame, start, end)  # a resampled first bucket may start before `since`
            if not frame.empty:
                return LoadedCandles(frame=frame, source=where, real=True, origin=Origin.STORE, store_url=url)
    if query.source == "store":
        raise InsufficientData(
            f"the candle store {redact_url(url) or '(none)'} has no {query.symbol} {tf} candles (nor at a "
            f"finer timeframe dividing it){span if ranged else ''}; load some with "
            f"{_load_hint(query.symbol, tf)}")

    if query.source in ("auto", "sample"):
        sample = _from_sample(query, tf, sample_dir, synthetic_ok=query.source == "sample")
        if sample is None:
            raise InsufficientData(no_data_message(query.symbol, tf, redact_url(url) or "(none)"))
        frame = _cut(sample.frame, start, end)
        if sample.real:
            nothing_stored = "; nothing stored for this series" if query.source == "auto" and url else ""
            where, origin = f"sample {sample.source} (real{nothing_stored})", Origin.SAMPLE
        else:
            where = f"sample: no real sample file, SYNTHETIC candles {sample.source}"
            origin = Origin.SYNTHETIC
        if frame.empty:
            raise InsufficientData(f"no {query.symbol} {tf} candles{span} in the {where}")
        return LoadedCandles(frame=frame, source=where, real=sample.real, origin=origin)

    from thunes.data.samples import synthetic_candles

    frame = synthetic_candles(query.symbol, tf, rows=query.synthetic_rows)
    where = f"SYNTHETIC candles (--source synthetic, {query.synthetic_rows} rows)"
    frame = _cut(frame, start, end)
    if frame.empty:
        raise InsufficientData(f"no {query.symbol} {tf} {where}{span}: they start on 2024-01-01")
    return LoadedCandles(frame=frame, source=where, real=False, origin=Origin.SYNTHETIC)
