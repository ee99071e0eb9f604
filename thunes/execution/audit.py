"""The audit trail: an append-only, hash-chained JSON-lines file of every decision the system takes.

Every risk decision, order intent, order result, fill, kill-switch change and config change is one line::

    {"seq": 7, "ts": 1700000000000, "kind": "risk_decision", "payload": {...}, "prev": "<hash of seq 6>",
     "hash": "<sha256 of this record without 'hash'>"}

Why a chain: editing, removing or reordering any record changes a hash that a later record (or the head
file) commits to, so :func:`verify_audit` finds it. Removing records *at the end* leaves a valid chain,
so the writer also keeps a tiny head file (``<path>.head``: seq and hash of the last record) updated
after each append; a file shorter than its head is reported as truncated.

Latency: with ``fsync="always"`` every record is on disk before ``append`` returns. A caller that writes
several records for one decision (the order path: risk decision, then order intent) wraps them in
:meth:`AuditTrail.group`: each record is still written at once, but the group's records share one fsync
when the outermost ``with`` block of the calling thread ends. So the durable order path costs one audit
fsync before the order is sent, not one per record, and the records are durable by the time the block
returns, which is the same promise.

Crash safety: a record is written with one ``write`` of a complete line. A crash mid-write can leave a
torn last line; the valid prefix still verifies (``torn_tail=True``), and the next writer to open the
file cuts the torn bytes before appending. Writers in several threads and processes (the trader and the
``thunes risk kill-switch`` command) serialise on an exclusive ``flock`` and re-read the tail when
another process appended since their last write.

Secrets never reach the file: keys that look like credentials and any ``SecretStr`` are redacted.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import SecretStr

from thunes.core.clock import Clock, LiveClock
from thunes.core.errors import StoreError

__all__ = ["AuditTrail", "AuditRecord", "VerifyResult", "verify_audit", "redact", "record_config", "GENESIS"]

GENESIS = "0" * 64
FsyncPolicy = Literal["always", "batch", "never"]
_SECRET_KEY = re.compile(r"secret|api_?key|token|password|passphrase|signature|private", re.IGNORECASE)
REDACTED = "***redacted***"
_PLAIN = (str, int, float, bool)


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


def _hash(record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(_canonical(body)).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    seq: int
    ts: int
    kind: str
    payload: dict[str, Any]
    prev: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts, "kind": self.kind, "payload": self.payload,
                "prev": self.prev, "hash": self.hash}


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyResult:
    """Outcome of :func:`verify_audit`. ``line`` is the 1-based line of the first problem."""

    ok: bool
    records: int
    error: str | None = None
    line: int | None = None
    torn_tail: bool = False
    last_hash: str = GENESIS

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


def _head_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def _read_head(path: Path) -> tuple[int, str] | None:
    try:
        text = _head_path(path).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    if not text:
        return None
    seq, _, digest = text.partition(" ")
    try:
        return int(seq), digest
    except ValueError:
        return None


def verify_audit(path: str | Path, *, check_head: bool = True) -> VerifyResult:
    """Check every record's hash and link; report the first edited, removed or reordered record.

    A torn last line (crash mid-write) is not an error: the valid prefix is what was committed.
    """
    path = Path(path)
    if not path.exists():
        return VerifyResult(ok=False, records=0, error=f"audit file {path} does not exist")
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = bool(lines and lines[-1])  # text after the last newline: an incomplete write
    complete = lines[:-1]
    prev = GENESIS
    count = 0
    for i, raw in enumerate(complete, start=1):
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as exc:
            return VerifyResult(ok=False, records=count, line=i, error=f"line {i}: not valid JSON ({exc.msg})")
        if not isinstance(rec, dict) or not {"seq", "ts", "kind", "payload", "prev", "hash"} <= rec.keys():
            return VerifyResult(ok=False, records=count, line=i, error=f"line {i}: missing record fields")
        if rec["seq"] != count:
            return VerifyResult(ok=False, records=count, line=i,
                                error=f"line {i}: sequence {rec['seq']} where {count} was expected "
                                      "(a record was removed, inserted or reordered)")
        if rec["prev"] != prev:
            return VerifyResult(ok=False, records=count, line=i,
                                error=f"line {i}: previous-hash link broken (record removed or reordered)")
        if _hash(rec) != rec["hash"]:
            return VerifyResult(ok=False, records=count, line=i,
                                error=f"line {i}: hash mismatch (record seq {rec['seq']} was edited)")
        prev = rec["hash"]
        count += 1
    if check_head:
        head = _read_head(path)
        if head is not None:
            seq, digest = head
            if seq >= count:
                return VerifyResult(ok=False, records=count, line=count + 1, torn_tail=torn,
                                    error=f"file ends at seq {count - 1} but its head file records seq {seq}: "
                                          "records were removed from the end")
            rec = json.loads(complete[seq])
            if rec["hash"] != digest:
                return VerifyResult(ok=False, records=count, line=seq + 1,
                                    error=f"head file hash does not match record seq {seq}")
    return VerifyResult(ok=True, records=count, torn_tail=torn, last_hash=prev)


def record_config(trail: "AuditTrail", settings: Any, *, source: str, operator: str | None = None) -> "AuditRecord":
    """Append a ``config_change`` record: the settings (secrets masked) and their hash.

    ``settings`` is the whole :class:`~thunes.config.Settings` tree or one section (a pydantic model or a
    mapping). Call it when a trader starts and whenever settings are changed at run time.
    """
    from thunes.config import settings_hash

    data = settings.model_dump(mode="python") if hasattr(settings, "model_dump") else dict(settings)
    digest = settings_hash(settings) if hasattr(settings, "model_dump") else settings_hash(data)
    return trail.append("config_change", {"source": source, "operator": operator, "settings_hash": digest,
                                          "settings": data})


class AuditTrail:
    """Append-only hash-chained audit file. Thread-safe and multi-process safe (``flock``).

    ``fsync``: ``always`` (each record is on disk before ``append`` returns, or, inside :meth:`group`,
    before the group's block returns), ``batch`` (fsync every ``batch_size`` records and on
    :meth:`flush`/:meth:`close`), ``never`` (leave it to the OS).
    """

    def __init__(self, path: str | Path, *, fsync: FsyncPolicy = "always", clock: Clock | None = None,
                 batch_size: int = 64) -> None:
        if fsync not in ("always", "batch", "never"):
            raise StoreError(f"audit fsync policy must be always, batch or never, got {fsync!r}")
        self.path = Path(path)
        self.fsync = fsync
        self.batch_size = max(1, int(batch_size))
        self.clock = clock or LiveClock()
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        self._head_fd = os.open(_head_path(self.path), os.O_RDWR | os.O_CREAT, 0o640)
        self._known_size = -1  # file size after our last write; another size means re-read the tail
        self._seq = 0
        self._prev = GENESIS
        self._unsynced = 0
        self._local = threading.local()  # per thread: depth of nested group() blocks
        self._syncer: ThreadPoolExecutor | None = None  # sync_soon's helper thread, started on first use
        self._syncer_pid = 0
        self.fsyncs = 0  # fsyncs of the record file so far (the benchmark and the tests count them)

    # -- grouped durability --------------------------------------------------------------------------
    @contextmanager
    def group(self) -> Iterator["AuditTrail"]:
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
            return
        start = _last_newline_end(self._fd, end - 1)
        last = json.loads(os.pread(self._fd, end - 1 - start, start))
        self._seq = int(last["seq"]) + 1
        self._prev = str(last["hash"])
        self._known_size = end

    def append(self, kind: str, payload: Mapping[str, Any] | None = None) -> AuditRecord:
        """Write one record and return it (after fsync when the policy is ``always``)."""
        clean = redact(dict(payload or {}))
        ts = self.clock.now_ms()
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(self._fd).st_size
                if size != self._known_size:
                    self._resync(size)
                body = {"seq": self._seq, "ts": ts, "kind": str(kind), "payload": clean, "prev": self._prev}
                encoded = _canonical(body)
                body["hash"] = hashlib.sha256(encoded).hexdigest()
                # sort_keys puts "hash" first: splice it in rather than encoding the record twice
                line = b'{"hash":"' + body["hash"].encode() + b'",' + encoded[1:] + b"\n"
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
                # lag the file (harmless, the verifier accepts head <= last record) but never lead it.
                head = f"{body['seq']} {body['hash']}\n".encode().ljust(96)
                os.pwrite(self._head_fd, head, 0)
                record = AuditRecord(seq=body["seq"], ts=ts, kind=body["kind"], payload=clean,
                                     prev=body["prev"], hash=body["hash"])
                self._seq += 1
                self._prev = body["hash"]
                return record
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def flush(self) -> None:
        with self._lock:
            os.fsync(self._fd)
            self.fsyncs += 1
            os.fsync(self._head_fd)
            self._unsynced = 0

    def close(self) -> None:
        if self._syncer is not None:
            if self._syncer_pid == os.getpid():
                self._syncer.shutdown(wait=True)  # a sync in flight finishes before the file is closed
            self._syncer = None
        with self._lock:
            if self._fd >= 0:
                if self.fsync != "never":
                    os.fsync(self._fd)
                    os.fsync(self._head_fd)
                os.close(self._fd)
                os.close(self._head_fd)
                self._fd = self._head_fd = -1

    def __enter__(self) -> "AuditTrail":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def verify(path: str | Path) -> VerifyResult:
        return verify_audit(path)

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
