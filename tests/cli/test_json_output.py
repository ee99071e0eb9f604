"""``--json`` on the commands that print results (issue 14, item 13): stdout is one JSON document, nothing
else, so ``thunes ... --json | jq`` works; progress and notices stay on stderr."""

from __future__ import annotations

import json

import pandas as pd
from click.testing import CliRunner

from thunes.cli import root


def _json(*args: str):
    result = CliRunner().invoke(root, list(args))
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def test_features_list_json():
    sets = _json("features", "list", "--json")
    assert {"name", "version", "warmup", "hash", "columns"} <= set(sets[0])
    one = _json("features", "list", "--set", sets[0]["name"], "--json")
    assert [s["name"] for s in one] == [sets[0]["name"]] and one[0]["columns"][0]["description"]


def test_optimize_json_is_one_document_with_the_verdict(tmp_path, btc_1h):
    since = (btc_1h.frame.index[-1] - pd.Timedelta(days=60)).strftime("%Y-%m-%d")
    out = _json("--set", f"optimize.artifacts_dir={tmp_path}/art", "optimize", "--storage", "memory", "--trials", "3",
                "--walk-forward", "none", "--source", "sample", "--since", since, "--json")
    assert out["trials"]["complete"] == 3
    assert set(out["best_params"]) >= {"fast", "slow"}
    assert isinstance(out["recommendation"]["deploy"], bool) and out["recommendation"]["reasons"]
    assert out["walk_forward"] is None and "summary" in " ".join(out["artifacts"])


def test_optimize_studies_json(tmp_path, btc_1h):
    storage = f"sqlite:///{tmp_path}/s.sqlite"
    since = (btc_1h.frame.index[-1] - pd.Timedelta(days=60)).strftime("%Y-%m-%d")
    _json("--set", f"optimize.artifacts_dir={tmp_path}/art", "optimize", "--storage", storage, "--trials", "2",
          "--walk-forward", "none", "--source", "sample", "--since", since, "--study", "s1", "--json")
    assert _json("optimize", "studies", "--storage", storage, "--json") == [
        {"study": "s1", "trials": 2, "directions": ["maximize"]}]
