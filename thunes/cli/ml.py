"""``thunes train``, ``thunes forecast`` and ``thunes ml evaluate|info|export-onnx``: thin wrappers over thunes.ml."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from thunes.cli._common import CandleSourceArgs, candle_source_options, load_candles
from thunes.core.errors import ConfigError

__all__ = ["forecast", "ml_group", "register", "train"]


def _candle_source_options(fn):  # noqa: ANN001, ANN201
    """--symbol/--timeframe (the timeframe defaults to the model's) plus the shared candle-source flags."""
    options = [
        click.option("--symbol", default="BTC/USDT", show_default=True, help="Unified symbol, e.g. ETH/USDT."),
        click.option("--timeframe", default=None, help="Candle timeframe (train default: 1h; forecast/evaluate: "
                     "the model's). Missing timeframes are resampled from a finer stored one (30m from 5m)."),
    ]
    fn = candle_source_options(fn)
    for option in reversed(options):
        fn = option(fn)
    return fn


def _load(app: Any, symbol: str, timeframe: str, candles: CandleSourceArgs) -> Any:
    return load_candles(app, candles, symbol=symbol, timeframe=timeframe).frame


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _latest_model(root: Path, symbol: str | None, timeframe: str | None) -> Path:
    from thunes.services.forecast import latest_model

    return latest_model(root, symbol, timeframe)


# ---------------------------------------------------------------------------------------------- train
@click.command("train")
@_candle_source_options
@click.option("--model", "model_type", type=click.Choice(["lstm", "xgb"]), default="lstm", show_default=True,
              help="LSTM2Head (torch, exported to ONNX) or XGBoost on window aggregates.")
@click.option("--feature-set", default="default", show_default=True, help="Feature set name (thunes features list).")
@click.option("--epochs", type=int, default=None, help="Max epochs (default: settings ml.epochs).")
@click.option("--seq-len", type=int, default=None, help="Window length in bars (default: settings ml.seq_len).")
@click.option("--horizon", type=int, default=None, help="Forecast horizon in bars (default: settings ml.horizon).")
@click.option("--hidden", type=int, default=None, help="LSTM hidden size (default: settings ml.hidden).")
@click.option("--layers", type=int, default=None, help="LSTM layers (default: settings ml.num_layers).")
@click.option("--dropout", type=float, default=0.1, show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="AdamW learning rate.")
@click.option("--patience", type=int, default=5, show_default=True, help="Early stopping: epochs without "
              "validation improvement.")
@click.option("--val-frac", type=float, default=0.15, show_default=True)
@click.option("--test-frac", type=float, default=0.15, show_default=True)
@click.option("--purge", type=int, default=None, help="Bars between blocks (default and minimum: seq_len + horizon).")
@click.option("--embargo", type=int, default=0, show_default=True, help="Extra bars skipped after each boundary.")
@click.option("--seed", type=int, default=None, help="Random seed (default: settings ml.seed).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto: cuda (bfloat16 AMP) when torch sees a GPU, else cpu.")
@click.option("--threads", type=int, default=None,
              help="CPU threads for torch/XGBoost (default: all usable cores, 1 when the load average says the "
                   "machine is busy).")
@click.option("--allow-leakage", is_flag=True, help="Train despite leakage-audit findings (recorded in meta.json).")
@click.option("--no-onnx", is_flag=True, help="Do not export model.onnx.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Model folder (default: <ml.artifacts_dir>/<SYMBOL>_<tf>_<model>_<UTC time>).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def train(app: Any, symbol: str, timeframe: str | None, candles: CandleSourceArgs, model_type: str, feature_set: str,
          epochs: int | None, seq_len: int | None,
          horizon: int | None, hidden: int | None, layers: int | None, dropout: float, batch_size: int, lr: float,
          patience: int, val_frac: float, test_frac: float, purge: int | None, embargo: int, seed: int | None,
          device: str | None, threads: int | None, allow_leakage: bool, no_onnx: bool, out_dir: str | None, quiet: bool,
          as_json: bool) -> None:
    """Train a return/volatility model on SYMBOL candles and save it in one folder.

    The leakage audit runs first and blocks training on a finding (unless --allow-leakage). The split is
    temporal (train/val/test) with a purge of at least seq_len + horizon bars; the scaler sees training
    rows only; windows spanning data gaps are dropped. Candles come from the store, else the sample files
    (resampled: 30m from 5m); with neither, the command names the `thunes data` command to run first.

    \b
    Examples:
      thunes train --symbol BTC/USDT --timeframe 30m --epochs 20 --seq-len 32 --horizon 10
      thunes train --symbol ETH/USDT --timeframe 1h --model xgb
      thunes train --symbol BTC/USDT --timeframe 30m --source synthetic --epochs 2   # try it without data
    """
    from thunes.ml.train import TrainOptions, pick_device, train_model

    if model_type == "lstm":
        pick_device(device)  # a GPU that is not there is an error now, not after the features are computed
    ml = app.settings.ml
    tf = timeframe or "1h"
    options = TrainOptions(
        model=model_type, feature_set=feature_set, seq_len=seq_len or ml.seq_len, horizon=horizon or ml.horizon,
        hidden=hidden or ml.hidden, num_layers=layers or ml.num_layers, dropout=dropout,
        epochs=epochs or ml.epochs, batch_size=batch_size, lr=lr, patience=patience, val_frac=val_frac,
        test_frac=test_frac, purge=purge, embargo=embargo, seed=ml.seed if seed is None else seed,
        device=device, threads=threads, allow_leakage=allow_leakage, onnx=not no_onnx,
    )
    frame = _load(app, symbol, tf, candles)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    folder = Path(out_dir) if out_dir else Path(ml.artifacts_dir) / (
        f"{symbol.replace('/', '')}_{tf}_{model_type}_{stamp}")
    result = train_model(frame, options, symbol=symbol, timeframe=tf, out_dir=folder, progress=not (quiet or as_json))
    meta = result.meta
    s = meta.samples
    if as_json:
        click.echo(json.dumps({"model": str(folder), "model_type": model_type, "symbol": symbol, "timeframe": tf,
                               "samples": s, "leakage": meta.leakage, "metrics": meta.metrics,
                               "epochs": len(result.history) if model_type == "lstm" else None,
                               "train_seconds": result.train_seconds}, indent=2, default=str))
        return
    click.echo(f"samples: train {s['train']}, val {s['val']}, test {s['test']} (purge {s['purge']}, embargo "
               f"{s['embargo']}; dropped: {s['dropped_gap']} gap, {s['dropped_warmup']} warm-up, "
               f"{s['purged']} purged)")
    if meta.leakage.get("override"):
        click.secho(f"leakage audit: {len(meta.leakage['findings'])} finding(s) OVERRIDDEN (recorded in meta.json)",
                    fg="yellow")
    else:
        click.echo("leakage audit: clean")
    for part in ("val", "test"):
        m = meta.metrics.get(part)
        if m:
            click.echo(f"{part:>5}: dir.acc {_fmt(m['directional_accuracy'])}  IC {_fmt(m['ic'])}  "
                       f"coverage 1σ {_fmt(m['coverage_1sigma'])} 2σ {_fmt(m['coverage_2sigma'])}  "
                       f"vol corr {_fmt(m['vol_corr'])}")
            if m.get("baselines"):
                from thunes.ml.evaluate import format_comparison

                for line in format_comparison(m["baselines"]):
                    click.echo(f"       {line}")
    epochs_run = len(result.history) if model_type == "lstm" else "-"
    click.echo(f"training: {epochs_run} epoch(s), {result.train_seconds:.1f} s, "
               f"{result.samples_per_s:,.0f} samples/s on {meta.metrics.get('device')} "
               f"({meta.metrics.get('threads')} thread(s))")
    click.echo(f"model saved to {folder}")


# ------------------------------------------------------------------------------------------- forecast
@click.command("forecast")
@_candle_source_options
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Model folder (default: the newest under ml.artifacts_dir for this symbol/timeframe).")
@click.option("--backend", type=click.Choice(["auto", "onnx", "torch"]), default="auto", show_default=True,
              help="auto uses model.onnx (no torch needed) when present.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def forecast(app: Any, symbol: str, timeframe: str | None, candles: CandleSourceArgs, model_dir: str | None,
             backend: str, as_json: bool) -> None:
    """Predict the next-horizon return and volatility from the latest candles.

    Prints the predicted log return over the model's horizon (and in %), the predicted volatility, the
    open time of the candle the forecast is made at, and when the model was trained on data up to when.

    \b
    Examples:
      thunes forecast --symbol BTC/USDT --timeframe 30m          # newest BTC/USDT 30m model
      thunes forecast --model artifacts/models/btc30 --json
    """
    from thunes.ml.serving import Forecaster

    folder = Path(model_dir) if model_dir else _latest_model(Path(app.settings.ml.artifacts_dir), symbol, timeframe)
    forecaster = Forecaster.load(folder, backend=backend)
    tf = timeframe or forecaster.meta.timeframe or "1h"
    if forecaster.meta.timeframe and tf != forecaster.meta.timeframe:
        raise ConfigError(f"model {folder} was trained on {forecaster.meta.timeframe} candles, not {tf}")
    frame = _load(app, symbol, tf, candles)
    fc = forecaster.predict_latest(frame)
    payload = {
        "symbol": symbol, "timeframe": tf, "as_of": fc.as_of.isoformat(), "horizon_bars": fc.horizon,
        "pred_return": fc.ret, "pred_return_pct": (math.exp(fc.ret) - 1) * 100, "pred_vol": fc.vol,
        "model": str(folder), "backend": forecaster.backend, "model_trained_at": fc.model_trained_at,
        "model_data_until": fc.model_last_candle,
    }
    if as_json:
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(f"{symbol} {tf}  as of candle {fc.as_of:%Y-%m-%d %H:%M} UTC, next {fc.horizon} bars:")
    click.echo(f"  predicted return     {payload['pred_return_pct']:+.3f} %  (log {fc.ret:+.5f})")
    click.echo(f"  predicted volatility {fc.vol * 100:.3f} %  (return/vol {fc.ret / fc.vol:+.2f})")
    click.echo(f"  model {folder.name} ({forecaster.backend}), trained {fc.model_trained_at} on data up to "
               f"{fc.model_last_candle}")


# ----------------------------------------------------------------------------------------------- ml …
@click.group("ml")
def ml_group() -> None:
    """Machine-learning models: evaluate, inspect, export (train and forecast are top-level commands).

    \b
    Examples:
      thunes train --symbol BTC/USDT --timeframe 1h
      thunes ml info artifacts/models/btc1h
    """


@ml_group.command("evaluate")
@_candle_source_options
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Model folder (default: the newest for this symbol/timeframe).")
@click.option("--threshold", type=float, default=0.5, show_default=True,
              help="Model strategy: enter when pred_return > threshold * pred_vol.")
@click.option("--exit-threshold", type=float, default=0.0, show_default=True,
              help="Model strategy: exit when pred_return < exit_threshold * pred_vol.")
@click.option("--walk-forward", "folds", type=int, default=0, show_default=True,
              help="Also retrain over N expanding-window folds with the model's training options.")
@click.option("--epochs", type=int, default=None, help="Epochs per walk-forward fold (default: the model's).")
@click.option("--no-backtest", is_flag=True, help="Prediction metrics only.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def evaluate(app: Any, symbol: str, timeframe: str | None, candles: CandleSourceArgs, model_dir: str | None,
             threshold: float, exit_threshold: float, folds: int,
             epochs: int | None, no_backtest: bool, as_json: bool) -> None:
    """Out-of-sample metrics of a model, a backtest of its strategy, optionally walk-forward retraining.

    Metrics: directional accuracy, information coefficient (rank), volatility calibration (coverage of
    1σ/2σ bands, z-score std, realised/predicted vol ratio and correlation), and a backtest of the
    model strategy on the rows the model never saw.

    \b
    Examples:
      thunes ml evaluate --symbol BTC/USDT --timeframe 30m --threshold 0.3
      thunes ml evaluate --model artifacts/models/btc30 --walk-forward 3 --epochs 5
    """
    from thunes.ml.evaluate import evaluate_model, walk_forward
    from thunes.ml.serving import Forecaster
    from thunes.ml.train import TrainOptions

    folder = Path(model_dir) if model_dir else _latest_model(Path(app.settings.ml.artifacts_dir), symbol, timeframe)
    forecaster = Forecaster.load(folder)
    tf = timeframe or forecaster.meta.timeframe or "1h"
    frame = _load(app, symbol, tf, candles)
    result = evaluate_model(forecaster, frame, backtest=not no_backtest, threshold=threshold,
                            exit_threshold=exit_threshold, symbol=symbol, timeframe=tf)
    out: dict[str, Any] = {"model": str(folder), "out_of_sample_from": str(result.start), "metrics": result.metrics,
                           "baselines": result.baselines}
    if folds > 0:
        known = set(TrainOptions.__dataclass_fields__)
        opts = TrainOptions(**{k: v for k, v in (forecaster.meta.options or {}).items() if k in known})
        if epochs:
            opts = replace(opts, epochs=epochs)
        wf = walk_forward(frame, opts, folds=folds, timeframe=tf, symbol=symbol, backtest=not no_backtest,
                          threshold=threshold, progress=not as_json)
        out["walk_forward"] = {"folds": json.loads(wf.folds.to_json(orient="records", date_format="iso")),
                               "summary": wf.summary, "baselines": wf.baselines}
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
        return
    from thunes.ml.evaluate import format_comparison

    click.echo(f"model {folder}  out-of-sample from {result.start}")
    for key, value in result.metrics.items():
        if not key.startswith(("bt_", "bh_")):
            click.echo(f"  {key:<22} {_fmt(value)}")
    for line in format_comparison(result.baselines or {}):
        click.echo(line)
    if result.backtest is not None:
        m = result.metrics
        click.echo("backtest of the model strategy beside buy-and-hold (same bars, fees and slippage):")
        click.echo(f"  {'':<16} {'model':>12} {'buy-and-hold':>14}")
        for key in ("total_return", "sharpe", "max_drawdown", "n_trades", "exposure"):
            click.echo(f"  {key:<16} {_fmt(m.get('bt_' + key)):>12} {_fmt(m.get('bh_' + key)):>14}")
    if folds > 0:
        click.echo(f"walk-forward ({folds} folds, expanding window):")
        cols = [c for c in ("fold", "test_start", "test_end", "n", "directional_accuracy", "ic", "coverage_1sigma",
                            "bt_total_return", "bt_n_trades") if c in wf.folds.columns]
        click.echo(wf.folds[cols].to_string(index=False))
        click.echo("  pooled: " + ", ".join(f"{k} {_fmt(v)}" for k, v in wf.summary.items()
                                            if k in ("n", "directional_accuracy", "ic", "coverage_1sigma",
                                                     "ic_non_overlapping")))
        for line in format_comparison(wf.baselines or {}):
            click.echo(f"  {line}")


@ml_group.command("info")
@click.argument("model_dir", type=click.Path(exists=True))
def info(model_dir: str) -> None:
    """Print a model folder's meta.json (feature set, shapes, date ranges, metrics, leakage audit).

    \b
    Example:
      thunes ml info artifacts/models/btc1h
    """
    from thunes.ml.artifacts import load_meta

    click.echo(json.dumps(load_meta(model_dir).to_dict(), indent=2, default=str))


@ml_group.command("export-onnx")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("--seq-len", type=int, default=None, help="Window length (default: from meta.json).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="ONNX file (default: model.onnx beside the checkpoint).")
def export_onnx_cmd(checkpoint: str, seq_len: int | None, out_path: str | None) -> None:
    """Export an LSTM checkpoint (a model folder or a legacy .pt/.pth) to ONNX and check it against torch.

    \b
    Example:
      thunes ml export-onnx artifacts/models/btc1h --out artifacts/models/btc1h/model.onnx
    """
    import numpy as np

    from thunes.ml.artifacts import export_onnx, load_model
    from thunes.ml.serving import OnnxPredictor, TorchPredictor

    model, meta = load_model(checkpoint, check_features=False)
    length = seq_len or meta.seq_len
    if not length:
        raise ConfigError("the checkpoint has no seq_len; pass --seq-len")
    path = Path(out_path) if out_path else Path(checkpoint if Path(checkpoint).is_dir() else Path(checkpoint).parent) \
        / "model.onnx"
    export_onnx(model, path, seq_len=int(length))
    x = np.random.default_rng(0).normal(size=(8, int(length), int(meta.input_size))).astype("float32")
    diff = max(float(np.abs(a - b).max()) for a, b in zip(TorchPredictor(model).predict(x),
                                                            OnnxPredictor(path).predict(x)))
    click.echo(f"wrote {path} (max |torch - onnx| = {diff:.2e})")


def register(root: click.Group) -> None:
    root.add_command(train)
    root.add_command(forecast)
    root.add_command(ml_group)
