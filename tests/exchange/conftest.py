from __future__ import annotations

import pytest

from thunes.data.samples import load_sample_candles
from thunes.exchange.ccxt_adapter import CcxtExchange, make_local_exchange_client
from thunes.exchange.sim import LocalExchange, SimOptions


@pytest.fixture()
def sim():
    """A local exchange replaying 600 hours of BTC/USDT (real when ../shared/data is there)."""
    frame = load_sample_candles("BTC/USDT", "1h", limit=600).frame
    with LocalExchange(SimOptions(history_bars=300), candles={"BTC/USDT": frame}) as running:
        yield running


@pytest.fixture()
def client(sim):
    """The unmodified ccxt binance client aimed at the local exchange."""
    c = make_local_exchange_client(sim.base_url, sim.api_key, sim.secret, timeout_s=3)
    c.load_markets()
    return c


@pytest.fixture()
def port(sim):
    return CcxtExchange.for_local(sim, timeout_s=3)
