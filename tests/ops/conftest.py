"""A short paper bot (four pairs on the local exchange) with its metrics, and the metric names the shipped
Grafana dashboard and alert rules use."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.live.conftest import app_settings, bot_settings, four_pairs  # noqa: F401 - four_pairs is a fixture
from thunes.services.bot import BotRunRequest, open_bot

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_NAME = re.compile(r"\b(thunes_[a-z0-9_]+|up)\b")
_HIST_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label names inside {...} and by (...) are not metrics)."""
    no_matchers = re.sub(r"\{[^}]*\}", "", expr)
    no_groupings = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", no_matchers)
    return set(_NAME.findall(no_groupings))


def dashboard_exprs() -> list[str]:
    out = []
    for path in sorted((DEPLOY / "grafana").glob("*.json")):
        dash = json.loads(path.read_text(encoding="utf-8"))
        for panel in dash["panels"]:
            out += [t["expr"] for t in panel.get("targets", [])]
        out += [a["expr"] for a in dash.get("annotations", {}).get("list", []) if "expr" in a]
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                out.append(var["definition"])
    return out


def rule_exprs() -> list[str]:
    out = []
    for path in sorted((DEPLOY / "prometheus").glob("*rules*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            out += [rule["expr"] for rule in group["rules"]]
    return out


def exposed_names(text: str) -> set[str]:
    """Every sample name and every declared family (``# TYPE``) of an exposition."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def family_of(name: str, exposed: set[str]) -> str:
    if name in exposed:
        return name
    for suffix in _HIST_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in exposed:
            return name[: -len(suffix)]
    return name


@pytest.fixture(scope="session")
def paper_run(tmp_path_factory: pytest.TempPathFactory, four_pairs: dict[str, Any]) -> Any:
    """One short paper run (4 pairs x 60 candles, max 2 positions so the risk manager denies some
    entries); yields (session, result) with the metrics still readable."""
    frames = four_pairs
    tmp = tmp_path_factory.mktemp("paper")
    settings = bot_settings(tmp / "bot", bars=60, risk={"max_positions": 2, "cool_down_minutes": 0})
    req = BotRunRequest(settings=settings, control=False, audit_fsync="never", metrics_port=0)
    session = open_bot(req, app_settings(tmp), frames=frames)
    result = session.run()
    yield session, result
    session.close()


# The Telegram tests' fixtures (fake Bot API server, control bot, a running bot to steer) live in their module;
# they need the telegram extra, which an environment without it (the vectorbt oracle's) does not have: the
# Telegram tests then skip on their own import, and the other ops tests still run.
if importlib.util.find_spec("telegram") is not None:
    from tests.ops.telegram_fixtures import *  # noqa: E402,F401,F403
