"""Instrument: its rounding is what it was when written with round(), and it survives pickle
(Ray) and copy as the native class of the compiled build."""

import copy
import math
import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from hedgekit.core.instrument import ContractType, Instrument
from tests.core.test_rounding import same_float


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


def test_an_instrument_survives_pickle_and_copy():
    """Instrument is a frozen native class in the compiled build: pickle (Ray) and copy rebuild
    it through __init__, derived fields included."""
    inst = Instrument("ETHUSDT", tick_size=0.01, lot_size=0.0001, min_notional=10.0, contract=ContractType.SPOT,
                      maker_fee=-0.0001, taker_fee=0.0004, funding_interval_hours=4.0)
    for back in (pickle.loads(pickle.dumps(inst)), copy.deepcopy(inst), copy.copy(inst)):
        assert back == inst and hash(back) == hash(inst)
        assert (back.price_decimals, back.qty_decimals) == (2, 4)
        assert back.round_price(1234.5678) == 1234.57
