"""``thunes data list|import|export|check|download``: thin commands over :mod:`thunes.data`."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
import pandas as pd

from thunes.cli._common import at_most_once
from thunes.core.candles import ts_ms
from thunes.core.errors import DataError
from thunes.core.timeframes import parse_timeframe, utc_ms
from thunes.data.quality import format_ms
from thunes.data.store import normalize_symbol, store_from_settings

__all__ = ["register"]


def _iso(ms: int | None) -> str:
    return "-" if ms is None else pd.Timestamp(int(ms), unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")


def _open(app, db: str | None):  # noqa: ANN001, ANN202
    return store_from_settings(app.settings.data, url=db)


def _progress_bar(total: int | None, desc: str):  # noqa: ANN202
    from thunes.progress import progress_bar

    return progress_bar(total=total, desc=desc, unit="rows")


def _check_base_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from thunes.core.urls import rest_root

    if value is not None:
        try:
            rest_root(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


_db_option = click.option("--db", default=None, metavar="URL",
                          help="Store URL (sqlite:///PATH or postgresql://...). Default: settings data.url.")


@click.group("data")
def data_group() -> None:
    """Candle data: import, export, download, list and check what is stored.

    \b
    Examples:
      thunes data import --sample BTC/USDT --timeframe 1h
      thunes data list
    """


@data_group.command("list", epilog="Example: thunes data list --db sqlite:///data/thunes.sqlite")
@_db_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_cmd(app, db: str | None, as_json: bool) -> None:  # noqa: ANN001
    """Show what is stored: symbol, timeframe, first, last, rows, gaps (missing bars)."""
    from thunes.data.quality import find_gaps

    with _open(app, db) as store:
        rows = []
        for info in store.series():
            ts = store.load_arrays(info.symbol, info.timeframe)[0]
            gaps = find_gaps(ts, info.timeframe)
            rows.append({"symbol": info.symbol, "timeframe": info.timeframe, "first": _iso(info.first),
                         "last": _iso(info.last), "rows": info.rows, "gaps": len(gaps),
                         "missing_bars": sum(g[2] for g in gaps)})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("the store is empty: try `thunes data import --sample BTC/USDT --timeframe 1h`")
        return
    header = f"{'symbol':<12} {'tf':<4} {'first':<17} {'last':<17} {'rows':>10} {'gaps (missing)':>15}"
    click.echo(header)
    for r in rows:
        click.echo(f"{r['symbol']:<12} {r['timeframe']:<4} {r['first']:<17} {r['last']:<17} {r['rows']:>10,} "
                   f"{str(r['gaps']) + ' (' + str(r['missing_bars']) + ')':>15}")


@data_group.command("import", epilog="Examples: thunes data import BTCUSDT-1m-2024-01-01.csv --symbol BTC/USDT --timeframe 1m;  thunes data import --sample BTC/USDT --timeframe 1h")
@click.argument("file", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option("--symbol", multiple=True, callback=at_most_once, help="Unified symbol, e.g. BTC/USDT.")
@click.option("--timeframe", multiple=True, callback=at_most_once, help="Candle timeframe, e.g. 1m, 1h.")
@click.option("--format", "fmt", type=click.Choice(["csv", "binance", "parquet"]), default=None,
              help="File format (default: detected from the file).")
@click.option("--sample", "sample_symbol", metavar="SYMBOL",
              help="Import the bundled sample for SYMBOL (real data from ../shared/data when present, "
                   "else synthetic candles) instead of FILE.")
@click.option("--upsert", is_flag=True, help="Replace stored candles with the file's values (default: keep them).")
@click.option("--skip-bad-rows", is_flag=True,
              help="Store the valid rows of a file that has invalid ones and list the rejected rows "
                   "(default: refuse the whole file and store nothing).")
@_db_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def import_cmd(app, file: str | None, symbol: str | None, timeframe: str | None, fmt: str | None,  # noqa: ANN001
               sample_symbol: str | None, upsert: bool, skip_bad_rows: bool, db: str | None, as_json: bool) -> None:
    """Import candles from FILE (CSV ts,open,high,low,close,volume; Binance archive klines; Parquet).

    A file with any invalid row (NaN, bad OHLC, a timestamp before 2009-01-03 or after now + one bar,
    ...) is refused and nothing from it is stored; the error names the first rows and their reasons.
    --skip-bad-rows stores the valid rows and lists the rejected ones. Stored candles are never lost.
    """
    from thunes.data.io import import_file, import_sample

    if sample_symbol is None and file is None:
        raise click.UsageError("give a FILE or --sample SYMBOL")
    if timeframe is None:
        raise click.UsageError("--timeframe is required (e.g. --timeframe 1h)")
    parse_timeframe(timeframe)
    with _open(app, db) as store:
        bar = _progress_bar(None, "import")
        try:
            if sample_symbol is not None:
                result = import_sample(store, normalize_symbol(sample_symbol), timeframe, progress=bar.update,
                                       sample_dir=app.settings.data.sample_dir)
            else:
                if symbol is None:
                    raise click.UsageError("--symbol is required with FILE (e.g. --symbol BTC/USDT)")
                result = import_file(store, file, symbol=symbol, timeframe=timeframe, fmt=fmt,  # type: ignore[arg-type]
                                     mode="upsert" if upsert else "insert", progress=bar.update,
                                     skip_bad_rows=skip_bad_rows)
        finally:
            bar.close()
    # Only the sample import knows where its candles come from; a file's provenance is the user's word.
    if sample_symbol is None:
        kind = "from a file"
    else:
        kind = "real data" if result.real else "SYNTHETIC data (no real sample file found)"
    if as_json:
        click.echo(json.dumps({
            "source": result.source, "format": result.fmt, "symbol": normalize_symbol(symbol or sample_symbol),
            "timeframe": str(parse_timeframe(timeframe)), "provenance": kind, "read": result.read,
            "written": result.written, "rejected": [{"row": int(r.row), "ts": format_ms(r.ts), "reason": r.reason}
                                                    for r in result.rejected.itertuples()]}, indent=2))
        return
    click.echo(f"imported {result.source} [{result.fmt}, {kind}]: read {result.read:,}, "
               f"written {result.written:,}, rejected {result.n_rejected:,}")
    for row in result.rejected.head(10).itertuples():
        click.echo(f"  rejected row {row.row} ({format_ms(row.ts)}): {row.reason}", err=True)
    if result.n_rejected > 10:
        click.echo(f"  ... and {result.n_rejected - 10} more rejected rows", err=True)


@data_group.command("export", epilog="Example: thunes data export --symbol BTC/USDT --timeframe 1h --out btc_1h.parquet --since 2024-01-01")
@click.option("--symbol", required=True, multiple=True, callback=at_most_once, help="Unified symbol, e.g. BTC/USDT.")
@click.option("--timeframe", required=True, multiple=True, callback=at_most_once, help="Candle timeframe, e.g. 1m, 1h.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Output file: .csv, .csv.gz or .parquet.")
@click.option("--since", default=None, help="Start date (UTC), e.g. 2024-01-01.")
@click.option("--until", default=None, help="End date (UTC, exclusive).")
@_db_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def export_cmd(app, symbol: str, timeframe: str, out: str, since: str | None, until: str | None,  # noqa: ANN001
               db: str | None, as_json: bool) -> None:
    """Export stored candles to CSV (header ts,open,high,low,close,volume; ms UTC) or Parquet.

    The format follows the name (.csv, .csv.gz, .parquet; anything else is refused). Nothing stored for
    the series or the range is an error, not a header-only file.
    """
    from thunes.data.io import export_format, write_candle_file

    try:
        export_format(out)
    except DataError as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from None
    sym, tf = normalize_symbol(symbol), str(parse_timeframe(timeframe))
    with _open(app, db) as store:
        frame = store.load(sym, tf, utc_ms(since) if since else None, utc_ms(until) if until else None)
        stored = [f"{s.symbol} {s.timeframe}" for s in store.series()]
    if frame.empty:
        where = "in the requested range" if (since or until) and f"{sym} {tf}" in stored else "in the store"
        have = f"; stored: {', '.join(stored[:10])}" if stored else "; the store is empty"
        raise DataError(f"no {sym} {tf} candles {where}, nothing exported{have}")
    n = write_candle_file(frame, out)
    if as_json:
        click.echo(json.dumps({"symbol": sym, "timeframe": tf, "rows": n, "first": _iso(int(ts_ms(frame)[0])),
                               "last": _iso(int(ts_ms(frame)[-1])), "out": out}, indent=2))
        return
    click.echo(f"exported {n:,} candles to {out}")


@data_group.command("check", epilog="Examples: thunes data check --symbol BTC/USDT --timeframe 1m --json;  thunes data check candles.csv.gz --timeframe 1h")
@click.argument("file", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option("--symbol", multiple=True, callback=at_most_once, help="Check the stored series of SYMBOL (with --timeframe).")
@click.option("--timeframe", required=True, multiple=True, callback=at_most_once, help="Timeframe of the candles, e.g. 1m.")
@click.option("--jump-sigmas", type=float, default=None, help="Flag returns beyond N robust std devs.")
@click.option("--json", "as_json", is_flag=True, help="Print the machine-readable report.")
@click.option("--fill-gaps", "fill", is_flag=True,
              help="Explicitly fill gaps in the STORED series with flat zero-volume bars (logged).")
@_db_option
@click.pass_obj
def check_cmd(app, file: str | None, symbol: str | None, timeframe: str, jump_sigmas: float | None,  # noqa: ANN001
              as_json: bool, fill: bool, db: str | None) -> None:
    """Check candles for gaps, duplicates, misaligned or out-of-order timestamps, bad OHLC, NaN/inf,
    zero-volume flat runs and price jumps. Exits 1 when errors are found."""
    from thunes.data.io import read_candle_file
    from thunes.data.quality import DEFAULT_JUMP_SIGMAS, check_candles, fill_gaps

    tf = str(parse_timeframe(timeframe))
    sigmas = DEFAULT_JUMP_SIGMAS if jump_sigmas is None else jump_sigmas
    if file is not None:
        table = read_candle_file(Path(file))
        name = file
    elif symbol is not None:
        with _open(app, db) as store:
            table = store.load(normalize_symbol(symbol), tf)
        name = f"{normalize_symbol(symbol)} {tf}"
        if table.empty:
            raise click.UsageError(f"nothing stored for {name}; import or download it first")
    else:
        raise click.UsageError("give a FILE or --symbol")
    report = check_candles(table, tf, jump_sigmas=sigmas)
    if fill:
        if file is not None:
            raise click.UsageError("--fill-gaps works on the stored series (--symbol), not on a file")
        added = fill_gaps(table, tf)
        with _open(app, db) as store:
            written = store.insert(normalize_symbol(symbol), tf, added, source="fill_gaps")  # type: ignore[arg-type]
        logging.getLogger("thunes.data.fill").warning(
            "filled %d missing bars of %s with flat zero-volume candles (explicit --fill-gaps)", written, name,
            extra={"fields": {"series": name, "filled": written, "gaps": len(report.gaps)}})
        click.echo(f"filled {written} missing bars with flat zero-volume candles (explicit --fill-gaps)", err=True)
    if as_json:
        click.echo(json.dumps({"name": name, **report.to_dict()}, indent=2))
    else:
        d = report.to_dict()
        click.echo(f"{name}: {d['rows']:,} rows, {d['first']} .. {d['last']}")
        click.echo(f"  gaps: {len(d['gaps'])} ({d['missing_bars']} missing bars)")
        for g in d["gaps"][:20]:
            click.echo(f"    {g['before']} -> {g['after']}: {g['missing_bars']} missing")
        if len(d["gaps"]) > 20:
            click.echo(f"    ... and {len(d['gaps']) - 20} more (see --json)")
        click.echo(f"  zero-volume flat runs: {len(d['flat_runs'])} ({d['flat_bars']} bars)")
        for r in d["flat_runs"][:10]:
            click.echo(f"    {r['first']} .. {r['last']}: {r['bars']} bars")
        click.echo(f"  price jumps beyond {sigmas:g} robust sigmas: {len(d['jumps'])}")
        for issue in report.errors:
            click.secho(f"  ERROR {issue.kind}: {issue.message}", fg="red")
        for issue in report.warnings:
            click.echo(f"  warning {issue.kind}: {issue.message}")
        click.echo("  result: " + ("ok" if report.ok else f"{len(report.errors)} error(s)"))
    if not report.ok:
        sys.exit(1)


@data_group.command("download", epilog="Examples: thunes data download --symbol BTC/USDT --timeframe 1h --since 2024-01-01;  thunes data download --symbol BTC/USDT --symbol ETH/USDT --timeframe 1m --since 2024-06-01 --base-url http://127.0.0.1:8765")
@click.option("--exchange", "exchange_id", default="binance", show_default=True, help="ccxt exchange id.")
@click.option("--symbol", "symbols", required=True, multiple=True,
              help="Unified symbol, e.g. BTC/USDT; repeat to download several pairs in one run.")
@click.option("--timeframe", required=True, multiple=True, callback=at_most_once, help="e.g. 1m, 1h.")
@click.option("--since", default=None, help="Start date (UTC). Default: resume after the last stored candle.")
@click.option("--until", default=None, help="End date (UTC, exclusive). Default: the last closed candle.")
@click.option("--base-url", default=None, callback=_check_base_url,
              help="Exchange host, e.g. http://127.0.0.1:8765 (/api/v3 may be appended; default: settings "
                   "exchange.base_url, else the exchange's own).")
@_db_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (one object per symbol).")
@click.pass_obj
def download_cmd(app, exchange_id: str, symbols: tuple[str, ...], timeframe: str, since: str | None,  # noqa: ANN001
                 until: str | None, base_url: str | None, db: str | None, as_json: bool) -> None:
    """Download closed candles with ccxt (paginated, rate-limited, resumable) into the store.

    Several --symbol options download the pairs one after the other, each resuming after its own last
    stored candle; a failure stops the run, and the pairs already done stay stored (their lines say so).
    """
    from thunes.data.download import download_candles
    from thunes.exchange.ccxt_adapter import CcxtExchange, CcxtOptions

    ex_settings = app.settings.exchange
    # Public market data: no keys; without a base URL, the exchange's own API (whatever exchange.mode says).
    options = CcxtOptions(exchange_id=exchange_id, mode="live", base_url=base_url or ex_settings.base_url,
                          timeout_s=ex_settings.timeout_s)
    exchange = CcxtExchange(options)
    results = []
    with exchange, _open(app, db) as store:
        for symbol in dict.fromkeys(normalize_symbol(s) for s in symbols):
            bar = _progress_bar(None, f"download {symbol} {timeframe}")

            def progress(done: int, total: int, bar=bar) -> None:  # noqa: ANN001
                bar.total = total
                bar.n = done
                bar.refresh()

            try:
                result = download_candles(store, exchange, symbol, timeframe,
                                          since=utc_ms(since) if since else None,
                                          until=utc_ms(until) if until else None, progress=progress)
            finally:
                bar.close()
            results.append(result)
            if not as_json:
                click.echo(f"downloaded {result.symbol} {result.timeframe}: {result.fetched:,} candles in "
                           f"{result.pages} page(s), written {result.written:,}, rejected {result.rejected}, last "
                           f"{_iso(result.last)}" + (" (resumed after the last stored candle)" if result.resumed else ""))
    if as_json:
        click.echo(json.dumps([{"symbol": r.symbol, "timeframe": r.timeframe, "fetched": r.fetched,
                                "written": r.written, "rejected": r.rejected, "pages": r.pages, "first": _iso(r.start),
                                "last": _iso(r.last), "resumed": r.resumed} for r in results], indent=2))


def register(root: click.Group) -> None:
    root.add_command(data_group)
