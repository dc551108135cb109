"""Order status table, fills and netting position accounting."""

from __future__ import annotations

import pytest

from hedgekit.core import (
    Order,
    OrderKind,
    OrderSpec,
    OrderStatus,
    OrderTrigger,
    OrderType,
    Position,
    Side,
)
from hedgekit.core.orders import InvalidOrderTransition, make_client_id


def spec(qty=1.0) -> OrderSpec:
    return OrderSpec("hk-w-0-1-sl-1", "w", OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, qty, 900.0, True, 1)


def test_illegal_transition_names_from_and_trigger():
    o = Order(spec())
    o.apply(OrderTrigger.ACCEPT)
    o.apply(OrderTrigger.CANCEL)
    with pytest.raises(InvalidOrderTransition, match="cancelled -> fill"):
        o.apply(OrderTrigger.FILL)


def test_duplicate_fill_and_overfill_are_refused():
    o = Order(spec(1.0))
    o.apply(OrderTrigger.ACCEPT)
    o.record_fill("f1", 0.4, 900.0, lot=0.001)
    assert o.status is OrderStatus.PARTIALLY_FILLED
    with pytest.raises(InvalidOrderTransition, match="duplicate fill"):
        o.record_fill("f1", 0.4, 900.0, lot=0.001)
    with pytest.raises(InvalidOrderTransition, match="overfill"):
        o.record_fill("f2", 0.7, 900.0, lot=0.001)
    o.record_fill("f3", 0.6, 910.0, lot=0.001)
    assert o.status is OrderStatus.FILLED and o.avg_price == pytest.approx(906.0)


def test_client_id_encodes_wallet_cycle_unit_kind_seq():
    assert make_client_id("long", 3, -2, OrderKind.STOP_LOSS, 17) == "hk-long-3-m2-sl-17"
    assert make_client_id("hedge", 0, None, OrderKind.MARKET_BUY_FULL, 1) == "hk-hedge-0-x-mf-1"
    assert len(make_client_id("wallet_12345", 999, -9999, OrderKind.HEDGE_TAKE_PROFIT, 999999)) <= 36


def test_position_realizes_on_reduce_and_flips_at_the_fill_price():
    p = Position()
    assert p.apply_fill(Side.BUY, 2.0, 100.0) == 0.0
    assert p.apply_fill(Side.BUY, 2.0, 110.0) == 0.0 and p.avg_price == 105.0
    assert p.apply_fill(Side.SELL, 1.0, 120.0) == pytest.approx(15.0)
    assert p.apply_fill(Side.SELL, 5.0, 90.0) == pytest.approx(3 * (90 - 105))
    assert p.qty == -2.0 and p.avg_price == 90.0  # flipped: the excess opened at the fill
    assert p.apply_fill(Side.BUY, 2.0, 80.0) == pytest.approx(20.0) and p.qty == 0.0
