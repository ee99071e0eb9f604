"""Deterministic identifiers. A client order id derived from the intent makes a retry idempotent."""

from __future__ import annotations

import hashlib

__all__ = ["client_order_id"]

# Binance accepts ^[a-zA-Z0-9-_]{1,36}$ for newClientOrderId.
_MAX_LEN = 36


def client_order_id(*parts: object, prefix: str = "th") -> str:
    """A stable id from the parts that define an intent (strategy, symbol, bar time, side, attempt...).

    The same parts always give the same id, so an order re-sent after a crash is recognised by the
    exchange (duplicate) and by our journal, instead of being placed twice.
    """
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return f"{prefix}-{digest}"[:_MAX_LEN]
