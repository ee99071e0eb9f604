"""ML serving latency and training throughput.

Measures, on BTC/USDT 30m candles (resampled from the 5m sample; synthetic when absent):

1. single-prediction latency, the trader's hot path: features of the latest window (the default feature
   set on the last warm-up + 300 candles) + scaling + onnxruntime inference on ONE thread, as p50/p99
   over many calls (target: p99 < 2 ms); inference alone is shown too;
2. LSTM2Head training throughput in samples/s on the CPU and, when torch sees one, on the GPU (AMP);
3. XGBoost fit throughput (samples/s, CUDA when available).

Runs unchanged on a CPU-only or a GPU machine:

    .venv/bin/python benchmarks/bench_ml.py [--device auto|cpu|cuda] [--calls 2000] [--epochs 2] [--hidden 64]

``--device auto`` (the default) trains on the CPU and, when torch sees a GPU, on the GPU as well; the
single-prediction latency is always measured on the CPU (that is where the trader serves the model).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import replace

import numpy as np


def _percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1000.0
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="latency samples")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per device")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for training (default: all usable cores, 1 on a busy machine)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="training devices: auto = cpu, plus cuda when present")
    args = parser.parse_args()

    import torch

    from thunes.config import DataSettings
    from thunes.data.sources import CandleQuery, load_candles
    from thunes.ml.serving import Forecaster
    from thunes.ml.train import TrainOptions, train_model

    loaded = load_candles(CandleQuery(symbol="BTC/USDT", timeframe="30m", source="sample"), DataSettings())
    candles = loaded.frame
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), torch {torch.__version__}, "
          f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    print(f"data: {len(candles)} x 30m BTC/USDT from {loaded.source}")
    base = TrainOptions(seq_len=args.seq_len, horizon=args.horizon, hidden=args.hidden, num_layers=2,
                        epochs=args.epochs, patience=args.epochs + 1, seed=1,
                        threads=args.threads)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # --- training throughput -------------------------------------------------------------------
        devices = {"auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []), "cpu": ["cpu"],
                   "cuda": ["cuda"]}[args.device]
        folder = None
        for device in devices:
            out = os.path.join(tmp, f"lstm_{device}")
            result = train_model(candles, replace(base, device=device), symbol="BTC/USDT", timeframe="30m",
                                 out_dir=out)
            amp = " (bf16 AMP)" if device == "cuda" else f" ({result.meta.metrics['threads']} thread(s))"
            rows.append((f"LSTM2Head training, {device}{amp}", f"{result.samples_per_s:,.0f} samples/s",
                         f"{result.meta.samples['train']} samples x {len(result.history)} epochs, "
                         f"hidden {args.hidden}, seq {args.seq_len}"))
            if folder is None or device == "cpu":
                folder = out  # serving latency is measured on the CPU whatever trained the model
        xgb = train_model(candles, replace(base, model="xgb", xgb_estimators=200,
                                           device=None if args.device == "auto" else args.device), symbol="BTC/USDT",
                          timeframe="30m")
        rows.append((f"XGBoost fit ({xgb.meta.metrics['device']})", f"{xgb.samples_per_s:,.0f} samples/s",
                     "2 boosters x <=200 trees, early stopping"))

        # --- single-prediction latency (1 thread) -------------------------------------------------
        torch.set_num_threads(1)
        fc = Forecaster.load(folder, backend="onnx", threads=1)
        for _ in range(50):
            fc.predict_latest(candles)
        full, infer = [], []
        x = fc.scaler.transform_array(fc.latest_window(candles))[None]
        for _ in range(args.calls):
            t0 = time.perf_counter()
            fc.predict_latest(candles)
            t1 = time.perf_counter()
            fc._predict(x)
            t2 = time.perf_counter()
            full.append(t1 - t0)
            infer.append(t2 - t1)
        p50, p99 = _percentiles(full)
        i50, i99 = _percentiles(infer)
        rows.insert(0, ("prediction: features + scale + ONNX (1 thread)", f"p50 {p50:.3f} ms, p99 {p99:.3f} ms",
                        f"target p99 < 2 ms: {'MET' if p99 < 2.0 else 'MISSED'}; {fc.history} candles read"))
        rows.insert(1, ("  of which onnxruntime inference", f"p50 {i50:.3f} ms, p99 {i99:.3f} ms",
                        f"{args.calls} calls"))

    width = max(len(r[0]) for r in rows)
    print()
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:<30}  {note}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (figures on a busy machine are pessimistic)")


if __name__ == "__main__":
    main()
