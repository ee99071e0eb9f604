"""The audit trail against someone who can rewrite its files: keyed chain (HMAC), head file, anchors.

Each attack is played by an attacker who can write the audit folder but holds
neither the HMAC key nor the execution database; each must be reported, not verify as 'ok'.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import stat
import threading
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from thunes.core.clock import SimulatedClock
from thunes.core.errors import ConfigError
from thunes.execution.audit import (
    ALG,
    Anchor,
    AuditAnchors,
    AuditTrail,
    default_key_file,
    key_id,
    load_key,
    verify_audit,
)
from thunes.execution.db import Database


@pytest.fixture
def db(tmp_path):
    database = Database.connect(f"sqlite:///{tmp_path / 'state' / 'execution.sqlite'}")
    yield database
    database.close()


@pytest.fixture
def anchors(db):
    return AuditAnchors(db)


def _write(path: Path, n: int, *, anchors: AuditAnchors | None = None, **options) -> list:
    with AuditTrail(path, fsync="never", clock=SimulatedClock(1_700_000_000_000), anchors=anchors,
                    **options) as trail:
        return [trail.append("order_intent", {"i": i, "symbol": "BTC/USDT", "qty": "0.001"}) for i in range(n)]


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _sha256(rec: dict) -> str:
    body = {k: v for k, v in rec.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _save(path: Path, recs: list[dict], *, head: bool = True) -> None:
    """The attacker writes the records back and, when ``head``, a matching head file."""
    path.write_text("".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in recs))
    head_file = path.with_name(path.name + ".head")
    if head:
        head_file.write_text(f"{recs[-1]['seq']} {recs[-1]['hash']}\n" if recs else "")


def _rechain(recs: list[dict], *, keep_alg: bool) -> list[dict]:
    """Recompute every link and hash with SHA-256, as a writer without the key can (all that an unkeyed chain checks)."""
    prev = "0" * 64
    out = []
    for rec in recs:
        rec = {k: v for k, v in rec.items() if keep_alg or k not in ("alg", "kid")}
        rec["prev"] = prev
        rec["hash"] = _sha256(rec)
        prev = rec["hash"]
        out.append(rec)
    return out


# -- the keyed chain as written ------------------------------------------------------------------------------

def test_new_records_are_hmac_keyed_and_the_key_file_is_private(tmp_path):
    path = tmp_path / "audit" / "audit.jsonl"
    records = _write(path, 3)
    key_file = default_key_file(path)
    key = load_key(audit_path=path, create=False)
    assert key is not None and len(key) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert all(r.alg == ALG and r.kid == key_id(key) for r in records)
    rec = _records(path)[1]
    assert rec["hash"] != _sha256(rec)  # not the plain SHA-256 anyone can recompute
    result = verify_audit(path)
    assert result.ok and result.records == 3 and result.keyed_records == 3 and result.legacy_records == 0
    assert result.checks[:3] == ("chain", "hmac", "head") and result.warnings == ()


def test_a_key_from_settings_signs_and_another_key_is_named_as_such(tmp_path):
    path = tmp_path / "audit.jsonl"
    _write(path, 2, key=SecretStr("a-secret-from-the-vault"))
    assert verify_audit(path, key=SecretStr("a-secret-from-the-vault")).ok
    assert not default_key_file(path).exists()  # a given key creates no key file
    other = verify_audit(path, key="another-long-secret")
    assert not other.ok and "signed with key id" in other.error and other.line == 1
    no_key = verify_audit(path)
    assert not no_key.ok and "no key" in no_key.error


def test_key_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="audit trail's folder"):
        AuditTrail(tmp_path / "audit.jsonl", key_file=tmp_path / "audit.key")
    with pytest.raises(ConfigError, match="at least 16"):
        AuditTrail(tmp_path / "audit.jsonl", key="short")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "audit.key").write_text("not hex\n")
    with pytest.raises(ConfigError, match="does not hold a key"):
        AuditTrail(tmp_path / "audit.jsonl")
    assert not (tmp_path / "audit.jsonl").exists()  # refused before anything was created


def test_audit_settings_carry_the_key_and_the_trail_is_built_from_them(tmp_path):
    from thunes.config import load_settings

    loaded = load_settings(env_file=None, environ={"THUNES_AUDIT__KEY": "k" * 32,
                                                   "THUNES_AUDIT__PATH": str(tmp_path / "a.jsonl"),
                                                   "THUNES_AUDIT__FSYNC": "never"})
    audit = loaded.settings.audit
    assert "kkkk" not in repr(audit)
    with AuditTrail.from_settings(audit) as trail:
        rec = trail.append("config_change", {})
    assert rec.kid == key_id(b"k" * 32)
    assert verify_audit(audit.path, key=audit.key).ok


# -- the attacks: rechain, truncate, forge, drop or garble the head, empty the file --------------------------

@pytest.mark.parametrize("keep_alg", [True, False], ids=["sha256-under-the-keyed-format", "downgraded-to-legacy"])
def test_attack_a_rechained_edit_with_a_rewritten_head_is_detected(tmp_path, keep_alg):
    path = tmp_path / "audit.jsonl"
    _write(path, 5)
    recs = _records(path)
    recs[2]["payload"]["qty"] = "9.999"
    _save(path, _rechain(recs, keep_alg=keep_alg))
    result = verify_audit(path)
    assert not result.ok
    assert ("HMAC mismatch" in result.error and result.line == 1) if keep_alg else "unkeyed (legacy)" in result.error


def test_attack_removing_the_last_records_with_the_head_is_detected_by_the_anchors(tmp_path, anchors):
    # Arrange: a trail closed with its head anchored in the database (seq 9)
    path = tmp_path / "audit.jsonl"
    _write(path, 10, anchors=anchors)
    # Act: cut the last three records and rewrite the head to the new last record
    _save(path, _records(path)[:7])
    # Assert: the file alone cannot tell (every remaining record is genuine) -- the anchor can
    assert verify_audit(path).ok
    result = verify_audit(path, anchors=anchors)
    assert not result.ok and "anchor records seq 9" in result.error and "removed from the end" in result.error


def test_attack_a_forged_record_appended_with_a_valid_sha256_is_detected(tmp_path):
    path = tmp_path / "audit.jsonl"
    _write(path, 4)
    recs = _records(path)
    forged = {k: v for k, v in recs[-1].items()}
    forged.update(seq=4, kind="kill_switch", payload={"on": False, "operator": "mallory"}, prev=recs[-1]["hash"])
    forged["hash"] = _sha256(forged)
    _save(path, recs + [forged])
    result = verify_audit(path)
    assert not result.ok and result.line == 5 and "HMAC mismatch" in result.error
    legacy = {k: v for k, v in forged.items() if k not in ("alg", "kid")}  # the same, in the legacy (unkeyed) format
    legacy["hash"] = _sha256(legacy)
    _save(path, recs + [legacy])
    result = verify_audit(path)
    assert not result.ok and result.line == 5 and "downgrade" in result.error


def test_attack_a_shorter_valid_chain_without_a_head_is_detected(tmp_path, anchors):
    # Arrange: the genuine trail, anchored at close
    path = tmp_path / "audit.jsonl"
    _write(path, 6, anchors=anchors)
    # Act: replace it by a shorter chain the attacker signed with a key of their own, and delete the head
    path.unlink()
    path.with_name(path.name + ".head").unlink()
    fake_dir = tmp_path / "elsewhere"
    _write(fake_dir / "audit.jsonl", 2, key="mallory's own key!!")
    path.write_bytes((fake_dir / "audit.jsonl").read_bytes())
    # Assert: refused by the key, by the missing head, and by the anchors
    result = verify_audit(path)
    assert not result.ok and "signed with key id" in result.error
    result = verify_audit(path, key="mallory's own key!!")
    assert not result.ok and "head file" in result.error and "missing" in result.error
    result = verify_audit(path, key="mallory's own key!!", check_head=False, anchors=anchors)
    assert not result.ok and "anchor records seq 5" in result.error


def test_attack_a_deleted_head_file_is_detected(tmp_path):
    path = tmp_path / "audit.jsonl"
    _write(path, 3)
    path.with_name(path.name + ".head").unlink()
    result = verify_audit(path)
    assert not result.ok and "missing" in result.error


@pytest.mark.parametrize("garbage", ["x", "3 nothex", "2 " + "a" * 64, "-1 " + "0" * 64, "\x00\x01"])
def test_attack_a_garbage_head_file_is_detected(tmp_path, garbage):
    path = tmp_path / "audit.jsonl"
    _write(path, 3)
    path.with_name(path.name + ".head").write_text(garbage)
    result = verify_audit(path)
    assert not result.ok and "head file" in result.error


def test_attack_an_emptied_file_is_detected(tmp_path, anchors):
    path = tmp_path / "audit.jsonl"
    _write(path, 3, anchors=anchors)
    path.write_bytes(b"")
    result = verify_audit(path)  # the head still names seq 2
    assert not result.ok and "removed from the end" in result.error
    path.with_name(path.name + ".head").write_text("")  # the head emptied too: only the anchor knows
    result = verify_audit(path, anchors=anchors)
    assert not result.ok and "anchor records seq 2" in result.error


def test_an_edit_of_a_record_named_by_an_anchor_is_reported_at_that_record(tmp_path, anchors):
    path = tmp_path / "audit.jsonl"
    _write(path, 4, anchors=anchors)
    anchor = anchors.latest(path)
    assert anchor is not None and anchor.seq == 3
    result = verify_audit(path, expect=[Anchor(trail="", seq=3, hash="f" * 64)])
    assert not result.ok and result.line == 4 and "differs from its anchor" in result.error


# -- anchors ---------------------------------------------------------------------------------------------------

def test_the_summary_line_for_the_alert_checks_a_copy_even_without_the_database(tmp_path, anchors):
    # Arrange: the daily alert carried this line off the machine
    path = tmp_path / "audit.jsonl"
    _write(path, 5, anchors=anchors)
    line = anchors.summary(path)
    assert line.startswith("audit:4:") and " @ 2023-11-14T22:13:20+00:00" in line
    alert = line.split(" @ ")[0]
    assert verify_audit(path, expect=[alert]).ok
    # Act: cut the file, its head and the database's anchors too
    _save(path, _records(path)[:3])
    anchors.db.execute("DELETE FROM audit_anchors")
    # Assert: the copy in the alert still catches it (the emptied database alone can only warn that it has none)
    blind = verify_audit(path, anchors=anchors)
    assert blind.ok and "no anchor of" in blind.warnings[-1]
    result = verify_audit(path, anchors=anchors, expect=[alert])
    assert not result.ok and "removed from the end" in result.error
    with pytest.raises(ConfigError, match="SEQ:HASH"):
        Anchor.parse("audit:4:abc")
    assert AuditAnchors(anchors.db).summary(tmp_path / "none.jsonl") == "audit: no anchor yet"


def test_anchors_are_written_every_n_records_on_demand_and_at_close(tmp_path, anchors):
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail(path, fsync="never", anchors=anchors, anchor_every=5, anchor_seconds=None)
    for i in range(5):  # the fifth record (seq 4) queues an anchor on the helper thread
        trail.append("fill", {"i": i})
    deadline = time.monotonic() + 10
    while anchors.latest(path) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    periodic = anchors.latest(path)
    for i in range(5, 12):
        trail.append("fill", {"i": i})
    on_demand = trail.anchor()
    trail.append("fill", {"i": 12})
    trail.close()
    seqs = [a.seq for a in anchors.for_trail(path)]
    assert periodic is not None and periodic.seq == 4
    assert on_demand is not None and on_demand.seq == 11
    assert seqs[0] == 4 and 11 in seqs and seqs[-1] == 12  # periodic ones, the on-demand one, the closing one
    result = verify_audit(path, anchors=anchors)
    assert result.ok and result.anchors_checked == len(seqs) and result.last_anchor.seq == 12


def test_a_periodic_anchor_never_makes_an_append_wait_for_the_database(tmp_path, anchors):
    # Arrange: another thread holds the database (as a long journal transaction would)
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail(path, fsync="never", anchors=anchors, anchor_every=2, anchor_seconds=None)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with anchors.db.transaction():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    # Act
    t0 = time.perf_counter()
    for i in range(20):
        trail.append("fill", {"i": i})
    elapsed = time.perf_counter() - t0
    release.set()
    holder.join()
    trail.close()
    # Assert: the appends did not block on the held database; the anchors arrived once it was free
    assert elapsed < 2.0
    assert anchors.latest(path).seq == 19 and verify_audit(path, anchors=anchors).ok


def test_a_failing_anchor_store_does_not_stop_appends_or_close(tmp_path, caplog):
    database = Database.connect(f"sqlite:///{tmp_path / 'x.sqlite'}")
    store = AuditAnchors(database)
    database.close()  # every anchor now fails
    trail = AuditTrail(tmp_path / "audit.jsonl", fsync="never", anchors=store, anchor_every=1, anchor_seconds=None)
    for i in range(3):
        trail.append("fill", {"i": i})
    trail.close()
    assert verify_audit(tmp_path / "audit.jsonl").records == 3
    assert "audit anchor" in caplog.text


def _anchored_writer(path: str, db_url: str, k: int) -> None:
    store = AuditAnchors(Database.connect(db_url))
    with AuditTrail(path, fsync="never", anchors=store, anchor_every=25, anchor_seconds=None) as trail:
        for i in range(100):
            trail.append("p", {"k": k, "i": i})
    store.db.close()


def test_processes_share_one_keyed_anchored_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    url = f"sqlite:///{tmp_path / 'execution.sqlite'}"
    load_key(audit_path=path)  # created once, before the processes start; racing creators also agree
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_anchored_writer, args=(str(path), url, k)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    with Database.connect(url) as database:
        store = AuditAnchors(database)
        result = verify_audit(path, anchors=store)
        assert result.ok and result.records == 400 and result.keyed_records == 400
        # How many anchors the check meets depends on how the four writers interleaved: a bound.
        assert result.anchors_checked >= 1 and store.latest(path).seq == 399  # the last writer anchored the end


def _create_key(path: str, out: mp.Queue) -> None:
    out.put(load_key(audit_path=path))


def test_racing_first_users_end_up_with_one_key(tmp_path):
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_create_key, args=(str(tmp_path / "audit.jsonl"), out)) for _ in range(6)]
    for p in procs:
        p.start()
    keys = {out.get(timeout=30) for _ in procs}
    for p in procs:
        p.join(30)
    assert len(keys) == 1 and list((tmp_path / "keys").iterdir()) == [tmp_path / "keys" / "audit.key"]


def test_a_torn_tail_after_an_anchor_still_verifies_and_the_next_writer_continues(tmp_path, anchors):
    path = tmp_path / "audit.jsonl"
    _write(path, 4, anchors=anchors)
    with open(path, "ab") as fh:  # a crash in the middle of a write
        fh.write(b'{"hash":"abc","alg":"hmac-sha256","kind":"fill","pay')
    torn = verify_audit(path, anchors=anchors)
    assert torn.ok and torn.torn_tail and torn.records == 4 and torn.anchors_checked == 1
    _write(path, 2, anchors=anchors)
    after = verify_audit(path, anchors=anchors)
    assert after.ok and not after.torn_tail and after.records == 6 and after.last_anchor.seq == 5


def test_a_head_lagging_after_a_crash_is_a_warning_not_an_error(tmp_path):
    path = tmp_path / "audit.jsonl"
    _write(path, 3)
    recs = _records(path)
    path.with_name(path.name + ".head").write_text(f"1 {recs[1]['hash']}\n")
    result = verify_audit(path)
    assert result.ok and result.head_seq == 1 and "lags" in result.warnings[0]


# -- legacy (unkeyed) files ------------------------------------------------------------------------------------

def _legacy(path: Path, n: int) -> None:
    prev, recs = "0" * 64, []
    for i in range(n):
        rec = {"seq": i, "ts": 1_700_000_000_000 + i, "kind": "fill", "payload": {"i": i}, "prev": prev}
        rec["hash"] = _sha256(rec)
        prev = rec["hash"]
        recs.append(rec)
    _save(path, recs)


def test_a_legacy_unkeyed_file_is_refused_unless_allowed(tmp_path):
    path = tmp_path / "audit.jsonl"
    _legacy(path, 3)
    refused = verify_audit(path)
    assert not refused.ok and refused.error.startswith("unkeyed (legacy)")
    allowed = verify_audit(path, allow_legacy=True)
    assert allowed.ok and allowed.legacy_records == 3 and "unkeyed (legacy)" in allowed.warnings[0]


def test_a_keyed_writer_continues_a_legacy_file_and_seals_its_prefix(tmp_path):
    path = tmp_path / "audit.jsonl"
    _legacy(path, 3)
    _write(path, 2)
    result = verify_audit(path)
    assert result.ok and (result.legacy_records, result.keyed_records) == (3, 2) and "seals" in result.warnings[0]
    recs = _records(path)
    recs[1]["payload"]["i"] = 42  # rewrite the legacy part, rechaining what SHA-256 allows
    recs[:3] = _rechain(recs[:3], keep_alg=False)
    _save(path, recs, head=False)
    result = verify_audit(path)
    assert not result.ok and result.line == 4 and "link broken" in result.error


def test_the_key_file_is_only_created_by_a_writer(tmp_path):
    path = tmp_path / "audit.jsonl"
    _legacy(path, 1)
    verify_audit(path, allow_legacy=True)
    assert not default_key_file(path).exists()


def test_anchors_on_postgresql_catch_a_cut_file(tmp_path, postgres_url):
    with Database.connect(postgres_url) as database:
        store = AuditAnchors(database)
        path = tmp_path / "audit.jsonl"
        _write(path, 6, anchors=store)
        _write(path, 1, anchors=store)  # a second writer's anchor is added, the first one kept
        assert [a.seq for a in store.for_trail(path)] == [5, 6] and store.summary(path).startswith("audit:6:")
        assert verify_audit(path, anchors=store).ok
        _save(path, _records(path)[:4])
        result = verify_audit(path, anchors=store)
        assert not result.ok and "anchor records seq 6" in result.error


# -- the outbox ------------------------------------------------------------------------------------------------
def _commit_and_die(path: str, db_url: str) -> None:
    """Chain two records, commit them to the outbox, and die before the file is written (SIGKILL-like)."""
    import os

    database = Database.connect(db_url)
    trail = AuditTrail(path, fsync="always", anchors=AuditAnchors(database), anchor_seconds=None)
    with trail.outbox() as batch:
        trail.append("risk_decision", {"i": 1})
        trail.append("order_intent", {"i": 2})
        with database.transaction():
            batch.store()
        batch.committed()
        os._exit(0)  # the block's end (the file write) never runs


def test_records_committed_in_the_outbox_but_not_written_are_reported_and_filled_at_the_next_open(tmp_path):
    """A crash between the journal's commit and the file write: verify names the gap; the next writer fills it."""
    # Arrange: one record in the file, then a process that commits two more to the outbox and dies
    path = tmp_path / "audit.jsonl"
    url = f"sqlite:///{tmp_path / 'state' / 'execution.sqlite'}"
    with AuditTrail(path, fsync="always", anchors=AuditAnchors(Database.connect(url)), anchor_seconds=None) as t:
        t.append("config_change", {})
    proc = mp.get_context("fork").Process(target=_commit_and_die, args=(str(path), url))
    proc.start()
    proc.join(30)
    database = Database.connect(url)
    store = AuditAnchors(database)
    # Act
    before = verify_audit(path, anchors=store)
    AuditTrail(path, fsync="always", anchors=store, anchor_seconds=None).close()
    after = verify_audit(path, anchors=store)
    # Assert
    assert proc.exitcode == 0 and not before.ok and "seq 1 is in the outbox" in before.error
    assert after.ok, after.error
    assert [r.kind for r in AuditTrail.read(path)] == ["config_change", "risk_decision", "order_intent"]
    database.close()


def test_a_writer_without_the_database_that_forks_the_chain_over_outbox_rows_is_reported(tmp_path):
    """After a crash left outbox rows unwritten, a writer without the execution database takes their seqs: its
    keyed chain is valid on its own, but differs from the committed outbox copy, and verify says so."""
    # Arrange: a process commits two records to the outbox and dies; then a writer without anchors appends
    path = tmp_path / "audit.jsonl"
    url = f"sqlite:///{tmp_path / 'state' / 'execution.sqlite'}"
    proc = mp.get_context("fork").Process(target=_commit_and_die, args=(str(path), url))
    proc.start()
    proc.join(30)
    with AuditTrail(path, fsync="always") as trail:
        trail.append("kill_switch", {"on": True})
    database = Database.connect(url)
    # Act
    alone = verify_audit(path)
    result = verify_audit(path, anchors=AuditAnchors(database))
    # Assert
    assert alone.ok and not result.ok and "differs from its copy in the outbox" in result.error
    database.close()
