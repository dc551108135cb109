"""A venue may fill part of an order and cancel the rest (Hyperliquid: the rest of an IOC
market order). The strategy must take the order as done at what filled — and protect it —
not wait for a completion that never comes (found by the chaos suite, benchmarks/chaos.py)."""

from __future__ import annotations

from hedgekit.core import OrderKind
from hedgekit.core.commands import Place
from hedgekit.core.events import OrderCancelled, OrderFilled
from hedgekit.strategies.long_wallet import LongWallet, LongWalletParams

from .helpers import INSTRUMENT, UNIT_100, assert_protected


def test_a_market_entry_half_filled_then_cancelled_gets_its_stops() -> None:
    s = LongWallet("long", INSTRUMENT, LongWalletParams(allocation=4000.0, leverage=2.0, unit=UNIT_100))
    (entry,) = [c.order for c in s.start(0, 1000.0) if isinstance(c, Place)]
    assert entry.kind is OrderKind.MARKET_BUY and entry.qty == 8.0
    assert s.on_event(OrderFilled(1, entry.client_id, "f1", 3.0, 1000.0, 0.0, leaves_qty=5.0)) == []
    cmds = s.on_event(OrderCancelled(2, entry.client_id))
    stops = [c.order for c in cmds if isinstance(c, Place) and c.order.kind is OrderKind.STOP_LOSS]
    assert s.position.qty == 3.0
    assert stops and sum(o.qty for o in stops) == 3.0  # the 3 that filled, and only them
    assert_protected(s)
