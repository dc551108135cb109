"""SPEC §3 worked example, step by step, on the deterministic driver."""

from __future__ import annotations

import math

import pytest

from hedgekit.core import OrderKind, ParameterError, Side, UnitMode, UnitSpec
from hedgekit.core.strategy import Phase
from hedgekit.engine.driver import PathDriver
from hedgekit.strategies.long_wallet import BuyFragment, LongWallet, LongWalletParams

from .helpers import INSTRUMENT, UNIT_100, sizes, units

SELL, BUY = OrderKind.STOP_LOSS, OrderKind.STOP_ENTRY_BUY


def floor4(x: float) -> float:
    return math.floor(x * 10_000 + 1e-9) / 10_000  # the 0.0001 lot, rounded down


def make(fragment: BuyFragment = BuyFragment.CONTINUOUS, allocation: float = 4000.0) -> PathDriver:
    params = LongWalletParams(allocation=allocation, leverage=1.0, unit=UNIT_100, buy_fragment=fragment)
    return PathDriver(LongWallet("long", INSTRUMENT, params), cash=allocation)


def state(d: PathDriver) -> tuple[list[int], list[int], Phase]:
    s = d.strategy
    return units(s, SELL), units(s, BUY), s.phase


def test_worked_example_spec_3_every_step():
    d = make()
    s = d.strategy
    d.start(1000.0)
    # start: market buy 4 @1000, sells at -4..-1 of 1 coin each
    assert state(d) == ([-4, -3, -2, -1], [], Phase.ADVANCE)
    assert s.position.qty == 4.0
    assert sizes(s, SELL) == {-4: 1.0, -3: 1.0, -2: 1.0, -1: 1.0}
    assert s.grid.anchor == 1000.0 and s.unit == 0

    # 0 -> 7: seven slides up, each moving the lowest sell's size to the new c-1
    for u in range(1, 8):
        d.to_unit(u)
        assert state(d) == ([u - 4, u - 3, u - 2, u - 1], [], Phase.ADVANCE)
    assert sizes(s, SELL) == {3: 1.0, 4: 1.0, 5: 1.0, 6: 1.0}

    # 7 -> 6: sell@6 fills 1 coin @1600; buy placed at 7
    d.to_unit(6)
    assert state(d) == ([3, 4, 5], [7], Phase.RETRACEMENT)
    assert s.position.qty == 3.0
    assert s.realized_pnl == pytest.approx(600.0)
    # continuous fragment: (N + cycle PnL) / 4 = (4000 + 600) / 4 = 1150 USD at 1700
    assert sizes(s, BUY) == {7: 0.6764}

    # 6 -> 3: sells @5, @4, @3 fill
    d.to_unit(5)
    assert state(d) == ([3, 4], [6, 7], Phase.RETRACEMENT)
    d.to_unit(4)
    assert state(d) == ([3], [5, 6, 7], Phase.RETRACEMENT)
    d.to_unit(3)
    assert state(d) == ([], [4, 5, 6, 7], Phase.DECLINE)
    assert s.position.qty == 0.0
    assert s.realized_pnl == pytest.approx(600 + 500 + 400 + 300)
    # fragments were evaluated when each buy was placed: PnL 1100, 1500, 1800
    assert sizes(s, BUY) == {
        7: 0.6764,  # 1150 / 1700
        6: floor4(1275 / 1600),  # 0.7968
        5: floor4(1375 / 1500),  # 0.9166
        4: floor4(1450 / 1400),  # 1.0357
    }

    # 3 -> 2: slide down, buy@3 placed, buy@7 cancelled
    d.to_unit(2)
    assert state(d) == ([], [3, 4, 5, 6], Phase.DECLINE)
    assert sizes(s, BUY)[3] == floor4(1450 / 1300)

    # 2 -> 3 -> 4 -> 5: buys @3, @4, @5 fill, each replaced by a sell one unit lower of the
    # exact coins it bought
    bought = sizes(s, BUY)
    d.to_unit(3)
    assert state(d) == ([2], [4, 5, 6], Phase.RECOVER)
    assert sizes(s, SELL) == {2: bought[3]}
    d.to_unit(4)
    d.to_unit(5)
    assert state(d) == ([2, 3, 4], [6], Phase.RECOVER)
    assert sizes(s, SELL) == {2: bought[3], 3: bought[4], 4: bought[5]}
    assert s.position.qty == pytest.approx(bought[3] + bought[4] + bought[5])

    # 5 -> 6: buy@6 fills -> RESET: P0 := 1600, c := 0, four sells at -1..-4 of Q/4
    d.to_unit(6)
    q = round(bought[3] + bought[4] + bought[5] + bought[6], 4)
    assert s.position.qty == pytest.approx(q)
    assert s.grid.anchor == 1600.0 and s.unit == 0
    assert state(d) == ([-4, -3, -2, -1], [], Phase.ADVANCE)
    assert sum(sizes(s, SELL).values()) == pytest.approx(q)
    assert s.notional == pytest.approx(q * 1600.0)
    assert s.resets == 1 and s.cycle == 1
    assert s.cycle_realized == 0.0
    # the re-laid sells sit at the new grid: 1500, 1400, 1300, 1200
    assert sorted(o.price for o in s.orders(SELL)) == [1200.0, 1300.0, 1400.0, 1500.0]


def test_fixed_fragment_is_n_over_4():
    d = make(BuyFragment.FIXED)
    d.start(1000.0)
    d.path(1, 2, 3, 2)  # sell@2 fills
    # fixed: N/4 = 1000 USD at L(3) = 1300
    assert sizes(d.strategy, BUY) == {3: floor4(1000 / 1300)}


def test_fragment_given_as_text_sizes_like_the_enum():
    """"continuous" as text was compared by identity with the enum and sized as fixed."""
    by_text = LongWallet("w", INSTRUMENT, LongWalletParams(allocation=4000.0, leverage=1.0, unit=UNIT_100,
                                                           buy_fragment="continuous"))  # type: ignore[arg-type]
    assert by_text.params.buy_fragment is BuyFragment.CONTINUOUS
    drivers = [PathDriver(by_text, cash=4000.0), make(BuyFragment.CONTINUOUS), make(BuyFragment.FIXED)]
    for x in drivers:
        x.start(1000.0)
        x.path(1, 2, 3, 2)  # a sell fills: the buy is sized by the fragment
    text, continuous, fixed = (sizes(x.strategy, BUY) for x in drivers)
    assert text == continuous != fixed


def test_gap_through_several_sells_fills_each_at_the_gap_price():
    d = make()
    d.start(1000.0)
    d.goto(1350.0, gap=False)  # to unit 3 (ADVANCE slides)
    d.goto(990.0, gap=True)  # gap down across 2, 1, 0; sells at 0..2 fire at 990
    fills = [f for f in d.venue.fills if f.kind == "stop_loss"]
    assert [f.price for f in fills] == [990.0, 990.0, 990.0]
    assert units(d.strategy, SELL) == [-1] and units(d.strategy, BUY) == [1, 2, 3]


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("allocation", {"allocation": 0}),
        ("allocation", {"allocation": -5}),
        ("leverage", {"leverage": 0}),
        ("leverage", {"leverage": 50, "max_leverage": 20}),
        ("buy_fragment", {"buy_fragment": "sometimes"}),
    ],
)
def test_invalid_parameters_name_the_field(field, kwargs):
    base = {"allocation": 1000.0, "leverage": 1.0, "unit": UNIT_100}
    with pytest.raises(ParameterError) as err:
        LongWalletParams(**{**base, **kwargs})
    assert err.value.name == field
    assert field in str(err.value)


def test_unit_smaller_than_tick_is_refused():
    params = LongWalletParams(allocation=1000, leverage=1, unit=UnitSpec(UnitMode.FIXED, 0.05))
    with pytest.raises(ParameterError, match="unit_size.*smaller than the tick"):
        LongWallet("long", INSTRUMENT, params)


def test_non_positive_unit_size_is_refused():
    with pytest.raises(ParameterError, match="unit_size"):
        UnitSpec(UnitMode.FIXED, 0)


def test_client_ids_encode_wallet_cycle_unit_kind_and_never_repeat():
    d = make()
    d.start(1000.0)
    d.path(3, 0, 4, 8, 2)
    ids = [r.order_id for r in d.venue.order_log if r.event == "placed"]
    assert len(ids) == len(set(ids))
    first_sell = next(o for o in d.venue.order_log if o.kind == "stop_loss")
    assert first_sell.order_id.startswith("hk-long-0-m1-sl-")


def test_market_buy_is_the_only_start_command():
    params = LongWalletParams(allocation=4000, leverage=1, unit=UNIT_100)
    s = LongWallet("long", INSTRUMENT, params)
    [cmd] = s.start(0, 1000.0)
    assert cmd.order.kind is OrderKind.MARKET_BUY and cmd.order.side is Side.BUY
    assert cmd.order.qty == 4.0


def test_continuous_fragment_counts_the_cycle_from_its_basis_after_a_reset():
    """SPEC §3: at RESET the whole position's basis becomes P0, so growth already compounded
    into N is not counted again in the next buy fragment."""
    d = PathDriver(LongWallet("long", INSTRUMENT, LongWalletParams(allocation=4000.0, leverage=1.0, unit=UNIT_100)), cash=1e9)
    d.start(1000.0)
    d.path(7, 3, 2, 6)  # the SPEC §3 example: RESET at P0 = 1600
    s = d.strategy
    assert s.resets == 1 and s.grid.anchor == 1600.0
    assert s.position.qty == 3.8644 and s.notional == pytest.approx(3.8644 * 1600)
    d.to_unit(-1)  # the sell at 1500 (0.9661 coin) loses 100 per coin against P0
    assert s.cycle_realized == pytest.approx(-96.61)
    # (N + cycle PnL) / 4 at 1600 = (6183.04 - 96.61) / 4 / 1600 = 0.95100; measured from
    # the old average cost (1436.10) the same sell would count +61.74 and buy 0.9757.
    assert sizes(s, BUY) == {0: 0.951}
