import json
from decimal import Decimal

import pytest

from thunes.core import (
    DataError,
    Market,
    OrderStatus,
    SimulatedClock,
    check_transition,
    client_order_id,
    parse_exchange_info,
    round_down_to_step,
    round_to_tick,
)
from thunes.core.candles import candles_frame, validate_candles


def test_order_status_transitions_follow_one_table():
    assert check_transition(OrderStatus.PENDING, OrderStatus.SENT) is OrderStatus.SENT
    assert check_transition(OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED) is OrderStatus.PARTIALLY_FILLED
    with pytest.raises(ValueError, match="FILLED -> NEW"):
        check_transition(OrderStatus.FILLED, OrderStatus.NEW)
    with pytest.raises(ValueError):
        check_transition(OrderStatus.CANCELED, OrderStatus.FILLED)


def test_client_order_id_is_deterministic_and_binance_valid():
    a = client_order_id("sma", "BTC/USDT", 1700000000000, "BUY")
    assert a == client_order_id("sma", "BTC/USDT", 1700000000000, "BUY")
    assert a != client_order_id("sma", "BTC/USDT", 1700000000000, "SELL")
    assert len(a) <= 36 and all(c.isalnum() or c in "-_" for c in a)


def test_rounding_never_touches_global_context_and_is_exact():
    assert round_down_to_step(Decimal("0.123456789"), Decimal("0.00001")) == Decimal("0.12345")
    assert round_to_tick(Decimal("64250.567"), Decimal("0.01"), up=False) == Decimal("64250.56")
    assert round_to_tick(Decimal("64250.561"), Decimal("0.01"), up=True) == Decimal("64250.57")


def test_markets_parse_real_exchange_info(sample_dir):
    if sample_dir is None:
        pytest.skip("needs ../shared/data exchange info")
    payload = json.loads((sample_dir / "binance_exchange_info.json").read_text())
    markets = parse_exchange_info(payload)
    btc = markets["BTC/USDT"]
    assert isinstance(btc, Market)
    assert btc.filters.tick_size == Decimal("0.01")
    assert btc.filters.step_size == Decimal("0.00001")
    assert btc.filters.min_notional == Decimal("10")
    assert btc.round_qty(Decimal("0.0123456")) == Decimal("0.01234")


def test_simulated_clock_only_moves_when_told():
    clock = SimulatedClock(1_000)
    clock.sleep(2.5)
    assert clock.now_ms() == 3_500


def test_validate_candles_names_row_and_column():
    frame = candles_frame([0, 60_000, 60_000], [1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1])
    with pytest.raises(DataError, match="duplicate timestamp at row 2"):
        validate_candles(frame)
    frame = candles_frame([0, 60_000], [1, float("nan")], [1, 1], [1, 1], [1, 1], [1, 1])
    with pytest.raises(DataError, match="column 'open' at row 1"):
        validate_candles(frame)
