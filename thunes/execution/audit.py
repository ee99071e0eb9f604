"""The audit trail: an append-only, keyed hash-chained JSON-lines file of every decision the system takes.

Every risk decision, order intent, order result, fill, kill-switch change and config change is one line::

    {"hash": "<HMAC-SHA256 of this record without 'hash'>", "alg": "hmac-sha256", "kid": "<key id>",
     "seq": 7, "ts": 1700000000000, "kind": "risk_decision", "payload": {...}, "prev": "<hash of seq 6>"}

Why a chain: editing, removing or reordering any record changes a hash that a later record (or the head
file) commits to, so :func:`verify_audit` finds it.

Why a key: with a plain SHA-256 chain anyone who can write the file can also recompute every hash after
an edit. Each record's ``hash`` is an HMAC-SHA256 under a secret key kept outside the audit folder
(``audit.key``, env ``THUNES_AUDIT__KEY``, from a secret store; else the key file ``audit.key_file``,
default ``<audit folder>/keys/audit.key``, created on first use with mode 0600 in a 0700 folder), so a
rewritten, forged or appended record fails verification unless the key was also stolen. ``kid`` (the
key's public 8-hex-digit fingerprint, :func:`key_id`) tells "signed with another key" apart from "edited".

Why anchors: a keyed chain still allows cutting records off the end (together with the head file), or
replacing the file by an older genuine copy. So the writer keeps a tiny head file (``<path>.head``: seq and
hash of the last record, updated after each append) and copies its head to places the file's writer cannot
rewrite: :class:`AuditAnchors` (a table in the execution database, written when the trail is closed, every
``anchor_every`` records or ``anchor_seconds``, and on :meth:`AuditTrail.anchor`), and the short string
:meth:`AuditAnchors.summary` meant for the daily summary alert. :func:`verify_audit` refuses a missing or
unreadable head, a file shorter than an anchor, and an anchored seq whose hash differs.

Legacy files: files written before the key (plain SHA-256, no ``alg``) are refused by :func:`verify_audit`
unless ``allow_legacy=True`` (then they verify with an "unkeyed (legacy)" warning: their hashes prove
nothing against a rewrite). A writer opening a legacy file continues it with keyed records: the first keyed
record's HMAC covers the last legacy hash, so the legacy prefix is protected from then on; an unkeyed record
after a keyed one is reported as forged (a downgrade).

Latency: the HMAC costs about a microsecond per record (a precomputed key state is copied) and adds no
fsync. With ``fsync="always"`` every record is on disk before ``append`` returns. A caller that writes
several records for one decision (the order path: risk decision, then order intent) wraps them in
:meth:`AuditTrail.group`: each record is still written at once, but the group's records share one fsync
when the outermost ``with`` block of the calling thread ends. Periodic anchors are written by a helper
thread, never on the appending thread.

The outbox (one fsync per order): inside :meth:`AuditTrail.outbox` the records this thread appends are chained
at once (seq, prev and HMAC fixed, the file locked so nobody else can take those seqs) but not yet written;
:meth:`OutboxBatch.store` inserts them into the ``audit_outbox`` table of the anchors' database inside the
caller's own transaction (the executor's: the same commit as the journal's SENT row), so the decision, the
intent and the write-ahead row become durable together with one fsync. When the block ends the records are
written to the file without an fsync (the outbox holds them); a record the caller did not store and commit
is made durable in the file as before. A writer opening the file (and any writer that finds the file changed)
first fills the file from outbox rows a crash left unwritten; an anchor fsyncs the file and then deletes the
outbox rows it covers; :func:`verify_audit` with the anchors' database refuses an outbox row that is missing
from the file or differs from it. A record staged but not committed when the process dies is lost with the
transaction: its order was not journaled, so it was never sent.

Crash safety: a record is written with one ``write`` of a complete line. A crash mid-write can leave a
torn last line; the valid prefix still verifies (``torn_tail=True``), and the next writer to open the
file cuts the torn bytes before appending. Writers in several threads and processes (the trader and the
``thunes risk kill-switch`` command) serialise on an exclusive ``flock`` and re-read the tail when
another process appended since their last write. All writers of one file must use the same key.

Secrets never reach the file: keys that look like credentials and any ``SecretStr`` are redacted.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr

from thunes.core.clock import Clock, LiveClock
from thunes.core.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from thunes.config import AuditSettings
    from thunes.execution.db import Database

__all__ = [
    "ALG",
    "GENESIS",
    "Anchor",
    "AuditAnchors",
    "AuditRecord",
    "AuditTrail",
    "OutboxBatch",
    "VerifyResult",
    "audit_key",
    "default_key_file",
    "key_id",
    "load_key",
    "record_config",
    "redact",
    "verify_audit",
]

GENESIS = "0" * 64
ALG = "hmac-sha256"
FsyncPolicy = Literal["always", "batch", "never"]
_SECRET_KEY = re.compile(r"secret|api_?key|token|password|passphrase|signature|private", re.IGNORECASE)
REDACTED = "***redacted***"
_PLAIN = (str, int, float, bool)
_MIN_KEY_BYTES = 16
_FIELDS = frozenset({"seq", "ts", "kind", "payload", "prev", "hash"})
_log = logging.getLogger(__name__)


def redact(value: Any) -> Any:
    """A JSON-ready copy of ``value`` with credential-like keys and ``SecretStr`` values masked."""
    if value is None or type(value) in _PLAIN:
        return value
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, (dict, Mapping)):
        out: dict[str, Any] = {}
        for key, item in value.items():
            skey = str(key)
            out[skey] = REDACTED if _SECRET_KEY.search(skey) and item not in (None, "") else redact(item)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "__dataclass_fields__"):
        return redact({f: getattr(value, f) for f in value.__dataclass_fields__})
    return str(value)


def _canonical(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _body(record: Mapping[str, Any]) -> bytes:
    return _canonical({k: v for k, v in record.items() if k != "hash"})


def _sha256(record: Mapping[str, Any]) -> str:
    """The legacy (unkeyed) record hash."""
    return hashlib.sha256(_body(record)).hexdigest()


# -- the key -----------------------------------------------------------------------------------------------
KeyLike = bytes | str | SecretStr


def key_id(key: bytes) -> str:
    """A key's public fingerprint (8 hex digits), stored in each record to name the key that signed it."""
    return hashlib.sha256(b"thunes-audit-key-id:" + key).hexdigest()[:8]


def default_key_file(audit_path: str | Path) -> Path:
    """Where the key file lives when ``audit.key_file`` is not set: ``<audit folder>/keys/audit.key``."""
    return Path(audit_path).parent / "keys" / "audit.key"


def _key_bytes(key: KeyLike) -> bytes:
    raw = key.get_secret_value() if isinstance(key, SecretStr) else key
    data = raw.encode() if isinstance(raw, str) else bytes(raw)
    if len(data) < _MIN_KEY_BYTES:
        raise ConfigError(f"the audit key must be at least {_MIN_KEY_BYTES} bytes long (audit.key)")
    return data


def load_key(*, audit_path: str | Path, key: KeyLike | None = None, key_file: str | Path | None = None,
             create: bool = True) -> bytes | None:
    """The HMAC key of an audit file: ``key`` when given, else the key file (created when missing and
    ``create``; None when missing and not ``create``).

    The key file holds 64 hex digits (32 bytes from ``os.urandom``). It is refused inside the audit file's
    own folder: whoever can rewrite the trail could then read the key too.
    """
    if key is not None:
        return _key_bytes(key)
    file = Path(key_file) if key_file is not None else default_key_file(audit_path)
    if file.resolve().parent == Path(audit_path).resolve().parent:
        raise ConfigError(f"audit key file {file} is in the audit trail's folder; keep it elsewhere "
                          "(audit.key_file, default <audit folder>/keys/audit.key) or set audit.key")
    data = _read_key_file(file)
    if data is None and create:
        _create_key_file(file)
        data = _read_key_file(file)
    return data


def _read_key_file(file: Path) -> bytes | None:
    try:
        text = file.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read audit key file {file}: {exc}") from exc
    try:
        data = bytes.fromhex(text)
    except ValueError:
        data = b""
    if len(data) < _MIN_KEY_BYTES:
        raise ConfigError(f"audit key file {file} does not hold a key (expected 64 hex digits)")
    return data


def _create_key_file(file: Path) -> None:
    try:
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = file.with_name(f".{file.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, os.urandom(32).hex().encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, file)  # atomic and never replaces: two first users end up with the same key
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    except OSError as exc:
        raise ConfigError(f"cannot create audit key file {file}: {exc}") from exc


def audit_key(settings: AuditSettings, *, path: str | Path | None = None, create: bool = True) -> bytes | None:
    """The key the settings name for the trail at ``path`` (default ``settings.path``): ``audit.key``, else
    ``audit.key_file``, else the default key file next to that trail's folder."""
    return load_key(audit_path=path if path is not None else settings.path, key=settings.key,
                    key_file=settings.key_file, create=create)


# -- anchors -----------------------------------------------------------------------------------------------
def _trail_id(path: str | Path) -> str:
    return str(Path(path).resolve())


@dataclass(frozen=True, slots=True, kw_only=True)
class Anchor:
    """A copy of an audit file's head kept outside the file: record ``seq`` of the chain starting with
    ``first_hash`` had hash ``hash`` at ``ts`` (ms). From the alert string, ``hash`` may be a prefix."""

    trail: str
    seq: int
    hash: str
    first_hash: str = ""
    ts: int = 0

    def short(self) -> str:
        """``audit:<seq>:<16 hex digits>``: enough to check a copy of the trail against (see ``parse``)."""
        return f"audit:{self.seq}:{self.hash[:16]}"

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """Read ``[audit:]SEQ:HASH`` (HASH at least 16 hex digits), as :meth:`short` and the alert print it."""
        parts = text.strip().removeprefix("audit:").split(":")
        try:
            seq, digest = int(parts[0]), parts[1].lower()
            bytes.fromhex(digest)
        except (ValueError, IndexError):
            raise ConfigError(f"anchor {text!r} must look like SEQ:HASH (HASH at least 16 hex digits)") from None
        if len(parts) != 2 or len(digest) < 16 or seq < 0:
            raise ConfigError(f"anchor {text!r} must look like SEQ:HASH (HASH at least 16 hex digits)")
        return cls(trail="", seq=seq, hash=digest)


class AuditAnchors:
    """Anchors of audit heads in the execution database (table ``audit_anchors``, SQLite or PostgreSQL).

    A writer's anchor is a row (trail = the file's absolute path, seq, hash, first record's hash, ts). Rows
    are only added: a row for an existing (trail, seq) is kept as first written, so replacing the file by
    another chain cannot move its anchors. :meth:`summary` gives the latest anchor as one short line for the
    daily summary alert (a copy off this machine); ``thunes audit verify --anchor`` checks a file against it.
    """

    TABLE = "audit_anchors"

    def __init__(self, db: Database) -> None:
        self.db = db
        with db.transaction():
            db.execute(f"""CREATE TABLE IF NOT EXISTS {self.TABLE} (
                trail TEXT NOT NULL,
                seq BIGINT NOT NULL,
                hash TEXT NOT NULL,
                first_hash TEXT NOT NULL,
                ts_ms BIGINT NOT NULL,
                PRIMARY KEY (trail, seq)
            )""")
            db.execute(f"""CREATE TABLE IF NOT EXISTS {self.OUTBOX} (
                trail TEXT NOT NULL,
                seq BIGINT NOT NULL,
                hash TEXT NOT NULL,
                line TEXT NOT NULL,
                PRIMARY KEY (trail, seq)
            )""")

    OUTBOX = "audit_outbox"

    def outbox_put(self, path: str | Path, rows: Iterable[tuple[int, str, bytes]]) -> None:
        """Insert ``(seq, hash, line)`` rows of the trail at ``path`` (call inside the caller's transaction)."""
        trail = _trail_id(path)
        for seq, digest, line in rows:
            self.db.execute(f"INSERT INTO {self.OUTBOX} (trail, seq, hash, line) VALUES (?, ?, ?, ?)",
                            (trail, seq, digest, line.rstrip(b"\n").decode()))

    def outbox_rows(self, path: str | Path, *, from_seq: int = 0) -> list[tuple[int, str, str]]:
        """``(seq, hash, line)`` of the outbox rows of the trail at ``path`` with seq >= ``from_seq``, in order."""
        rows = self.db.execute(f"SELECT seq, hash, line FROM {self.OUTBOX} WHERE trail = ? AND seq >= ? "
                               "ORDER BY seq", (_trail_id(path), int(from_seq)))
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def outbox_prune(self, path: str | Path, upto_seq: int) -> None:
        """Forget the outbox rows up to ``upto_seq``: the file holding them was fsynced (by an anchor)."""
        self.db.execute(f"DELETE FROM {self.OUTBOX} WHERE trail = ? AND seq <= ?", (_trail_id(path), int(upto_seq)))

    def record(self, anchor: Anchor) -> None:
        self.db.execute(f"INSERT INTO {self.TABLE} (trail, seq, hash, first_hash, ts_ms) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (trail, seq) DO NOTHING",
                        (anchor.trail, anchor.seq, anchor.hash, anchor.first_hash, anchor.ts))

    def for_trail(self, path: str | Path) -> list[Anchor]:
        """Every anchor of the file at ``path`` (by its absolute path), oldest first. A copy or a moved file
        has none: check it against the alert's line instead (``expect`` / ``--anchor``)."""
        rows = self.db.execute(f"SELECT trail, seq, hash, first_hash, ts_ms FROM {self.TABLE} "
                               "WHERE trail = ? ORDER BY seq", (_trail_id(path),))
        return [Anchor(trail=r[0], seq=int(r[1]), hash=r[2], first_hash=r[3], ts=int(r[4])) for r in rows]

    def latest(self, path: str | Path) -> Anchor | None:
        row = self.db.query_one(f"SELECT trail, seq, hash, first_hash, ts_ms FROM {self.TABLE} WHERE trail = ? "
                                "ORDER BY seq DESC LIMIT 1", (_trail_id(path),))
        return None if row is None else Anchor(trail=row[0], seq=int(row[1]), hash=row[2], first_hash=row[3],
                                               ts=int(row[4]))

    def summary(self, path: str | Path) -> str:
        """The latest anchor as one line for the daily summary alert, e.g.
        ``audit:1234:9f86d081884c7d65 @ 2026-12-05T07:00:00+00:00``, or ``audit: no anchor yet``."""
        last = self.latest(path)
        if last is None:
            return "audit: no anchor yet"
        when = datetime.fromtimestamp(last.ts / 1000, tz=UTC).isoformat(timespec="seconds")
        return f"{last.short()} @ {when}"


# -- records and verification ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    seq: int
    ts: int
    kind: str
    payload: dict[str, Any]
    prev: str
    hash: str
    alg: str | None = None
    kid: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"seq": self.seq, "ts": self.ts, "kind": self.kind, "payload": self.payload, "prev": self.prev,
               "hash": self.hash}
        if self.alg is not None:
            out.update(alg=self.alg, kid=self.kid)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyResult:
    """Outcome of :func:`verify_audit`. ``line`` is the 1-based line of the first problem.

    ``checks`` names what was checked (``hmac``, ``head``, ``anchors``), ``warnings`` what was accepted
    with a caveat (legacy records, a head lagging after a crash).
    """

    ok: bool
    records: int
    error: str | None = None
    line: int | None = None
    torn_tail: bool = False
    last_hash: str = GENESIS
    keyed_records: int = 0
    legacy_records: int = 0
    key_id: str | None = None
    head_seq: int | None = None
    anchors_checked: int = 0
    last_anchor: Anchor | None = None
    checks: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok


def _last_newline_end(fd: int, limit: int) -> int:
    """Offset just after the last newline in ``fd[:limit]`` (0 when there is none)."""
    pos = limit
    while pos > 0:
        step = min(1 << 16, pos)
        pos -= step
        chunk = os.pread(fd, step, pos)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            return pos + nl + 1
    return 0


def _first_line(fd: int) -> bytes | None:
    """The first complete line of ``fd`` without its newline (None when there is none)."""
    buf = b""
    while True:
        chunk = os.pread(fd, 1 << 16, len(buf))
        if not chunk:
            return None
        nl = chunk.find(b"\n")
        if nl >= 0:
            return buf + chunk[:nl]
        buf += chunk


def _head_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def _read_head(path: Path) -> tuple[int, str] | None | str:
    """(seq, hash); None for an empty head (a trail with no record yet); a message when missing or garbage."""
    head = _head_path(path)
    try:
        text = head.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return f"head file {head} is missing (deleted, or the file was not written by an AuditTrail)"
    except (OSError, UnicodeDecodeError) as exc:
        return f"head file {head} is unreadable ({exc})"
    if not text:
        return None
    seq, _, digest = text.partition(" ")
    if not seq.isdigit() or not re.fullmatch(r"[0-9a-f]{64}", digest):
        return f"head file {head} is garbage ({text[:40]!r})"
    return int(seq), digest


def verify_audit(path: str | Path, *, check_head: bool = True, key: KeyLike | None = None,
                 key_file: str | Path | None = None, anchors: AuditAnchors | None = None,
                 expect: Iterable[Anchor | str] = (), allow_legacy: bool = False) -> VerifyResult:
    """Check every record's HMAC and link, the head file and the anchors; report the first problem.

    ``key``: the HMAC key (else ``key_file``, else the default key file of ``path``; none found and keyed
    records present is an error). ``anchors``: an :class:`AuditAnchors` store (the anchors of this path;
    none found is a warning); ``expect``: anchors kept elsewhere, as :class:`Anchor` or ``"SEQ:HASH"``
    strings (the daily alert's :meth:`AuditAnchors.summary`). Each anchor's seq must be in the file with that
    hash, so a file cut short (with its head) or replaced fails. With ``anchors``, every row of the outbox
    (records committed with an order's journal row, see :meth:`AuditTrail.outbox`) must also be in the file
    with the same hash: a missing one is a crash nobody restarted from yet, or a cut.
    ``check_head``: the head file must exist and name a record of the file (missing or garbage = error).
    ``allow_legacy``: accept a file of unkeyed SHA-256 records only (with a warning) instead of refusing it.
    A torn last line (crash mid-write) is not an error: the valid prefix is what was committed.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return VerifyResult(ok=False, records=0, error=f"audit file {path} does not exist")
    if not stat.S_ISREG(st.st_mode):
        return VerifyResult(ok=False, records=0, error=f"audit path {path} is not a regular file")
    secret = load_key(audit_path=path, key=key, key_file=key_file, create=False)
    kid = key_id(secret) if secret is not None else None
    mac = hmac.new(secret, digestmod=hashlib.sha256) if secret is not None else None
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = bool(lines and lines[-1])  # text after the last newline: an incomplete write
    complete = lines[:-1]
    first_hash: str | None = None
    if complete:
        try:
            first = json.loads(complete[0])
            first_hash = str(first.get("hash")) if isinstance(first, dict) else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            first_hash = None
    stored = anchors.for_trail(path) if anchors is not None else []
    given = [a if isinstance(a, Anchor) else Anchor.parse(a) for a in expect]
    wanted = stored + given
    checks = ["chain", "hmac" if secret is not None else "hmac (no key)"]
    warnings: list[str] = []
    by_seq: dict[int, list[Anchor]] = {}
    for a in wanted:
        by_seq.setdefault(a.seq, []).append(a)
    prev = GENESIS
    count = keyed = legacy = 0
    hashes: list[str] = []

    def fail(msg: str, line: int | None) -> VerifyResult:
        return VerifyResult(ok=False, records=count, line=line, error=msg, keyed_records=keyed,
                            legacy_records=legacy, checks=tuple(checks), warnings=tuple(warnings), key_id=kid,
                            torn_tail=torn)

    for i, raw in enumerate(complete, start=1):
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as exc:
            return fail(f"line {i}: not valid JSON ({exc.msg})", i)
        except UnicodeDecodeError:
            return fail(f"line {i}: not UTF-8 text (not an audit record)", i)
        if not isinstance(rec, dict) or not _FIELDS <= rec.keys():
            return fail(f"line {i}: missing record fields", i)
        if rec["seq"] != count:
            return fail(f"line {i}: sequence {rec['seq']} where {count} was expected "
                        "(a record was removed, inserted or reordered)", i)
        if rec["prev"] != prev:
            return fail(f"line {i}: previous-hash link broken (record removed or reordered)", i)
        if "alg" in rec:
            if rec["alg"] != ALG:
                return fail(f"line {i}: unknown chain algorithm {rec['alg']!r}", i)
            if mac is None:
                return fail(f"line {i}: the chain is keyed ({ALG}, key id {rec.get('kid')}) but no key was "
                            "given (set audit.key or audit.key_file)", i)
            if rec.get("kid") != kid:
                return fail(f"line {i}: record seq {rec['seq']} was signed with key id {rec.get('kid')}, "
                            f"not with the key given (id {kid}): a forged record or the wrong key", i)
            m = mac.copy()
            m.update(_body(rec))
            if not hmac.compare_digest(m.hexdigest(), str(rec["hash"])):
                return fail(f"line {i}: HMAC mismatch (record seq {rec['seq']} was edited or forged)", i)
            keyed += 1
        else:
            if keyed:
                return fail(f"line {i}: unkeyed record seq {rec['seq']} after keyed records "
                            "(forged: a downgrade to the legacy chain)", i)
            if _sha256(rec) != rec["hash"]:
                return fail(f"line {i}: hash mismatch (record seq {rec['seq']} was edited)", i)
            legacy += 1
        for a in by_seq.get(count, ()):
            if not str(rec["hash"]).startswith(a.hash) or (a.first_hash and a.first_hash != first_hash):
                return fail(f"line {i}: record seq {count} differs from its anchor {a.short()} "
                            "(the file was rewritten or replaced)", i)
        prev = rec["hash"]
        hashes.append(str(prev))
        count += 1
    if legacy and not keyed:
        msg = (f"unkeyed (legacy) chain of {legacy} records: its SHA-256 hashes cannot show a rewrite "
               "(continue it with a keyed AuditTrail, or accept it with allow_legacy / --allow-legacy)")
        if not allow_legacy:
            return fail(msg, None)
        warnings.append(msg)
    elif legacy:
        warnings.append(f"the first {legacy} records are unkeyed (legacy); the first keyed record seals them")
    head_seq: int | None = None
    if check_head:
        checks.append("head")
        head = _read_head(path)
        if isinstance(head, str):
            return fail(head, None)
        if head is None:
            if count:
                return fail(f"head file {_head_path(path)} is empty but the file has {count} records", None)
        else:
            head_seq, digest = head
            if head_seq >= count:
                return fail(f"file ends at seq {count - 1} but its head file records seq {head_seq}: "
                            "records were removed from the end", count + 1)
            if json.loads(complete[head_seq])["hash"] != digest:
                return fail(f"head file hash does not match record seq {head_seq}", head_seq + 1)
            if head_seq < count - 1:
                warnings.append(f"head file lags: seq {head_seq} of {count - 1} (a crash between a record and "
                                "its head update)")
    last_anchor = max(wanted, key=lambda a: a.seq, default=None)
    if anchors is not None:
        outbox = anchors.outbox_rows(path)
        checks.append(f"outbox ({len(outbox)} rows)")
        for seq, digest, _line in outbox:
            if seq >= count:
                return fail(f"record seq {seq} is in the outbox of the execution database but not in the file: "
                            "a crash before the file was written (open the trail, e.g. start the trader, to fill "
                            "it) or records were removed from the end", count + 1)
            if hashes[seq] != digest:
                return fail(f"line {seq + 1}: record seq {seq} differs from its copy in the outbox (the file was "
                            "rewritten, or written by a writer without the execution database)", seq + 1)
        checks.append(f"anchors ({len(stored)} stored)")
        if not stored:
            warnings.append(f"no anchor of {_trail_id(path)} in the database: a cut at the end cannot be seen")
    if given:
        checks.append(f"anchors ({len(given)} given)")
    if anchors is not None or given:
        if last_anchor is not None and last_anchor.seq >= count:
            return fail(f"file ends at seq {count - 1} but an anchor records seq {last_anchor.seq} "
                        f"({last_anchor.short()}): records were removed from the end or the file was replaced",
                        count + 1)
    return VerifyResult(ok=True, records=count, last_hash=prev, keyed_records=keyed, legacy_records=legacy,
                        head_seq=head_seq, anchors_checked=len(wanted), last_anchor=last_anchor,
                        checks=tuple(checks), warnings=tuple(warnings), key_id=kid, torn_tail=torn)


def record_config(trail: AuditTrail, settings: Any, *, source: str, operator: str | None = None) -> AuditRecord:
    """Append a ``config_change`` record: the settings (secrets masked) and their hash.

    ``settings`` is the whole :class:`~thunes.config.Settings` tree or one section (a pydantic model or a
    mapping). Call it when a trader starts and whenever settings are changed at run time.
    """
    from thunes.config import masked_settings, settings_hash

    data = masked_settings(settings)  # secrets by type and URL passwords masked: the trail is no key store
    digest = settings_hash(settings)
    return trail.append("config_change", {"source": source, "operator": operator, "settings_hash": digest,
                                          "settings": data})


def _refuse_unusable(path: Path) -> None:
    """Refuse a path that exists but is not a regular file before anything (a key file) is created for it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot open audit file {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise StoreError(f"audit file {path} is a directory: audit.path must name a file")
    if not stat.S_ISREG(mode):
        raise StoreError(f"audit file {path} is not a regular file (a device, pipe or socket): "
                         "audit.path must name a file")


def _open_regular(path: Path, what: str, flags: int) -> int:
    """Open (creating) a regular file for writing; a directory, device, pipe or unwritable path is a
    one-line :class:`StoreError` (``audit.path`` set to ``/dev/null`` would otherwise audit nothing)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o640)
    except IsADirectoryError:
        raise StoreError(f"{what} {path} is a directory: audit.path must name a file") from None
    except PermissionError:
        raise StoreError(f"cannot write {what} {path}: permission denied") from None
    except OSError as exc:
        raise StoreError(f"cannot open {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StoreError(f"{what} {path} is not a regular file (a device, pipe or socket): "
                         "audit.path must name a file")
    return fd


class OutboxBatch:
    """The records of one :meth:`AuditTrail.outbox` block: chained, not yet in the file.

    The caller calls :meth:`store` inside the database transaction that must carry them (the executor's
    journal commit), then :meth:`committed` once that transaction has committed.
    """

    __slots__ = ("durable", "pending", "stored", "trail")

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail
        self.pending: list[tuple[int, str, bytes]] = []  # (seq, hash, line) chained but not in the file yet
        self.stored = 0  # how many of ``pending`` were inserted into the outbox
        self.durable = 0  # how many of ``pending`` are committed in the outbox

    def store(self) -> None:
        """Insert the records not stored yet into the outbox table; call it inside the caller's transaction."""
        anchors = self.trail.anchors
        assert anchors is not None  # AuditTrail.outbox refuses a trail without an anchor store
        anchors.outbox_put(self.trail.path, self.pending[self.stored:])
        self.stored = len(self.pending)

    def committed(self) -> None:
        """The transaction :meth:`store` wrote into has committed: those records need no fsync of the file."""
        self.durable = self.stored


class AuditTrail:
    """Append-only keyed hash-chained audit file. Thread-safe and multi-process safe (``flock``).

    ``fsync``: ``always`` (each record is on disk before ``append`` returns, or, inside :meth:`group`,
    before the group's block returns), ``batch`` (fsync every ``batch_size`` records and on
    :meth:`flush`/:meth:`close`), ``never`` (leave it to the OS).

    ``key`` / ``key_file``: the HMAC key (see :func:`load_key`; default: the key file
    ``<audit folder>/keys/audit.key``, created on first use). Every writer of one file must use the same key:
    build trails from settings with :meth:`from_settings`.

    ``anchors``: where the head is copied (:class:`AuditAnchors`): at :meth:`close`, on :meth:`anchor`, and by
    a helper thread once ``anchor_every`` records or ``anchor_seconds`` seconds (None: no timer) passed. Its
    database also holds the outbox (:meth:`outbox`); opening the trail fills the file from outbox rows a crash
    left unwritten.
    """

    def __init__(self, path: str | Path, *, fsync: FsyncPolicy = "always", clock: Clock | None = None,
                 batch_size: int = 64, key: KeyLike | None = None, key_file: str | Path | None = None,
                 anchors: AuditAnchors | None = None, anchor_every: int = 1000,
                 anchor_seconds: float | None = 60.0) -> None:
        if fsync not in ("always", "batch", "never"):
            raise StoreError(f"audit fsync policy must be always, batch or never, got {fsync!r}")
        self.path = Path(path)
        self.fsync = fsync
        self.batch_size = max(1, int(batch_size))
        self.clock = clock or LiveClock()
        _refuse_unusable(self.path)
        secret = load_key(audit_path=self.path, key=key, key_file=key_file, create=True)
        assert secret is not None  # create=True always yields a key or raises
        self.key_id = key_id(secret)
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)  # copied per record: the key is hashed once
        self.anchors = anchors
        self.anchor_every = max(1, int(anchor_every))
        self.anchor_seconds = anchor_seconds
        self._lock = threading.RLock()  # re-entrant: flush/sync/anchor may run inside this thread's outbox block
        self._fd = _open_regular(self.path, "audit file", os.O_APPEND)
        try:
            self._head_fd = _open_regular(_head_path(self.path), "audit head file", 0)
        except StoreError:
            os.close(self._fd)
            raise
        self._known_size = -1  # file size after our last write; another size means re-read the tail
        self._seq = 0
        self._prev = GENESIS
        self._first_hash: str | None = None
        self._unsynced = 0
        self._local = threading.local()  # per thread: depth of nested group() blocks
        self._syncer: ThreadPoolExecutor | None = None  # sync_soon's helper thread, started on first use
        self._syncer_pid = 0
        self._anchorer: ThreadPoolExecutor | None = None  # periodic anchors' helper thread
        self._anchorer_pid = 0
        self._anchor_pending = False
        self._anchored_seq = -1
        self._anchored_at = time.monotonic()
        self.fsyncs = 0  # fsyncs of the record file so far (the benchmark and the tests count them)
        if anchors is not None:
            self._catch_up()  # records a crash left in the outbox reach the file before anything else

    @classmethod
    def from_settings(cls, settings: AuditSettings, *, clock: Clock | None = None,
                      anchors: AuditAnchors | None = None, path: str | Path | None = None) -> AuditTrail:
        """The trail ``settings`` describe (``path`` overrides ``audit.path``, e.g. a paper run's folder)."""
        return cls(path if path is not None else settings.path, fsync=settings.fsync, clock=clock,
                   key=settings.key, key_file=settings.key_file, anchors=anchors,
                   anchor_every=settings.anchor_every, anchor_seconds=settings.anchor_seconds)

    # -- grouped durability --------------------------------------------------------------------------
    @contextmanager
    def group(self) -> Iterator[AuditTrail]:
        """Records this thread appends inside the block share one fsync, done when the outermost block exits.

        Only the ``always`` policy is affected (``batch`` and ``never`` keep their own rhythm). The fsync
        also runs when the block raises: what was written is made durable either way. Other threads are not
        deferred: their ``append`` still fsyncs at once (which covers this thread's records too).
        """
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        try:
            yield self
        finally:
            self._local.depth = depth
            if depth == 0 and self.fsync == "always":
                self.sync()

    @contextmanager
    def outbox(self) -> Iterator[OutboxBatch]:
        """Records this thread appends inside the block are chained at once but written to the file when it ends.

        The caller stores them in its own transaction (:meth:`OutboxBatch.store`, then
        :meth:`OutboxBatch.committed` after the commit): they are then durable through the database and are
        written to the file without an fsync. Records not stored and committed are made durable in the file
        as :meth:`append` would (``always``: fsync at the end of the block, or of the enclosing :meth:`group`).
        The trail stays locked for the block (other threads and processes wait), so keep it short: no network.
        A nested block joins the outer one.
        """
        if self.anchors is None:
            raise StoreError(f"audit trail {self.path} has no anchor store: the outbox lives in its database")
        batch = getattr(self._local, "batch", None)
        if batch is not None:
            yield batch
            return
        with self._lock:
            if self._fd < 0:
                raise StoreError(f"audit trail {self.path} is closed")
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(self._fd).st_size
                if size != self._known_size:
                    self._resync(size)
                batch = OutboxBatch(self)
                self._local.batch = batch
                try:
                    yield batch
                finally:
                    self._local.batch = None
                    self._publish(batch)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _publish(self, batch: OutboxBatch) -> None:
        """Write a batch's records to the file (called with the lock and the flock held)."""
        if not batch.pending:
            return
        data = b"".join(line for _seq, _digest, line in batch.pending)
        try:
            written = os.write(self._fd, data)
        except OSError as exc:
            self._known_size = -1  # re-read the tail (and fill it from the outbox) before the next record
            raise StoreError(f"cannot write audit file {self.path}: {exc.strerror or exc}") from None
        if written != len(data):
            self._known_size = -1
            raise StoreError(f"short write to audit file {self.path}")
        self._known_size += len(data)
        loose = len(batch.pending) - batch.durable  # not committed in the outbox: the file is their only copy
        last_seq, last_hash = batch.pending[-1][0], batch.pending[-1][1]
        batch.pending, batch.stored, batch.durable = [], 0, 0
        if loose:
            self._unsynced += loose
            deferred = getattr(self._local, "depth", 0) > 0
            if (self.fsync == "always" and not deferred) or (
                    self.fsync == "batch" and self._unsynced >= self.batch_size):
                os.fsync(self._fd)
                self.fsyncs += 1
                self._unsynced = 0
        os.pwrite(self._head_fd, f"{last_seq} {last_hash}\n".encode().ljust(96), 0)
        self._maybe_anchor(last_seq)

    def _catch_up(self) -> None:
        """At open: take the file's tail, filling it from the outbox (see :meth:`_resync`)."""
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                self._resync(os.fstat(self._fd).st_size)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _fill_from_outbox(self) -> None:
        """Write the outbox rows that continue the file (a crash between the commit and the file write)."""
        assert self.anchors is not None
        try:
            rows = self.anchors.outbox_rows(self.path, from_seq=self._seq)
        except Exception as exc:  # the database is down: appends go on; verify_audit reports a gap
            _log.warning("audit outbox of %s could not be read: %s", self.path, exc)
            return
        filled: list[bytes] = []
        for seq, digest, line in rows:
            rec = json.loads(line)
            if seq != self._seq or rec.get("prev") != self._prev or rec.get("hash") != digest:
                _log.error("audit outbox row seq %d of %s does not continue the file (it ends at seq %d): the file "
                           "was written by a writer without the execution database; thunes audit verify names it",
                           seq, self.path, self._seq - 1)
                break
            filled.append(line.encode() + b"\n")
            self._seq, self._prev = seq + 1, digest
        if filled:
            data = b"".join(filled)
            if os.write(self._fd, data) != len(data):
                raise StoreError(f"short write to audit file {self.path}")
            os.fsync(self._fd)
            self.fsyncs += 1
            self._known_size += len(data)
            os.pwrite(self._head_fd, f"{self._seq - 1} {self._prev}\n".encode().ljust(96), 0)
            _log.warning("audit trail %s: %d records filled from the outbox (written before a crash)",
                         self.path, len(filled))

    def sync_soon(self) -> Future[bool]:
        """Start :meth:`sync` on a helper thread and return at once; ``.result()`` waits for it (and raises
        what it raised).

        The order path overlaps the audit fsync with the journal's commit this way: the two files are
        made durable at the same time instead of one after the other, and both are on disk before the
        order is sent.
        """
        with self._lock:
            if self._syncer is None or self._syncer_pid != os.getpid():
                # (re)started in this process: a helper thread does not survive a fork
                self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-fsync")
                self._syncer_pid = os.getpid()
            return self._syncer.submit(self.sync)

    def sync(self) -> bool:
        """fsync the record file if anything written since the last fsync is not on disk yet; True if it did."""
        with self._lock:
            if self._fd < 0 or self._unsynced == 0:
                return False
            os.fsync(self._fd)
            self.fsyncs += 1
            self._unsynced = 0
            return True

    # -- tail handling -------------------------------------------------------------------------------
    def _resync(self, size: int) -> None:
        """Find the last complete record (cutting a torn tail) and continue the chain from it."""
        end = _last_newline_end(self._fd, size)
        if end != size:
            # A writer died mid-line; the bytes after the last newline are not a record.
            os.ftruncate(self._fd, end)
            os.fsync(self._fd)
        if end == 0:
            self._seq, self._prev, self._known_size = 0, GENESIS, 0
        else:
            start = _last_newline_end(self._fd, end - 1)
            last = json.loads(os.pread(self._fd, end - 1 - start, start))
            self._seq = int(last["seq"]) + 1
            self._prev = str(last["hash"])
            self._known_size = end
        if self.anchors is not None:
            self._fill_from_outbox()

    def _chain(self, kind: str, clean: dict[str, Any], ts: int) -> tuple[AuditRecord, bytes]:
        """The next record of the chain and its line; advances seq and prev (called with the lock held)."""
        body: dict[str, Any] = {"seq": self._seq, "ts": ts, "kind": str(kind), "payload": clean,
                                "prev": self._prev, "alg": ALG, "kid": self.key_id}
        encoded = _canonical(body)
        mac = self._mac.copy()
        mac.update(encoded)
        digest = mac.hexdigest()
        # the verifier re-encodes the record without "hash": splice it in rather than encoding twice
        line = b'{"hash":"' + digest.encode() + b'",' + encoded[1:] + b"\n"
        record = AuditRecord(seq=body["seq"], ts=ts, kind=body["kind"], payload=clean, prev=body["prev"],
                             hash=digest, alg=ALG, kid=self.key_id)
        self._seq += 1
        self._prev = digest
        return record, line

    def append(self, kind: str, payload: Mapping[str, Any] | None = None) -> AuditRecord:
        """Write one record and return it (after fsync when the policy is ``always``; inside this thread's
        :meth:`outbox` block: chained now, written when the block ends)."""
        clean = redact(dict(payload or {}))
        ts = self.clock.now_ms()
        batch = getattr(self._local, "batch", None)
        if batch is not None:  # this thread holds the lock and the flock for the block
            record, line = self._chain(kind, clean, ts)
            batch.pending.append((record.seq, record.hash, line))
            return record
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(self._fd).st_size
                if size != self._known_size:
                    self._resync(size)
                record, line = self._chain(kind, clean, ts)
                written = os.write(self._fd, line)
                if written != len(line):
                    raise StoreError(f"short write to audit file {self.path}")
                self._known_size += len(line)
                self._unsynced += 1
                deferred = getattr(self._local, "depth", 0) > 0
                if (self.fsync == "always" and not deferred) or (
                        self.fsync == "batch" and self._unsynced >= self.batch_size):
                    os.fsync(self._fd)
                    self.fsyncs += 1
                    self._unsynced = 0
                # The head is written after the record and not fsynced per append: after a power cut it may
                # lag the file (the verifier accepts head <= last record, with a warning) but never lead it.
                os.pwrite(self._head_fd, f"{record.seq} {record.hash}\n".encode().ljust(96), 0)
                self._maybe_anchor(record.seq)
                return record
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _maybe_anchor(self, seq: int) -> None:
        """Queue a periodic anchor when ``anchor_every`` records or ``anchor_seconds`` passed (lock held)."""
        pending = self._anchor_pending and self._anchorer_pid == os.getpid()  # a fork has no helper
        if self.anchors is not None and not pending and (
                seq - self._anchored_seq >= self.anchor_every
                or (self.anchor_seconds is not None
                    and time.monotonic() - self._anchored_at >= self.anchor_seconds)):
            self._anchor_pending = True
            self._anchor_soon()

    # -- anchors -------------------------------------------------------------------------------------
    def _anchor_soon(self) -> None:
        """Queue an anchor on the helper thread (called under ``_lock``): the appending thread never waits
        for the database."""
        if self._anchorer is None or self._anchorer_pid != os.getpid():
            self._anchorer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-anchor")
            self._anchorer_pid = os.getpid()
        self._anchorer.submit(self._anchor_in_background)

    def _anchor_in_background(self) -> None:
        try:
            self.anchor()
        except Exception as exc:  # a failed anchor must not stop trading; the next one retries
            _log.warning("audit anchor of %s failed: %s", self.path, exc)
        finally:
            self._anchor_pending = False

    def anchor(self) -> Anchor | None:
        """Copy the file's head (seq, hash) to the anchor store now; None when the file has no record.

        The file is fsynced first, so an anchor never names a record a power cut could lose.
        """
        if self.anchors is None:
            raise StoreError(f"audit trail {self.path} has no anchor store")
        with self._lock:
            if self._fd < 0:
                raise StoreError(f"audit trail {self.path} is closed")
            self._publish_own_batch()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(self._fd).st_size
                if size != self._known_size:
                    self._resync(size)  # learn the tail another process wrote
                if self._seq == 0:
                    return None
                if self._first_hash is None:
                    first = _first_line(self._fd)
                    self._first_hash = str(json.loads(first)["hash"]) if first else GENESIS
                os.fsync(self._fd)
                self.fsyncs += 1
                self._unsynced = 0
                point = Anchor(trail=_trail_id(self.path), seq=self._seq - 1, hash=self._prev,
                               first_hash=self._first_hash, ts=self.clock.now_ms())
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        with self.anchors.db.transaction():
            self.anchors.record(point)
            self.anchors.outbox_prune(self.path, point.seq)  # the file holding them was just fsynced
        self._anchored_seq, self._anchored_at = point.seq, time.monotonic()
        return point

    def _publish_own_batch(self) -> None:
        """Inside this thread's outbox block, write what it chained so far (before an fsync or an anchor)."""
        batch = getattr(self._local, "batch", None)
        if batch is not None and batch.pending:
            batch.durable = 0  # written now and fsynced by the caller: the file is what counts
            self._publish(batch)

    def flush(self) -> None:
        with self._lock:
            self._publish_own_batch()
            os.fsync(self._fd)
            self.fsyncs += 1
            os.fsync(self._head_fd)
            self._unsynced = 0

    def close(self) -> None:
        for attr, pid_attr in (("_syncer", "_syncer_pid"), ("_anchorer", "_anchorer_pid")):
            pool = getattr(self, attr)
            if pool is not None:
                if getattr(self, pid_attr) == os.getpid():
                    pool.shutdown(wait=True)  # work in flight finishes before the file is closed
                setattr(self, attr, None)
        if self.anchors is not None and self._fd >= 0:
            try:
                self.anchor()
            except Exception as exc:  # closing must not fail on the database; verify reports a stale anchor
                _log.warning("audit anchor of %s at close failed: %s", self.path, exc)
        with self._lock:
            if self._fd >= 0:
                if self.fsync != "never":
                    os.fsync(self._fd)
                    os.fsync(self._head_fd)
                os.close(self._fd)
                os.close(self._head_fd)
                self._fd = self._head_fd = -1

    def __enter__(self) -> AuditTrail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def verify(path: str | Path, **options: Any) -> VerifyResult:
        """:func:`verify_audit` (same keyword options)."""
        return verify_audit(path, **options)

    @staticmethod
    def read(path: str | Path) -> list[AuditRecord]:
        """All complete records of a file (no verification; use :func:`verify_audit` for that)."""
        out = []
        with open(path, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break
                rec = json.loads(raw)
                out.append(AuditRecord(**rec))
        return out
