"""``thunes optimize``: Optuna studies with walk-forward validation, DSR/PBO and a deploy verdict;
``thunes optimize worker`` (join a shared study), ``studies`` (list) and ``decay`` (re-check the deployed
parameters on recent data). Thin: parses, calls :mod:`thunes.optimize`, prints."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import click

from thunes.cli._common import CandleSourceArgs, candle_source_options, parse_params

__all__ = ["register"]


def _console():  # noqa: ANN202
    from rich.console import Console

    return Console(soft_wrap=False, width=140)


def _fixed_params(strategy_cls, items: tuple[str, ...]) -> dict[str, Any]:  # noqa: ANN001
    raw = parse_params(items)
    space = strategy_cls.param_space()
    for name in raw:
        if name not in space:
            strategy_cls(**{name: raw[name]})  # StrategyError with a "did you mean" hint
    return {k: space[k].validate(v) for k, v in raw.items()}


def _ranges(items: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    out = {}
    for name, value in parse_params(items, "--range").items():
        low, sep, high = value.partition(":")
        try:
            out[name] = (float(low), float(high))
        except ValueError:
            raise click.BadParameter(f"{name}={value!r}: expected NAME=LOW:HIGH, e.g. fast=5:50",
                                     param_hint="--range") from None
        if not sep:
            raise click.BadParameter(f"{name}={value!r}: expected NAME=LOW:HIGH", param_hint="--range")
    return out


def _interrupted(study_name: str, storage: str) -> None:
    """Ctrl-C during a study: the finished trials are already stored; say so in one line and exit 130."""
    from thunes.core.redact import redact_url
    from thunes.optimize.storage import is_memory

    if is_memory(storage):
        kept = "the in-memory study is lost (use a sqlite:// storage to resume)"
    else:
        kept = f"finished trials are kept in {redact_url(storage)}; run the same command again to resume"
    click.echo(f"interrupted: study {study_name!r} stopped; {kept}", err=True)
    sys.exit(130)


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


@click.group("optimize", invoke_without_command=True)
@click.option("--strategy", default=None,
              help="Strategy: a name (`thunes strategies list`), module:Class or file.py:Class (default: trader.strategy).")
@click.option("--symbol", default=None, help="Symbol (default: settings trader.symbol).")
@click.option("--timeframe", default=None, help="Timeframe (default: settings trader.timeframe).")
@click.option("--trials", type=int, default=None,
              help="Completed trials the study (and each walk-forward fold) should hold (default: settings).")
@click.option("--sampler", type=click.Choice(["tpe", "nsga2"]), default="tpe", show_default=True,
              help="TPE (one objective) or NSGA-II (several: a Pareto front).")
@click.option("--objectives", default=None,
              help="Comma-separated metrics, NAME[:max|min]. Default: sharpe (tpe), sharpe,max_drawdown (nsga2).")
@click.option("--storage", default=None, metavar="URL",
              help="Optuna storage: sqlite:///FILE (default: settings optimize.storage), postgresql://… or "
                   "'memory' (fastest; no resume, one process).")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Processes working on the study (> 1 needs a PostgreSQL storage).")
@click.option("--study", "study_name", default=None, help="Study name (default: strategy_SYMBOL_tf_sampler_objectives).")
@click.option("--walk-forward", "walk_forward", type=click.Choice(["rolling", "anchored", "none"]),
              default="rolling", show_default=True, help="Walk-forward validation scheme.")
@click.option("--folds", type=int, default=4, show_default=True, help="Walk-forward folds.")
@click.option("--is-oos-ratio", type=float, default=3.0, show_default=True,
              help="In-sample length as a multiple of the out-of-sample length.")
@click.option("--gap-bars", type=click.IntRange(min=0), default=0, show_default=True,
              help="Purge gap: bars left out between each in-sample and out-of-sample window.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Fix a parameter (not searched).")
@click.option("--range", "ranges", multiple=True, metavar="NAME=LOW:HIGH",
              help="Narrow a parameter's search range, e.g. --range fast=5:50.")
@candle_source_options
@click.option("--seed", type=int, default=42, show_default=True, help="Sampler seed.")
@click.option("--top", type=int, default=10, show_default=True, help="Rows in the results table.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars (they show only on a terminal anyway).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object (tables omitted).")
@click.pass_context
def optimize_group(ctx: click.Context, **kw: Any) -> None:
    """Optimise a strategy's parameters with Optuna, validate walk-forward, report DSR, PBO and a verdict.

    \b
    Examples:
      thunes optimize --strategy sma_cross --symbol BTC/USDT --timeframe 1h --trials 25
      thunes optimize --sampler nsga2 --objectives sharpe,max_drawdown --walk-forward anchored
      thunes optimize --storage postgresql://user@db/optuna --workers 4 --study btc-sma
      thunes optimize worker --storage postgresql://user@db/optuna --study btc-sma --trials 20

    Candles come from the candle store (data.url) when it has them, else from the sample data, else
    synthetic; the first line on stderr says which. Trials are backtests with the fees, slippage and
    risk limits of the settings. --trials N means "until the study holds N completed trials", so an
    interrupted run resumes when started again.

    Deploy is recommended only when the walk-forward out-of-sample Sharpe exceeds
    optimize.deploy_min_sharpe and the Deflated Sharpe Ratio reaches optimize.deploy_min_dsr.
    Results go to <optimize.artifacts_dir>/<study>/ (trials.csv, summary.json, report.html,
    folds.csv, oos_equity.csv, pareto.csv); a DEPLOY verdict also writes
    <optimize.artifacts_dir>/deployed/<strategy>_<SYMBOL>_<tf>.json for `thunes optimize decay`.
    """
    if ctx.invoked_subcommand is not None:
        return
    _run(ctx.obj, **kw)


def _run(app, *, strategy, symbol, timeframe, trials, sampler, objectives, storage, workers, study_name,  # noqa: ANN001, C901
         walk_forward, folds, is_oos_ratio, gap_bars, params, ranges, candles, seed, top, no_progress,
         as_json) -> None:
    from thunes.backtest import BacktestOptions
    from thunes.core.redact import redact_url
    from thunes.optimize import _evaluate
    from thunes.optimize.report import folds_table, pareto_heading, pareto_table, results_table
    from thunes.optimize.storage import is_memory
    from thunes.optimize.study import StudySpec, default_study_name, parse_objectives, recommend, run_study
    from thunes.optimize.walk_forward import run_walk_forward
    from thunes.strategies.loader import resolve_strategy, strategy_spec

    _quiet_optuna()
    settings = app.settings
    opt = settings.optimize
    strategy = strategy or settings.trader.strategy
    symbol = symbol or settings.trader.symbol
    timeframe = timeframe or settings.trader.timeframe
    trials = trials or opt.n_trials
    storage = storage or opt.storage
    objs = parse_objectives(objectives or ("sharpe,max_drawdown" if sampler == "nsga2" else "sharpe"))
    if sampler == "tpe" and len(objs) > 1:
        raise click.UsageError("TPE here optimises one objective; use --sampler nsga2 for several")
    cls = resolve_strategy(strategy, folder=settings.trader.strategies_dir)
    # The study stores a spec its worker processes resolve without our settings; names use the class's name.
    strategy_ref, strategy = strategy_spec(strategy, folder=settings.trader.strategies_dir), cls.name
    err = click.get_text_stream("stderr")

    sample_dir = settings.data.sample_dir
    data = _study_candles(settings, candles, symbol, timeframe)
    options = BacktestOptions.from_settings(settings.backtest, settings.risk)
    spec = StudySpec(
        strategy=strategy_ref, symbol=symbol, timeframe=timeframe, objectives=objs, sampler=sampler, seed=seed,
        fixed_params=_fixed_params(cls, params), ranges=_ranges(ranges),
        backtest=_evaluate.options_to_json(options),
    )
    name = study_name or default_study_name(strategy, symbol, timeframe, sampler, objs)
    bound = spec.for_window(data.frame, data.source)
    click.echo(f"study {name!r} in {redact_url(storage)}: {trials} trials, sampler {sampler}, objectives "
               f"{', '.join(map(str, objs))}, {workers} worker(s)", file=err)
    where = {"store_url": (candles.db or settings.data.url) if data.source.startswith("store:") else None,
             "sample_dir": sample_dir}
    try:
        outcome = run_study(bound, data.frame, n_trials=trials, storage_url=storage, study_name=name, workers=workers,
                            progress=not no_progress, desc="full sample", **where)
        wf = None
        if walk_forward != "none":
            wf = run_walk_forward(spec, data.frame, data_source=data.source, scheme=walk_forward, n_folds=folds,
                                  is_oos_ratio=is_oos_ratio, gap_bars=gap_bars, n_trials=trials, storage_url=storage,
                                  study_name=name, workers=workers, progress=not no_progress, **where)
    except KeyboardInterrupt:
        _interrupted(name, storage)
    rec = recommend(oos_sharpe=wf.oos_sharpe if wf else None, dsr=outcome.dsr.dsr if outcome.dsr else None,
                    min_sharpe=opt.deploy_min_sharpe, min_dsr=opt.deploy_min_dsr)

    paths = None
    if as_json:
        paths = _write_all(outcome, wf, rec, opt, data, strategy, symbol, timeframe, name)
        click.echo(json.dumps(_payload(outcome, wf, rec, name, storage, paths), indent=2, default=_jsonable))
        return
    console = _console()
    console.print(results_table(outcome, top=top))
    if outcome.spec.multi_objective:
        click.echo(pareto_heading(outcome))
        console.print(pareto_table(outcome))
    if wf is not None:
        console.print(folds_table(wf))
    click.echo(f"best parameters (full sample): {outcome.best_params}")
    click.echo(f"in-sample Sharpe {outcome.best_stats.get('sharpe', float('nan')):.3f}, total return "
               f"{outcome.best_stats.get('total_return', float('nan')):.2%}, max drawdown "
               f"{outcome.best_stats.get('max_drawdown', float('nan')):.2%}")
    if outcome.dsr is not None:
        d = outcome.dsr
        click.echo(f"Deflated Sharpe Ratio: {d.dsr:.3f} (per-bar Sharpe {d.sharpe:.4f} vs expected max of "
                   f"{d.n_trials} unskilled trials {d.sharpe_benchmark:.4f}; need >= {opt.deploy_min_dsr:g})")
    if outcome.pbo is not None:
        click.echo(f"Probability of Backtest Overfitting (CSCV, {outcome.pbo.n_blocks} blocks, "
                   f"{outcome.pbo.n_splits} splits): {outcome.pbo.pbo:.2f}")
    if wf is not None:
        click.echo(f"walk-forward ({wf.scheme}, {len(wf.folds)} folds) out-of-sample: Sharpe {wf.oos_sharpe:.3f}, "
                   f"total return {wf.oos_stats.get('total_return', float('nan')):.2%}, max drawdown "
                   f"{wf.oos_stats.get('max_drawdown', float('nan')):.2%}")
    click.secho(f"recommendation: {rec}", fg="green" if rec.deploy else "yellow", bold=True)
    paths = _write_all(outcome, wf, rec, opt, data, strategy, symbol, timeframe, name)
    for kind, path in paths.items():
        click.echo(f"  {kind:<10} {path}")
    if not is_memory(storage):
        click.echo("browse live (if installed): optuna-dashboard " + redact_url(storage))


def _study_candles(settings: Any, candles: CandleSourceArgs, symbol: str, timeframe: str) -> Any:
    """The study's candles (:func:`thunes.optimize._data.load_study_candles`, the one loader's rule) and the
    stderr line saying where they came from."""
    from thunes.optimize._data import load_study_candles

    data = load_study_candles(symbol, timeframe, source=candles.source, store_url=candles.db or settings.data.url,
                              since=candles.since, until=candles.until, sample_dir=settings.data.sample_dir,
                              file=candles.csv_file)
    frame = data.frame
    click.echo(f"candles: {symbol} {timeframe}, {len(frame):,} bars {frame.index[0]:%Y-%m-%d %H:%M} → "
               f"{frame.index[-1]:%Y-%m-%d %H:%M} UTC from {data.description}", err=True)
    if not data.real:
        click.secho("warning: these are SYNTHETIC candles, not market data", fg="yellow", err=True)
    return data


def _write_all(outcome, wf, rec, opt, data, strategy, symbol, timeframe, name) -> dict:  # noqa: ANN001
    """The study's artifacts, and the deployed parameters when the verdict is DEPLOY."""
    from thunes.optimize.decay import deployed_path, write_deployed
    from thunes.optimize.report import write_artifacts

    paths = write_artifacts(outcome, wf, rec, opt.artifacts_dir, data_description=data.description)
    if rec.deploy:
        paths["deployed"] = write_deployed(
            deployed_path(opt.artifacts_dir, strategy, symbol, timeframe), strategy=strategy, symbol=symbol,
            timeframe=timeframe, params=outcome.best_params, study=name,
            evidence={"oos_sharpe": wf.oos_sharpe if wf else None, "dsr": outcome.dsr.dsr if outcome.dsr else None,
                      "pbo": outcome.pbo.pbo if outcome.pbo else None},
        )
    return paths


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _payload(outcome, wf, rec, name: str, storage: str, paths: dict) -> dict[str, Any]:  # noqa: ANN001
    """What the text output says, as one JSON object (NaN/inf become null)."""
    from thunes.core.redact import redact_url

    return {
        "study": name, "storage": redact_url(storage),
        "trials": {"complete": outcome.n_complete, "distinct": outcome.n_distinct, "pruned": outcome.n_pruned,
                   "failed": outcome.n_failed},
        "best_params": outcome.best_params,
        "in_sample": {k: _finite(v) for k, v in outcome.best_stats.items()},
        "dsr": None if outcome.dsr is None else {"dsr": _finite(outcome.dsr.dsr), "sharpe": _finite(outcome.dsr.sharpe),
                                                  "benchmark": _finite(outcome.dsr.sharpe_benchmark),
                                                  "n_trials": outcome.dsr.n_trials},
        "pbo": None if outcome.pbo is None else {"pbo": _finite(outcome.pbo.pbo), "splits": outcome.pbo.n_splits,
                                                  "blocks": outcome.pbo.n_blocks},
        "walk_forward": None if wf is None else {
            "scheme": wf.scheme, "folds": len(wf.folds), "oos_sharpe": _finite(wf.oos_sharpe),
            "oos": {k: _finite(v) for k, v in wf.oos_stats.items()}},
        "recommendation": {"deploy": rec.deploy, "reasons": list(rec.reasons)},
        "artifacts": {k: str(v) for k, v in paths.items()},
    }


@optimize_group.command("worker")
@click.option("--storage", required=True, metavar="URL", help="The study's storage (postgresql://…).")
@click.option("--study", "study_name", required=True, help="Name of an existing study.")
@click.option("--trials", type=int, required=True, help="Trials this worker completes.")
@click.option("--store-url", default=None, metavar="URL",
              help="Candle store (default: the one the study used; required when its URL has a password, "
                   "which the study does not keep).")
@click.option("--index", "worker_index", type=int, default=None,
              help="Worker number (varies the sampler seed; default: from the process id).")
@click.pass_obj
def worker_cmd(app, storage: str, study_name: str, trials: int, store_url: str | None,  # noqa: ANN001
               worker_index: int | None) -> None:
    """Join an existing study (e.g. from another machine) and complete TRIALS trials of it.

    The study carries its own description (strategy, data window, backtest options); the worker loads
    the same candles and refuses to run when they differ from the study's fingerprint.

    \b
    Example:
      thunes optimize worker --storage postgresql://user@db/optuna --study btc-sma --trials 20
    """
    from thunes.optimize.trials import worker_id
    from thunes.optimize.worker import run_worker

    _quiet_optuna()
    import os

    index = worker_index if worker_index is not None else 1000 + os.getpid() % 100_000
    report = run_worker(storage, study_name, trials, worker_index=index, store_url=store_url,
                        worker_id=worker_id(index),
                        sample_dir=app.settings.data.sample_dir)
    click.echo(f"worker {report.worker_id}: completed {report.completed} trial(s) of {report.study}")


@optimize_group.command("studies")
@click.option("--storage", default=None, metavar="URL", help="Storage URL (default: settings optimize.storage).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def studies_cmd(app, storage: str | None, as_json: bool) -> None:  # noqa: ANN001
    """List the studies in a storage with their trial counts.

    \b
    Example:
      thunes optimize studies --storage sqlite:///artifacts/optuna/studies.sqlite
    """
    from thunes.optimize.storage import list_studies

    _quiet_optuna()
    rows = list_studies(storage or app.settings.optimize.storage)
    if as_json:
        click.echo(json.dumps([{"study": s.study_name, "trials": s.n_trials,
                                "directions": [d.name.lower() for d in s.directions]} for s in rows], indent=2))
        return
    if not rows:
        click.echo("no studies")
    width = max((len(s.study_name) for s in rows), default=0)
    for s in rows:
        directions = ",".join(d.name.lower() for d in s.directions)
        click.echo(f"{s.study_name:<{width}} {s.n_trials:>5} trials  {directions}")


@optimize_group.command("decay")
@click.option("--strategy", default=None, help="Strategy (default: settings trader.strategy).")
@click.option("--symbol", default=None, help="Symbol (default: settings trader.symbol).")
@click.option("--timeframe", default=None, help="Timeframe (default: settings trader.timeframe).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Parameters to check (default: the deployed ones written by `thunes optimize`).")
@click.option("--window", type=int, default=720, show_default=True, help="Rolling Sharpe window (bars).")
@click.option("--lookback", type=int, default=2160, show_default=True, help="Recent bars re-run (plus warm-up).")
@click.option("--min-sharpe", type=float, default=None, help="Flag below this (default: optimize.decay_min_sharpe).")
@candle_source_options
@click.option("--fail-on-decay", is_flag=True, help="Exit with status 1 when decay is flagged (for schedulers).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def decay_cmd(app, strategy, symbol, timeframe, params, window, lookback, min_sharpe, candles,  # noqa: ANN001
              fail_on_decay, as_json) -> None:
    """Re-run the deployed parameters on recent data and flag when the rolling Sharpe falls too low.

    Writes <optimize.artifacts_dir>/decay/<strategy>_<SYMBOL>_<tf>.json (the flag alerts read).

    \b
    Example:
      thunes optimize decay --strategy sma_cross --symbol BTC/USDT --timeframe 1h --param fast=10 --param slow=50
    """
    from thunes.backtest import BacktestOptions
    from thunes.optimize.decay import check_decay, decay_path, deployed_path, read_deployed, write_decay_flag
    from thunes.strategies.loader import resolve_strategy

    settings = app.settings
    opt = settings.optimize
    cls = resolve_strategy(strategy or settings.trader.strategy, folder=settings.trader.strategies_dir)
    strategy = cls.name
    symbol = symbol or settings.trader.symbol
    timeframe = timeframe or settings.trader.timeframe
    if params:
        chosen = _fixed_params(cls, params)
        origin = "command line"
    else:
        path = deployed_path(opt.artifacts_dir, strategy, symbol, timeframe)
        chosen = read_deployed(path)["params"]
        origin = str(path)
    strat = cls(**chosen)
    data = _study_candles(settings, candles, symbol, timeframe)
    recent = data.frame.iloc[-(lookback + int(strat.warmup)):]
    report = check_decay(recent, strat, window_bars=window,
                         min_sharpe=opt.decay_min_sharpe if min_sharpe is None else min_sharpe,
                         options=BacktestOptions.from_settings(settings.backtest, settings.risk),
                         symbol=symbol, timeframe=timeframe)
    out = write_decay_flag(report, decay_path(opt.artifacts_dir, strategy, symbol, timeframe))
    if as_json:
        click.echo(json.dumps({"strategy": strategy, "symbol": symbol, "timeframe": timeframe,
                               "params": report.params, "params_from": origin, "bars": len(recent),
                               "end": str(report.end), "window": window, "latest_sharpe": _finite(report.latest_sharpe),
                               "worst_sharpe": _finite(report.worst_sharpe), "min_sharpe": report.min_sharpe,
                               "decayed": report.decayed, "flag": str(out)}, indent=2, default=_jsonable))
        if report.decayed and fail_on_decay:
            sys.exit(1)
        return
    click.echo(f"parameters {report.params} (from {origin}) on {len(recent)} bars to {report.end} ({data.description})")
    click.echo(f"rolling Sharpe over {window} bars: latest {report.latest_sharpe:.2f}, worst "
               f"{report.worst_sharpe:.2f}; threshold {report.min_sharpe:g}")
    if report.decayed:
        click.secho("DECAYED: the deployed parameters no longer meet the threshold", fg="red", bold=True)
    else:
        click.secho("ok: no decay", fg="green")
    click.echo(f"flag written to {out}")
    if report.decayed and fail_on_decay:
        sys.exit(1)


def register(root: click.Group) -> None:
    root.add_command(optimize_group)
