"""The trading commands refuse what they must refuse before touching any exchange."""

from __future__ import annotations

from datetime import UTC

import pytest
from click.testing import CliRunner

from thunes.cli import root
from thunes.core.errors import ConfigError


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(root, list(args), env=env)


def test_live_needs_both_confirmations():
    result = invoke("live", "--live")
    assert result.exit_code == 2
    assert "--live and --i-understand-the-risks" in result.output


def test_live_without_keys_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("live", "--live", "--i-understand-the-risks",
                    env={"THUNES_EXCHANGE__API_KEY": None, "THUNES_EXCHANGE__API_SECRET": None})
    assert isinstance(result.exception, ConfigError)
    assert "THUNES_EXCHANGE__API_KEY" in str(result.exception)


@pytest.mark.parametrize("command", ["paper", "live", "parity"])
def test_every_trading_command_explains_itself(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0 and "Example" in result.output


def test_parity_prints_a_table_per_trade_and_fails_when_the_exchange_refuses_the_orders(tmp_path):
    env = {"THUNES_DATA__URL": f"sqlite:///{tmp_path / 'empty.sqlite'}", "COLUMNS": "200"}  # sample data
    args = ("parity", "--sample", "--param", "fast=3", "--param", "slow=8", "--bars", "30")
    same = invoke(*args, "--out", str(tmp_path / "same"), env=env)
    # 20 000 USDT per trade with the position caps lifted: the local exchange's account holds 10 000 USDT
    # and refuses every entry; the backtest, whose cash is the same 10 000, buys what the cash allows.
    broke = invoke(*args, "--out", str(tmp_path / "broke"), env={
        **env, "THUNES_TRADER__QUOTE_PER_TRADE": "20000", "THUNES_RISK__MAX_POSITION_QUOTE": "1000000",
        "THUNES_RISK__MAX_LOSS_PER_TRADE": "1000000"})
    # At most 0.05 USDT lost at the 2 % stop: the risk manager sizes entries to 2.5 USDT, under the
    # exchange's minimum notional; the backtest sizes alike, under the same filters, and refuses them too.
    small = invoke(*args, "--out", str(tmp_path / "small"), env={**env, "THUNES_RISK__MAX_LOSS_PER_TRADE": "0.05"})

    assert same.exit_code == 0, same.output
    assert "PARITY OK: entries/exits identical: True" in same.output
    header = next(line for line in same.output.splitlines() if "backtest vs paper" in line)
    bt_trades, paper_trades = header.split("(")[1].split(" trades")[0].split(" vs ")
    assert int(bt_trades) == int(paper_trades) == 3  # SmaCross(3, 8) over 30 bars, on either data source
    assert (tmp_path / "same" / "ledger.csv").exists() and (tmp_path / "same" / "audit.jsonl").exists()
    assert broke.exit_code == 1, broke.output
    assert "rejected: entry signal; rejected: InsufficientFunds" in broke.output
    assert "PARITY BROKEN: entries/exits identical: False" in broke.output
    assert small.exit_code == 0 and "(0 vs 0 trades" in small.output, small.output


def test_a_paper_run_without_a_signal_says_so_and_how_to_get_more_candles(tmp_path):
    env = {"THUNES_DATA__URL": f"sqlite:///{tmp_path / 'empty.sqlite'}", "COLUMNS": "200",
           "THUNES_TRADER__STATE_DIR": str(tmp_path / "trader"), "THUNES_AUDIT__PATH": str(tmp_path / "audit.jsonl")}
    result = invoke("paper", "--sample", "--bars", "3", "--replay-speed", "36000", "--out", str(tmp_path / "run"),
                    env=env)
    assert result.exit_code == 0, result.output
    assert "bars 3, orders 0, fills 0" in result.output and "stopped: 3 bars processed" in result.output
    assert "no order in 3 candles" in result.output and "--timeframe (5m" in result.output
    assert (tmp_path / "run" / "ledger.csv").read_text().startswith("time,symbol,side")  # an empty ledger is left


def test_the_kill_switch_audit_trail_and_todays_pnl_are_shared_by_every_paper_run(tmp_path):
    """`thunes risk kill-switch on` halts the next `thunes paper` (its denials audited); `thunes audit verify`
    and `thunes risk status` find that run's trail and journal without flags, and "today" of a replay is
    its market day."""
    import json
    import sqlite3
    from datetime import datetime
    from decimal import Decimal

    from thunes.execution.audit import AuditTrail

    env = {"THUNES_DATA__URL": f"sqlite:///{tmp_path / 'empty.sqlite'}", "COLUMNS": "200",
           "THUNES_TRADER__STATE_DIR": str(tmp_path / "trader"), "THUNES_AUDIT__PATH": str(tmp_path / "audit.jsonl"),
           "THUNES_RISK__COOL_DOWN_MINUTES": "0"}
    paper = ("paper", "--sample", "--param", "fast=3", "--param", "slow=8", "--bars", "60", "--replay-speed", "36000")
    on = invoke("risk", "kill-switch", "on", "--reason", "incident", "--operator", "alice", env=env)
    assert on.exit_code == 0, on.output

    halted = invoke(*paper, "--out", str(tmp_path / "halted"), env=env)

    assert halted.exit_code == 0, halted.output
    assert "fills 0," in halted.output and "kill-switch is on: incident" in halted.output
    denials = [r.payload for r in AuditTrail.read(tmp_path / "audit.jsonl")
               if r.kind == "risk_decision" and not r.payload["approved"]]
    assert denials and all(d["rule"] == "kill_switch" for d in denials)
    assert invoke("risk", "kill-switch", "off", "--reason", "resolved", "--operator", "alice", env=env).exit_code == 0

    trading = invoke(*paper, "--out", str(tmp_path / "trading"), env=env)
    verified = invoke("audit", "verify", env=env)
    status = invoke("risk", "status", "--json", env=env)

    assert trading.exit_code == 0 and "fills 0" not in trading.output, trading.output
    assert verified.exit_code == 0 and verified.output.startswith("ok: "), verified.output
    with sqlite3.connect(tmp_path / "trading" / "state" / "execution.sqlite") as db:
        rows = db.execute("SELECT ts_ms, pnl FROM exec_pnl ORDER BY ts_ms").fetchall()
        last = max(r[0] for r in db.execute("SELECT MAX(updated_ms) FROM exec_positions UNION SELECT MAX(ts_ms) "
                                           "FROM exec_pnl") if r[0] is not None)
    day = last // 86_400_000
    assert rows, "the replay closed no trade"
    out = json.loads(status.output)
    assert out["day"] == datetime.fromtimestamp(last / 1000, tz=UTC).date().isoformat()
    assert out["day"] < datetime.now(UTC).date().isoformat()  # a replay's day, not the wall clock's
    assert Decimal(out["realised_today"]) == sum(Decimal(p) for ts, p in rows if ts // 86_400_000 == day)
    assert out["mode"] == "ACTIVE" and out["day_rule"].startswith("replay")
    starts = [r.payload for r in AuditTrail.read(tmp_path / "audit.jsonl") if r.kind == "config_change"]
    assert [p["source"].split(",")[0] for p in starts] == ["thunes paper (local replay"] * 2
    assert starts[0]["settings"]["risk"]["cool_down_minutes"] == 0 and starts[0]["settings_hash"]
