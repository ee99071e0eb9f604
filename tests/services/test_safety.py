"""Live safety rules live in the services, so every surface (CLI, API, Telegram) hits them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from thunes.config import RiskSettings, Settings
from thunes.core.errors import ConfigError
from thunes.live.config import BotSettings
from thunes.services.bot import BotRunRequest, open_bot
from thunes.services.safety import (
    LIVE_DEFAULT_MAX_QUOTE,
    LiveConfirmation,
    check_withdrawals_disabled,
    live_limits,
    require_live_confirmation,
)


@pytest.mark.parametrize("live,understood", [(False, False), (True, False), (False, True)])
def test_live_needs_both_confirmations(live, understood):
    with pytest.raises(ConfigError, match="--live and --i-understand-the-risks"):
        require_live_confirmation(LiveConfirmation(live=live, understood=understood))
    require_live_confirmation(LiveConfirmation(live=True, understood=True))


def test_a_live_bot_is_refused_by_the_service_without_confirmation(tmp_path):
    """The check happens before any key or network is touched, whatever surface asked."""
    settings = BotSettings(exchange="live", state_dir=tmp_path / "bot")
    with pytest.raises(ConfigError, match="--live and --i-understand-the-risks"):
        open_bot(BotRunRequest(settings=settings), Settings())


def test_a_confirmed_live_bot_without_keys_is_refused_with_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("THUNES_EXCHANGE__API_KEY", raising=False)
    settings = BotSettings(exchange="live", state_dir=tmp_path / "bot")
    request = BotRunRequest(settings=settings, confirmation=LiveConfirmation(live=True, understood=True))
    with pytest.raises(ConfigError, match="needs API keys"):
        open_bot(request, Settings(exchange={"api_key": None, "api_secret": None}))


class _Client:
    """Stands for the ccxt client's API-restrictions endpoint answer (the rule, not the exchange, is tested)."""

    def __init__(self, answer):
        self.answer = answer

    def sapi_get_account_apirestrictions(self):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_keys_that_can_withdraw_are_refused():
    with pytest.raises(ConfigError, match="can withdraw"):
        check_withdrawals_disabled(_Client({"enableWithdrawals": True}))
    assert check_withdrawals_disabled(_Client({"enableWithdrawals": False})) == "disabled"
    assert check_withdrawals_disabled(_Client(RuntimeError("not supported on testnet"))) == "unknown"
    assert check_withdrawals_disabled(object()) == "unknown"


def test_live_limits_cap_the_position_and_the_trade():
    risk = RiskSettings(max_position_quote=Decimal("100"))
    lim = live_limits(risk, Decimal("50"))
    assert lim.cap == LIVE_DEFAULT_MAX_QUOTE
    assert lim.risk.max_position_quote == LIVE_DEFAULT_MAX_QUOTE and lim.quote_per_trade == LIVE_DEFAULT_MAX_QUOTE
    raised = live_limits(risk, Decimal("50"), Decimal("80"))
    assert raised.risk.max_position_quote == Decimal("80") and raised.quote_per_trade == Decimal("50")
    with pytest.raises(ConfigError):
        live_limits(risk, Decimal("50"), Decimal("0"))
