"""Progress bars only on a terminal (issue 14, item 13): a log, a pipe or CI gets no carriage returns.

``thunes.progress.progress_bar`` is the one way to draw a bar; ``thunes optimize`` without
``--no-progress`` writes its stderr to a file here, and that file must hold no ``\\r``.
"""

from __future__ import annotations

import io
import sys

import pandas as pd

from thunes.cli import main
from thunes.progress import progress_bar, show_progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_draws_on_a_terminal_only(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not show_progress()
    with progress_bar(total=3, desc="x") as bar:
        bar.update(3)
    assert sys.stderr.getvalue() == ""

    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert show_progress() and not show_progress(enabled=False)
    with progress_bar(total=3, desc="x") as bar:
        bar.update(3)
    assert "\r" in tty.getvalue()


def test_optimize_logs_no_carriage_returns_when_stderr_is_not_a_terminal(tmp_path, capfd, btc_1h):
    since = (btc_1h.frame.index[-1] - pd.Timedelta(days=60)).strftime("%Y-%m-%d")
    try:
        main(["--set", f"optimize.artifacts_dir={tmp_path}/art", "optimize", "--storage", "memory", "--trials", "3",
              "--walk-forward", "none", "--source", "sample", "--since", since])
    except SystemExit as exc:
        assert exc.code in (0, None)
    err = capfd.readouterr().err
    assert "\r" not in err, repr(err[:300])


def _sweep_and_lookahead(frame):
    from thunes.backtest import BacktestOptions
    from thunes.backtest.sweep import run_sweep
    from thunes.features.lookahead import check_prefix_invariance
    from thunes.strategies import get_strategy

    run_sweep({"BTC/USDT": frame}, get_strategy("sma_cross"), {"fast": [5, 10], "slow": [30]}, BacktestOptions(),
              timeframe="1h", progress=True)
    check_prefix_invariance(lambda c: c[["close"]].rolling(5).mean(), frame, n_prefixes=3, progress=True)


def test_sweep_and_lookahead_bars_draw_on_a_terminal_only(monkeypatch, btc_1h):
    """The sweep and the look-ahead audit draw through progress_bar: nothing on a pipe or a log."""
    frame = btc_1h.frame.tail(400)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    _sweep_and_lookahead(frame)
    assert "\r" not in sys.stderr.getvalue(), repr(sys.stderr.getvalue()[:200])

    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    _sweep_and_lookahead(frame)
    assert "sweep" in tty.getvalue() and "look-ahead" in tty.getvalue()
