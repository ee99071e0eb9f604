"""The Telegram control bot, end to end: the real python-telegram-bot Application polling the project's fake
Bot API server, the commands reaching a real bot through the services, alerts from a real event bus."""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal
from pathlib import Path

import pytest

pytest.importorskip("telegram", reason="the Telegram tests need the telegram extra: pip install -e '.[telegram]'")

from click.testing import CliRunner

from tests.ops.conftest import ALERTS, STRANGER, TRADER, VIEWER, ask, start_control, tg_settings, wait_until
from thunes.cli import root
from thunes.core.events import (
    BotState,
    BotStateChanged,
    CandleClosed,
    DailySummary,
    EventBus,
    FeedReconnected,
    FeedStale,
    JobRan,
    KillSwitchChanged,
    OrderFilled,
    OrderRejected,
    PositionClosed,
    ReconcileMismatch,
    RiskDenied,
)
from thunes.execution.audit import AuditTrail, verify_audit
from thunes.ops.telegram.alerts import alert_for
from thunes.ops.telegram.control import COMMANDS
from thunes.ops.telegram.outbox import MAX_MESSAGE, split_text
from thunes.ops.telegram.settings import AlertKind, AlertMode


def _audit_kinds(path: Path) -> list[tuple[str, dict]]:
    return [(r.kind, r.payload) for r in AuditTrail.read(path)]


# -- splitting ---------------------------------------------------------------------------------------
def test_split_text_cuts_at_line_breaks_under_the_limit_and_loses_nothing():
    lines = [f"line {i:04d} " + "x" * 90 for i in range(100)]  # 100 lines of ~100 characters
    text = "\n".join(lines)
    pieces = split_text(text)
    assert len(pieces) == 3 and all(len(p) <= MAX_MESSAGE for p in pieces)
    assert "\n".join(pieces) == text  # cut at line breaks only: joined back, the text is whole
    hard = split_text("y" * 9000)  # no break anywhere: hard cuts
    assert [len(p) for p in hard] == [4096, 4096, 808]
    assert split_text("short") == ["short"]


# -- who may use it ----------------------------------------------------------------------------------
def test_an_unauthorised_user_is_refused_audited_and_changes_nothing(fake_tg, tmp_path):
    state = tmp_path / "bot"
    state.mkdir()
    control = start_control(fake_tg, state)
    try:
        refusal = ask(fake_tg, STRANGER, "/pause")[0]
        assert "not authorised" in refusal.text and str(STRANGER) in refusal.text
        fake_tg.push_message(STRANGER, "/status")
        # A button pressed by a stranger (e.g. a forwarded confirmation) is refused too.
        fake_tg.push_callback(STRANGER, refusal, "ok:deadbeef")
        fake_tg.wait_for(lambda s: s.answers, what="the refused button's answer")
        wait_until(lambda: (state / "audit.jsonl").read_text().count("telegram.refused") == 3, what="3 audits")
    finally:
        control.stop()
    assert fake_tg.answers[0]["text"] == "not authorised"
    assert len(fake_tg.messages_to(STRANGER)) == 1  # answered once a minute at most; every attempt audited
    assert not (state / "bot_state.json").exists()  # the pause never reached the bot's folder
    records = _audit_kinds(state / "audit.jsonl")
    assert [k for k, _ in records] == ["telegram.refused"] * 3
    assert [p["request"] for _, p in records] == ["/pause", "/status", "button ok:deadbeef"]
    assert all(p["user_id"] == STRANGER for _, p in records)
    assert verify_audit(state / "audit.jsonl").ok


def test_a_viewer_reads_but_cannot_steer(fake_tg, tmp_path):
    state = tmp_path / "bot"
    state.mkdir()
    control = start_control(fake_tg, state)
    try:
        help_text = ask(fake_tg, VIEWER, "/help")[0].text
        assert "/status" in help_text and "/pause" not in help_text and "viewer" in help_text
        assert "/pause" in ask(fake_tg, TRADER, "/help")[0].text
        reply = ask(fake_tg, VIEWER, "/pause")[0].text
        assert "needs the trader role" in reply
        assert "needs the trader role" in ask(fake_tg, VIEWER, "/killswitch on")[0].text
    finally:
        control.stop()
    assert not (state / "bot_state.json").exists()
    kinds = _audit_kinds(state / "audit.jsonl")
    assert [(k, p["command"], p["user_id"]) for k, p in kinds] == [("telegram.forbidden", "pause", VIEWER),
                                                                   ("telegram.forbidden", "killswitch", VIEWER)]


# -- delivery ----------------------------------------------------------------------------------------
def test_flood_control_and_network_errors_are_retried_until_the_reply_arrives(fake_tg, tmp_path):
    state = tmp_path / "bot"
    state.mkdir()
    control = start_control(fake_tg, state)
    try:
        fake_tg.fail("sendMessage", retry_after=1)
        fake_tg.fail("sendMessage", status=502, times=2)
        t0 = time.monotonic()
        reply = ask(fake_tg, TRADER, "/version")[0]
        elapsed = time.monotonic() - t0
    finally:
        control.stop()
    assert reply.text.startswith("thunes ") and "python-telegram-bot" in reply.text
    assert elapsed >= 1.0  # Telegram's retry_after was honoured before trying again
    assert len(fake_tg.calls_of("sendMessage")) == 4  # 429, 502, 502, then delivered
    st = control.outbox.stats
    assert (st.retried_flood, st.retried_network, st.lost) == (1, 2, 0)


def test_a_message_that_cannot_be_delivered_is_logged_and_counted_never_dropped_silently(fake_tg, tmp_path, caplog):
    state = tmp_path / "bot"
    state.mkdir()
    control = start_control(fake_tg, state, settings=tg_settings(fake_tg, send_attempts=2))
    try:
        fake_tg.fail("sendMessage", status=502, times=2)
        with caplog.at_level(logging.ERROR, logger="thunes.ops.telegram.outbox"):
            fake_tg.push_message(TRADER, "/version")
            wait_until(lambda: control.outbox.stats.lost, what="the message counted as lost")
        ask(fake_tg, TRADER, "/version")  # the next one goes through
    finally:
        control.stop()
    assert control.outbox.stats.lost == 1
    assert any("NOT delivered" in r.getMessage() and "thunes" in r.getMessage() for r in caplog.records)


def test_a_5000_character_reply_is_split_into_messages_telegram_accepts(fake_tg, tmp_path):
    state = tmp_path / "bot"
    state.mkdir()
    log = tmp_path / "bot.jsonl"
    records = [{"ts": f"2026-01-01T00:00:{i:02d}.000Z", "level": "INFO", "logger": "thunes.live.bot",
                "msg": f"record {i:02d} " + "z" * 90} for i in range(50)]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    control = start_control(fake_tg, state, log_path=log)
    try:
        replies = ask(fake_tg, VIEWER, "/logs 50", count=2)
    finally:
        control.stop()
    text = "\n".join(m.text for m in replies)
    assert len(text) > 5000 and all(len(m.text) <= MAX_MESSAGE for m in replies)
    assert len(replies) == 2
    assert [f"record {i:02d}" in text for i in range(50)] == [True] * 50  # nothing lost at the cut
    assert text.index("record 00") < text.index("record 49")


# -- alerts ------------------------------------------------------------------------------------------
def _every_alert_event() -> list:
    d = Decimal
    return [
        OrderFilled(ts_ms=1, symbol="BTC/USDT", side="BUY", client_order_id="c1", qty=d("0.0015"),
                    avg_price=d("64250.5"), status="FILLED"),
        OrderFilled(ts_ms=2, symbol="BTC/USDT", side="SELL", client_order_id="c2", qty=d("0.0015"),
                    avg_price=d("65000"), status="FILLED"),
        PositionClosed(ts_ms=3, symbol="BTC/USDT", realised_pnl=d("1.1243")),
        OrderRejected(ts_ms=4, symbol="ETH/USDT", side="BUY", client_order_id="c3", reason="-2010 insufficient"),
        RiskDenied(ts_ms=5, symbol="SOL/USDT", side="BUY", rule="max_positions", reason="3 positions open"),
        KillSwitchChanged(ts_ms=6, on=True, reason="daily loss", operator="risk"),
        ReconcileMismatch(ts_ms=7, symbol="XRP/USDT", mismatch="unknown_order", detail="order 9", resolution="adopted"),
        FeedStale(ts_ms=8, symbol="BTC/USDT", timeframe="5m", silent_s=620.0),
        FeedReconnected(ts_ms=9, symbol="BTC/USDT", timeframe="5m", reconnects=2),
        JobRan(ts_ms=10, job="backup", outcome="failed", detail="disk full"),
        DailySummary(ts_ms=11, day="2026-01-01", trades=4, realised_pnl=d("-2.5"), fees=d("0.4"),
                     open_positions=("ETH/USDT",)),
        JobRan(ts_ms=12, job="reoptimise", outcome="ok", detail="BTC/USDT sma_cross fast=7 slow=30 deployed"),
        JobRan(ts_ms=13, job="decay_check", outcome="ok", detail="BTC/USDT DECAYED (sharpe 0.21); ETH/USDT ok"),
        BotStateChanged(ts_ms=14, state=BotState.RUNNING, reason="started"),
        BotStateChanged(ts_ms=15, state=BotState.STOPPED, reason="replay finished"),
    ]


def test_each_event_maps_to_its_alert_kind_and_the_rest_are_not_alerts():
    kinds = [alert_for(e).kind for e in _every_alert_event()]
    assert set(kinds) == set(AlertKind)  # every alert kind of the settings has an event behind it
    assert alert_for(CandleClosed(ts_ms=1, symbol="BTC/USDT", timeframe="5m", bar_ts=0, close=1.0)) is None
    assert alert_for(JobRan(ts_ms=1, job="backup", outcome="ok", detail="x.sqlite")) is None
    assert alert_for(BotStateChanged(ts_ms=1, state=BotState.STOPPING)) is None


def test_every_alert_goes_out_on_silent_or_not_at_all_as_configured(fake_tg, tmp_path):
    state = tmp_path / "bot"
    state.mkdir()
    bus = EventBus()
    alerts = {AlertKind.FEED_RECONNECTED: AlertMode.OFF, AlertKind.RISK_DENIAL: AlertMode.SILENT,
              AlertKind.ENTRY_FILL: AlertMode.ON}
    control = start_control(fake_tg, state, bus=bus, settings=tg_settings(fake_tg, alerts=alerts, chat_id="-100777"))
    try:
        for e in _every_alert_event():
            bus.publish(e)
        bus.publish(CandleClosed(ts_ms=20, symbol="BTC/USDT", timeframe="5m", bar_ts=0, close=1.0))
        expected = len(_every_alert_event()) - 1  # feed_reconnected is off
        fake_tg.wait_for(lambda s: len(s.messages_to(-100777)) >= expected, what="every alert")
        time.sleep(0.3)
    finally:
        control.stop()
    sent = fake_tg.messages_to(-100777)
    assert len(sent) == expected and not fake_tg.messages_to(TRADER)  # the alert chat only
    by_start = {m.text.split(" ")[0]: m for m in sent}
    assert by_start["ENTRY"].text == "ENTRY BTC/USDT: BUY 0.0015 @ 64250.5 [FILLED] (c1)"
    assert by_start["EXIT"].text.startswith("EXIT BTC/USDT: SELL 0.0015 @ 65000")
    assert by_start["CLOSED"].text == "CLOSED BTC/USDT: realised +1.1243"
    assert by_start["DENIED"].disable_notification and not by_start["ENTRY"].disable_notification
    assert "KILL-SWITCH ON" in by_start["KILL-SWITCH"].text and "daily loss" in by_start["KILL-SWITCH"].text
    assert "unknown_order" in by_start["RECONCILE"].text and "620 s" in by_start["FEED"].text
    assert "disk full" in by_start["JOB"].text and "DECAYED" in by_start["DECAY"].text
    assert "fast=7" in by_start["RE-OPTIMISATION"].text and "-2.5000" in by_start["DAILY"].text
    assert [m.text.split(" ")[1] for m in sent if m.text.startswith("BOT")] == ["STARTED", "STOPPED"]
    assert not [m for m in sent if "RECONNECTED" in m.text or "CandleClosed" in m.text]
    assert [m.text.split(":")[0] for m in sent][:3] == ["ENTRY BTC/USDT", "EXIT BTC/USDT", "CLOSED BTC/USDT"]  # in order


# -- commands ----------------------------------------------------------------------------------------
def test_every_command_against_a_running_bot(fake_tg, running_bot, tmp_path):
    session, state, start_bot = running_bot
    log = tmp_path / "bot.jsonl"
    log.write_text(json.dumps({"ts": "2026-01-01T00:00:00.000Z", "level": "WARNING", "logger": "thunes.live",
                               "msg": "feed slow"}) + "\n")
    # As `thunes bot run --telegram`: subscribed to the bot's bus; alerts to their own chat, replies to users.
    control = start_control(fake_tg, state, bus=session.bot.bus, log_path=log,
                            settings=tg_settings(fake_tg, chat_id=str(ALERTS)))

    def alerted(prefix: str) -> bool:
        return any(m.text.startswith(prefix) for m in fake_tg.messages_to(ALERTS))

    try:
        start_bot()
        # Both held positions are open and their entry fills were alerted.
        wait_until(lambda: len(session.bot.status().positions) == 2, what="two open positions")
        fake_tg.wait_for(lambda s: sum(m.text.startswith("ENTRY") for m in s.messages_to(ALERTS)) >= 2,
                         what="the entry alerts")
        status = ask(fake_tg, VIEWER, "/status")[0].text
        assert "bot: RUNNING" in status and "BTC/USDT 5m hold_for_tests" in status and "kill-switch off" in status
        assert "positions:\n  BTC/USDT" in status or "  BTC/USDT" in status
        assert "USDT: " in ask(fake_tg, VIEWER, "/balance")[0].text
        assert "closed trades 0 (open 2)" in ask(fake_tg, VIEWER, "/profit")[0].text
        assert ask(fake_tg, VIEWER, "/daily 3")[0].text.count("day ") == 3
        assert ask(fake_tg, VIEWER, "/weekly 2")[0].text.count("week of ") == 2
        trades = ask(fake_tg, VIEWER, "/trades")[0].text
        assert "trades page 1/1 (2 round trips)" in trades and "open" in trades
        assert "no closed trade yet" in ask(fake_tg, VIEWER, "/performance")[0].text
        risk = ask(fake_tg, VIEWER, "/risk")[0].text
        assert "kill-switch off" in risk and "limits: max positions 3" in risk
        jobs = ask(fake_tg, VIEWER, "/jobs")[0].text
        assert all(j in jobs for j in ("reconcile", "daily_summary", "decay_check", "backup"))
        assert "WARNING thunes.live: feed slow" in ask(fake_tg, VIEWER, "/logs")[0].text
        health = ask(fake_tg, VIEWER, "/health")[0].text
        assert "ok  process: running" in health and "telegram:" in health
        assert "thunes 0.1.0" in ask(fake_tg, VIEWER, "/version")[0].text
        assert "you are a viewer" in ask(fake_tg, VIEWER, "/start")[0].text
        assert "/forceexit" in ask(fake_tg, TRADER, "/help")[0].text
        assert "reloaded" in ask(fake_tg, TRADER, "/reload")[0].text
        assert "unknown command /nope" in ask(fake_tg, TRADER, "/nope")[0].text

        # Pause / resume reach the bot (and its state change is alerted).
        assert ask(fake_tg, TRADER, "/pause")[0].text == "paused: no new entries, exits still go out (state paused)"
        wait_until(lambda: session.bot.paused, what="the bot paused")
        fake_tg.wait_for(lambda s: alerted("BOT PAUSED"), what="the pause alert")
        assert ask(fake_tg, TRADER, "/resume")[0].text == "resumed: entries allowed (state running)"
        wait_until(lambda: not session.bot.paused, what="the bot resumed")

        # /forceexit: pick the position from the buttons, then confirm.
        pick = ask(fake_tg, TRADER, "/forceexit")[0]
        assert [label.split()[0] for label, _ in pick.buttons] == ["BTC/USDT", "ETH/USDT", "Cancel"]
        fake_tg.push_callback(TRADER, pick, dict(pick.buttons)[next(l for l, _ in pick.buttons if "ETH" in l)])
        fake_tg.wait_for(lambda s: s.messages[pick.message_id].text.startswith("Sell the whole ETH/USDT"),
                         what="the confirmation question")
        confirm = fake_tg.messages[pick.message_id]
        ok_data = dict(confirm.buttons)["Confirm"]
        fake_tg.push_callback(VIEWER, confirm, ok_data)  # a viewer cannot confirm it
        fake_tg.wait_for(lambda s: any(a.get("text") == "needs the trader role" for a in s.answers), what="refusal")
        fake_tg.push_callback(TRADER, confirm, ok_data)
        fake_tg.wait_for(lambda s: s.messages[pick.message_id].text.startswith("force-exit ETH/USDT: FILLED"),
                         timeout=40, what="the force-exit result")
        fake_tg.wait_for(lambda s: alerted("EXIT ETH/USDT: SELL"), what="the exit fill alert")
        # The same confirmation cannot be used twice.
        fake_tg.push_callback(TRADER, confirm, ok_data)
        fake_tg.wait_for(lambda s: s.messages[pick.message_id].text.startswith("confirmation expired"),
                         what="a used confirmation refused")

        # /killswitch on: confirm; the bot sees the switch and the change is alerted.
        question = ask(fake_tg, TRADER, "/killswitch on")[0]
        assert "Turn the kill-switch ON?" in question.text
        fake_tg.push_callback(TRADER, question, dict(question.buttons)["Confirm"])
        fake_tg.wait_for(lambda s: s.messages[question.message_id].text.startswith("kill-switch ON"),
                         what="the kill-switch result")
        fake_tg.wait_for(lambda s: alerted("KILL-SWITCH ON"), timeout=30, what="the kill-switch alert")
        assert "kill-switch is ON" in ask(fake_tg, TRADER, "/killswitch")[0].text
        assert "kill-switch ON" in ask(fake_tg, VIEWER, "/risk")[0].text
        question = ask(fake_tg, TRADER, "/killswitch off")[0]
        fake_tg.push_callback(TRADER, question, dict(question.buttons)["Cancel"])
        fake_tg.wait_for(lambda s: s.messages[question.message_id].text == "cancelled", what="cancelled")
        assert session.bot.stack.risk.state.kill_switch  # cancelled: still on

        # /stop: the bot stops after its current candle, and says so.
        assert "stopping" in ask(fake_tg, TRADER, "/stop")[0].text
        fake_tg.wait_for(lambda s: alerted("BOT STOPPED"), timeout=30, what="the stop alert")
    finally:
        control.stop()
    audited = [(k, p.get("command")) for k, p in _audit_kinds(state / "audit.jsonl") if k.startswith("telegram.")]
    assert ("telegram.command", "force_exit") in audited and ("telegram.command", "kill_on") in audited
    assert ("telegram.forbidden", "button " + ok_data) in audited
    assert {c for _, c in audited} >= {"pause", "resume", "reload", "forceexit", "killswitch", "stop"}
    records = list(AuditTrail.read(state / "audit.jsonl"))
    ks = [r for r in records if r.kind == "kill_switch"]
    assert ks and ks[-1].payload.get("operator", "").startswith(f"telegram:{TRADER}")
    assert verify_audit(state / "audit.jsonl").ok


def test_commands_when_no_bot_runs_answer_from_the_state_folder(fake_tg, tmp_path):
    state = tmp_path / "bot"
    state.mkdir()
    control = start_control(fake_tg, state)
    try:
        assert "bot: not running, state never started" in ask(fake_tg, VIEWER, "/status")[0].text
        assert "the bot is not running" in ask(fake_tg, VIEWER, "/balance")[0].text
        assert "not running" in ask(fake_tg, VIEWER, "/start")[0].text
        assert "a force-exit needs the running bot" in ask(fake_tg, TRADER, "/forceexit")[0].text
        assert ask(fake_tg, TRADER, "/pause")[0].text == "the bot is not running: it will start paused"
        assert "error: no bot is running" in ask(fake_tg, TRADER, "/stop")[0].text
        assert "BAD process: not running" in ask(fake_tg, VIEWER, "/health")[0].text
        assert "no log file is configured" in ask(fake_tg, VIEWER, "/logs")[0].text
        assert "expected a number" in ask(fake_tg, VIEWER, "/trades two")[0].text
        assert "no job has been scheduled" in ask(fake_tg, VIEWER, "/jobs")[0].text
        assert "I answer commands only" in ask(fake_tg, VIEWER, "hello")[0].text
    finally:
        control.stop()
    assert json.loads((state / "bot_state.json").read_text())["paused"] is True


def test_the_command_table_covers_the_issue_and_the_menu_is_published(fake_tg, tmp_path):
    names = {c.name for c in COMMANDS}
    assert names == {"status", "balance", "profit", "daily", "weekly", "trades", "performance", "risk", "start",
                     "stop", "pause", "resume", "forceexit", "killswitch", "reload", "logs", "health", "jobs",
                     "version", "help"}
    state = tmp_path / "bot"
    state.mkdir()
    control = start_control(fake_tg, state)
    control.stop()
    menu = fake_tg.calls_of("setMyCommands")[0]["commands"]
    assert {c["command"] for c in menu} == names


# -- the command line --------------------------------------------------------------------------------
def _telegram_toml(path: Path) -> Path:
    path.write_text(f'[[users]]\nid = {TRADER}\nrole = "trader"\n\n[[users]]\nid = {VIEWER}\n\n'
                    '[alerts]\nentry_fill = "silent"\n')
    return path


def test_bot_run_with_telegram_alerts_from_start_to_stop(fake_tg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # artifacts/bot/LATEST is written here
    env = {"THUNES_DATA__URL": f"sqlite:///{tmp_path / 'c.sqlite'}", "THUNES_AUDIT__FSYNC": "never",
           "THUNES_TELEGRAM__TOKEN": fake_tg.token, "THUNES_TELEGRAM__BASE_URL": fake_tg.base_url.removesuffix("/bot")}
    result = CliRunner().invoke(root, ["bot", "run", "--synthetic", "--bars", "60", "--pairs", "BTC/USDT",
                                       "--strategy", "hold_for_tests", "--state-dir", str(tmp_path / "bot"),
                                       "--quiet", "--telegram", "--telegram-config",
                                       str(_telegram_toml(tmp_path / "telegram.toml"))], env=env)
    assert result.exit_code == 0, result.output
    texts = [m.text.split(":")[0] for m in fake_tg.messages_to(TRADER)]
    assert texts[0].startswith("BOT STARTED") and texts[-1].startswith("BOT STOPPED")
    assert "ENTRY BTC/USDT" in texts
    assert [m.text for m in fake_tg.messages_to(TRADER)] == [m.text for m in fake_tg.messages_to(VIEWER)]
    entry = next(m for m in fake_tg.messages_to(TRADER) if m.text.startswith("ENTRY"))
    assert entry.disable_notification  # entry_fill = "silent" from telegram.toml


def test_bot_run_with_telegram_and_a_refused_token_stops_before_trading(fake_tg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"THUNES_DATA__URL": f"sqlite:///{tmp_path / 'c.sqlite'}", "THUNES_TELEGRAM__TOKEN": "999:WRONG",
           "THUNES_TELEGRAM__BASE_URL": fake_tg.base_url}
    result = CliRunner().invoke(root, ["bot", "run", "--synthetic", "--bars", "30", "--pairs", "BTC/USDT",
                                       "--state-dir", str(tmp_path / "bot"), "--telegram"], env=env)
    assert result.exit_code != 0 and "Telegram refused the bot token" in str(result.exception)
    from thunes.services.bot import events

    assert events(tmp_path / "bot") == []  # the bot never started: no candle, no order, no state change


def test_telegram_serve_steers_a_bot_folder_and_follows_its_event_log(fake_tg, tmp_path):
    import threading

    state = tmp_path / "bot"
    state.mkdir()
    (state / "events.jsonl").write_text(json.dumps(BotStateChanged(ts_ms=1, state=BotState.STOPPED).to_json()) + "\n")
    env = {"THUNES_TELEGRAM__TOKEN": fake_tg.token, "THUNES_TELEGRAM__BASE_URL": fake_tg.base_url,
           "THUNES_TELEGRAM_CONFIG": str(_telegram_toml(tmp_path / "telegram.toml"))}

    def chat() -> None:
        fake_tg.wait_for(lambda s: s.calls_of("getUpdates"), what="polling")
        fake_tg.push_message(VIEWER, "/status")
        with open(state / "events.jsonl", "a") as fh:  # the bot (another process) appends an event
            fh.write(json.dumps(FeedStale(ts_ms=2, symbol="BTC/USDT", timeframe="5m", silent_s=300).to_json()) + "\n")

    helper = threading.Thread(target=chat, daemon=True)
    helper.start()
    result = CliRunner().invoke(root, ["telegram", "serve", "--state-dir", str(state), "--duration", "3"], env=env)
    helper.join(5)
    assert result.exit_code == 0, result.output
    assert any(m.text.startswith("bot: not running") for m in fake_tg.messages_to(VIEWER))
    alerts = [m.text for m in fake_tg.messages_to(TRADER)]
    assert alerts == ["FEED STALE BTC/USDT 5m: no data for 300 s"]  # new events only, not the old STOPPED


def test_an_unreachable_bot_api_is_a_one_line_error_at_start(tmp_path):
    import socket

    from thunes.config import RiskSettings
    from thunes.core.errors import ConfigError
    from thunes.ops.telegram.control import ControlTarget, TelegramControl
    from thunes.ops.telegram.settings import TelegramBotSettings

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = TelegramBotSettings(token="1:abc", base_url=f"http://127.0.0.1:{port}")
    control = TelegramControl(settings, ControlTarget(state_dir=tmp_path, risk_settings=RiskSettings()))
    with pytest.raises(ConfigError, match="could not start: NetworkError") as err:
        control.start(timeout_s=20)
    assert "\n" not in str(err.value)
