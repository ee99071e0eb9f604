"""``thunes exchange faults`` and ``clock``: an operator driving a running local exchange from the shell."""

from __future__ import annotations

import datetime as dt
import json

import ccxt
import pytest
from click.testing import CliRunner

from thunes.cli import root
from thunes.core.errors import ExchangeUnavailable


def _faults(*args: str):
    return CliRunner().invoke(root, ["exchange", "faults", *args], env={"THUNES_CONFIG": ""})


def test_faults_are_switched_shown_and_cleared(sim, client):
    # Act: 503 on order requests only, twice
    on = _faults("--url", sim.base_url, "http_error=503", "http_error_count=2", "paths=/api/v3/order")
    # Assert: the running exchange took it, ccxt sees it where it applies and nowhere else
    assert on.exit_code == 0, on.output
    assert (sim.faults.state.http_error, sim.faults.state.paths) == (503, ["/api/v3/order"])
    assert json.loads(on.output.splitlines()[0])["http_error_count"] == 2
    assert on.output.splitlines()[1] == "active: http_error=503, paths=['/api/v3/order']"
    assert client.fetch_ticker("BTC/USDT")["last"] > 0
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order("BTC/USDT", "market", "buy", None, params={"quoteOrderQty": "20"})
    shown = _faults("--url", sim.base_url)
    assert "http_error=503" in shown.output
    off = _faults("--url", sim.base_url, "--clear")
    assert off.exit_code == 0 and off.output.splitlines()[1] == "active: none"
    assert sim.faults.state.http_error == 0


def test_clear_then_set_and_websocket_actions(sim):
    sim.faults.set(delay_ms=50)
    out = _faults("--url", sim.base_url, "--clear", "storm_status=429", "storm_retry_after=3", "--drop-ws")
    assert out.exit_code == 0, out.output
    state = sim.faults.state
    assert (state.delay_ms, state.storm_status, state.storm_retry_after) == (0, 429, 3)


def test_bad_faults_and_a_missing_exchange_are_reported(sim):
    unknown = _faults("--url", sim.base_url, "explode=1")
    assert unknown.exit_code == 2 and "unknown fault" in unknown.output
    malformed = _faults("--url", sim.base_url, "http_error")
    assert malformed.exit_code == 2 and "NAME=VALUE" in malformed.output
    nobody = _faults("--url", "http://127.0.0.1:9")  # `thunes` prints "error: ..." and exits 2 for this
    assert isinstance(nobody.exception, ExchangeUnavailable)
    assert "no local exchange answers at http://127.0.0.1:9" in str(nobody.exception)


def test_clock_is_shown_and_moved_by_steps_or_to_a_time(sim):
    H = 3_600_000
    start = sim.now_ms()
    shown = CliRunner().invoke(root, ["exchange", "clock", "--url", sim.base_url], env={"THUNES_CONFIG": ""})
    assert shown.exit_code == 0 and f"({start}), speed manual" in shown.output
    stepped = CliRunner().invoke(root, ["exchange", "clock", "--url", sim.base_url, "--steps", "3"],
                                 env={"THUNES_CONFIG": ""})
    assert stepped.exit_code == 0 and sim.now_ms() == start + 3 * H
    target = start + 10 * H
    iso = dt.datetime.fromtimestamp(target / 1000, tz=dt.UTC)
    moved = CliRunner().invoke(root, ["exchange", "clock", "--url", sim.base_url, "--to", iso.isoformat()],
                               env={"THUNES_CONFIG": ""})
    assert moved.exit_code == 0 and sim.now_ms() == target
    assert f"market clock {iso.isoformat()} ({target})" in moved.output
    back = CliRunner().invoke(root, ["exchange", "clock", "--url", sim.base_url, "--to", str(start)],
                              env={"THUNES_CONFIG": ""})
    assert back.exit_code == 0 and sim.now_ms() == target  # never backwards
