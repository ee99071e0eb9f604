"""ccxt exceptions translated once into the THUNES error tree (``raise translate(exc) from exc``).

::

    ccxt (4.5.90)                                   thunes.core.errors
    DDoSProtection / RateLimitExceeded (429, 418)   RateLimited(retry_after, banned)      retryable
    RequestTimeout (incl. 504, -1007)               RequestTimeout                        retryable
    ExchangeNotAvailable / NetworkError / 5xx       ExchangeUnavailable                   retryable
    OperationFailed, -1001/-1006/-1008 by code      ExchangeUnavailable                   retryable
    InvalidNonce (-1021)                            AuthenticationError (clock: resync)   not retried as is
    AuthenticationError / PermissionDenied          AuthenticationError
    InsufficientFunds (-2010 balance)               InsufficientFunds
    OrderNotFound (-2011, -2013)                    OrderNotFound
    InvalidOrder "Duplicate order sent." (-2010)    DuplicateOrder
    InvalidOrder / BadRequest "Filter failure: X"   FilterRejected(filter_name=X, code)
    other InvalidOrder                              OrderRejected(code)
    anything else                                   ExchangeError

ccxt classifies Binance answers partly by message substring, so the exchange's JSON body (embedded in the
ccxt message) is parsed here for the code and the filter name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import ccxt

from thunes.core import errors as E

__all__ = ["binance_error", "translate"]

_BODY = re.compile(r"\{.*\}", re.S)
_FILTER = re.compile(r"Filter failure: ([A-Z_]+)")
_SERVER_TROUBLE = {-1001, -1006, -1008}  # internal error, message-bus surprise, overloaded: try again


def binance_error(exc: BaseException) -> tuple[int | None, str]:
    """(code, msg) of the Binance JSON error embedded in a ccxt exception message, when present."""
    text = str(exc)
    match = _BODY.search(text)
    if match:
        try:
            body = json.loads(match.group(0))
            if isinstance(body, dict) and "code" in body:
                return int(body["code"]), str(body.get("msg", ""))
        except (ValueError, TypeError):
            pass
    return None, text


def translate(exc: BaseException, headers: Mapping[str, str] | None = None) -> E.ThunesError:
    """The THUNES error for a ccxt exception. ``headers`` (the last response's) supply Retry-After."""
    if isinstance(exc, E.ThunesError):
        return exc
    code, msg = binance_error(exc)
    text = f"{type(exc).__name__}: {msg}" if code is None else f"{type(exc).__name__}: {code} {msg}"
    if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
        retry_after = None
        for key, value in (headers or {}).items():
            if key.lower() == "retry-after":
                try:
                    retry_after = float(value)
                except ValueError:
                    retry_after = None
        return E.RateLimited(text, retry_after=retry_after, banned="banned" in msg.lower())
    if isinstance(exc, ccxt.RequestTimeout) or code == -1007:
        return E.RequestTimeout(text)
    if code in _SERVER_TROUBLE:
        # ccxt raises OperationFailed for these against Binance but ExchangeError for -1008 on any other URL
        # (docs/binance-spot-api.md §4.3): decide by the code so that live and local agree.
        return E.ExchangeUnavailable(text)
    if isinstance(exc, ccxt.InvalidNonce):
        return E.AuthenticationError(text + " (clock out of sync: resync the time difference)")
    if isinstance(exc, ccxt.NetworkError):
        return E.ExchangeUnavailable(text)
    if isinstance(exc, (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended)):
        return E.AuthenticationError(text)
    if isinstance(exc, ccxt.InsufficientFunds):
        return E.InsufficientFunds(text, code)
    if isinstance(exc, ccxt.OrderNotFound):
        return E.OrderNotFound(text, code)
    filt = _FILTER.search(msg)
    if isinstance(exc, (ccxt.InvalidOrder, ccxt.BadRequest)) and filt:
        return E.FilterRejected(text, code, filter_name=filt.group(1))
    if isinstance(exc, ccxt.InvalidOrder):
        if "Duplicate order sent" in msg:
            return E.DuplicateOrder(text, code)
        return E.OrderRejected(text, code)
    if isinstance(exc, ccxt.ExchangeError):
        return E.ExchangeError(text)
    if isinstance(exc, ccxt.OperationFailed):
        return E.ExchangeUnavailable(text)
    return E.ExchangeError(text)
