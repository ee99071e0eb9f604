"""The live hot path (issue 19): candle close -> order sent with 1, 10 and 50 pairs on one bot, durable, with
the strategy's signals recomputed on the window (batch) or streamed; and the cost per candle of streaming
indicators against recomputing them on the window.

Table 1, candle -> order. Every pair gets a closed candle at the same moment (the bar close) and a strategy
that flips every bar, so every candle of every pair is an order. The pairs are N traders sharing one executor,
one journal, one audit trail and one local exchange, as in the multi-pair bot. Everything is durable: the
journal commits with ``synchronous=FULL`` and the audit records go into the journal's commits through the
outbox. ``one by one``: each pair's candle path in turn (:meth:`Trader.on_candle`: decision, one commit,
send, the answer booked in one more commit, the trader's state saved), so every pair waits for the
previous pairs' whole paths. ``together``: what the bot does with a bar's candles at hand
(:func:`~thunes.live.trader.trade_together`): every pair decides, one commit journals the bar's orders, the
orders are sent back to back, the answers are booked in one commit after the last send, then the states
are saved. Columns: the first pair's latency (candle -> its order sent), the last pair's (the whole bar's
sends), and the bar's cost per pair (last / N). ``batch``: the strategy's ``signals()`` on the trader's
300-bar window; ``streamed``: the same strategy with the incremental protocol, stepped by the trader from its
saved state (:mod:`thunes.execution.incremental`). The local exchange runs in this process, so each
send includes the exchange's own work on the same interpreter.

Table 2, the audit outbox on and off on alternate bars of one single-pair stack (a fair comparison on a busy
machine): the total and the executor's share (intent -> order sent: risk check, filters, the durable writes).

Table 3, cost per candle on a 300-bar window: each batch indicator recomputed on the window against its
streaming state advanced by one candle (:mod:`thunes.features.streaming`); and the default feature set
(``compute_features`` on warm-up + 1 rows) against :class:`~thunes.features.streaming_set.StreamingFeatures`.

Table 4, one model prediction (the ml extra; a small LSTM of bench_ml's shape trained for one epoch):
``Forecaster.predict_latest`` against :class:`~thunes.ml.streaming.StreamingForecaster.update`.

Run: ``.venv/bin/python benchmarks/bench_hot_path.py [--bars 200] [--pairs 1,10,50]``. Timings on a shared
machine are noisy; each case runs the same bars and the cases alternate in rounds, so compare rows of one run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from thunes.config import RiskSettings
from thunes.core.candles import ts_ms
from thunes.core.timeframes import index_ms
from thunes.data.samples import load_sample_candles
from thunes.exchange.ccxt_adapter import CcxtExchange
from thunes.exchange.sim import DEFAULT_API_KEY, DEFAULT_SECRET, AccountSpec, LocalExchange
from thunes.execution.incremental import BarSignals
from thunes.execution.ledger import Ledger
from thunes.execution.orders import ExecutorOptions
from thunes.features import indicators as ind
from thunes.features import streaming as st
from thunes.features.feature_set import compute_features, get_feature_set
from thunes.features.streaming_set import StreamingFeatures
from thunes.live.assembly import ReplayClock, build_stack
from thunes.live.feed import Candle
from thunes.live.trader import Trader, TraderOptions, frozen_heap, trade_together
from thunes.strategies.base import Signals, Strategy

WINDOW = 300
_INFO = Path(__file__).resolve().parents[1] / "thunes" / "exchange" / "sim" / "exchange_info.json"


class FlipSmaBatch(Strategy):
    """Enter on even hours, exit on odd ones (an order every candle), once two SMAs are known: the work of
    a small real strategy (two moving averages over the window) and a decision every bar. Batch only."""

    name = "flip_sma"

    @property
    def warmup(self) -> int:
        return 51

    def signals(self, candles: pd.DataFrame) -> Signals:
        fast, slow = ind.sma(candles.close, 10), ind.sma(candles.close, 50)
        even = pd.Series((index_ms(candles.index) // 3_600_000) % 2 == 0, index=candles.index)
        known = fast.notna() & slow.notna()
        return Signals(entries=even & known, exits=~even)



class FlipSma(FlipSmaBatch):
    """The same with the incremental protocol (thunes.execution.incremental): the trader steps it."""

    def stream_init(self) -> dict[str, Any]:
        return {"fast": st.StreamingSma(10), "slow": st.StreamingSma(50)}

    def stream_advance(self, state: dict[str, Any], ts_ms: int, open: float, high: float, low: float,
                       close: float, volume: float) -> BarSignals:
        fast, slow = state["fast"].update(close), state["slow"].update(close)
        even = (ts_ms // 3_600_000) % 2 == 0
        return BarSignals(entry=even and fast == fast and slow == slow, exit=not even)


def _symbols(n: int) -> list[str]:
    return [f"P{i:02d}/USDT" for i in range(n)]


def _sample_dir(tmp: Path, n: int) -> Path:
    """A sample folder whose exchange info adds N pairs with BTC/USDT's rules (the local exchange reads it)."""
    btc = next(s for s in json.loads(_INFO.read_text())["symbols"] if s["symbol"] == "BTCUSDT")
    symbols = []
    for sym in _symbols(n):
        base = sym.split("/")[0]
        symbols.append(dict(btc, symbol=f"{base}USDT", baseAsset=base))
    folder = tmp / "samples"
    folder.mkdir()
    (folder / "binance_exchange_info.json").write_text(json.dumps({"symbols": symbols}))
    with gzip.open(folder / "binance_P00USDT_1h.csv.gz", "wt") as fh:  # a sample folder is known by its files
        fh.write("")
    return folder


def candle_to_order(frame: pd.DataFrame, pairs: int, bars: int, streamed: bool,
                    together: bool = False) -> dict[str, np.ndarray]:
    """Per bar: ms from the bar close to the first pair's order, to the last pair's order."""
    warm = WINDOW
    symbols = _symbols(pairs)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        frames = {s: frame * (1 + i / 100) for i, s in enumerate(symbols)}
        for f in frames.values():
            f["volume"] = frame["volume"]
        accounts = (AccountSpec(api_key=DEFAULT_API_KEY, secret=DEFAULT_SECRET,
                                balances={"USDT": "100000000"}),)
        with LocalExchange(candles=frames, start_ms=int(ts_ms(frame)[warm]), accounts=accounts,
                           sample_dir=str(_sample_dir(tmp, pairs)), orders_per_10s=10_000_000,
                           weight_limit=100_000_000) as sim:
            make = FlipSma if streamed else FlipSmaBatch
            risk = RiskSettings(cool_down_minutes=0, max_daily_loss=Decimal("1000000"), max_positions=pairs + 1,
                                max_position_quote=Decimal("1000"))
            first = TraderOptions(symbol=symbols[0], timeframe="1h", quote_per_trade=Decimal("100"),
                                  state_dir=tmp / "state", window_bars=WINDOW)
            stack = build_stack(CcxtExchange.for_local(sim), strategy=make(), options=first, risk_settings=risk,
                                audit_path=tmp / "audit.jsonl", ledger_path=tmp / "ledger.csv",
                                clock=ReplayClock(sim.clock), audit_fsync="always", durable=True)
            stack.executor.options = ExecutorOptions(settle_ms=6_000)
            traders = [stack.trader]
            for sym in symbols[1:]:
                options = TraderOptions(symbol=sym, timeframe="1h", quote_per_trade=Decimal("100"),
                                        state_dir=tmp / "state", window_bars=WINDOW)
                traders.append(Trader(exchange=stack.exchange, strategy=make(), options=options,
                                      executor=stack.executor, positions=stack.positions,
                                      ledger=Ledger(tmp / "ledger.csv"), audit=stack.audit,
                                      clock=stack.trader.clock))
            for sym, trader in zip(symbols, traders):
                trader.warm_up(frames[sym].iloc[:warm])
            stamps = ts_ms(frame)
            rows = {s: frames[s][["open", "high", "low", "close", "volume"]].to_numpy() for s in symbols}
            first_ms, last_ms, fsyncs = [], [], []
            try:
                with frozen_heap():
                    for i in range(warm, warm + bars):
                        sim.advance_to(int(stamps[i + 1]))
                        candles = [Candle(ts_ms=int(stamps[i]), open=float(r[0]), high=float(r[1]),
                                          low=float(r[2]), close=float(r[3]), volume=float(r[4]))
                                   for r in (rows[s][i] for s in symbols)]
                        before = stack.audit.fsyncs
                        t0 = time.perf_counter()
                        if together:
                            decisions = trade_together([(t, c, t0) for t, c in zip(traders, candles)])
                        else:
                            decisions = [t.on_candle(c, received_at=t0) for t, c in zip(traders, candles)]
                        sent = [d.latency_s for d in decisions if d.latency_s is not None]
                        if len(sent) == pairs:
                            first_ms.append(sent[0] * 1000)
                            last_ms.append(sent[-1] * 1000)
                            fsyncs.append(stack.audit.fsyncs - before)
            finally:
                stack.close()
    return {"first": np.array(first_ms), "last": np.array(last_ms), "fsyncs": np.array(fsyncs)}


class _Stamped:
    """The executor, passed through, noting when the trader hands it an intent."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.at = 0.0

    def execute(self, intent: Any) -> Any:
        self.at = time.perf_counter()
        return self.inner.execute(intent)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def outbox_ab(frame: pd.DataFrame, bars: int) -> dict[str, dict[str, np.ndarray]]:
    """One pair, one stack, the audit outbox on and off on alternate bars (same process, same disk moment):
    ms from the intent to the order sent (the executor's share) and from the candle to the order sent."""
    warm = WINDOW
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        accounts = (AccountSpec(api_key=DEFAULT_API_KEY, secret=DEFAULT_SECRET, balances={"USDT": "100000000"}),)
        with LocalExchange(candles={"BTC/USDT": frame}, start_ms=int(ts_ms(frame)[warm]), accounts=accounts,
                           orders_per_10s=10_000_000, weight_limit=100_000_000) as sim:
            options = TraderOptions(symbol="BTC/USDT", timeframe="1h", quote_per_trade=Decimal("100"),
                                    state_dir=tmp / "state", window_bars=WINDOW)
            stack = build_stack(CcxtExchange.for_local(sim), strategy=FlipSma(), options=options,
                                risk_settings=RiskSettings(cool_down_minutes=0, max_daily_loss=Decimal("1000000")),
                                audit_path=tmp / "audit.jsonl", ledger_path=tmp / "ledger.csv",
                                clock=ReplayClock(sim.clock), audit_fsync="always", durable=True)
            stack.trader.warm_up(frame.iloc[:warm])
            stamped = _Stamped(stack.executor)
            stack.trader.executor = stamped  # type: ignore[assignment]
            stamps = ts_ms(frame)
            out: dict[str, dict[str, list[float]]] = {"outbox": {"total": [], "executor": []},
                                                      "no outbox": {"total": [], "executor": []}}
            try:
                with frozen_heap():
                    for i in range(warm, warm + bars):
                        mode = "outbox" if i % 2 == 0 else "no outbox"
                        stack.executor.options = ExecutorOptions(settle_ms=6_000, audit_outbox=mode == "outbox")
                        sim.advance_to(int(stamps[i + 1]))
                        r = frame.iloc[i]
                        c = Candle(ts_ms=int(stamps[i]), open=float(r.open), high=float(r.high), low=float(r.low),
                                   close=float(r.close), volume=float(r.volume))
                        t0 = time.perf_counter()
                        d = stack.trader.on_candle(c, received_at=t0)
                        if d.latency_s is not None:
                            out[mode]["total"].append(d.latency_s * 1000)
                            out[mode]["executor"].append((t0 + d.latency_s - stamped.at) * 1000)
            finally:
                stack.close()
    return {m: {k: np.array(v) for k, v in parts.items()} for m, parts in out.items()}


def _cost(fn: Any, calls: int) -> np.ndarray:
    fn()
    out = np.empty(calls)
    for k in range(calls):
        t0 = time.perf_counter()
        fn()
        out[k] = time.perf_counter() - t0
    return out * 1e6


def per_candle_costs(frame: pd.DataFrame, calls: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, batch µs, streaming µs) per candle."""
    w = frame.iloc[-WINDOW:]
    close, high, low = w.close, w.high, w.low
    c, h, lo = float(close.iloc[-1]), float(high.iloc[-1]), float(low.iloc[-1])
    cases = [
        ("SMA(10) + SMA(50)", lambda: (ind.sma(close, 10), ind.sma(close, 50)),
         (st.StreamingSma(10), st.StreamingSma(50)), lambda s: (s[0].update(c), s[1].update(c))),
        ("EMA(12)", lambda: ind.ema(close, 12), (st.StreamingEma(12),), lambda s: s[0].update(c)),
        ("RSI(14)", lambda: ind.rsi(close, 14), (st.StreamingRsi(14),), lambda s: s[0].update(c)),
        ("ATR(14)", lambda: ind.atr(high, low, close, 14), (st.StreamingAtr(14),), lambda s: s[0].update(h, lo, c)),
        ("Bollinger(20, 2)", lambda: ind.bollinger(close, 20, 2.0), (st.StreamingBollinger(20, 2.0),),
         lambda s: s[0].update(c)),
    ]
    out = []
    for name, batch, states, step in cases:
        for s in states:
            s.feed(*(x.to_numpy() for x in ((high, low, close) if name.startswith("ATR") else (close,))))
        out.append((name, _cost(batch, calls), _cost(lambda: step(states), calls)))
    for fs in (get_feature_set("default"), get_feature_set("compact")):
        tail = frame.iloc[-(fs.warmup + 1):]
        batch = _cost(lambda: compute_features(tail, fs, timeframe_ms=3_600_000), max(50, calls // 10))
        stream = StreamingFeatures(fs, timeframe_ms=3_600_000)
        ts, values = ts_ms(frame), frame[["open", "high", "low", "close", "volume"]].to_numpy()
        stream.feed(ts, values)
        step = {"k": 0}

        def advance() -> None:  # the next hour, with the values of a row of the frame
            step["k"] += 1
            row = values[step["k"] % len(values)]
            stream.update(int(ts[-1]) + step["k"] * 3_600_000, *(float(x) for x in row))

        streamed = _cost(advance, calls)
        out.append((f"{fs.name} feature set ({len(fs.columns)} cols, {len(tail)} rows)", batch, streamed))
    return out


def prediction_costs(calls: int) -> list[tuple[str, np.ndarray]] | None:
    """Single prediction (ms): batch ``predict_latest`` (features on warm-up + 300 candles, scale, ONNX) against
    the streamed path (one feature row, one scaled row, ONNX), and ONNX alone; None without the ml extra."""
    try:
        import onnxruntime  # noqa: F401
        import torch

        from thunes.ml.serving import Forecaster
        from thunes.ml.streaming import StreamingForecaster
        from thunes.ml.train import TrainOptions, train_model
    except ImportError:
        return None
    torch.set_num_threads(1)
    candles = load_sample_candles("BTC/USDT", "1h", limit=4000).frame
    # bench_ml's serving architecture (default set, seq 32, 2 x 64 LSTM); one epoch: latency does not need skill
    options = TrainOptions(feature_set="default", seq_len=32, horizon=10, hidden=64, num_layers=2, epochs=1,
                           patience=2, seed=1, threads=1)
    with tempfile.TemporaryDirectory() as folder:
        train_model(candles.iloc[:-calls - 1], options, symbol="BTC/USDT", timeframe="1h", out_dir=folder)
        fc = Forecaster.load(folder, backend="onnx", threads=1)
    history, live = candles.iloc[:-calls], candles.iloc[-calls:]
    stream = StreamingForecaster(fc, timeframe_ms=3_600_000)
    stream.warm_up(history)
    batch, streamed, onnx = [], [], []
    stamps, rows = ts_ms(live), live[["open", "high", "low", "close", "volume"]].to_numpy()
    x = fc.scaler.transform_array(fc.latest_window(history))[None]  # type: ignore[union-attr]
    for _ in range(20):
        fc.predict_latest(history)
    for k in range(calls):
        window = candles.iloc[: len(history) + k + 1]
        t0 = time.perf_counter()
        fc.predict_latest(window)
        t1 = time.perf_counter()
        stream.update(int(stamps[k]), *rows[k])
        t2 = time.perf_counter()
        fc._predict(x)
        t3 = time.perf_counter()
        batch.append(t1 - t0)
        streamed.append(t2 - t1)
        onnx.append(t3 - t2)
    return [(f"batch: predict_latest ({fc.history} candles, 69 features)", np.array(batch) * 1000),
            ("streamed: one feature row + scale + ONNX", np.array(streamed) * 1000),
            ("  of which ONNX inference alone", np.array(onnx) * 1000)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=200)
    parser.add_argument("--pairs", default="1,10,50")
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    frame = load_sample_candles("BTC/USDT", "1h", limit=WINDOW + args.bars + 10).frame
    print(f"data: {len(frame)} x 1h BTC/USDT; {os.cpu_count()} CPU(s), load {os.getloadavg()[0]:.1f}")
    print("\ncandle close -> order sent, durable (journal FULL + audit outbox), every pair orders every bar")
    print(f"{'pairs':>5s} {'orders':9s} {'signals':9s} {'bars':>5s} {'first p50':>10s} {'first p99':>10s} "
          f"{'last p50':>9s} {'last p99':>9s} {'/pair p50':>10s} {'/pair p99':>10s} {'audit fsyncs/bar':>17s}")
    for pairs in (int(p) for p in args.pairs.split(",")):
        bars = args.bars if pairs == 1 else max(40, args.bars * 10 // pairs)
        cases = [(False, False), (True, False)] if pairs == 1 else [(False, False), (False, True), (True, True)]
        for streamed, together in cases:
            r = candle_to_order(frame, pairs, bars, streamed, together)
            f50, f99 = np.percentile(r["first"], [50, 99])
            l50, l99 = np.percentile(r["last"], [50, 99])
            print(f"{pairs:5d} {'together' if together else 'one by one':9s} {'streamed' if streamed else 'batch':9s} "
                  f"{len(r['first']):5d} {f50:10.2f} {f99:10.2f} {l50:9.2f} {l99:9.2f} {l50 / pairs:10.2f} "
                  f"{l99 / pairs:10.2f} {np.mean(r['fsyncs']):17.2f}")
    ab = outbox_ab(frame, args.bars)
    print("\none pair, audit outbox on/off on alternate bars (same stack): ms")
    print(f"{'mode':10s} {'orders':>6s} {'total p50':>10s} {'total p99':>10s} {'executor p50':>13s} {'executor p99':>13s}")
    for mode, parts in ab.items():
        t50, t99 = np.percentile(parts["total"], [50, 99])
        e50, e99 = np.percentile(parts["executor"], [50, 99])
        print(f"{mode:10s} {len(parts['total']):6d} {t50:10.2f} {t99:10.2f} {e50:13.2f} {e99:13.2f}")
    print("\ncost per candle, 300-bar window: batch recompute vs streaming step (µs)")
    print(f"{'indicator':44s} {'batch p50':>10s} {'batch p99':>10s} {'stream p50':>11s} {'stream p99':>11s}")
    for name, batch, stream in per_candle_costs(frame, args.calls):
        b50, b99 = np.percentile(batch, [50, 99])
        s50, s99 = np.percentile(stream, [50, 99]) if np.isfinite(stream).all() else (np.nan, np.nan)
        print(f"{name:44s} {b50:10.1f} {b99:10.1f} {s50:11.2f} {s99:11.2f}")
    preds = prediction_costs(min(args.calls, 1000))
    if preds is None:
        print("\nsingle prediction: skipped (the ml extra, torch and onnxruntime, is not installed)")
    else:
        print("\nsingle prediction, 1 thread (ms)")
        print(f"{'path':50s} {'calls':>6s} {'p50':>8s} {'p99':>8s}")
        for name, lat in preds:
            p50, p99 = np.percentile(lat, [50, 99])
            print(f"{name:50s} {len(lat):6d} {p50:8.3f} {p99:8.3f}")
    print("\ntargets: p99 < 2 ms candle -> order with one pair; < 5 ms per pair with 50 pairs; "
          "prediction p99 < 1 ms")


if __name__ == "__main__":
    main()
