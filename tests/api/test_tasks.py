"""Backtest, optimisation and training as background tasks through the API: progress, results, runs and
their reports, cancel."""

from __future__ import annotations

from tests.api.conftest import wait_for


def _finished(c, task_id):
    info = c.get(f"/tasks/{task_id}").json()
    return info if info["state"] in ("done", "failed", "cancelled") else None


def test_a_backtest_task_runs_and_its_run_and_report_are_listed(api):
    with api.client("boss") as c:
        r = c.post("/tasks/backtest", json={"strategy": "sma_cross", "params": {"fast": 10, "slow": 30},
                                            "symbol": "BTC/USDT", "timeframe": "1h", "source": "sample",
                                            "since": "2024-01-01", "until": "2024-04-01"})
        assert r.status_code == 202 and r.json()["state"] in ("queued", "running")
        info = wait_for(lambda: _finished(c, r.json()["id"]), what="the backtest task")
        assert info["state"] == "done" and info["progress"] == 1.0, info
        res = info["result"]
        assert res["candles"] > 2000 and "sharpe" in res["stats"] and res["run_id"].startswith("api-")
        assert [t["id"] for t in c.get("/tasks").json()["tasks"]] == [info["id"]]

        runs = c.get("/runs", params={"kind": "backtest"}).json()["runs"]
        assert [x["id"] for x in runs] == [res["run_id"]] and runs[0]["has_report"] is True
        detail = c.get(f"/runs/backtest/{res['run_id']}").json()
        assert detail["strategy"] == "sma_cross" and detail["params"]["fast"] == 10 and detail["params"]["slow"] == 30
        html = c.get(f"/runs/backtest/{res['run_id']}/report")
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert c.get("/runs/backtest/../../etc/passwd").status_code == 404
        assert c.get("/runs/backtest/nope").status_code == 404


def test_an_optimisation_task_reports_progress_and_stops_on_cancel(api):
    with api.client("boss") as c:
        r = c.post("/tasks/optimize", json={"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h",
                                            "source": "sample", "since": "2024-01-01", "until": "2024-03-01",
                                            "trials": 6})
        assert r.status_code == 202
        done = wait_for(lambda: _finished(c, r.json()["id"]), what="the study")
        assert done["state"] == "done" and done["result"]["trials"] == 6 and done["result"]["best_params"]
        assert c.get(f"/runs/optimize/{done['result']['run_id']}").json()
        assert any(x["kind"] == "optimize" for x in c.get("/runs").json()["runs"])

        big = c.post("/tasks/optimize", json={"strategy": "sma_cross", "source": "sample", "trials": 5000,
                                              "since": "2024-01-01", "until": "2024-03-01"}).json()
        wait_for(lambda: c.get(f"/tasks/{big['id']}").json()["progress"] > 0.05, what="a trial or two")
        assert c.post(f"/tasks/{big['id']}/cancel").json()["cancel_requested"] is True
        info = wait_for(lambda: _finished(c, big["id"]), what="the cancelled study")
        assert info["state"] == "cancelled" and info["progress"] < 0.5


def test_a_training_task_runs_in_a_child_process_that_cancel_terminates(api):
    with api.client("boss") as c:
        r = c.post("/tasks/train", json={"symbol": "BTC/USDT", "timeframe": "1h", "model": "xgb", "epochs": 1})
        assert r.status_code == 202
        tid = r.json()["id"]
        wait_for(lambda: c.get(f"/tasks/{tid}").json()["message"] == "training in a child process",
                 what="the training process")
        assert c.post(f"/tasks/{tid}/cancel").status_code == 200
        info = wait_for(lambda: _finished(c, tid), what="the cancelled training")
        assert info["state"] == "cancelled" and info["message"] == "cancelled (child process terminated)"


def test_bad_task_requests_get_a_clear_4xx(api):
    with api.client("boss") as c:
        r = c.post("/tasks/backtest", json={"strategy": "nope"})
        assert r.status_code == 400 and "nope" in r.json()["error"]
        r = c.post("/tasks/backtest", json={"strategy": "sma_cross", "params": {"fastt": 3}})
        assert r.status_code == 400 and "did you mean" in r.json()["error"]
        r = c.post("/tasks/optimize", json={"strategy": "sma_cross", "objective": "sharpe,calmar"})
        assert r.status_code == 422
        assert c.get("/tasks/abcdef").status_code == 404
        assert c.post("/tasks/abcdef/cancel").status_code == 404
        assert c.get("/runs/unknown/x").status_code == 422


def test_stored_data_and_models_are_listed(api, tmp_path):
    import json

    from thunes.data.samples import load_sample_candles
    from thunes.data.store import store_from_settings

    frame = load_sample_candles("BTC/USDT", "1h").frame.iloc[:100]
    with store_from_settings(api.ctx.settings.data) as store:
        store.insert("BTC/USDT", "1h", frame)
    folder = tmp_path / "artifacts" / "models" / "BTCUSDT_1h_xgb_1"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"model_type": "xgboost", "symbol": "BTC/USDT", "timeframe": "1h"}))
    with api.client("viewer") as c:
        series = c.get("/data").json()["series"]
        assert series == [{"symbol": "BTC/USDT", "timeframe": "1h", "first_ms": int(frame.index[0].value // 10**6),
                           "last_ms": int(frame.index[-1].value // 10**6), "rows": 100}]
        got = c.get("/models").json()["models"]
        assert [(m["name"], m["model_type"], m["files"]) for m in got] == [("BTCUSDT_1h_xgb_1", "xgboost", ["meta.json"])]
