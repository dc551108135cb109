"""A price at or below one tick, or a unit far too small, never hangs the tracker (SPEC §10)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hedgekit.core import Instrument, UnitGrid, UnitMode, UnitSpec, UnitTracker
from hedgekit.core.units import MAX_STEPS_PER_MOVE, UnitStepLimit

BTC = Instrument("BTCUSDT", tick_size=0.1, lot_size=0.001)


@given(
    anchor=st.floats(min_value=0.5, max_value=200_000),
    value=st.floats(min_value=0.0005, max_value=0.5),
    mode=st.sampled_from([UnitMode.PERCENT, UnitMode.GEOMETRIC]),
)
def test_levels_are_strictly_monotone_after_rounding_down_to_the_floor(anchor, value, mode):
    if anchor * value < 0.1:
        return  # refused at construction (unit below the tick), tested in test_units
    g = UnitGrid(anchor, UnitSpec(mode, value), BTC)
    levels = [g.level(u) for u in range(-400, 401)]
    above_floor = [lv for lv in levels if lv > 0.1]
    assert all(a < b for a, b in zip(above_floor, above_floor[1:], strict=False))
    assert min(levels) >= 0.1  # nothing at or below zero: the floor is one tick


def test_geometric_levels_under_a_tick_apart_are_spread_one_tick():
    # 1 % of 10 USD is one tick: below it the raw levels would round onto each other.
    g = UnitGrid(10.0, UnitSpec(UnitMode.GEOMETRIC, 0.01), BTC)
    assert [g.level(u) for u in (0, -1, -2, -3)] == [10.0, 9.9, 9.8, 9.7]
    assert g.level(-90) == 1.0 and g.level(-99) == 0.1 and g.level(-150) == 0.1


def test_a_price_below_one_tick_steps_down_to_the_floor_and_stops():
    g = UnitGrid(1000.0, UnitSpec(UnitMode.FIXED, 100.0), BTC)
    t = UnitTracker(g)

    assert t.update(0.05) == list(range(-1, -11, -1))  # 900 … 100, then the floor at 0.1
    assert g.level(-10) == 0.1 and t.next_level(up=False) == float("-inf")
    assert t.update(0.01) == []  # nothing below the floor
    assert t.update(150.0) == [-9]  # and it climbs back level by level


def test_a_move_across_too_many_levels_is_a_clear_error_not_a_loop():
    g = UnitGrid(1000.0, UnitSpec(UnitMode.FIXED, 0.1), BTC)
    t = UnitTracker(g)

    with pytest.raises(UnitStepLimit, match=r"more than 10,000 unit levels.*unit 0\.1 fixed, anchor 1000"):
        t.update(1000.0 + 0.1 * (MAX_STEPS_PER_MOVE + 5))
    assert UnitTracker(g).update(1000.0 + 0.1 * MAX_STEPS_PER_MOVE)[-1] == MAX_STEPS_PER_MOVE
