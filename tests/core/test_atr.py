"""Wilder's ATR (core/atr.py): hand-computed values, no look-ahead, and the live tracker
giving the backtest's numbers bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hedgekit.core import ParameterError, UnitMode, UnitSpec
from hedgekit.core.atr import AtrSeries, AtrTracker, true_range, wilder_atr
from hedgekit.feeds.history import BUNDLED_BTC_1M, bundled_path, load_candles

# Five 1m bars; bar 3 gaps up, bar 4 gaps down (the previous close makes the range).
TS = np.array([0, 60_000, 120_000, 180_000, 240_000])
H = np.array([10.0, 11.0, 13.0, 16.0, 12.0])
L = np.array([8.0, 9.0, 10.0, 15.0, 11.0])
C = np.array([9.0, 10.5, 12.0, 15.5, 11.0])


def test_hand_computed_true_range_and_atr():
    # TR0 = 10-8; TR1 = max(2, |11-9|, |9-9|); TR2 = max(3, |13-10.5|, |10-10.5|);
    # TR3 = max(1, |16-12|, |15-12|) = 4; TR4 = max(1, |12-15.5|, |11-15.5|) = 4.5
    assert true_range(H, L, C).tolist() == [2.0, 2.0, 3.0, 4.0, 4.5]
    atr = wilder_atr(H, L, C, 3)
    assert math.isnan(atr[0]) and math.isnan(atr[1])
    assert atr[2] == pytest.approx(7 / 3, rel=1e-14)  # mean of the first three TRs
    assert atr[3] == pytest.approx((7 / 3 * 2 + 4) / 3, rel=1e-14)  # 26/9
    assert atr[4] == pytest.approx((26 / 9 * 2 + 4.5) / 3, rel=1e-14)  # 92.5/27


def test_a_bar_counts_only_once_the_next_one_has_opened():
    s = AtrSeries(TS, H, L, C, 3)
    assert s.value_at(120_000) is None  # bars 0 and 1 done: not enough
    assert s.value_at(179_999) is None  # bar 2 still running
    assert s.value_at(180_000) == pytest.approx(7 / 3)
    assert s.value_at(239_999) == pytest.approx(7 / 3)
    assert s.value_at(240_000) == pytest.approx(26 / 9)
    assert s.value_at(10**13) == pytest.approx(26 / 9)  # the last bar never completes


def _plain_recursion(h, lo, c, p):
    tr = [h[0] - lo[0]] + [max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1])) for i in range(1, len(h))]
    out = [math.nan] * len(tr)
    a = sum(tr[:p]) / p
    out[p - 1] = a
    for i in range(p, len(tr)):
        a = (a * (p - 1) + tr[i]) / p
        out[i] = a
    return np.array(out)


@pytest.mark.parametrize("period", [2, 14, 300])
def test_block_form_matches_the_recursion_and_the_tracker_bit_for_bit(period):
    """Real BTCUSDT 1m data (bundled): the vectorised series equals the textbook recursion to
    rounding, and the bar-by-bar tracker (live engine) equals the series exactly."""
    c = load_candles(bundled_path(BUNDLED_BTC_1M))
    n = 20_000
    ts, h, lo, cl = c.ts[:n], c.high[:n], c.low[:n], c.close[:n]
    series = AtrSeries(ts, h, lo, cl, period)
    ref = _plain_recursion(h.tolist(), lo.tolist(), cl.tolist(), period)
    ok = ~np.isnan(ref)
    assert np.array_equal(np.isnan(series.atr), ~ok)
    assert np.max(np.abs(series.atr[ok] - ref[ok]) / ref[ok]) < 1e-12
    tracker = AtrTracker(period)
    for i in range(n):
        tracker.add_bar(int(ts[i]), float(h[i]), float(lo[i]), float(cl[i]))
        t = int(ts[i])
        assert tracker.value_at(t) == series.value_at(t)  # == on floats: bit for bit
        assert tracker.value_at(t - 1) == series.value_at(t - 1)


def test_tracker_aggregates_prices_into_minute_bars():
    prices = AtrTracker(2)
    bars = AtrTracker(2)
    minutes = [[(0, 10.0), (20_000, 12.0), (59_000, 9.0)],
               [(60_000, 9.5), (61_000, 11.0), (90_000, 10.0)],
               [(125_000, 14.0), (170_000, 13.0)],
               [(185_000, 13.5)]]
    for m, ticks in enumerate(minutes):
        for ts, p in ticks:
            prices.add_price(ts, p)
        px = [p for _, p in ticks]
        bars.add_bar(m * 60_000, max(px), min(px), px[-1])
    # Minutes 0 and 1 are complete once minute 2 has a price: TRs 3 and max(1.5, 2, 1) = 2.
    assert prices.completed == bars.completed == 3
    assert prices.value_at(119_999) is None
    assert prices.value_at(120_000) == bars.value_at(120_000) == 2.5
    assert prices.value_at(185_000) == bars.value_at(185_000)


@pytest.mark.parametrize("period", [1, 0, 2.5, True])
def test_bad_period_names_the_field(period):
    with pytest.raises(ParameterError, match="atr_period"):
        AtrTracker(period)
    with pytest.raises(ParameterError, match="atr_period"):
        UnitSpec(UnitMode.ATR, 2.0, atr_period=period)


def test_atr_multiple_may_exceed_one_but_must_be_positive():
    assert UnitSpec(UnitMode.ATR, 3.0).atr_period == 14
    with pytest.raises(ParameterError, match="unit_size"):
        UnitSpec(UnitMode.ATR, 0.0)
