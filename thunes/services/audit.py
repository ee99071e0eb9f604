"""Audit services: verify an audit trail (:func:`verify_trail`).

The trail (default: settings ``audit.path``) is checked record by record under the settings' key
(``audit.key``, else ``audit.key_file``, else ``<audit folder>/keys/audit.key``): the HMAC-SHA256 chain, the
head file, every anchor recorded in the account's execution database (see
:func:`thunes.services.risk.execution_db_url`) and every anchor given by hand (the daily summary's
``audit:SEQ:HASH``). The result says which checks ran, so a verification that could not check the anchors
never reads as one that did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thunes.core.errors import ConfigError
from thunes.services.risk import account_folder, execution_db_url

__all__ = ["TrailCheck", "verify_trail"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrailCheck:
    path: Path
    result: Any  # thunes.execution.audit.VerifyResult
    checks: tuple[str, ...]  # what was checked, one phrase each (key, head file, anchors, given anchors)

    @property
    def ok(self) -> bool:
        return bool(self.result.ok)

    @property
    def verdict(self) -> str:
        """``ok``; ``UNVERIFIABLE`` (an unkeyed legacy file refused); else ``TAMPERED``."""
        if self.result.ok:
            return "ok"
        error = self.result.error or ""
        return "UNVERIFIABLE" if error.startswith("unkeyed (legacy)") else "TAMPERED"


def verify_trail(settings: Any, *, path: Path | str | None = None, mode: str | None = None,
                 state_dir: Path | str | None = None, db: str | None = None, expect: Sequence[str] = (),
                 allow_legacy: bool = False) -> TrailCheck:
    """Verify the trail at ``path`` (default settings ``audit.path``); see the module docstring.

    ``allow_legacy`` accepts an unkeyed (pre-HMAC) file with a warning instead of refusing it. A missing
    file is a ``ConfigError``; a broken one is a result whose ``ok`` is False and whose ``result.error``
    names the first problem.
    """
    from thunes.core.redact import redact_url
    from thunes.execution.audit import AuditAnchors, audit_key, default_key_file, verify_audit
    from thunes.execution.db import Database

    audit = settings.audit
    path = Path(path) if path else Path(audit.path)
    if not path.exists():
        raise ConfigError(f"audit file {path} does not exist")
    key = audit_key(audit, path=path, create=False)
    url = execution_db_url(account_folder(settings, mode=mode, state_dir=state_dir), db)
    database = Database.connect(url) if url else None
    try:
        result = verify_audit(path, key=key, anchors=AuditAnchors(database) if database else None,
                              expect=tuple(expect), allow_legacy=allow_legacy)
    finally:
        if database is not None:
            database.close()
    source = "audit.key" if audit.key is not None else f"key file {audit.key_file or default_key_file(path)}"
    checks = [f"hmac-sha256 ({result.keyed_records} records, key id {result.key_id} from {source})"
              if key is not None else f"hmac: no key ({source} does not exist)"]
    checks.append(f"head file (seq {result.head_seq})" if result.head_seq is not None else "head file")
    if database is not None:
        last = f", latest {result.last_anchor.short()}" if result.last_anchor else ""
        checks.append(f"anchors: {result.anchors_checked} ({redact_url(url or '')}{last})")
    else:
        checks.append("anchors from the database: not checked (no execution database; pass --db)")
    if expect:
        checks.append(f"--anchor: {len(expect)} given")
    return TrailCheck(path=path, result=result, checks=tuple(checks))
