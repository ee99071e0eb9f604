"""Numba kernels of the backtester: one bar loop, shared by single runs and sweeps.

The single-symbol loop (:func:`simulate`) and the portfolio loop (:func:`simulate_portfolio`) are
built from the same inlined blocks (fill prices, stop levels, triggers, trade booking, equity
statistics), so a one-symbol portfolio reproduces a single run bit for bit, and
:mod:`thunes.backtest.metrics` uses the same per-bar equity step as the kernels.

Conventions (documented in docs/backtest.md and tested in tests/backtest):

* Signals are decided at bar t's close and executed at bar t+1's open; a signal on the last bar
  never trades. The kernels, not the strategies, apply this shift.
* At each bar's open, in this order: a stop (or take-profit) that the open gapped through (filled at
  the open); the pending exit signal; the pending entry.
* Risk limits take the decisions of :class:`thunes.execution.risk.RiskManager`, rule for rule and in
  its order (kill-switch, one position per symbol, ``max_positions``, cool-down, size caps):

  - the kill-switch trips when the UTC day's realised PnL plus the open positions' unrealised PnL
    reaches ``-max_daily_loss``, checked after every realised trade and at every bar's close (the
    trader marks its positions at each close). Once on it stays on for the rest of the run: live,
    only an operator switches it off, and a backtest has none. While it is on every order is refused,
    entries and signal exits alike (HALTED: nothing goes out); a stop or take-profit, a resting
    exchange order, still fills;
  - a losing trade starts a cool-down of ``cool_down_minutes`` from its exit time (the end of the
    bar for a stop hit inside it), a winning trade clears it, a flat one leaves it as it was;
    an entry whose fill time is before its end is refused;
  - the quantity is capped so that the loss at the stop is at most ``max_loss_per_trade`` (the stop
    being ``stop_loss`` or, when none is set, ``default_stop_pct``, which sizes the trade but is not
    placed: the trader places no stop) and the notional at most ``max_position_quote``.

  Every refusal and every cap that bound is counted per rule in the statistics (``S_REFUSED_*``,
  ``S_CAPPED_*``).
* Inside the bar (the entry bar included) the stop/trailing stop is checked before the take-profit:
  when the low and the high hit both, the stop wins (pessimistic). The trailing stop's peak is
  updated with the bar's high *after* the checks, so a bar never raises its own trailing stop.
* Market orders (entries, signal exits, stops) pay the taker fee and slippage; a take-profit is a
  resting limit order: maker fee, no slippage, filled at its price (or at the open if it gapped).
* Quantities are rounded down to the lot step; an order under the minimum quantity or notional is
  refused (counted in stats), never rounded up.
* ``gap[i]`` True refuses an entry filled at bar i (counted apart from the risk refusals): the
  Python side sets it where the signal's window, bars t-warmup+1..t, or the step from t to the fill
  bar i = t+1 spans a hole in the candles, or where the strategy vetoed bar t's entry
  (``Signals.refuse_entries``). Exits are never refused.

Parameters travel in one float64 vector ``p`` (indices ``P_*``) to keep signatures short; the
Python side (prepared.py, :func:`options_vector`) builds it from ``BacktestOptions``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from thunes.features._kernels import rolling_std_1d as _rolling_std_1d

# -- parameter vector --------------------------------------------------------------------------
P_INIT_CASH = 0
P_TAKER = 1  # fee rate (fraction)
P_MAKER = 2
P_SLIP_KIND = 3  # 0 fixed, 1 volatility-scaled, 2 volume-scaled
P_SLIP_BASE = 4  # fraction
P_SLIP_K = 5
P_SIZE_KIND = 6  # 0 fixed quote, 1 fraction of equity, 2 volatility target
P_SIZE_VALUE = 7
P_SL = 8  # fraction, 0 = none
P_TP = 9
P_TSL = 10
P_ALLOW_SHORT = 11
P_RISK_ON = 12
P_MAX_POS_QUOTE = 13  # 0 = no cap
P_MAX_DAILY_LOSS = 14
P_MAX_LOSS_TRADE = 15
P_COOLDOWN_MS = 16
P_STEP = 17
P_MIN_QTY = 18
P_MIN_NOTIONAL = 19
P_TICK = 20
P_GAP_REFUSE = 21
P_MAX_POSITIONS = 22
P_BARS_PER_YEAR = 23
P_TF_MS = 24
P_RISK_STOP = 25  # stop distance (fraction) the per-trade loss cap sizes with; not a placed stop
P_FEE_IN_BASE = 26  # 1: a buy's fee is taken in the base asset and the unsellable remainder written off
N_PARAMS = 27

# -- trade records -----------------------------------------------------------------------------
R_COL = 0
R_ENTRY_BAR = 1
R_EXIT_BAR = 2
R_SIDE = 3
R_QTY = 4
R_ENTRY_PRICE = 5
R_EXIT_PRICE = 6
R_ENTRY_FEE = 7
R_EXIT_FEE = 8
R_PNL = 9
R_REASON = 10
N_REC = 11

REASON_SIGNAL = 0
REASON_STOP = 1
REASON_TAKE_PROFIT = 2
REASON_TRAILING = 3
REASON_OPEN = 4
REASON_NAMES = ("signal", "stop_loss", "take_profit", "trailing_stop", "open")

# -- streaming statistics ------------------------------------------------------------------------
S_FINAL_EQUITY = 0
S_N_CLOSED = 1
S_N_WINS = 2
S_GROSS_PROFIT = 3
S_GROSS_LOSS = 4
S_FEES = 5
S_MAX_DD = 6
S_MAX_DD_BARS = 7
S_SUM_R = 8
S_SUM_R2 = 9
S_SUM_DOWN_R2 = 10
S_EXPOSURE_BARS = 11
S_TURNOVER = 12
S_REFUSED_FILTERS = 13
S_REFUSED_RISK = 14
S_HOLD_BARS = 15
S_N_BARS = 16
S_OPEN_TRADE = 17
S_REFUSED_GAP = 18
S_REFUSED_KILL = 19  # entries refused by the kill-switch
S_REFUSED_COOL = 20  # entries refused by the cool-down
S_REFUSED_MAXPOS = 21  # entries refused by max_positions (portfolio)
S_EXIT_REFUSED_KILL = 22  # signal exits refused by the kill-switch
S_CAPPED_LOSS = 23  # entries made smaller by max_loss_per_trade
S_CAPPED_QUOTE = 24  # entries made smaller by max_position_quote
S_KILL_BAR = 25  # bar at whose close (or open) the kill-switch tripped, -1 when it did not
N_STATS = 26

DAY_MS = 86_400_000


# -- per-symbol exchange filters (portfolio) -------------------------------------------------------
F_STEP = 0
F_MIN_QTY = 1
F_MIN_NOTIONAL = 2
F_TICK = 3


# ------------------------------------------------------------------------------------------------
# Building blocks shared by the single-symbol and the portfolio loops (inlined: no call cost)
# ------------------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _slip(p, notional, vol_t, volume_t, price_t):
    """Slippage fraction of a market order of ``notional`` quote, from the signal bar's data."""
    kind = p[P_SLIP_KIND]
    s = p[P_SLIP_BASE]
    if kind == 1.0:
        if vol_t == vol_t:
            s += p[P_SLIP_K] * vol_t
    elif kind == 2.0:
        liquidity = volume_t * price_t
        if liquidity > 0.0:
            s += p[P_SLIP_K] * notional / liquidity
    return s


@njit(cache=True, inline="always")
def _units(k, unit):
    """``k`` ticks or lots of ``unit`` as the float nearest the decimal value.

    Binance units are powers of ten; dividing by the exact integer 1/unit gives the correctly rounded
    float (592 / 100000 is 0.00592), where multiplying by the inexact unit does not
    (592 * 0.00001 is 0.005920000000000001, which would then show in every trade list).
    """
    inv = 1.0 / unit
    whole = math.floor(inv + 0.5)
    if whole >= 1.0 and abs(inv - whole) < 1e-9 * whole:
        return k / whole
    return k * unit


@njit(cache=True, inline="always")
def _round_px(px, tick, up):
    """Round a price to the tick: buys round up, sells down (never in the trader's favour)."""
    if tick > 0.0:
        if up:
            return _units(math.ceil(px / tick - 1e-9), tick)
        return _units(math.floor(px / tick + 1e-9), tick)
    return px


@njit(cache=True, inline="always")
def _market_px(p, side, ref, notional, vol_t, volume_t, close_t, tick):
    """Fill price of a market order (``side`` +1 buys, -1 sells) at reference ``ref`` after slippage."""
    s = _slip(p, notional, vol_t, volume_t, close_t)
    if side > 0.0:
        return _round_px(ref * (1.0 + s), tick, True)
    return _round_px(ref * (1.0 - s), tick, False)


@njit(cache=True)
def _target_notional(p, equity, cash, vol_t, scale):
    """Quote amount to put in a new position, after sizing and the risk caps (not yet rounded), and
    which risk cap bound (0 none, 1 ``max_position_quote``, 2 ``max_loss_per_trade``)."""
    kind = p[P_SIZE_KIND]
    if kind == 0.0:
        n = p[P_SIZE_VALUE]
    elif kind == 1.0:
        n = p[P_SIZE_VALUE] * equity
    else:
        if not (vol_t > 0.0):
            return 0.0, 0
        n = equity * p[P_SIZE_VALUE] / (vol_t * math.sqrt(p[P_BARS_PER_YEAR]))
        if n > equity:
            n = equity
    n *= scale
    bound = 0
    if p[P_RISK_ON] > 0.0:
        if p[P_MAX_POS_QUOTE] > 0.0 and n > p[P_MAX_POS_QUOTE]:
            n = p[P_MAX_POS_QUOTE]
            bound = 1
        if p[P_RISK_STOP] > 0.0 and p[P_MAX_LOSS_TRADE] > 0.0:
            cap = p[P_MAX_LOSS_TRADE] / p[P_RISK_STOP]
            if n > cap:
                n = cap
                bound = 2
    limit = cash / (1.0 + p[P_TAKER])
    if n > limit:
        n = limit
    return n, bound


@njit(cache=True, inline="always")
def _entry_qty(notional, px, step, min_qty, min_notional):
    """Quantity rounded down to the lot step; 0 when the exchange would refuse it (never rounded up)."""
    q = 0.0
    if px > 0.0:
        q = notional / px
        if step > 0.0:
            q = _units(math.floor(q / step + 1e-9), step)
    if q <= 0.0 or q < min_qty or q * px < min_notional:
        return 0.0
    return q


@njit(cache=True, inline="always")
def _levels(side, px, sl, tp, tsl):
    """(stop, take-profit) levels of a position opened at ``px`` (0 = none); the tighter stop wins."""
    if side > 0.0:
        stop = px * (1.0 - sl) if sl > 0.0 else 0.0
        if tsl > 0.0 and px * (1.0 - tsl) > stop:
            stop = px * (1.0 - tsl)
        return stop, (px * (1.0 + tp) if tp > 0.0 else 0.0)
    stop = px * (1.0 + sl) if sl > 0.0 else 0.0
    if tsl > 0.0 and (stop == 0.0 or px * (1.0 + tsl) < stop):
        stop = px * (1.0 + tsl)
    return stop, (px * (1.0 - tp) if tp > 0.0 else 0.0)


@njit(cache=True, inline="always")
def _stop_reason(pos, extreme, stop, tsl):
    """Whether the stop that triggered is the trailing stop (it has moved to or past the fixed one)."""
    if tsl > 0.0 and ((pos > 0.0 and extreme * (1.0 - tsl) >= stop - 1e-12)
                      or (pos < 0.0 and extreme * (1.0 + tsl) <= stop + 1e-12)):
        return REASON_TRAILING
    return REASON_STOP


@njit(cache=True, inline="always")
def _open_trigger(pos, o, stop, tp_lvl, extreme, tp, tsl):
    """A stop or take-profit the open gapped through (filled at the open): its reason, or -1."""
    if stop > 0.0 and ((pos > 0.0 and o <= stop) or (pos < 0.0 and o >= stop)):
        return _stop_reason(pos, extreme, stop, tsl)
    if tp > 0.0 and ((pos > 0.0 and o >= tp_lvl) or (pos < 0.0 and o <= tp_lvl)):
        return REASON_TAKE_PROFIT
    return -1


@njit(cache=True, inline="always")
def _bar_trigger(pos, h, lo, stop, tp_lvl, extreme, tp, tsl):
    """Inside the bar the stop is checked first: when the range hits both, the stop wins (pessimistic)."""
    if pos > 0.0:
        if stop > 0.0 and lo <= stop:
            return _stop_reason(pos, extreme, stop, tsl)
        if tp > 0.0 and h >= tp_lvl:
            return REASON_TAKE_PROFIT
    else:
        if stop > 0.0 and h >= stop:
            return _stop_reason(pos, extreme, stop, tsl)
        if tp > 0.0 and lo <= tp_lvl:
            return REASON_TAKE_PROFIT
    return -1


@njit(cache=True, inline="always")
def _trail(pos, h, lo, extreme, stop, tsl):
    """Ratchet the trailing stop with the bar's high (low for shorts), after the bar's checks."""
    if pos > 0.0:
        if h > extreme:
            extreme = h
            lvl = h * (1.0 - tsl)
            if lvl > stop:
                stop = lvl
    elif lo < extreme:
        extreme = lo
        lvl = lo * (1.0 + tsl)
        if lvl < stop:
            stop = lvl
    return extreme, stop


@njit(cache=True, inline="always")
def _record(records, n_rec, col, entry_bar, exit_bar, pos, entry_px, exit_px, entry_fee, exit_fee, pnl, reason):
    if records.shape[0] > 0:
        r = records[n_rec]
        r[R_COL] = col
        r[R_ENTRY_BAR] = entry_bar
        r[R_EXIT_BAR] = exit_bar
        r[R_SIDE] = 1.0 if pos > 0.0 else -1.0
        r[R_QTY] = abs(pos)
        r[R_ENTRY_PRICE] = entry_px
        r[R_EXIT_PRICE] = exit_px
        r[R_ENTRY_FEE] = entry_fee
        r[R_EXIT_FEE] = exit_fee
        r[R_PNL] = pnl
        r[R_REASON] = reason


@njit(cache=True, inline="always")
def _open(stats, side, q, px, fee_rate, fee_in_base):
    """Book an entry fill of ``q`` into the statistics; returns (cash change, fee in quote, quantity held).

    ``fee_in_base`` (Binance spot, without BNB fees): a buy's fee is taken in the base asset, so the
    position holds ``q × (1 - fee_rate)`` coins and no quote is charged."""
    fee = q * px * fee_rate
    stats[S_FEES] += fee
    stats[S_TURNOVER] += q * px
    if side > 0.0:
        if fee_in_base:
            return -(q * px), fee, q * (1.0 - fee_rate)
        return -(q * px + fee), fee, q
    return q * px - fee, fee, q


@njit(cache=True, inline="always")
def _close(stats, records, n_rec, col, pos, px, fee_rate, entry_px, entry_fee, entry_bar, i, reason, dust_step):
    """Book closing ``pos`` at ``px``: statistics, and a trade record when kept. Returns (cash change, pnl).

    ``dust_step`` > 0 (fees in base): a long sells its holding rounded down to the lot step; the
    remainder cannot be sold and is written off, as the live risk manager books it (``close_dust``)."""
    q = abs(pos)
    sold = q
    if pos > 0.0 and dust_step > 0.0:
        sold = _units(math.floor(q / dust_step + 1e-9), dust_step)
    fee = sold * px * fee_rate
    if pos > 0.0:
        cash = sold * px - fee
        pnl = cash - (q * entry_px + entry_fee)
    else:
        cash = -(q * px + fee)
        pnl = (entry_px - px) * q - entry_fee - fee
    stats[S_FEES] += fee
    stats[S_TURNOVER] += sold * px
    stats[S_N_CLOSED] += 1.0
    stats[S_HOLD_BARS] += i - entry_bar
    if pnl > 0.0:
        stats[S_N_WINS] += 1.0
        stats[S_GROSS_PROFIT] += pnl
    else:
        stats[S_GROSS_LOSS] -= pnl
    _record(records, n_rec, col, entry_bar, i, pos, entry_px, px, entry_fee, fee, pnl, reason)
    return cash, pnl


@njit(cache=True, inline="always")
def _cool_until(pnl, cool_until, free_from, p):
    """A loss starts the cool-down (from ``free_from``, when the exit is known to be done); a win clears it."""
    if pnl > 0.0:
        return -1
    if pnl < 0.0:
        return free_from + int(p[P_COOLDOWN_MS])
    return cool_until


@njit(cache=True, inline="always")
def _count_cap(stats, bound):
    if bound == 1:
        stats[S_CAPPED_QUOTE] += 1.0
    elif bound == 2:
        stats[S_CAPPED_LOSS] += 1.0


@njit(cache=True, inline="always")
def equity_state(initial_cash):
    """Streaming equity statistics before the first bar: (previous equity, peak, index of the peak,
    sum of returns, of squared returns, of squared negative returns, max drawdown, its duration)."""
    return initial_cash, initial_cash, 0, 0.0, 0.0, 0.0, 0.0, 0.0


@njit(cache=True, inline="always")
def mark_equity(state, eq, i):
    """``state`` after bar ``i`` closes with equity ``eq`` (returns, downside, drawdown and its duration).

    Shared with :func:`thunes.backtest.metrics.compute_metrics`, so a sweep's numbers are a single
    run's to the last bit.
    """
    prev, peak, dd_start, sum_r, sum_r2, sum_d2, max_dd, max_dd_bars = state
    if eq != prev:
        r = eq / prev - 1.0
        sum_r += r
        sum_r2 += r * r
        d = min(r, 0.0)  # branch-free: a sign test on every bar mispredicted half the time
        sum_d2 += d * d
    if eq > peak:
        peak = eq
        dd_start = i
    else:
        dd = 1.0 - eq / peak
        if dd > max_dd:
            max_dd = dd
        if i - dd_start > max_dd_bars:
            max_dd_bars = float(i - dd_start)
    return eq, peak, dd_start, sum_r, sum_r2, sum_d2, max_dd, max_dd_bars


@njit(cache=True, inline="always")
def _finish(stats, state, exposure, n, n_open):
    stats[S_FINAL_EQUITY] = state[0]
    stats[S_SUM_R] = state[3]
    stats[S_SUM_R2] = state[4]
    stats[S_SUM_DOWN_R2] = state[5]
    stats[S_MAX_DD] = state[6]
    stats[S_MAX_DD_BARS] = state[7]
    stats[S_EXPOSURE_BARS] = exposure
    stats[S_N_BARS] = n
    stats[S_OPEN_TRADE] = n_open


def is_lean(p):
    """``True`` when the parameter vector uses no risk limits, stops or shorts, else None (the ``lean``
    argument of :func:`simulate`)."""
    off = (P_RISK_ON, P_SL, P_TP, P_TSL, P_ALLOW_SHORT)
    return True if all(p[k] == 0.0 for k in off) else None


# ------------------------------------------------------------------------------------------------
# One symbol
# ------------------------------------------------------------------------------------------------
@njit(cache=True)
def simulate(open_, high, low, close, volume, vol, gap, ts, entries, exits, short_entries, short_exits,
             scale, p, records, equity_out, stats, lean=None):
    """Backtest one instrument. Returns the number of trade records written (open trade included).

    ``records`` may have zero rows (sweeps: statistics only) and ``equity_out`` zero length.
    ``lean=True`` (see :func:`is_lean`) promises no risk limits, stops or shorts: numba then compiles
    a variant without that code (its type differs from None's, so the flags below are compile-time
    constants), a fifth faster for research runs and sweeps; the results are the same.
    """
    full = lean is None
    n = close.shape[0]
    write_eq = equity_out.shape[0] > 0
    taker = p[P_TAKER]
    maker = p[P_MAKER]
    sl = p[P_SL]
    tp = p[P_TP]
    tsl = p[P_TSL]
    tick = p[P_TICK]
    allow_short = full and p[P_ALLOW_SHORT] > 0.0
    risk_on = full and p[P_RISK_ON] > 0.0
    gap_refuse = p[P_GAP_REFUSE] > 0.0  # one test per entry: not worth a variant
    fee_in_base = p[P_FEE_IN_BASE] > 0.0
    dust = p[P_STEP] if fee_in_base else 0.0
    has_stops = full and (sl > 0.0 or tp > 0.0 or tsl > 0.0)
    stats[:] = 0.0

    cash = p[P_INIT_CASH]
    pos = 0.0  # signed quantity
    entry_px = 0.0
    entry_fee = 0.0
    entry_bar = -1
    stop_lvl = 0.0
    tp_lvl = 0.0
    extreme = 0.0  # peak (long) / trough (short) for the trailing stop
    n_rec = 0

    realised_today = 0.0
    prev_day = ts[0] // DAY_MS if n > 0 else 0
    killed = False
    stats[S_KILL_BAR] = -1.0
    cool_until = -1  # epoch ms; entries refused before it
    tf_ms = int(p[P_TF_MS])

    eq_state = equity_state(cash)
    exposure = 0.0
    skip_to = 0

    for i in range(n):
        if i < skip_to:
            continue
        if pos == 0.0 and i > 0:
            # Flat with no entry pending: until the next entry signal nothing can happen but the
            # equity (= cash) repeating and the drawdown lasting. Jump there: marking the last idle
            # bar once gives the statistics marking each would (eq equals the previous close's).
            j = i
            while j < n and not (entries[j - 1] or (allow_short and short_entries[j - 1])):
                j += 1
            if j > i:
                if write_eq:
                    equity_out[i:j] = cash
                eq_state = mark_equity(eq_state, cash, j - 1)
                skip_to = j
                continue
        o = open_[i]
        if risk_on:  # the day's PnL restarts each UTC day (the kill-switch does not)
            d = ts[i] // DAY_MS
            if d != prev_day:
                prev_day = d
                realised_today = 0.0
        t = i - 1  # the signal bar
        # ---------------------------------------------------------------- exit at the open
        if pos != 0.0 and i > 0:
            reason = _open_trigger(pos, o, stop_lvl, tp_lvl, extreme, tp, tsl) if has_stops else -1
            if reason < 0 and ((pos > 0.0 and (exits[t] or short_entries[t]))
                               or (pos < 0.0 and (short_exits[t] or entries[t]))):
                reason = REASON_SIGNAL
                if risk_on and killed:  # HALTED: the exit order is refused, the position stays
                    stats[S_EXIT_REFUSED_KILL] += 1.0
                    reason = -1
            if reason >= 0:
                if reason == REASON_TAKE_PROFIT:
                    cash_change, pnl = _close(stats, records, n_rec, 0.0, pos, o, maker, entry_px, entry_fee,
                                              entry_bar, i, reason, dust)
                else:
                    px = _market_px(p, -pos, o, abs(pos) * o, vol[t], volume[t], close[t], tick)
                    cash_change, pnl = _close(stats, records, n_rec, 0.0, pos, px, taker, entry_px, entry_fee,
                                              entry_bar, i, reason, dust)
                cash += cash_change
                realised_today += pnl
                cool_until = _cool_until(pnl, cool_until, ts[i], p)
                n_rec += 1
                pos = 0.0
                if risk_on and not killed and realised_today <= -p[P_MAX_DAILY_LOSS]:
                    killed = True  # the risk manager checks on every fill
                    stats[S_KILL_BAR] = i
        # ---------------------------------------------------------------- entry at the open
        if pos == 0.0 and i > 0:
            side = 0.0
            if entries[t] and not exits[t]:
                side = 1.0
            elif allow_short and short_entries[t] and not short_exits[t]:
                side = -1.0
            if side != 0.0:
                if gap_refuse and gap[i]:
                    stats[S_REFUSED_GAP] += 1.0
                elif risk_on and killed:
                    stats[S_REFUSED_RISK] += 1.0
                    stats[S_REFUSED_KILL] += 1.0
                elif risk_on and p[P_MAX_POSITIONS] < 1.0:
                    stats[S_REFUSED_RISK] += 1.0
                    stats[S_REFUSED_MAXPOS] += 1.0
                elif risk_on and ts[i] < cool_until:
                    stats[S_REFUSED_RISK] += 1.0
                    stats[S_REFUSED_COOL] += 1.0
                else:
                    notional, bound = _target_notional(p, cash, cash, vol[t], scale[t])
                    px = _market_px(p, side, o, notional, vol[t], volume[t], close[t], tick)
                    q = _entry_qty(notional, px, p[P_STEP], p[P_MIN_QTY], p[P_MIN_NOTIONAL])
                    if q == 0.0:
                        stats[S_REFUSED_FILTERS] += 1.0
                    else:
                        _count_cap(stats, bound)
                        cash_change, entry_fee, held = _open(stats, side, q, px, taker, fee_in_base)
                        cash += cash_change
                        pos = side * held
                        entry_px = px
                        entry_bar = i
                        extreme = px
                        stop_lvl, tp_lvl = _levels(side, px, sl, tp, tsl)
        # ---------------------------------------------------------------- inside the bar
        if pos != 0.0 and has_stops:
            h = high[i]
            lo = low[i]
            reason = _bar_trigger(pos, h, lo, stop_lvl, tp_lvl, extreme, tp, tsl)
            if reason == REASON_TAKE_PROFIT:
                cash_change, pnl = _close(stats, records, n_rec, 0.0, pos, tp_lvl, maker, entry_px, entry_fee,
                                          entry_bar, i, reason, dust)
            elif reason >= 0:  # a position exists only from bar 1 on, so t >= 0
                px = _market_px(p, -pos, stop_lvl, abs(pos) * stop_lvl, vol[t], volume[t], close[t], tick)
                cash_change, pnl = _close(stats, records, n_rec, 0.0, pos, px, taker, entry_px, entry_fee,
                                          entry_bar, i, reason, dust)
            elif tsl > 0.0:
                extreme, stop_lvl = _trail(pos, h, lo, extreme, stop_lvl, tsl)
            if reason >= 0:
                cash += cash_change
                realised_today += pnl
                # The stop filled somewhere inside the bar: count the cool-down from its end.
                cool_until = _cool_until(pnl, cool_until, ts[i] + tf_ms, p)
                n_rec += 1
                pos = 0.0
        # ---------------------------------------------------------------- at the close
        c = close[i]
        eq = cash + pos * c
        if pos != 0.0:
            exposure += 1.0
        if write_eq:
            equity_out[i] = eq
        eq_state = mark_equity(eq_state, eq, i)
        if risk_on and not killed:
            # The close is marked at the bar's end time: a bar ending at midnight belongs to the new day.
            d = (ts[i] + tf_ms) // DAY_MS
            if d != prev_day:
                prev_day = d
                realised_today = 0.0
            unrealised = (c - entry_px) * pos - entry_fee if pos != 0.0 else 0.0
            if realised_today + unrealised <= -p[P_MAX_DAILY_LOSS]:
                killed = True
                stats[S_KILL_BAR] = i

    # ---------------------------------------------------------------- the trade still open
    if pos != 0.0:
        c = close[n - 1]
        _record(records, n_rec, 0.0, entry_bar, n - 1, pos, entry_px, c, entry_fee, 0.0,
                (c - entry_px) * pos - entry_fee, REASON_OPEN)
        n_rec += 1
        stats[S_HOLD_BARS] += n - entry_bar
    _finish(stats, eq_state, exposure, n, 1.0 if pos != 0.0 else 0.0)
    return n_rec


# ------------------------------------------------------------------------------------------------
# Portfolio: several symbols, one cash balance
# ------------------------------------------------------------------------------------------------
@njit(cache=True)
def simulate_portfolio(open_, high, low, close, volume, vol, gap, ts, entries, exits, short_entries, short_exits,
                       scale, p, filt, records, equity_out, stats):
    """Bar-major loop over (bars, symbols) arrays with one cash balance (NaN rows: symbol not trading).

    Same rules as :func:`simulate` (one symbol gives identical results), plus: at each open all exits
    are executed before any entry (freed cash is available), entries go in symbol order, and
    ``max_positions`` caps open positions. A symbol's pending signal is the one of its own previous
    bar. Returns the number of trade records.
    """
    n, k = close.shape
    taker = p[P_TAKER]
    maker = p[P_MAKER]
    sl = p[P_SL]
    tp = p[P_TP]
    tsl = p[P_TSL]
    allow_short = p[P_ALLOW_SHORT] > 0.0
    risk_on = p[P_RISK_ON] > 0.0
    gap_refuse = p[P_GAP_REFUSE] > 0.0
    has_stops = sl > 0.0 or tp > 0.0 or tsl > 0.0
    max_positions = int(p[P_MAX_POSITIONS]) if risk_on else k
    fee_in_base = p[P_FEE_IN_BASE] > 0.0
    dust = np.zeros(k)
    if fee_in_base:
        for j in range(k):
            dust[j] = filt[j, F_STEP]
    stats[:] = 0.0

    cash = p[P_INIT_CASH]
    pos = np.zeros(k)
    epx = np.zeros(k)
    efee = np.zeros(k)
    ebar = np.zeros(k, dtype=np.int64)
    stop = np.zeros(k)
    tpl = np.zeros(k)
    ext = np.zeros(k)
    last_close = np.full(k, np.nan)
    prev_bar = np.full(k, -1, dtype=np.int64)
    n_rec = 0
    n_open = 0
    realised_today = 0.0
    prev_day = ts[0] // DAY_MS if n > 0 else 0
    killed = False
    stats[S_KILL_BAR] = -1.0
    cool_until = -1
    tf_ms = int(p[P_TF_MS])
    eq_state = equity_state(cash)
    exposure = 0.0

    for i in range(n):
        if risk_on:
            d = ts[i] // DAY_MS
            if d != prev_day:
                prev_day = d
                realised_today = 0.0
        # ------------------------------------------------------------ exits at the open
        for j in range(k):
            o = open_[i, j]
            t = prev_bar[j]
            if pos[j] == 0.0 or t < 0 or not (o == o):
                continue
            reason = _open_trigger(pos[j], o, stop[j], tpl[j], ext[j], tp, tsl) if has_stops else -1
            if reason < 0 and ((pos[j] > 0.0 and (exits[t, j] or short_entries[t, j]))
                               or (pos[j] < 0.0 and (short_exits[t, j] or entries[t, j]))):
                reason = REASON_SIGNAL
                if risk_on and killed:  # HALTED: the exit order is refused, the position stays
                    stats[S_EXIT_REFUSED_KILL] += 1.0
                    continue
            if reason < 0:
                continue
            if reason == REASON_TAKE_PROFIT:
                cash_change, pnl = _close(stats, records, n_rec, j, pos[j], o, maker, epx[j], efee[j], ebar[j],
                                          i, reason, dust[j])
            else:
                px = _market_px(p, -pos[j], o, abs(pos[j]) * o, vol[t, j], volume[t, j], close[t, j],
                                filt[j, F_TICK])
                cash_change, pnl = _close(stats, records, n_rec, j, pos[j], px, taker, epx[j], efee[j], ebar[j],
                                          i, reason, dust[j])
            cash += cash_change
            realised_today += pnl
            cool_until = _cool_until(pnl, cool_until, ts[i], p)
            n_rec += 1
            pos[j] = 0.0
            n_open -= 1
            if risk_on and not killed:  # the risk manager checks on every fill, open positions at their marks
                unrealised = 0.0
                for m in range(k):
                    if pos[m] != 0.0:
                        unrealised += (last_close[m] - epx[m]) * pos[m] - efee[m]
                if realised_today + unrealised <= -p[P_MAX_DAILY_LOSS]:
                    killed = True
                    stats[S_KILL_BAR] = i
        # ------------------------------------------------------------ entries at the open
        for j in range(k):
            o = open_[i, j]
            t = prev_bar[j]
            if pos[j] != 0.0 or t < 0 or not (o == o):
                continue
            side = 0.0
            if entries[t, j] and not exits[t, j]:
                side = 1.0
            elif allow_short and short_entries[t, j] and not short_exits[t, j]:
                side = -1.0
            if side == 0.0:
                continue
            if gap_refuse and gap[i, j]:
                stats[S_REFUSED_GAP] += 1.0
                continue
            if risk_on and (killed or n_open >= max_positions or ts[i] < cool_until):
                # The risk manager's order: kill-switch, then max_positions, then cool-down.
                stats[S_REFUSED_RISK] += 1.0
                if killed:
                    stats[S_REFUSED_KILL] += 1.0
                elif n_open >= max_positions:
                    stats[S_REFUSED_MAXPOS] += 1.0
                else:
                    stats[S_REFUSED_COOL] += 1.0
                continue
            equity = cash
            for m in range(k):
                if pos[m] != 0.0:
                    mark = open_[i, m] if open_[i, m] == open_[i, m] else last_close[m]
                    equity += pos[m] * mark
            notional, bound = _target_notional(p, equity, cash, vol[t, j], scale[t, j])
            px = _market_px(p, side, o, notional, vol[t, j], volume[t, j], close[t, j], filt[j, F_TICK])
            q = _entry_qty(notional, px, filt[j, F_STEP], filt[j, F_MIN_QTY], filt[j, F_MIN_NOTIONAL])
            if q == 0.0:
                stats[S_REFUSED_FILTERS] += 1.0
                continue
            _count_cap(stats, bound)
            cash_change, efee[j], held = _open(stats, side, q, px, taker, fee_in_base)
            cash += cash_change
            pos[j] = side * held
            n_open += 1
            epx[j] = px
            ebar[j] = i
            ext[j] = px
            stop[j], tpl[j] = _levels(side, px, sl, tp, tsl)
        # ------------------------------------------------------------ inside the bar
        for j in range(k):
            if pos[j] == 0.0 or not has_stops or not (open_[i, j] == open_[i, j]):
                continue
            h = high[i, j]
            lo = low[i, j]
            t = prev_bar[j] if prev_bar[j] >= 0 else i
            reason = _bar_trigger(pos[j], h, lo, stop[j], tpl[j], ext[j], tp, tsl)
            if reason == REASON_TAKE_PROFIT:
                cash_change, pnl = _close(stats, records, n_rec, j, pos[j], tpl[j], maker, epx[j], efee[j],
                                          ebar[j], i, reason, dust[j])
            elif reason >= 0:
                px = _market_px(p, -pos[j], stop[j], abs(pos[j]) * stop[j], vol[t, j], volume[t, j], close[t, j],
                                filt[j, F_TICK])
                cash_change, pnl = _close(stats, records, n_rec, j, pos[j], px, taker, epx[j], efee[j], ebar[j],
                                          i, reason, dust[j])
            elif tsl > 0.0:
                ext[j], stop[j] = _trail(pos[j], h, lo, ext[j], stop[j], tsl)
            if reason >= 0:
                cash += cash_change
                realised_today += pnl
                cool_until = _cool_until(pnl, cool_until, ts[i] + tf_ms, p)
                n_rec += 1
                pos[j] = 0.0
                n_open -= 1
        # ------------------------------------------------------------ at the close
        for j in range(k):
            c = close[i, j]
            if c == c:
                last_close[j] = c
                prev_bar[j] = i
        eq = cash
        unrealised = 0.0
        any_pos = False
        for j in range(k):
            if pos[j] != 0.0:
                any_pos = True
                eq += pos[j] * last_close[j]
                unrealised += (last_close[j] - epx[j]) * pos[j] - efee[j]
        if any_pos:
            exposure += 1.0
        if equity_out.shape[0] > 0:
            equity_out[i] = eq
        eq_state = mark_equity(eq_state, eq, i)
        if risk_on and not killed:
            d = (ts[i] + tf_ms) // DAY_MS  # the close belongs to the day the bar ends in
            if d != prev_day:
                prev_day = d
                realised_today = 0.0
            if realised_today + unrealised <= -p[P_MAX_DAILY_LOSS]:
                killed = True
                stats[S_KILL_BAR] = i

    n_open_end = 0.0
    for j in range(k):
        if pos[j] != 0.0:
            n_open_end += 1.0
            c = last_close[j]
            _record(records, n_rec, j, ebar[j], n - 1, pos[j], epx[j], c, efee[j], 0.0,
                    (c - epx[j]) * pos[j] - efee[j], REASON_OPEN)
            n_rec += 1
            stats[S_HOLD_BARS] += n - ebar[j]
    _finish(stats, eq_state, exposure, n, n_open_end)
    return n_rec


# ------------------------------------------------------------------------------------------------
# Signal kernels fused into sweeps (memory O(bars) per thread, not O(bars x combos))
# ------------------------------------------------------------------------------------------------
@njit(cache=True)
def cross_signals(fast, slow, entries, exits):
    """``crossed_above(fast, slow)`` / ``crossed_below(fast, slow)`` on arrays (NaN never crosses)."""
    n = fast.shape[0]
    entries[0] = False
    exits[0] = False
    for i in range(1, n):
        f = fast[i]
        s = slow[i]
        pf = fast[i - 1]
        ps = slow[i - 1]
        entries[i] = f > s and pf <= ps
        exits[i] = f < s and pf >= ps


@njit(cache=True, parallel=True)
def sweep_cross(open_, high, low, close, volume, vol, gaps, ts, bounds, table, sym_idx, fast_idx, slow_idx,
                gap_idx, p, out_stats, threads, lean=None):
    """One column per (symbol, fast line, slow line): a line-crossing grid (``CrossGrid``) of every
    symbol in one parallel call.

    The symbols' bars are concatenated: symbol ``s`` holds rows ``bounds[s]:bounds[s + 1]`` of the
    bar arrays, of ``table`` (one line per row, e.g. a moving average per distinct period, each
    computed on that symbol's own closes) and of ``gaps`` (the refused-entry flags of one signal window length per
    row, column ``c`` using row ``gap_idx[c]``), and ``p[s]`` is its parameter vector (its exchange
    filters). Each worker
    builds its columns' crossing signals in two boolean buffers allocated once and reused, so memory
    is O(bars x (distinct periods + threads)), not O(bars x combos).
    """
    m = fast_idx.shape[0]
    longest = 0
    for s in range(bounds.shape[0] - 1):
        longest = max(longest, bounds[s + 1] - bounds[s])
    no_short = np.zeros(longest, dtype=np.bool_)
    ones = np.ones(longest, dtype=np.float64)
    no_rec = np.empty((0, N_REC), dtype=np.float64)
    no_eq = np.empty(0, dtype=np.float64)
    workers = max(1, min(m, threads))  # numba.get_num_threads() of the caller (inside, it defeats caching)
    for w in prange(workers):
        entries = np.empty(longest, dtype=np.bool_)
        exits = np.empty(longest, dtype=np.bool_)
        for c in range(w, m, workers):
            s = sym_idx[c]
            lo = bounds[s]
            hi = bounds[s + 1]
            k = hi - lo
            cross_signals(table[fast_idx[c]][lo:hi], table[slow_idx[c]][lo:hi], entries[:k], exits[:k])
            simulate(open_[lo:hi], high[lo:hi], low[lo:hi], close[lo:hi], volume[lo:hi], vol[lo:hi],
                     gaps[gap_idx[c]][lo:hi], ts[lo:hi], entries[:k], exits[:k], no_short[:k], no_short[:k],
                     ones[:k], p[s], no_rec, no_eq, out_stats[c], lean)


@njit(cache=True, parallel=True)
def sweep_columns(open_, high, low, close, volume, vol, gap, ts, entries, exits, short_entries,
                  short_exits, scale, p, out_stats, lean=None):
    """Generic sweep: one row per parameter set, signals and refused-entry flags precomputed as
    (columns, bars) arrays."""
    m = entries.shape[0]
    no_rec = np.empty((0, N_REC), dtype=np.float64)
    no_eq = np.empty(0, dtype=np.float64)
    for c in prange(m):
        simulate(open_, high, low, close, volume, vol, gap[c], ts, entries[c], exits[c],
                 short_entries[c], short_exits[c], scale[c], p, no_rec, no_eq, out_stats[c], lean)


@njit(cache=True)
def window_gap_flags(ts, window, tf_ms):
    """True on bar i when bars max(i - window, 0) .. i are not consecutive candles (the gap rule).

    On sorted, unique open times, bars lo..i are consecutive exactly when ``ts[i] - ts[lo]`` is
    ``(i - lo)`` timeframes. One pass, O(bars), with no temporary arrays (unlike the numpy expression).
    """
    n = ts.shape[0]
    out = np.empty(n, dtype=np.bool_)
    for i in range(n):
        lo = i - window
        if lo < 0:
            lo = 0
        out[i] = ts[i] - ts[lo] > (i - lo) * tf_ms
    return out


@njit(cache=True)
def rolling_return_std(close, window):
    """Causal (population) standard deviation of simple returns over ``window`` bars, NaN until defined.

    The features' rolling-std kernel, which recomputes its sums every 1024 rows: a plain running
    E[r^2] - E[r]^2 drifted along a million-bar series."""
    n = close.shape[0]
    out = np.full(n, np.nan)
    if n < 2:
        return out
    r = close[1:] / close[:-1] - 1.0
    out[1:] = _rolling_std_1d(r, window, 0)
    return out

