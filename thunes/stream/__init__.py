"""Market data streaming: exchange websocket -> transport -> candle store, with no hole and no duplicate.

::

    thunes stream run --symbols BTC/USDT,ETH/USDT --timeframes 1m,5m          # embedded: straight into the store
    thunes stream broker &                                                     # Kafka (Tansu) on 127.0.0.1:9092
    thunes stream run --symbols BTC/USDT,ETH/USDT --kafka 127.0.0.1:9092       # producer
    thunes stream sink --kafka 127.0.0.1:9092                                  # consumer group -> store

Modules: :mod:`~thunes.stream.ingest` (one websocket feed per series, REST backfill of every gap),
:mod:`~thunes.stream.embedded` (in-process queue into the store), :mod:`~thunes.stream.kafka` (keyed
producer that recovers what a restarted broker lost), :mod:`~thunes.stream.sink` (consumer group,
offsets committed after the database commit), :mod:`~thunes.stream.writer` (the idempotent batch
upsert every path ends in), :mod:`~thunes.stream.influx` (optional InfluxDB sink),
:mod:`~thunes.stream.source` (candles for bots from the topic), :mod:`~thunes.stream.broker` (Tansu).
Guarantees and failure behaviour: ``docs/streaming.md``.
"""

from thunes.stream._codec import SeriesKey, candle_array, decode_value, encode_value
from thunes.stream.embedded import EmbeddedTransport
from thunes.stream.ingest import IngestOptions, Ingestor
from thunes.stream.writer import BatchWriter

__all__ = [
    "BatchWriter",
    "EmbeddedTransport",
    "InfluxSink",
    "IngestOptions",
    "Ingestor",
    "KafkaCandleSource",
    "KafkaPublisher",
    "KafkaSink",
    "SeriesKey",
    "TansuBroker",
    "candle_array",
    "decode_value",
    "encode_value",
]


def __getattr__(name: str):  # noqa: ANN202 - the Kafka parts import confluent_kafka only when used
    if name == "KafkaPublisher":
        from thunes.stream.kafka import KafkaPublisher
        return KafkaPublisher
    if name == "KafkaSink":
        from thunes.stream.sink import KafkaSink
        return KafkaSink
    if name == "KafkaCandleSource":
        from thunes.stream.source import KafkaCandleSource
        return KafkaCandleSource
    if name == "TansuBroker":
        from thunes.stream.broker import TansuBroker
        return TansuBroker
    if name == "InfluxSink":
        from thunes.stream.influx import InfluxSink
        return InfluxSink
    raise AttributeError(name)
