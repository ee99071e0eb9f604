"""The HTML backtest report renders in a real browser: headless Chromium opens the file offline, the page
logs no error, and every figure draws something (a heatmap shorter than plotly's default margins would
be blank, "Something went wrong with axis scaling", which only a browser shows).

Needs the Debian ``chromium`` package (scripts/install-system-deps.sh) and the ``playwright`` Python
package (dev extra); skipped without them. Playwright only drives the system browser: nothing is downloaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from thunes.backtest import run_backtest
from thunes.backtest.report import write_report
from thunes.strategies import get_strategy

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("the chromium package is not installed (scripts/install-system-deps.sh)", allow_module_level=True)

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Per plotly figure of the page: its plot area, and what each trace drew (points, or heatmap images).
FIGURES_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
    title: (gd._fullLayout.title && gd._fullLayout.title.text) || '',
    width: gd._fullLayout._size.w, height: gd._fullLayout._size.h,
    traces: gd._fullData.map(t => ({type: t.type, points: t._length || (t.z ? t.z.length : 0)})),
    heatmap_images: gd.querySelectorAll('g.hm image').length,
    gl_canvases: gd.querySelectorAll('canvas').length,
}))"""


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


def _open(browser, path: Path) -> tuple[list[dict], list[str]]:
    """Load the file; return its figures and every console error or uncaught page error."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page: {e}"))
    page.on("request", lambda r: errors.append(f"fetched {r.url}") if not r.url.startswith(("file:", "data:")) else None)
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2 && "
                           "Array.from(document.querySelectorAll('.js-plotly-plot')).every(gd => gd._fullLayout)")
    figures = page.evaluate(FIGURES_JS)
    page.close()
    return figures, errors


@pytest.mark.parametrize("bars", [300, 3000])  # one calendar year (one heatmap row) and several
def test_backtest_report_draws_every_figure_without_errors(browser, btc_1h, tmp_path, bars):
    result = run_backtest(btc_1h.frame.tail(bars), get_strategy("sma_cross")())
    # Golden trade counts (the report has trades to mark), on the real file or the synthetic fallback.
    assert len(result.trades) == {300: (3, 5), 3000: (43, 41)}[bars][0 if btc_1h.real else 1]
    figures, errors = _open(browser, write_report(result, tmp_path))
    assert errors == []
    assert [f["title"].split(" ")[0] for f in figures] == ["sma_cross", "monthly"]
    for fig in figures:
        assert fig["width"] > 50 and fig["height"] > 50, fig  # a plot area, not just margins
        assert fig["traces"] and all(t["points"] > 0 for t in fig["traces"]), fig
    main, heat = figures
    assert {t["type"] for t in main["traces"]} == {"scattergl"} and main["gl_canvases"] > 0
    assert heat["traces"] == [{"type": "heatmap", "points": heat["traces"][0]["points"]}]
    assert heat["heatmap_images"] == 1  # the heatmap drew its cells
