"""Ctrl-C during ``thunes optimize`` stops cleanly: finished trials are kept, one line, exit status 130.

Rule: Optuna reports a trial stopped by KeyboardInterrupt as a warning with the
whole traceback (about 60 lines); the command instead prints one ``interrupted:`` line saying where the
finished trials are kept, and a second run resumes them.
"""

from __future__ import annotations

import optuna
import pandas as pd

from thunes.cli import main
from thunes.optimize import study as study_mod


def test_ctrl_c_keeps_finished_trials_prints_one_line_and_exits_130(tmp_path, capfd, monkeypatch, btc_1h):
    real_call = study_mod.TrialEvaluator.__call__
    calls = {"n": 0}

    def interrupted_on_the_fourth_trial(self, trial):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # what SIGINT raises in the main thread, mid-backtest
        return real_call(self, trial)

    monkeypatch.setattr(study_mod.TrialEvaluator, "__call__", interrupted_on_the_fourth_trial)
    storage = f"sqlite:///{tmp_path}/studies.sqlite"
    since = (btc_1h.frame.index[-1] - pd.Timedelta(days=120)).strftime("%Y-%m-%d")
    try:
        main(["--set", f"optimize.artifacts_dir={tmp_path}/art", "--set", f"data.url=sqlite:///{tmp_path}/none.sqlite",
              "optimize", "--storage", storage, "--study", "ctrl-c", "--trials", "20", "--walk-forward", "none",
              "--since", since, "--source", "sample", "--no-progress"])
        code = 0
    except SystemExit as exc:
        code = exc.code

    err = capfd.readouterr().err
    assert code == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    interrupted = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert interrupted == [f"interrupted: study 'ctrl-c' stopped; finished trials are kept in {storage}; "
                           "run the same command again to resume"]
    kept = optuna.load_study(study_name="ctrl-c", storage=storage)
    states = [t.state for t in kept.get_trials(deepcopy=False)]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
