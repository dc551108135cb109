"""A live run's saved state does not grow with every order ever placed (issue 15, item 2):
closed orders leave memory once journaled; the journal keeps them."""

from __future__ import annotations

from hedgekit.config import load_config
from hedgekit.store.journal import Journal
from tests.engine.test_live import busy_config, paper, slice_csv


def test_checkpoints_keep_only_the_orders_that_can_still_change(tmp_path):
    cfg = load_config(busy_config(tmp_path))
    with Journal.open(tmp_path / "j.db") as j:
        engine = paper(cfg, j, slice_csv(tmp_path, 1))
        for w in engine.wallets:
            venue, strategy = w.runner.venue, w.runner.strategy
            journaled = j.orders(engine.run_id, w.name)
            assert len(journaled) > 40  # the journal has them all
            open_ids = {o.client_id for o in venue.open_orders()}
            assert {o.client_id for o in journaled if o.status in ("open", "triggered", "partially_filled")} == open_ids
            assert set(venue._orders) == open_ids  # nothing closed kept by the venue
            assert set(strategy._known) <= set(strategy.working) | open_ids
            assert len(strategy._known) <= 8


def test_a_late_duplicate_of_a_forgotten_order_is_ignored_and_an_unknown_fill_still_raises():
    import pytest

    from hedgekit.core.errors import HedgekitError
    from hedgekit.core.events import OrderFilled
    from hedgekit.engine.driver import PathDriver
    from hedgekit.strategies.long_wallet import LongWallet, LongWalletParams
    from tests.strategies.helpers import INSTRUMENT, UNIT_100

    d = PathDriver(LongWallet("long", INSTRUMENT, LongWalletParams(allocation=4000.0, leverage=1.0, unit=UNIT_100)),
                   cash=4000.0)
    d.start(10_000.0)
    d.path(1, 2, 1, 0, 1, 2, 3)  # SYNTHETIC unit path: buys and stops fill and close
    s, v = d.strategy, d.venue
    first = v.fills[0]
    s.forget_closed({o.client_id for o in v.open_orders()})
    assert first.order_id not in s._known and first.order_id in s._forgotten
    before = (s.position.qty, s.realized_pnl)
    late = OrderFilled(d.ts, first.order_id, "venue-duplicate-1", first.qty, first.price, first.fee)
    assert s.on_event(late) == []
    assert (s.position.qty, s.realized_pnl) == before and "late duplicate" in s.warnings[-1]
    with pytest.raises(HedgekitError, match="fill for unknown order"):
        s.on_event(OrderFilled(d.ts, "hk-long-0-x-mb-999", "x#1", 1.0, 10_000.0, 0.0))
