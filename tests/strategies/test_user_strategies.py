"""User strategies from the CLI: one resolver (thunes.strategies.loader) for every ``--strategy``, and
``thunes strategies new NAME`` writes a documented template that passes the look-ahead audit.

Rules: ``--strategy`` accepts a built-in name, ``module:Class``, ``file.py:Class`` and
the name of a strategy in the strategies folder (``trader.strategies_dir``); anything else is one
StrategyError line; ``strategies list --json`` lists built-in and user strategies with their parameters.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from thunes.cli import root
from thunes.core.errors import StrategyError
from thunes.strategies import get_strategy
from thunes.strategies.loader import resolve_strategy, strategy_spec, user_strategies

USER_STRATEGY = """
from thunes.strategies import Param, Signals, Strategy


class Always(Strategy):
    name = "always_long"
    hold = Param(int, default=3, low=1, high=10, doc="bars")

    def signals(self, candles):
        return Signals(entries=candles["close"] > 0, exits=candles["close"] < 0)
"""


def _invoke(tmp_path, *args: str):
    return CliRunner().invoke(root, ["--set", f"trader.strategies_dir={tmp_path / 'strategies'}", *args])


def test_every_spelling_resolves_to_the_same_class(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "mine.py").write_text(USER_STRATEGY)
    (tmp_path / "top_level_mine.py").write_text(USER_STRATEGY)

    by_name = resolve_strategy("always_long", folder="strategies")
    by_file = resolve_strategy("strategies/mine.py:Always")
    by_module = resolve_strategy("top_level_mine:Always", folder="strategies")

    assert by_name is by_file  # one import of the file
    assert by_module.name == by_name.name == "always_long"
    assert resolve_strategy("sma_cross") is get_strategy("sma_cross")
    assert strategy_spec("always_long", folder="strategies") == f"{tmp_path / 'strategies' / 'mine.py'}:Always"
    assert resolve_strategy(strategy_spec("always_long", folder="strategies")) is by_name
    assert [u.name for u in user_strategies("strategies")] == ["always_long"]


@pytest.mark.parametrize(("spec", "message"), [
    ("nope_mod:Thing", "no module 'nope_mod'"),
    ("strategies/missing.py:X", "does not exist"),
    ("strategies/mine.py:Nope", "has no 'Nope' (Strategy classes there: Always)"),
    ("sma_crossx", "did you mean 'sma_cross'"),
    ("strategies/broken.py:X", "broken.py:1"),
])
def test_what_cannot_be_resolved_is_one_strategy_error(tmp_path, monkeypatch, spec, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "mine.py").write_text(USER_STRATEGY)
    (tmp_path / "strategies" / "broken.py").write_text("def (:\n")
    with pytest.raises(StrategyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_strategy(spec, folder=tmp_path / "nowhere")


def test_strategies_new_writes_a_template_that_passes_the_lookahead_audit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    made = _invoke(tmp_path, "strategies", "new", "trend_follow")
    assert made.exit_code == 0, made.output
    assert (tmp_path / "strategies" / "trend_follow.py").is_file()

    audit = _invoke(tmp_path, "audit", "lookahead", "trend_follow", "--sample", "--prefixes", "4", "--rows", "800")
    assert audit.exit_code == 0, audit.output
    assert "ok: no value changed" in audit.output

    again = _invoke(tmp_path, "strategies", "new", "trend_follow")
    assert again.exit_code != 0 and "exists; pass --force" in str(again.exception or again.output)


def test_strategies_list_json_has_builtin_and_user_strategies(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "mine.py").write_text(USER_STRATEGY)
    result = _invoke(tmp_path, "strategies", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["sma_cross"]["source"] == "built-in"
    assert rows["always_long"]["params"] == [{"name": "hold", "type": "int", "default": 3, "low": 1, "high": 10,
                                              "choices": None, "doc": "bars"}]


def test_optimize_accepts_a_user_strategy(tmp_path, monkeypatch, btc_1h):
    monkeypatch.chdir(tmp_path)
    _invoke(tmp_path, "strategies", "new", "trend_follow")
    since = (btc_1h.frame.index[-1] - pd.Timedelta(days=90)).strftime("%Y-%m-%d")
    result = _invoke(tmp_path, "--set", f"optimize.artifacts_dir={tmp_path}/art", "optimize", "--strategy", "trend_follow",
                     "--trials", "3", "--walk-forward", "none", "--storage", "memory", "--source", "sample",
                     "--since", since, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "best parameters" in result.output
