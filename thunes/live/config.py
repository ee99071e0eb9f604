"""The bot's settings: which pairs, which strategies, which exchange, which jobs (``bot.toml``).

Kept apart from the global settings tree (:mod:`thunes.config`) until the lead folds it in as a ``bot``
section; the risk limits default to the global ``settings.risk`` and may be overridden here::

    # bot.toml
    exchange = "local"                 # local (default, offline) | testnet | live
    pairs = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"]
    strategy = "sma_cross"             # default for every pair
    params = { fast = 5, slow = 20 }
    timeframe = "5m"
    quote_per_trade = "100"
    state_dir = "data/bot"

    [[assignments]]                    # optional: a pair with its own strategy, parameters, timeframe
    symbol = "SOL/USDT"
    strategy = "rsi_bollinger"
    timeframe = "15m"

    [risk]                             # optional overrides of settings.risk, for every pair together
    max_positions = 2

    [local]                            # the local exchange's replay
    bars = 300                         # candles to replay (default: until the data ends)
    speed = 0                          # 0: as fast as the bot goes; N: N market seconds per wall second

    [jobs]
    reconcile_minutes = 5
    daily_summary_at = "00:05"         # UTC
"""

from __future__ import annotations

import tomllib
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from thunes.core.errors import ConfigError
from thunes.core.timeframes import parse_timeframe

__all__ = ["Assignment", "BotSettings", "JobSettings", "LocalReplaySettings", "load_bot_settings"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Assignment(_Model):
    """One pair traded by one strategy with its own parameters and timeframe."""

    symbol: str
    strategy: str
    params: dict[str, Any] = Field(default_factory=dict)
    timeframe: str
    quote_per_trade: Decimal = Field(gt=0)

    @field_validator("timeframe")
    @classmethod
    def _tf(cls, v: str) -> str:
        return str(parse_timeframe(v))

    @field_validator("symbol")
    @classmethod
    def _sym(cls, v: str) -> str:
        if "/" not in v:
            raise ValueError(f"{v!r}: expected a unified symbol such as BTC/USDT")
        return v.upper()


class _PartialAssignment(_Model):
    symbol: str
    strategy: str | None = None
    params: dict[str, Any] | None = None
    timeframe: str | None = None
    quote_per_trade: Decimal | None = None


class LocalReplaySettings(_Model):
    bars: int | None = Field(None, ge=1, description="Candles to replay; None: until the data ends")
    speed: float = Field(0.0, ge=0, description="Market seconds per wall second; 0: as fast as the bot goes")
    synthetic: bool = Field(False, description="Generated markets instead of the stored/sample candles")
    balances: dict[str, str] = Field(default_factory=lambda: {"USDT": "10000"})
    store_url: str | None = Field(None, description="Candle store to replay from (default: settings.data.url, "
                                                    "then the sample files)")
    url: str | None = Field(None, description="A local exchange served by another process (thunes exchange serve "
                                              "--speed manual); the bot steps its clock and can resume after a restart")
    end_ms: int | None = Field(None, description="With url: stop stepping the clock here (epoch ms)")


class JobSettings(_Model):
    reconcile_minutes: float = Field(5.0, gt=0)
    daily_summary_at: str = "00:05"
    decay_check_at: str = "01:00"
    backup_at: str = "02:00"
    backup_keep: int = Field(7, ge=1)
    events_keep: int = Field(30, ge=1, description="Rotated event logs kept (one per day, rotated by the backup)")
    misfire_grace_s: int = Field(3600, ge=1, description="A run missed by more than this is skipped, not run late")
    reoptimise_cron: str | None = Field(None, description="Re-optimise every pair on this crontab schedule (UTC), "
                                                          "e.g. '0 3 * * sun'; None: never")
    reoptimise_trials: int = Field(25, ge=1)
    reoptimise_bars: int = Field(2000, ge=100, description="Recent candles each study optimises on")

    @field_validator("reoptimise_cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:

            from apscheduler.triggers.cron import CronTrigger

            CronTrigger.from_crontab(v, timezone=UTC)  # a bad expression fails here, with its reason
        return v

    @field_validator("daily_summary_at", "decay_check_at", "backup_at")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        h, _, m = v.partition(":")
        if not (h.isdigit() and m.isdigit() and 0 <= int(h) < 24 and 0 <= int(m) < 60):
            raise ValueError(f"{v!r}: expected HH:MM (UTC)")
        return f"{int(h):02d}:{int(m):02d}"


class BotSettings(_Model):
    name: str = "bot"
    exchange: Literal["local", "testnet", "live"] = "local"
    pairs: list[str] = Field(default_factory=lambda: ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"])
    strategy: str = "sma_cross"
    params: dict[str, Any] = Field(default_factory=dict)
    timeframe: str = "5m"
    quote_per_trade: Decimal = Field(Decimal("100"), gt=0)
    assignments: list[_PartialAssignment] = Field(default_factory=list)
    state_dir: Path = Path("data/bot")
    max_signal_age_bars: float = Field(0.5, gt=0)
    risk: dict[str, Any] = Field(default_factory=dict, description="Overrides of settings.risk")
    local: LocalReplaySettings = LocalReplaySettings()
    jobs: JobSettings = JobSettings()

    @field_validator("timeframe")
    @classmethod
    def _tf(cls, v: str) -> str:
        return str(parse_timeframe(v))

    @model_validator(mode="after")
    def _one_per_symbol(self) -> BotSettings:
        seen: set[str] = set()
        for a in self.assignments:
            if a.symbol.upper() in seen:
                # One position per symbol: two strategies on one pair would sell each other's coins.
                raise ValueError(f"{a.symbol.upper()} is assigned twice; the bot holds one position per symbol")
            seen.add(a.symbol.upper())
        self.resolved()
        return self

    def resolved(self) -> tuple[Assignment, ...]:
        """Every pair with its strategy, parameters and timeframe (pair defaults filled in), by symbol."""
        explicit = {a.symbol.upper(): a for a in self.assignments}
        out: list[Assignment] = []
        for sym in [*dict.fromkeys(p.upper() for p in self.pairs), *[s for s in explicit if s not in
                                                                        {p.upper() for p in self.pairs}]]:
            a = explicit.get(sym)
            out.append(Assignment(
                symbol=sym,
                strategy=(a.strategy if a and a.strategy else self.strategy),
                params=(a.params if a and a.params is not None else
                        (self.params if not (a and a.strategy and a.strategy != self.strategy) else {})),
                timeframe=(a.timeframe if a and a.timeframe else self.timeframe),
                quote_per_trade=(a.quote_per_trade if a and a.quote_per_trade else self.quote_per_trade),
            ))
        if not out:
            raise ValueError("the bot has no pair to trade: set pairs or assignments")
        return tuple(out)

    def risk_settings(self, base: Any) -> Any:
        """``base`` (settings.risk) with this file's overrides, validated."""
        if not self.risk:
            return base
        try:
            return type(base).model_validate({**base.model_dump(), **self.risk})
        except ValidationError as exc:
            raise ConfigError(f"bot [risk]: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from exc


def load_bot_settings(path: str | Path | None = None, **overrides: Any) -> BotSettings:
    """Read ``bot.toml`` (a ``[bot]`` table or top-level keys); None: the defaults. Overrides win."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"bot config {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"bot config {p}: {exc}") from exc
        data = dict(raw.get("bot", raw))
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return BotSettings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"bot config {path or '(defaults)'}: {where + ': ' if where else ''}{msg}") from exc
