"""round_places must return exactly the float round() returns: every price, size and position
of a backtest goes through it, and the golden outputs are byte-identical to round()'s."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgekit.core.orders import Side
from hedgekit.core.position import Position
from hedgekit.core.rounding import round_places


def same_float(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


# Values on a decimal grid (what the engine rounds), near it, between grid points, and any float.
on_grid = st.builds(lambda k, p, m: k * m * 10.0**-p, st.integers(-10**12, 10**12), st.integers(0, 12),
                    st.sampled_from([1, 2, 5, 25]))
near_grid = st.builds(lambda v, e: v * (1 + e), on_grid, st.floats(-1e-12, 1e-12))
halves = st.builds(lambda k, p: (k + 0.5) * 10.0**-p, st.integers(-10**9, 10**9), st.integers(0, 8))
anything = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=3000)
@given(st.one_of(on_grid, near_grid, halves, anything), st.integers(0, 24))
def test_round_places_is_round(x, places):
    assert same_float(round_places(x, places), round(x, places))


@pytest.mark.parametrize("x", [0.0, -0.0, -1e-9, 1e-9, 2.5, -2.5, 0.125, 0.375, 2.0**50, -(2.0**50), 2.0**53 + 1,
                               1e300, -1e300, 0.1 + 0.2, 1234.5678 - 0.0001, float("inf"), float("-inf"),
                               float("nan")])
@pytest.mark.parametrize("places", [0, 1, 3, 8, 12, 22, 23])
def test_round_places_edges(x, places):
    assert same_float(round_places(x, places), round(x, places))


def test_position_rounds_its_quantity_like_round():
    p = Position(qty_decimals=7)
    for _ in range(10):
        p.apply_fill(Side.BUY, 0.1, 100.0)
    for _ in range(3):
        p.apply_fill(Side.SELL, 0.2, 101.0)
    assert same_float(p.qty, round(round(0.1 * 10, 7) - 0.6, 7))
    p.apply_fill(Side.SELL, 0.4, 99.0)
    assert same_float(p.qty, 0.0) and p.avg_price == 0.0

