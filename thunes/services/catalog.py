"""What is stored: candle series, model artifacts, backtest and optimisation runs with their reports.

* :func:`data_summary` - every (symbol, timeframe) series of the candle store with its bounds and rows.
* :func:`models` - model folders under ``settings.ml.artifacts_dir`` (their ``meta.json``).
* :func:`runs` / :func:`run_detail` / :func:`run_report` - backtests (``run_<SYMBOL>_<tf>.json`` under
  ``settings.backtest.artifacts_dir``, any depth) and optimisation studies (``<study>/summary.json`` under
  ``settings.optimize.artifacts_dir``).

A run id is its path relative to its artifacts folder (``api-3f2a/run_BTCUSDT_1h`` or a study name); an id
that leaves that folder (``..``, an absolute path) is refused, never read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from thunes.core.errors import ConfigError

__all__ = [
    "ModelSummary",
    "RunKind",
    "RunNotFound",
    "RunSummary",
    "SeriesSummary",
    "data_summary",
    "models",
    "run_detail",
    "run_report",
    "runs",
]

RunKind = Literal["backtest", "optimize"]


class RunNotFound(ConfigError):
    """No run (or no report of a run) has this id."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesSummary:
    symbol: str
    timeframe: str
    first_ms: int
    last_ms: int
    rows: int


def data_summary(data_settings: Any) -> list[SeriesSummary]:
    """Every series of the candle store ``data_settings.url``."""
    from thunes.data.store import store_from_settings

    with store_from_settings(data_settings) as store:
        return [SeriesSummary(symbol=s.symbol, timeframe=s.timeframe, first_ms=s.first, last_ms=s.last, rows=s.rows)
                for s in store.series()]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSummary:
    name: str
    path: str
    model_type: str
    symbol: str | None
    timeframe: str | None
    feature_set: str
    metrics: dict[str, Any]
    files: tuple[str, ...]


def models(artifacts_dir: Path) -> list[ModelSummary]:
    """Model folders (those with a readable ``meta.json``) under ``artifacts_dir``, by name."""
    from thunes.ml.artifacts import META_FILE, load_meta

    root = Path(artifacts_dir)
    out = []
    for meta_path in sorted(root.rglob(META_FILE)) if root.exists() else []:
        folder = meta_path.parent
        try:
            meta = load_meta(folder)
        except ConfigError:
            continue
        out.append(ModelSummary(name=str(folder.relative_to(root)), path=str(folder), model_type=meta.model_type,
                                symbol=meta.symbol, timeframe=meta.timeframe, feature_set=meta.feature_set,
                                metrics=dict(getattr(meta, "metrics", {}) or {}),
                                files=tuple(sorted(p.name for p in folder.iterdir() if p.is_file()))))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    kind: RunKind
    id: str
    created_ms: int
    strategy: str | None
    symbol: str | None
    timeframe: str | None
    has_report: bool


def _roots(settings: Any) -> dict[str, Path]:
    return {"backtest": Path(settings.backtest.artifacts_dir), "optimize": Path(settings.optimize.artifacts_dir)}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunNotFound(f"{path.name} is unreadable: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _backtest_report(run_json: Path) -> Path:
    return run_json.with_name("report_" + run_json.stem.removeprefix("run_") + ".html")


def runs(settings: Any, *, kind: RunKind | None = None) -> list[RunSummary]:
    """Backtest and optimisation runs, newest first."""
    roots = _roots(settings)
    out: list[RunSummary] = []
    if kind in (None, "backtest") and roots["backtest"].exists():
        for f in roots["backtest"].rglob("run_*.json"):
            data = _safe(f)
            out.append(RunSummary(kind="backtest", id=str(f.relative_to(roots["backtest"]).with_suffix("")),
                                  created_ms=int(f.stat().st_mtime * 1000), strategy=data.get("strategy"),
                                  symbol=data.get("symbol"), timeframe=data.get("timeframe"),
                                  has_report=_backtest_report(f).exists()))
    if kind in (None, "optimize") and roots["optimize"].exists():
        for f in roots["optimize"].rglob("summary.json"):
            data = _safe(f)
            nested = data.get("spec")
            spec: dict[str, Any] = nested if isinstance(nested, dict) else data
            out.append(RunSummary(kind="optimize", id=str(f.parent.relative_to(roots["optimize"])),
                                  created_ms=int(f.stat().st_mtime * 1000), strategy=spec.get("strategy"),
                                  symbol=spec.get("symbol"), timeframe=spec.get("timeframe"),
                                  has_report=(f.parent / "report.html").exists()))
    return sorted(out, key=lambda r: (r.created_ms, r.id), reverse=True)


def _safe(path: Path) -> dict[str, Any]:
    try:
        return _read_json(path)
    except RunNotFound:
        return {}


def _resolve(settings: Any, kind: str, run_id: str) -> Path:
    roots = _roots(settings)
    if kind not in roots:
        raise RunNotFound(f"unknown run kind {kind!r}; known: backtest, optimize")
    root = roots[kind].resolve()
    target = (root / run_id).resolve()
    if not run_id or "\x00" in run_id or not target.is_relative_to(root) or target == root:
        raise RunNotFound(f"no {kind} run {run_id!r}")
    path = target.with_name(target.name + ".json") if kind == "backtest" else target / "summary.json"
    if not path.is_file():
        raise RunNotFound(f"no {kind} run {run_id!r}")
    return path


def run_detail(settings: Any, kind: str, run_id: str) -> dict[str, Any]:
    """The run's JSON (backtest ``run_*.json``, study ``summary.json``)."""
    return _read_json(_resolve(settings, kind, run_id))


def run_report(settings: Any, kind: str, run_id: str) -> Path:
    """The run's HTML report file."""
    path = _resolve(settings, kind, run_id)
    report = _backtest_report(path) if kind == "backtest" else path.parent / "report.html"
    if not report.is_file():
        raise RunNotFound(f"the {kind} run {run_id!r} has no HTML report")
    return report
