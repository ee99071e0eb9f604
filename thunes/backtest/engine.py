"""Backtest declarations: the options, the built-in markets, the timeframe check, and the result.

A run itself goes through :class:`thunes.backtest.prepared.PreparedBacktest` (:func:`run_backtest`
lives there): it validates the candles, asks the strategy for its signals (computed at each bar's
close), and hands numpy arrays to the numba kernel (:mod:`thunes.backtest._kernels`), which executes
them at the *next* bar's open with fees, slippage, sizing, stops, exchange-filter rounding and the
live risk limits. Everything the run depended on (options, strategy parameters, market filters, data
span) is hashed into ``settings_hash`` and stored with the :class:`BacktestResult`.

Options are grouped in small frozen objects so that one name never means two things: sizing is
:class:`FixedQuote`, :class:`FractionOfEquity` or :class:`VolTarget`; slippage is
:class:`FixedSlippage`, :class:`VolatilitySlippage` or :class:`VolumeSlippage`; risk limits are
:class:`RiskLimits` (``None`` disables them, for research and the vectorbt comparison).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from thunes.backtest import _kernels as K
from thunes.config import BacktestSettings, RiskSettings
from thunes.core.errors import ConfigError, DataError
from thunes.core.markets import Market, SymbolFilters
from thunes.core.timeframes import index_ms, parse_timeframe

__all__ = [
    "RISK_PRESETS",
    "TRADE_COLUMNS",
    "BacktestOptions",
    "BacktestResult",
    "FixedQuote",
    "FixedSlippage",
    "FractionOfEquity",
    "RiskLimits",
    "VolTarget",
    "VolatilitySlippage",
    "VolumeSlippage",
    "default_market",
    "infer_timeframe",
    "records_to_trades",
    "resolve_timeframe",
    "risk_preset",
    "run_hash",
]

TRADE_COLUMNS = (
    "symbol", "entry_ts", "exit_ts", "side", "qty", "entry_price", "exit_price", "pnl", "return_pct",
    "fees", "exit_reason", "entry_bar", "exit_bar",
)


# ------------------------------------------------------------------------------------------------
# Options
# ------------------------------------------------------------------------------------------------
def _require(ok: Any, message: str) -> None:
    """Refuse a nonsense sizing/slippage value (NaN fails every comparison, so it is refused too)."""
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True, slots=True, kw_only=True)
class FixedQuote:
    """Spend ``amount`` of quote currency per entry (before fees)."""

    amount: float = 100.0
    kind: str = field(default="fixed_quote", init=False)

    def __post_init__(self) -> None:
        _require(self.amount > 0, f"FixedQuote amount must be > 0 (quote currency per entry), got {self.amount}")



@dataclass(frozen=True, slots=True, kw_only=True)
class FractionOfEquity:
    """Spend ``fraction`` of current equity per entry (1.0 = all-in, fees included in the budget)."""

    fraction: float = 1.0
    kind: str = field(default="fraction", init=False)

    def __post_init__(self) -> None:
        _require(0 < self.fraction <= 1, f"FractionOfEquity fraction must be in (0, 1], got {self.fraction}")



@dataclass(frozen=True, slots=True, kw_only=True)
class VolTarget:
    """Size so that the position's annualised volatility is ``annual_vol`` of equity (at most 1x).

    Volatility is the standard deviation of the last ``window`` bar returns, known at the signal bar.
    """

    annual_vol: float = 0.2
    window: int = 100
    kind: str = field(default="vol_target", init=False)

    def __post_init__(self) -> None:
        _require(self.annual_vol > 0, f"VolTarget annual_vol must be > 0, got {self.annual_vol}")
        _require(self.window >= 2, f"VolTarget window must be >= 2 bars, got {self.window}")



@dataclass(frozen=True, slots=True, kw_only=True)
class FixedSlippage:
    """Every market order fills ``bps`` worse than the reference price."""

    bps: float = 5.0
    kind: str = field(default="fixed", init=False)

    def __post_init__(self) -> None:
        _require(self.bps >= 0, f"FixedSlippage bps must be >= 0, got {self.bps}")



@dataclass(frozen=True, slots=True, kw_only=True)
class VolatilitySlippage:
    """``bps`` plus ``k`` times the bar-return standard deviation (last ``window`` bars)."""

    bps: float = 2.0
    k: float = 0.1
    window: int = 100
    kind: str = field(default="volatility", init=False)

    def __post_init__(self) -> None:
        _require(self.bps >= 0, f"VolatilitySlippage bps must be >= 0, got {self.bps}")
        _require(self.k >= 0, f"VolatilitySlippage k must be >= 0, got {self.k}")
        _require(self.window >= 2, f"VolatilitySlippage window must be >= 2 bars, got {self.window}")



@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeSlippage:
    """``bps`` plus ``k`` times the order's share of the signal bar's quote volume (participation)."""

    bps: float = 2.0
    k: float = 0.1
    kind: str = field(default="volume", init=False)

    def __post_init__(self) -> None:
        _require(self.bps >= 0, f"VolumeSlippage bps must be >= 0, got {self.bps}")
        _require(self.k >= 0, f"VolumeSlippage k must be >= 0, got {self.k}")



Sizing = FixedQuote | FractionOfEquity | VolTarget
Slippage = FixedSlippage | VolatilitySlippage | VolumeSlippage


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskLimits:
    """The live risk manager's limits, applied bar by bar with its decisions (defaults: ``RiskSettings()``;
    build them from the settings with :meth:`from_settings`, the one place the knobs live).

    * ``max_positions``: open positions at once (portfolio; a single symbol holds at most one).
    * ``max_daily_loss``: when the UTC day's realised PnL plus the open positions' unrealised PnL
      (after a trade closes, or at a bar's close) reaches ``-max_daily_loss`` (quote), the kill-switch
      trips and, as live, stays on: only an operator switches it off, and a backtest has none. While
      it is on nothing goes out (entries and signal exits are refused; a placed stop or take-profit,
      an order resting at the exchange, still fills).
    * ``max_loss_per_trade``: a position is sized so that the loss at its stop (``stop_loss``, or
      ``default_stop_pct`` when none is set) is at most this. The default stop only sizes: it is not
      placed, as the trader places none.
    * ``max_position_quote``: largest position size in quote.
    * ``cool_down_minutes``: after a losing trade closes, no new entry (on any symbol, as live) for
      this long; a winning trade clears it.

    Each refusal and each cap that bound is counted per rule in the result's stats
    (:data:`thunes.backtest.metrics.RISK_COUNT_NAMES`).
    """

    max_positions: int = 3
    max_daily_loss: float = 50.0
    max_loss_per_trade: float = 10.0
    max_position_quote: float = 100.0
    cool_down_minutes: float = 30.0
    default_stop_pct: float = 0.02

    @classmethod
    def from_settings(cls, risk: RiskSettings) -> RiskLimits:
        return cls(
            max_positions=risk.max_positions, max_daily_loss=float(risk.max_daily_loss),
            max_loss_per_trade=float(risk.max_loss_per_trade), max_position_quote=float(risk.max_position_quote),
            cool_down_minutes=float(risk.cool_down_minutes), default_stop_pct=float(risk.default_stop_pct),
        )


_DEFAULT_RISK = RiskLimits.from_settings(RiskSettings())
_DEFAULT_BT = BacktestSettings()
RISK_PRESETS = ("research", "live")


def risk_preset(name: str, risk_settings: RiskSettings | None = None) -> RiskLimits | None:
    """The risk limits of a named preset: ``"research"`` (none: all the strategy's signals trade at the
    chosen sizing) or ``"live"`` (the live risk manager's limits, from ``risk_settings`` or the defaults)."""
    if name == "research":
        return None
    if name == "live":
        return RiskLimits.from_settings(risk_settings) if risk_settings is not None else _DEFAULT_RISK
    raise ConfigError(f"unknown risk preset {name!r}; choose one of {', '.join(RISK_PRESETS)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestOptions:
    """Everything a run depends on besides data, strategy and market. Defaults mirror the settings.

    Fractions (``stop_loss=0.02`` = 2 %) for stops; basis points for fees and slippage.
    ``apply_filters`` rounds quantities/prices through the market's filters like live trading;
    ``refuse_gap_entries`` refuses an entry whose signal window (the strategy's ``warmup`` bars up to
    the signal bar) or fill bar spans a hole in the data, or that the strategy's
    ``Signals.refuse_entries`` vetoes (see :func:`thunes.backtest.prepared.entry_gaps`).

    ``fee_in_base`` charges a buy's fee in the base asset, as Binance spot does without BNB fees: the
    position holds ``qty × (1 - fee)`` coins, the exit sells them rounded down to the lot step and
    writes the unsellable remainder off (the trader and its risk manager book it so; parity sets it).

    ``risk`` is a named choice: ``"research"`` (the default: no risk limits, stored as None) or
    ``"live"`` (the live risk manager's default limits; :meth:`from_settings` takes them from the
    settings), or a :class:`RiskLimits`. Every summary says which one ran and how often each limit bound.
    """

    initial_cash: float = _DEFAULT_BT.initial_cash
    taker_fee_bps: float = _DEFAULT_BT.taker_fee_bps
    maker_fee_bps: float = _DEFAULT_BT.maker_fee_bps
    slippage: Slippage = FixedSlippage(bps=_DEFAULT_BT.slippage_bps)
    sizing: Sizing = FractionOfEquity(fraction=1.0)
    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None
    allow_short: bool = False
    risk: RiskLimits | str | None = None
    apply_filters: bool = True
    refuse_gap_entries: bool = True
    fee_in_base: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.risk, str):
            object.__setattr__(self, "risk", risk_preset(self.risk))
        problems = []
        if not self.initial_cash > 0:
            problems.append(f"initial_cash must be > 0, got {self.initial_cash}")
        for name in ("taker_fee_bps", "maker_fee_bps"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("stop_loss", "take_profit", "trailing_stop"):
            v = getattr(self, name)
            if v is not None and not 0 < v < 1:
                problems.append(f"{name} is a fraction in (0, 1), got {v}")
        if not isinstance(self.sizing, (FixedQuote, FractionOfEquity, VolTarget)):
            problems.append(f"sizing must be FixedQuote, FractionOfEquity or VolTarget, got {self.sizing!r}")
        if not isinstance(self.slippage, (FixedSlippage, VolatilitySlippage, VolumeSlippage)):
            problems.append(f"slippage must be a Fixed/Volatility/VolumeSlippage, got {self.slippage!r}")
        if self.risk is not None and not isinstance(self.risk, RiskLimits):
            problems.append(f"risk must be 'research', 'live' or RiskLimits, got {self.risk!r}")
        if problems:
            raise ConfigError("invalid backtest options", problems)

    @property
    def risk_preset(self) -> str:
        """``research`` (no limits), ``live`` (the default live limits) or ``custom``."""
        if self.risk is None:
            return "research"
        return "live" if self.risk == _DEFAULT_RISK else "custom"

    def risk_description(self) -> str:
        """One line: which risk limits the run applied."""
        if self.risk is None:
            return "research (no risk limits)"
        r = self.risk
        return (f"{self.risk_preset} limits: max_positions={r.max_positions}, max_daily_loss={r.max_daily_loss:g}, "
                f"max_loss_per_trade={r.max_loss_per_trade:g} (stop {self.sizing_stop:g}), "
                f"max_position_quote={r.max_position_quote:g}, cool_down_minutes={r.cool_down_minutes:g}")

    @classmethod
    def from_settings(cls, backtest: BacktestSettings, risk_settings: RiskSettings | None = None, /,
                      **changes: Any) -> BacktestOptions:
        """Options from the settings sections with the live risk limits of ``risk_settings`` (default
        ``RiskSettings()``), then ``changes`` (``risk="research"`` among them lifts the limits)."""
        base = cls(
            initial_cash=backtest.initial_cash, taker_fee_bps=backtest.taker_fee_bps,
            maker_fee_bps=backtest.maker_fee_bps, slippage=FixedSlippage(bps=backtest.slippage_bps),
            risk=RiskLimits.from_settings(risk_settings) if risk_settings is not None else _DEFAULT_RISK,
        )
        return replace(base, **changes) if changes else base

    def replace(self, **changes: Any) -> BacktestOptions:
        return replace(self, **changes)

    @property
    def sizing_stop(self) -> float | None:
        """The stop distance the per-trade loss cap sizes with: ``stop_loss``, else the risk limits'
        ``default_stop_pct`` (as the live risk manager sizes an intent without a stop; that default stop
        is not placed, the trader places none). None without risk limits."""
        if self.risk is None:
            return None
        return self.stop_loss if self.stop_loss is not None else self.risk.default_stop_pct

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = asdict(v) if hasattr(v, "__dataclass_fields__") else v
        return out

    @property
    def vol_window(self) -> int:
        windows = [getattr(self.sizing, "window", 0), getattr(self.slippage, "window", 0)]
        return max(windows) or 100


# ------------------------------------------------------------------------------------------------
# Markets
# ------------------------------------------------------------------------------------------------
# Binance spot filters (tick, step, min notional) of the sample symbols, as of 2024; pass a Market
# parsed from exchangeInfo for exact, current rules.
_DEFAULT_FILTERS = {
    "BTC/USDT": ("0.01", "0.00001", "10"),
    "ETH/USDT": ("0.01", "0.0001", "10"),
    "SOL/USDT": ("0.01", "0.001", "5"),
    "XRP/USDT": ("0.0001", "1", "5"),
    "DOGE/USDT": ("0.00001", "1", "1"),
    "LTC/USDT": ("0.01", "0.001", "5"),
}


def default_market(symbol: str) -> Market | None:
    """The built-in Binance filters of a sample symbol, or None when unknown."""
    spec = _DEFAULT_FILTERS.get(symbol.upper())
    if spec is None:
        return None
    tick, step, notional = (Decimal(x) for x in spec)
    base, _, quote = symbol.upper().partition("/")
    return Market(
        symbol=symbol.upper(), exchange_symbol=base + quote, base=base, quote=quote,
        filters=SymbolFilters(tick_size=tick, step_size=step, min_qty=step, min_notional=notional),
    )


# ------------------------------------------------------------------------------------------------
# Timeframe
# ------------------------------------------------------------------------------------------------
_UNITS_MS = (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000))


def infer_timeframe(index: pd.DatetimeIndex) -> str:
    """The candles' timeframe: the most common step between consecutive open times (a few holes in the
    data do not change it), written as a timeframe string (``5m``, ``1h``, ``1d``)."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        raise DataError("cannot infer the timeframe: the candles need a DatetimeIndex of at least 2 rows")
    steps = np.diff(index_ms(index))
    steps = steps[steps > 0]
    if steps.size == 0:
        raise DataError("cannot infer the timeframe: the candles' open times do not increase")
    values, counts = np.unique(steps, return_counts=True)
    step = int(values[np.argmax(counts)])
    for unit, ms in _UNITS_MS:
        if step % ms == 0:
            return f"{step // ms}{unit}"
    raise DataError(f"cannot infer the timeframe: the candles are {step} ms apart")


def resolve_timeframe(candles: pd.DataFrame, timeframe: str | None) -> str:
    """``timeframe`` checked against the candles' own spacing, or inferred from it when None.

    A mismatch raises: 5m candles treated as 1h would annualise Sharpe and volatility with the wrong
    number of bars per year and run the gap rule and the cool-down on the wrong clock.
    """
    inferred = infer_timeframe(candles.index)
    if timeframe is None:
        return inferred
    if parse_timeframe(timeframe).ms != parse_timeframe(inferred).ms:
        raise DataError(f"timeframe={timeframe!r} but the candles are {inferred} apart; pass timeframe="
                        f"{inferred!r} (or leave it out: it is inferred from the index)")
    return timeframe


def run_hash(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
# Result
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestResult:
    """One run: trades, equity curve (at each bar's close), metrics and what produced them."""

    symbol: str
    timeframe: str
    strategy: str
    params: dict[str, Any]
    options: BacktestOptions
    trades: pd.DataFrame
    equity: pd.Series
    stats: dict[str, Any]
    settings_hash: str
    market: Market | None = None
    candles: pd.DataFrame | None = field(default=None, repr=False)

    def risk_lines(self) -> list[str]:
        """Which risk limits the run applied, and how many times each one bound."""
        lines = [f"risk: {self.options.risk_description()}"]
        if self.options.risk is None:
            return lines
        s = self.stats
        bound = [(name, s.get(name, 0)) for name in (
            "refused_kill_switch", "refused_max_positions", "refused_cool_down", "exits_refused_kill_switch",
            "capped_loss_per_trade", "capped_position_quote")]
        said = ", ".join(f"{name} {count}x" for name, count in bound if count) or "none"
        lines.append(f"risk limits bound: {said}")
        if s.get("kill_switch_bar", -1) >= 0:
            when = self.equity.index[int(s["kill_switch_bar"])]
            lines.append(f"kill-switch tripped at the bar of {when} and stayed on (no operator in a backtest)")
        return lines

    def summary(self) -> str:
        """The headline metrics, the risk preset and what bound, as printable lines."""
        s = self.stats
        keys = ("start", "end", "bars", "final_equity", "total_return", "cagr", "sharpe", "max_drawdown", "n_trades",
                "win_rate", "profit_factor", "exposure", "fees_paid", "refused_filters", "refused_risk", "refused_gap")
        lines = [f"{self.strategy} {self.params} on {self.symbol} {self.timeframe}"]
        lines += [f"{k:<16} {s[k]:.6g}" if isinstance(s[k], float) else f"{k:<16} {s[k]}" for k in keys]
        return "\n".join(lines + self.risk_lines())

    def __str__(self) -> str:
        return self.summary()

    def plot(self) -> Any:
        """A plotly figure: price with entries and exits, equity, drawdown (``.show()`` it)."""
        from thunes.backtest.report import figure

        return figure(self)

    @property
    def positions(self) -> pd.Series:
        """Signed position size (base units) held at each bar's close."""
        pos = np.zeros(len(self.equity))
        for row in self.trades.itertuples(index=False):
            end = len(pos) if row.exit_reason == "open" else int(row.exit_bar)
            pos[int(row.entry_bar):end] += row.qty * (1 if row.side == "long" else -1)
        return pd.Series(pos, index=self.equity.index, name="position")


def records_to_trades(records: np.ndarray, index: pd.DatetimeIndex, symbols: list[str]) -> pd.DataFrame:
    """Kernel trade records -> the trade DataFrame (columns :data:`TRADE_COLUMNS`)."""
    if records.shape[0] == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(TRADE_COLUMNS, (
            "object", "datetime64[ns, UTC]", "datetime64[ns, UTC]", "object", "float64", "float64", "float64",
            "float64", "float64", "float64", "object", "int64", "int64"))})
    entry_bar = records[:, K.R_ENTRY_BAR].astype(np.int64)
    exit_bar = records[:, K.R_EXIT_BAR].astype(np.int64)
    reason = np.array(K.REASON_NAMES, dtype=object)[records[:, K.R_REASON].astype(np.int64)]
    exit_ts = pd.Series(index[exit_bar], dtype="datetime64[ns, UTC]")
    exit_ts[reason == "open"] = pd.NaT
    side = np.where(records[:, K.R_SIDE] > 0, "long", "short").astype(object)
    qty = records[:, K.R_QTY]
    entry_price = records[:, K.R_ENTRY_PRICE]
    pnl = records[:, K.R_PNL]
    return pd.DataFrame({
        "symbol": np.array(symbols, dtype=object)[records[:, K.R_COL].astype(np.int64)],
        "entry_ts": pd.Series(index[entry_bar], dtype="datetime64[ns, UTC]"),
        "exit_ts": exit_ts,
        "side": side,
        "qty": qty,
        "entry_price": entry_price,
        "exit_price": records[:, K.R_EXIT_PRICE],
        "pnl": pnl,
        "return_pct": pnl / (qty * entry_price) * 100.0,
        "fees": records[:, K.R_ENTRY_FEE] + records[:, K.R_EXIT_FEE],
        "exit_reason": reason,
        "entry_bar": entry_bar,
        "exit_bar": exit_bar,
    })
