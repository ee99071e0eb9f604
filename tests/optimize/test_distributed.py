"""Two worker processes on one PostgreSQL study share its trials without duplicating them."""

from __future__ import annotations

import collections
import json

import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from thunes.cli import root
from thunes.core.errors import DataError
from thunes.core.redact import redact_url
from thunes.optimize.storage import normalize_storage_url
from thunes.optimize.study import StudySpec, load_study, run_study, trial_result
from thunes.optimize.worker import run_worker

pytestmark = pytest.mark.postgres


def test_plain_postgres_urls_get_the_psycopg_driver() -> None:
    assert normalize_storage_url("postgresql://u:p@h:5/db") == "postgresql+psycopg://u:p@h:5/db"
    assert normalize_storage_url("postgres://h/db") == "postgresql+psycopg://h/db"
    assert normalize_storage_url("sqlite:///a/b.sqlite") == "sqlite:///a/b.sqlite"
    assert redact_url("postgresql://bot:s3cret@db:5432/optuna") == "postgresql://bot:***@db:5432/optuna"


def test_two_workers_share_one_postgres_study(postgres_url: str, btc_1h, tmp_path) -> None:  # noqa: ANN001
    # The command of the issue: `thunes optimize --storage postgresql://… --workers 2` (itself + 1 process).
    since = str(btc_1h.frame.index[-4000])

    result = CliRunner().invoke(root, [
        "--set", f"optimize.artifacts_dir={tmp_path}", "--set", f"data.url=sqlite:///{tmp_path}/none.sqlite",
        "optimize", "--storage", postgres_url, "--workers", "2", "--study", "shared", "--trials", "10",
        "--sample", "--since", since, "--walk-forward", "none", "--range", "fast=3:60", "--range", "slow=20:300", "--no-progress",
    ], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert "2 worker(s)" in result.stderr
    study, _ = load_study(postgres_url, "shared")
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    per_worker = collections.Counter(trial_result(t)["worker"] for t in complete)
    summary = json.loads((tmp_path / "shared" / "summary.json").read_text())
    assert summary["trials"]["complete"] == len(complete) == 10
    assert len(per_worker) == 2 and sorted(per_worker.values()) == [5, 5]  # both worked, 5 each
    assert {w.rsplit(":", 1)[1] for w in per_worker} == {"0", "1"}
    assert len({w.split(":")[1] for w in per_worker}) == 2  # two processes (worker ids carry the pid)
    # Every trial number was handed out once: no trial was run by two workers.
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # Workers are seeded apart, so they do not propose the same parameter sets (a coincidence is possible
    # once TPE converges, hence "at most one").
    assert summary["trials"]["distinct"] >= 9


def test_a_worker_joins_by_name_and_refuses_other_data(postgres_url: str, candles) -> None:  # noqa: ANN001
    spec = StudySpec(strategy="sma_cross", ranges={"fast": (3, 60), "slow": (20, 300)}).for_window(candles, "sample")
    run_study(spec, candles, n_trials=2, storage_url=postgres_url, study_name="join", progress=False)

    report = run_worker(postgres_url, "join", 3, worker_id="elsewhere:1")

    study, _ = load_study(postgres_url, "join")
    workers = collections.Counter(trial_result(t)["worker"] for t in study.get_trials(states=(TrialState.COMPLETE,)))
    assert report.completed == 3 and workers["elsewhere:1"] == 3 and sum(workers.values()) == 5

    tampered = StudySpec(strategy="sma_cross").for_window(candles.iloc[:-1], "sample")
    run_study(tampered, candles.iloc[:-1], n_trials=1, storage_url=postgres_url, study_name="other", progress=False)
    study, spec2 = load_study(postgres_url, "other")
    # Simulate a machine whose data differs: the study's fingerprint no longer matches the sample window.
    study.set_user_attr("thunes_spec", spec2.to_json().replace(spec2.fingerprint, "0" * 16))
    with pytest.raises(DataError, match="differ from the ones the study was created on"):
        run_worker(postgres_url, "other", 1)

