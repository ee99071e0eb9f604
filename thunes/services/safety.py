"""Live-trading safety rules, enforced by the services so that every surface (CLI, API, Telegram) obeys them.

* :func:`require_live_confirmation` - real money needs two explicit acknowledgements.
* :func:`check_withdrawals_disabled` - keys that can withdraw are refused (where the exchange tells).
* :func:`live_limits` - the position and per-trade caps (``LIVE_DEFAULT_MAX_QUOTE`` unless raised).

The one copy of these rules: the single-pair runs (:func:`thunes.services.trading.run_remote`, behind
``thunes live``) and the bot (:func:`thunes.services.bot.open_bot`) both call them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from thunes.core.errors import ConfigError

__all__ = [
    "LIVE_DEFAULT_MAX_QUOTE",
    "LiveConfirmation",
    "LiveLimits",
    "check_withdrawals_disabled",
    "live_limits",
    "require_live_confirmation",
]

LIVE_DEFAULT_MAX_QUOTE = Decimal("25")


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveConfirmation:
    live: bool = False  # --live
    understood: bool = False  # --i-understand-the-risks


def require_live_confirmation(confirmation: LiveConfirmation) -> None:
    if not (confirmation.live and confirmation.understood):
        raise ConfigError("live trading needs both --live and --i-understand-the-risks "
                          "(try the local exchange or the testnet first)")


def check_withdrawals_disabled(client: Any) -> str:
    """'disabled' | 'unknown' (the exchange does not report it); raises ConfigError when enabled."""
    fetch = getattr(client, "sapi_get_account_apirestrictions", None)
    if fetch is None:
        return "unknown"
    try:
        info = fetch()
    except Exception:  # noqa: BLE001 - ccxt raises many kinds here (NotSupported on testnet, permissions)
        return "unknown"
    if str(info.get("enableWithdrawals", "false")).lower() == "true":
        raise ConfigError("these API keys can withdraw funds; create trading-only keys (withdrawals disabled) "
                          "before trading live")
    return "disabled"


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveLimits:
    risk: Any  # RiskSettings with max_position_quote capped
    quote_per_trade: Decimal
    cap: Decimal


def live_limits(risk: Any, quote_per_trade: Decimal, cap: Decimal | None = None) -> LiveLimits:
    """Cap the position size and the quote per trade at ``cap`` (default :data:`LIVE_DEFAULT_MAX_QUOTE`)."""
    cap = LIVE_DEFAULT_MAX_QUOTE if cap is None else cap
    if cap <= 0:
        raise ConfigError(f"the live cap must be > 0, got {cap}")
    capped = risk.model_copy(update={"max_position_quote": min(risk.max_position_quote, cap)})
    return LiveLimits(risk=capped, quote_per_trade=min(quote_per_trade, cap), cap=cap)
