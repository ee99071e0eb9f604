"""System services for remote surfaces: version, the tail of a log file, the health of a bot.

Each edge (Telegram, the REST API, the CLI) shows these; none of them computes its own.

* :func:`version_info` - versions of THUNES, Python and the libraries an operator asks about.
* :func:`tail_log` - the last lines of a JSON-lines log (``logs/<command>.jsonl``), as readable lines.
* :func:`bot_health` - one verdict per check (running, state, candles fresh per pair, jobs, kill-switch,
  event log recent), from the running bot's status or, when it is not running, its state folder.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from thunes import __version__
from thunes.core.errors import ConfigError
from thunes.core.timeframes import parse_timeframe

__all__ = ["HealthCheck", "HealthReport", "LogLine", "bot_health", "tail_log", "version_info"]

_LIBS = ("ccxt", "pandas", "numpy", "python-telegram-bot")


def version_info() -> dict[str, str]:
    """``{"thunes": "0.1.0", "python": "3.12.3", "ccxt": ..., ...}`` (a library not installed is left out)."""
    out = {"thunes": __version__, "python": platform.python_version()}
    for lib in _LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class LogLine:
    ts: str
    level: str
    logger: str
    msg: str

    def __str__(self) -> str:
        return f"{self.ts} {self.level} {self.logger}: {self.msg}"


def _tail_bytes(path: Path, max_bytes: int) -> list[str]:
    """The complete lines of the last ``max_bytes`` of a file (the first, maybe partial, line is dropped)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        start = max(0, size - max_bytes)
        fh.seek(start)
        data = fh.read()
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[1:] if start > 0 and lines else lines


def tail_log(path: str | Path, lines: int = 20, *, min_level: str | None = None) -> list[LogLine]:
    """The last ``lines`` records of a JSON-lines log, oldest first (``min_level``: WARNING shows warnings and
    errors only). A line that is not JSON is shown as it is."""
    p = Path(path)
    if lines < 1:
        raise ConfigError(f"lines must be >= 1, got {lines}")
    if not p.exists():
        raise ConfigError(f"no log file at {p} (the command writes it when it runs; see logging.dir)")
    order = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
    floor = order.get((min_level or "DEBUG").upper(), 10)
    out: list[LogLine] = []
    for raw in reversed(_tail_bytes(p, 512 * 1024)):
        try:
            rec = json.loads(raw)
            line = LogLine(ts=str(rec.get("ts", "")), level=str(rec.get("level", "")), logger=str(rec.get("logger", "")),
                           msg=str(rec.get("msg", "")) + (f"\n{rec['exc']}" if rec.get("exc") else ""))
        except (ValueError, AttributeError):
            line = LogLine(ts="", level="", logger="", msg=raw)
        if order.get(line.level, 20) < floor:
            continue
        out.append(line)
        if len(out) >= lines:
            break
    return list(reversed(out))


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthCheck:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    running: bool
    checks: tuple[HealthCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def _last_event(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / "events.jsonl"
    if not path.exists() or path.stat().st_size == 0:
        return None
    for raw in reversed(_tail_bytes(path, 64 * 1024)):
        try:
            event: dict[str, Any] = json.loads(raw)
            return event
        except ValueError:
            continue
    return None


def bot_health(state_dir: str | Path, *, stale_bars: float = 3.0) -> HealthReport:
    """Checks of the bot on ``state_dir``: a pair whose last processed candle is older than ``stale_bars``
    candles (by the bot's clock: market time in a replay) fails ``candles``."""
    from thunes.services.bot import bot_jobs, bot_status

    state_dir = Path(state_dir)
    status = bot_status(state_dir)
    s = status.status
    checks = [HealthCheck(name="process", ok=status.running,
                          detail=f"running (pid {_pid(state_dir)})" if status.running else "not running")]
    state = str(s.get("state"))
    checks.append(HealthCheck(name="state", ok=state in ("running", "paused", "starting"),
                              detail=state + (" (paused: exits only)" if s.get("paused") else "")))
    now = s.get("now_ms")
    if status.running and now:
        late = []
        for p in s.get("pairs", []):
            tf_ms = parse_timeframe(p["timeframe"]).seconds * 1000
            last = p.get("last_bar_ts")
            # last_bar_ts is the open time of the last processed candle: it closed one bar later.
            if last is None or now - (last + tf_ms) > stale_bars * tf_ms:
                late.append(f"{p['symbol']} {'never' if last is None else f'{(now - last - tf_ms) / 60000:.0f} min'}")
        checks.append(HealthCheck(name="candles", ok=not late,
                                  detail="late: " + ", ".join(late) if late else f"{len(s.get('pairs', []))} pairs fresh"))
    jobs = bot_jobs(state_dir)
    failing = [j["name"] for j in jobs if j.get("last_outcome") in ("failed", "missed")]
    checks.append(HealthCheck(name="jobs", ok=not failing,
                              detail=("last run failed or missed: " + ", ".join(failing)) if failing
                              else f"{len(jobs)} jobs ok"))
    risk = s.get("risk") or {}
    checks.append(HealthCheck(name="kill_switch", ok=not risk.get("kill_switch"),
                              detail=f"ON ({risk.get('kill_reason') or risk.get('reason') or '-'})"
                              if risk.get("kill_switch") else "off"))
    last = _last_event(state_dir)
    checks.append(HealthCheck(name="event_log", ok=last is not None,
                              detail=f"last event {last['kind']}" if last else "no event recorded"))
    return HealthReport(running=status.running, checks=tuple(checks))


def _pid(state_dir: Path) -> str:
    try:
        return str(json.loads((state_dir / "control.json").read_text(encoding="utf-8")).get("pid"))
    except (OSError, ValueError):
        return "?"

