"""The candle store's port: :class:`CandleStore` (the interface every backend implements) and its types.

The backends (:mod:`thunes.data._sqlite`, :mod:`thunes.data._postgres`) subclass it here; callers open
one with :func:`thunes.data.store.open_store`, which also re-exports these names (see its docstring for
the schema, the write rules and the read cache).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from thunes.core.candles import OHLCV, candles_frame
from thunes.core.errors import DataError, StoreError
from thunes.core.redact import redact_url
from thunes.core.timeframes import parse_timeframe
from thunes.data._cache import ColumnarCache
from thunes.data.quality import format_ms, split_valid, valid_rows

__all__ = [
    "BATCH_ROWS",
    "Arrays",
    "CandleStore",
    "SeriesInfo",
    "WriteMode",
    "WriteResult",
    "frame_arrays",
    "normalize_symbol",
]

log = logging.getLogger("thunes.data.store")  # the name users filter on

#: ts (int64 epoch ms) followed by open, high, low, close, volume (float64).
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
WriteMode = Literal["insert", "upsert"]
#: Rows per executemany/COPY batch; also the granularity of progress callbacks.
BATCH_ROWS = 100_000


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesInfo:
    """What is stored for one (symbol, timeframe): bounds in epoch ms and the row count."""

    symbol: str
    timeframe: str
    first: int
    last: int
    rows: int


@dataclass(frozen=True, slots=True)
class WriteResult:
    """``written``: rows inserted or changed. ``rejected``: invalid input rows with a ``reason`` column."""

    written: int
    rejected: pd.DataFrame

    @property
    def n_rejected(self) -> int:
        return len(self.rejected)


def normalize_symbol(symbol: str) -> str:
    """Unified ccxt symbol, upper case (``btc/usdt`` -> ``BTC/USDT``); exchange ids are refused."""
    text = str(symbol).strip().upper()
    if "/" not in text or text.startswith("/") or text.endswith("/"):
        raise DataError(f"symbol {symbol!r} is not a unified symbol like 'BTC/USDT'")
    return text


def _empty_arrays() -> Arrays:
    return (np.zeros(0, dtype="int64"),) + tuple(np.zeros(0, dtype="float64") for _ in range(5))  # type: ignore[return-value]


def frame_arrays(frame: pd.DataFrame) -> Arrays:
    """(ts_ms, open, high, low, close, volume) of a canonical frame."""
    from thunes.core.candles import ts_ms

    return (ts_ms(frame),) + tuple(frame[c].to_numpy(dtype="float64") for c in OHLCV)  # type: ignore[return-value]


def _slice(arrays: Arrays, start: int | None, end: int | None) -> Arrays:
    ts = arrays[0]
    lo = 0 if start is None else int(np.searchsorted(ts, start, side="left"))
    hi = len(ts) if end is None else int(np.searchsorted(ts, end, side="left"))
    if lo == 0 and hi == len(ts):
        return arrays
    return tuple(a[lo:hi] for a in arrays)  # type: ignore[return-value]


class CandleStore(ABC):
    """Candle storage; use :func:`open_store`. Thread-safe (one connection guarded by a lock)."""

    def __init__(self, url: str, *, cache: ColumnarCache | None = None) -> None:
        self.url = url
        self._cache = cache
        self._lock = threading.RLock()
        self._replica: CandleStore | None = None
        self._closed = False

    # ----------------------------------------------------------------- writes
    def write(
        self,
        symbol: str,
        timeframe: str,
        frame: pd.DataFrame,
        *,
        mode: WriteMode = "insert",
        source: str = "import",
        progress: Callable[[int], None] | None = None,
        now_ms: int | None = None,
    ) -> WriteResult:
        """Validate, then insert (ignore existing timestamps) or upsert (replace them).

        Rejected rows are logged (one warning with the first reasons) and returned, never written.
        ``progress`` is called with the number of rows handled after each batch. ``now_ms`` is the "now"
        of the sane-time-range rule (default: the wall clock; see :mod:`thunes.data.quality`).
        """
        if mode not in ("insert", "upsert"):
            raise StoreError(f"unknown write mode {mode!r}; expected 'insert' or 'upsert'")
        sym = normalize_symbol(symbol)
        tf = str(parse_timeframe(timeframe))
        checked = split_valid(frame, tf, now_ms=now_ms)
        _log_rejected(sym, tf, checked.rejected)
        arrays = frame_arrays(checked.good)
        written = 0
        if len(arrays[0]):
            self._check_open()
            with self._lock:
                written = self._write_arrays(sym, tf, arrays, source=source, mode=mode, progress=progress)
            if self._replica is not None:
                self._replica.write(sym, tf, checked.good, mode=mode, source=source)
        return WriteResult(written, checked.rejected)

    def insert(self, symbol: str, timeframe: str, frame: pd.DataFrame, source: str = "import") -> int:
        """Insert-or-ignore valid rows; returns the number of rows written (invalid rows are skipped)."""
        return self.write(symbol, timeframe, frame, mode="insert", source=source).written

    def upsert(self, symbol: str, timeframe: str, frame: pd.DataFrame, source: str = "import") -> int:
        """Insert or replace valid rows; returns rows inserted or changed (invalid rows are skipped)."""
        return self.write(symbol, timeframe, frame, mode="upsert", source=source).written

    def write_arrays(self, symbol: str, timeframe: str, arrays: Arrays, *, mode: WriteMode = "upsert",
                     source: str = "stream") -> WriteResult:
        """:meth:`write` for ``(ts_ms, open, high, low, close, volume)`` arrays: the same validation
        (:func:`~thunes.data.quality.valid_rows`), transaction and replica, without building frames.

        The stream writer's path: it makes thousands of small writes a second, where building pandas
        frames would cost more than the database.
        """
        if mode not in ("insert", "upsert"):
            raise StoreError(f"unknown write mode {mode!r}; expected 'insert' or 'upsert'")
        sym = normalize_symbol(symbol)
        tf = str(parse_timeframe(timeframe))
        ts = np.asarray(arrays[0], dtype="int64")
        cols = {name: np.asarray(a, dtype="float64") for name, a in zip(OHLCV, arrays[1:])}
        good_idx, reasons = valid_rows(ts, cols, tf)
        rejected = _NO_REJECTS
        if len(good_idx) < len(ts):
            bad = np.flatnonzero(reasons != "")
            rejected = pd.DataFrame({"row": bad, "ts": ts[bad], **{n: cols[n][bad] for n in OHLCV},
                                     "reason": reasons[bad].astype(str)})
            _log_rejected(sym, tf, rejected)
        written = 0
        if len(good_idx):
            good: Arrays = (ts[good_idx],) + tuple(cols[n][good_idx] for n in OHLCV)  # type: ignore[assignment]
            self._check_open()
            with self._lock:
                written = self._write_arrays(sym, tf, good, source=source, mode=mode, progress=None)
            if self._replica is not None:
                self._replica.write_arrays(sym, tf, good, mode=mode, source=source)
        return WriteResult(written, rejected)

    def delete(self, symbol: str, timeframe: str, start: int | None = None, end: int | None = None) -> int:
        """Delete candles with ``start <= ts < end`` (all when both are None); returns rows deleted."""
        sym, tf = normalize_symbol(symbol), str(parse_timeframe(timeframe))
        self._check_open()
        with self._lock:
            deleted = self._delete(sym, tf, start, end)
        if self._replica is not None:
            self._replica.delete(sym, tf, start, end)
        return deleted

    # ------------------------------------------------------------------ reads
    def load(self, symbol: str, timeframe: str, start: int | None = None, end: int | None = None) -> pd.DataFrame:
        """Canonical candle frame of ``start <= ts < end`` (epoch ms; None = unbounded)."""
        arrays = self.load_arrays(symbol, timeframe, start, end)
        return candles_frame(*arrays)

    def load_arrays(self, symbol: str, timeframe: str, start: int | None = None, end: int | None = None) -> Arrays:
        """Like :meth:`load` but returns ``(ts_ms, open, high, low, close, volume)`` numpy arrays.

        When served from the cache the arrays are read-only views of a memory-mapped file (zero copy);
        copy them before modifying in place.
        """
        sym, tf = normalize_symbol(symbol), str(parse_timeframe(timeframe))
        self._check_open()
        with self._lock:
            if self._cache is None:
                return self._read_arrays(sym, tf, start, end)
            version = self._version(sym, tf)
            if version == 0:
                return _empty_arrays()
            store_id = self._store_id()
            cached = self._cache.get(store_id, sym, tf, version)
            if cached is not None:
                return _slice(cached, start, end)
            if start is not None or end is not None:
                return self._read_arrays(sym, tf, start, end)
            version, arrays = self._snapshot(sym, tf)
            self._cache.put(store_id, sym, tf, version, arrays)
            return arrays

    def last_ts(self, symbol: str, timeframe: str) -> int | None:
        info = self._info(symbol, timeframe)
        return info.last if info else None

    def first_ts(self, symbol: str, timeframe: str) -> int | None:
        info = self._info(symbol, timeframe)
        return info.first if info else None

    def count(self, symbol: str, timeframe: str) -> int:
        info = self._info(symbol, timeframe)
        return info.rows if info else 0

    def version(self, symbol: str, timeframe: str) -> int:
        """Write counter of a series (0 when never written); changes with every write that changed rows."""
        self._check_open()
        with self._lock:
            return self._version(normalize_symbol(symbol), str(parse_timeframe(timeframe)))

    def series(self) -> list[SeriesInfo]:
        """Every stored (symbol, timeframe), sorted, with bounds and row counts."""
        self._check_open()
        with self._lock:
            return sorted(self._series(), key=lambda s: (s.symbol, s.timeframe))

    def _info(self, symbol: str, timeframe: str) -> SeriesInfo | None:
        sym, tf = normalize_symbol(symbol), str(parse_timeframe(timeframe))
        self._check_open()
        with self._lock:
            return self._series_info(sym, tf)

    # -------------------------------------------------------------- lifecycle
    def attach_replica(self, replica: CandleStore) -> None:
        """Apply every later write to ``replica`` too, after the primary, in the same order."""
        self._replica = replica

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._close()
        if self._replica is not None:
            self._replica.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {redact_url(self.url)} is closed")

    def __enter__(self) -> CandleStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_url(self.url)!r})"

    # ------------------------------------------------------- backend contract
    @abstractmethod
    def _write_arrays(self, symbol: str, timeframe: str, arrays: Arrays, *, source: str, mode: WriteMode,
                      progress: Callable[[int], None] | None) -> int:
        """Write valid, sorted, unique rows and bump the series version in one transaction."""

    @abstractmethod
    def _delete(self, symbol: str, timeframe: str, start: int | None, end: int | None) -> int: ...

    @abstractmethod
    def _read_arrays(self, symbol: str, timeframe: str, start: int | None, end: int | None) -> Arrays: ...

    @abstractmethod
    def _snapshot(self, symbol: str, timeframe: str) -> tuple[int, Arrays]:
        """The version and the whole series, read in one consistent snapshot."""

    @abstractmethod
    def _version(self, symbol: str, timeframe: str) -> int: ...

    @abstractmethod
    def _store_id(self) -> str: ...

    @abstractmethod
    def _series(self) -> list[SeriesInfo]: ...

    @abstractmethod
    def _series_info(self, symbol: str, timeframe: str) -> SeriesInfo | None: ...

    @abstractmethod
    def _close(self) -> None: ...


_NO_REJECTS = pd.DataFrame({"row": [], "ts": [], **{n: [] for n in OHLCV}, "reason": []})


def _log_rejected(symbol: str, timeframe: str, rejected: pd.DataFrame) -> None:
    """One warning with the first reasons (rejected rows are never written)."""
    if not len(rejected):
        return
    sample = "; ".join(
        f"row {r.row} ({format_ms(r.ts)}): {r.reason}"
        for r in rejected.head(3).itertuples()
    )
    log.warning("rejected %d invalid row(s) for %s %s: %s", len(rejected), symbol, timeframe, sample,
                extra={"fields": {"symbol": symbol, "timeframe": timeframe, "rejected": len(rejected)}})


