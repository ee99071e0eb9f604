"""The wire format of a candle on the topic: a text key naming the series, a fixed 50-byte value.

Key: ``exchange|symbol|timeframe`` (``binance|BTC/USDT|1m``), UTF-8. Kafka partitions by key, so every
candle of one series lands in one partition and is read back in the order it was published.

Value (little endian, 50 bytes): ``version u8 (=1) | source u8 | ts_ms i64 | open, high, low, close,
volume f64``. Floats travel as IEEE doubles, so a candle arrives bit-identical to what was read from
the exchange (the store keeps REAL columns). ``source``: 0 websocket stream, 1 REST backfill.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from thunes.core.errors import DataError
from thunes.core.timeframes import parse_timeframe
from thunes.data.store import normalize_symbol

__all__ = [
    "CANDLE_DTYPE",
    "SOURCES",
    "VALUE_SIZE",
    "SeriesKey",
    "candle_array",
    "decode_value",
    "decode_values",
    "encode_value",
    "frame_array",
]

_VALUE = struct.Struct("<BBqddddd")
VALUE_SIZE = _VALUE.size
_VERSION = 1
SOURCES = ("stream", "backfill")
_SOURCE_CODE = {name: i for i, name in enumerate(SOURCES)}
_DTYPE = np.dtype([("version", "u1"), ("source", "u1"), ("ts", "<i8"), ("open", "<f8"), ("high", "<f8"),
                   ("low", "<f8"), ("close", "<f8"), ("volume", "<f8")])
assert _DTYPE.itemsize == VALUE_SIZE


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One candle series: which exchange, which unified symbol, which timeframe."""

    exchange: str
    symbol: str
    timeframe: str

    @classmethod
    def of(cls, exchange: str, symbol: str, timeframe: str) -> SeriesKey:
        """Normalised key (``binance``, ``BTC/USDT``, ``1m``); raises ``DataError`` on a bad part."""
        ex = str(exchange).strip().lower()
        if not ex or "|" in ex:
            raise DataError(f"exchange id {exchange!r} must be non-empty and contain no '|'")
        return cls(ex, normalize_symbol(symbol), str(parse_timeframe(timeframe)))

    def encode(self) -> bytes:
        return f"{self.exchange}|{self.symbol}|{self.timeframe}".encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> SeriesKey:
        text = raw.decode() if isinstance(raw, (bytes, bytearray)) else raw
        parts = text.split("|")
        if len(parts) != 3:
            raise DataError(f"stream key {text!r} is not 'exchange|symbol|timeframe'")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.exchange}|{self.symbol}|{self.timeframe}"


def encode_value(ts_ms: int, open_: float, high: float, low: float, close: float, volume: float,
                 source: str = "stream") -> bytes:
    """The 50-byte message value of one closed candle."""
    try:
        code = _SOURCE_CODE[source]
    except KeyError:
        raise DataError(f"unknown candle source {source!r}; expected one of {SOURCES}") from None
    return _VALUE.pack(_VERSION, code, int(ts_ms), float(open_), float(high), float(low), float(close),
                       float(volume))


def decode_value(raw: bytes) -> tuple[int, float, float, float, float, float, str]:
    """``(ts_ms, open, high, low, close, volume, source)`` of one message value."""
    if len(raw) != VALUE_SIZE or raw[0] != _VERSION:
        raise DataError(f"stream value of {len(raw)} bytes (version {raw[:1].hex() or '-'}) is not a "
                        f"version-{_VERSION} candle")
    _, code, ts, o, h, lo, c, v = _VALUE.unpack(raw)
    return ts, o, h, lo, c, v, source_name(code)


def decode_values(raws: list[bytes]) -> np.ndarray:
    """Many values at once, as a structured array (fields ts, open, high, low, close, volume, source).

    The sink's hot path: one ``frombuffer`` instead of a Python call per candle.
    """
    if not raws:
        return np.zeros(0, dtype=_DTYPE)
    blob = b"".join(raws)
    if len(blob) != VALUE_SIZE * len(raws):
        bad = next(r for r in raws if len(r) != VALUE_SIZE)
        raise DataError(f"stream value of {len(bad)} bytes is not a version-{_VERSION} candle")
    out = np.frombuffer(blob, dtype=_DTYPE)
    if (out["version"] != _VERSION).any():
        raise DataError(f"stream value with version {int(out['version'][out['version'] != _VERSION][0])} "
                        f"is not a version-{_VERSION} candle")
    return out


def candle_array(ts: np.ndarray, open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                 volume: np.ndarray, source: str = "stream") -> np.ndarray:
    """Candles as the structured array the transports carry (and whose bytes are the message values)."""
    try:
        code = _SOURCE_CODE[source]
    except KeyError:
        raise DataError(f"unknown candle source {source!r}; expected one of {SOURCES}") from None
    out = np.empty(len(ts), dtype=_DTYPE)
    out["version"] = _VERSION
    out["source"] = code
    out["ts"] = ts
    out["open"], out["high"], out["low"], out["close"], out["volume"] = open_, high, low, close, volume
    return out


def frame_array(frame, source: str = "stream") -> np.ndarray:  # noqa: ANN001 - pd.DataFrame
    """:func:`candle_array` of a canonical candle frame."""
    from thunes.core.candles import ts_ms

    return candle_array(ts_ms(frame), *(frame[c].to_numpy(dtype="float64") for c in
                                        ("open", "high", "low", "close", "volume")), source=source)


def source_name(code: int) -> str:
    return SOURCES[code] if code < len(SOURCES) else "stream"


CANDLE_DTYPE = _DTYPE
