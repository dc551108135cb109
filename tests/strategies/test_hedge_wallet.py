"""SPEC §4 worked example, step by step, under both firing orders of simultaneous triggers."""

from __future__ import annotations

import math

import pytest

from hedgekit.core import OrderKind, ParameterError
from hedgekit.core.strategy import Phase
from hedgekit.engine.driver import PathDriver
from hedgekit.strategies.hedge_wallet import HedgeWallet, HedgeWalletParams

from .helpers import INSTRUMENT, UNIT_100, sizes, total, units

FULL, SHORT, COVER = OrderKind.STOP_LOSS_FULL, OrderKind.STOP_ENTRY_SHORT, OrderKind.STOP_LOSS_COVER


def make(order: str = "fifo", cash: float = 4000.0) -> PathDriver:
    params = HedgeWalletParams(allocation=4000.0, leverage=1.0, unit=UNIT_100)
    return PathDriver(HedgeWallet("hedge", INSTRUMENT, params), cash=cash, trigger_order=order)


def coins(usd: float, price: float) -> float:
    return math.floor(usd / price * 10_000 + 1e-9) / 10_000  # floor to the 0.0001 lot


@pytest.mark.parametrize("order", ["fifo", "reverse"])
def test_worked_example_spec_4_every_step(order):
    d = make(order)
    s = d.strategy
    d.start(1000.0)
    assert units(s, SHORT) == [-4, -3, -2, -1] and units(s, FULL) == [-1]
    assert sizes(s, FULL) == {-1: 4.0} and s.position.qty == 4.0
    assert s.fragment == 1000.0 and s.phase is Phase.ADVANCE

    for u in range(1, 8):
        d.to_unit(u)
        assert units(s, SHORT) == [u - 4, u - 3, u - 2, u - 1] and units(s, FULL) == [u - 1]
        assert len(s.working) == 5 and s.phase is Phase.ADVANCE

    # 7 -> 6: the full stop and the short at 6 fire together: a short of exactly one fragment
    d.to_unit(6)
    assert units(s, SHORT) == [3, 4, 5] and units(s, COVER) == [7] and units(s, FULL) == []
    assert sizes(s, COVER) == {7: 0.625}
    assert s.position.qty == -0.625
    assert s.phase is Phase.RETRACEMENT
    assert d.venue.position.qty == -0.625  # the netting account agrees

    d.to_unit(3)
    assert units(s, SHORT) == [] and units(s, COVER) == [4, 5, 6, 7]
    expected_short = 0.625 + coins(1000, 1500) + coins(1000, 1400) + coins(1000, 1300)
    assert s.position.qty == pytest.approx(-expected_short)
    assert expected_short == pytest.approx(2.775, abs=1e-3)
    assert total(s, COVER) == pytest.approx(expected_short)
    assert s.phase is Phase.DECLINE

    # 3 -> 2: slide, the cover@7 size moves to @3
    d.to_unit(2)
    assert units(s, COVER) == [3, 4, 5, 6]
    assert sizes(s, COVER)[3] == 0.625
    assert s.phase is Phase.DECLINE

    # 2 -> 3: first cover fill -> RECOVERY, a short added at 2
    d.to_unit(3)
    assert units(s, COVER) == [4, 5, 6] and units(s, SHORT) == [2]
    assert s.phase is Phase.RECOVERY
    d.to_unit(4)
    d.to_unit(5)
    assert units(s, COVER) == [6] and units(s, SHORT) == [2, 3, 4]

    # 5 -> 6: last cover -> flat -> RESET: shorts cancelled, market buy with all equity
    realized_before = s.realized_pnl
    d.to_unit(6)
    assert s.resets == 1 and s.cycle == 1
    assert s.grid.anchor == 1600.0 and s.unit == 0
    equity = 4000.0 + s.realized_pnl
    assert s.realized_pnl == pytest.approx(realized_before + (s.realized_pnl - realized_before))
    assert s.position.qty == pytest.approx(coins(equity, 1600.0))
    assert units(s, SHORT) == [-4, -3, -2, -1] and units(s, FULL) == [-1]
    assert s.phase is Phase.ADVANCE
    # F recomputed from equity × leverage
    assert s.fragment == pytest.approx(equity / 4)


def test_realized_pnl_of_the_example_by_hand():
    d = make()
    d.start(1000.0)
    d.path(7, 6, 3, 2, 6)
    s = d.strategy
    long_pnl = 4 * (1600 - 1000)
    shorts = [(0.625, 1600), (coins(1000, 1500), 1500), (coins(1000, 1400), 1400), (coins(1000, 1300), 1300)]
    sold = sum(q * p for q, p in shorts)
    # covers: @3 took the size of the short@6 (0.625); @4 covers short@3, @5 short@4, @6 short@5
    bought = 0.625 * 1300 + shorts[3][0] * 1400 + shorts[2][0] * 1500 + shorts[1][0] * 1600
    assert s.realized_pnl == pytest.approx(long_pnl + sold - bought)


@pytest.mark.parametrize("order", ["fifo", "reverse", "random"])
def test_exit_and_first_short_net_to_one_fragment_in_any_firing_order(order):
    d = make(order)
    d.start(1000.0)
    d.to_unit(-1)
    assert d.venue.position.qty == -coins(1000, 900)
    assert d.strategy.position.qty == d.venue.position.qty


def test_gap_down_through_the_whole_short_window():
    # Extra margin on the account: at 1x the gap's loss would leave too little for 4 shorts.
    d = make(cash=1e6)
    d.start(1000.0)
    d.goto(550.0, gap=True)  # jumps over -1..-4 at once
    s = d.strategy
    assert s.phase is Phase.DECLINE
    assert units(s, COVER) == [-3, -2, -1, 0]  # each short's cover one unit above it
    assert s.position.qty == pytest.approx(-sum(coins(1000, lvl) for lvl in (900, 800, 700, 600)))
    assert all(f.price == 550.0 for f in d.venue.fills[1:])


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("allocation", {"allocation": 0}),
        ("leverage", {"leverage": -1}),
        ("leverage", {"leverage": 30}),
        ("max_short_notional", {"max_short_notional": 0}),
    ],
)
def test_invalid_parameters_name_the_field(field, kwargs):
    base = {"allocation": 1000.0, "leverage": 1.0, "unit": UNIT_100}
    with pytest.raises(ParameterError) as err:
        HedgeWalletParams(**{**base, **kwargs})
    assert err.value.name == field
