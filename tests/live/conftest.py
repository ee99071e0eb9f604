"""Four pairs of 5m candles replayed in lockstep: the real sample files when present, synthetic otherwise."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from thunes.config import RiskSettings, Settings
from thunes.data.samples import load_sample_candles
from thunes.live.config import BotSettings, JobSettings, LocalReplaySettings

PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT")
ROWS = 900  # from 2024-01-01 (every sample file starts there): 270 warm-up candles, the rest to replay


@pytest.fixture(scope="session")
def four_pairs() -> dict[str, Any]:
    """The first ROWS 5m candles of each pair (aligned: the real files and the synthetic ones start together)."""
    out = {}
    for sym in PAIRS:
        loaded = load_sample_candles(sym, "5m")
        out[sym] = loaded.frame.iloc[:ROWS]
    return out


def bot_settings(state_dir: Path, *, bars: int, risk: dict[str, Any] | None = None, **extra: Any) -> BotSettings:
    return BotSettings(exchange="local", pairs=list(PAIRS), strategy="sma_cross", params={"fast": 5, "slow": 20},
                       timeframe="5m", quote_per_trade=Decimal("100"), state_dir=state_dir,
                       risk=risk or {}, local=LocalReplaySettings(bars=bars),
                       jobs=extra.pop("jobs", JobSettings(reconcile_minutes=60)), **extra)


def app_settings(tmp_path: Path) -> Settings:
    """Global settings with the data store pointed at an empty file (the bot replays the given frames)."""
    return Settings(data={"url": f"sqlite:///{tmp_path / 'candles.sqlite'}"}, audit={"fsync": "never"},
                    risk=RiskSettings())
