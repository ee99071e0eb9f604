"""The trailing window a strategy trades on: four warm-ups, and at least the warm-up plus 250 bars."""

from __future__ import annotations

from thunes.strategies import get_strategy
from thunes.strategies.window import trailing_window, window_for_warmup


def test_the_window_is_four_warmups_but_never_less_than_warmup_plus_250():
    assert window_for_warmup(0) == 250
    assert window_for_warmup(50) == 300  # 4 * 50 = 200 < 50 + 250
    assert window_for_warmup(83) == 333  # the two rules meet at 250 / 3
    assert window_for_warmup(200) == 800  # 4 * 200 > 200 + 250


def test_a_strategy_window_follows_its_warmup():
    strategy = get_strategy("sma_cross")(fast=10, slow=300)
    assert strategy.warmup == 301  # the slow average's 300 closes, and the bar before for the cross
    assert trailing_window(strategy) == 4 * strategy.warmup
