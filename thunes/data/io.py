"""Candle files in and out: our CSV, Binance public-archive klines, Parquet; imports into the store.

Formats (detected from the file's first bytes when not given):

* ``csv``: header ``ts,open,high,low,close,volume`` (extra columns ignored), ``ts`` in epoch ms UTC
  (µs values are scaled down; ISO date strings are parsed as UTC). Gzip is detected by magic bytes.
* ``binance``: the public kline archive (data.binance.vision): 12 columns, no header (newer files may
  have an ``open_time,…`` header), open time in ms, or µs from 2025 on, decided per row.
* ``parquet``: a canonical candle frame (``ts`` DatetimeIndex) or a ``ts`` column plus OHLCV.

Reading never drops or repairs rows silently: the raw table goes through
:func:`thunes.data.quality.split_valid` on import, so each bad row is rejected with its reason and
the good rows are written.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import pandas as pd

from thunes.core.candles import OHLCV, ts_ms
from thunes.core.errors import DataError
from thunes.core.timeframes import index_ms, parse_timeframe
from thunes.data.samples import load_sample_candles, sample_file
from thunes.data.store import CandleStore, WriteMode, normalize_symbol

__all__ = [
    "FileFormat",
    "FORMATS",
    "detect_format",
    "read_candle_file",
    "write_candle_file",
    "ImportResult",
    "import_file",
    "import_sample",
]

log = logging.getLogger(__name__)

FileFormat = Literal["csv", "binance", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "binance", "parquet")
_BINANCE_COLUMNS = ["ts", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "trades",
                    "taker_base", "taker_quote", "ignore"]
_TS_ALIASES = ("ts", "timestamp", "open_time", "time", "date", "datetime")
_US_THRESHOLD = 10**14  # ms timestamps stay below this until the year 5138; µs ones are above it


def _first_line(path: Path) -> str:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:  # type: ignore[operator]
        return fh.readline().strip()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def detect_format(path: str | Path) -> FileFormat:
    """``parquet`` by magic bytes; else ``binance`` for headerless rows or an ``open_time`` header; else ``csv``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    with open(path, "rb") as fh:
        if fh.read(4) == b"PAR1":
            return "parquet"
    line = _first_line(path)
    fields = [f.strip().strip('"').lower() for f in line.split(",")]
    if fields and _is_number(fields[0]):
        return "binance"
    if fields and fields[0] == "open_time" and len(fields) >= 12:
        return "binance"
    return "csv"


def _scale_ts(values: pd.Series) -> pd.Series:
    """Epoch ms from ms or µs integers (per row), or from ISO strings/datetimes; NaN where unparseable."""
    if pd.api.types.is_datetime64_any_dtype(values):
        index = pd.DatetimeIndex(values)
        if index.tz is None:
            index = index.tz_localize("UTC")
        return pd.Series(np.where(index.isna(), np.nan, index_ms(index).astype("float64")))
    numeric = pd.to_numeric(values, errors="coerce").astype("float64")
    if numeric.isna().all() and len(values):
        parsed = pd.to_datetime(values, utc=True, errors="coerce")
        return _scale_ts(pd.Series(parsed))
    big = numeric >= _US_THRESHOLD
    return numeric.where(~big, np.floor(numeric / 1000))


def _table(ts: pd.Series, frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"ts": _scale_ts(ts).to_numpy()})
    for col in OHLCV:
        out[col] = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype="float64")
    return out


def read_candle_file(path: str | Path, fmt: FileFormat | None = None) -> pd.DataFrame:
    """The raw candle table of a file: columns ``ts`` (ms, float so that bad values can be NaN) + OHLCV.

    Rows are in file order; nothing is sorted, deduplicated or dropped here.
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise DataError(f"unknown file format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        frame = pd.read_parquet(path)
        if isinstance(frame.index, pd.DatetimeIndex):
            frame = frame.reset_index(names="ts") if "ts" not in frame.columns else frame.reset_index(drop=True)
        _require(frame, path)
        return _table(frame[_ts_column(frame, path)], frame)
    compression = "gzip" if open(path, "rb").read(2) == b"\x1f\x8b" else None
    if fmt == "binance":
        header = 0 if _first_line(path).lower().startswith("open_time") else None
        frame = pd.read_csv(path, header=header, names=_BINANCE_COLUMNS if header is None else None,
                            compression=compression, low_memory=False)
        if header is not None:
            frame = frame.rename(columns={frame.columns[0]: "ts"})
        if frame.shape[1] < 6:
            raise DataError(f"{path}: Binance kline rows need at least 6 columns, found {frame.shape[1]}")
        return _table(frame["ts"], frame)
    frame = pd.read_csv(path, compression=compression, low_memory=False)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    _require(frame, path)
    return _table(frame[_ts_column(frame, path)], frame)


def _ts_column(frame: pd.DataFrame, path: Path) -> str:
    for name in _TS_ALIASES:
        if name in frame.columns:
            return name
    raise DataError(f"{path}: no timestamp column; expected one of {', '.join(_TS_ALIASES)}")


def _require(frame: pd.DataFrame, path: Path) -> None:
    missing = [c for c in OHLCV if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected a header ts,open,high,low,close,volume")


def write_candle_file(frame: pd.DataFrame, path: str | Path, fmt: Literal["csv", "parquet"] | None = None) -> int:
    """Write a canonical frame as CSV (``ts`` ms + OHLCV; gzip when the name ends in ``.gz``) or Parquet.

    Returns the number of rows written. The CSV is exactly what :func:`read_candle_file` reads back.
    """
    path = Path(path)
    if fmt is None:
        fmt = "parquet" if path.suffix == ".parquet" else "csv"
    if fmt not in ("csv", "parquet"):
        raise DataError(f"export format must be csv or parquet, not {fmt!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(path)
    else:
        out = pd.DataFrame({"ts": ts_ms(frame), **{c: frame[c].to_numpy() for c in OHLCV}})
        out.to_csv(path, index=False, compression="gzip" if path.suffix == ".gz" else None)
    return len(frame)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: rows read, rows written (new or changed), rejected rows with reasons."""

    source: str
    fmt: str
    read: int
    written: int
    rejected: pd.DataFrame
    real: bool = True

    @property
    def n_rejected(self) -> int:
        return len(self.rejected)


def import_file(
    store: CandleStore,
    path: str | Path,
    *,
    symbol: str,
    timeframe: str,
    fmt: FileFormat | None = None,
    mode: WriteMode = "insert",
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Read ``path`` and write its valid rows; invalid rows come back in ``rejected`` with a reason."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    table = read_candle_file(path, fmt)
    result = store.write(normalize_symbol(symbol), str(parse_timeframe(timeframe)), table, mode=mode,
                         source=f"import:{path.name}", progress=progress)
    log.info("imported %s: %d read, %d written, %d rejected", path, len(table), result.written, result.n_rejected,
             extra={"fields": {"file": str(path), "format": fmt, "read": len(table), "written": result.written,
                               "rejected": result.n_rejected}})
    return ImportResult(str(path), fmt, len(table), result.written, result.rejected)


def import_sample(
    store: CandleStore,
    symbol: str,
    timeframe: str,
    *,
    sample_dir: str | Path | None = None,
    synthetic_rows: int = 20_000,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import the real sample file for (symbol, timeframe) when present, else realistic synthetic candles."""
    path = sample_file(symbol, timeframe, sample_dir)
    if path is not None:
        return import_file(store, path, symbol=symbol, timeframe=timeframe, fmt="csv", progress=progress)
    sample = load_sample_candles(symbol, timeframe, sample_dir=sample_dir, synthetic_rows=synthetic_rows)
    result = store.write(symbol, timeframe, sample.frame, source="synthetic", progress=progress)
    log.info("no real sample for %s %s: stored %d synthetic candles", symbol, timeframe, result.written)
    return ImportResult(sample.source, "synthetic", len(sample.frame), result.written, result.rejected, real=False)
