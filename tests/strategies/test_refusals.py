"""SPEC §4a: refused orders. A protective stop is sent once more, then what it protects is
closed at market; an opening order is re-sized to what fits or kept as a deferred slot; the
window always keeps its four slots. Every scenario runs on exactly the allocation (no spare
cash) with hand-computed sizes, and checks both invariants before every event."""

from __future__ import annotations

import pytest

from hedgekit.core import Instrument, OrderKind
from hedgekit.core.strategy import Phase
from hedgekit.engine.driver import PathDriver
from hedgekit.strategies.hedge_wallet import HedgeWallet, HedgeWalletParams
from hedgekit.strategies.long_wallet import LongWallet, LongWalletParams
from hedgekit.venues.sim import SimExchange

from .helpers import INSTRUMENT, UNIT_100, EveryEvent, sizes, units

SELL, BUY = OrderKind.STOP_LOSS, OrderKind.STOP_ENTRY_BUY
FULL, SHORT, COVER = OrderKind.STOP_LOSS_FULL, OrderKind.STOP_ENTRY_SHORT, OrderKind.STOP_LOSS_COVER


def refusing(kind: str, times: int) -> type[SimExchange]:
    """A simulated venue that refuses the first order of ``kind`` and then its re-sends (same
    kind, same unit), ``times`` submissions in all."""

    class Refusing(SimExchange):
        left = times
        unit: int | None = None

        def submit(self, spec, ts):
            if spec.kind == kind and Refusing.left > 0:
                if Refusing.unit is None:
                    Refusing.unit = spec.unit
                if spec.unit == Refusing.unit:
                    Refusing.left -= 1
                    self._rejects_left.add(spec.client_id)
                    self._reject_faults = True
            return super().submit(spec, ts)

    return Refusing


def long_wallet(cash=4000.0, instrument=INSTRUMENT, **kw) -> tuple[PathDriver, EveryEvent]:
    params = LongWalletParams(allocation=4000.0, leverage=1.0, unit=UNIT_100)
    d = PathDriver(LongWallet("long", instrument, params), cash=cash, **kw)
    return d, EveryEvent(d.strategy)


def hedge_wallet(cash=4000.0, **kw) -> tuple[PathDriver, EveryEvent]:
    params = HedgeWalletParams(allocation=4000.0, leverage=1.0, unit=UNIT_100)
    d = PathDriver(HedgeWallet("hedge", INSTRUMENT, params), cash=cash, **kw)
    return d, EveryEvent(d.strategy)


def log(d: PathDriver, event: str) -> list[tuple[str, float, float | None]]:
    return [(r.kind, r.qty, r.price) for r in d.venue.order_log if r.event == event]


# -- opening orders -------------------------------------------------------------------------
def test_refused_opening_buy_is_resized_to_what_fits_at_the_gap_price():
    d, chk = long_wallet()
    d.start(1000.0)
    d.goto(900.0)  # sell@-1: 1 coin @900; cash 3900; buy@0 of min(975, 900 buying power) = 0.9
    assert sizes(d.strategy, BUY) == {0: 0.9}
    d.goto(1050.0, gap=True)  # the buy fires at 1050: 3.9 x 1050 = 4095 > 3900 + 3 x 50
    assert log(d, "rejected") == [("stop_entry_buy", 0.9, None)]
    # what fits at 1050: 4050 / 1050 - 3 = 0.857142 -> 0.8571, filled at the gap price
    assert ("stop_entry_buy", 0.8571, 1050.0) in log(d, "filled")
    s = d.strategy
    assert s.phase is Phase.ADVANCE and s.resets == 1  # all buys filled -> RESET at 1050
    assert s.position.qty == pytest.approx(3.8571)
    assert sizes(s, SELL) == {-1: 0.9642, -2: 0.9642, -3: 0.9642, -4: 0.9645}
    chk.check()


def test_refused_opening_buy_that_cannot_fit_is_deferred_then_resubmitted():
    # Minimum notional 500 USD: after the funding charge only 0.36 coin (360 USD) fits.
    inst = Instrument("TESTUSD", tick_size=0.1, lot_size=0.0001, min_notional=500.0)
    d, chk = long_wallet(instrument=inst)
    d.start(1000.0)
    d.goto(900.0)  # sell@-1 fills; buy@0 of 0.9 placed
    d.fund(0.2)  # the long of 3 pays 3 x 900 x 0.2 = 540 USD: cash 3360
    d.goto(1000.0)  # the buy fires: 3.9 x 1000 > 3360; fits 0.36 < 0.5 minimum -> deferred
    s = d.strategy
    assert log(d, "rejected") == [("stop_entry_buy", 0.9, None)]
    assert units(s, BUY) == [] and [o.unit for o in s.deferred.values()] == [0]
    assert s.phase is Phase.RETRACEMENT  # the deferred buy still counts: no RESET
    assert any("deferred" in w for _, w in d.runner.log.warnings)
    d.fund(-0.2)  # funding paid back: 3 x 1000 x 0.2 = 600 USD, cash 3960
    d.goto(1100.0)  # c = 1: the slot at 0 was passed -> re-submitted at market
    filled = [f for f in d.venue.fills if f.kind == "stop_entry_buy"]
    assert len(filled) == 1 and filled[0].price == 1100.0
    assert s.deferred == {} and s.resets == 1  # its fill completed the window: RESET
    chk.check()


def test_refused_hedge_short_is_resized_and_decline_is_reached():
    d, chk = hedge_wallet()  # 1x on exactly the allocation
    d.start(1000.0)
    d.goto(550.0, gap=True)  # long loses 4 x 450: equity 2200 at 550, room for 4 coins short
    s = d.strategy
    rejected = log(d, "rejected")
    assert rejected == [("stop_entry_short", 1.6666, None)]  # F / 600 (lot-floored) does not fit
    # shorts F/900 + F/800 + F/700 = 3.7896; the 4th is re-sized to what fits: 4 - 3.7896
    assert ("stop_entry_short", 0.2103, 550.0) in log(d, "filled")
    assert s.phase is Phase.DECLINE
    assert units(s, COVER) == [-3, -2, -1, 0]
    assert s.position.qty == pytest.approx(-(1.1111 + 1.25 + 1.4285 + 0.2103))
    assert not [w for _, w in d.runner.log.warnings if "skipped" in w]
    chk.check()


def test_refused_hedge_short_counts_as_a_slot_while_deferred():
    d, chk = hedge_wallet(venue_type=refusing("stop_entry_short", 2))
    d.start(1000.0)  # the first short laid at -1 is refused at once and its re-send too
    s = d.strategy
    assert [o.unit for o in s.deferred.values()] == [-1]
    assert s.phase is Phase.ADVANCE and len(s.slots(SHORT)) == 4
    d.to_unit(1)  # ADVANCE slides (lowest short at -4 goes, one at 0 comes) and the
    # deferred slot at -1, still below the price, is re-submitted as a stop: the venue takes it
    assert units(s, SHORT) == [-3, -2, -1, 0] and s.deferred == {}
    assert units(s, FULL) == [0]
    chk.check()


# -- protective orders ----------------------------------------------------------------------
def test_protective_stop_refused_once_is_sent_again_at_the_same_level():
    d, chk = long_wallet(venue_type=refusing("stop_loss", 1))
    d.start(1000.0)
    s = d.strategy
    assert log(d, "rejected") == [("stop_loss", 1.0, None)]
    assert sizes(s, SELL) == {-1: 1.0, -2: 1.0, -3: 1.0, -4: 1.0}
    assert not s.stopped
    chk.check()


def test_protective_stop_refused_twice_closes_what_it_protected_and_stops():
    d, chk = long_wallet(venue_type=refusing("stop_loss", 2))
    d.start(1000.0)
    s = d.strategy
    assert ("protective_close", 1.0, 1000.0) in log(d, "filled")
    assert s.stopped and s.position.qty == pytest.approx(3.0)
    assert sizes(s, SELL) == {-2: 1.0, -3: 1.0, -4: 1.0}  # the rest keeps its stops
    chk.check()
    d.to_unit(-4)  # they fire; flat, nothing is left working
    assert s.position.qty == 0 and s.working == {}
    assert d.venue.open_orders() == []


def test_refused_cover_is_sent_again_then_closed_at_market():
    d, chk = hedge_wallet(venue_type=refusing("stop_loss_cover", 2))
    d.start(1000.0)
    d.to_unit(-1)  # exit + first short: short 1.1111; its cover at 0 refused twice
    s = d.strategy
    assert ("protective_close", 1.1111, 900.0) in log(d, "filled")
    assert s.stopped and s.position.qty == 0 and s.working == {}
    assert d.venue.open_orders() == []
    chk.check()


def test_refused_full_stop_is_sent_again_then_the_long_is_closed():
    d, chk = hedge_wallet(venue_type=refusing("stop_loss_full", 2))
    d.start(1000.0)
    s = d.strategy
    assert ("protective_close", 4.0, 1000.0) in log(d, "filled")
    assert s.stopped and s.position.qty == 0 and s.working == {}
    assert d.venue.open_orders() == []
    chk.check()


def test_refused_reset_buy_is_retried_with_backoff_and_smaller():
    d, chk = hedge_wallet(venue_type=refusing("market_buy_full", 1))
    d.start(1000.0)
    d.path(-1, 0)  # short 1.1111 @900 covered @1000: flat -> RESET buy refused
    s = d.strategy
    assert s.phase is Phase.RESET and s.position.qty == 0
    assert log(d, "rejected")[0][0] == "market_buy_full"
    first = log(d, "rejected")[0][1]
    d.runner.fire_timers(d.ts + 5_000)  # first back-off: 5 s, asking 5 % less
    again = [q for k, q, _ in log(d, "filled") if k == "market_buy_full"]
    assert again == [pytest.approx(first * 0.95, abs=1e-4)]
    assert s.phase is Phase.ADVANCE and len(s.orders(FULL)) == 1
    chk.check()


# -- tight margin on random gapped paths ------------------------------------------------------
from hypothesis import HealthCheck, event, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# (distance in units, gap?, funding rate charged after the move): funding drains the margin.
tight_paths = st.lists(
    st.tuples(
        st.floats(min_value=-5.0, max_value=5.0, allow_nan=False), st.booleans(),
        st.sampled_from([0.0, 0.0, 0.0, 0.05, -0.05, 0.2]),
    ),
    min_size=1, max_size=40,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=tight_paths, leverage=st.sampled_from([1.0, 2.0, 3.0]), hedge=st.booleans(),
       order=st.sampled_from(["fifo", "reverse"]))
# Found by hypothesis: a gap fills a sell of the previous cycle after the RESET laid the new
# sells for the position before it (the long wallet re-splits them over the position).
@example(path=[(-1.0, False, 0.0), (-5.0, False, 0.0), (3.0, True, 0.2), (3.0, False, -0.05), (-3.0, True, 0.0)],
         leverage=1.0, hedge=False, order="fifo")
@example(path=[(-1.0, False, 0.0), (-5.0, False, 0.0), (3.0, True, 0.2), (3.0, False, -0.05), (-4.0, True, 0.0)],
         leverage=1.0, hedge=False, order="fifo")
def test_tight_margin_never_leaves_a_position_without_its_stop(path, leverage, hedge, order):
    """Exactly the allocation as cash, fees and maintenance margin on: refusals happen, and
    after every event the position is protected and the window has its four slots."""
    cls, params_cls = (HedgeWallet, HedgeWalletParams) if hedge else (LongWallet, LongWalletParams)
    params = params_cls(allocation=1000.0, leverage=leverage, unit=UNIT_100)
    d = PathDriver(
        cls("w", INSTRUMENT, params), cash=1000.0, leverage=leverage, trigger_order=order,
        taker_fee=0.0005, maintenance_margin_rate=0.005,
    )
    chk = EveryEvent(d.strategy, d.venue)
    price = 1000.0
    d.start(price)
    for dist, gap, rate in path:
        price = INSTRUMENT.round_price(min(max(price + dist * 100.0, 150.0), 4000.0))
        d.goto(price, gap=gap)
        if rate:
            d.fund(rate)
        chk.check()
        if not d.venue.liquidated:  # a liquidation by funding is reported at the next call
            assert d.strategy.position.qty == pytest.approx(d.venue.position.qty, abs=1e-9)
    refused = [r for r in d.venue.order_log if r.event == "rejected"]
    event(f"refusals: {'some' if refused else 'none'}")
    for r in refused:
        if "liquidated" in r.reason:
            continue  # a liquidated account refuses everything; the wallet stopped
        assert r.kind in ("stop_entry_buy", "stop_entry_short", "market_buy_full", "stop_loss_full")
