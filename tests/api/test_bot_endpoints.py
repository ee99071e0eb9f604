"""Every read and write of the bot through the real server, on a running paper bot (4 pairs, local exchange)."""

from __future__ import annotations

from tests.api.conftest import wait_for


def test_reads_on_a_running_paper_bot(paper_api):
    api, session, _thread, _out = paper_api
    with api.client("viewer") as c:
        st = c.get("/bot/status").json()
        assert st["running"] is True and {p["symbol"] for p in st["pairs"]} == \
            {"BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"}
        assert "open_orders" in st and isinstance(st["positions"], list)

        wait_for(lambda: all(p["last_bar_ts"] for p in c.get("/bot/status").json()["pairs"]), what="candles")
        h = c.get("/health").json()
        assert h["running"] and h["exchange_reachable"] is True and h["exchange_error"] is None
        assert len(h["pairs"]) == 4 and all(p["fresh"] for p in h["pairs"]), h
        assert {j["name"] for j in h["jobs"]} == {"reconcile", "daily_summary", "decay_check", "backup"}

        bal = c.get("/bot/balance").json()
        assert "USDT" in bal["balances"] and isinstance(bal["balances"]["USDT"], str)  # exact, as text
        risk = c.get("/bot/risk").json()
        assert risk["kill_switch"] is False and risk["mode"] == "ACTIVE"
        assert {j["name"] for j in c.get("/bot/jobs").json()["jobs"]} == \
            {"reconcile", "daily_summary", "decay_check", "backup"}

        # A round trip closes; it shows in trades (with a stable id), profit, periods and per pair. The
        # counts below are bounds: the bot keeps trading while the test reads them.
        page = wait_for(lambda: (lambda p: p if any(t["exit_ms"] for t in p["trades"]) else None)(
            c.get("/trades", params={"per_page": 100}).json()), what="a closed trade")
        closed = next(t for t in page["trades"] if t["exit_ms"])
        assert c.get(f"/trades/{closed['id']}").json() == closed
        assert c.get("/trades/999999").status_code == 404
        assert c.get("/trades", params={"symbol": closed["symbol"]}).json()["total"] >= 1
        assert c.get("/profit").json()["closed_trades"] >= 1
        for path, key in (("/daily", "days"), ("/weekly", "weeks"), ("/monthly", "months")):
            rows = c.get(path).json()[key]
            assert sum(r["trades"] for r in rows) >= 1, path
        assert closed["symbol"] in {p["symbol"] for p in c.get("/performance").json()["pairs"]}
        every = c.get("/bot/orders", params={"all": True, "limit": 1000}).json()
        assert every["total"] >= 2 and {o["status"] for o in every["orders"]} == {"FILLED"}
        assert isinstance(every["orders"][0]["qty"], str) and every["orders"][0]["client_order_id"]
        assert c.get("/bot/orders").json()["total"] == 0  # market orders fill at once: none left open

        audit = c.get("/audit/verify").json()
        assert audit["ok"] is True and audit["records"] > 0
        assert c.get("/version").json()["api"] == "v1"


def test_writes_on_a_running_paper_bot(paper_api):
    api, session, thread, out = paper_api
    state_dir = session.stack.state_dir
    with api.client("boss") as c:
        held = wait_for(lambda: c.get("/bot/status").json()["positions"], what="an open position")
        symbol = held[0]["symbol"]
        r = c.post("/bot/force-exit", json={"symbol": symbol, "reason": "test"})
        assert r.status_code == 200 and r.json()["status"] == "FILLED"
        assert symbol not in {p["symbol"] for p in c.get("/bot/status").json()["positions"]}
        again = c.post("/bot/force-exit", json={"symbol": symbol})
        assert again.status_code == 400 and again.json()["error"] == f"no open position in {symbol}"

        assert c.post("/bot/pause", json={"reason": "lunch"}).json()["paused"] is True
        assert c.get("/bot/status").json()["paused"] is True
        assert c.post("/bot/resume").json()["paused"] is False

        on = c.post("/bot/kill-switch", json={"on": True, "reason": "drill"}).json()
        assert on["kill_switch"] is True
        assert c.get("/bot/risk").json()["kill_switch"] is True
        assert c.post("/bot/kill-switch", json={"on": False, "reason": "drill over"}).json()["kill_switch"] is False
        ro = c.post("/bot/reduce-only", json={"on": True, "reason": "winding down"}).json()
        assert ro["reduce_only"] is True
        assert c.post("/bot/reduce-only", json={"on": False, "reason": "back"}).json()["reduce_only"] is False
        assert c.post("/bot/reload").json()["markets"] == 4  # the rules of the bot's four pairs, reloaded

        # Every change is audited under the API user's name.
        audit = (state_dir / "audit.jsonl").read_text()
        assert "api:boss" in audit and "(api: boss)" in audit

        assert c.post("/bot/start", json={}).status_code == 409  # one bot at a time
        assert c.post("/bot/stop", json={"reason": "done"}).json() == {"stopping": True}
        thread.join(30)
        assert out["result"].report.stop_reason == "done (api: boss)"
        r = c.post("/bot/stop")
        assert r.status_code == 409 and "no bot is running" in r.json()["error"]
        assert c.get("/bot/status").json()["running"] is False


def test_start_a_bot_from_the_api_and_stop_it(api, tmp_path):
    with api.client("boss") as c:
        r = c.post("/bot/start", json={"pairs": ["BTC/USDT", "ETH/USDT"], "strategy": "sma_cross",
                                       "params": {"fast": 5, "slow": 20}, "timeframe": "1h", "bars": 2000,
                                       "synthetic": True, "speed": 36000, "state_dir": str(tmp_path / "bot")})
        assert r.status_code == 202, r.text
        assert r.json()["running"] is True and r.json()["owned"] is True
        wait_for(lambda: c.get("/bot/status").json()["running"], what="the started bot")
        assert c.post("/bot/start", json={"synthetic": True}).status_code == 409
        assert c.post("/bot/stop").status_code == 200
        wait_for(lambda: not api.ctx.runner.running, what="the bot to stop")
        assert api.ctx.runner.status().stop_reason == "stop requested (api: boss)"


def test_bad_bot_requests_get_a_clear_4xx(api):
    with api.client("boss") as c:
        r = c.post("/bot/force-exit", json={"symbol": "BTCUSDT"})
        assert r.status_code == 422 and r.json()["error"].startswith("symbol: String should match pattern")
        r = c.post("/bot/kill-switch", json={"on": True})
        assert r.status_code == 422 and r.json()["error"] == "reason: Field required"
        r = c.post("/bot/start", json={"exchange": "live", "synthetic": True})
        assert r.status_code == 400 and "--live and --i-understand-the-risks" in r.json()["error"]
        r = c.post("/bot/start", json={"strategy": "no_such_strategy", "synthetic": True})
        assert r.status_code == 400, r.text
        assert c.post("/bot/pause", content=b"{not json", headers={"Content-Type": "application/json"}
                      ).status_code == 422
