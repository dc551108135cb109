"""round_places must return exactly the float round() returns: every price, size and position
of a backtest goes through it, and the golden outputs are byte-identical to round()'s."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgekit.core.instrument import Instrument
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


@settings(max_examples=500)
@given(st.sampled_from([0.1, 0.5, 0.01, 0.25, 5.0, 1e-8, 0.00001, 0.0025]),
       st.sampled_from([0.001, 1e-8, 1.0, 0.1, 0.00025]),
       st.floats(1e-9, 1e7))
def test_instrument_rounding_is_unchanged(tick, lot, v):
    """Instrument's rounding, as it was written with round(): the same floats."""
    inst = Instrument("X", tick_size=tick, lot_size=lot)
    pd, qd = inst.price_decimals, inst.qty_decimals
    assert same_float(inst.round_price(v), round(round(v / tick) * tick, pd))
    assert same_float(inst.floor_price(v), round(math.floor(v / tick + 1e-9) * tick, pd))
    assert same_float(inst.ceil_price(v), round(math.ceil(v / tick - 1e-9) * tick, pd))
    assert same_float(inst.floor_qty(v), round(math.floor(v / lot + 1e-9) * lot, qd))
    assert same_float(inst.round_qty(v), round(round(v / lot) * lot, qd))


def test_position_rounds_its_quantity_like_round():
    p = Position(qty_decimals=7)
    for _ in range(10):
        p.apply_fill(Side.BUY, 0.1, 100.0)
    for _ in range(3):
        p.apply_fill(Side.SELL, 0.2, 101.0)
    assert same_float(p.qty, round(round(0.1 * 10, 7) - 0.6, 7))
    p.apply_fill(Side.SELL, 0.4, 99.0)
    assert same_float(p.qty, 0.0) and p.avg_price == 0.0


def test_an_instrument_survives_pickle_and_copy():
    """Instrument is a frozen native class in the compiled build: pickle (Ray) and copy rebuild
    it through __init__, derived fields included."""
    import copy
    import pickle

    from hedgekit.core.instrument import ContractType

    inst = Instrument("ETHUSDT", tick_size=0.01, lot_size=0.0001, min_notional=10.0, contract=ContractType.SPOT,
                      maker_fee=-0.0001, taker_fee=0.0004, funding_interval_hours=4.0)
    for back in (pickle.loads(pickle.dumps(inst)), copy.deepcopy(inst), copy.copy(inst)):
        assert back == inst and hash(back) == hash(inst)
        assert (back.price_decimals, back.qty_decimals) == (2, 4)
        assert back.round_price(1234.5678) == 1234.57
