"""What the dashboard's charts read: candles with a strategy's indicators, a backtest run's trades and equity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tests.api.conftest import wait_for
from thunes.optimize._data import load_study_candles


def test_candles_are_the_last_n_bars_with_indicators_equal_to_the_full_series(api):
    """`limit` keeps the last bars; the indicator lines equal the SMA computed on all the candles (the window the
    server computes them on starts early enough that no warm-up artefact is drawn)."""
    from thunes.data.sources import CandleQuery, load_candles

    # The sample: real files when present, synthetic otherwise (the API's store is empty).
    full = load_candles(CandleQuery(symbol="BTC/USDT", timeframe="1h", source="sample"), api.ctx.settings.data).frame
    with api.client("viewer") as c:
        r = c.get("/candles", params={"symbol": "BTC/USDT", "timeframe": "1h", "source": "sample", "limit": 500,
                                      "strategy": "sma_cross", "params": json.dumps({"fast": 7, "slow": 60})})
    assert r.status_code == 200, r.text
    data = r.json()
    tail = full.iloc[-500:]
    assert data["time_ms"] == [int(t.timestamp() * 1000) for t in tail.index]
    assert data["close"] == np.round(tail["close"].to_numpy(), 10).tolist()
    assert set(data["indicators"]) == {"sma_7", "sma_60"}
    expected = full["close"].rolling(60).mean().iloc[-500:].to_numpy()
    np.testing.assert_allclose(np.array(data["indicators"]["sma_60"], dtype=float), expected, rtol=1e-9)
    assert None not in data["indicators"]["sma_60"]


def test_candles_refuse_bad_requests_with_one_line(api):
    with api.client("viewer") as c:
        r = c.get("/candles", params={"strategy": "nope", "source": "sample"})
        assert r.status_code == 400 and "nope" in r.json()["error"]
        r = c.get("/candles", params={"strategy": "sma_cross", "params": "{not json", "source": "sample"})
        assert r.status_code == 400 and "JSON" in r.json()["error"]
        r = c.get("/candles", params={"strategy": "sma_cross", "params": '{"fastt": 3}', "source": "sample"})
        assert r.status_code == 400 and "did you mean" in r.json()["error"]
        assert c.get("/candles", params={"limit": 0}).status_code == 422
        r = c.get("/candles", params={"until": "0000-00-00"})
        assert r.status_code == 400 and "until" in r.json()["error"]
        assert c.get("/candles", params={"source": "store"}).status_code == 400  # the store is empty
        assert c.get("/runs/backtest/nope/trades").status_code == 404
        r = c.get("/forecast")
        assert r.status_code == 400 and "no trained model" in r.json()["error"]
        assert c.get("/forecast", params={"model": "../etc"}).status_code == 422
        r = c.get("/forecast", params={"model": ".."})  # the folder above the models: refused
        assert r.status_code == 400 and "no trained model" in r.json()["error"]
    with api.client() as anonymous:
        assert anonymous.get("/candles").status_code == 401


def test_a_backtest_runs_trades_and_equity_are_served_for_the_chart(api, btc_1h):
    """The run's trades (with entry/exit times in ms) and its equity curve, as written by the backtest."""
    with api.client("boss") as c:
        r = c.post("/tasks/backtest", json={"strategy": "sma_cross", "params": {"fast": 10, "slow": 30},
                                            "symbol": "BTC/USDT", "timeframe": "1h", "source": "sample",
                                            "since": "2024-01-01", "until": "2024-03-01"})
        info = wait_for(lambda: (lambda t: t if t["state"] not in ("queued", "running") else None)(
            c.get(f"/tasks/{r.json()['id']}").json()), what="the backtest task")
        assert info["state"] == "done", info
        run_id = info["result"]["run_id"]
        got = c.get(f"/runs/backtest/{run_id}/trades").json()
    folder = Path(api.ctx.settings.backtest.artifacts_dir, run_id).parent
    trades = pd.read_csv(next(folder.glob("trades_*.csv")))
    assert len(got["trades"]) == len(trades) == info["result"]["stats"]["n_trades"] == (32 if btc_1h.real else 28)
    first = got["trades"][0]
    assert first["entry_ms"] == pd.Timestamp(trades["entry_ts"].iloc[0]).value // 1_000_000
    assert first["exit_ms"] > first["entry_ms"] and first["entry_price"] == trades["entry_price"].iloc[0]
    assert len(got["equity"]["time_ms"]) == len(got["equity"]["equity"]) == info["result"]["candles"]


def test_the_lookahead_audit_passes_a_causal_strategy_and_catches_one_that_peeks(api, btc_1h):
    """sma_cross is causal; a strategy whose entries read the next close is caught, with the column and values."""
    from thunes.strategies import _REGISTRY, register_strategy
    from thunes.strategies.base import Signals, Strategy

    class Peeks(Strategy):
        name = "test_peeks"

        def signals(self, candles: pd.DataFrame) -> Signals:
            up = (candles["close"].shift(-1) > candles["close"]).fillna(False)
            return Signals(entries=up, exits=~up)

    register_strategy(Peeks)
    try:
        with api.client("viewer") as c:
            ok = c.get("/audit/lookahead", params={"target": "sma_cross", "rows": 1000, "source": "sample"}).json()
            bad = c.get("/audit/lookahead", params={"target": "test_peeks", "rows": 1000, "source": "sample"}).json()
            assert c.get("/audit/lookahead", params={"target": "a:b"}).status_code == 422  # never imports code
    finally:
        _REGISTRY.pop("test_peeks", None)
    assert ok["ok"] is True and ok["columns"] == ["entries", "exits"] and ok["n_violations"] == 0
    assert bad["ok"] is False and set(bad["bad_columns"]) == {"entries", "exits"}
    assert bad["n_violations"] == (532 if btc_1h.real else 468)  # golden count per data source
    assert bad["violations"][0]["prefix_value"] != bad["violations"][0]["full_value"]


def test_the_quality_report_of_a_stored_series_shows_its_gap(api):
    """A stored series with five bars taken out: the report lists that gap with its five missing bars."""
    from thunes.data.store import store_from_settings

    frame = load_study_candles("ETH/USDT", "1h", source="sample").frame.iloc[:500]
    with store_from_settings(api.ctx.settings.data) as store:
        store.insert("ETH/USDT", "1h", frame.drop(frame.index[200:205]))
    with api.client("viewer") as c:
        q = c.get("/data/quality", params={"symbol": "ETH/USDT", "timeframe": "1h"}).json()
        missing = c.get("/data/quality", params={"symbol": "SOL/USDT", "timeframe": "1h"})
    hole = [g for g in q["gaps"] if g["before_ms"] == frame.index[199].value // 1_000_000]
    assert q["rows"] == 495 and len(hole) == 1 and hole[0]["missing_bars"] == 5
    assert missing.status_code == 400 and "nothing stored" in missing.json()["error"]


def test_a_settings_file_is_checked_with_every_problem_or_its_values_and_sources(api, monkeypatch):
    """Two mistakes give two problems (nothing written); a valid file gives its values with their sources,
    URL passwords masked; a JSON file is read as JSON."""
    monkeypatch.setenv("THUNES_RISK__MAX_DAILY_LOSS", "40")
    with api.client("viewer") as c:
        assert c.post("/config/check", json={"text": ""}).status_code == 403  # a POST: the trader role
    with api.client("boss") as c:
        bad = c.post("/config/check", json={"text": '[risk]\nmax_positions = -1\n[exchange]\nmode = "nope"\n'}).json()
        good = c.post("/config/check", json={"text": '[risk]\nmax_positions = 2\n[data]\n'
                                                     'url = "postgresql://u:hunter2@db/thunes"\n'}).json()
        broken = c.post("/config/check", json={"text": "not toml ==="}).json()
        as_json = c.post("/config/check", json={"text": '{"risk": {"max_positions": 4}}', "format": "json"}).json()
        assert c.post("/config/check", json={"text": "", "format": "yaml"}).status_code == 422
    assert bad["ok"] is False and len(bad["problems"]) == 2
    assert any("risk.max_positions" in p for p in bad["problems"]) and any("exchange.mode" in p for p in bad["problems"])
    rows = {r["key"]: r for r in good["rows"]}
    assert good["ok"] is True and rows["risk.max_positions"] == {"key": "risk.max_positions", "value": "2",
                                                                 "source": "file"}
    assert rows["risk.max_daily_loss"]["source"] == "env" and rows["risk.max_daily_loss"]["value"] == "40"
    assert "hunter2" not in rows["data.url"]["value"] and rows["data.url"]["value"].endswith("@db/thunes")
    assert broken["ok"] is False and "not valid TOML" in broken["problems"][0] and "/tmp" not in broken["problems"][0]
    assert as_json["ok"] is True and {r["key"]: r["value"] for r in as_json["rows"]}["risk.max_positions"] == "4"
