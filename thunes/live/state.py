"""A trader's restart state: the last candle it decided, written atomically after every decided candle.

One file per (strategy, symbol, timeframe) in the trader's state folder
(``trader_<strategy>_<SYMBOL>_<timeframe>.json``). A restart reads it and resumes after
``last_bar_ts``; the multi-pair bot (:mod:`thunes.live.bot`) writes the same files, one per pair.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from thunes.core.errors import ConfigError
from thunes.execution.risk import write_risk_state as write_json_atomic  # the package's atomic JSON write

__all__ = ["TraderState", "load_state", "save_state", "state_path"]


@dataclass(slots=True, kw_only=True)
class TraderState:
    """What a restart needs, written atomically after every processed bar."""

    symbol: str
    timeframe: str
    strategy: str
    last_bar_ts: int | None = None
    bars_processed: int = 0
    orders_sent: int = 0
    started_ms: int | None = None
    stopped_ms: int | None = None
    clean_stop: bool = False


def state_path(state_dir: Path, symbol: str, timeframe: str, strategy: str) -> Path:
    return Path(state_dir) / f"trader_{strategy}_{symbol.replace('/', '')}_{timeframe}.json"


def load_state(path: Path) -> TraderState | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return TraderState(**data)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"trader state file {path} is unreadable ({exc}); move it away to start fresh") from exc


def save_state(path: Path, state: TraderState) -> None:
    """Atomic write: temp file, fsync, rename. A crash leaves the previous state, never half a file."""
    write_json_atomic(path, asdict(state))
