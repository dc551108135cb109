"""Unit grid, hysteresis tracker and instrument rounding (SPEC §2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hedgekit.core import Instrument, ParameterError, UnitGrid, UnitMode, UnitSpec, UnitTracker

BTC = Instrument("BTCUSDT", tick_size=0.1, lot_size=0.001)


def grid(anchor=1000.0, mode=UnitMode.FIXED, value=100.0, inst=BTC) -> UnitGrid:
    return UnitGrid(anchor, UnitSpec(mode, value), inst)


def test_fixed_percent_and_geometric_levels_are_on_the_tick():
    assert [grid().level(u) for u in (-2, -1, 0, 1, 2)] == [800.0, 900.0, 1000.0, 1100.0, 1200.0]
    pct = grid(95203.06, UnitMode.PERCENT, 0.01)  # anchor itself rounds to 95203.1 (tick 0.1)
    assert pct.anchor == 95203.1
    assert pct.level(1) == 96155.1 and pct.level(-1) == 94251.1  # U = 952.031 fixed at anchor
    geo = grid(1000.0, UnitMode.GEOMETRIC, 0.05)
    assert geo.level(1) == 1050.0 and geo.level(2) == 1102.5 and geo.level(-1) == 952.4


def test_tracker_hysteresis_nothing_between_neighbour_levels():
    t = UnitTracker(grid())
    assert t.update(1099.9) == [] and t.update(900.1) == []
    assert t.update(1100.0) == [1]  # reaching the level counts (>=)
    assert t.update(1050.0) == []  # back between L(0) and L(2): no change (no floor arithmetic)
    assert t.update(1000.0) == [0]  # reaching L(c-1) counts (<=)


def test_tracker_gap_across_k_levels_gives_k_steps_in_order():
    t = UnitTracker(grid())
    assert t.update(1450.0) == [1, 2, 3, 4]
    assert t.update(720.0) == [3, 2, 1, 0, -1, -2]


@given(st.lists(st.floats(min_value=200, max_value=3000, allow_nan=False), min_size=1, max_size=50))
def test_tracker_unit_always_brackets_the_price(prices):
    g = grid()
    t = UnitTracker(g)
    for p in prices:
        before = t.unit
        steps = t.update(p)
        assert all(abs(b - a) == 1 for a, b in zip([before, *steps], steps, strict=False))
        assert g.level(t.unit - 1) < p < g.level(t.unit + 1)


def test_unit_smaller_than_tick_is_refused():
    with pytest.raises(ParameterError, match="unit_size.*smaller than the tick"):
        grid(value=0.05)
    with pytest.raises(ParameterError, match="unit_size"):
        UnitSpec(UnitMode.PERCENT, 1.5)


@pytest.mark.parametrize(("price", "sell", "buy"), [(1000.05, 1000.0, 1000.1), (1000.0, 1000.0, 1000.0)])
def test_trigger_rounding_never_fires_before_its_level(price, sell, buy):
    assert BTC.round_trigger(price, is_sell=True) == sell  # fires at <= trigger: round down
    assert BTC.round_trigger(price, is_sell=False) == buy  # fires at >= trigger: round up


def test_sizes_round_down_to_the_lot_without_float_dust():
    assert BTC.floor_qty(0.0029999) == 0.002
    assert BTC.floor_qty(0.1 + 0.2) == 0.3  # 0.30000000000000004 does not become 0.301 or 0.299
    assert BTC.qty_for_notional(20000, 95505.4) == 0.209
    assert BTC.round_qty(0.1 + 0.2) == 0.3


def test_instrument_rejects_bad_steps_and_fees():
    with pytest.raises(ParameterError, match="tick_size"):
        Instrument("X", tick_size=0)
    with pytest.raises(ParameterError, match="taker_fee"):
        Instrument("X", taker_fee=0.5)
