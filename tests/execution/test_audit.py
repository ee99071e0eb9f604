"""The audit trail: hash chain, tamper detection, torn-tail recovery, redaction, multi-writer safety."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from thunes.core.clock import SimulatedClock
from thunes.execution.audit import GENESIS, AuditTrail, load_key, verify_audit


def _write(path: Path, n: int, fsync: str = "never") -> list:
    with AuditTrail(path, fsync=fsync, clock=SimulatedClock(1_700_000_000_000)) as trail:
        return [trail.append("risk_decision", {"i": i, "symbol": "BTC/USDT"}) for i in range(n)]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_records_are_chained_from_genesis(tmp_path):
    records = _write(tmp_path / "a.jsonl", 3)
    assert [r.seq for r in records] == [0, 1, 2]
    assert records[0].prev == GENESIS
    assert records[1].prev == records[0].hash and records[2].prev == records[1].hash
    result = verify_audit(tmp_path / "a.jsonl")
    assert result.ok and result.records == 3 and result.last_hash == records[2].hash


def test_an_edited_record_is_detected(tmp_path):
    path = tmp_path / "a.jsonl"
    _write(path, 5)
    lines = _lines(path)
    rec = json.loads(lines[2])
    rec["payload"]["symbol"] = "ETH/USDT"
    lines[2] = json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n"
    path.write_text("".join(lines))
    result = verify_audit(path)
    assert not result.ok and result.line == 3 and "edited" in result.error


def test_a_removed_record_is_detected(tmp_path):
    path = tmp_path / "a.jsonl"
    _write(path, 5)
    lines = _lines(path)
    del lines[1]
    path.write_text("".join(lines))
    result = verify_audit(path)
    assert not result.ok and result.line == 2


def test_reordered_records_are_detected(tmp_path):
    path = tmp_path / "a.jsonl"
    _write(path, 5)
    lines = _lines(path)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_text("".join(lines))
    assert not verify_audit(path).ok


def test_records_removed_from_the_end_are_detected_by_the_head_file(tmp_path):
    path = tmp_path / "a.jsonl"
    _write(path, 5)
    path.write_text("".join(_lines(path)[:3]))
    result = verify_audit(path)
    assert not result.ok and "removed from the end" in result.error


def test_a_torn_last_line_keeps_the_valid_prefix_and_the_next_writer_cuts_it(tmp_path):
    path = tmp_path / "a.jsonl"
    _write(path, 4)
    with open(path, "ab") as fh:  # a crash in the middle of a write
        fh.write(b'{"hash":"abc","kind":"fill","pay')
    torn = verify_audit(path)
    assert torn.ok and torn.torn_tail and torn.records == 4
    with AuditTrail(path, fsync="always") as trail:
        rec = trail.append("recovered", {})
    assert rec.seq == 4
    after = verify_audit(path)
    assert after.ok and not after.torn_tail and after.records == 5


def test_secrets_never_reach_the_file(tmp_path):
    path = tmp_path / "a.jsonl"
    with AuditTrail(path, fsync="never") as trail:
        trail.append("config_change", {"exchange": {"api_key": "AKIA-LEAK", "api_secret": SecretStr("s3cr3t"),
                                                    "id": "binance"}, "telegram_token": "123:TOKEN",
                                       "note": SecretStr("hidden")})
    text = path.read_text()
    assert "AKIA-LEAK" not in text and "s3cr3t" not in text and "TOKEN" not in text and "hidden" not in text
    assert '"id":"binance"' in text


def test_threads_append_one_unbroken_chain(tmp_path):
    path = tmp_path / "a.jsonl"
    trail = AuditTrail(path, fsync="never")

    def work(k: int) -> None:
        for i in range(200):
            trail.append("t", {"k": k, "i": i})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    trail.close()
    result = verify_audit(path)
    assert result.ok and result.records == 1600


def _proc_writer(path: str, k: int) -> None:
    with AuditTrail(path, fsync="never") as trail:
        for i in range(100):
            trail.append("p", {"k": k, "i": i})


def test_processes_append_one_unbroken_chain(tmp_path):
    path = tmp_path / "a.jsonl"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_proc_writer, args=(str(path), k)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    result = verify_audit(path)
    assert result.ok and result.records == 400


def test_config_changes_are_recorded_with_secrets_masked(tmp_path):
    from thunes.config import load_settings
    from thunes.execution.audit import record_config

    loaded = load_settings(env_file=None, environ={"THUNES_EXCHANGE__API_KEY": "KEY-123",
                                                   "THUNES_EXCHANGE__API_SECRET": "SECRET-456",
                                                   "THUNES_DATA__URL": "postgresql://thunes:PGPASS-789@db/candles"})
    path = tmp_path / "a.jsonl"
    with AuditTrail(path, fsync="never") as trail:
        rec = record_config(trail, loaded.settings, source="trader start", operator="alice")
    text = path.read_text()
    assert "KEY-123" not in text and "SECRET-456" not in text and "PGPASS-789" not in text
    assert rec.kind == "config_change" and len(rec.payload["settings_hash"]) == 16
    assert rec.payload["settings"]["risk"]["max_positions"] == 3


@pytest.mark.parametrize(("policy", "syncs_during_appends", "syncs_at_close"), [
    ("always", 10, 2), ("batch", 2, 2), ("never", 0, 0)])
def test_the_fsync_policy_decides_when_records_reach_the_disk(tmp_path, monkeypatch, policy, syncs_during_appends,
                                                              syncs_at_close):
    # Arrange: count the fsyncs (the disk itself cannot be observed from a test), once the key file exists
    import os

    load_key(audit_path=tmp_path / "audit.jsonl")
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    trail = AuditTrail(tmp_path / "audit.jsonl", fsync=policy, batch_size=4)
    # Act
    for i in range(10):
        trail.append("order_intent", {"i": i})
    during = len(calls)
    trail.close()
    # Assert: always = one per record; batch = one per 4 records; never = none, not even at close
    assert (during, len(calls) - during) == (syncs_during_appends, syncs_at_close)
    assert verify_audit(tmp_path / "audit.jsonl").records == 10


def _count_fsyncs(monkeypatch, fd_of) -> list[int]:
    import os

    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd) if fd == fd_of() else None, real(fd))[1])
    return calls


def test_a_group_shares_one_fsync_and_its_records_are_written_at_once(tmp_path, monkeypatch):
    # Arrange: an fsync=always trail and a counter of the fsyncs of its record file
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail(path, fsync="always")
    calls = _count_fsyncs(monkeypatch, lambda: trail._fd)
    # Act: a decision's records in a group (one nested group inside, as the executor and the risk manager do)
    with trail.group():
        trail.append("risk_decision", {"decision_id": 1})
        with trail.group():
            trail.append("order_intent", {"client_order_id": "th-1"})
        inside = (len(calls), verify_audit(path).records)
    after_group = len(calls)
    trail.append("order_result", {"client_order_id": "th-1"})
    # Assert: both records were in the file (a killed process loses nothing) but not fsynced until the outermost
    # block ended, then one fsync covered both; outside a group each record is fsynced again
    assert inside == (0, 2)
    assert after_group == 1 and len(calls) == 2 and trail.fsyncs == 2
    trail.close()
    assert verify_audit(path).records == 3


def test_a_group_that_raises_still_makes_its_records_durable(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail(path, fsync="always")
    calls = _count_fsyncs(monkeypatch, lambda: trail._fd)
    with pytest.raises(RuntimeError, match="boom"):
        with trail.group():
            trail.append("risk_decision", {"decision_id": 1})
            raise RuntimeError("boom")
    assert len(calls) == 1
    with trail.group():  # nothing written: nothing to fsync
        pass
    assert len(calls) == 1
    trail.close()


def test_a_group_does_not_defer_other_threads_or_other_policies(tmp_path, monkeypatch):
    # Arrange
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail(path, fsync="always")
    calls = _count_fsyncs(monkeypatch, lambda: trail._fd)
    # Act: another thread appends while this one holds a group open
    with trail.group():
        trail.append("order_intent", {"i": 0})
        worker = threading.Thread(target=trail.append, args=("kill_switch", {"on": True}))
        worker.start()
        worker.join()
        during = len(calls)
    # Assert: the other thread's record was fsynced at once (covering ours, so the group had nothing left)
    assert during == 1 and len(calls) == 1
    trail.close()
    batch = AuditTrail(tmp_path / "b.jsonl", fsync="batch", batch_size=100)
    calls_b = _count_fsyncs(monkeypatch, lambda: batch._fd)
    with batch.group():
        batch.append("order_intent", {"i": 0})
    assert calls_b == []  # batch keeps its own rhythm: fsync at 100 records or at close
    batch.close()


def _sync_soon_in_child(trail: AuditTrail) -> None:
    with trail.group():
        trail.append("order_intent", {"from": "child"})
        assert trail.sync_soon().result(timeout=10) is True  # the group's record, fsynced by a helper thread
    trail.close()


def test_sync_soon_works_after_a_fork(tmp_path):
    # Arrange: the helper thread is started in the parent, then the process forks
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail(path, fsync="always")
    trail.append("risk_decision", {})
    assert trail.sync_soon().result(timeout=10) is False  # nothing was waiting: the append had fsynced
    # Act: the child uses the same trail object (its helper thread did not survive the fork)
    child = mp.get_context("fork").Process(target=_sync_soon_in_child, args=(trail,))
    child.start()
    child.join(30)
    # Assert: the child neither hung nor failed, and its record continues the chain
    assert child.exitcode == 0
    trail.close()
    result = verify_audit(path)
    assert result.ok and result.records == 2


# -- a path that cannot hold an audit trail ---------------------------------------------------------------------

@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: (tmp / "a_folder").mkdir() or tmp / "a_folder", "is a directory"),
    (lambda tmp: Path("/dev/null"), "not a regular file"),
    (lambda tmp: (tmp / "a_file").write_text("x") and tmp / "a_file" / "audit.jsonl", "cannot open"),
], ids=["directory", "dev-null", "under-a-file"])
def test_a_path_that_is_not_a_writable_regular_file_is_refused_at_open(tmp_path, make, message):
    from thunes.core.errors import StoreError

    path = make(tmp_path)
    with pytest.raises(StoreError, match=message) as err:
        AuditTrail(path, fsync="never")
    assert "\n" not in str(err.value)
    assert not (path.parent / "keys").exists()  # refused before a key file was made for it


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file modes")
def test_an_unwritable_audit_file_is_refused_at_open(tmp_path):
    from thunes.core.errors import StoreError

    path = tmp_path / "audit.jsonl"
    path.write_text("")
    path.chmod(0o400)
    with pytest.raises(StoreError, match="permission denied"):
        AuditTrail(path, fsync="never")


@pytest.mark.parametrize("where", ["/dev/null", "folder"])
def test_the_kill_switch_command_refuses_an_unusable_audit_path_in_one_line_and_saves_nothing(
        tmp_path, monkeypatch, capsys, where):
    from thunes.cli import main

    audit_path = "/dev/null" if where == "/dev/null" else str(tmp_path)
    for name, value in {"THUNES_TRADER__STATE_DIR": str(tmp_path / "state"), "THUNES_AUDIT__PATH": audit_path,
                        "THUNES_AUDIT__KEY": "k" * 32}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("THUNES_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["risk", "kill-switch", "on", "--reason", "test", "--operator", "alice"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.startswith("error: audit file") and err.count("\n") == 1
    assert "Traceback" not in err
    assert not (tmp_path / "state" / "local" / "risk_state.json").exists()  # not switched on without its record
