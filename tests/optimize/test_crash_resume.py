"""A study killed mid-trial (kill -9) resumes: nothing is left RUNNING, orphaned trials are failed, the rest
completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import optuna
import pytest
from optuna.trial import TrialState

from thunes.optimize.storage import StorageOptions, open_storage
from thunes.optimize.study import StudySpec, run_study

_CHILD = textwrap.dedent("""
    import sys
    import optuna
    from thunes.data.samples import load_sample_candles
    from thunes.optimize.storage import StorageOptions
    from thunes.optimize.study import StudySpec, run_study
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    candles = load_sample_candles("BTC/USDT", "1h").frame.iloc[-4000:]
    spec = StudySpec(strategy="sma_cross", ranges={"fast": (3, 30), "slow": (20, 120)}).for_window(candles, "sample")
    run_study(spec, candles, n_trials=500, storage_url=sys.argv[1], study_name="crash", progress=False,
              storage_options=StorageOptions(heartbeat_interval_s=1, grace_period_s=2))
""")


def test_a_killed_sqlite_study_resumes_with_no_trial_left_running(tmp_path, candles) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path}/crash.sqlite"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, url], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    storage = None
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
            assert child.poll() is None, child.stderr.read().decode()
            try:
                storage = storage or open_storage(url)
                study = optuna.load_study(study_name="crash", storage=storage)
            except Exception:  # noqa: BLE001 - not created yet
                continue
            if len(study.get_trials(states=(TrialState.COMPLETE,))) >= 3:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    # A SQLite study is written behind its trials: only finished trials reach the file, so none is orphaned.
    assert study.get_trials(states=(TrialState.RUNNING,)) == []
    done_before = len(study.get_trials(states=(TrialState.COMPLETE,)))

    spec = StudySpec(strategy="sma_cross", ranges={"fast": (3, 30), "slow": (20, 120)}).for_window(candles, "sample")
    out = run_study(spec, candles, n_trials=done_before + 2, storage_url=url, study_name="crash", progress=False,
                    storage_options=StorageOptions(heartbeat_interval_s=1, grace_period_s=2))

    trials = out.study.get_trials()
    assert out.n_complete == done_before + 2
    assert not [t for t in trials if t.state == TrialState.RUNNING]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used:UserWarning")  # study.ask()
def test_a_trial_killed_before_its_first_heartbeat_is_failed_on_resume(tmp_path, candles) -> None:  # noqa: ANN001
    from thunes.optimize.storage import fail_orphaned_trials

    url = f"sqlite:///{tmp_path}/orphan.sqlite"
    options = StorageOptions(heartbeat_interval_s=1, grace_period_s=1)
    spec = StudySpec(strategy="sma_cross", ranges={"fast": (3, 30), "slow": (20, 120)}).for_window(candles, "sample")
    run_study(spec, candles, n_trials=1, storage_url=url, study_name="o", progress=False, storage_options=options)
    study = optuna.load_study(study_name="o", storage=open_storage(url, options=options))
    orphan = study.ask()  # RUNNING, and no heartbeat ever recorded: what a kill right after creation leaves
    time.sleep(1.2)
    young = study.ask()  # just started: may be another worker's live trial

    assert fail_orphaned_trials(study, grace_period_s=1) == [orphan.number]
    out = run_study(spec, candles, n_trials=2, storage_url=url, study_name="o", progress=False,
                    storage_options=StorageOptions(heartbeat_interval_s=1, grace_period_s=60))

    states = {t.number: t.state for t in out.study.get_trials()}
    assert states[orphan.number] == TrialState.FAIL and states[young.number] == TrialState.RUNNING
    assert out.n_complete == 2
