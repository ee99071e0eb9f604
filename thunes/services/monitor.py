"""Watching a bot and the installation: health, balance, risk state, reduce-only, audit check, logs, settings.

The reads every remote surface (the REST API, later Telegram) needs beyond :mod:`thunes.services.bot`:

* :func:`health` - feed freshness (the last candle of each pair against the bot's clock), the scheduler
  (overdue jobs) and whether the exchange answered the last balance request.
* :func:`balance`, :func:`risk_state` - from the running bot, else from its state folder.
* :func:`orders` - the order journal: unfinished orders (or every one), newest last.
* :func:`audit_check` - :func:`thunes.execution.audit.verify_audit` on the bot's (or any) audit trail.
* :func:`tail_logs` - the last lines of the JSON log files, secrets masked once more.
* :func:`masked_settings` - the effective settings with every secret and URL password masked.

Requests are arguments, results frozen dataclasses; errors are :mod:`thunes.core.errors` types.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thunes.core.errors import ConfigError
from thunes.core.redact import redact_url
from thunes.core.timeframes import parse_timeframe

__all__ = [
    "MASK",
    "AuditCheck",
    "BalanceResult",
    "HealthResult",
    "JobHealth",
    "LogLine",
    "OrdersResult",
    "PairHealth",
    "audit_check",
    "balance",
    "health",
    "masked_settings",
    "orders",
    "risk_state",
    "tail_logs",
]

MASK = "**********"
#: A pair is stale when its last closed candle is older than this many candle periods (bot clock).
STALE_PERIODS = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PairHealth:
    symbol: str
    timeframe: str
    last_bar_ts: int | None  # open time of the last processed candle
    age_s: float | None  # bot clock minus that candle's close time
    fresh: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class JobHealth:
    name: str
    next_run_ms: int | None
    last_outcome: str | None
    overdue: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthResult:
    ok: bool
    running: bool
    state: str
    now_ms: int
    pairs: tuple[PairHealth, ...]
    jobs: tuple[JobHealth, ...]
    exchange_reachable: bool | None  # None: unknown (the bot is not running)
    exchange_error: str | None
    problems: tuple[str, ...]


def health(state_dir: Path, *, now_ms: int | None = None) -> HealthResult:
    """Is the bot trading on fresh candles with a reachable exchange and its jobs on time?

    ``now_ms`` defaults to the running bot's clock (market time in a replay), else the wall clock.
    """
    from thunes.services.bot import bot_jobs, bot_status

    st = bot_status(state_dir)
    s = st.status
    now = int(now_ms if now_ms is not None else s.get("now_ms") or time.time() * 1000)
    problems: list[str] = []
    pairs = []
    for p in s.get("pairs", []):
        tf_ms = parse_timeframe(p["timeframe"]).ms if p.get("timeframe") else None
        last = p.get("last_bar_ts")
        age = None if last is None or tf_ms is None else (now - (last + tf_ms)) / 1000
        fresh = st.running and age is not None and tf_ms is not None and age <= STALE_PERIODS * tf_ms / 1000
        if st.running and not fresh:
            problems.append(f"{p['symbol']}: no candle for {age:.0f}s" if age is not None
                            else f"{p['symbol']}: no candle processed yet")
        pairs.append(PairHealth(symbol=p["symbol"], timeframe=p.get("timeframe") or "", last_bar_ts=last,
                                age_s=None if age is None else round(age, 3), fresh=bool(fresh)))
    jobs = []
    for j in bot_jobs(state_dir):
        nxt = j.get("next_run_ms")
        overdue = bool(st.running and nxt is not None and nxt < now - 60_000)
        if overdue:
            problems.append(f"job {j['name']} is overdue")
        jobs.append(JobHealth(name=j["name"], next_run_ms=nxt, last_outcome=j.get("last_outcome"), overdue=overdue))
    reachable: bool | None = None
    error = None
    if st.running:
        balances = s.get("balances") or {}
        error = balances.get("error") if isinstance(balances, dict) else None
        reachable = error is None
        if error:
            problems.append(f"exchange: {error}")
    else:
        problems.append("the bot is not running")
    return HealthResult(ok=not problems, running=st.running, state=str(s.get("state")), now_ms=now,
                        pairs=tuple(pairs), jobs=tuple(jobs), exchange_reachable=reachable, exchange_error=error,
                        problems=tuple(problems))


@dataclass(frozen=True, slots=True, kw_only=True)
class BalanceResult:
    balances: dict[str, str]  # asset -> total (Decimal as a string)
    positions: tuple[dict[str, Any], ...]
    pnl_today: str | None
    realised_total: str | None


def balance(state_dir: Path) -> BalanceResult:
    """The exchange balances seen by the running bot (raises BotNotRunning when none runs)."""
    from thunes.live.control import send_command

    s = send_command(state_dir, "status")
    bal = s.get("balances") or {}
    if "error" in bal:
        from thunes.core.errors import ExchangeUnavailable

        raise ExchangeUnavailable(f"the exchange did not answer the balance request: {bal['error']}")
    return BalanceResult(balances=dict(bal), positions=tuple(s.get("positions") or ()),
                         pnl_today=s.get("pnl_today"), realised_total=s.get("realised_total"))


def risk_state(state_dir: Path) -> dict[str, Any]:
    """The risk manager's state (mode, kill-switch, reduce-only, daily PnL, open positions)."""
    from thunes.services.bot import bot_status

    return dict(bot_status(state_dir).status.get("risk") or {})


@dataclass(frozen=True, slots=True, kw_only=True)
class OrdersResult:
    total: int  # matching orders; ``orders`` holds the newest ``limit`` of them
    orders: tuple[Any, ...]  # thunes.execution.journal.JournalEntry


def orders(state_dir: Path, *, include_final: bool = False, limit: int = 50) -> OrdersResult:
    """Journaled orders of the bot (the same as ``thunes risk orders``): unfinished ones, or all."""
    from thunes.execution.db import Database
    from thunes.execution.journal import OrderJournal

    if not 1 <= limit <= 10_000:
        raise ConfigError(f"limit must be between 1 and 10000, got {limit}")
    db_path = Path(state_dir) / "execution.sqlite"
    if not db_path.exists():
        return OrdersResult(total=0, orders=())
    with Database.connect(f"sqlite:///{db_path.resolve()}") as database:
        journal = OrderJournal(database)
        entries = journal.entries() if include_final else journal.open_orders()
    return OrdersResult(total=len(entries), orders=tuple(entries[-limit:]))


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditCheck:
    path: str
    ok: bool
    records: int
    error: str | None
    line: int | None
    torn_tail: bool


def audit_check(path: Path, *, settings: Any = None) -> AuditCheck:
    """Verify a bot's audit trail as ``thunes audit verify`` does (:func:`thunes.services.audit.verify_trail`):
    the keyed chain with the settings' key, the head file and the anchors in the execution database beside
    it (``<folder>/execution.sqlite``)."""
    from thunes.config import Settings
    from thunes.services.audit import verify_trail

    path = Path(path)
    if not path.exists():
        return AuditCheck(path=str(path), ok=False, records=0, error=f"audit file {path} does not exist", line=None,
                          torn_tail=False)
    check = verify_trail(settings if settings is not None else Settings(), path=path, state_dir=path.parent)
    r = check.result
    return AuditCheck(path=str(path), ok=r.ok, records=r.records, error=r.error, line=r.line, torn_tail=r.torn_tail)


@dataclass(frozen=True, slots=True, kw_only=True)
class LogLine:
    file: str
    ts: str | None
    level: str | None
    logger: str | None
    msg: str


_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
_SECRET = re.compile(r"(?i)(api[_-]?key|secret|signature|token|password|authorization)(['\"]?\s*[:=]\s*['\"]?"
                     r"(?:bearer\s+)?)([^\s'\",&]+)")


def _tail_bytes(path: Path, lines: int) -> list[bytes]:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        end = fh.tell()
        pos, data = end, b""
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(65536, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
    return [ln for ln in data.split(b"\n") if ln.strip()][-lines:]


def tail_logs(log_dir: Path, *, lines: int = 100, component: str | None = None,
              min_level: str | None = None) -> list[LogLine]:
    """The last ``lines`` records of ``<log_dir>/<component>.jsonl`` (every component when None), oldest first.

    Messages pass the secret mask again: a log line is text someone else may have written.
    """
    if not 1 <= lines <= 10_000:
        raise ConfigError(f"lines must be between 1 and 10000, got {lines}")
    if min_level is not None and min_level.upper() not in _LEVELS:
        raise ConfigError(f"unknown log level {min_level!r}; known: {', '.join(_LEVELS)}")
    if (component is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", component)) or component in (".", ".."):
        raise ConfigError(f"{component!r} is not a log component name")
    log_dir = Path(log_dir)
    files = [log_dir / f"{component}.jsonl"] if component else sorted(log_dir.glob("*.jsonl"))
    floor = _LEVELS[min_level.upper()] if min_level else 0
    out: list[tuple[str, LogLine]] = []
    for f in files:
        if not f.exists():
            continue
        for raw in _tail_bytes(f, lines):
            try:
                rec = json.loads(raw)
            except ValueError:
                rec = {"msg": raw.decode("utf-8", "replace")}
            if not isinstance(rec, dict):
                rec = {"msg": str(rec)}
            level = rec.get("level")
            if _LEVELS.get(str(level), 0) < floor:
                continue
            msg = _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}***", str(rec.get("msg", "")))
            line = LogLine(file=f.name, ts=rec.get("ts"), level=level, logger=rec.get("logger"), msg=msg)
            out.append((str(rec.get("ts") or ""), line))
    out.sort(key=lambda x: x[0])
    return [line for _, line in out[-lines:]]


_SECRET_KEY = re.compile(r"(?i)(secret|token|password|api_key|passphrase|private)")


def _mask(node: Any, key: str = "") -> Any:
    if isinstance(node, Mapping):
        return {k: _mask(v, str(k)) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_mask(v, key) for v in node]
    if _SECRET_KEY.search(key) and node not in (None, ""):
        return MASK
    if isinstance(node, str):
        return redact_url(node)
    return node


def masked_settings(settings: Any, **sections: Any) -> dict[str, Any]:
    """The settings tree as JSON-safe values, secrets and URL passwords masked; ``sections`` add trees
    not yet part of :class:`thunes.config.Settings` (e.g. ``api=ApiSettings``)."""
    tree = settings.model_dump(mode="json")
    for name, section in sections.items():
        tree[name] = section.model_dump(mode="json") if hasattr(section, "model_dump") else dict(section)
    masked: dict[str, Any] = _mask(tree)
    return masked

