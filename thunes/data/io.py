"""Candle files in and out: our CSV, Binance public-archive klines, Parquet; imports into the store.

Formats (detected from the file's first bytes when not given):

* ``csv``: header ``ts,open,high,low,close,volume`` (extra columns ignored), ``ts`` in epoch ms UTC
  (µs values are scaled down; ISO date strings are parsed as UTC). Gzip is detected by magic bytes.
* ``binance``: the public kline archive (data.binance.vision): 12 columns, no header (newer files may
  have an ``open_time,…`` header), open time in ms, or µs from 2025 on, decided per row.
* ``parquet``: a canonical candle frame (``ts`` DatetimeIndex) or a ``ts`` column plus OHLCV.

Reading never drops or repairs rows silently: the raw table goes through
:func:`thunes.data.quality.split_valid` on import. A file with any refused row (bad values, a
timestamp outside the sane range 2009-01-03 .. now + one bar, ...) is refused as a whole and nothing
from it is stored; the error names the first rows, their reasons and the count. ``skip_bad_rows=True``
(``thunes data import --skip-bad-rows``) stores the valid rows instead and reports the others.

A file that cannot be read at all (empty, UTF-16 or other non-UTF-8 text, binary data, a CSV given
as ``--format parquet``, a truncated gzip) raises one :class:`~thunes.core.errors.DataError` line
naming the file and the cause, never a parser traceback.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from thunes.core.candles import OHLCV, ts_ms
from thunes.core.errors import DataError
from thunes.core.timeframes import index_ms, parse_timeframe
from thunes.data.quality import check_spacing, format_ms, split_valid
from thunes.data.samples import load_sample_candles, sample_file
from thunes.data.store import CandleStore, WriteMode, normalize_symbol

__all__ = [
    "FORMATS",
    "FileFormat",
    "ImportResult",
    "detect_format",
    "export_format",
    "import_file",
    "import_sample",
    "read_candle_file",
    "read_table_file",
    "write_candle_file",
]

log = logging.getLogger(__name__)

FileFormat = Literal["csv", "binance", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "binance", "parquet")
_BINANCE_COLUMNS = ["ts", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "trades",
                    "taker_base", "taker_quote", "ignore"]
_TS_ALIASES = ("ts", "timestamp", "open_time", "time", "date", "datetime")
_US_THRESHOLD = 10**14  # ms timestamps stay below this until the year 5138; µs ones are above it
_SNIFF_BYTES = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _head(path: Path) -> bytes:
    """The first bytes of the file's content (decompressed when it is gzip)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_SNIFF_BYTES)
        if raw[:2] != _GZIP_MAGIC:
            return raw
        with gzip.open(path, "rb") as gz:
            return gz.read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read {path}: {_one_line(exc)} (a truncated or corrupt gzip?)") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _check_text(path: Path, fmt: str) -> None:
    """Refuse, with the cause, content that is not a UTF-8 text table: empty, UTF-16, binary."""
    head = _head(path)
    if not head.strip():
        raise DataError(f"cannot read {path} as {fmt}: the file is empty")
    if head[:2] in _UTF16_BOMS or (b"\x00" in head and head[1:2] == b"\x00"):
        raise DataError(f"cannot read {path} as {fmt}: it is UTF-16 text; save it as UTF-8")
    if b"\x00" in head:
        raise DataError(f"cannot read {path} as {fmt}: it holds binary data (NUL bytes), not CSV text")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(head) < _SNIFF_BYTES or exc.start < len(head) - 3:  # not a character cut by the sniff size
            raise DataError(f"cannot read {path} as {fmt}: not UTF-8 text (byte 0x{head[exc.start]:02x} at "
                            f"offset {exc.start})") from None


@contextmanager
def _reading(path: Path, fmt: str) -> Iterator[None]:
    """Turn a parser's failure into one DataError line naming the file, the format and the cause."""
    try:
        yield
    except DataError:
        raise
    except UnicodeDecodeError as exc:
        raise DataError(f"cannot read {path} as {fmt}: not UTF-8 text ({_one_line(exc)})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"cannot read {path} as {fmt}: the file is empty") from None
    except (ValueError, OSError, EOFError, zlib.error, IndexError, KeyError) as exc:
        # pyarrow's ArrowInvalid and pandas' ParserError are ValueErrors
        hint = " (is it really a Parquet file? try --format csv)" if fmt == "parquet" else ""
        raise DataError(f"cannot read {path} as {fmt}: {_one_line(exc)}{hint}") from None


def _first_line(path: Path) -> str:
    head = _head(path)
    return head.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip()


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
    _check_text(path, "csv")
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

    Rows are in file order; nothing is sorted, deduplicated or dropped here. A file that cannot be read
    as ``fmt``, or holds no rows, is one :class:`DataError` line.
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise DataError(f"unknown file format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"cannot read {path} as {fmt}: the file is empty")
    if fmt != "parquet":
        _check_text(path, fmt)
    with _reading(path, fmt):
        table = _read_table(path, fmt)
    if table.empty:
        raise DataError(f"{path}: no candle rows (only a header?)")
    return table


def read_table_file(path: str | Path, *, index_col: int | None = 0) -> pd.DataFrame:
    """Any table a command reads (a feature set, a training dataset): Parquet (by its magic bytes) or
    CSV (gzip detected), with the same one-line :class:`DataError` as :func:`read_candle_file` for a
    file that cannot be read or holds no rows. ``index_col``: the CSV column that is the index."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    with open(path, "rb") as fh:
        fmt = "parquet" if fh.read(4) == b"PAR1" else "csv"
    if path.stat().st_size == 0:
        raise DataError(f"cannot read {path} as {fmt}: the file is empty")
    if fmt == "csv":
        _check_text(path, fmt)
    with _reading(path, fmt):
        if fmt == "parquet":
            table = pd.read_parquet(path)
        else:
            with open(path, "rb") as fh:
                compression = "gzip" if fh.read(2) == _GZIP_MAGIC else None
            table = pd.read_csv(path, index_col=index_col, compression=compression)
    if table.empty:
        raise DataError(f"{path}: no rows (only a header?)")
    return table


def _read_table(path: Path, fmt: FileFormat) -> pd.DataFrame:
    if fmt == "parquet":
        frame = pd.read_parquet(path)
        if isinstance(frame.index, pd.DatetimeIndex):
            frame = frame.reset_index(names="ts") if "ts" not in frame.columns else frame.reset_index(drop=True)
        _require(frame, path)
        return _table(frame[_ts_column(frame, path)], frame)
    with open(path, "rb") as fh:
        compression = "gzip" if fh.read(2) == _GZIP_MAGIC else None
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


EXPORT_SUFFIXES = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet"}


def export_format(path: str | Path) -> Literal["csv", "parquet"]:
    """``csv`` or ``parquet`` from the file name; DataError for any other name (``btc.xlsx`` is not
    written as CSV under an Excel name)."""
    name = Path(path).name.lower()
    for suffix, fmt in EXPORT_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt  # type: ignore[return-value]
    raise DataError(f"cannot export to {Path(path).name!r}: the name must end in "
                    f"{', '.join(EXPORT_SUFFIXES)} (the format follows the name)")


def write_candle_file(frame: pd.DataFrame, path: str | Path, fmt: Literal["csv", "parquet"] | None = None) -> int:
    """Write a canonical frame as CSV (``ts`` ms + OHLCV; gzip when the name ends in ``.gz``) or Parquet.

    Returns the number of rows written. The CSV is exactly what :func:`read_candle_file` reads back.
    """
    path = Path(path)
    if fmt is None:
        fmt = export_format(path)
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
    skip_bad_rows: bool = False,
    now_ms: int | None = None,
) -> ImportResult:
    """Read ``path`` and write it, all or nothing.

    A file with any invalid row raises :class:`DataError` naming the first rows with their reasons and
    the count, and nothing is stored. With ``skip_bad_rows`` the valid rows are written and the invalid
    ones come back in ``rejected`` with a reason. ``now_ms``: "now" for the sane-time-range rule.
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    sym, tf = normalize_symbol(symbol), str(parse_timeframe(timeframe))
    table = read_candle_file(path, fmt)
    # A wrong --timeframe first: it would otherwise read as rows misaligned to it, or as bars missing.
    check_spacing(table["ts"].to_numpy(), tf, what=f"{path}: the rows")
    if not skip_bad_rows:
        refused = split_valid(table, tf, now_ms=now_ms).rejected
        if len(refused):
            raise DataError(_refusal(path, len(table), refused))
    result = store.write(sym, tf, table, mode=mode, source=f"import:{path.name}", progress=progress, now_ms=now_ms)
    log.info("imported %s: %d read, %d written, %d rejected", path, len(table), result.written, result.n_rejected,
             extra={"fields": {"file": str(path), "format": fmt, "read": len(table), "written": result.written,
                               "rejected": result.n_rejected}})
    return ImportResult(str(path), fmt, len(table), result.written, result.rejected)


def _refusal(path: Path, n_rows: int, refused: pd.DataFrame, shown: int = 3) -> str:
    """One line: how many rows are refused, the first few with their reasons, and the way out."""
    first = "; ".join(f"row {r.row} ({format_ms(r.ts)}): {r.reason}" for r in refused.head(shown).itertuples())
    more = f"; and {len(refused) - shown} more" if len(refused) > shown else ""
    valid = n_rows - len(refused)
    return (f"{path}: refused, nothing stored: {len(refused):,} of {n_rows:,} row(s) invalid: {first}{more}. "
            f"Fix the file, or pass --skip-bad-rows to store the {valid:,} valid row(s) and report the rest")


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
