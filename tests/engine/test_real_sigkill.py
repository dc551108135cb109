"""SIGKILL at random points of a REAL-on-stub run of the ``hedgekit`` CLI, on each venue (the
small version; ``make chaos`` kills each venue's run 20 times). See tests/engine/sigkill.py."""

from __future__ import annotations

import pytest

from tests.engine.sigkill import VENUES, BinanceBook, HyperliquidBook, Market, print_rows, run_kills
from tests.venues.stubs import hyperliquid as hl

KILLS = 5  # per venue: each kill is a CLI start (~1.5 s of CPU with its bytecode cached)
BARS = 60


@pytest.mark.slow
@pytest.mark.parametrize("venue", VENUES)
def test_a_real_run_sigkilled_at_random_points_loses_no_fill_doubles_no_order_and_keeps_its_stops(
    tmp_path, venue, capsys,
):
    row = run_kills(venue, KILLS, seed=VENUES.index(venue) + 12, bars=BARS, tmp=tmp_path)
    with capsys.disabled():
        print_rows([row], f"SIGKILL × {KILLS} of a REAL run on the {venue} stub ({BARS} bars)", width=150)
    assert row.kills == KILLS and row.runs == KILLS + 1, row.notes  # every kill happened, then the end
    assert row.at_intent >= 1 and row.at_request >= 1, row  # killed with an order journaled, unsent / unanswered
    assert row.inputs >= 100 and row.fills >= 4, row  # the whole path was played, and it traded
    assert (row.lost_fills, row.duplicate_orders, row.unprotected_inputs, row.unprotected_s, row.unresolved) \
        == (0, 0, 0, 0, 0), row.notes


def test_the_market_counts_a_position_its_stops_do_not_cover():
    """The measure can fail: a position with no stop, then with a stop too small, then covered."""
    books = {"long": BinanceBook(60_000.0), "hedge": HyperliquidBook(60_000.0)}
    market = Market(books)  # type: ignore[arg-type]
    try:
        market.move(0, 1_000, 60_010.0)
        books["long"].stub.trade_by_hand("BUY", 0.01)
        market.move(1, 3_000, 60_020.0)  # 2 s with 0.01 uncovered
        books["long"].stub.add_order("hk-long-0-m1-sl-1", "SELL", 0.004, trigger=59_000.0, reduce_only=True)
        market.move(1, 4_000, 60_030.0)  # the same seq again (a restart): not a move
        market.move(2, 4_000, 60_030.0)  # 1 s covered 0.004 of 0.01
        books["long"].stub.add_order("hk-long-0-m1-sl-2", "SELL", 0.006, trigger=59_000.0, reduce_only=True)
        books["hedge"].stub.manual_trade(hl.MAIN_ADDRESS.lower(), is_buy=False, sz=0.01)
        market.move(3, 9_000, 60_040.0)  # long covered now; the hedge's short is not: 5 s
        assert market.moves == 4 and market.moved == 3
        assert market.unprotected_inputs == 3 and market.unprotected_ms == 8_000, market.notes
        assert "long +0.01 covered 0.004" in market.notes[1] and "hedge -0.01 covered 0" in market.notes[2]
        assert books["long"].stub.price == 60_040.0
    finally:
        market.stop()
        for b in books.values():
            b.stop()
