"""A worker process: join an existing study and run trials on it.

Why: a PostgreSQL-backed study can be worked on by many processes, on one machine or many. A worker
needs only the storage URL and the study name: the study holds its own description
(:class:`~thunes.optimize.study.StudySpec`), from which the worker loads the same candle window and
checks its fingerprint before running anything, so a machine with different data refuses instead of
polluting the study. Optuna's RDB storage hands every trial number out once, so workers share the
trials without duplicating them; TPE's "constant liar" keeps concurrent workers from proposing the same
parameters.

Started by ``thunes optimize --workers N`` (N - 1 of them, the command itself being the first) or by
hand on another machine: ``thunes optimize worker --storage postgresql://… --study NAME --trials 20``
(also ``python -m thunes.optimize.worker …``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from thunes.core.errors import ConfigError, DataError, ThunesError
from thunes.core.redact import redact_url
from thunes.optimize._data import candles_fingerprint, load_study_candles
from thunes.optimize.evaluator import TrialEvaluator
from thunes.optimize.quota import optimize_quota
from thunes.optimize.spec import StudySpec, reseed
from thunes.optimize.storage import StorageOptions, fail_orphaned_trials
from thunes.optimize.study_io import load_study
from thunes.optimize.trials import worker_id as local_worker_id

__all__ = ["WorkerReport", "main", "run_worker", "spawn_workers", "spec_candles"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerReport:
    worker_id: str
    study: str
    completed: int


def spec_candles(spec: StudySpec, *, store_url: str | None = None, sample_dir: str | Path | None = None
                 ) -> pd.DataFrame:
    """The candle window a study was created on, checked against its fingerprint. ``store_url`` overrides
    the store recorded in the study (which is stored without its password)."""
    source, url, file = spec.data_source, store_url, None
    if spec.data_source.startswith("store:"):
        source, url = "store", store_url or spec.data_source.split(":", 1)[1]
        if ":***@" in url:
            raise ConfigError(f"the study's candles come from {url}, stored without its password: give the "
                              "candle store URL with --store-url")
    elif spec.data_source.startswith("file:"):
        source, file = "auto", spec.data_source.split(":", 1)[1]
    elif spec.data_source not in ("sample", "synthetic"):
        raise ConfigError(f"the study's candles come from {spec.data_source!r}, which this version cannot "
                          "reload")
    data = load_study_candles(spec.symbol, spec.timeframe, source=source, store_url=url, file=file,
                              since=spec.start_ms, until=spec.end_ms, sample_dir=sample_dir)
    if spec.fingerprint is not None and candles_fingerprint(data.frame) != spec.fingerprint:
        raise DataError(
            f"this machine's {spec.symbol} {spec.timeframe} candles ({data.description}, "
            f"{len(data.frame)} rows) "
            f"differ from the ones the study was created on (fingerprint {spec.fingerprint}); "
            "import the same data before joining"
        )
    return data.frame


def run_worker(
    storage_url: str,
    study_name: str,
    n_trials: int,
    *,
    worker_id: str | None = None,
    worker_index: int = 1,
    store_url: str | None = None,
    sample_dir: str | Path | None = None,
    storage_options: StorageOptions | None = None,
) -> WorkerReport:
    """Complete ``n_trials`` trials of an existing study (pruned ones do not count). ``worker_index``
    varies the sampler seed so concurrent workers do not propose the same start-up trials."""
    study, spec = load_study(storage_url, study_name, storage_options=storage_options)
    fail_orphaned_trials(study, (storage_options or StorageOptions()).grace_period_s)
    reseed(study, spec, worker_index)
    candles = spec_candles(spec, store_url=store_url, sample_dir=sample_dir)
    evaluator = TrialEvaluator(spec, candles, worker_id=worker_id)
    done = optimize_quota(study, evaluator, n_trials)
    return WorkerReport(worker_id=evaluator.worker_id, study=study_name, completed=done)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thunes.optimize.worker",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--storage", required=True, help="storage URL of the study (postgresql://…)")
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--trials", type=int, required=True, help="trials this worker completes")
    parser.add_argument("--worker-index", type=int, default=1,
                        help="index shown in the trials' worker id; also varies the sampler seed")
    parser.add_argument("--store-url", default=None, help="candle store URL (default: the study's)")
    parser.add_argument("--sample-dir", default=None, help="sample data folder (default: ../shared/data)")
    parser.add_argument("--heartbeat", type=int, default=StorageOptions().heartbeat_interval_s)
    parser.add_argument("--grace", type=int, default=StorageOptions().grace_period_s)
    args = parser.parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        report = run_worker(args.storage, args.study, args.trials,
                            worker_id=local_worker_id(args.worker_index), worker_index=args.worker_index,
                            store_url=args.store_url, sample_dir=args.sample_dir,
                            storage_options=StorageOptions(heartbeat_interval_s=args.heartbeat,
                                                           grace_period_s=args.grace))
    except ThunesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"worker {report.worker_id}: completed {report.completed} trial(s) of {report.study} "
          f"on {redact_url(args.storage)}")
    return 0


def spawn_workers(storage_url: str, study_name: str, shares: Sequence[int],
                  storage_options: StorageOptions | None, *, store_url: str | None = None,
                  sample_dir: str | Path | None = None) -> list[tuple[subprocess.Popen, str]]:
    """Start one worker process (:func:`main`, this module's command line) per positive share of trials,
    with indexes 1, 2, ...; each writes its output to a log file of its own in the system temp folder,
    returned beside the process."""
    procs = []
    opts = storage_options or StorageOptions()
    for i, share in enumerate(shares, start=1):
        if share <= 0:
            continue
        fd, log = tempfile.mkstemp(prefix="thunes-optimize-worker-", suffix=".log")
        cmd = [sys.executable, "-m", "thunes.optimize.worker", "--storage", storage_url,
               "--study", study_name, "--trials", str(share), "--worker-index", str(i),
               "--heartbeat", str(opts.heartbeat_interval_s), "--grace", str(opts.grace_period_s)]
        if store_url:
            cmd += ["--store-url", store_url]
        if sample_dir:
            cmd += ["--sample-dir", str(sample_dir)]
        procs.append((subprocess.Popen(cmd, stdout=fd, stderr=subprocess.STDOUT), log))
        os.close(fd)
    return procs


if __name__ == "__main__":
    sys.exit(main())
