"""Files are written atomically with the user's umask, 0600 only for secrets.

Rule: ``tempfile.mkstemp`` creates 0600 and a rename keeps it, so artifacts, caches and model metadata
written that way would be unreadable by the group and by other tools. :mod:`thunes.files` is the one
atomic writer: the result gets ``0666 & ~umask``, or 0600 with ``secret=True``. A scan keeps new code on
it.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest

from thunes.files import atomic_path, atomic_write

PACKAGE = Path(__file__).resolve().parents[1] / "thunes"

# Modules still calling mkstemp/os.open themselves. Each entry says why, or who must move it to thunes.files.
OWN_TEMP_FILES = {
    "files.py": "the helper itself",
    "config.py": "write_config_file: a config file may hold API keys, 0600 is right (secret)",
    "optimize/worker.py": "worker log files in the system temp folder, private to the user",
    "execution/audit.py": "the audit trail (owner: execution; 0600 head file, 0640 trail by design)",
    "execution/db.py": "the account lease: a lock file held open with flock, not a file written and renamed",
}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_a_written_file_gets_the_umask_and_a_secret_stays_private(tmp_path, umask_027):
    assert _mode(atomic_write(tmp_path / "report.json", "{}")) == 0o640
    assert _mode(atomic_write(tmp_path / "keys.toml", "k = 1", secret=True)) == 0o600
    with atomic_path(tmp_path / "frame.parquet") as tmp:
        tmp.write_bytes(b"x")
    assert _mode(tmp_path / "frame.parquet") == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.parquet", "keys.toml", "report.json"]


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = atomic_write(tmp_path / "a.json", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_artifacts_caches_and_model_metadata_are_not_0600(tmp_path, umask_027):
    from thunes.data._cache import ColumnarCache
    from thunes.ml.artifacts import _write_json
    from thunes.optimize.decay import write_json_atomic

    _write_json(tmp_path / "meta.json", {"a": 1})
    write_json_atomic(tmp_path / "decay.json", {"a": 1})
    cache = ColumnarCache(tmp_path / "cache")
    arrays = (np.arange(3, dtype="int64"), *(np.ones(3) for _ in range(5)))
    cache.put("store", "BTC/USDT", "1h", 1, arrays)
    written = [tmp_path / "meta.json", tmp_path / "decay.json", *(tmp_path / "cache").rglob("*.arrow")]
    assert len(written) == 3
    assert {p.name: _mode(p) for p in written} == {p.name: 0o640 for p in written}


def test_backtest_artifacts_report_and_risk_state_get_the_umask(tmp_path, umask_027, btc_1h):
    """Backtest artifacts, the HTML report and the risk state are for people and tools to read: 0640
    under umask 027, not mkstemp's 0600; and no temporary file is left beside them."""
    from thunes.backtest import run_backtest
    from thunes.backtest.artifacts import write_artifacts
    from thunes.backtest.report import write_report
    from thunes.execution.risk import write_risk_state
    from thunes.strategies import get_strategy

    result = run_backtest(btc_1h.frame.tail(300), get_strategy("sma_cross")())
    written = [*write_artifacts(result, tmp_path).values(), write_report(result, tmp_path)]
    write_risk_state(tmp_path / "risk_state.json", {"kill_switch": False})
    written.append(tmp_path / "risk_state.json")
    assert {p.name: _mode(p) for p in written} == {p.name: 0o640 for p in written}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)


def test_no_module_makes_its_own_temporary_files_without_a_reason():
    pattern = re.compile(r"\bmkstemp\(|\bos\.open\(")
    found = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if pattern.search(p.read_text())}
    assert found - set(OWN_TEMP_FILES) == set(), "use thunes.files.atomic_write / atomic_path"
