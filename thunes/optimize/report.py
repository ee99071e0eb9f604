"""Study results for people: a terminal table, CSV/JSON files and an offline HTML report.

Files written under ``<artifacts_dir>/<study>/`` (default ``artifacts/optuna/``):

* ``trials.csv``: every trial (number, state, objective values, parameters, worker, per-bar Sharpe,
  backtest metrics); ``pareto.csv`` for multi-objective studies;
* ``folds.csv`` and ``oos_equity.csv`` when a walk-forward ran;
* ``summary.json``: best parameters and metrics, DSR, PBO, walk-forward summary, the recommendation;
* ``report.html``: optimisation history, parameter importance, Pareto front and the out-of-sample
  equity, as plotly figures with plotly.js embedded once (works offline).

The same study can be browsed live with ``optuna-dashboard <storage URL>`` for users who have it.
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from optuna.trial import TrialState
from rich.table import Table

from thunes.optimize.decay import write_json_atomic
from thunes.optimize.summary import StudyOutcome
from thunes.optimize.trials import trial_result
from thunes.optimize.verdict import Recommendation
from thunes.optimize.walk_forward import WalkForwardResult

__all__ = [
    "folds_table",
    "html_report",
    "pareto_front_frame",
    "pareto_heading",
    "pareto_table",
    "results_table",
    "summary_dict",
    "trials_frame",
    "write_artifacts",
]

_KEY_STATS = ("sharpe", "total_return", "max_drawdown", "n_trades", "win_rate", "fees_paid")


def trials_frame(outcome: StudyOutcome) -> pd.DataFrame:
    """One row per trial: number, state, values, params, worker, duplicate_of, per-bar Sharpe, metrics."""
    rows = []
    for t in outcome.study.get_trials(deepcopy=False):
        r = trial_result(t)
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        for o, v in zip(outcome.spec.objectives, t.values or [math.nan] * len(outcome.spec.objectives),
                        strict=True):
            row[o.metric if len(outcome.spec.objectives) == 1 else f"value_{o.metric}"] = v
        if len(outcome.spec.objectives) == 1:
            row["value"] = row.pop(outcome.spec.objectives[0].metric)
        row.update({f"param_{k}": v for k, v in t.params.items()})
        row["worker"] = r.get("worker")
        row["duplicate_of"] = r.get("duplicate_of")
        row["invalid"] = r.get("invalid")
        row["sr_period"] = r.get("sr_period")
        row.update({k: r.get("stats", {}).get(k) for k in _KEY_STATS})
        row["duration_s"] = t.duration.total_seconds() if t.duration is not None else None
        rows.append(row)
    return pd.DataFrame(rows)


def summary_dict(outcome: StudyOutcome, wf: WalkForwardResult | None, rec: Recommendation,
                 data_description: str | None = None) -> dict[str, Any]:
    """Everything the run reported, as JSON values; ``data_description`` says which candles were used
    (store, real sample file or synthetic)."""
    from thunes.core.redact import redact_url

    return {
        "study": outcome.name,
        "data": data_description,
        "storage": redact_url(outcome.storage_url),
        "spec": json.loads(outcome.spec.to_json()),
        "trials": {"complete": outcome.n_complete, "distinct": outcome.n_distinct, "pruned": outcome.n_pruned,
                   "failed": outcome.n_failed},
        "best": {"params": outcome.best_params, "values": outcome.best_values, "stats": outcome.best_stats},
        "pareto": [{"number": t.number, "values": t.values, "params": t.params} for t in outcome.pareto],
        "dsr": outcome.dsr.as_dict() if outcome.dsr else None,
        "pbo": outcome.pbo.as_dict() if outcome.pbo else None,
        "walk_forward": None if wf is None else {
            "scheme": wf.scheme, "folds": json.loads(wf.table().to_json(orient="records", date_format="iso")),
            "oos_stats": wf.oos_stats,
        },
        "recommendation": {"deploy": rec.deploy, "reasons": list(rec.reasons)},
        "timing": {"wall_s": outcome.wall_seconds, "backtest_s": outcome.backtest_seconds,
                   "trial_s": outcome.trial_seconds},
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def results_table(outcome: StudyOutcome, *, top: int = 10) -> Table:
    """The best ``top`` distinct completed trials (by the first objective), best first."""
    frame = trials_frame(outcome)
    frame = frame[(frame.state == "COMPLETE") & frame.duplicate_of.isna()]
    first = outcome.spec.objectives[0]
    col = "value" if len(outcome.spec.objectives) == 1 else f"value_{first.metric}"
    frame = frame.sort_values(col, ascending=first.direction == "minimize").head(top)
    params = [c for c in frame.columns if c.startswith("param_")]
    value_cols = [c for c in frame.columns if c == "value" or c.startswith("value_")]
    objective_names = {o.metric for o in outcome.spec.objectives}
    extra = [k for k in ("total_return", "max_drawdown", "n_trades")
             if k in frame and k not in objective_names]
    table = Table(title=f"{outcome.name}: top {len(frame)} of {outcome.n_distinct} distinct trials")
    for c in ["number", *params, *value_cols, *extra]:
        table.add_column(c.removeprefix("param_").removeprefix("value_") if c != "value" else first.metric,
                         justify="right")
    pareto = {t.number for t in outcome.pareto} if outcome.spec.multi_objective else set()
    for _, row in frame.iterrows():
        mark = "*" if row["number"] in pareto else ""
        table.add_row(f"{int(row['number'])}{mark}", *[_fmt(row[c]) for c in [*params, *value_cols, *extra]])
    return table


def pareto_front_frame(outcome: StudyOutcome) -> pd.DataFrame:
    """The Pareto-optimal trials (multi-objective), one row each: number, objective values, parameters;
    sorted by the first objective, best first. This is what ``pareto.csv`` holds."""
    objectives = outcome.spec.objectives
    rows = [{"number": t.number, **{o.metric: v for o, v in zip(objectives, t.values, strict=True)}, **t.params}
            for t in outcome.pareto]
    frame = pd.DataFrame(rows, columns=["number", *[o.metric for o in objectives],
                                        *sorted({k for t in outcome.pareto for k in t.params})])
    first = objectives[0]
    return frame.sort_values(first.metric, ascending=first.direction == "minimize", kind="stable")


def pareto_heading(outcome: StudyOutcome) -> str:
    names = ", ".join(str(o) for o in outcome.spec.objectives)
    return f"Pareto front ({names}): {len(outcome.pareto)} trial(s), none beaten on every objective"


def pareto_table(outcome: StudyOutcome) -> Table:
    """The whole Pareto front as a terminal table (no trial on it is beaten on every objective)."""
    frame = pareto_front_frame(outcome)
    table = Table()
    for c in frame.columns:
        table.add_column(c, justify="right")
    for _, row in frame.iterrows():
        table.add_row(str(int(row["number"])), *[_fmt(row[c]) for c in frame.columns[1:]])
    return table


def folds_table(wf: WalkForwardResult) -> Table:
    """Per fold: the out-of-sample window (dates), the searched parameters chosen in-sample, the fold
    study's in-sample Sharpe, DSR and PBO, and the out-of-sample result (folds.csv has every column)."""
    t = wf.table()
    params = [c for c in t.columns if c.startswith("param_") and (not wf.searched or c[6:] in wf.searched)]
    table = Table(title=f"walk-forward ({wf.scheme}, {len(t)} folds): parameters chosen in-sample")
    stats = {"is_sharpe": "is_sharpe", "is_dsr": "is_dsr", "is_pbo": "is_pbo", "oos_sharpe": "oos_sharpe",
             "oos_total_return": "oos_return", "oos_trades": "oos_trades"}
    for c in ["fold", "oos_from", "oos_to", *[c[6:] for c in params], *stats.values()]:
        table.add_column(c, justify="right")
    for _, row in t.iterrows():
        table.add_row(str(row["fold"]), str(row["oos_start"])[:10], str(row["oos_end"])[:10],
                      *[_fmt(row[c]) for c in [*params, *stats]])
    return table


def _figures(outcome: StudyOutcome, wf: WalkForwardResult | None) -> list[tuple[str, Any]]:
    import plotly.graph_objects as go
    from optuna import visualization as vis
    from optuna.importance import PedAnovaImportanceEvaluator

    study = outcome.study
    figs: list[tuple[str, Any]] = []
    first = outcome.spec.objectives[0]
    target = (lambda t: t.values[0]) if outcome.spec.multi_objective else None
    figs.append(("Optimisation history", vis.plot_optimization_history(study, target=target,
                                                                       target_name=first.metric)))
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) >= 3 and len({tuple(sorted(t.params.items())) for t in complete}) >= 2:
        try:
            figs.append(("Parameter importance (PED-ANOVA)",
                         vis.plot_param_importances(study, target=target, target_name=first.metric,
                                                    evaluator=PedAnovaImportanceEvaluator())))
        except (RuntimeError, ValueError) as exc:  # e.g. every trial has the same value
            figs.append((f"Parameter importance unavailable: {exc}", None))
    if outcome.spec.multi_objective and len(outcome.spec.objectives) in (2, 3):
        figs.append(("Pareto front", vis.plot_pareto_front(
            study, target_names=[o.metric for o in outcome.spec.objectives])))
    if wf is not None:
        fig = go.Figure(go.Scatter(x=wf.oos_equity.index, y=wf.oos_equity.to_numpy(), name="OOS equity"))
        for f in wf.folds:
            fig.add_vline(x=f.oos_period[0], line_dash="dot", line_color="grey")
        fig.update_layout(title="Stitched out-of-sample equity (fold starts dotted)", yaxis_title="equity")
        figs.append(("Walk-forward out-of-sample equity", fig))
    return figs


def html_report(outcome: StudyOutcome, wf: WalkForwardResult | None, rec: Recommendation) -> str:
    """A self-contained HTML page (plotly.js embedded once) with the study's plots and statistics."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(outcome.name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px} td,th{padding:2px 8px}</style>",
        "</head><body>",
        f"<h1>Study {html.escape(outcome.name)}</h1>",
        f"<p><b>{html.escape(str(rec))}</b></p><table>",
    ]
    facts = {
        "strategy": outcome.spec.strategy,
        "symbol / timeframe": f"{outcome.spec.symbol} {outcome.spec.timeframe}",
        "objectives": ", ".join(str(o) for o in outcome.spec.objectives), "sampler": outcome.spec.sampler,
        "trials (complete / distinct / pruned)":
            f"{outcome.n_complete} / {outcome.n_distinct} / {outcome.n_pruned}",
        "best parameters": json.dumps(outcome.best_params),
        "best in-sample Sharpe": _fmt(outcome.best_stats.get("sharpe", math.nan)),
        "Deflated Sharpe Ratio": _fmt(outcome.dsr.dsr) if outcome.dsr else "n/a",
        "PBO (CSCV)": _fmt(outcome.pbo.pbo) if outcome.pbo else "n/a",
    }
    if wf is not None:
        facts["walk-forward OOS Sharpe"] = _fmt(wf.oos_sharpe)
    parts += [f"<tr><th align=left>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
              for k, v in facts.items()]
    parts.append("</table>")
    embedded = False
    for title, fig in _figures(outcome, wf):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if fig is not None:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=not embedded))
            embedded = True
    if wf is not None:
        parts.append("<h2>Folds</h2>" + wf.table().to_html(index=False, float_format=lambda v: f"{v:.4g}"))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_artifacts(
    outcome: StudyOutcome, wf: WalkForwardResult | None, rec: Recommendation, artifacts_dir: str | Path,
    data_description: str | None = None,
) -> dict[str, Path]:
    """Write CSV, JSON and HTML under ``<artifacts_dir>/<study>/``; returns the paths by kind.

    Every file is rendered into a staging folder first and moved into place only when all of them were
    written, so a run that fails (a report that cannot be drawn, a full disk, Ctrl-C) leaves an earlier
    run's artifacts of the same study untouched.
    """
    out = Path(artifacts_dir) / outcome.name
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{outcome.name}.staging-", dir=out.parent))
    try:
        names = {"trials": "trials.csv", "summary": "summary.json", "html": "report.html"}
        trials_frame(outcome).to_csv(staging / names["trials"], index=False)
        if outcome.spec.multi_objective:
            names["pareto"] = "pareto.csv"
            pareto_front_frame(outcome).to_csv(staging / names["pareto"], index=False)
        if wf is not None:
            names["folds"] = "folds.csv"
            wf.table().to_csv(staging / names["folds"], index=False)
            names["oos_equity"] = "oos_equity.csv"
            wf.oos_equity.rename("equity").to_csv(staging / names["oos_equity"])
        write_json_atomic(staging / names["summary"], summary_dict(outcome, wf, rec, data_description))
        (staging / names["html"]).write_text(html_report(outcome, wf, rec), encoding="utf-8")
        out.mkdir(parents=True, exist_ok=True)
        for name in names.values():
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {kind: out / name for kind, name in names.items()}
