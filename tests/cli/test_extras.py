"""A command that needs an optional extra which is not installed says which extra to install, in one line.

Rule (issue 14, item 4): ``thunes forecast`` without the ``ml`` extra used to end in
``ModuleNotFoundError: No module named 'onnxruntime'``; every command goes through ``thunes.cli.main``,
which maps a missing module of any extra to ``error: ... pip install 'thunes[ml]'`` and exit status 2.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

from thunes.cli import main
from thunes.core.extras import EXTRA_MODULES, extra_for_module

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
NOT_PRODUCT_EXTRAS = {"dev", "oracle"}  # test tools and the separate oracle environment


def _run(capsys, *argv: str) -> tuple[int, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_forecast_without_onnxruntime_names_the_ml_extra(tmp_path, capsys, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "meta.json").write_text(json.dumps({"model_type": "lstm2head", "seq_len": 8, "horizon": 1,
                                                 "timeframe": "1h", "symbol": "BTC/USDT"}))
    (model / "model.onnx").write_bytes(b"not needed: the import fails first")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ModuleNotFoundError

    code, err = _run(capsys, "forecast", "--model", str(model), "--backend", "onnx", "--source", "synthetic")

    assert code == 2
    assert err.strip().splitlines() == [
        "error: this command needs the optional 'ml' extra (onnxruntime is not installed): pip install 'thunes[ml]'"]


def test_a_missing_module_of_no_extra_keeps_its_traceback():
    """Only extras' modules are explained; anything else is a broken install or a bug and must show."""
    assert extra_for_module("numpy") is None
    assert extra_for_module("onnxruntime.capi") == ("ml", "onnxruntime")


def test_every_distribution_of_every_product_extra_is_mapped():
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    mapped = {(extra, dist) for extra, dist in EXTRA_MODULES.values()}
    missing = []
    for extra, reqs in extras.items():
        if extra in NOT_PRODUCT_EXTRAS:
            continue
        for req in reqs:
            dist = re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower().replace("_", "-")
            if (extra, dist) not in mapped:
                missing.append(f"{extra}: {dist}")
    assert not missing, f"add to thunes.core.extras.EXTRA_MODULES: {missing}"
