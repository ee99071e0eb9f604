"""The dashboard in Chromium against a real API and paper bot: sign-in, every page, the chart's candles and trade
markers, a backtest started and read, the bot paused from the page, the viewer's read-only view."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.api.conftest import wait_for
from tests.dashboard.conftest import ROOT

PAGES = ("bot", "chart", "trades", "performance", "backtest", "prepare", "train", "forecast", "config", "audit")


def _closed_trade(dash) -> dict:
    with dash.client("viewer") as c:
        return wait_for(lambda: next((t for t in c.get("/trades", params={"per_page": 500}).json()["trades"]
                                      if t["exit_ms"]), None), what="a closed trade")


def test_a_wrong_password_is_refused(tab):
    """A wrong password leaves the sign-in form up with the API's refusal; nothing else is shown."""
    tab.login("boss", "not-the-password")
    expect(tab.page.locator("#login-error")).to_contain_text("wrong user name or password")
    assert tab.page.locator("#nav").is_hidden() and tab.page.locator("#page-bot").count() == 0


def test_every_page_renders_without_console_errors(tab, dash, shots):
    """Signed in as a trader, each page renders (no error line) with no console error; a screenshot of each."""
    _closed_trade(dash)
    tab.login("boss")
    tab.page.wait_for_selector("#page-bot[data-ready]")
    readme = os.environ.get("THUNES_DASHBOARD_README") == "1"
    for name in PAGES:
        # The bot replays the sample files (synthetic candles on a fresh clone): the chart reads the same.
        root = tab.open(name, "?source=sample" if name == "chart" else "")
        assert root.get_attribute("data-ready") == "1", name
        assert root.locator(".error:not(:empty)").count() == 0, (name, root.locator(".error").all_inner_texts())
        if name == "bot":
            tab.page.wait_for_selector("#events div[data-kind]", timeout=20_000)  # live events arrive
        if name == "chart":
            tab.page.wait_for_selector("#chart[data-markers]")
        tab.page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        if readme and name in ("bot", "chart"):
            tab.page.mouse.move(0, 0)  # no crosshair on the picture
            tab.page.screenshot(path=str(ROOT / "docs" / "img" / f"dashboard-{name}.png"))
    assert tab.errors == [], tab.errors


def test_the_chart_shows_candles_and_the_bots_trade_markers(tab, dash):
    """The Chart page draws the candles around the bot's trades in the pair, with an entry and an exit marker
    for each closed trade (drawn on the canvas: the counts are the page's own)."""
    trade = _closed_trade(dash)
    tab.login("boss")
    tab.page.wait_for_selector("#page-bot[data-ready]")
    tab.open("chart", f"?symbol={trade['symbol']}&timeframe=5m&source=sample")
    chart = tab.page.locator("#chart")
    tab.page.wait_for_selector("#chart[data-markers]")
    assert int(chart.get_attribute("data-candles")) > 100
    with dash.client("viewer") as c:
        trades = c.get("/trades", params={"per_page": 500, "symbol": trade["symbol"]}).json()["trades"]
    assert int(chart.get_attribute("data-markers")) >= len(trades) + 1  # every entry, and at least one exit
    assert chart.locator("canvas").count() >= 2
    assert tab.errors == []


def _finished(tab) -> None:
    state = tab.page.locator("#task-state:not([data-state=queued]):not([data-state=running])")
    state.wait_for(timeout=60_000)
    assert state.get_attribute("data-state") == "done", state.inner_text()


def test_a_backtest_started_from_the_page_shows_its_result(tab):
    """Run backtest: the task's progress, then its statistics and the run in the list; then a study, with its
    overfitting statistics; then the study's HTML report."""
    tab.login("boss")
    tab.page.wait_for_selector("#page-bot[data-ready]")
    tab.open("backtest")
    form = tab.page.locator("#backtest-form")
    form.locator("input[name=timeframe]").fill("1h")
    form.locator("input[name=since]").fill("2024-01-01")
    form.locator("input[name=until]").fill("2024-03-01")
    form.locator("select[name=source]").select_option("sample")
    tab.page.click("#run-backtest")
    _finished(tab)
    stats = tab.page.locator("#run-stats")
    stats.wait_for()
    assert "sharpe" in stats.inner_text().lower()
    assert tab.page.locator("#runs tbody tr").count() >= 1
    assert tab.errors == []

    # A small study from the same form: its overfitting statistics and recommendation.
    form.locator("input[name=params]").fill("")  # search every parameter
    form.locator("input[name=trials]").fill("4")
    tab.page.click("#run-optimize")
    _finished(tab)
    expect(tab.page.locator("#study-stats")).to_contain_text("recommendation")
    assert tab.page.locator("#runs tbody tr").count() >= 2
    assert tab.errors == []
    # The run's own HTML report in its sandboxed frame: its scripts run (plotly draws). Its console is not
    # checked: the report itself throws a plotly "axis scaling" error on short runs, also when opened directly.
    tab.page.get_by_text("Show the HTML report").click()
    tab.page.wait_for_selector("iframe.report[data-loaded]")
    report = tab.page.frame_locator("iframe.report")
    expect(report.locator(".plotly-graph-div").first).to_be_visible(timeout=20_000)


def test_a_model_trained_from_the_page_gives_a_forecast_with_its_interval(tab, dash, shots):
    """Train (XGBoost, one round, on the store's 1h candles) from the Train page; the model is listed with its
    metrics, and the Forecast page shows its return and volatility forecast and draws the interval (the
    same numbers as the API's)."""
    tab.login("boss")
    tab.page.wait_for_selector("#page-bot[data-ready]")
    tab.open("prepare")
    expect(tab.page.locator("#page-prepare tbody tr")).to_have_count(1)
    tab.page.click(".quality-check")  # the stored series has a 5-bar hole made by the fixture
    expect(tab.page.locator("#quality-gaps")).to_contain_text("5")
    tab.open("train")
    form = tab.page.locator("#train-form")
    form.locator("input[name=epochs]").fill("1")
    form.locator("input[name=since]").fill("2023-12-01")  # the last ~3,400 stored candles: a quick fit
    form.locator("button[type=submit]").click()
    expect(tab.page.locator("#train-task")).to_contain_text("done", timeout=80_000)
    expect(tab.page.locator("#models tbody tr")).to_have_count(1)
    tab.open("forecast")
    expect(tab.page.locator("#forecast-return")).to_contain_text("%")
    tab.page.wait_for_selector("#forecast-chart[data-band]")
    with dash.client("viewer") as c:
        f = c.get("/forecast").json()
    low, high = (float(x) for x in tab.page.locator("#forecast-chart").get_attribute("data-band").split(","))
    assert (low, high) == (f["band_2s"][0], f["band_2s"][1]) and low < f["price"] < high
    tab.page.screenshot(path=str(shots / "forecast.png"), full_page=True)
    assert tab.errors == []


def test_pause_asks_for_confirmation_and_the_state_changes(tab, dash):
    """Pause opens a confirmation; Cancel changes nothing; Confirm pauses the bot (seen by the API and the page);
    Resume brings it back. The kill-switch refuses an empty reason, then goes ON and OFF."""
    tab.login("boss")
    tab.page.wait_for_selector("#page-bot[data-ready]")
    badge = tab.page.locator("#bot-state-badge")
    tab.page.click("#pause")
    assert tab.page.locator("#confirm").is_visible()
    tab.page.click("#confirm button[value=cancel]")
    with dash.client("viewer") as c:
        assert c.get("/bot/status").json()["paused"] is False
        tab.page.click("#pause")
        tab.page.fill("#confirm-reason", "dashboard test")
        tab.page.click("#confirm-ok")
        expect(badge).to_have_text("paused")
        assert c.get("/bot/status").json()["paused"] is True
        assert badge.inner_text() == "paused"
        tab.page.click("#resume")
        tab.page.click("#confirm-ok")
        wait_for(lambda: c.get("/bot/status").json()["paused"] is False, what="resumed")

        # The kill-switch needs a reason (audited with the user's name); ON is seen by the API and the page.
        tab.page.click("#kill")
        tab.page.fill("#confirm-reason", "")
        tab.page.click("#confirm-ok")
        expect(tab.page.locator("#bot-action-message")).to_have_text("a reason is required")
        assert c.get("/bot/risk").json()["kill_switch"] is False
        tab.page.click("#kill")
        tab.page.fill("#confirm-reason", "dashboard drill")
        tab.page.click("#confirm-ok")
        expect(tab.page.locator("#kill-state")).to_contain_text("ON")
        risk = c.get("/bot/risk").json()
        assert risk["kill_switch"] is True and "dashboard drill" in risk["kill_reason"]
        assert risk["kill_operator"] == "api:boss"
        tab.page.click("#kill")
        tab.page.click("#confirm-ok")
        wait_for(lambda: c.get("/bot/risk").json()["kill_switch"] is False, what="the kill-switch off")
    assert tab.errors == []


def test_the_audit_page_verifies_the_trail_and_runs_a_lookahead_audit(tab):
    """The bot's audit trail is verified intact; the look-ahead audit of the strategy finds none."""
    tab.login("viewer")
    tab.page.wait_for_selector("#page-bot[data-ready]")
    tab.open("audit")
    expect(tab.page.locator("#audit-verdict")).to_have_text("intact")
    tab.page.click("#lookahead-run")
    expect(tab.page.locator("#lookahead-verdict")).to_have_text("no look-ahead")
    assert tab.errors == []


def test_the_config_page_checks_a_settings_file(tab):
    """A wrong value is listed as a problem; once fixed, the file is valid and its value shown from the file."""
    tab.login("boss")
    tab.page.wait_for_selector("#page-bot[data-ready]")
    tab.open("config")
    expect(tab.page.locator("#config-table")).to_contain_text("risk.max_positions")
    tab.page.fill("#config-text", "[risk]\nmax_positions = 0\n")
    tab.page.click("#config-validate")
    expect(tab.page.locator("#config-verdict")).to_have_text("1 problem(s)")
    expect(tab.page.locator("#config-check")).to_contain_text("risk.max_positions")
    tab.page.fill("#config-text", "[risk]\nmax_positions = 2\n")
    tab.page.click("#config-validate")
    expect(tab.page.locator("#config-verdict")).to_have_text("valid")
    expect(tab.page.locator("#config-check tbody")).to_contain_text("file")
    assert tab.errors == []


def test_a_viewer_sees_no_write_button(tab, shots):
    """A viewer reads every page but is shown no button that changes something (and the API refuses them)."""
    tab.login("viewer")
    tab.page.wait_for_selector("#page-bot[data-ready]")
    for name in PAGES:
        # The bot replays the sample files (synthetic candles on a fresh clone): the chart reads the same.
        root = tab.open(name, "?source=sample" if name == "chart" else "")
        assert root.locator("button.write, #pause, #kill, #stop, #backtest-form, #train-form, #config-check-form"
                            ).count() == 0, name
    tab.page.screenshot(path=str(shots / "viewer-train.png"), full_page=True)
    assert tab.errors == []


@pytest.mark.parametrize("width", [390])
def test_phone_sized_screen(browser, dash, shots, width):
    """On a phone-sized screen the menu folds into a button and the chart fits the width."""
    context = browser.new_context(viewport={"width": width, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    from tests.dashboard.conftest import Page as Tab

    tab = Tab(page, dash.url.removesuffix("/api/v1"))
    tab.login("viewer")
    page.wait_for_selector("#page-bot[data-ready]")
    assert page.locator("#nav").is_hidden() and page.locator("#menu").is_visible()
    page.click("#menu")
    page.click("#nav a[data-page=trades]")
    page.wait_for_selector("#page-trades[data-ready]")  # the folded menu navigates
    # The sample: a fresh clone's store has no 5m candles, and the chart's default source never makes some up.
    tab.open("chart", "?source=sample")
    page.wait_for_selector("#chart[data-candles]")
    assert page.locator("#chart").bounding_box()["width"] <= width
    page.screenshot(path=str(shots / "phone-chart.png"))
    assert tab.errors == []
    context.close()


def test_the_chart_of_a_year_of_1h_candles_loads_fast(tab, dash):
    """Signed in, the Chart page with a year of 1h candles (8,760 bars with two indicator lines) is drawn
    within a second of opening it (the issue's budget on the local machine; twice that here on a shared CI core)."""
    import time

    tab.login("viewer")
    tab.page.wait_for_selector("#page-bot[data-ready]")
    start = time.perf_counter()
    tab.open("chart", "?symbol=BTC/USDT&timeframe=1h&limit=8760&strategy=sma_cross&trades=none")
    tab.page.wait_for_selector("#chart[data-candles]")
    elapsed = time.perf_counter() - start
    assert int(tab.page.locator("#chart").get_attribute("data-candles")) == 8760
    print(f"chart of 8760 1h candles drawn in {elapsed:.2f} s")
    assert elapsed < 2.0, elapsed
    assert tab.errors == []


def test_with_no_bot_every_page_still_renders(browser, tmp_path, shots):
    """`thunes api serve` before any bot ran: the Bot page says so in one line; every other page renders."""
    from tests.api.conftest import make_ctx, start_api
    from tests.dashboard.conftest import Page as Tab

    api = start_api(make_ctx(tmp_path, login_attempts=1000))
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        tab = Tab(context.new_page(), api.url.removesuffix("/api/v1"))
        tab.login("viewer")
        tab.page.wait_for_selector("#page-bot[data-ready]")
        expect(tab.page.locator("#bot-message")).to_contain_text("not a bot state folder")
        tab.page.screenshot(path=str(shots / "no-bot.png"), full_page=True)
        for name in PAGES[1:]:
            root = tab.open(name)
            assert root.get_attribute("data-ready") == "1", (name, root.inner_text())
        # Only the Bot page's refused reads are in the console (the browser logs every 4xx answer).
        assert all("400" in e for e in tab.errors), tab.errors
    finally:
        context.close()
        api.server.stop()
