"""Helpers shared by command modules: the candle-source flags and loading candles for a command, parsing
--param values."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from thunes.core.timeframes import utc_ms
from thunes.data.sources import SOURCES, CandleQuery, LoadedCandles, Source

__all__ = ["CandleSourceArgs", "at_most_once", "candle_options", "candle_source_options", "load_candles",
           "parse_params"]


def at_most_once(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> str | None:
    """Callback of an option declared ``multiple=True`` that the command takes once: click keeps the last
    of a repeated ordinary option silently; this refuses the repetition instead, naming the option.
    ``--symbol A --symbol A`` (the same value twice) is accepted."""
    distinct = list(dict.fromkeys(values))
    if len(distinct) > 1:
        name = param.opts[0] if param.opts else param.name
        raise click.BadParameter(f"given {len(distinct)} times ({', '.join(distinct)}); this command takes one",
                                 ctx=ctx, param=param, param_hint=name)
    return distinct[0] if distinct else None


@dataclass(frozen=True, slots=True, kw_only=True)
class CandleSourceArgs:
    """The candle-source flags of a command, checked (see :func:`candle_source_options`)."""

    since: str | None = None
    until: str | None = None
    db: str | None = None
    csv_file: str | None = None
    source: Source = "auto"

    def query(self, symbol: str, timeframe: str) -> CandleQuery:
        return CandleQuery(symbol=symbol, timeframe=timeframe, since=self.since, until=self.until,
                           source=self.source, file=Path(self.csv_file) if self.csv_file else None,
                           store_url=self.db)


def _source_args(since: str | None, until: str | None, db: str | None, csv_file: str | None, sample: bool,
                 source: str | None) -> CandleSourceArgs:
    if sample and source not in (None, "sample"):
        raise click.UsageError(f"--sample means --source sample; it cannot go with --source {source}")
    if csv_file and (sample or source is not None):
        raise click.UsageError("--csv FILE reads that file; it cannot go with --sample or --source")
    for name, day in (("--since", since), ("--until", until)):
        if day is not None:
            try:
                utc_ms(day)
            except ValueError:
                raise click.BadParameter(f"{day!r}: not a date (use e.g. 2024-01-31 or 2024-01-31T12:00)",
                                         param_hint=name) from None
    return CandleSourceArgs(since=since, until=until, db=db, csv_file=csv_file,
                            source="sample" if sample else (source or "auto"))  # type: ignore[arg-type]


def candle_source_options(fn):  # noqa: ANN001, ANN201
    """The candle-source flags every command that reads candles takes, the same everywhere: --since, --until,
    --db, --csv, --sample, --source. The command receives them as one ``candles`` argument
    (:class:`CandleSourceArgs`); the rule they select is :mod:`thunes.data.sources`'s."""

    @functools.wraps(fn)
    def wrapper(*args: Any, since: str | None, until: str | None, db: str | None, csv_file: str | None,
                sample: bool, source: str | None, **kwargs: Any) -> Any:
        return fn(*args, candles=_source_args(since, until, db, csv_file, sample, source), **kwargs)

    options = [
        click.option("--since", default=None, help="First candle (UTC date), e.g. 2024-01-01."),
        click.option("--until", default=None, help="End (UTC date, exclusive)."),
        click.option("--db", default=None, metavar="URL", help="Candle store URL (default: settings data.url)."),
        click.option("--csv", "csv_file", default=None, type=click.Path(exists=True, dir_okay=False),
                     help="Read the candles from this CSV/Parquet file instead."),
        click.option("--sample", is_flag=True,
                     help="Shorthand for --source sample: the real sample files (../shared/data or "
                          "$THUNES_SAMPLE_DIR), SYNTHETIC candles where there is none."),
        click.option("--source", type=click.Choice(SOURCES), default=None,
                     help="auto (default): the candle store (resampled from a finer stored timeframe when needed), "
                          "else the real sample files, else an error naming the `thunes data` command to run; "
                          "store: the store only; sample: as --sample; synthetic: generated candles."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def candle_options(fn):  # noqa: ANN001, ANN201
    """--symbol/--timeframe plus :func:`candle_source_options`, for commands that read one series."""
    options = [
        click.option("--symbol", default=("BTC/USDT",), multiple=True, callback=at_most_once, show_default=True,
                     help="Unified symbol."),
        click.option("--timeframe", default=("1h",), multiple=True, callback=at_most_once, show_default=True,
                     help="Candle timeframe."),
    ]
    fn = candle_source_options(fn)
    for option in reversed(options):
        fn = option(fn)
    return fn


def load_candles(app: Any, args: CandleSourceArgs, *, symbol: str, timeframe: str) -> LoadedCandles:  # noqa: ANN001
    """The candles of ``symbol``/``timeframe`` for a command (:func:`thunes.data.sources.load_candles`), with
    one stderr line saying where they came from and a warning when they are synthetic."""
    from thunes.data.sources import load_candles as load

    loaded = load(args.query(symbol, timeframe), app.settings.data)
    frame = loaded.frame
    click.echo(f"candles: {symbol} {timeframe}, {len(frame):,} bars {frame.index[0]:%Y-%m-%d %H:%M} → "
               f"{frame.index[-1]:%Y-%m-%d %H:%M} UTC from {loaded.source}", err=True)
    if not loaded.real:
        click.secho("warning: these are SYNTHETIC candles, not market data", fg="yellow", err=True)
    return loaded


def parse_params(items: tuple[str, ...], param_hint: str = "--param") -> dict[str, str]:
    """``("fast=10", "slow=50")`` -> ``{"fast": "10", "slow": "50"}`` (the strategy validates types).

    The one parser of repeated ``NAME=VALUE`` options (``--param``, ``--range``, ``--grid``); ``param_hint``
    names the option in the error."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE", param_hint=param_hint)
        out[key.strip()] = value.strip()
    return out
