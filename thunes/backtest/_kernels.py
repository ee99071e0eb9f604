"""Numba kernels of the backtester: one bar loop, shared by single runs and sweeps.

Conventions (documented in docs/backtest.md and tested in tests/backtest):

* Signals are decided at bar t's close and executed at bar t+1's open; a signal on the last bar
  never trades. The kernels, not the strategies, apply this shift.
* At each bar's open, in this order: a stop (or take-profit) that the open gapped through (filled at
  the open); the pending exit signal; the pending entry.
* Risk limits mirror :class:`thunes.execution.risk.RiskManager`: the kill-switch trips when the UTC
  day's realised PnL plus the open position's unrealised PnL (at a bar's close) reaches
  ``-max_daily_loss`` and refuses entries (exits and stops still work) until the next UTC day (live,
  an operator resets it; a backtest has none); a losing trade starts a cool-down (from its exit
  time), a winning trade clears it; sizing is capped by ``max_loss_per_trade / stop distance`` and
  ``max_position_quote``.
* Inside the bar (the entry bar included) the stop/trailing stop is checked before the take-profit:
  when the low and the high hit both, the stop wins (pessimistic). The trailing stop's peak is
  updated with the bar's high *after* the checks, so a bar never raises its own trailing stop.
* Market orders (entries, signal exits, stops) pay the taker fee and slippage; a take-profit is a
  resting limit order: maker fee, no slippage, filled at its price (or at the open if it gapped).
* Quantities are rounded down to the lot step; an order under the minimum quantity or notional is
  refused (counted in stats), never rounded up.

Parameters travel in one float64 vector ``p`` (indices ``P_*``) to keep signatures short; the
Python side (engine.py) builds it from ``BacktestOptions``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

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
N_PARAMS = 25

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
N_STATS = 18


@njit(cache=True, inline="always")
def _slip(p, notional, vol_t, volume_t, price_t):
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
def _buy_px(p, px):
    tick = p[P_TICK]
    if tick > 0.0:
        return math.ceil(px / tick - 1e-9) * tick
    return px


@njit(cache=True, inline="always")
def _sell_px(p, px):
    tick = p[P_TICK]
    if tick > 0.0:
        return math.floor(px / tick + 1e-9) * tick
    return px


@njit(cache=True, inline="always")
def _round_qty(p, qty):
    step = p[P_STEP]
    if step > 0.0:
        return math.floor(qty / step + 1e-9) * step
    return qty


@njit(cache=True)
def _target_notional(p, equity, cash, vol_t, scale):
    """Quote amount to put in a new position, after sizing and the risk caps (not yet rounded)."""
    kind = p[P_SIZE_KIND]
    if kind == 0.0:
        n = p[P_SIZE_VALUE]
    elif kind == 1.0:
        n = p[P_SIZE_VALUE] * equity
    else:
        if not (vol_t > 0.0):
            return 0.0
        n = equity * p[P_SIZE_VALUE] / (vol_t * math.sqrt(p[P_BARS_PER_YEAR]))
        if n > equity:
            n = equity
    n *= scale
    if p[P_RISK_ON] > 0.0:
        if p[P_MAX_POS_QUOTE] > 0.0 and n > p[P_MAX_POS_QUOTE]:
            n = p[P_MAX_POS_QUOTE]
        if p[P_SL] > 0.0 and p[P_MAX_LOSS_TRADE] > 0.0:
            cap = p[P_MAX_LOSS_TRADE] / p[P_SL]
            if n > cap:
                n = cap
    limit = cash / (1.0 + p[P_TAKER])
    if n > limit:
        n = limit
    return n


@njit(cache=True)
def simulate(open_, high, low, close, volume, vol, gap, ts, entries, exits, short_entries, short_exits,
             scale, p, records, equity_out, stats):
    """Backtest one instrument. Returns the number of trade records written (open trade included).

    ``records`` may have zero rows (sweeps: statistics only) and ``equity_out`` zero length.
    """
    n = close.shape[0]
    write_rec = records.shape[0] > 0
    write_eq = equity_out.shape[0] > 0
    taker = p[P_TAKER]
    maker = p[P_MAKER]
    sl = p[P_SL]
    tp = p[P_TP]
    tsl = p[P_TSL]
    allow_short = p[P_ALLOW_SHORT] > 0.0
    risk_on = p[P_RISK_ON] > 0.0
    gap_refuse = p[P_GAP_REFUSE] > 0.0
    has_stops = sl > 0.0 or tp > 0.0 or tsl > 0.0

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
    prev_day = ts[0] // 86400000 if n > 0 else 0
    killed = False
    cool_until = -1  # epoch ms; entries refused before it

    prev_eq = cash
    peak_eq = cash
    dd_start = 0
    n_closed = 0.0
    n_wins = 0.0
    gross_p = 0.0
    gross_l = 0.0
    fees = 0.0
    max_dd = 0.0
    max_dd_bars = 0.0
    sum_r = 0.0
    sum_r2 = 0.0
    sum_d2 = 0.0
    exposure = 0.0
    turnover = 0.0
    refused_f = 0.0
    refused_r = 0.0
    hold = 0.0

    for i in range(n):
        o = open_[i]
        # ---------------------------------------------------------------- day roll (kill-switch)
        if risk_on:
            d = ts[i] // 86400000
            if d != prev_day:
                prev_day = d
                realised_today = 0.0
                killed = False
        # ---------------------------------------------------------------- at the open
        exit_px = 0.0
        exit_reason = -1
        exit_fee_rate = taker
        exit_time = ts[i]
        if pos != 0.0 and i > 0:
            t = i - 1
            if has_stops and ((pos > 0.0 and stop_lvl > 0.0 and o <= stop_lvl)
                                or (pos < 0.0 and stop_lvl > 0.0 and o >= stop_lvl)):
                exit_reason = REASON_TRAILING if (tsl > 0.0 and (
                    (pos > 0.0 and extreme * (1.0 - tsl) >= stop_lvl - 1e-12)
                    or (pos < 0.0 and extreme * (1.0 + tsl) <= stop_lvl + 1e-12))) else REASON_STOP
            elif has_stops and tp > 0.0 and ((pos > 0.0 and o >= tp_lvl) or (pos < 0.0 and o <= tp_lvl)):
                exit_reason = REASON_TAKE_PROFIT
                exit_fee_rate = maker
            elif pos > 0.0 and (exits[t] or short_entries[t]):
                exit_reason = REASON_SIGNAL
            elif pos < 0.0 and (short_exits[t] or entries[t]):
                exit_reason = REASON_SIGNAL
            if exit_reason >= 0:
                if exit_reason == REASON_TAKE_PROFIT:
                    exit_px = o
                else:
                    s = _slip(p, abs(pos) * o, vol[t], volume[t], close[t])
                    exit_px = _sell_px(p, o * (1.0 - s)) if pos > 0.0 else _buy_px(p, o * (1.0 + s))
        # ---------------------------------------------------------------- close at the open
        if exit_reason >= 0:
            q = abs(pos)
            fee = q * exit_px * exit_fee_rate
            if pos > 0.0:
                cash += q * exit_px - fee
                pnl = (exit_px - entry_px) * q - entry_fee - fee
            else:
                cash -= q * exit_px + fee
                pnl = (entry_px - exit_px) * q - entry_fee - fee
            fees += fee
            turnover += q * exit_px
            n_closed += 1.0
            hold += i - entry_bar
            realised_today += pnl
            if pnl > 0.0:
                n_wins += 1.0
                gross_p += pnl
                cool_until = -1
            else:
                gross_l -= pnl
                if pnl < 0.0:
                    cool_until = exit_time + int(p[P_COOLDOWN_MS])
            if write_rec:
                r = records[n_rec]
                r[R_COL] = 0.0
                r[R_ENTRY_BAR] = entry_bar
                r[R_EXIT_BAR] = i
                r[R_SIDE] = 1.0 if pos > 0.0 else -1.0
                r[R_QTY] = q
                r[R_ENTRY_PRICE] = entry_px
                r[R_EXIT_PRICE] = exit_px
                r[R_ENTRY_FEE] = entry_fee
                r[R_EXIT_FEE] = fee
                r[R_PNL] = pnl
                r[R_REASON] = exit_reason
            n_rec += 1
            pos = 0.0
        # ---------------------------------------------------------------- entry at the open
        if pos == 0.0 and i > 0:
            t = i - 1
            side = 0.0
            if entries[t] and not exits[t]:
                side = 1.0
            elif allow_short and short_entries[t] and not short_exits[t]:
                side = -1.0
            if side != 0.0:
                if (gap_refuse and gap[i]) or (risk_on and (killed or ts[i] < cool_until)):
                    refused_r += 1.0
                else:
                    notional = _target_notional(p, cash, cash, vol[t], scale[t])
                    s = _slip(p, notional, vol[t], volume[t], close[t])
                    px = _buy_px(p, o * (1.0 + s)) if side > 0.0 else _sell_px(p, o * (1.0 - s))
                    q = _round_qty(p, notional / px) if px > 0.0 else 0.0
                    if q <= 0.0 or q < p[P_MIN_QTY] or q * px < p[P_MIN_NOTIONAL]:
                        refused_f += 1.0
                    else:
                        fee = q * px * taker
                        if side > 0.0:
                            cash -= q * px + fee
                        else:
                            cash += q * px - fee
                        fees += fee
                        turnover += q * px
                        pos = side * q
                        entry_px = px
                        entry_fee = fee
                        entry_bar = i
                        extreme = px
                        if side > 0.0:
                            stop_lvl = px * (1.0 - sl) if sl > 0.0 else 0.0
                            if tsl > 0.0 and px * (1.0 - tsl) > stop_lvl:
                                stop_lvl = px * (1.0 - tsl)
                            tp_lvl = px * (1.0 + tp) if tp > 0.0 else 0.0
                        else:
                            stop_lvl = px * (1.0 + sl) if sl > 0.0 else 0.0
                            if tsl > 0.0 and (stop_lvl == 0.0 or px * (1.0 + tsl) < stop_lvl):
                                stop_lvl = px * (1.0 + tsl)
                            tp_lvl = px * (1.0 - tp) if tp > 0.0 else 0.0
        # ---------------------------------------------------------------- inside the bar
        if pos != 0.0 and has_stops:
            h = high[i]
            lo = low[i]
            reason = -1
            px = 0.0
            fee_rate = taker
            if pos > 0.0:
                if stop_lvl > 0.0 and lo <= stop_lvl:
                    is_trail = tsl > 0.0 and extreme * (1.0 - tsl) >= stop_lvl - 1e-12
                    reason = REASON_TRAILING if is_trail else REASON_STOP
                    s = _slip(p, pos * stop_lvl, vol[i - 1] if i > 0 else vol[i],
                              volume[i - 1] if i > 0 else volume[i], close[i - 1] if i > 0 else o)
                    px = _sell_px(p, stop_lvl * (1.0 - s))
                elif tp > 0.0 and h >= tp_lvl:
                    reason = REASON_TAKE_PROFIT
                    px = tp_lvl
                    fee_rate = maker
            else:
                if stop_lvl > 0.0 and h >= stop_lvl:
                    is_trail = tsl > 0.0 and extreme * (1.0 + tsl) <= stop_lvl + 1e-12
                    reason = REASON_TRAILING if is_trail else REASON_STOP
                    s = _slip(p, -pos * stop_lvl, vol[i - 1] if i > 0 else vol[i],
                              volume[i - 1] if i > 0 else volume[i], close[i - 1] if i > 0 else o)
                    px = _buy_px(p, stop_lvl * (1.0 + s))
                elif tp > 0.0 and lo <= tp_lvl:
                    reason = REASON_TAKE_PROFIT
                    px = tp_lvl
                    fee_rate = maker
            if reason >= 0:
                q = abs(pos)
                fee = q * px * fee_rate
                if pos > 0.0:
                    cash += q * px - fee
                    pnl = (px - entry_px) * q - entry_fee - fee
                else:
                    cash -= q * px + fee
                    pnl = (entry_px - px) * q - entry_fee - fee
                fees += fee
                turnover += q * px
                n_closed += 1.0
                hold += i - entry_bar
                realised_today += pnl
                if pnl > 0.0:
                    n_wins += 1.0
                    gross_p += pnl
                    cool_until = -1
                else:
                    gross_l -= pnl
                    if pnl < 0.0:
                        # The stop filled somewhere inside the bar: count the cool-down from its end.
                        cool_until = ts[i] + int(p[P_TF_MS]) + int(p[P_COOLDOWN_MS])
                if write_rec:
                    r = records[n_rec]
                    r[R_COL] = 0.0
                    r[R_ENTRY_BAR] = entry_bar
                    r[R_EXIT_BAR] = i
                    r[R_SIDE] = 1.0 if pos > 0.0 else -1.0
                    r[R_QTY] = q
                    r[R_ENTRY_PRICE] = entry_px
                    r[R_EXIT_PRICE] = px
                    r[R_ENTRY_FEE] = entry_fee
                    r[R_EXIT_FEE] = fee
                    r[R_PNL] = pnl
                    r[R_REASON] = reason
                n_rec += 1
                pos = 0.0
            elif tsl > 0.0:
                # Trailing: raise (long) / lower (short) the stop after the bar, never within it.
                if pos > 0.0:
                    if h > extreme:
                        extreme = h
                        lvl = extreme * (1.0 - tsl)
                        if lvl > stop_lvl:
                            stop_lvl = lvl
                else:
                    if lo < extreme:
                        extreme = lo
                        lvl = extreme * (1.0 + tsl)
                        if lvl < stop_lvl:
                            stop_lvl = lvl
        # ---------------------------------------------------------------- at the close
        c = close[i]
        eq = cash + pos * c
        if pos != 0.0:
            exposure += 1.0
        if write_eq:
            equity_out[i] = eq
        if eq != prev_eq:
            r_ = eq / prev_eq - 1.0
            sum_r += r_
            sum_r2 += r_ * r_
            if r_ < 0.0:
                sum_d2 += r_ * r_
        if eq > peak_eq:
            peak_eq = eq
            dd_start = i
        else:
            dd = 1.0 - eq / peak_eq
            if dd > max_dd:
                max_dd = dd
            if i - dd_start > max_dd_bars:
                max_dd_bars = i - dd_start
        prev_eq = eq
        if risk_on and not killed:
            unrealised = 0.0
            if pos != 0.0:
                unrealised = (c - entry_px) * pos - entry_fee
            if realised_today + unrealised <= -p[P_MAX_DAILY_LOSS]:
                killed = True

    # ---------------------------------------------------------------- the trade still open
    if pos != 0.0:
        c = close[n - 1]
        q = abs(pos)
        if write_rec:
            r = records[n_rec]
            r[R_COL] = 0.0
            r[R_ENTRY_BAR] = entry_bar
            r[R_EXIT_BAR] = n - 1
            r[R_SIDE] = 1.0 if pos > 0.0 else -1.0
            r[R_QTY] = q
            r[R_ENTRY_PRICE] = entry_px
            r[R_EXIT_PRICE] = c
            r[R_ENTRY_FEE] = entry_fee
            r[R_EXIT_FEE] = 0.0
            r[R_PNL] = (c - entry_px) * pos - entry_fee
            r[R_REASON] = REASON_OPEN
        n_rec += 1
        hold += n - entry_bar

    stats[S_FINAL_EQUITY] = prev_eq
    stats[S_N_CLOSED] = n_closed
    stats[S_N_WINS] = n_wins
    stats[S_GROSS_PROFIT] = gross_p
    stats[S_GROSS_LOSS] = gross_l
    stats[S_FEES] = fees
    stats[S_MAX_DD] = max_dd
    stats[S_MAX_DD_BARS] = max_dd_bars
    stats[S_SUM_R] = sum_r
    stats[S_SUM_R2] = sum_r2
    stats[S_SUM_DOWN_R2] = sum_d2
    stats[S_EXPOSURE_BARS] = exposure
    stats[S_TURNOVER] = turnover
    stats[S_REFUSED_FILTERS] = refused_f
    stats[S_REFUSED_RISK] = refused_r
    stats[S_HOLD_BARS] = hold
    stats[S_N_BARS] = n
    stats[S_OPEN_TRADE] = 1.0 if pos != 0.0 else 0.0
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
def sweep_ma_cross(open_, high, low, close, volume, vol, gap, ts, table, fast_idx, slow_idx, p, out_stats):
    """One column per (fast, slow) pair of rows of ``table`` (one moving average per distinct period).

    Each column builds its crossing signals in its own two boolean buffers, so memory is
    O(bars x (distinct periods + threads)), not O(bars x combos).
    """
    n = close.shape[0]
    m = fast_idx.shape[0]
    no_short = np.zeros(n, dtype=np.bool_)
    ones = np.ones(n, dtype=np.float64)
    no_rec = np.empty((0, N_REC), dtype=np.float64)
    no_eq = np.empty(0, dtype=np.float64)
    for c in prange(m):
        entries = np.empty(n, dtype=np.bool_)
        exits = np.empty(n, dtype=np.bool_)
        cross_signals(table[fast_idx[c]], table[slow_idx[c]], entries, exits)
        simulate(open_, high, low, close, volume, vol, gap, ts, entries, exits, no_short, no_short,
                 ones, p, no_rec, no_eq, out_stats[c])


@njit(cache=True, parallel=True)
def sweep_columns(open_, high, low, close, volume, vol, gap, ts, entries, exits, short_entries,
                  short_exits, scale, p, out_stats):
    """Generic sweep: one row per parameter set, signals precomputed as (columns, bars) arrays."""
    m = entries.shape[0]
    no_rec = np.empty((0, N_REC), dtype=np.float64)
    no_eq = np.empty(0, dtype=np.float64)
    for c in prange(m):
        simulate(open_, high, low, close, volume, vol, gap, ts, entries[c], exits[c],
                 short_entries[c], short_exits[c], scale[c], p, no_rec, no_eq, out_stats[c])


@njit(cache=True)
def rolling_return_std(close, window):
    """Causal standard deviation of simple returns over ``window`` bars (NaN until defined)."""
    n = close.shape[0]
    out = np.full(n, np.nan)
    s = 0.0
    s2 = 0.0
    for i in range(1, n):
        r = close[i] / close[i - 1] - 1.0
        s += r
        s2 += r * r
        if i > window:
            r0 = close[i - window] / close[i - window - 1] - 1.0
            s -= r0
            s2 -= r0 * r0
        if i >= window:
            mean = s / window
            var = s2 / window - mean * mean
            out[i] = math.sqrt(var) if var > 0.0 else 0.0
    return out


# ------------------------------------------------------------------------------------------------
# Portfolio: several symbols, one cash balance
# ------------------------------------------------------------------------------------------------
F_STEP = 0
F_MIN_QTY = 1
F_MIN_NOTIONAL = 2
F_TICK = 3


@njit(cache=True)
def _round_px(px, tick, up):
    if tick > 0.0:
        if up:
            return math.ceil(px / tick - 1e-9) * tick
        return math.floor(px / tick + 1e-9) * tick
    return px


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
    max_positions = int(p[P_MAX_POSITIONS]) if risk_on and p[P_MAX_POSITIONS] > 0 else k

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
    prev_day = ts[0] // 86400000 if n > 0 else 0
    killed = False
    cool_until = -1
    prev_eq = cash
    peak_eq = cash
    dd_start = 0
    n_closed = 0.0
    n_wins = 0.0
    gross_p = 0.0
    gross_l = 0.0
    fees = 0.0
    max_dd = 0.0
    max_dd_bars = 0.0
    sum_r = 0.0
    sum_r2 = 0.0
    sum_d2 = 0.0
    exposure = 0.0
    turnover = 0.0
    refused_f = 0.0
    refused_r = 0.0
    hold = 0.0
    write_rec = records.shape[0] > 0

    for i in range(n):
        if risk_on:
            d = ts[i] // 86400000
            if d != prev_day:
                prev_day = d
                realised_today = 0.0
                killed = False
        # ------------------------------------------------------------ exits at the open, then intrabar later
        for j in range(k):
            o = open_[i, j]
            t = prev_bar[j]
            if pos[j] == 0.0 or t < 0 or not (o == o):
                continue
            reason = -1
            fee_rate = taker
            q = abs(pos[j])
            if has_stops and stop[j] > 0.0 and ((pos[j] > 0.0 and o <= stop[j]) or (pos[j] < 0.0 and o >= stop[j])):
                is_trail = tsl > 0.0 and ((pos[j] > 0.0 and ext[j] * (1.0 - tsl) >= stop[j] - 1e-12)
                                          or (pos[j] < 0.0 and ext[j] * (1.0 + tsl) <= stop[j] + 1e-12))
                reason = REASON_TRAILING if is_trail else REASON_STOP
            elif has_stops and tp > 0.0 and ((pos[j] > 0.0 and o >= tpl[j]) or (pos[j] < 0.0 and o <= tpl[j])):
                reason = REASON_TAKE_PROFIT
                fee_rate = maker
            elif pos[j] > 0.0 and (exits[t, j] or short_entries[t, j]):
                reason = REASON_SIGNAL
            elif pos[j] < 0.0 and (short_exits[t, j] or entries[t, j]):
                reason = REASON_SIGNAL
            if reason < 0:
                continue
            if reason == REASON_TAKE_PROFIT:
                px = o
            else:
                s = _slip(p, q * o, vol[t, j], volume[t, j], close[t, j])
                px = _round_px(o * (1.0 - s), filt[j, F_TICK], False) if pos[j] > 0.0 else \
                    _round_px(o * (1.0 + s), filt[j, F_TICK], True)
            fee = q * px * fee_rate
            if pos[j] > 0.0:
                cash += q * px - fee
                pnl = (px - epx[j]) * q - efee[j] - fee
            else:
                cash -= q * px + fee
                pnl = (epx[j] - px) * q - efee[j] - fee
            fees += fee
            turnover += q * px
            n_closed += 1.0
            hold += i - ebar[j]
            realised_today += pnl
            if pnl > 0.0:
                n_wins += 1.0
                gross_p += pnl
                cool_until = -1
            else:
                gross_l -= pnl
                if pnl < 0.0:
                    cool_until = ts[i] + int(p[P_COOLDOWN_MS])
            if write_rec:
                r = records[n_rec]
                r[R_COL] = j
                r[R_ENTRY_BAR] = ebar[j]
                r[R_EXIT_BAR] = i
                r[R_SIDE] = 1.0 if pos[j] > 0.0 else -1.0
                r[R_QTY] = q
                r[R_ENTRY_PRICE] = epx[j]
                r[R_EXIT_PRICE] = px
                r[R_ENTRY_FEE] = efee[j]
                r[R_EXIT_FEE] = fee
                r[R_PNL] = pnl
                r[R_REASON] = reason
            n_rec += 1
            pos[j] = 0.0
            n_open -= 1
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
            if (gap_refuse and gap[i, j]) or (risk_on and (killed or ts[i] < cool_until or n_open >= max_positions)):
                refused_r += 1.0
                continue
            equity = cash
            for m in range(k):
                if pos[m] != 0.0:
                    mark = open_[i, m] if open_[i, m] == open_[i, m] else last_close[m]
                    equity += pos[m] * mark
            notional = _target_notional(p, equity, cash, vol[t, j], scale[t, j])
            s = _slip(p, notional, vol[t, j], volume[t, j], close[t, j])
            px = _round_px(o * (1.0 + s), filt[j, F_TICK], True) if side > 0.0 else \
                _round_px(o * (1.0 - s), filt[j, F_TICK], False)
            q = 0.0
            if px > 0.0:
                q = notional / px
                if filt[j, F_STEP] > 0.0:
                    q = math.floor(q / filt[j, F_STEP] + 1e-9) * filt[j, F_STEP]
            if q <= 0.0 or q < filt[j, F_MIN_QTY] or q * px < filt[j, F_MIN_NOTIONAL]:
                refused_f += 1.0
                continue
            fee = q * px * taker
            if side > 0.0:
                cash -= q * px + fee
            else:
                cash += q * px - fee
            fees += fee
            turnover += q * px
            pos[j] = side * q
            n_open += 1
            epx[j] = px
            efee[j] = fee
            ebar[j] = i
            ext[j] = px
            if side > 0.0:
                stop[j] = px * (1.0 - sl) if sl > 0.0 else 0.0
                if tsl > 0.0 and px * (1.0 - tsl) > stop[j]:
                    stop[j] = px * (1.0 - tsl)
                tpl[j] = px * (1.0 + tp) if tp > 0.0 else 0.0
            else:
                stop[j] = px * (1.0 + sl) if sl > 0.0 else 0.0
                if tsl > 0.0 and (stop[j] == 0.0 or px * (1.0 + tsl) < stop[j]):
                    stop[j] = px * (1.0 + tsl)
                tpl[j] = px * (1.0 - tp) if tp > 0.0 else 0.0
        # ------------------------------------------------------------ inside the bar
        for j in range(k):
            if pos[j] == 0.0 or not has_stops or not (open_[i, j] == open_[i, j]):
                continue
            h = high[i, j]
            lo = low[i, j]
            t = prev_bar[j] if prev_bar[j] >= 0 else i
            reason = -1
            px = 0.0
            fee_rate = taker
            if pos[j] > 0.0:
                if stop[j] > 0.0 and lo <= stop[j]:
                    is_trail = tsl > 0.0 and ext[j] * (1.0 - tsl) >= stop[j] - 1e-12
                    reason = REASON_TRAILING if is_trail else REASON_STOP
                    s = _slip(p, pos[j] * stop[j], vol[t, j], volume[t, j], close[t, j])
                    px = _round_px(stop[j] * (1.0 - s), filt[j, F_TICK], False)
                elif tp > 0.0 and h >= tpl[j]:
                    reason = REASON_TAKE_PROFIT
                    px = tpl[j]
                    fee_rate = maker
            else:
                if stop[j] > 0.0 and h >= stop[j]:
                    is_trail = tsl > 0.0 and ext[j] * (1.0 + tsl) <= stop[j] + 1e-12
                    reason = REASON_TRAILING if is_trail else REASON_STOP
                    s = _slip(p, -pos[j] * stop[j], vol[t, j], volume[t, j], close[t, j])
                    px = _round_px(stop[j] * (1.0 + s), filt[j, F_TICK], True)
                elif tp > 0.0 and lo <= tpl[j]:
                    reason = REASON_TAKE_PROFIT
                    px = tpl[j]
                    fee_rate = maker
            if reason >= 0:
                q = abs(pos[j])
                fee = q * px * fee_rate
                if pos[j] > 0.0:
                    cash += q * px - fee
                    pnl = (px - epx[j]) * q - efee[j] - fee
                else:
                    cash -= q * px + fee
                    pnl = (epx[j] - px) * q - efee[j] - fee
                fees += fee
                turnover += q * px
                n_closed += 1.0
                hold += i - ebar[j]
                realised_today += pnl
                if pnl > 0.0:
                    n_wins += 1.0
                    gross_p += pnl
                    cool_until = -1
                else:
                    gross_l -= pnl
                    if pnl < 0.0:
                        cool_until = ts[i] + int(p[P_TF_MS]) + int(p[P_COOLDOWN_MS])
                if write_rec:
                    r = records[n_rec]
                    r[R_COL] = j
                    r[R_ENTRY_BAR] = ebar[j]
                    r[R_EXIT_BAR] = i
                    r[R_SIDE] = 1.0 if pos[j] > 0.0 else -1.0
                    r[R_QTY] = q
                    r[R_ENTRY_PRICE] = epx[j]
                    r[R_EXIT_PRICE] = px
                    r[R_ENTRY_FEE] = efee[j]
                    r[R_EXIT_FEE] = fee
                    r[R_PNL] = pnl
                    r[R_REASON] = reason
                n_rec += 1
                pos[j] = 0.0
                n_open -= 1
            elif tsl > 0.0:
                if pos[j] > 0.0:
                    if h > ext[j]:
                        ext[j] = h
                        lvl = h * (1.0 - tsl)
                        if lvl > stop[j]:
                            stop[j] = lvl
                else:
                    if lo < ext[j]:
                        ext[j] = lo
                        lvl = lo * (1.0 + tsl)
                        if lvl < stop[j]:
                            stop[j] = lvl
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
        if eq != prev_eq:
            r_ = eq / prev_eq - 1.0
            sum_r += r_
            sum_r2 += r_ * r_
            if r_ < 0.0:
                sum_d2 += r_ * r_
        if eq > peak_eq:
            peak_eq = eq
            dd_start = i
        else:
            dd = 1.0 - eq / peak_eq
            if dd > max_dd:
                max_dd = dd
            if i - dd_start > max_dd_bars:
                max_dd_bars = i - dd_start
        prev_eq = eq
        if risk_on and not killed and realised_today + unrealised <= -p[P_MAX_DAILY_LOSS]:
            killed = True

    n_open_end = 0.0
    for j in range(k):
        if pos[j] != 0.0:
            n_open_end += 1.0
            c = last_close[j]
            if write_rec:
                r = records[n_rec]
                r[R_COL] = j
                r[R_ENTRY_BAR] = ebar[j]
                r[R_EXIT_BAR] = n - 1
                r[R_SIDE] = 1.0 if pos[j] > 0.0 else -1.0
                r[R_QTY] = abs(pos[j])
                r[R_ENTRY_PRICE] = epx[j]
                r[R_EXIT_PRICE] = c
                r[R_ENTRY_FEE] = efee[j]
                r[R_EXIT_FEE] = 0.0
                r[R_PNL] = (c - epx[j]) * pos[j] - efee[j]
                r[R_REASON] = REASON_OPEN
            n_rec += 1
            hold += n - ebar[j]
    stats[S_FINAL_EQUITY] = prev_eq
    stats[S_N_CLOSED] = n_closed
    stats[S_N_WINS] = n_wins
    stats[S_GROSS_PROFIT] = gross_p
    stats[S_GROSS_LOSS] = gross_l
    stats[S_FEES] = fees
    stats[S_MAX_DD] = max_dd
    stats[S_MAX_DD_BARS] = max_dd_bars
    stats[S_SUM_R] = sum_r
    stats[S_SUM_R2] = sum_r2
    stats[S_SUM_DOWN_R2] = sum_d2
    stats[S_EXPOSURE_BARS] = exposure
    stats[S_TURNOVER] = turnover
    stats[S_REFUSED_FILTERS] = refused_f
    stats[S_REFUSED_RISK] = refused_r
    stats[S_HOLD_BARS] = hold
    stats[S_N_BARS] = n
    stats[S_OPEN_TRADE] = n_open_end
    return n_rec
