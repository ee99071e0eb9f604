"""Torch stays optional: the trading core imports without it, and ONNX serving runs without it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "xgboost", "onnxruntime")


def _run(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_trading_core_and_the_cli_import_without_torch_xgboost_or_onnxruntime():
    loaded = _run(
        "import json, sys\n"
        "import thunes, thunes.cli, thunes.strategies, thunes.backtest, thunes.execution\n"
        "import thunes.ml, thunes.data.sources, thunes.ml.evaluate, thunes.ml.artifacts, thunes.ml.serving\n"
        "import thunes.strategies.model_signal\n"
        "from thunes.strategies import get_strategy, list_strategies\n"
        "assert 'model' in list_strategies() and get_strategy('model').name == 'model'\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )

    assert loaded == []


@pytest.mark.ml
def test_onnx_serving_and_the_model_strategy_need_no_torch(tiny_model, ml_candles, tmp_path):
    from thunes.ml.serving import Forecaster
    from thunes.strategies.model_signal import ModelSignalStrategy

    _, folder = tiny_model
    here = Forecaster.load(folder).predict_latest(ml_candles)
    here_entries = int(ModelSignalStrategy(model=str(folder), threshold=0.05).signals(ml_candles).entries.sum())
    ml_candles.to_parquet(tmp_path / "candles.parquet")  # the very same candles for the child process

    result = _run(
        "import json, sys\n"
        "import pandas as pd\n"
        "from thunes.ml.serving import Forecaster\n"
        "from thunes.strategies.model_signal import ModelSignalStrategy\n"
        f"candles = pd.read_parquet({str(tmp_path / 'candles.parquet')!r})\n"
        f"fc = Forecaster.load({str(folder)!r})\n"
        "latest = fc.predict_latest(candles)\n"
        f"signals = ModelSignalStrategy(model={str(folder)!r}, threshold=0.05).signals(candles)\n"
        "print(json.dumps({'backend': fc.backend, 'ret': latest.ret, 'entries': int(signals.entries.sum()),\n"
        "                  'torch': 'torch' in sys.modules, 'ort': 'onnxruntime' in sys.modules}))\n"
    )

    assert result["backend"] == "onnx" and result["ort"] is True
    assert result["torch"] is False
    assert result["ret"] == here.ret  # the same ONNX model on the same candles, in a torch-free process
    assert result["entries"] == here_entries > 0
