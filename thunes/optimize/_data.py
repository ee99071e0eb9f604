"""Candles for a study: the candle store when it has the series, the sample data otherwise.

A study records where its candles came from and a fingerprint of them, so a worker that joins the study
later (another process or another machine) loads the same window and refuses to run on different data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from thunes.core.candles import ts_ms
from thunes.core.errors import DataError, InsufficientData
from thunes.core.redact import redact_url
from thunes.core.timeframes import utc_ms
from thunes.data.samples import load_sample_candles

__all__ = ["StudyData", "candles_fingerprint", "load_study_candles"]


@dataclass(frozen=True, slots=True)
class StudyData:
    frame: pd.DataFrame
    source: str  # "store:<url>" or "sample"
    description: str  # for people: the file or store and whether the data is real


def candles_fingerprint(frame: pd.DataFrame) -> str:
    """A short digest of the timestamps and closes: equal data gives equal fingerprints."""
    h = hashlib.sha256()
    h.update(ts_ms(frame).tobytes())
    h.update(np.ascontiguousarray(frame["close"].to_numpy(dtype="float64")).tobytes())
    return h.hexdigest()[:16]


def _from_store(url: str, symbol: str, timeframe: str, start: int | None, end: int | None
                ) -> pd.DataFrame | None:
    if url.startswith("sqlite:"):
        # Only read an existing file: a study must not create an empty store as a side effect.
        path = url.split("sqlite:///", 1)[-1]
        if not path or path == ":memory:" or not Path(path).exists():
            return None
    try:
        from thunes.data.store import open_store
    except ImportError:  # pragma: no cover - the data layer is part of every build
        return None
    with open_store(url) as store:
        frame = store.load(symbol, timeframe, start, end)
    return frame if len(frame) else None


def _as_ms(value: str | int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return utc_ms(value)
    except ValueError as exc:
        raise DataError(f"cannot read {value!r} as a date (use e.g. 2024-01-31 or 2024-01-31T12:00)") from exc


def load_study_candles(
    symbol: str,
    timeframe: str,
    *,
    source: str = "auto",
    store_url: str | None = None,
    since: str | int | None = None,
    until: str | int | None = None,
    sample_dir: str | Path | None = None,
) -> StudyData:
    """Candles ``since <= ts < until`` from ``source``: ``auto`` (store if it has rows, else the samples),
    ``store`` (the store only) or ``sample`` (real sample files in ``sample_dir`` or ``../shared/data``,
    synthetic when absent)."""
    start = _as_ms(since)
    end = _as_ms(until)
    if source not in ("auto", "store", "sample"):
        raise DataError(f"data source must be auto, store or sample, not {source!r}")
    if source in ("auto", "store") and store_url:
        frame = _from_store(store_url, symbol, timeframe, start, end)
        if frame is not None:
            # The source is stored in the study: never with a password (workers are given the URL).
            return StudyData(frame, f"store:{redact_url(store_url)}", f"candle store ({len(frame)} rows)")
        if source == "store":
            raise InsufficientData(
                f"the candle store {redact_url(store_url)} has no {symbol} {timeframe} candles in the "
                f"requested range; fill it with {_fill_hint(symbol, timeframe)}, or use --source sample"
            )
    sample = load_sample_candles(symbol, timeframe, sample_dir=sample_dir)
    frame = sample.frame
    if start is not None:
        frame = frame[frame.index >= pd.Timestamp(start, unit="ms", tz="UTC")]
    if end is not None:
        frame = frame[frame.index < pd.Timestamp(end, unit="ms", tz="UTC")]
    if not len(frame):
        raise InsufficientData(f"no {symbol} {timeframe} sample candles in the requested range")
    empty_store = source != "sample" and bool(store_url)
    if sample.real:
        note = " (the candle store has none)" if empty_store else ""
        return StudyData(frame, "sample", f"real sample data{note}: {sample.source}")
    where = "no sample file and no candles in the store" if empty_store else "no sample file"
    return StudyData(frame, "sample", f"SYNTHETIC data ({where}; for real candles run "
                                      f"{_fill_hint(symbol, timeframe)}): {sample.source}")


def _fill_hint(symbol: str, timeframe: str) -> str:
    return (f"`thunes data import --sample {symbol} --timeframe {timeframe}` or "
            f"`thunes data download --symbol {symbol} --timeframe {timeframe}`")
