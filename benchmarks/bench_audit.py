"""Audit trail: what the keyed chain (HMAC-SHA256) and the anchors cost an append.

Measures ``AuditTrail.append`` per fsync policy, the order path's group of two records sharing one fsync,
an append with an anchor store attached (anchors every ``--anchor-every`` records, written off the append
path), and the bare digest of one record (SHA-256 vs HMAC-SHA256) so the chain's own cost is visible
without the disk.

Run: ``.venv/bin/python benchmarks/bench_audit.py [--n 20000] [--n-disk 2000]``. Prints p50/p99 in
microseconds and operations per second. The fsync rows depend on the disk.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from thunes.core.clock import SimulatedClock
from thunes.execution import audit as audit_mod
from thunes.execution.audit import AuditTrail

PAYLOAD = {"symbol": "BTC/USDT", "side": "BUY", "qty": "0.00155", "price": "64250.5", "reason": "sma cross",
           "decision_id": 123456, "strategy": "sma_cross"}


def _timed(fn, n: int) -> np.ndarray:  # noqa: ANN001
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn(i)
        out[i] = (time.perf_counter_ns() - t0) / 1000.0
    return out


def _keyed() -> bool:
    return hasattr(audit_mod, "AuditAnchors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="appends per row without fsync")
    parser.add_argument("--n-disk", type=int, default=2_000, help="appends per row with fsync=always")
    parser.add_argument("--anchor-every", type=int, default=1000, help="records between two anchors")
    args = parser.parse_args()
    clock = SimulatedClock(1_700_000_000_000)
    rows: list[tuple[str, np.ndarray]] = []

    body = {"seq": 7, "ts": 1_700_000_000_000, "kind": "risk_decision", "payload": PAYLOAD, "prev": "0" * 64}
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    key = b"k" * 32
    rows.append(("digest sha256 (one record)", _timed(lambda i: hashlib.sha256(encoded).hexdigest(), args.n)))
    rows.append(("digest hmac-sha256 (one record)", _timed(lambda i: hmac.digest(key, encoded, "sha256").hex(),
                                                           args.n)))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "audit"
        for policy, n in (("never", args.n), ("batch", args.n), ("always", args.n_disk)):
            trail = AuditTrail(folder / f"audit_{policy}.jsonl", fsync=policy, clock=clock)
            rows.append((f"append fsync={policy}", _timed(lambda i: trail.append("risk_decision", PAYLOAD), n)))
            trail.close()
        trail = AuditTrail(folder / "audit_group.jsonl", fsync="always", clock=clock)

        def grouped(i: int) -> None:
            with trail.group():
                trail.append("risk_decision", PAYLOAD)
                trail.append("order_intent", PAYLOAD)

        rows.append(("group of 2 records, fsync=always", _timed(grouped, args.n_disk)))
        trail.close()
        if _keyed():
            from thunes.execution.audit import AuditAnchors
            from thunes.execution.db import Database

            db = Database.connect(f"sqlite:///{tmp}/exec.sqlite")
            anchors = AuditAnchors(db)
            for policy, n in (("never", args.n), ("always", args.n_disk)):
                trail = AuditTrail(folder / f"audit_anchored_{policy}.jsonl", fsync=policy, clock=clock,
                                   anchors=anchors, anchor_every=args.anchor_every, anchor_seconds=None)
                rows.append((f"append fsync={policy} + anchors/{args.anchor_every}",
                             _timed(lambda i: trail.append("risk_decision", PAYLOAD), n)))
                trail.close()
            db.close()

    mode = "keyed (hmac-sha256)" if _keyed() else "unkeyed (sha256)"
    print(f"audit trail, chain {mode}")
    print(f"{'operation':<44}{'p50 us':>10}{'p99 us':>10}{'ops/s':>12}")
    for name, t in rows:
        print(f"{name:<44}{np.percentile(t, 50):>10.1f}{np.percentile(t, 99):>10.1f}{1e6 / t.mean():>12,.0f}")


if __name__ == "__main__":
    main()
