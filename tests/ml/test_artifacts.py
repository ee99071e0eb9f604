"""Artifacts: round trip, torch == ONNX, the checkpoint shapes found in the wild, architecture inference."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from thunes.core.errors import DataError  # noqa: E402
from thunes.ml.artifacts import (  # noqa: E402
    ModelMeta,
    extract_state_dict,
    infer_lstm_arch,
    load_model,
    save_model,
)
from thunes.ml.dataset import FeatureScaler  # noqa: E402
from thunes.ml.models.lstm import LSTM2Head, two_head_loss  # noqa: E402
from thunes.ml.serving import OnnxPredictor, TorchPredictor  # noqa: E402

pytestmark = pytest.mark.ml

COLS = [f"f{i}" for i in range(6)]


def _model(seed: int = 0, hidden: int = 8, layers: int = 2) -> LSTM2Head:
    torch.manual_seed(seed)
    return LSTM2Head(len(COLS), hidden, layers).eval()


def _meta(**kw) -> ModelMeta:
    base = dict(feature_cols=COLS, input_size=len(COLS), hidden=8, num_layers=2, seq_len=12, horizon=4,
                target_scale=0.01)
    base.update(kw)
    return ModelMeta(**base)


def _x(n: int = 5, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 12, len(COLS))).astype("float32")


def test_lstm2head_outputs_a_return_and_a_positive_volatility():
    model = _model()
    x = torch.from_numpy(_x(4) * 50)  # large inputs push the vol head towards 0; it must stay positive

    ret, vol = model(x)

    assert ret.shape == vol.shape == (4,)
    assert bool((vol > 0).all())


def test_two_head_loss_is_mse_plus_weighted_gaussian_nll():
    mu, sigma, y = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0])

    total, ret_loss, vol_loss = two_head_loss(mu, sigma, y, vol_weight=0.5)

    assert float(ret_loss) == pytest.approx(0.5)  # ((0-1)^2 + 0) / 2
    expected_nll = (0.5 * (np.log(1.0) + 1.0) + 0.5 * (np.log(4.0) + 0.0)) / 2
    assert float(vol_loss) == pytest.approx(expected_nll, rel=1e-6)
    assert float(total) == pytest.approx(0.5 + 0.5 * expected_nll, rel=1e-6)


def test_round_trip_and_onnx_agree_with_torch_within_1e5(tmp_path):
    model = _model()
    scaler = FeatureScaler(feature_names=tuple(COLS), mean=np.arange(6.0), scale=np.ones(6), fit_rows=10)
    save_model(tmp_path, model, _meta(), scaler)

    loaded, meta = load_model(tmp_path, check_features=False)
    x = _x(7)
    want = TorchPredictor(model).predict(x)
    got_torch = TorchPredictor(loaded).predict(x)
    onnx = OnnxPredictor(tmp_path / "model.onnx")
    got_onnx = onnx.predict(x)
    got_single = onnx.predict(x[:1])  # batch size differs from the export's

    np.testing.assert_array_equal(got_torch[0], want[0])
    np.testing.assert_allclose(got_onnx[0], want[0], atol=1e-5)
    np.testing.assert_allclose(got_onnx[1], want[1], atol=1e-5)
    np.testing.assert_allclose(got_single[0], want[0][:1], atol=1e-5)
    assert (meta.input_size, meta.hidden, meta.num_layers, meta.seq_len, meta.horizon) == (6, 8, 2, 12, 4)
    assert meta.scaler is not None and meta.scaler.feature_names == tuple(COLS)
    written = json.loads((tmp_path / "meta.json").read_text())
    assert written["feature_cols"] == COLS and written["onnx"] == "model.onnx"
    assert written["code_version"].startswith("thunes ")


def _wrap(state: dict, shape: str) -> object:
    if shape == "bare":
        return state
    if shape == "state":
        return {"state": state, "epoch": 7}
    if shape == "model_state_dict":
        return {"model_state_dict": state, "optimizer_state_dict": {}, "epoch": 3}
    if shape == "nested":
        return {"checkpoint": 1, "state_dict": {"model": state}}
    if shape == "module":
        return {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    if shape == "compiled+dp":
        return {f"_orig_mod.module.{k}": v for k, v in state.items()}
    if shape == "aliases":
        renamed = {k.replace("ret_head", "fc_ret").replace("vol_head", "volatility_head"): v
                   for k, v in state.items()}
        return {"model_state_dict": {f"module.{k}": v for k, v in renamed.items()}}
    raise AssertionError(shape)


@pytest.mark.parametrize("shape", ["bare", "state", "model_state_dict", "nested", "module", "compiled+dp",
                                   "aliases"])
def test_legacy_checkpoint_shapes_load_and_predict_the_same(tmp_path, shape):
    model = _model(seed=5, hidden=16, layers=3)
    torch.save(_wrap(model.state_dict(), shape), tmp_path / "legacy.pth")

    loaded, meta = load_model(tmp_path / "legacy.pth", check_features=False)  # no meta.json at all

    assert (meta.input_size, meta.hidden, meta.num_layers) == (6, 16, 3)
    x = torch.from_numpy(_x(3))
    with torch.no_grad():
        for a, b in zip(loaded(x), model(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_architecture_is_inferred_from_weight_shapes():
    state = LSTM2Head(11, 24, 2).state_dict()

    assert infer_lstm_arch(state) == {"input_size": 11, "hidden": 24, "num_layers": 2}


def test_meta_that_contradicts_the_weights_is_refused(tmp_path):
    save_model(tmp_path, _model(), _meta(), None, onnx=False)
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["hidden"] = 32
    (tmp_path / "meta.json").write_text(json.dumps(meta))

    with pytest.raises(DataError, match="meta.json says hidden=32 but the weights have hidden=8"):
        load_model(tmp_path, check_features=False)


def test_checkpoint_without_weights_is_a_clear_error():
    with pytest.raises(DataError, match="no state dict"):
        extract_state_dict({"epoch": 1, "config": {"hidden": 3}})


def test_checkpoint_side_info_fills_an_incomplete_meta(tmp_path):
    model = _model()
    torch.save({"model_state_dict": model.state_dict(),
                "config": {"seq_len": 12, "horizon": 4, "features": COLS, "hidden_size": 8},
                "scaler": {"mean": [0.0] * 6, "scale": [2.0] * 6}}, tmp_path / "model.pt")

    _, meta = load_model(tmp_path, check_features=False)

    assert (meta.seq_len, meta.horizon, meta.feature_cols) == (12, 4, COLS)
    assert meta.scaler is not None and meta.scaler.feature_names == tuple(COLS)
    np.testing.assert_array_equal(meta.scaler.scale, np.full(6, 2.0))
