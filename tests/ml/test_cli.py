"""``thunes train`` → ``thunes forecast`` → ``thunes ml evaluate`` on the sample data (resampled to 2h)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from thunes.cli import root  # noqa: E402

pytestmark = pytest.mark.ml

CANDLES = ["--symbol", "BTC/USDT", "--timeframe", "2h", "--since", "2024-01-01", "--until", "2024-04-01"]


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "btc_2h"
    result = CliRunner().invoke(root, [
        "train", *CANDLES, "--feature-set", "compact", "--epochs", "1", "--seq-len", "8", "--horizon", "4",
        "--hidden", "8", "--layers", "1", "--threads", "1", "--out", str(folder), "--quiet",
    ])
    assert result.exit_code == 0, result.output
    return folder, result.output


def test_train_resamples_trains_and_reports(trained_dir):
    folder, output = trained_dir

    assert "resampled to 2h" in output  # no 2h file exists: built from the 1h sample (or synthetic)
    assert "leakage audit: clean" in output
    assert "samples/s" in output and f"model saved to {folder}" in output
    meta = json.loads((folder / "meta.json").read_text())
    assert (meta["symbol"], meta["timeframe"], meta["seq_len"], meta["horizon"]) == ("BTC/USDT", "2h", 8, 4)


def test_forecast_prints_return_volatility_and_the_model_timestamp(trained_dir):
    folder, _ = trained_dir
    meta = json.loads((folder / "meta.json").read_text())

    result = CliRunner().invoke(root, ["forecast", *CANDLES[:2], "--until", "2024-04-01", "--model", str(folder),
                                       "--json"])

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["as_of"] == "2024-03-31T22:00:00+00:00"  # the last 2h candle before --until
    assert payload["horizon_bars"] == 4 and payload["pred_vol"] > 0
    assert payload["backend"] == "onnx"
    assert payload["model_trained_at"] == meta["trained_at"]
    assert payload["model_data_until"] == meta["last_candle"]


def test_ml_evaluate_reports_out_of_sample_metrics(trained_dir):
    folder, _ = trained_dir

    result = CliRunner().invoke(root, ["ml", "evaluate", *CANDLES, "--model", str(folder), "--threshold", "0.1",
                                       "--exit-threshold", "-0.1", "--json"])

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["metrics"]["n"] > 20
    assert {"directional_accuracy", "ic", "coverage_1sigma", "bt_total_return"} <= set(out["metrics"])


def test_train_with_leaky_settings_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(root, ["train", *CANDLES, "--feature-set", "compact", "--seq-len", "8",
                                       "--horizon", "4", "--purge", "5", "--out", str(tmp_path / "m")])

    assert result.exit_code != 0
    assert "purge=5 is below seq_len + horizon = 12" in str(result.exception)
