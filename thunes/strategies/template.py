"""``thunes strategies new NAME``: write a documented strategy template that runs as it is.

The template is a complete, causal strategy (it passes ``thunes audit lookahead``, a test checks it) that
shows the whole API a user needs: typed parameters with search ranges, a parameter check, the warm-up,
and ``signals`` built from each bar's close only.
"""

from __future__ import annotations

import re
from pathlib import Path

from thunes.core.errors import StrategyError

__all__ = ["class_name", "render_template", "write_template"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

TEMPLATE = '''"""{class_name}: a trend-following template written by `thunes strategies new {name}`.

Edit it, then:

    thunes audit lookahead {name} --sample                # prove it does not look ahead
    thunes backtest --strategy {name} --sample --report   # metrics, trades and an HTML report
    thunes plot --strategy {name} --sample                # candles, indicators and trades in a chart
    thunes optimize --strategy {name} --trials 25         # search the Param ranges, walk-forward

(`{name}` is found in the strategies folder, trader.strategies_dir; from anywhere else use
{path}:{class_name}.)

Rules every strategy follows (see thunes.strategies.base):
* parameters are class attributes declared with Param(type, default, low, high, doc); the optimiser
  searches [low, high]; an unknown or out-of-range value is refused with a clear message;
* signals(candles) is vectorised and causal: the value at bar t uses bars <= t only (no .shift(-1),
  no centred windows, no statistics of the whole series). Never shift signals yourself: the engine
  fills a signal computed on bar t's close at bar t+1's open;
* warmup is the number of bars the signals need before they mean anything.
"""

from __future__ import annotations

import pandas as pd

from thunes.core.errors import StrategyError
from thunes.strategies import Param, Signals, Strategy, crossed_above, crossed_below


class {class_name}(Strategy):
    """Long while the close is above its moving average and momentum is positive; flat otherwise."""

    name = "{name}"
    period = Param(int, default=50, low=5, high=400, doc="moving-average period (bars)")
    momentum = Param(int, default=10, low=1, high=200, doc="momentum look-back (bars)")
    min_momentum = Param(float, default=0.0, low=-0.05, high=0.05, doc="least momentum (fraction) to enter")

    def check(self) -> None:
        # Relations between parameters are checked here; single values by their Param range.
        if self.momentum >= self.period:
            raise StrategyError(f"{name} needs momentum < period, got {{self.momentum}} >= {{self.period}}")

    @property
    def warmup(self) -> int:
        return self.period + 1

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        # Optional: what `thunes plot` draws (series on the price scale overlay the candles).
        close = candles["close"]
        return {{
            "sma": close.rolling(self.period, min_periods=self.period).mean(),  # trailing window: causal
            "momentum": close.pct_change(self.momentum),  # close[t] / close[t - momentum] - 1: past bars only
        }}

    def signals(self, candles: pd.DataFrame) -> Signals:
        close = candles["close"]
        ind = self.indicators(candles)
        entries = crossed_above(close, ind["sma"]) & (ind["momentum"] > self.min_momentum)
        exits = crossed_below(close, ind["sma"])
        return Signals(entries=entries, exits=exits)
'''


def class_name(name: str) -> str:
    """``mean_revert`` -> ``MeanRevert``."""
    return "".join(part.capitalize() for part in name.split("_") if part)


def render_template(name: str, path: str | Path) -> str:
    if not _NAME.match(name):
        raise StrategyError(f"strategy name {name!r}: use lower case letters, digits and _ (e.g. breakout)")
    return TEMPLATE.format(name=name, class_name=class_name(name), path=Path(path).as_posix())


def write_template(name: str, folder: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``folder/NAME.py``; refuses to replace an existing file unless ``overwrite``."""
    from thunes.strategies import list_strategies

    path = Path(folder) / f"{name}.py"
    text = render_template(name, path)
    if name in list_strategies():
        raise StrategyError(f"{name!r} is a built-in strategy; choose another name")
    if path.exists() and not overwrite:
        raise StrategyError(f"{path} exists; pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
