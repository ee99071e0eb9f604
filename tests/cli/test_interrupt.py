"""Ctrl-C ends every command with one line and exit status 130 (issue 14, item 13).

``thunes.cli.main`` maps KeyboardInterrupt (and click's Abort at a prompt) to ``interrupted`` / ``aborted``
and 130, the shell's code for SIGINT, instead of a traceback; long commands clean up in their own
``finally`` blocks first (optimize: tests/optimize/test_interrupt.py).
"""

from __future__ import annotations

from thunes.cli import main


def test_ctrl_c_in_any_command_is_one_line_and_130(capfd, monkeypatch):
    import thunes.features

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(thunes.features, "compute_features", interrupted)
    try:
        main(["features", "compute", "--sample", "--timeframe", "1d"])
        code = 0
    except SystemExit as exc:
        code = exc.code
    err = capfd.readouterr().err
    assert code == 130
    lines = [line for line in err.splitlines() if line.strip()]
    # Where the candles came from (and, without real sample files, the SYNTHETIC warning), then one line.
    told = ("candles: BTC/USDT 1d", "warning: these are SYNTHETIC")
    said = [line for line in lines if line.startswith(told)]
    assert said and lines[len(said):] == ["interrupted"]
