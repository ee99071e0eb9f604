"""Candles for a study, by the one rule of :func:`thunes.data.sources.load_candles`.

A study records where its candles came from and a fingerprint of them, so a worker that joins the study
later (another process or another machine) loads the same window and refuses to run on different data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from thunes.core.candles import ts_ms
from thunes.core.redact import redact_url

__all__ = ["StudyData", "candles_fingerprint", "load_study_candles"]


@dataclass(frozen=True, slots=True)
class StudyData:
    frame: pd.DataFrame
    source: str  # "store:<url>", "file:<path>", "sample" or "synthetic": where a worker reloads them from
    description: str  # for people: the file or store and whether the data is real
    real: bool = True  # False for synthetic candles


def candles_fingerprint(frame: pd.DataFrame) -> str:
    """A short digest of the timestamps and closes: equal data gives equal fingerprints."""
    h = hashlib.sha256()
    h.update(ts_ms(frame).tobytes())
    h.update(np.ascontiguousarray(frame["close"].to_numpy(dtype="float64")).tobytes())
    return h.hexdigest()[:16]


def load_study_candles(
    symbol: str,
    timeframe: str,
    *,
    source: str = "auto",
    store_url: str | None = None,
    since: str | int | None = None,
    until: str | int | None = None,
    sample_dir: str | Path | None = None,
    file: str | Path | None = None,
) -> StudyData:
    """Candles ``since <= ts < until`` by the rule of :func:`thunes.data.sources.load_candles` (``source``
    auto, store, sample or synthetic; ``file`` a CSV/Parquet file), with the source a worker reloads them
    from: ``store:<url>`` (password masked), ``file:<path>``, ``sample`` or ``synthetic``."""
    from thunes.data.sources import CandleQuery, Origin, load_candles

    data_settings = SimpleNamespace(url=store_url, sample_dir=sample_dir, cache_dir="auto")
    query = CandleQuery(symbol=symbol, timeframe=timeframe, since=since, until=until, source=source,  # type: ignore[arg-type]
                        file=Path(file).resolve() if file else None, store_url=store_url)
    loaded = load_candles(query, data_settings)
    if loaded.origin is Origin.STORE:
        # The source is stored in the study: never with a password (workers are given the URL).
        return StudyData(loaded.frame, f"store:{redact_url(loaded.store_url or '')}", loaded.source)
    if loaded.origin is Origin.FILE:
        return StudyData(loaded.frame, f"file:{query.file}", loaded.source)
    if loaded.real:
        return StudyData(loaded.frame, "sample", loaded.source)
    # Synthetic candles from --sample (no real file) are reloaded the same way, and equal those of a
    # "synthetic" source; the study records which one was asked.
    kind = "synthetic" if source == "synthetic" else "sample"
    return StudyData(loaded.frame, kind, loaded.source, real=False)
