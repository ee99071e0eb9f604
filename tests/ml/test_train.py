"""Training end to end on (real or synthetic) candles: determinism, meta.json, leakage gate, serving parity."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from thunes.core.errors import ConfigError  # noqa: E402
from thunes.features import compute_features, get_feature_set  # noqa: E402
from thunes.ml.artifacts import ModelCompatibilityError, load_model  # noqa: E402
from thunes.ml.serving import Forecaster  # noqa: E402
from thunes.ml.train import LeakageDetected, TrainOptions, pick_device, resolve_threads, train_model  # noqa: E402

pytestmark = pytest.mark.ml

@pytest.fixture()
def candles(ml_candles) -> pd.DataFrame:
    return ml_candles


@pytest.fixture()
def trained(tiny_model):
    return tiny_model


@pytest.fixture()
def TINY(tiny_options) -> TrainOptions:  # noqa: N802 - reads as the constant it stands for
    return tiny_options


def test_training_is_deterministic_on_cpu(candles, trained, TINY):
    first, _ = trained

    again = train_model(candles, TINY, symbol="BTC/USDT", timeframe="1h")

    for (name, a), (_, b) in zip(first.model.state_dict().items(), again.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"weights {name} differ between two seeded runs")
    assert again.meta.metrics["test"]["ic"] == first.meta.metrics["test"]["ic"]
    other = train_model(candles, replace(TINY, seed=4), symbol="BTC/USDT", timeframe="1h")
    assert not torch.equal(other.model.ret_head.weight, first.model.ret_head.weight)


def test_meta_json_records_what_serving_and_audits_need(trained, candles):
    result, folder = trained
    meta = json.loads((folder / "meta.json").read_text())
    spec = get_feature_set("compact")

    assert meta["feature_set"] == "compact" and meta["feature_set_hash"] == spec.hash
    assert meta["feature_cols"] == list(spec.columns) and meta["input_size"] == len(spec.columns)
    assert (meta["hidden"], meta["num_layers"], meta["seq_len"], meta["horizon"]) == (8, 1, 8, 4)
    train_end, val_start = pd.Timestamp(meta["train_range"][1]), pd.Timestamp(meta["val_range"][0])
    # the first validation window starts after the last training label (purge >= seq_len + horizon)
    assert val_start > train_end + pd.Timedelta(hours=4)
    assert meta["samples"]["purge"] == 12 and meta["samples"]["train"] > 500
    assert meta["leakage"] == {"findings": [], "override": False, "train_end": meta["train_range"][1]}
    assert set(meta["metrics"]["test"]) >= {"directional_accuracy", "ic", "coverage_1sigma", "vol_corr"}
    assert meta["metrics"]["train_samples_per_s"] > 0
    assert meta["last_candle"] == candles.index[-1].isoformat()
    assert meta["onnx"] == "model.onnx" and (folder / "scaler.json").exists()
    scaler = json.loads((folder / "scaler.json").read_text())
    assert scaler["fit_end"] == meta["train_range"][1]  # fitted on nothing after the training rows


def test_onnx_serving_matches_torch_within_1e5(trained, candles):
    _, folder = trained
    onnx = Forecaster.load(folder, backend="onnx")
    torch_fc = Forecaster.load(folder, backend="torch")

    a, b = onnx.predict_frame(candles), torch_fc.predict_frame(candles)

    valid = a.pred_ret.notna()
    assert valid.sum() > 1000 and valid.equals(b.pred_ret.notna())
    scale = onnx.target_scale
    np.testing.assert_allclose(a[valid] / scale, b[valid] / scale, atol=1e-5)


def test_latest_forecast_equals_the_frame_prediction_of_the_last_bar(trained, candles):
    _, folder = trained
    fc = Forecaster.load(folder)

    latest = fc.predict_latest(candles)
    frame = fc.predict_frame(candles)

    assert latest.as_of == candles.index[-1] and latest.horizon == 4
    # the live path reads warm-up + 300 bars only; recursive indicators have converged by then
    assert latest.ret == pytest.approx(frame.pred_ret.iloc[-1], rel=1e-3, abs=1e-6)
    assert latest.vol == pytest.approx(frame.pred_vol.iloc[-1], rel=1e-3)
    assert latest.vol > 0


def test_predictions_are_causal(trained, candles):
    _, folder = trained
    fc = Forecaster.load(folder)

    full = fc.predict_frame(candles)
    prefix = fc.predict_frame(candles.iloc[:900])

    pd.testing.assert_frame_equal(prefix, full.iloc[:900], rtol=1e-9, atol=1e-12)


def test_leakage_blocks_training_unless_overridden_and_recorded(candles, tmp_path, TINY):
    feats = compute_features(candles, feature_set="compact")
    feats.insert(0, "peek", np.log(candles["close"].shift(-2) / candles["close"]))  # tomorrow's news

    with pytest.raises(LeakageDetected, match="peek"):
        train_model(candles, TINY, features=feats)

    result = train_model(candles, replace(TINY, allow_leakage=True, epochs=1), features=feats, out_dir=tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["leakage"]["override"] is True
    assert any("peek" in f for f in meta["leakage"]["findings"])
    assert result.meta.feature_set_hash is None  # custom columns: not certified as the named set
    with pytest.raises(ModelCompatibilityError, match="no longer produced: \\['peek'\\]"):
        load_model(tmp_path)


def test_a_model_whose_features_changed_is_refused(trained, tmp_path):
    _, folder = trained
    for name in ("model.pt", "scaler.json", "model.onnx"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    meta = json.loads((folder / "meta.json").read_text())

    swapped = dict(meta, feature_cols=[meta["feature_cols"][1], meta["feature_cols"][0], *meta["feature_cols"][2:]])
    (tmp_path / "meta.json").write_text(json.dumps(swapped))
    with pytest.raises(ModelCompatibilityError, match="another order \\(position 0"):
        load_model(tmp_path)

    (tmp_path / "meta.json").write_text(json.dumps(dict(meta, feature_set_hash="0123456789abcdef")))
    with pytest.raises(ModelCompatibilityError, match="changed since training"):
        Forecaster.load(tmp_path, backend="onnx")

    (tmp_path / "meta.json").write_text(json.dumps(meta))
    model, loaded = load_model(tmp_path)
    assert loaded.feature_cols == meta["feature_cols"]


def test_xgboost_model_trains_saves_and_serves(candles, tmp_path, TINY):
    options = replace(TINY, model="xgb", xgb_estimators=40)

    result = train_model(candles, options, symbol="BTC/USDT", timeframe="1h", out_dir=tmp_path)
    fc = Forecaster.load(tmp_path)
    preds = fc.predict_frame(candles)

    from thunes.ml.models.xgb import xgb_device

    assert fc.backend == "xgboost" and (tmp_path / "xgb_ret.json").exists()
    assert result.meta.metrics["device"] == f"xgboost-{xgb_device()}"  # cuda when built with it and a GPU is seen
    assert json.loads((tmp_path / "meta.json").read_text())["model_type"] == "xgboost"
    valid = preds.dropna()
    assert len(valid) > 1000 and (valid.pred_vol > 0).all()
    # same inputs, same trees: the saved model reproduces the in-memory one
    ends = result.dataset.split.test
    r, _ = result.model.predict(result.dataset.windows("test"))
    np.testing.assert_allclose(preds.pred_ret.to_numpy()[ends], r * result.meta.target_scale, rtol=1e-5,
                               atol=1e-9)


def test_device_auto_picks_the_gpu_only_when_there_is_one():
    has_cuda = torch.cuda.is_available()

    assert pick_device("auto") == pick_device(None) == ("cuda" if has_cuda else "cpu")
    assert pick_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        pick_device("tpu")
    if not has_cuda:
        with pytest.raises(ConfigError, match="torch sees no CUDA GPU"):
            pick_device("cuda")


def test_threads_default_to_one_on_a_busy_machine(monkeypatch):
    import os

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 3.0, 0.0, 0.0))
    assert resolve_threads(None) == 1  # oversubscribed OpenMP threads were 17x slower than one thread
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert resolve_threads(None) == cores
    assert resolve_threads(3) == 3
    with pytest.raises(ConfigError, match="threads must be >= 1"):
        resolve_threads(0)


def test_meta_records_the_threads_and_device_used(trained):
    result, _ = trained

    assert result.meta.metrics["threads"] == 1 and result.meta.metrics["device"] == pick_device("auto")
    assert result.meta.metrics["amp"] == ("bfloat16" if torch.cuda.is_available() else None)


def test_early_stopping_keeps_the_weights_of_the_best_validation_epoch(candles, TINY):
    from thunes.ml.models.lstm import two_head_loss

    options = replace(TINY, epochs=8, patience=2, lr=0.05)  # a high rate: validation loss soon gets worse

    result = train_model(candles, options)

    val_losses = [row["val_loss"] for row in result.history]
    best = int(np.argmin(val_losses))
    assert len(result.history) == min(options.epochs, best + 1 + options.patience)
    assert len(result.history) < options.epochs  # it did stop early
    ds = result.dataset
    x = torch.from_numpy(np.nan_to_num(ds.windows("val")))
    y = torch.from_numpy((np.nan_to_num(ds.target("val")) / result.meta.target_scale).astype("float32"))
    with torch.no_grad():
        kept, _, _ = two_head_loss(*result.model(x), y, vol_weight=options.vol_weight)
    assert float(kept) == pytest.approx(val_losses[best], rel=1e-5)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_shows_epoch_metrics_on_stderr_when_it_is_a_terminal(candles, TINY, monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file or a pipe: no bar (thunes.progress)
    train_model(candles, replace(TINY, epochs=1), progress=True)
    assert sys.stderr.getvalue() == ""

    monkeypatch.setattr(sys, "stderr", _Terminal())
    train_model(candles, replace(TINY, epochs=1), progress=True)

    err = sys.stderr.getvalue()
    # the postfix is refreshed inside the epoch loop; "1/1" itself depends on tqdm's redraw interval
    assert "train:" in err and "/1 [" in err
    assert "train=" in err and "val=" in err  # the epoch's train/validation losses


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the AMP path)")
def test_gpu_training_uses_bfloat16_autocast_and_the_model_serves_on_cpu(candles, TINY, tmp_path):
    result = train_model(candles, replace(TINY, epochs=1, device="cuda"), out_dir=tmp_path)

    assert result.meta.metrics["device"] == "cuda" and result.meta.metrics["amp"] == "bfloat16"
    assert next(result.model.parameters()).device.type == "cpu"
    assert Forecaster.load(tmp_path, backend="onnx").predict_latest(candles).vol > 0


def test_xgboost_uses_the_gpu_only_when_one_is_visible(monkeypatch):
    import shutil

    xgboost = pytest.importorskip("xgboost")
    from thunes.ml.models.xgb import xgb_device

    monkeypatch.setattr(shutil, "which", lambda name: None)  # no nvidia-smi: no GPU
    assert xgb_device() == "cpu"
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    assert xgb_device() == ("cuda" if xgboost.build_info().get("USE_CUDA") else "cpu")
