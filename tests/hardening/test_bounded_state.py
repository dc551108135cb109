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
