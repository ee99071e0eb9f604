"""Runs, their reports and models are listed from the artifacts folders; ids never leave those folders."""

from __future__ import annotations

import json

import pytest

from thunes.config import Settings
from thunes.services.catalog import RunNotFound, data_summary, models, run_detail, run_report, runs


def _settings(tmp_path):
    return Settings(backtest={"artifacts_dir": str(tmp_path / "bt")}, optimize={"artifacts_dir": str(tmp_path / "opt")},
                    data={"url": f"sqlite:///{tmp_path / 'c.sqlite'}"})


def test_runs_and_reports(tmp_path):
    s = _settings(tmp_path)
    (tmp_path / "bt" / "api-1").mkdir(parents=True)
    (tmp_path / "bt" / "api-1" / "run_BTCUSDT_1h.json").write_text(json.dumps({"strategy": "sma_cross",
                                                                               "symbol": "BTC/USDT", "timeframe": "1h"}))
    (tmp_path / "bt" / "api-1" / "report_BTCUSDT_1h.html").write_text("<html></html>")
    (tmp_path / "opt" / "study-a").mkdir(parents=True)
    (tmp_path / "opt" / "study-a" / "summary.json").write_text(json.dumps({"spec": {"strategy": "rsi_bollinger"}}))
    (tmp_path / "secret.json").write_text("{}")
    listed = {(r.kind, r.id, r.has_report) for r in runs(s)}
    assert listed == {("backtest", "api-1/run_BTCUSDT_1h", True), ("optimize", "study-a", False)}
    assert run_detail(s, "backtest", "api-1/run_BTCUSDT_1h")["symbol"] == "BTC/USDT"
    assert run_report(s, "backtest", "api-1/run_BTCUSDT_1h").name == "report_BTCUSDT_1h.html"
    assert run_detail(s, "optimize", "study-a")["spec"]["strategy"] == "rsi_bollinger"
    with pytest.raises(RunNotFound, match="has no HTML report"):
        run_report(s, "optimize", "study-a")
    for bad in ("../secret", "../../etc/passwd", "/etc/passwd", "", "api-1/../../secret"):
        with pytest.raises(RunNotFound):
            run_detail(s, "backtest", bad)


def test_models_and_an_empty_store(tmp_path):
    s = _settings(tmp_path)
    assert data_summary(s.data) == [] and models(tmp_path / "none") == []
    folder = tmp_path / "models" / "m1"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"model_type": "xgboost", "symbol": "BTC/USDT", "timeframe": "1h"}))
    (tmp_path / "models" / "junk").mkdir()
    got = models(tmp_path / "models")
    assert [(m.name, m.model_type, m.symbol) for m in got] == [("m1", "xgboost", "BTC/USDT")]
