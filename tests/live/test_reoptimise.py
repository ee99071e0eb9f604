"""Scheduled re-optimisation: deploy only past the existing thresholds, audited either way, kept across starts."""

from __future__ import annotations

from decimal import Decimal

from thunes.config import Settings
from thunes.execution.audit import AuditTrail
from thunes.live.config import Assignment
from thunes.optimize.decay import deployed_path, write_deployed
from thunes.services.bot import BotRunRequest, _with_deployed, open_bot, start_reoptimisation

from .conftest import app_settings, bot_settings

RANGES = {"fast": (3, 10), "slow": (12, 30)}


def _reoptimised(tmp_path, frames, optimize):
    settings = bot_settings(tmp_path / "bot", bars=50).model_copy(update={"pairs": ["BTC/USDT", "ETH/USDT"]})
    app = app_settings(tmp_path).model_copy(update={"optimize": Settings().optimize.model_copy(update=optimize)})
    with open_bot(BotRunRequest(settings=settings, control=False), app, frames=frames) as session:
        before = {k.symbol: dict(t.strategy.params) for k, t in session.stack.traders.items()}
        detail = start_reoptimisation(session.bot, app, trials=4, bars=260, wait=True, ranges=RANGES)
        after = {k.symbol: dict(t.strategy.params) for k, t in session.stack.traders.items()}
    records = [r.payload for r in AuditTrail.read(settings.state_dir / "audit.jsonl") if r.kind == "reoptimised"]
    return settings.state_dir, detail, before, after, records


def test_parameters_past_the_thresholds_are_deployed_now_and_audited(tmp_path, four_pairs):
    state, detail, before, after, records = _reoptimised(
        tmp_path, four_pairs, {"deploy_min_sharpe": -1e9, "deploy_min_dsr": 0.0})
    assert detail.startswith("started for 2 pairs")
    assert [r["symbol"] for r in records] == ["BTC/USDT", "ETH/USDT"]
    for r in records:
        assert r["deploy"] is True and r["applied"] == "applied now", r
        assert after[r["symbol"]] == r["params"]
        assert RANGES["fast"][0] <= r["params"]["fast"] <= RANGES["fast"][1]
        assert deployed_path(state, "sma_cross", r["symbol"], "5m").exists()
    assert before != after


def test_parameters_below_the_thresholds_are_audited_and_not_deployed(tmp_path, four_pairs):
    state, _detail, before, after, records = _reoptimised(
        tmp_path, four_pairs, {"deploy_min_sharpe": 1e9, "deploy_min_dsr": 0.95})
    assert len(records) == 2 and all(r["deploy"] is False and r["applied"] == "not deployed" for r in records)
    assert any("Sharpe" in reason for reason in records[0]["reasons"])
    assert before == after
    assert not (state / "deployed").exists()


def test_a_start_trades_the_deployed_parameters(tmp_path):
    a = Assignment(symbol="BTC/USDT", strategy="sma_cross", params={"fast": 5, "slow": 20}, timeframe="5m",
                   quote_per_trade=Decimal("100"))
    write_deployed(deployed_path(tmp_path, "sma_cross", "BTC/USDT", "5m"), strategy="sma_cross", symbol="BTC/USDT",
                   timeframe="5m", params={"fast": 7, "slow": 25}, study="s", evidence={})
    (b,) = _with_deployed((a,), tmp_path)
    assert b.params == {"fast": 7, "slow": 25}
    assert _with_deployed((a,), tmp_path / "elsewhere")[0].params == {"fast": 5, "slow": 20}


def test_the_reoptimise_job_is_scheduled_from_a_crontab_line(tmp_path, four_pairs):
    import pytest

    from thunes.core.errors import ConfigError
    from thunes.live.config import JobSettings, load_bot_settings

    settings = bot_settings(tmp_path / "bot", bars=20, jobs=JobSettings(reoptimise_cron="0 3 * * sun"))
    with open_bot(BotRunRequest(settings=settings, control=False), app_settings(tmp_path), frames=four_pairs) as s:
        jobs = {j["name"]: j for j in s.bot.jobs_status()}
    assert jobs["reoptimise"]["schedule"].startswith("cron[")
    with pytest.raises(ConfigError, match="jobs.reoptimise_cron"):
        load_bot_settings(None, jobs={"reoptimise_cron": "every sunday"})
