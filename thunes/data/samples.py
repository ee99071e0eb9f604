"""Where the real sample data lives, and a fallback to synthetic data when it does not.

The real files (``binance_BTCUSDT_1h.csv.gz`` …) sit in ``../shared/data`` beside the repository. A
timeframe without its own file is resampled from the coarsest finer file that divides it (30m from 5m,
4h from 1h), so it is still real data. A fresh clone may not have the folder; then callers get synthetic
candles and are told so via ``SampleCandles.real`` and ``SampleCandles.source``. Commands do not call this
directly: they go through :func:`thunes.data.sources.load_candles`, whose rule says when samples are used.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from thunes.core.candles import candles_frame
from thunes.core.errors import DataError
from thunes.core.timeframes import parse_timeframe, resample, utc_ms
from thunes.data.synthetic import generate_candles

__all__ = ["SampleCandles", "find_sample_dir", "finer_sample_file", "load_sample_candles", "sample_file",
           "synthetic_candles"]

_REPO_ROOT = Path(__file__).resolve().parents[2]


def find_sample_dir(explicit: str | Path | None = None) -> Path | None:
    """The sample data folder: explicit (``data.sample_dir``) > ``$THUNES_SAMPLE_DIR`` > ``../shared/data``
    (beside the repository or the working directory).

    A folder named explicitly or by the variable is the only one looked at: an empty one means "no sample
    files" (how a test or a user sees what a fresh clone without ``../shared`` does).
    """
    named = explicit or os.environ.get("THUNES_SAMPLE_DIR")
    if named:
        candidates = [Path(named)]
    else:
        candidates = [_REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for path in candidates:
        if path.is_dir() and any(path.glob("binance_*USDT_*.csv.gz")):
            return path
    return None


def sample_file(symbol: str, timeframe: str, sample_dir: str | Path | None = None) -> Path | None:
    """Path of ``binance_<BASEQUOTE>_<tf>.csv.gz`` if the sample folder has it."""
    folder = find_sample_dir(sample_dir)
    if folder is None:
        return None
    path = folder / f"binance_{symbol.replace('/', '').upper()}_{timeframe}.csv.gz"
    return path if path.exists() else None


def finer_sample_file(symbol: str, timeframe: str, sample_dir: str | Path | None = None) -> Path | None:
    """The coarsest real file of ``symbol`` whose timeframe divides ``timeframe`` (None if there is none).

    Calendar timeframes (1M) are not built this way: months are not a multiple of a fixed bar.
    """
    folder = find_sample_dir(sample_dir)
    target = parse_timeframe(timeframe)
    if folder is None or target.is_calendar:
        return None
    best: tuple[int, Path] | None = None
    for path in folder.glob(f"binance_{symbol.replace('/', '').upper()}_*.csv.gz"):
        try:
            source = parse_timeframe(path.name[: -len(".csv.gz")].rsplit("_", 1)[1])
        except DataError:  # a file name that is not a timeframe is simply not a candidate
            continue
        if source.is_calendar or source.ms >= target.ms or target.ms % source.ms:
            continue
        if best is None or source.ms > best[0]:
            best = (source.ms, path)
    return best[1] if best else None


@dataclass(frozen=True, slots=True)
class SampleCandles:
    frame: pd.DataFrame
    real: bool
    source: str


SYNTHETIC_START = "2024-01-01"  # where every sample file starts too
_START_PRICE = {"BTC": 40_000.0, "ETH": 2_300.0, "SOL": 100.0, "XRP": 0.6, "DOGE": 0.09, "LTC": 70.0}


def load_sample_candles(
    symbol: str = "BTC/USDT",
    timeframe: str = "1h",
    *,
    limit: int | None = None,
    sample_dir: str | Path | None = None,
    synthetic_rows: int = 20_000,
    seed: int = 7,
) -> SampleCandles:
    """Real sample candles when present (last ``limit`` rows), otherwise realistic synthetic ones.

    A timeframe with no file of its own is resampled from a finer real file (see the module docstring);
    ``source`` then reads ``<file> resampled to <timeframe>``.
    """
    path = sample_file(symbol, timeframe, sample_dir)
    if path is not None:
        raw = pd.read_csv(path)
        if limit is not None:
            raw = raw.tail(limit)
        frame = candles_frame(raw.ts.to_numpy(), raw.open, raw.high, raw.low, raw.close, raw.volume)
        return SampleCandles(frame, True, str(path))
    finer = finer_sample_file(symbol, timeframe, sample_dir)
    if finer is not None:
        raw = pd.read_csv(finer)
        frame = resample(candles_frame(raw.ts.to_numpy(), raw.open, raw.high, raw.low, raw.close, raw.volume),
                         timeframe)
        if limit is not None:
            frame = frame.iloc[-limit:]
        return SampleCandles(frame, True, f"{finer} resampled to {parse_timeframe(timeframe)}")
    rows = limit or synthetic_rows
    frame = synthetic_candles(symbol, timeframe, rows=rows, seed=seed)
    return SampleCandles(frame, False, f"synthetic(seed={seed}, rows={rows})")


def synthetic_candles(symbol: str, timeframe: str, *, rows: int = 20_000, seed: int = 7) -> pd.DataFrame:
    """``rows`` generated candles of ``symbol`` from 2024-01-01, at a plausible price for its base asset; the
    same symbol, timeframe, rows and seed give the same candles.

    Never past the present: at coarse timeframes (``1d``: 20,000 bars would reach 2078) the series stops
    at the last bar closed by now, as the candle store refuses future timestamps (a wrong unit or column).
    """
    tf = parse_timeframe(timeframe)
    closed = (int(time.time() * 1000) - utc_ms(SYNTHETIC_START)) // tf.ms
    rows = max(1, min(rows, int(closed)))
    base = symbol.split("/")[0].upper()
    decimals = 2 if _START_PRICE.get(base, 100.0) >= 10 else 5
    return generate_candles(
        rows, timeframe=str(tf), start=SYNTHETIC_START, start_price=_START_PRICE.get(base, 100.0),
        seed=seed + sum(map(ord, symbol)), price_decimals=decimals,
    )
