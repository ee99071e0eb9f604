"""Where training and forecasting candles come from: the candle store, else the sample files, resampled.

Models are often trained on a timeframe nobody downloaded (``30m``). :func:`load_candles` looks, in
order, in the candle store (``settings.data.url``, only if it already exists) and in the sample folder
(``../shared/data``) for the symbol at the requested timeframe; failing that, for the *coarsest* stored
timeframe that divides it evenly (``5m`` before ``1m`` for ``30m``: fewer rows to read, same result) and
resamples with :func:`thunes.core.timeframes.resample` (gaps stay gaps). Without any data it falls
back to synthetic candles and says so in ``source`` — or, for the CLI (``allow_synthetic=False``), stops
with the exact ``thunes data`` commands that would load real candles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from thunes.core.candles import ts_ms
from thunes.core.errors import DataError, InsufficientData
from thunes.core.timeframes import parse_timeframe, resample, utc_ms

__all__ = ["LoadedCandles", "load_candles"]


@dataclass(frozen=True, slots=True)
class LoadedCandles:
    frame: pd.DataFrame
    source: str  # human-readable: where they came from and whether they were resampled
    real: bool


def _divides(source_tf: str, target_tf: str) -> bool:
    s, t = parse_timeframe(source_tf), parse_timeframe(target_tf)
    if s.is_calendar or t.is_calendar:
        return str(s) == str(t)
    return t.seconds % s.seconds == 0 and s.seconds <= t.seconds


def _pick(available: list[str], target: str) -> str | None:
    """The target itself if available, else the coarsest available timeframe that divides it."""
    usable = [tf for tf in available if _divides(tf, target)]
    if not usable:
        return None
    return max(usable, key=lambda tf: parse_timeframe(tf).seconds)


def _store_candles(symbol: str, timeframe: str, data_settings: Any) -> tuple[pd.DataFrame, str] | None:
    url = str(getattr(data_settings, "url", "") or "")
    if not url:
        return None
    if url.startswith("sqlite:"):
        from thunes.data._sqlite import sqlite_path

        path = sqlite_path(url)
        if path is None or not Path(path).exists():
            return None  # do not create an empty store just to look into it
    try:
        from thunes.data.store import normalize_symbol, store_from_settings
    except ImportError:  # pragma: no cover - the data layer ships with the core package
        return None
    store = store_from_settings(data_settings)
    try:
        sym = normalize_symbol(symbol)
        available = [s.timeframe for s in store.series() if s.symbol == sym and s.rows > 0]
        chosen = _pick(available, timeframe)
        if chosen is None:
            return None
        frame = store.load(sym, chosen)
        return frame, f"store {url.split('@')[-1]} {sym} {chosen}"
    finally:
        store.close()


def _sample_candles(symbol: str, timeframe: str, sample_dir: Any) -> tuple[pd.DataFrame, str] | None:
    """The sample file at ``timeframe``, else the coarsest finer one resampled (see :mod:`thunes.data.samples`)."""
    from thunes.data.samples import finer_sample_file, load_sample_candles, sample_file

    if sample_file(symbol, timeframe, sample_dir) is None and finer_sample_file(symbol, timeframe, sample_dir) is None:
        return None
    loaded = load_sample_candles(symbol, timeframe, sample_dir=sample_dir)
    return loaded.frame, f"sample {loaded.source}"


def _no_data_message(symbol: str, timeframe: str, data_settings: Any) -> str:
    url = str(getattr(data_settings, "url", "") or "(none)")
    return (
        f"no {symbol} candles at {timeframe} (or at a timeframe dividing it): the candle store {url} has none and "
        "no sample folder was found (../shared/data beside the repository, $THUNES_SAMPLE_DIR or data.sample_dir). "
        "Load candles first, then run this command again:\n"
        f"  thunes data download --symbol {symbol} --timeframe {timeframe} --since 2024-01-01\n"
        f"  (or: thunes data import FILE --symbol {symbol} --timeframe {timeframe})\n"
        "or add --source synthetic to try it on synthetic candles."
    )


def load_candles(
    symbol: str,
    timeframe: str,
    *,
    data_settings: Any = None,
    source: str = "auto",
    since: str | None = None,
    until: str | None = None,
    synthetic_rows: int = 20_000,
    allow_synthetic: bool = True,
) -> LoadedCandles:
    """Candles of ``symbol`` at ``timeframe`` (resampled when needed); ``source``: auto, store, sample, synthetic.

    With ``source="auto"`` and no real data, ``allow_synthetic=False`` raises ``InsufficientData`` whose
    message names the commands that load data (the CLI's behaviour: a model trained on synthetic candles
    by accident would be worse than an error); ``True`` falls back to synthetic candles (``real=False``).
    """
    tf = str(parse_timeframe(timeframe))
    if source not in ("auto", "store", "sample", "synthetic"):
        raise DataError(f"unknown candle source {source!r}: use auto, store, sample or synthetic")
    found: tuple[pd.DataFrame, str] | None = None
    real = True
    if source in ("auto", "store"):
        found = _store_candles(symbol, tf, data_settings)
        if found is None and source == "store":
            raise InsufficientData(f"the candle store has no {symbol} data at {tf} or at a timeframe dividing it; "
                                   f"load some first: thunes data download --symbol {symbol} --timeframe {tf} "
                                   "--since 2024-01-01")
    if found is None and source in ("auto", "sample"):
        found = _sample_candles(symbol, tf, getattr(data_settings, "sample_dir", None))
        if found is None and source == "sample":
            raise InsufficientData(f"no sample file for {symbol} at {tf} or at a timeframe dividing it")
    if found is None and source == "auto" and not allow_synthetic:
        raise InsufficientData(_no_data_message(symbol, tf, data_settings))
    if found is None:
        from thunes.data.samples import load_sample_candles

        synthetic = load_sample_candles(symbol, tf, synthetic_rows=synthetic_rows)
        found, real = (synthetic.frame, synthetic.source), False
    frame, where = found
    if len(frame) > 1:
        step = int(pd.Series(ts_ms(frame.iloc[:1000])).diff().median())
        if step != parse_timeframe(tf).ms:
            where += f", resampled to {tf}"
            frame = resample(frame, tf)
    if since is not None:
        frame = frame.loc[frame.index >= pd.Timestamp(utc_ms(since), unit="ms", tz="UTC")]
    if until is not None:
        frame = frame.loc[frame.index < pd.Timestamp(utc_ms(until), unit="ms", tz="UTC")]
    if frame.empty:
        raise InsufficientData(f"no {symbol} {tf} candles between {since or 'the start'} and {until or 'the end'}")
    return LoadedCandles(frame, where, real)
