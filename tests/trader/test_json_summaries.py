"""``thunes paper --json`` and ``thunes parity --json`` print one JSON object on stdout and nothing else there
(issue 14, item 13); progress, the candles' origin and the per-candle decisions go to stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thunes.cli import main


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(argv: list[str], capfd) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capfd.readouterr()
    return int(code), out, err


def test_paper_json_is_the_runs_summary_alone_on_stdout(workdir, capfd):
    code, out, err = _run(["paper", "--source", "synthetic", "--timeframe", "5m", "--bars", "40",
                           "--replay-speed", "3000", "--strategy", "sma_cross", "--param", "fast=3",
                           "--param", "slow=8", "--out", "run", "--json"], capfd)

    assert code == 0, err
    summary = json.loads(out)  # the whole of stdout is one JSON document
    assert summary["mode"] == "local" and summary["symbol"] == "BTC/USDT" and summary["timeframe"] == "5m"
    assert summary["candles"].startswith("SYNTHETIC candles")
    assert summary["bars"] == 40 and summary["stopped"] == "40 bars processed"
    assert summary["orders"] >= summary["fills"] > 0  # fast=3/slow=8 on 5m crosses within 40 bars
    assert summary["trades"] == len(summary["round_trips"]) > 0
    closed = [t["pnl"] for t in summary["round_trips"] if t["exit_ts"] is not None]
    assert summary["closed_trades"] == len(closed) and summary["pnl"] == pytest.approx(sum(closed))
    assert Path(summary["ledger"]).is_file() and summary["run_dir"] == "run"
    assert Path(summary["audit"]).is_file()
    assert "signal bar" in err and "local exchange replaying BTC/USDT 5m" in err  # decisions: on stderr


def test_parity_json_gives_the_verdict_the_trade_counts_and_the_differences(workdir, capfd):
    code, out, err = _run(["parity", "--source", "synthetic", "--bars", "200", "--param", "fast=5",
                           "--param", "slow=20", "--out", "parity", "--json"], capfd)

    report = json.loads(out)
    assert code == (0 if report["match"] else 1), err  # the exit status follows the verdict, as in text
    assert report["verdict"] == ("PARITY OK" if report["match"] else "PARITY BROKEN")
    assert report["backtest_trades"] > 0 and report["paper_trades"] > 0
    assert len(report["round_trips"]) >= max(report["backtest_trades"], report["paper_trades"])
    assert report["differences"] == [r for r in report["round_trips"] if r["cause"] != "identical"]
    assert report["bars"] == 200 and report["candles"].startswith("SYNTHETIC candles")
    assert "parity on BTC/USDT 1h" in err
