"""Optional extra sink: candles into InfluxDB 1.x as line protocol over HTTP (``POST /write``).

One point per candle in measurement ``candles``, tags ``exchange``, ``symbol``, ``timeframe``, fields
``open high low close volume``, timestamp in ms. A point with the same series and time overwrites the
previous one in InfluxDB, so this sink is idempotent like the store. It runs after the store commit and
never blocks it: a failure is logged and counted by the writer (the store stays the source of truth;
``thunes stream sink`` can be re-run from the topic's beginning to refill InfluxDB).
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from thunes.core.errors import ConfigError, StoreError
from thunes.stream._codec import SeriesKey

__all__ = ["InfluxSink", "line_protocol"]


def _tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def line_protocol(series: SeriesKey, candles: np.ndarray, measurement: str = "candles") -> str:
    """Line-protocol text of ``candles`` (``repr`` floats: exact round trip)."""
    head = (f"{_tag(measurement)},exchange={_tag(series.exchange)},symbol={_tag(series.symbol)},"
            f"timeframe={_tag(series.timeframe)} ")
    return "\n".join(
        f"{head}open={float(o)!r},high={float(h)!r},low={float(lo)!r},close={float(c)!r},volume={float(v)!r} {int(t)}"
        for t, o, h, lo, c, v in zip(candles["ts"], candles["open"], candles["high"], candles["low"],
                                     candles["close"], candles["volume"]))


class InfluxSink:
    """Write candles to database ``db`` of the InfluxDB 1.x server at ``url`` (``http://host:8086``)."""

    def __init__(self, url: str, db: str = "thunes", *, measurement: str = "candles", timeout_s: float = 10.0,
                 create_db: bool = True) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"InfluxDB URL must look like http://host:8086, got {url!r}")
        self.url = url.rstrip("/")
        self.db = db
        self.measurement = measurement
        self.timeout_s = timeout_s
        if create_db:
            self._post("/query", {"q": f'CREATE DATABASE "{db}"'}, b"")

    def _post(self, path: str, params: dict[str, str], body: bytes) -> None:
        req = urllib.request.Request(f"{self.url}{path}?{urllib.parse.urlencode(params)}", data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            raise StoreError(f"InfluxDB {path} answered {exc.code}: {exc.read()[:200].decode(errors='replace')}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise StoreError(f"InfluxDB at {self.url} unreachable: {exc}") from exc

    def write(self, series: SeriesKey, candles: np.ndarray) -> None:
        if len(candles):
            self._post("/write", {"db": self.db, "precision": "ms"},
                       line_protocol(series, candles, self.measurement).encode())

    def close(self) -> None:
        pass
