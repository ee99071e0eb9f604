"""``thunes train`` → ``thunes forecast`` → ``thunes ml evaluate`` on a SQLite candle store (1h, resampled to 2h).

The store holds the first quarter of 2024 from the 1h sample (real when ../shared/data is present,
synthetic otherwise), so the commands read the same kind of data with or without the sample folder.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from thunes.cli import root  # noqa: E402
from thunes.core.errors import ConfigError, InsufficientData  # noqa: E402
from thunes.data.samples import load_sample_candles  # noqa: E402
from thunes.data.store import open_store  # noqa: E402

pytestmark = pytest.mark.ml

PERIOD = ["--since", "2024-01-01", "--until", "2024-04-01"]


@pytest.fixture(scope="module")
def store_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'candles.sqlite'}"
    frame = load_sample_candles("BTC/USDT", "1h").frame.loc["2023-12-01":"2024-04-30"]
    store = open_store(url)
    try:
        store.insert("BTC/USDT", "1h", frame)
    finally:
        store.close()
    return url


@pytest.fixture(scope="module")
def candles_args(store_url) -> list[str]:
    return ["--symbol", "BTC/USDT", "--timeframe", "2h", *PERIOD, "--db", store_url, "--source", "store"]


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory, candles_args):
    folder = tmp_path_factory.mktemp("cli") / "btc_2h"
    result = CliRunner().invoke(root, [
        "train", *candles_args, "--feature-set", "compact", "--epochs", "1", "--seq-len", "8", "--horizon", "4",
        "--hidden", "8", "--layers", "1", "--threads", "1", "--out", str(folder), "--quiet",
    ])
    assert result.exit_code == 0, result.output
    return folder, result.output


def test_train_resamples_trains_and_reports(trained_dir):
    folder, output = trained_dir

    assert " 1h resampled to 2h" in output  # the store has 1h candles only
    assert "candles: BTC/USDT 2h, 1,092 bars 2024-01-01 00:00 → 2024-03-31 22:00 UTC from store" in output
    assert "leakage audit: clean" in output
    assert "samples/s on cpu (1 thread(s))" in output and f"model saved to {folder}" in output
    meta = json.loads((folder / "meta.json").read_text())
    assert (meta["symbol"], meta["timeframe"], meta["seq_len"], meta["horizon"]) == ("BTC/USDT", "2h", 8, 4)


def test_forecast_prints_return_volatility_and_the_model_timestamp(trained_dir, store_url):
    folder, _ = trained_dir
    meta = json.loads((folder / "meta.json").read_text())

    result = CliRunner().invoke(root, ["forecast", "--symbol", "BTC/USDT", "--until", "2024-04-01", "--db", store_url,
                                       "--model", str(folder), "--json"])

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["as_of"] == "2024-03-31T22:00:00+00:00"  # the last 2h candle before --until
    assert payload["horizon_bars"] == 4 and payload["pred_vol"] > 0
    assert payload["backend"] == "onnx"
    assert payload["model_trained_at"] == meta["trained_at"]
    assert payload["model_data_until"] == meta["last_candle"]


def test_ml_evaluate_reports_out_of_sample_metrics(trained_dir, candles_args):
    folder, _ = trained_dir

    result = CliRunner().invoke(root, ["ml", "evaluate", *candles_args, "--model", str(folder), "--threshold", "0.1",
                                       "--exit-threshold", "-0.1", "--json"])

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["metrics"]["n"] > 20
    assert {"directional_accuracy", "ic", "coverage_1sigma", "bt_total_return"} <= set(out["metrics"])


def test_evaluation_and_training_reports_show_baselines_verdicts_and_buy_and_hold(trained_dir, candles_args):
    """Both reports compare the model with always-long, the last return's sign and the zero forecast on
    non-overlapping periods, and say plainly whether it beats them at 95 %; the backtest has buy-and-hold beside it."""
    folder, train_output = trained_dir

    result = CliRunner().invoke(root, ["ml", "evaluate", *candles_args, "--model", str(folder), "--threshold", "0.1"])
    as_json = CliRunner().invoke(root, ["ml", "evaluate", *candles_args, "--model", str(folder), "--json"])

    assert result.exit_code == 0, result.output
    assert "non-overlapping 4-bar periods" in result.output
    assert "than always-long at 95 % on directional accuracy" in result.output
    assert "than zero-return forecast at 95 % on mean squared error" in result.output
    assert "backtest of the model strategy beside buy-and-hold" in result.output
    rows = json.loads(as_json.stdout)["baselines"]["rows"]
    assert {r["baseline"] for r in rows} == {"always-long", "sign of the last return", "zero-return forecast"}
    assert all(r["ci_low"] <= r["diff"] <= r["ci_high"] for r in rows)
    assert "verdict:" in train_output and "than always-long at 95 %" in train_output


def test_train_with_leaky_settings_is_a_clear_error(tmp_path, candles_args):
    result = CliRunner().invoke(root, ["train", *candles_args, "--feature-set", "compact", "--seq-len", "8",
                                       "--horizon", "4", "--purge", "5", "--out", str(tmp_path / "m")])

    assert result.exit_code != 0
    assert "purge=5 is below seq_len + horizon = 12" in str(result.exception)


def test_forecast_text_output_names_the_candle_and_the_model(trained_dir, store_url):
    folder, _ = trained_dir

    result = CliRunner().invoke(root, ["forecast", "--symbol", "BTC/USDT", "--until", "2024-04-01", "--db", store_url,
                                       "--model", str(folder)])

    assert result.exit_code == 0, result.output
    assert "BTC/USDT 2h  as of candle 2024-03-31 22:00 UTC, next 4 bars:" in result.stdout
    assert "predicted return" in result.stdout and "predicted volatility" in result.stdout
    assert f"model {folder.name} (onnx), trained " in result.stdout


def test_a_fresh_clone_without_any_candles_is_told_which_command_to_run(tmp_path, monkeypatch):
    import thunes.data.samples as samples

    monkeypatch.delenv("THUNES_SAMPLE_DIR", raising=False)
    monkeypatch.setattr(samples, "_REPO_ROOT", tmp_path / "clone")  # no ../shared/data beside this "clone"
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "data" / "thunes.sqlite"

    result = CliRunner().invoke(root, ["train", "--symbol", "BTC/USDT", "--timeframe", "30m", "--epochs", "20",
                                       "--seq-len", "32", "--horizon", "10", "--db", f"sqlite:///{empty}"])

    assert isinstance(result.exception, InsufficientData)  # `thunes` prints "error: ..." and exits 2
    message = str(result.exception)
    assert f"in the candle store sqlite:///{empty} and no sample file" in message
    assert "thunes data download --symbol BTC/USDT --timeframe 30m --since 2024-01-01" in message
    assert "--source synthetic" in message
    assert not empty.exists()  # looking did not create an empty store
    assert not (tmp_path / "artifacts").exists()


def test_device_cuda_without_a_gpu_is_refused_before_training(candles_args, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")

    result = CliRunner().invoke(root, ["train", *candles_args, "--feature-set", "compact", "--seq-len", "8",
                                       "--horizon", "4", "--device", "cuda", "--out", str(tmp_path / "m")])

    assert isinstance(result.exception, ConfigError)
    assert "torch sees no CUDA GPU; use --device auto or cpu" in str(result.exception)
    assert not (tmp_path / "m").exists()


def test_forecast_without_model_picks_the_newest_model_for_the_symbol(trained_dir, store_url, tmp_path):
    folder, _ = trained_dir
    meta = json.loads((folder / "meta.json").read_text())
    decoy = folder.parent / "eth_newer"  # newer, but for another symbol
    decoy.mkdir(exist_ok=True)
    (decoy / "meta.json").write_text(json.dumps(dict(meta, symbol="ETH/USDT", trained_at="2999-01-01T00:00:00")))

    result = CliRunner().invoke(root, ["forecast", "--symbol", "BTC/USDT", "--timeframe", "2h", "--until", "2024-04-01",
                                       "--db", store_url, "--json"],
                                env={"THUNES_ML__ARTIFACTS_DIR": str(folder.parent)})

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == str(folder)
    missing = CliRunner().invoke(root, ["forecast", "--symbol", "SOL/USDT", "--db", store_url],
                                 env={"THUNES_ML__ARTIFACTS_DIR": str(folder.parent)})
    assert "no trained model for SOL/USDT" in str(missing.exception)


def test_ml_info_prints_meta_json(trained_dir):
    folder, _ = trained_dir

    result = CliRunner().invoke(root, ["ml", "info", str(folder)])

    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["model_type"], info["feature_set"], info["seq_len"]) == ("lstm2head", "compact", 8)
    assert info["leakage"]["override"] is False and "scaler" not in info


def test_ml_export_onnx_converts_a_legacy_checkpoint_and_checks_parity(tmp_path):
    import torch

    from thunes.ml.models.lstm import LSTM2Head

    torch.manual_seed(0)
    model = LSTM2Head(5, 8, 1)
    torch.save({"epoch": 9, "model_state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}},
               tmp_path / "best.pth")

    result = CliRunner().invoke(root, ["ml", "export-onnx", str(tmp_path / "best.pth"), "--seq-len", "6"])

    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'model.onnx'}" in result.output
    diff = float(result.output.split("max |torch - onnx| = ")[1].split(")")[0])
    assert diff < 1e-5
    no_len = CliRunner().invoke(root, ["ml", "export-onnx", str(tmp_path / "best.pth")])
    assert "the checkpoint has no seq_len; pass --seq-len" in str(no_len.exception)
