"""A short stretch of BTC/USDT 1h keeps every study in these tests to a fraction of a second per trial."""

from __future__ import annotations

import optuna
import pytest

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="session")
def candles(btc_1h):  # noqa: ANN001, ANN201
    return btc_1h.frame.iloc[-4000:]
