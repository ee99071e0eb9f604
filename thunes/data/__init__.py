"""Market data: candle stores, download, import/export, quality checks, samples and synthetic data.

The store and the quality checks are re-exported here; :mod:`thunes.data.io` (files) and
:mod:`thunes.data.download` (network) are imported explicitly, so that ``import thunes.data`` stays light.
"""

from thunes.data.quality import QualityReport, check_candles, fill_gaps, split_valid
from thunes.data.store import CandleStore, SeriesInfo, WriteResult, open_store, store_from_settings

__all__ = [
    "CandleStore",
    "QualityReport",
    "SeriesInfo",
    "WriteResult",
    "check_candles",
    "fill_gaps",
    "open_store",
    "split_valid",
    "store_from_settings",
]
