"""Helpers shared by command modules: loading candles for a command, parsing --param values."""

from __future__ import annotations

import click
import pandas as pd

from thunes.core.timeframes import parse_timeframe, utc_ms

__all__ = ["load_candles", "parse_params", "candle_options", "at_most_once"]


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


def candle_options(fn):  # noqa: ANN001, ANN201
    """--symbol/--timeframe/--since/--until/--db/--csv/--sample options for commands that read candles."""
    options = [
        click.option("--symbol", default=("BTC/USDT",), multiple=True, callback=at_most_once, show_default=True,
                     help="Unified symbol."),
        click.option("--timeframe", default=("1h",), multiple=True, callback=at_most_once, show_default=True,
                     help="Candle timeframe."),
        click.option("--since", default=None, help="Start date (UTC), e.g. 2022-01-01."),
        click.option("--until", default=None, help="End date (UTC, exclusive)."),
        click.option("--db", default=None, metavar="URL", help="Store URL (default: settings data.url)."),
        click.option("--csv", "csv_file", default=None, type=click.Path(exists=True, dir_okay=False),
                     help="Read candles from this file instead of the store."),
        click.option("--sample", is_flag=True,
                     help="Use the bundled sample (real data from ../shared/data when present, else synthetic)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def load_candles(app, *, symbol: str, timeframe: str, since: str | None = None, until: str | None = None,  # noqa: ANN001
                 db: str | None = None, csv_file: str | None = None, sample: bool = False) -> tuple[pd.DataFrame, str]:
    """Candles for a command: from a file, the sample, or the store (falling back to the sample when the
    store has nothing for the series, and saying so). A timeframe without a sample file of its own is
    resampled from a finer real file (see :func:`thunes.data.samples.load_sample_candles`)."""
    from thunes.core.candles import candles_frame, ts_ms

    tf = str(parse_timeframe(timeframe))
    start = utc_ms(since) if since else None
    end = utc_ms(until) if until else None
    if csv_file:
        from pathlib import Path

        from thunes.data.io import read_candle_file

        t = read_candle_file(Path(csv_file))
        frame = candles_frame(t["ts"].to_numpy(), t["open"], t["high"], t["low"], t["close"], t["volume"])
        source = csv_file
    else:
        from thunes.data.samples import stored_or_sample

        frame, source = stored_or_sample(app.settings.data, symbol=symbol, timeframe=tf, url=db, sample=sample,
                                         start_ms=start, end_ms=end)
    if start is not None or end is not None:
        ts = ts_ms(frame)
        keep = (ts >= (start if start is not None else ts.min())) & (ts < (end if end is not None else ts.max() + 1))
        frame = frame.loc[keep]
    if frame.empty:
        raise click.UsageError(f"no candles for {symbol} {tf} in the requested range ({source})")
    return frame, source


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
