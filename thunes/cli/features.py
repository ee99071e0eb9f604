"""``thunes features list|compute`` and ``thunes audit lookahead|leakage``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import pandas as pd

from thunes.cli._common import candle_options, load_candles, parse_params

__all__ = ["register"]


@click.group("features")
def features_group() -> None:
    """Causal features: list the feature sets and compute them on stored candles.

    Every feature at row t uses candles up to t only (`thunes audit lookahead features` proves it),
    rows whose window spans missing candles are flagged in `gap_flag`, and each output records the
    feature set's name, version and hash.

    \b
    Examples:
      thunes features list
      thunes features compute --sample --timeframe 1h --out btc_1h_features.parquet
    """


@features_group.command("list")
@click.option("--set", "set_name", default=None, help="Show the columns of this feature set.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(set_name: str | None, as_json: bool) -> None:
    """List the feature sets (name, version, columns, warm-up, hash), or one set's columns.

    \b
    Examples:
      thunes features list
      thunes features list --set default --json
    """
    from thunes.features import describe_column, feature_set_names, get_feature_set

    if as_json:
        names = [set_name] if set_name else feature_set_names()
        sets = [get_feature_set(n) for n in names]
        click.echo(json.dumps([{"name": fs.name, "version": fs.version, "warmup": fs.warmup, "hash": fs.hash,
                                "columns": [{"name": c, "description": describe_column(fs, c)} for c in fs.columns]}
                               for fs in sets], indent=2, default=str))
        return
    if set_name is None:
        click.echo(f"{'set':<12} {'version':>7} {'columns':>8} {'warm-up':>8}  hash")
        for name in feature_set_names():
            fs = get_feature_set(name)
            click.echo(f"{fs.name:<12} {fs.version:>7} {len(fs.columns):>8} {fs.warmup:>8}  {fs.hash}")
        click.echo("\n`thunes features list --set NAME` lists a set's columns.")
        return
    fs = get_feature_set(set_name)
    click.echo(f"feature set {fs.name} v{fs.version} ({len(fs.columns)} columns, warm-up {fs.warmup} rows, "
               f"hash {fs.hash})")
    for col in fs.columns:
        click.echo(f"  {col:<22} {describe_column(fs, col)}")
    click.echo("  gap_flag               True where the row's window spans missing candles")


@features_group.command("compute")
@candle_options
@click.option("--set", "set_name", default="default", show_default=True, help="Feature set name.")
@click.option("--columns", default=None, help="Comma-separated subset of the set's columns.")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Write the features (with close) to .parquet or .csv (default: print the last rows).")
@click.pass_obj
def compute_cmd(app, symbol, timeframe, candles, set_name, columns, out) -> None:  # noqa: ANN001
    """Compute a feature set on candles and write or show the result.

    Without --out the last rows are printed. With --out the features and the close go to a Parquet or
    CSV file, and the set's identity (name, version, hash) to FILE.meta.json beside it.

    \b
    Examples:
      thunes features compute --sample --timeframe 1h --out btc_1h_features.parquet
      thunes features compute --symbol ETH/USDT --timeframe 5m --since 2024-01-01 --set compact
      thunes features compute --sample --columns rsi_14,natr_14,fib_r618_50
    """
    from thunes.core.timeframes import timeframe_ms
    from thunes.features import compute_features

    if out and not out.endswith((".parquet", ".csv")):
        raise click.BadParameter(f"{out!r}: the name must end in .parquet or .csv (the format follows the name)",
                                 param_hint="--out")

    loaded = load_candles(app, candles, symbol=symbol, timeframe=timeframe)
    frame, source = loaded.frame, loaded.source
    cols = [c.strip() for c in columns.split(",")] if columns else None
    feats = compute_features(frame, set_name, columns=cols, timeframe_ms=timeframe_ms(timeframe))
    click.echo(f"{symbol} {timeframe}: {len(frame):,} candles from {source}; {feats.shape[1] - 1} feature columns "
               f"({feats.attrs['feature_set']['name']} v{feats.attrs['feature_set']['version']}, "
               f"hash {feats.attrs['feature_set']['hash']}); {int(feats['gap_flag'].sum())} gap-flagged rows",
               err=True)
    if out:
        result = feats.assign(close=frame["close"])
        if out.endswith(".parquet"):
            result.to_parquet(out)
        else:
            result.to_csv(out)
        Path(out).with_name(Path(out).name + ".meta.json").write_text(json.dumps(feats.attrs["feature_set"]))
        click.echo(f"wrote {out}")
    else:
        with pd.option_context("display.max_columns", 12, "display.width", 160):
            click.echo(feats.tail(5).to_string())


@click.command("lookahead")
@click.argument("target")
@candle_options
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Strategy parameter; repeatable.")
@click.option("--prefixes", default=20, show_default=True,
              help="Random prefixes to compare (on top of one ending on each row where a signal fires or changes).")
@click.option("--rows", default=3000, show_default=True, help="Use the last N candles.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random prefix lengths.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def lookahead_cmd(app, target, symbol, timeframe, candles, params, prefixes, rows, seed,  # noqa: ANN001
                  as_json) -> None:
    """Prove TARGET does not look ahead: recompute it on prefixes and compare values.

    A prefix ends on every row where a signal fires or a sparse column changes (so a leak acting on
    those rows is always found), plus --prefixes random ones; the output says what was checked.

    TARGET is a strategy name (sma_cross, or one in your strategies folder), module:Class, file.py:Class,
    or features[:SET].
    Exits 1 when any value at time t changes once later rows are appended, listing the column, the
    time and both values.

    \b
    Examples:
      thunes audit lookahead features --sample
      thunes audit lookahead sma_cross --sample --param fast=10 --param slow=50
      thunes audit lookahead my_strategies:Breakout --sample --prefixes 50
    """
    from thunes.features import check_prefix_invariance, compute_features

    loaded = load_candles(app, candles, symbol=symbol, timeframe=timeframe)
    frame, source = loaded.frame, loaded.source
    frame = frame.iloc[-rows:]
    if target == "features" or target.startswith("features:"):
        set_name = target.partition(":")[2] or "default"

        def fn(f: pd.DataFrame) -> pd.DataFrame:
            return compute_features(f, set_name)

        label = f"feature set {set_name}"
    else:
        from thunes.services.audits import signal_columns
        from thunes.strategies.loader import resolve_strategy

        strategy = resolve_strategy(target, folder=app.settings.trader.strategies_dir)(**parse_params(params))
        fn, label = signal_columns(strategy), f"strategy {strategy!r}"
    report = check_prefix_invariance(fn, frame, n_prefixes=prefixes, seed=seed, name=label, progress=not as_json)
    if as_json:
        click.echo(json.dumps({
            "target": label, "candles": len(frame), "source": source, "prefixes": len(report.prefix_lengths), "checked": report.guarantee,
            "ok": not (report.violations or report.errors), "errors": [str(e) for e in report.errors],
            "violations": [{"column": v.column, "ts": str(v.ts), "prefix_len": v.prefix_len,
                            "prefix_value": v.prefix_value, "full_value": v.full_value}
                           for v in report.violations]}, indent=2, default=str))
        if report.violations or report.errors:
            sys.exit(1)
        return
    click.echo(f"look-ahead audit of {label} on {len(frame):,} candles ({source}), "
               f"{len(report.prefix_lengths)} prefixes")
    click.echo(f"  checked: {report.guarantee}")
    for err in report.errors:
        click.secho(f"  error: {err}", fg="red")
    if report.violations:
        click.secho(f"  LOOK-AHEAD in {', '.join(report.bad_columns)}: {len(report.violations)} changed value(s)",
                    fg="red")
        for v in report.violations[:10]:
            click.echo(f"    {v.column} at {v.ts}: {v.prefix_value} on a {v.prefix_len}-row prefix, "
                       f"{v.full_value} on the full data")
    if report.violations or report.errors:
        sys.exit(1)
    click.echo("  ok: no value changed when the future was appended")


def _read_scaler(path: str) -> dict:
    """The --scaler JSON object, or one DataError line saying why it cannot be used."""
    from thunes.core.errors import DataError

    try:
        scaler = json.loads(Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"--scaler {path} is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"--scaler {path} is not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(scaler, dict):
        raise DataError(f"--scaler {path}: expected a JSON object with feature_names, mean, scale")
    return scaler


@click.command("leakage")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False))
@click.option("--close-col", default="close", show_default=True, help="Column holding the close price.")
@click.option("--horizon", default=1, show_default=True, help="Check future returns up to this many bars.")
@click.option("--corr-threshold", default=0.95, show_default=True,
              help="Flag a feature whose |correlation| with a future return exceeds this.")
@click.option("--scaler", "scaler_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="JSON scaler with feature_names, mean, scale (checked against --train-end).")
@click.option("--train-end", type=int, default=None, help="Number of training rows (for the scaler check).")
@click.option("--ic-threshold", default=0.2, show_default=True,
              help="Flag a column whose rank IC (or that of its change) with a future return exceeds this.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def leakage_cmd(dataset, close_col, horizon, corr_threshold, scaler_file, train_end, ic_threshold, as_json) -> None:  # noqa: ANN001
    """Audit a training DATASET (CSV or Parquet with feature columns and a close column) for leakage.

    Exits 1 on any finding, each with its evidence: suspicious names, features too correlated with future
    returns, exact copies of future values, implausible predictive power (rank IC above --ic-threshold),
    feature-set columns that differ from their recomputation on truncated candles (when the dataset has
    open, high, low, close and volume), or a scaler fitted beyond the training rows.

    \b
    Examples:
      thunes audit leakage btc_1h_features.parquet --horizon 5
      thunes audit leakage train.csv --scaler scaler.json --train-end 8000 --json
    """
    from thunes.data.io import read_table_file
    from thunes.features.leakage import audit_leakage

    data = read_table_file(dataset)
    if close_col not in data.columns:
        raise click.UsageError(f"{dataset} has no {close_col!r} column (use --close-col)")
    scaler = _read_scaler(scaler_file) if scaler_file else None
    ohlcv = ["open", "high", "low", close_col, "volume"]
    candles = None
    if all(c in data.columns for c in ohlcv) and isinstance(data.index, pd.DatetimeIndex):
        candles = data[ohlcv].rename(columns={close_col: "close"}).astype("float64")
    feats = data.drop(columns=[close_col]).select_dtypes("number")
    report = audit_leakage(feats, data[close_col], horizon=horizon, corr_threshold=corr_threshold,
                           ic_threshold=ic_threshold, candles=candles, scaler=scaler, train_end=train_end)
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "rows": report.rows, "horizon": report.horizon,
                               "findings": [{"check": f.check, "column": f.column, "message": f.message}
                                            for f in report.findings]}, indent=2))
    else:
        click.echo(report.format())
    if not report.ok:
        sys.exit(1)


def register(root: click.Group) -> None:
    root.add_command(features_group)
    root.commands["audit"].add_command(lookahead_cmd)
    root.commands["audit"].add_command(leakage_cmd)
