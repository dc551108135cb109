"""Bad prints (SPEC §10): a bar whose low or high departs from both neighbouring closes by far
more than the market's own range around it.

The rule works in log prices, so a fall to half counts as much as a doubling:

* departure of the low  = ln(min(previous close, next close) / low),
  departure of the high = ln(high / max(previous close, next close))
  (the first and last bar have one neighbour);
* the market's own range = the median of ln(high / low) over ``WINDOW`` bars centred on the bar
  (a median, so the spike itself does not widen it), floored at ``MIN_RANGE`` so that a run of
  flat bars (zero-volume minutes) does not turn an ordinary move into a "spike";
* a bar is a spike when a departure exceeds ``FACTOR`` times that range.

``FACTOR`` is generous on purpose: on every real file in ``../shared/data`` the largest
departure of a genuine bar is about 20 ranges, while the known bad prints (Coinbase BTC-USD
0.06 USD, ETH-USD 0.10 USD) are 240 to 1,150 ranges away. The check never repairs silently:
``error`` refuses the file, ``drop`` removes the bar (it becomes a gap), ``clip`` clamps the bad
prices into the neighbours' range; the last two are reported by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["FACTOR", "MIN_RANGE", "WINDOW", "SpikePolicy", "Spikes", "clip_spikes", "find_spikes"]

SpikePolicy = Literal["error", "drop", "clip"]

FACTOR = 50.0
WINDOW = 51
MIN_RANGE = 1e-3  # 0.1 % in log price


@dataclass(frozen=True, slots=True)
class Spikes:
    """Bars found by :func:`find_spikes` (array indices, in time order) and, for each, the
    bounds outside which a price is a bad print: ``floor`` (below) and ``ceiling`` (above)."""

    index: np.ndarray
    floor: np.ndarray
    ceiling: np.ndarray
    low_bad: np.ndarray  # the low is a bad print
    high_bad: np.ndarray  # the high is a bad print

    def __len__(self) -> int:
        return len(self.index)


def _neighbour_closes(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prev = np.empty_like(close)
    nxt = np.empty_like(close)
    prev[1:], prev[:1] = close[:-1], close[1:2]
    nxt[:-1], nxt[-1:] = close[1:], close[-2:-1]
    return np.minimum(prev, nxt), np.maximum(prev, nxt)


def find_spikes(high: np.ndarray, low: np.ndarray, close: np.ndarray, *, factor: float = FACTOR) -> Spikes:
    """The bad prints among bars given as arrays (positive prices, time order)."""
    high, low, close = (np.asarray(a, dtype=np.float64) for a in (high, low, close))
    n = len(close)
    if n < 2:
        empty = np.empty(0)
        return Spikes(np.empty(0, dtype=np.int64), empty, empty, empty.astype(bool), empty.astype(bool))
    ref_lo, ref_hi = _neighbour_closes(close)
    own = pd.Series(np.log(high / low)).rolling(WINDOW, center=True, min_periods=1).median().to_numpy()
    allowed = factor * np.maximum(own, MIN_RANGE)
    floor = ref_lo * np.exp(-allowed)
    ceiling = ref_hi * np.exp(allowed)
    low_bad = low < floor
    high_bad = high > ceiling
    idx = np.flatnonzero(low_bad | high_bad)
    return Spikes(idx, floor[idx], ceiling[idx], low_bad[idx], high_bad[idx])


def clip_spikes(
    spikes: Spikes, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Copies of the OHLC arrays with each bad extreme clamped to the range of the
    neighbouring closes and the bar's own good prices; a bad open or close follows it (so
    the bar stays consistent: low <= open, close <= high)."""
    o, h, lo, c = (np.array(a, dtype=np.float64) for a in (o, h, lo, c))
    ref_lo, ref_hi = _neighbour_closes(c)
    for k, i in enumerate(spikes.index):
        fl, ce = spikes.floor[k], spikes.ceiling[k]
        prices = np.array([o[i], h[i], lo[i], c[i]])
        good = prices[(prices >= fl) & (prices <= ce)]
        new_lo = min(ref_lo[i], *good) if good.size else ref_lo[i]
        new_hi = max(ref_hi[i], *good) if good.size else ref_hi[i]
        if spikes.low_bad[k]:
            lo[i] = new_lo
        if spikes.high_bad[k]:
            h[i] = new_hi
        o[i], c[i] = min(max(o[i], lo[i]), h[i]), min(max(c[i], lo[i]), h[i])
    return o, h, lo, c
