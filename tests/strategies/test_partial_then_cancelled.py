"""A venue may fill part of an order and cancel the rest (Hyperliquid: the rest of an IOC
market order). The strategy must take the order as done at what filled — and protect it —
not wait for a completion that never comes (found by the chaos suite, benchmarks/chaos.py)."""

from __future__ import annotations

from hedgekit.core import OrderKind, Side
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


def test_an_entry_that_fills_after_the_wallet_stopped_is_closed_at_market() -> None:
    """SPEC §4a, found by the chaos suite (a down period): the wallet stops and cancels its
    entries, but one had filled at the venue before its cancel arrived. The stopped wallet
    keeps no stop for that part, so it closes it at market (reduce-only), and only that part."""
    s = LongWallet("long", INSTRUMENT, LongWalletParams(allocation=4000.0, leverage=2.0, unit=UNIT_100))
    (entry,) = [c.order for c in s.start(0, 1000.0) if isinstance(c, Place)]
    stops = [c.order for c in s.on_event(OrderFilled(1, entry.client_id, "f1", 8.0, 1000.0, 0.0))
             if isinstance(c, Place)]  # fmt: skip
    first = max(stops, key=lambda o: o.price or 0.0)
    cmds = s.on_event(OrderFilled(2, first.client_id, "f2", first.qty, first.price or 0.0, 0.0))
    (buy,) = [c.order for c in cmds if isinstance(c, Place) and c.order.kind is OrderKind.STOP_ENTRY_BUY]
    s.stop("drawdown limit")  # cancels the entry; the kept stops cover 8 - first.qty
    cmds = s.on_event(OrderFilled(3, buy.client_id, "f3", buy.qty, buy.price or 0.0, 0.0))
    closes = [c.order for c in cmds if isinstance(c, Place)]
    assert [(o.kind, o.side, o.qty, o.reduce_only) for o in closes] == [
        (OrderKind.PROTECTIVE_CLOSE, Side.SELL, buy.qty, True)]
    assert abs(s.position.qty - (8.0 - first.qty + buy.qty)) < 1e-9  # of which 8 - first.qty under stops
    # The close in flight counts as cover: a duplicate report changes nothing.
    assert s.on_event(OrderFilled(3, buy.client_id, "f3", buy.qty, buy.price or 0.0, 0.0)) == []
