"""Backtest ↔ paper parity: the same strategy, the same candles, the same settings, two engines.

:func:`paper_replay` runs the real trader (websocket feed, risk, filters, journal, orders, ledger) against
the local exchange replaying a candle frame under a stepped market clock: the clock moves one bar, the
trader handles the candle that closed, the next step waits for it. Orders therefore reach the exchange at
exactly the next bar's open, the backtester's rule. :func:`run_parity` also backtests the same span
(``FixedQuote`` sizing = ``quote_per_trade``, the exchange's taker fee, its spread and slippage as fixed
slippage, no stops because the trader places none, and the risk limits of the same ``RiskSettings`` the
trader's risk manager applies: the backtest's risk model takes its decisions, see
:class:`thunes.backtest.RiskLimits`) and :func:`compare` matches the round trips:

* identical entries and exits (bar timestamps and sides) are required;
* each trade's return may differ by the modelled costs (fees + slippage + spread, both legs), and the
  cause of every difference is named: ``signal timing``, ``slippage``, ``fees``, ``rejected`` (the
  exchange or the risk manager refused the order), ``missed`` (a fill the other side does not have),
  ``data gap`` (the backtester refuses entries on a bar after a hole in the data).

Trades of the backtest that started before the replay's first tradable bar are left out (the trader
starts flat), as is the last open trade's exit (the backtest marks it at the last close). The backtest
itself starts at that first tradable bar too, so that both sides start flat, with no loss behind them
(a cool-down or a day's loss from the warm-up would be the backtest's alone).

A replay starts from scratch: the trader's state, journal, ledger and audit trail of a previous replay in
the same folder are removed first (a replay on top of them would skip every bar as already handled).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from thunes.core.candles import ts_ms
from thunes.core.errors import ConfigError, DataError
from thunes.core.timeframes import parse_timeframe
from thunes.execution.ledger import LedgerRow, read_ledger
from thunes.strategies.base import Strategy
from thunes.strategies.window import trailing_window

__all__ = [
    "PaperRun",
    "ParityReport",
    "ReplaySpec",
    "TradeDiff",
    "backtest_options_for",
    "compare",
    "ledger_round_trips",
    "paper_replay",
    "run_parity",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaySpec:
    """What a replay trades, with which settings and over which span (the same for paper and backtest).

    The trader's window is warmed with the first ``start_bar`` candles (default: the strategy's
    ``max(4 × warmup, warmup + 250)``, :func:`thunes.strategies.window.trailing_window`); then ``bars``
    closed candles are traded (default: all the rest).
    """

    symbol: str
    timeframe: str
    quote_per_trade: Decimal = Decimal("100")
    risk_settings: Any = None
    start_bar: int | None = None
    bars: int | None = None

    def __post_init__(self) -> None:
        parse_timeframe(self.timeframe)
        if self.quote_per_trade <= 0:
            raise ConfigError(f"ReplaySpec.quote_per_trade must be > 0, got {self.quote_per_trade}")
        if self.bars is not None and self.bars < 1:
            raise ConfigError(f"ReplaySpec.bars must be >= 1, got {self.bars}")


@dataclass(slots=True, kw_only=True)
class PaperRun:
    """What a paper replay produced."""

    trades: pd.DataFrame  # round trips from the ledger
    fills: list[LedgerRow]
    decisions: list[Any]
    start_ts: int  # open time of the first bar whose close the trader handled
    end_ts: int
    bars: int
    feed_stats: Any
    reconcile: Any
    positions_match: bool
    workdir: Path
    orders_sent: int = 0
    exchange_orders: int = 0
    market: Any = None  # the exchange's market (filters) the trader traded under


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeDiff:
    entry_ts: pd.Timestamp | None
    exit_ts: pd.Timestamp | None
    bt_return: float | None
    paper_return: float | None
    bt_pnl: float | None
    paper_pnl: float | None
    cause: str
    within_tolerance: bool


# Causes that mean an entry or exit is not where the backtest has it ("rejected: <why>" carries the reason).
_TIMING_CAUSES = frozenset({"missed", "signal timing", "rejected", "data gap"})


@dataclass(slots=True, kw_only=True)
class ParityReport:
    rows: list[TradeDiff] = field(default_factory=list)
    tolerance: float = 0.0
    backtest_trades: int = 0
    paper_trades: int = 0

    @property
    def timing_identical(self) -> bool:
        return all(r.entry_ts is not None and r.cause.split(":")[0] not in _TIMING_CAUSES for r in self.rows)

    @property
    def ok(self) -> bool:
        return self.timing_identical and all(r.within_tolerance for r in self.rows)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "entry_ts": r.entry_ts, "exit_ts": r.exit_ts, "bt_return": r.bt_return, "paper_return": r.paper_return,
            "diff": None if r.bt_return is None or r.paper_return is None else r.paper_return - r.bt_return,
            "bt_pnl": r.bt_pnl, "paper_pnl": r.paper_pnl, "cause": r.cause, "ok": r.within_tolerance,
        } for r in self.rows])


# ------------------------------------------------------------------------------------------------------
# Paper side
# ------------------------------------------------------------------------------------------------------
def ledger_round_trips(fills: list[LedgerRow]) -> pd.DataFrame:
    """Round trips (long-only) from ledger fills: buys open, sells close; fees converted to quote.

    A trip's PnL is what it did to the quote balance: proceeds - cost - fees paid in quote. A buy's fee
    taken in the base asset costs coins, not quote, and the coins left unsold (dust under the lot
    step) are written off, as the trader and its risk manager book them."""
    rows = []
    open_: dict[str, Any] | None = None
    for f in sorted(fills, key=lambda r: (r.time_ms, r.order_id, r.trade_id)):
        base, _, quote = f.symbol.partition("/")
        fee_q = float(f.fee) * (float(f.price) if f.fee_asset == base else 1.0) if f.fee_asset in (base, quote) else 0.0
        if f.side == "BUY":
            if open_ is None or open_["closing"]:
                if open_ is not None:
                    rows.append(_trip(open_))
                open_ = {"entry_ms": f.time_ms, "qty": 0.0, "cost": 0.0, "fees": 0.0, "sold": 0.0, "proceeds": 0.0,
                         "exit_ms": None, "closing": False, "order": f.order_id, "quote_fees": 0.0}
            open_["qty"] += float(f.qty)
            open_["cost"] += float(f.qty) * float(f.price)
            open_["fees"] += fee_q
            open_["quote_fees"] += fee_q if f.fee_asset == quote else 0.0
        elif open_ is not None:
            open_["closing"] = True
            open_["sold"] += float(f.qty)
            open_["proceeds"] += float(f.qty) * float(f.price)
            open_["fees"] += fee_q
            open_["quote_fees"] += fee_q if f.fee_asset == quote else 0.0
            open_["exit_ms"] = f.time_ms
    if open_ is not None:
        rows.append(_trip(open_))
    cols = ["entry_ts", "exit_ts", "qty", "entry_price", "exit_price", "pnl", "return_pct", "fees"]
    return pd.DataFrame(rows, columns=cols)


def _trip(t: dict[str, Any]) -> dict[str, Any]:
    entry_px = t["cost"] / t["qty"] if t["qty"] else float("nan")
    closed = t["exit_ms"] is not None
    exit_px = t["proceeds"] / t["sold"] if t["sold"] else float("nan")
    pnl = t["proceeds"] - t["cost"] - t["quote_fees"] if closed else float("nan")
    return {
        "entry_ts": pd.Timestamp(t["entry_ms"], unit="ms", tz="UTC"),
        "exit_ts": pd.Timestamp(t["exit_ms"], unit="ms", tz="UTC") if closed else pd.NaT,
        "qty": t["qty"], "entry_price": entry_px, "exit_price": exit_px if closed else float("nan"),
        "pnl": pnl, "return_pct": (pnl / t["cost"] * 100.0) if closed and t["cost"] else float("nan"),
        "fees": t["fees"],
    }


def paper_replay(
    candles: pd.DataFrame,
    strategy: Strategy,
    spec: ReplaySpec,
    *,
    workdir: Path,
    sim_options: dict[str, Any] | None = None,
    step_timeout_s: float = 20.0,
    before_step: Callable[[Any, int], None] | None = None,
    settle_ms: int | None = None,
    feed_options: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    store_url: str | None = None,
) -> PaperRun:
    """Replay ``candles`` through the local exchange and the real trader, one bar per step.

    The trader's window is warmed with the ``spec.start_bar`` candles before the replay (fetched from the
    exchange over REST, as at a real start); it then trades ``spec.bars`` closed candles.
    ``before_step(sim, i)`` runs before each step (the chaos test injects faults there). ``settle_ms`` (the
    executor's wait after a lost order answer) defaults to the least the port's signed ``recvWindow`` allows.
    """
    from thunes.config import RiskSettings
    from thunes.exchange.ccxt_adapter import CcxtExchange
    from thunes.exchange.sim import LocalExchange
    from thunes.execution.orders import min_settle_ms
    from thunes.live.assembly import ReplayClock, build_stack, feed_for
    from thunes.live.trader import TraderOptions

    symbol, timeframe = spec.symbol, spec.timeframe
    tf_ms = parse_timeframe(timeframe).ms
    stamps = ts_ms(candles)
    warm = spec.start_bar if spec.start_bar is not None else trailing_window(strategy)
    if warm < strategy.warmup or warm >= len(candles) - 1:
        raise DataError(f"paper replay: start_bar {warm} must be >= warm-up {strategy.warmup} and < {len(candles) - 1}")
    n = spec.bars if spec.bars is not None else len(candles) - warm - 1
    n = min(n, len(candles) - warm - 1)
    workdir = Path(workdir)
    _clear_previous_replay(workdir)
    sim = LocalExchange(candles={symbol: candles}, start_ms=int(stamps[warm]), **(sim_options or {})).start()
    stack = None
    try:
        clock = ReplayClock(sim.clock)
        port = CcxtExchange.for_local(sim)
        feed_port = CcxtExchange.for_local(sim)
        options = TraderOptions(symbol=symbol, timeframe=timeframe, quote_per_trade=spec.quote_per_trade,
                                state_dir=workdir / "state", reconcile_every_s=3600.0,
                                window_bars=warm)
        stack = build_stack(port, strategy=strategy, options=options, risk_settings=spec.risk_settings or RiskSettings(),
                            audit_path=workdir / "audit.jsonl", ledger_path=workdir / "ledger.csv", clock=clock,
                            audit_fsync="never",
                            settle_ms=min_settle_ms(port.recv_window_ms) if settle_ms is None else settle_ms)
        trader = stack.trader
        history = port.fetch_candles(symbol, timeframe, since=int(stamps[0]), limit=warm)
        history = history[ts_ms(history) + tf_ms <= sim.now_ms()]
        trader.warm_up(history)
        feed = feed_for(feed_port, ws_url=sim.ws_url, symbol=symbol, timeframe=timeframe, store_url=store_url,
                        stale_after_s=2.0, seed=1, backoff_initial_s=0.05, backoff_max_s=0.5,
                        **(feed_options or {}))
        runner = threading.Thread(target=trader.run, args=(feed,), daemon=True, name="paper-replay")
        runner.start()
        if not feed.wait_connected(10):
            raise ConfigError("paper replay: the candle feed did not connect to the local exchange")
        _wait_subscribed(sim, timeout=5)
        for i in range(n):
            if before_step is not None:
                before_step(sim, i)
            target_ts = int(stamps[warm + i])  # the bar that closes with this step
            nxt = int(stamps[warm + i + 1])
            sim.advance_to(nxt)
            end = time.monotonic() + step_timeout_s
            nudge = time.monotonic() + 0.5
            while (trader.state.last_bar_ts or 0) < target_ts:
                if time.monotonic() > nudge:
                    # The kline was lost (a dropped stream): let a second of market time pass, as it would
                    # live, so the stream's next update reveals the hole and the feed backfills it.
                    sim.advance_to(sim.now_ms() + 1000)
                    nudge = time.monotonic() + 0.5
                if not runner.is_alive():
                    raise ConfigError("paper replay: the trader stopped unexpectedly")
                if time.monotonic() > end:
                    raise ConfigError(f"paper replay: bar {target_ts} not processed within {step_timeout_s}s "
                                      f"(feed: {feed.stats})")
                time.sleep(0.002)
            if progress is not None:
                progress(i + 1, n)
        trader.request_stop("replay finished")
        runner.join(30)
        report = stack.reconciler.last
        match = report is not None and report.ok
        fills = read_ledger(workdir / "ledger.csv")
        exchange_orders = len({f.order_id for f in fills})
        return PaperRun(trades=ledger_round_trips(fills), fills=fills, decisions=list(trader.report.decisions),
                        start_ts=int(stamps[warm]), end_ts=int(stamps[warm + n - 1]) if n else int(stamps[warm]),
                        bars=trader.report.bars, feed_stats=feed.stats, reconcile=report, positions_match=match,
                        workdir=workdir, orders_sent=stack.exchange.orders_sent, exchange_orders=exchange_orders,
                        market=stack.markets.get(symbol))
    finally:
        if stack is not None:
            stack.close()
        sim.stop()


REPLAY_OUTPUTS = ("state", "audit.jsonl", "ledger.csv")


def _clear_previous_replay(workdir: Path) -> None:
    """Remove what an earlier replay left in ``workdir`` (only the replay's own files and folder)."""
    import shutil

    workdir.mkdir(parents=True, exist_ok=True)
    for name in REPLAY_OUTPUTS:
        path = workdir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _wait_subscribed(sim: Any, timeout: float) -> None:
    end = time.monotonic() + timeout
    hub = None
    while time.monotonic() < end:
        hub = getattr(sim, "_hub", None)
        if hub is not None and any(state["streams"] for state in hub.market.values()):
            return
        time.sleep(0.01)


# ------------------------------------------------------------------------------------------------------
# Comparison
# ------------------------------------------------------------------------------------------------------
def backtest_options_for(quote_per_trade: Decimal, *, taker_fee: Decimal, slippage_bps: Decimal,
                         spread_bps: Decimal, risk_settings: Any = None) -> Any:
    """Backtest options modelling the local exchange (its taker fee, taken in the base asset on buys,
    half its spread plus its slippage) and the trader's risk manager (the limits of ``risk_settings``,
    default ``RiskSettings()``)."""
    from thunes.backtest.engine import BacktestOptions, FixedQuote, FixedSlippage, RiskLimits
    from thunes.config import RiskSettings

    return BacktestOptions(
        taker_fee_bps=float(taker_fee * 10_000), maker_fee_bps=float(taker_fee * 10_000),
        slippage=FixedSlippage(bps=float(slippage_bps + spread_bps / 2)),
        sizing=FixedQuote(amount=float(quote_per_trade)), fee_in_base=True,
        risk=RiskLimits.from_settings(risk_settings if risk_settings is not None else RiskSettings()),
    )


def compare(backtest_trades: pd.DataFrame, paper: pd.DataFrame, *, tolerance_pct: float,
            first_entry_ts: pd.Timestamp, last_ts: pd.Timestamp, gap_entries: set[pd.Timestamp] | None = None,
            skipped: dict[pd.Timestamp, str] | None = None) -> ParityReport:
    """Match round trips by entry time; name the cause of every difference."""
    bt = backtest_trades[(backtest_trades["entry_ts"] >= first_entry_ts) & (backtest_trades["entry_ts"] <= last_ts)]
    bt = bt.set_index("entry_ts", drop=False)
    pp = paper.set_index("entry_ts", drop=False) if len(paper) else paper
    report = ParityReport(tolerance=tolerance_pct, backtest_trades=len(bt), paper_trades=len(paper))
    keys = sorted(set(bt.index) | set(pp.index if len(paper) else []))
    for key in keys:
        b = bt.loc[key] if key in bt.index else None
        p = pp.loc[key] if len(paper) and key in pp.index else None
        if b is not None and p is None:
            cause = "data gap" if gap_entries and key in gap_entries else (
                f"rejected: {skipped[key]}" if skipped and key in skipped else "missed")
            report.rows.append(TradeDiff(entry_ts=key, exit_ts=b["exit_ts"], bt_return=float(b["return_pct"]),
                                         paper_return=None, bt_pnl=float(b["pnl"]), paper_pnl=None, cause=cause,
                                         within_tolerance=False))
            continue
        if p is not None and b is None:
            report.rows.append(TradeDiff(entry_ts=key, exit_ts=p["exit_ts"], bt_return=None,
                                         paper_return=float(p["return_pct"]), bt_pnl=None, paper_pnl=float(p["pnl"]),
                                         cause="missed", within_tolerance=False))
            continue
        assert b is not None and p is not None
        bt_open = pd.isna(b["exit_ts"]) or str(b.get("exit_reason", "")) in ("open", "end")
        paper_open = pd.isna(p["exit_ts"])
        if bt_open or paper_open:
            same = bt_open == paper_open or (paper_open and str(b.get("exit_reason", "")) in ("open", "end"))
            report.rows.append(TradeDiff(entry_ts=key, exit_ts=None if paper_open else p["exit_ts"],
                                         bt_return=None, paper_return=None, bt_pnl=None, paper_pnl=None,
                                         cause="open at the end" if same else "signal timing",
                                         within_tolerance=same))
            continue
        if b["exit_ts"] != p["exit_ts"]:
            report.rows.append(TradeDiff(entry_ts=key, exit_ts=p["exit_ts"], bt_return=float(b["return_pct"]),
                                         paper_return=float(p["return_pct"]), bt_pnl=float(b["pnl"]),
                                         paper_pnl=float(p["pnl"]), cause="signal timing", within_tolerance=False))
            continue
        diff = float(p["return_pct"]) - float(b["return_pct"])
        # Split the difference into its price part (fill prices: spread, slippage, sizing) and its fee part.
        price_effect = (float(p["exit_price"]) / float(p["entry_price"])
                        - float(b["exit_price"]) / float(b["entry_price"])) * 100
        fee_effect = -(float(p["fees"]) / (float(p["qty"]) * float(p["entry_price"]))
                       - float(b["fees"]) / (float(b["qty"]) * float(b["entry_price"]))) * 100
        rest = diff - price_effect - fee_effect  # quantity: sized on the signal close, base fee not sold
        effects = {"slippage": price_effect, "fees": fee_effect, "quantity": rest}
        if abs(diff) < 1e-9:
            cause = "identical"
        else:
            name = max(effects, key=lambda k: abs(effects[k]))
            cause = f"{name} ({effects[name]:+.4f} %)"
        report.rows.append(TradeDiff(entry_ts=key, exit_ts=p["exit_ts"], bt_return=float(b["return_pct"]),
                                     paper_return=float(p["return_pct"]), bt_pnl=float(b["pnl"]),
                                     paper_pnl=float(p["pnl"]), cause=cause,
                                     within_tolerance=abs(diff) <= tolerance_pct))
    return report


def run_parity(
    candles: pd.DataFrame,
    strategy: Strategy,
    spec: ReplaySpec,
    *,
    workdir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[ParityReport, PaperRun, pd.DataFrame]:
    """Paper replay and backtest of the same span; returns (report, paper run, backtest trades)."""
    from thunes.backtest.prepared import gap_flags, run_backtest
    from thunes.exchange.sim import EngineOptions

    engine = EngineOptions()
    symbol, timeframe = spec.symbol, spec.timeframe
    paper = paper_replay(candles, strategy, spec, workdir=workdir, progress=progress)
    tf_ms = parse_timeframe(timeframe).ms
    stamps = ts_ms(candles)
    end_idx = int(np.searchsorted(stamps, paper.end_ts)) + 1
    span = candles.iloc[: end_idx + 1]  # the bar after the last handled close: where its order fills
    options = backtest_options_for(spec.quote_per_trade, taker_fee=engine.taker_fee, slippage_bps=engine.slippage_bps,
                                   spread_bps=engine.spread_bps, risk_settings=spec.risk_settings)
    # Both sides start flat at the first bar the trader decides on: no backtest entry before it (a trade
    # there would leave a position, a cool-down or a day's loss that the trader never had).
    signals = strategy.signals(span)
    before = pd.Series(stamps[: len(span)] < paper.start_ts, index=span.index)
    refuse = before if signals.refuse_entries is None else (signals.refuse_entries.astype(bool) | before)
    signals = dataclasses.replace(signals, refuse_entries=refuse)
    bt = run_backtest(span, strategy, options=options, symbol=symbol, timeframe=timeframe, signals=signals,
                      market=paper.market)  # the exchange's own filters, not the built-in copy
    first_entry = pd.Timestamp(paper.start_ts + tf_ms, unit="ms", tz="UTC")
    last = pd.Timestamp(int(ts_ms(span)[-1]), unit="ms", tz="UTC")
    gap_entries = set(span.index[gap_flags(ts_ms(span), timeframe)])
    skipped = {pd.Timestamp(d.bar_ts + tf_ms, unit="ms", tz="UTC"): d.reason for d in paper.decisions
               if d.action == "skip" or (d.action in ("buy", "sell") and d.filled_qty == 0)}
    # Tolerance: the modelled cost of a round trip on each side (fees + spread + slippage, both legs),
    # plus the return effect of sizing the quantity on the signal close instead of the fill open.
    cost_pct = float(2 * (engine.taker_fee * 100) + 2 * (engine.slippage_bps + engine.spread_bps) / 100)
    report = compare(bt.trades, paper.trades, tolerance_pct=cost_pct, first_entry_ts=first_entry, last_ts=last,
                     gap_entries=gap_entries, skipped=skipped)
    return report, paper, bt.trades
