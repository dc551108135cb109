"""Property tests: the window invariants of SPEC §3/§4 hold on random price paths with gaps."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hedgekit.core import OrderKind
from hedgekit.core.strategy import Phase
from hedgekit.engine.driver import PathDriver
from hedgekit.strategies.hedge_wallet import HedgeWallet, HedgeWalletParams
from hedgekit.strategies.long_wallet import BuyFragment, LongWallet, LongWalletParams

from .helpers import INSTRUMENT, UNIT_100, total, units

SELL, BUY = OrderKind.STOP_LOSS, OrderKind.STOP_ENTRY_BUY
FULL, SHORT, COVER = OrderKind.STOP_LOSS_FULL, OrderKind.STOP_ENTRY_SHORT, OrderKind.STOP_LOSS_COVER
LOT = INSTRUMENT.lot_size

# A move: (signed distance in units, with a fractional part; jump or continuous path).
moves = st.lists(
    st.tuples(st.floats(min_value=-6.0, max_value=6.0, allow_nan=False), st.booleans()),
    min_size=1,
    max_size=40,
)


def walk(driver: PathDriver, path, check) -> None:
    price = 1000.0
    driver.start(price)
    check(driver)
    for dist, gap in path:
        price = min(max(price + dist * 100.0, 300.0), 4000.0)
        price = INSTRUMENT.round_price(price)
        driver.goto(price, gap=gap)
        check(driver)


def unique_ids(driver: PathDriver) -> None:
    placed = [r.order_id for r in driver.venue.order_log if r.event == "placed"]
    assert len(placed) == len(set(placed))
    assert not [r for r in driver.venue.order_log if r.event == "rejected"]


def no_twins(strategy) -> None:
    seen = {(o.kind, o.unit) for o in strategy.working.values()}
    assert len(seen) == len(strategy.working), "two working orders of one kind at one unit"


def check_long(d: PathDriver) -> None:
    s = d.strategy
    c = s.unit
    sells, buys = units(s, SELL), units(s, BUY)
    assert len(s.working) == 4
    k = len(sells)
    assert sells == list(range(c - k, c)), (c, sells, buys)
    assert buys == list(range(c + 1, c + 1 + 4 - k)), (c, sells, buys)
    assert abs(total(s, SELL) - s.position.qty) < LOT / 2
    assert abs(s.position.qty - d.venue.position.qty) < LOT / 2
    assert s.position.qty > -LOT / 2  # never short
    no_twins(s)
    unique_ids(d)


def check_hedge(d: PathDriver) -> None:
    s = d.strategy
    c = s.unit
    shorts, covers, full = units(s, SHORT), units(s, COVER), units(s, FULL)
    pos = s.position.qty
    assert abs(pos - d.venue.position.qty) < LOT / 2
    if s.phase is Phase.ADVANCE:
        assert len(s.working) == 5
        assert full == [c - 1] and shorts == list(range(c - 4, c))
        assert abs(total(s, FULL) - pos) < LOT / 2 and covers == []
    else:
        assert len(s.working) == 4, (s.phase, shorts, covers, full)
        assert full == [] and pos < LOT / 2  # never long outside ADVANCE
        k = len(shorts)
        assert shorts == list(range(c - k, c)), (c, shorts, covers)
        assert covers == list(range(c + 1, c + 1 + 4 - k)), (c, shorts, covers)
    assert abs(total(s, COVER) + min(pos, 0.0)) < LOT / 2
    no_twins(s)
    unique_ids(d)


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def long_driver(order: str, fragment=BuyFragment.CONTINUOUS) -> PathDriver:
    params = LongWalletParams(allocation=4000.0, leverage=1.0, unit=UNIT_100, buy_fragment=fragment)
    return PathDriver(LongWallet("long", INSTRUMENT, params), cash=1e9, trigger_order=order)


def hedge_driver(order: str) -> PathDriver:
    params = HedgeWalletParams(allocation=4000.0, leverage=1.0, unit=UNIT_100)
    return PathDriver(HedgeWallet("hedge", INSTRUMENT, params), cash=1e9, trigger_order=order)


@FAST
@given(path=moves, fixed=st.booleans())
def test_long_wallet_window_invariants(path, fixed):
    walk(long_driver("fifo", BuyFragment.FIXED if fixed else BuyFragment.CONTINUOUS), path, check_long)


@FAST
@given(path=moves)
def test_hedge_wallet_window_invariants(path):
    walk(hedge_driver("fifo"), path, check_hedge)


def book(d: PathDriver):
    s = d.strategy
    return (
        round(s.position.qty, 8),
        round(d.venue.position.qty, 8),
        sorted((o.kind, o.unit, o.qty) for o in s.working.values()),
        s.phase,
    )


@FAST
@given(path=moves)
def test_simultaneous_triggers_either_order_same_positions(path):
    for make in (hedge_driver, long_driver):
        results = []
        for order in ("fifo", "reverse"):
            d = make(order)
            walk(d, path, lambda _d: None)
            results.append(book(d))
        assert results[0] == results[1]
