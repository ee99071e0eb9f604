"""``thunes features`` and ``thunes audit lookahead|leakage`` end to end."""

from __future__ import annotations

import pandas as pd
from click.testing import CliRunner

from thunes.cli import root


def _invoke(*args):
    return CliRunner().invoke(root, list(args), catch_exceptions=False)


def test_features_list_shows_sets_and_columns():
    out = _invoke("features", "list")
    assert out.exit_code == 0 and "default" in out.output
    cols = _invoke("features", "list", "--set", "default")
    assert "rsi_14" in cols.output and "gap_flag" in cols.output


def test_compute_then_leakage_audit_passes_and_a_leak_fails(tmp_path):
    out = tmp_path / "features.parquet"
    assert _invoke("features", "compute", "--sample", "--since", "2023-01-01", "--out", str(out)).exit_code == 0
    assert _invoke("audit", "leakage", str(out), "--horizon", "2").exit_code == 0
    data = pd.read_parquet(out)
    data["future_close"] = data["close"].shift(-1)
    leaky = tmp_path / "leaky.parquet"
    data.to_parquet(leaky)
    result = CliRunner().invoke(root, ["audit", "leakage", str(leaky)])
    assert result.exit_code == 1
    assert "future_close" in result.output


def test_lookahead_audit_of_strategies_and_features_passes():
    assert _invoke("audit", "lookahead", "sma_cross", "--sample", "--prefixes", "4", "--rows", "800").exit_code == 0
    assert _invoke("audit", "lookahead", "features:compact", "--sample", "--prefixes", "3", "--rows", "600").exit_code == 0


def test_lookahead_audit_catches_a_peeking_user_strategy(tmp_path, monkeypatch):
    (tmp_path / "peeking.py").write_text(
        "from thunes.strategies import Strategy, Signals\n"
        "class Peek(Strategy):\n"
        "    name = 'peek'\n"
        "    def signals(self, candles):\n"
        "        up = candles['close'].shift(-1) > candles['close']\n"
        "        return Signals(entries=up, exits=~up)\n"
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(root, ["audit", "lookahead", "peeking:Peek", "--sample", "--prefixes", "4",
                                       "--rows", "500"])
    assert result.exit_code == 1
    assert "LOOK-AHEAD" in result.output
