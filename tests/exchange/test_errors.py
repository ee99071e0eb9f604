"""The translation table of ``thunes.exchange.errors``, row by row: each ccxt class (with the Binance body ccxt
embeds in its message) becomes one THUNES error, and only the transient ones are retryable."""

from __future__ import annotations

import ccxt
import pytest

from thunes.core import errors as E
from thunes.exchange.errors import binance_error, translate


def _binance(cls: type, code: int, msg: str) -> BaseException:
    return cls(f'binance {{"code":{code},"msg":"{msg}"}}')


@pytest.mark.parametrize(("exc", "expected", "retryable"), [
    (_binance(ccxt.DDoSProtection, -1003, "Too many requests."), E.RateLimited, True),
    (_binance(ccxt.RateLimitExceeded, -1003, "Too much request weight used."), E.RateLimited, True),
    (ccxt.RequestTimeout("binance GET https://x timed out"), E.RequestTimeout, True),
    (ccxt.ExchangeNotAvailable("binance 503 Service Unavailable"), E.ExchangeUnavailable, True),
    (ccxt.NetworkError("connection reset"), E.ExchangeUnavailable, True),
    (ccxt.OperationFailed("binance 500"), E.ExchangeUnavailable, True),
    (_binance(ccxt.InvalidNonce, -1021, "Timestamp for this request is outside of the recvWindow."),
     E.AuthenticationError, False),
    (_binance(ccxt.AuthenticationError, -1022, "Signature for this request is not valid."),
     E.AuthenticationError, False),
    (_binance(ccxt.PermissionDenied, -2015, "Invalid API-key, IP, or permissions for action."),
     E.AuthenticationError, False),
    (_binance(ccxt.InsufficientFunds, -2010, "Account has insufficient balance for requested action."),
     E.InsufficientFunds, False),
    (_binance(ccxt.OrderNotFound, -2013, "Order does not exist."), E.OrderNotFound, False),
    (_binance(ccxt.InvalidOrder, -2010, "Duplicate order sent."), E.DuplicateOrder, False),
    (_binance(ccxt.BadRequest, -1013, "Filter failure: MIN_NOTIONAL"), E.FilterRejected, False),
    (_binance(ccxt.InvalidOrder, -1013, "Filter failure: LOT_SIZE"), E.FilterRejected, False),
    (_binance(ccxt.InvalidOrder, -2010, "Order would immediately match and take."), E.OrderRejected, False),
    (_binance(ccxt.BadSymbol, -1121, "Invalid symbol."), E.ExchangeError, False),
])
def test_each_ccxt_class_becomes_one_thunes_error(exc, expected, retryable):
    err = translate(exc)
    assert type(err) is expected
    assert isinstance(err, E.RetryableError) is retryable
    assert isinstance(err, E.ExchangeError)


def test_codes_filter_names_and_retry_after_are_carried_over():
    filt = translate(_binance(ccxt.BadRequest, -1013, "Filter failure: PERCENT_PRICE_BY_SIDE"))
    assert (filt.code, filt.filter_name) == (-1013, "PERCENT_PRICE_BY_SIDE")
    assert translate(_binance(ccxt.OrderNotFound, -2011, "Unknown order sent.")).code == -2011
    limited = translate(_binance(ccxt.DDoSProtection, -1003, "Way too many requests; IP banned until 1700000000000."),
                        {"Retry-After": "120"})
    assert (limited.retry_after, limited.banned) == (120.0, True)
    assert translate(ccxt.DDoSProtection("429"), {"retry-after": "soon"}).retry_after is None


def test_a_thunes_error_passes_through_and_the_body_parser_tolerates_noise():
    already = E.InsufficientFunds("no money")
    assert translate(already) is already
    assert binance_error(ccxt.BadRequest('binance {"code": -1100, "msg": "Illegal characters"} tail')) == (
        -1100, "Illegal characters")
    assert binance_error(ccxt.BadRequest("binance {not json}")) == (None, "binance {not json}")


@pytest.mark.parametrize(("code", "expected"), [
    (-1001, E.ExchangeUnavailable), (-1006, E.ExchangeUnavailable), (-1007, E.RequestTimeout),
    (-1008, E.ExchangeUnavailable)])
def test_binance_server_trouble_is_retryable_whatever_class_ccxt_picked(code, expected):
    # ccxt gives -1008 as OperationFailed against api.binance.com but ExchangeError on any other URL
    for cls in (ccxt.OperationFailed, ccxt.ExchangeError):
        err = translate(_binance(cls, code, "server trouble"))
        assert type(err) is expected and isinstance(err, E.RetryableError)
