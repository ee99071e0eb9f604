"""The Telegram control bot: commands for authorised users and alerts from the bot's events.

::

    Telegram ──getUpdates──> PTB Application (own thread + event loop)
                               ├─ gate: user id -> role (viewer | trader); anyone else refused + audited
                               ├─ /command handlers ──asyncio.to_thread──> thunes.services.* (by state folder)
                               └─ inline buttons: /forceexit pick -> confirm, /killswitch confirm
    EventBus ──QueuedSubscriber──> alert_for(event) ──> Outbox (split, retry) ──> alert chat(s)
    (or, standalone, the bot's events.jsonl followed by EventLogFollower)

Every command calls :mod:`thunes.services` with the bot's state folder, exactly as ``thunes bot ...`` does,
so the same checks apply (the control socket's token, the risk manager, the journal); nothing here
trades. Commands that change what the bot does need the trader role and are written to the bot's audit
trail (``telegram.command``) with the Telegram user; refusals are audited too (``telegram.refused``,
``telegram.forbidden``). A confirmation (force-exit, kill-switch) is a one-time button valid for
:data:`CONFIRM_TTL_S` seconds, for the user who asked only. Updates queued while the control bot was
down are dropped at start: a command typed an hour ago is not executed now.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from thunes.core.errors import ConfigError, ThunesError
from thunes.core.events import Event, EventBus, QueuedSubscriber, event_from_json
from thunes.ops.telegram.alerts import ALERT_EVENTS, alert_for
from thunes.ops.telegram.outbox import Outbox
from thunes.ops.telegram.settings import AlertMode, Role, TelegramBotSettings

__all__ = ["COMMANDS", "CONFIRM_TTL_S", "ControlTarget", "EventLogFollower", "TelegramControl"]

log = logging.getLogger(__name__)
CONFIRM_TTL_S = 120.0
REFUSAL_REPLY_S = 60.0  # an unauthorised user is answered at most this often (every attempt is audited)


@dataclass(frozen=True, slots=True)
class _Command:
    name: str
    role: Role
    help: str


COMMANDS: tuple[_Command, ...] = (
    _Command("status", Role.VIEWER, "bot state, pairs, positions, PnL"),
    _Command("balance", Role.VIEWER, "exchange balances of the running bot"),
    _Command("profit", Role.VIEWER, "realised profit, wins and losses"),
    _Command("daily", Role.VIEWER, "profit per day: /daily [days]"),
    _Command("weekly", Role.VIEWER, "profit per week: /weekly [weeks]"),
    _Command("trades", Role.VIEWER, "round trips, newest first: /trades [page]"),
    _Command("performance", Role.VIEWER, "profit per pair"),
    _Command("risk", Role.VIEWER, "risk state and limits"),
    _Command("jobs", Role.VIEWER, "scheduled jobs, last and next run"),
    _Command("logs", Role.VIEWER, "last log lines: /logs [lines]"),
    _Command("health", Role.VIEWER, "health checks of the bot and of this chat bot"),
    _Command("version", Role.VIEWER, "versions"),
    _Command("help", Role.VIEWER, "this list"),
    _Command("start", Role.VIEWER, "who you are and whether the bot runs"),
    _Command("stop", Role.TRADER, "stop the bot after its current candle"),
    _Command("pause", Role.TRADER, "no new entries (exits still go out)"),
    _Command("resume", Role.TRADER, "allow entries again"),
    _Command("forceexit", Role.TRADER, "sell a whole position now (pick, then confirm)"),
    _Command("killswitch", Role.TRADER, "/killswitch on|off (confirm): no new order on any pair"),
    _Command("reload", Role.TRADER, "reload market filters and the risk switch file"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlTarget:
    """Which bot the chat steers: its state folder, plus what some commands need."""

    state_dir: Path
    risk_settings: Any  # the bot's effective RiskSettings (for /risk limits and the kill-switch)
    log_path: Path | None = None  # /logs: the bot's JSON-lines log (logs/bot.jsonl)
    audit_path: Path | None = None  # default: <state_dir>/audit.jsonl, the bot's own trail

    @property
    def audit_file(self) -> Path:
        return self.audit_path or Path(self.state_dir) / "audit.jsonl"

    @property
    def ledger(self) -> Path:
        return Path(self.state_dir) / "ledger.csv"


@dataclass(slots=True)
class _Pending:
    action: str  # force_exit | kill_on | kill_off
    arg: str
    user_id: int
    expires: float


def _fmt_ms(ms: int | None) -> str:
    return "-" if not ms else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))


def _d(v: Any, places: int = 4) -> str:
    if v is None or v == "":
        return "-"
    try:
        return f"{Decimal(str(v)):.{places}f}"
    except ArithmeticError:
        return str(v)


class TelegramControl:
    """Runs the control bot on its own thread (``start()`` / ``stop()``); see the module docstring.

    ``bus``: subscribe to a bot in this process for alerts; ``follow_events``: tail the state folder's
    ``events.jsonl`` instead (a control bot in another process than the trading bot).
    """

    def __init__(self, settings: TelegramBotSettings, target: ControlTarget, *, bus: EventBus | None = None,
                 follow_events: bool = False) -> None:
        self.settings = settings
        self.target = target
        self.bus = bus
        self.follow_events = follow_events
        self.app: Application | None = None
        self.outbox: Outbox | None = None
        self.alerts_sent = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._stopping: asyncio.Event | None = None
        self._pending: dict[str, _Pending] = {}
        self._told: dict[int, float] = {}  # unauthorised user id -> when they were last answered
        self._subscriber: QueuedSubscriber | None = None
        self._subscription: Any = None
        self._follower: EventLogFollower | None = None
        self._audit: Any = None
        self._audit_lock = threading.Lock()

    # -- life cycle --------------------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> TelegramControl:
        """Connect (getMe), start polling and the alerts; a bad token or an unreachable API is a ConfigError."""
        # The token is part of every Bot API URL, and httpx logs each request's URL at INFO.
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger("httpx").level))
        if self.bus is None and self.follow_events:
            # Positioned now, before polling starts: an event the bot writes from here on is alerted.
            self._follower = EventLogFollower(Path(self.target.state_dir) / "events.jsonl", self.on_event)
        self._thread = threading.Thread(target=self._run, name="telegram-control", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise ConfigError(f"the Telegram bot did not start within {timeout_s:g}s "
                              f"(is {self.settings.base_url} reachable?)")
        if self._start_error is not None:
            self._thread.join(5)
            err = self._start_error
            if isinstance(err, InvalidToken):
                raise ConfigError("Telegram refused the bot token (THUNES_TELEGRAM__TOKEN): " + str(err)) from err
            raise ConfigError(f"the Telegram bot could not start: {type(err).__name__}: {err}") from err
        if self.bus is not None:
            self._subscriber = QueuedSubscriber(self.on_event, name="telegram-alerts")
            self._subscription = self.bus.subscribe(self._subscriber, *ALERT_EVENTS, name="telegram-alerts")
        elif self._follower is not None:
            self._follower.start()
        return self

    def stop(self) -> None:
        """Deliver the alerts already queued, then stop polling and close."""
        if self._subscription is not None and self.bus is not None:
            self.bus.unsubscribe(self._subscription)
        if self._subscriber is not None:
            self._subscriber.close(timeout=30)
        if self._follower is not None:
            self._follower.stop()
        if self._thread is not None and self._thread.is_alive():
            if self._loop is not None and self._stopping is not None:
                self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(30)
        with self._audit_lock:
            if self._audit is not None:
                self._audit.close()
                self._audit = None

    def __enter__(self) -> TelegramControl:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alerts_dropped(self) -> int:
        return self._subscriber.dropped if self._subscriber is not None else 0

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        try:
            app = self._build()
            self.app = app
            self.outbox = Outbox(app.bot, attempts=self.settings.send_attempts,
                                 max_retry_after_s=self.settings.max_retry_after_s)
            await app.initialize()
            await app.start()
            assert app.updater is not None
            # Updates queued while the control bot was down are dropped: never act on a stale command.
            await app.updater.start_polling(timeout=self.settings.poll_timeout_s, drop_pending_updates=True,
                                            allowed_updates=["message", "callback_query"])
        except BaseException as exc:  # noqa: BLE001 - reported to start() on the caller's thread
            self._start_error = exc
            self._ready.set()
            if self.app is not None:
                await self._close(self.app)
            return
        try:
            await app.bot.set_my_commands([BotCommand(c.name, c.help[:256]) for c in COMMANDS])
        except TelegramError as exc:
            log.warning("telegram: could not publish the command menu: %s", exc)
        self._ready.set()
        await self._stopping.wait()
        await self._close(app)

    @staticmethod
    async def _close(app: Application) -> None:
        try:
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
            await app.shutdown()
        except Exception:  # noqa: BLE001 - closing: log and go on
            log.warning("telegram: shutdown failed", exc_info=True)

    def _build(self) -> Application:
        s = self.settings
        token = s.token.get_secret_value() if s.token is not None else ""
        app = (ApplicationBuilder().token(token).base_url(s.base_url)
               .base_file_url(s.base_url.removesuffix("/bot") + "/file/bot")
               .connect_timeout(10).read_timeout(20).write_timeout(20).pool_timeout(10)
               .get_updates_read_timeout(s.poll_timeout_s + 10)
               .concurrent_updates(8).job_queue(None).build())
        app.add_handler(TypeHandler(Update, self._gate), group=-1)
        for c in COMMANDS:
            app.add_handler(CommandHandler(c.name, self._command(c)))
        app.add_handler(CallbackQueryHandler(self._on_button))
        app.add_handler(MessageHandler(filters.COMMAND, self._unknown))
        app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, self._chat))
        app.add_error_handler(self._on_error)
        return app

    # -- alerts (the subscriber's thread) ----------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """Send the alert of ``event`` (if any, and not switched off) to the alert chat(s); blocks until sent."""
        alert = alert_for(event)
        if alert is None:
            return
        mode = self.settings.mode(alert.kind)
        if mode is AlertMode.OFF or self._loop is None or self.outbox is None:
            return
        for chat in self.settings.alert_chats():
            fut = asyncio.run_coroutine_threadsafe(
                self.outbox.send(chat, alert.text, silent=mode is AlertMode.SILENT), self._loop)
            try:
                fut.result(timeout=self.settings.max_retry_after_s + 120)
                self.alerts_sent += 1
            except Exception:  # noqa: BLE001 - the outbox has logged it as lost; next chat, next alert
                continue

    # -- the gate ----------------------------------------------------------------------------------
    def _audit_append(self, kind: str, payload: dict[str, Any]) -> None:
        from thunes.execution.audit import AuditTrail

        with self._audit_lock:
            if self._audit is None:
                path = self.target.audit_file
                path.parent.mkdir(parents=True, exist_ok=True)
                self._audit = AuditTrail(path)
            self._audit.append(kind, payload)

    async def _audit_async(self, kind: str, payload: dict[str, Any]) -> None:
        await asyncio.to_thread(self._audit_append, kind, payload)

    @staticmethod
    def _who(update: Update) -> dict[str, Any]:
        user = update.effective_user
        return {"user_id": user.id if user else None, "username": user.username if user else None}

    @staticmethod
    def _what(update: Update) -> str:
        if update.callback_query is not None:
            return f"button {update.callback_query.data}"
        msg = update.effective_message
        return (msg.text or "")[:200] if msg is not None else ""

    async def _gate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user = update.effective_user
        role = self.settings.role_of(user.id) if user is not None else None
        if role is not None:
            return
        await self._audit_async("telegram.refused", {**self._who(update), "request": self._what(update)})
        log.warning("telegram: refused user %s (%s)", user.id if user else "?", self._what(update))
        text = (f"You are not authorised to use this bot (your Telegram user id is {user.id if user else '?'}). "
                "This attempt was recorded.")
        if update.callback_query is not None:
            await self._answer(update, "not authorised")
        elif update.effective_chat is not None:
            # Told once a minute at most: a stranger's flood is audited, not answered message for message.
            key = user.id if user is not None else 0
            now = time.monotonic()
            if now - self._told.get(key, -REFUSAL_REPLY_S) >= REFUSAL_REPLY_S:
                self._told[key] = now
                await self._reply(update, text)
        raise ApplicationHandlerStop

    # -- plumbing ----------------------------------------------------------------------------------
    async def _reply(self, update: Update, text: str, *, markup: Any = None) -> None:
        assert self.outbox is not None and update.effective_chat is not None
        try:
            await self.outbox.send(update.effective_chat.id, text, reply_markup=markup)
        except TelegramError:
            pass  # logged as lost by the outbox

    async def _edit(self, update: Update, text: str, *, markup: Any = None) -> None:
        assert self.outbox is not None
        q = update.callback_query
        if q is None or q.message is None:
            return
        try:
            await self.outbox.edit(q.message.chat.id, q.message.message_id, text, reply_markup=markup)
        except TelegramError:
            pass

    async def _answer(self, update: Update, text: str | None = None) -> None:
        assert self.outbox is not None
        q = update.callback_query
        if q is None:
            return
        try:
            await self.outbox.call(f"answer to {q.id}", text or "", q.answer, text=text)
        except TelegramError:
            pass

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A service call off the event loop (they block: the control socket waits for the bot's loop)."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    def _command(self, c: _Command) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]:
        method = getattr(self, f"_cmd_{c.name}")

        async def handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            user = update.effective_user
            role = self.settings.role_of(user.id) if user is not None else None
            if c.role is Role.TRADER and role is not Role.TRADER:
                await self._audit_async("telegram.forbidden", {**self._who(update), "command": c.name})
                await self._reply(update, f"/{c.name} needs the trader role; you are a {role}.")
                return
            if c.role is Role.TRADER:
                await self._audit_async("telegram.command", {**self._who(update), "command": c.name,
                                                             "args": list(context.args or [])})
            try:
                await method(update, list(context.args or []))
            except ThunesError as exc:
                await self._reply(update, f"error: {exc}")
        return handler

    def _operator(self, update: Update) -> str:
        user = update.effective_user
        name = next((u.name for u in self.settings.users if user and u.id == user.id), "") or (
            user.username if user and user.username else "")
        return f"telegram:{user.id if user else '?'}" + (f" ({name})" if name else "")

    async def _unknown(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._reply(update, f"unknown command {self._what(update).split()[0]}; /help lists the commands")

    async def _chat(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._reply(update, "I answer commands only; /help lists them")

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram handler failed: %s", context.error, exc_info=context.error)
        if isinstance(update, Update) and update.effective_chat is not None:
            await self._reply(update, f"internal error: {type(context.error).__name__}: {context.error}")

    @staticmethod
    def _int_arg(args: list[str], default: int, *, lo: int = 1, hi: int = 365) -> int:
        if not args:
            return default
        try:
            n = int(args[0])
        except ValueError:
            raise ConfigError(f"expected a number, got {args[0]!r}") from None
        if not lo <= n <= hi:
            raise ConfigError(f"expected a number from {lo} to {hi}, got {n}")
        return n

    # -- read-only commands ------------------------------------------------------------------------
    async def _cmd_help(self, update: Update, args: list[str]) -> None:
        role = self.settings.role_of(update.effective_user.id) if update.effective_user else None
        lines = [f"/{c.name} - {c.help}" for c in COMMANDS if c.role is Role.VIEWER or role is Role.TRADER]
        await self._reply(update, f"THUNES control bot (you are a {role}):\n" + "\n".join(lines))

    async def _cmd_start(self, update: Update, args: list[str]) -> None:
        from thunes.services.bot import bot_status

        user = update.effective_user
        role = self.settings.role_of(user.id) if user else None
        st = await self._call(bot_status, self.target.state_dir)
        state = "RUNNING" if st.running else f"not running (last state: {st.status.get('state')})"
        hint = "" if st.running else ("\nStart it on the server: thunes bot run --telegram --config bot.toml "
                                      "(the chat never starts trading by itself).")
        await self._reply(update, f"Hello {user.first_name if user else ''}: you are a {role}. "
                                  f"Bot {self.target.state_dir}: {state}.{hint}\n/help lists the commands.")

    async def _cmd_status(self, update: Update, args: list[str]) -> None:
        from thunes.services.bot import bot_status

        res = await self._call(bot_status, self.target.state_dir)
        s = res.status
        lines = [f"bot: {'RUNNING' if res.running else 'not running'}, state {s.get('state')}"
                 + (" (paused: exits only)" if s.get("paused") else "")]
        for p in s.get("pairs", []):
            lines.append(f"{p['symbol']} {p['timeframe']} {p['strategy']}: last candle {_fmt_ms(p.get('last_bar_ts'))}, "
                         f"candles {p.get('bars_processed')}, orders {p.get('orders_sent')}")
        positions = s.get("positions", [])
        if positions:
            lines.append("positions:")
            for p in positions:
                unreal = f", unrealised {_d(p.get('unrealised'))}" if p.get("unrealised") is not None else ""
                lines.append(f"  {p['symbol']} {p['qty']} @ {_d(p.get('avg_price'), 6)}{unreal}")
        else:
            lines.append("positions: none")
        if res.running:
            lines.append(f"open orders {s.get('open_orders')}; pnl today {_d(s.get('pnl_today'))}; "
                         f"realised total {_d(s.get('realised_total'))}")
        risk = s.get("risk") or {}
        lines.append(f"kill-switch {'ON' if risk.get('kill_switch') else 'off'}")
        await self._reply(update, "\n".join(lines))

    async def _cmd_balance(self, update: Update, args: list[str]) -> None:
        from thunes.services.bot import bot_status

        res = await self._call(bot_status, self.target.state_dir)
        if not res.running:
            await self._reply(update, "the bot is not running: balances come from its exchange connection")
            return
        bal = res.status.get("balances") or {}
        if "error" in bal:
            await self._reply(update, f"balances unavailable: {bal['error']}")
            return
        body = "\n".join(f"{asset}: {amount}" for asset, amount in sorted(bal.items())) or "no balance"
        await self._reply(update, "balances:\n" + body)

    async def _cmd_profit(self, update: Update, args: list[str]) -> None:
        from thunes.services.reports import profit

        p = await self._call(profit, self.target.ledger)
        win = "-" if p.win_rate is None else f"{p.win_rate * 100:.1f} %"
        await self._reply(update, "\n".join([
            f"closed trades {p.closed_trades} (open {p.open_trades}); wins {p.wins}, losses {p.losses}, win rate {win}",
            f"realised {p.realised_pnl:+.4f}, fees {p.fees:.4f}",
            f"best {_d(p.best)}, worst {_d(p.worst)}; first {_fmt_ms(p.first_ms)}, last {_fmt_ms(p.last_ms)}"]))

    async def _report_now(self) -> int:
        """'Now' for day/week buckets: the running bot's clock (market time in a replay), else the last trade."""
        from thunes.services.bot import bot_status
        from thunes.services.reports import profit

        st = await self._call(bot_status, self.target.state_dir)
        if st.running and st.status.get("now_ms"):
            return int(st.status["now_ms"])
        last = (await self._call(profit, self.target.ledger)).last_ms
        return int(last or time.time() * 1000)

    async def _periods(self, update: Update, fn: Any, n: int, label: str, **kw: Any) -> None:
        now = await self._report_now()
        rows = await self._call(fn, self.target.ledger, now_ms=now, **kw)
        lines = [f"{label} {r.start}: {r.trades} trades, realised {r.realised_pnl:+.4f}, fees {r.fees:.4f}"
                 for r in rows]
        await self._reply(update, "\n".join(lines))

    async def _cmd_daily(self, update: Update, args: list[str]) -> None:
        from thunes.services.reports import daily

        n = self._int_arg(args, 7)
        await self._periods(update, daily, n, "day", days=n)

    async def _cmd_weekly(self, update: Update, args: list[str]) -> None:
        from thunes.services.reports import weekly

        n = self._int_arg(args, 4, hi=104)
        await self._periods(update, weekly, n, "week of", weeks=n)

    async def _cmd_trades(self, update: Update, args: list[str]) -> None:
        from thunes.services.reports import trades

        page = self._int_arg(args, 1, hi=10_000)
        res = await self._call(trades, self.target.ledger, page=page, per_page=10)
        lines = [f"trades page {res.page}/{res.pages} ({res.total} round trips)"]
        for t in res.trades:
            pnl = "open" if t.pnl is None else f"pnl {t.pnl:+.4f} ({t.return_pct:+.2f} %)"
            lines.append(f"{t.symbol} {_fmt_ms(t.entry_ms)} -> {_fmt_ms(t.exit_ms) if t.exit_ms else 'open'}: "
                         f"qty {t.qty}, {pnl}")
        await self._reply(update, "\n".join(lines))

    async def _cmd_performance(self, update: Update, args: list[str]) -> None:
        from thunes.services.reports import performance

        rows = await self._call(performance, self.target.ledger)
        lines = [f"{p.symbol}: {p.trades} trades, {p.wins} wins, realised {p.realised_pnl:+.4f}"
                 + (f", avg {p.avg_return_pct:+.3f} %" if p.avg_return_pct is not None else "") for p in rows]
        await self._reply(update, "performance per pair:\n" + ("\n".join(lines) or "no closed trade yet"))

    async def _cmd_risk(self, update: Update, args: list[str]) -> None:
        from thunes.services.bot import bot_status

        st = await self._call(bot_status, self.target.state_dir)
        r = st.status.get("risk") or {}
        lim = self.target.risk_settings
        lines = [f"kill-switch {'ON' if r.get('kill_switch') else 'off'}"
                 + (f" ({r.get('kill_reason') or r.get('reason')}, by {r.get('kill_operator') or r.get('operator')})"
                    if r.get("kill_switch") else ""),
                 f"mode {r.get('mode', '-')}, reduce-only {'on' if r.get('reduce_only') else 'off'}"]
        if "daily_pnl" in r:
            lines.append(f"daily pnl {_d(r.get('daily_pnl'))} of max loss {_d(r.get('max_daily_loss'))}; "
                         f"open positions {', '.join(r.get('open_positions') or []) or 'none'}")
            if r.get("cool_down_until_ms"):
                lines.append(f"cool-down until {_fmt_ms(r.get('cool_down_until_ms'))}")
            if r.get("open_breakers"):
                lines.append(f"open circuit breakers: {', '.join(r['open_breakers'])}")
        if lim is not None:
            lines.append(f"limits: max positions {lim.max_positions}, max position {lim.max_position_quote} quote, "
                         f"max daily loss {lim.max_daily_loss}, max loss per trade {lim.max_loss_per_trade}, "
                         f"cool-down {lim.cool_down_minutes} min")
        await self._reply(update, "\n".join(lines))

    async def _cmd_jobs(self, update: Update, args: list[str]) -> None:
        from thunes.services.bot import bot_jobs

        rows = await self._call(bot_jobs, self.target.state_dir)
        lines = [f"{j['name']}: last {_fmt_ms(j.get('last_run_ms'))} [{j.get('last_outcome') or '-'}], "
                 f"next {_fmt_ms(j.get('next_run_ms'))}; runs {j.get('runs', 0)}, failed {j.get('failures', 0)}, "
                 f"missed {j.get('missed', 0)}" for j in rows]
        await self._reply(update, "\n".join(lines) or "no job has been scheduled yet (the bot never ran here)")

    async def _cmd_logs(self, update: Update, args: list[str]) -> None:
        from thunes.services.system import tail_log

        if self.target.log_path is None:
            await self._reply(update, "no log file is configured for this bot")
            return
        n = self._int_arg(args, self.settings.logs_lines, hi=200)
        lines = await self._call(tail_log, self.target.log_path, n)
        await self._reply(update, "\n".join(str(x) for x in lines) or "the log is empty")

    async def _cmd_health(self, update: Update, args: list[str]) -> None:
        from thunes.services.system import bot_health

        rep = await self._call(bot_health, self.target.state_dir)
        lines = [f"health: {'OK' if rep.ok else 'PROBLEMS'}"]
        lines += [f"{'ok ' if c.ok else 'BAD'} {c.name}: {c.detail}" for c in rep.checks]
        st = self.outbox.stats if self.outbox is not None else None
        if st is not None:
            lines.append(f"telegram: {st.sent} sent, {st.retried_flood} flood waits, {st.retried_network} network "
                         f"retries, {st.lost} lost, {self.alerts_dropped} alerts dropped (queue full)")
        await self._reply(update, "\n".join(lines))

    async def _cmd_version(self, update: Update, args: list[str]) -> None:
        from thunes.services.system import version_info

        info = version_info()
        await self._reply(update, "\n".join(f"{k} {v}" for k, v in info.items()))

    # -- commands that steer the bot (trader) ------------------------------------------------------
    async def _cmd_stop(self, update: Update, args: list[str]) -> None:
        from thunes.services.bot import stop_bot

        await self._call(stop_bot, self.target.state_dir, f"stop requested by {self._operator(update)}")
        await self._reply(update, "stopping after the current candle")

    async def _cmd_pause(self, update: Update, args: list[str]) -> None:
        from thunes.services.bot import pause_bot

        r = await self._call(pause_bot, self.target.state_dir, f"paused by {self._operator(update)}")
        await self._reply(update, f"paused: no new entries, exits still go out (state {r['state']})" if "state" in r
                          else "the bot is not running: it will start paused")

    async def _cmd_resume(self, update: Update, args: list[str]) -> None:
        from thunes.services.bot import resume_bot

        r = await self._call(resume_bot, self.target.state_dir, f"resumed by {self._operator(update)}")
        await self._reply(update, f"resumed: entries allowed (state {r['state']})" if "state" in r
                          else "the bot is not running: it will start without the pause")

    async def _cmd_reload(self, update: Update, args: list[str]) -> None:
        from thunes.services.bot import reload_bot

        r = await self._call(reload_bot, self.target.state_dir)
        await self._reply(update, f"reloaded {r['markets']} markets; kill-switch "
                                  f"{'ON' if r['risk']['kill_switch'] else 'off'}")

    def _confirm(self, update: Update, action: str, arg: str) -> InlineKeyboardMarkup:
        nonce = secrets.token_hex(6)
        now = time.monotonic()
        self._pending = {k: p for k, p in self._pending.items() if p.expires > now}
        assert update.effective_user is not None
        self._pending[nonce] = _Pending(action=action, arg=arg, user_id=update.effective_user.id,
                                        expires=now + CONFIRM_TTL_S)
        return InlineKeyboardMarkup([[InlineKeyboardButton("Confirm", callback_data=f"ok:{nonce}"),
                                      InlineKeyboardButton("Cancel", callback_data=f"no:{nonce}")]])

    async def _cmd_forceexit(self, update: Update, args: list[str]) -> None:
        from thunes.services.bot import bot_status

        st = await self._call(bot_status, self.target.state_dir)
        if not st.running:
            await self._reply(update, "the bot is not running: a force-exit needs the running bot")
            return
        positions = st.status.get("positions") or []
        if args:
            wanted = args[0].upper()
            match = [p for p in positions if p["symbol"].replace("/", "") == wanted.replace("/", "")]
            if not match:
                await self._reply(update, f"no open position in {wanted}")
                return
            await self._ask_force_exit(update, match[0], edit=False)
            return
        if not positions:
            await self._reply(update, "no open position")
            return
        buttons = [[InlineKeyboardButton(f"{p['symbol']} {p['qty']}", callback_data=f"fx:{p['symbol']}")]
                   for p in positions]
        buttons.append([InlineKeyboardButton("Cancel", callback_data="no:-")])
        await self._reply(update, "Force-exit which position?", markup=InlineKeyboardMarkup(buttons))

    async def _ask_force_exit(self, update: Update, position: dict[str, Any], *, edit: bool) -> None:
        markup = self._confirm(update, "force_exit", position["symbol"])
        text = (f"Sell the whole {position['symbol']} position ({position['qty']}) at market now? "
                f"The order goes through risk, filters and the journal. Valid {CONFIRM_TTL_S:.0f} s.")
        if edit:
            await self._edit(update, text, markup=markup)
        else:
            await self._reply(update, text, markup=markup)

    async def _cmd_killswitch(self, update: Update, args: list[str]) -> None:
        from thunes.services.bot import bot_status

        if not args or args[0].lower() not in ("on", "off"):
            st = await self._call(bot_status, self.target.state_dir)
            on = bool((st.status.get("risk") or {}).get("kill_switch"))
            await self._reply(update, f"kill-switch is {'ON' if on else 'off'}; usage: /killswitch on|off")
            return
        on = args[0].lower() == "on"
        what = ("Turn the kill-switch ON? Every new order on every pair is refused until it is turned off."
                if on else "Turn the kill-switch OFF? The bot may open positions again.")
        await self._reply(update, f"{what} Valid {CONFIRM_TTL_S:.0f} s.",
                          markup=self._confirm(update, "kill_on" if on else "kill_off", ""))

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        q = update.callback_query
        assert q is not None and update.effective_user is not None
        data = q.data or ""
        user_id = update.effective_user.id
        if self.settings.role_of(user_id) is not Role.TRADER:
            await self._audit_async("telegram.forbidden", {**self._who(update), "command": f"button {data}"})
            await self._answer(update, "needs the trader role")
            return
        kind, _, rest = data.partition(":")
        if kind == "fx":
            await self._answer(update)
            from thunes.services.bot import bot_status

            st = await self._call(bot_status, self.target.state_dir)
            pos = next((p for p in st.status.get("positions") or [] if p["symbol"] == rest), None)
            if pos is None:
                await self._edit(update, f"no open position in {rest} any more")
                return
            await self._ask_force_exit(update, pos, edit=True)
            return
        pending = self._pending.pop(rest, None)
        if kind == "no":
            await self._answer(update, "cancelled")
            await self._edit(update, "cancelled")
            return
        if kind != "ok" or pending is None or pending.expires < time.monotonic() or pending.user_id != user_id:
            await self._answer(update, "this confirmation expired or is not yours")
            await self._edit(update, "confirmation expired: nothing was done (ask again)")
            return
        await self._answer(update, "confirmed")
        await self._audit_async("telegram.command", {**self._who(update), "command": pending.action,
                                                     "args": [pending.arg] if pending.arg else []})
        try:
            text = await self._execute(update, pending)
        except ThunesError as exc:
            text = f"error: {exc}"
        await self._edit(update, text)

    async def _execute(self, update: Update, pending: _Pending) -> str:
        from thunes.services.bot import force_exit, set_kill_switch

        operator = self._operator(update)
        if pending.action == "force_exit":
            r = await self._call(force_exit, self.target.state_dir, pending.arg, f"force exit by {operator}")
            return (f"force-exit {r['symbol']}: {r['status']}, filled {r['filled_qty']} ({r['client_order_id']})"
                    + (f"; {r['error']}" if r.get("error") else ""))
        on = pending.action == "kill_on"
        snap = await self._call(set_kill_switch, self.target.state_dir, on, reason=f"telegram /killswitch by {operator}",
                                operator=operator, risk_settings=self.target.risk_settings,
                                audit_path=self.target.audit_file)
        return f"kill-switch {'ON' if snap['kill_switch'] else 'off'} (mode {snap['mode']})"


class EventLogFollower:
    """Calls ``handler`` with each event appended to an event log after ``start()`` (polls the file)."""

    def __init__(self, path: Path, handler: Callable[[Event], None], *, poll_s: float = 0.5) -> None:
        self.path = Path(path)
        self.handler = handler
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telegram-event-follower", daemon=True)
        self._pos = self.path.stat().st_size if self.path.exists() else 0

    def start(self) -> EventLogFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = -1
            if 0 <= size < self._pos:  # a new file (the bot was started on a fresh state folder)
                self._pos, buf = 0, b""
            if size > self._pos:
                with open(self.path, "rb") as fh:
                    fh.seek(self._pos)
                    data = fh.read(size - self._pos)
                self._pos += len(data)
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    try:
                        event = event_from_json(json.loads(line))
                    except (ValueError, KeyError, TypeError):
                        continue
                    try:
                        self.handler(event)
                    except Exception:  # noqa: BLE001 - one bad alert never stops the follower
                        log.exception("telegram alert failed for %s", event.kind)
            self._stop.wait(self.poll_s)
