"""A real Prometheus (Debian's package, scripts/install-system-deps.sh) scraping a running paper bot.

The shipped config and rules pass ``promtool``; a Prometheus on a private loopback port, loaded with the
shipped alert rules, scrapes the bot every second during a scripted four-pair run; its HTTP API then
answers with the series and the values the bot's own report, event log and ledger give; switching the
kill-switch on fires the shipped ThunesKillSwitchOn alert.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from thunes import __version__
from thunes.core.events import OrderFilled, RiskDenied
from thunes.execution.ledger import read_ledger
from thunes.services.bot import BotRunRequest, events, open_bot, set_kill_switch

from .conftest import DEPLOY

PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMETHEUS is None or PROMTOOL is None,
                                reason="prometheus/promtool not installed (run scripts/install-system-deps.sh)")


def test_promtool_accepts_the_shipped_config_and_rules_and_the_alerts_fire_as_specified():
    """check config, check rules, and the rules' unit tests (deploy/prometheus/alerts_test.yml: bot down,
    feed stale, kill-switch, reconcile mismatch, error rate, consumer lag fire when, and only when, due)."""
    for args in (["check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                 ["check", "rules", str(DEPLOY / "prometheus" / "thunes-rules.yml")],
                 ["test", "rules", str(DEPLOY / "prometheus" / "alerts_test.yml")]):
        done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS" in done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prom:
    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> dict[str, float]:
        """Instant vector: {"label=value,...": value}."""
        out = {}
        for r in self.get("/api/v1/query", query=expr)["result"]:
            key = ",".join(f"{k}={v}" for k, v in sorted(r["metric"].items()) if k not in ("job", "instance"))
            out[key] = float(r["value"][1])
        return out

    def scalar(self, expr: str) -> float | None:
        got = self.query(expr)
        return next(iter(got.values())) if got else None


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def prometheus(tmp_path: Path):
    """Start Prometheus with the shipped rules; ``start(target)`` scrapes ``target`` every second."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> Prom:
        port = _free_port()
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(DEPLOY / "prometheus" / "thunes-rules.yml")],
                  "scrape_configs": [{"job_name": "thunes-bot", "static_configs": [{"targets": [target]}]}]}
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        log = (tmp_path / "prometheus.log").open("wb")
        procs.append(subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], stdout=log, stderr=log))
        prom = Prom(f"http://127.0.0.1:{port}")

        def ready() -> bool:
            if procs[-1].poll() is not None:
                raise AssertionError("prometheus exited: " + (tmp_path / "prometheus.log").read_text())
            try:
                with urllib.request.urlopen(f"{prom.base}/-/ready", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_for(ready, 30, "prometheus to be ready")
        return prom

    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def test_prometheus_scrapes_a_paper_run_and_fires_the_kill_switch_alert(tmp_path, four_pairs, prometheus):
    """Four pairs x 60 candles (max 2 positions): what Prometheus stored equals the bot's own books."""
    from tests.live.conftest import app_settings, bot_settings
    from thunes.live.config import LocalReplaySettings

    settings = bot_settings(tmp_path / "bot", bars=60, risk={"max_positions": 2, "cool_down_minutes": 0})
    # Paced to about 4.5 s (18,000 market seconds at 4,000x), so the 1 s scrapes see the bot running even when
    # a busy machine delays one; unpaced, 240 candles can go by between two scrapes.
    settings = settings.model_copy(update={"local": LocalReplaySettings(bars=60, speed=4000)})
    app = app_settings(tmp_path)
    request = BotRunRequest(settings=settings, control=False, audit_fsync="never", metrics_port=0)
    with open_bot(request, app, frames=four_pairs) as session:
        session.serve_metrics()
        prom = prometheus(f"127.0.0.1:{session.metrics_server.port}")
        wait_for(lambda: prom.scalar('up{job="thunes-bot"}') == 1, 15, "the first scrape")
        result = session.run()
        r = result.report
        wait_for(lambda: prom.scalar('thunes_bot_state{state="stopped"}') == 1
                 and prom.scalar("sum(thunes_candles_processed_total)") == r.candles, 15, "the final scrape")

        log = events(result.state_dir)
        fills = read_ledger(result.state_dir / "ledger.csv")
        per_pair = prom.query("sum by (symbol) (thunes_candles_processed_total)")
        assert per_pair == {f"symbol={s}": 60.0 for s in ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT")}
        assert prom.scalar("sum(thunes_fills_total)") == len(fills) > 0
        assert prom.scalar('sum(thunes_orders_total{outcome="filled"})') == \
            sum(isinstance(e, OrderFilled) for e in log)
        denied = sum(isinstance(e, RiskDenied) and e.rule == "max_positions" for e in log)
        assert denied > 0
        assert prom.scalar('sum(thunes_risk_denials_total{rule="max_positions"})') == denied
        assert prom.scalar("thunes_reconcile_runs_total") == r.reconciles
        assert prom.scalar(f'thunes_build_info{{version="{__version__}",exchange="local"}}') == 1
        assert prom.scalar('max_over_time(thunes_bot_state{state="running"}[5m])') == 1  # scraped while trading
        assert prom.scalar("sum(thunes_exchange_requests_total)") > 0
        assert prom.scalar("sum(thunes_order_send_latency_seconds_count)") == len(r.latencies_s) > 0
        assert prom.scalar("thunes_kill_switch_active") == 0

        # The shipped rules loaded and evaluate; the kill-switch alert fires once the switch is on.
        groups = prom.get("/api/v1/rules")["groups"]
        rules = [rule for g in groups for rule in g["rules"]]
        assert len(rules) >= 10 and all(rule["health"] == "ok" for rule in rules), rules
        set_kill_switch(result.state_dir, True, reason="metrics test", operator="pytest",
                        risk_settings=settings.risk_settings(app.risk))

        def firing() -> set[str]:
            return {a["labels"]["alertname"] for a in prom.get("/api/v1/alerts")["alerts"] if a["state"] == "firing"}
        wait_for(lambda: "ThunesKillSwitchOn" in firing(), 20, "ThunesKillSwitchOn to fire")
        assert "ThunesBotDown" not in firing()
