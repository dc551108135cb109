"""Wilder's average true range (ATR) of completed bars, for ATR units (SPEC §2). Pure numpy.

    TR_0 = high_0 - low_0 (no previous close),
    TR_i = max(high_i - low_i, |high_i - close_i-1|, |low_i - close_i-1|),
    ATR_p-1 = mean(TR_0 .. TR_p-1),   ATR_i = a·ATR_i-1 + TR_i / p   with a = (p - 1) / p.

The recursion is evaluated in closed form over blocks of ``BLOCK`` bars (one cumulative sum
per block, no Python loop per bar):

    ATR_s+j = a^(j+1) · (ATR_s-1 + 1/p · Σ_k<=j a^-(k+1) · TR_s+k)

``wilder_atr`` does a whole series at once (the backtest); ``AtrTracker`` does the same
operations one bar at a time with bounded state (the live engine). Both give the same floats
bit for bit (sequential sums, same tables), so a PAPER replay lays the backtest's grids.

"Completed bars only": a bar's ATR is known from the time the next bar opens (``known_ts``);
``value_at(t)`` never looks at a bar that is still running at ``t``.
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache

import numpy as np

from hedgekit.core.errors import ParameterError

__all__ = ["BLOCK", "MINUTE_MS", "AtrSeries", "AtrTracker", "true_range", "wilder_atr"]

BLOCK = 256  # a^-BLOCK stays far from overflow for every period >= 2 (a >= 1/2)
MINUTE_MS = 60_000


def _check_period(period: int) -> int:
    if isinstance(period, bool) or not isinstance(period, int) or period < 2:
        raise ParameterError("atr_period", period, "must be a whole number of bars >= 2")
    return period


@lru_cache(maxsize=16)
def _tables(period: int) -> tuple[np.ndarray, np.ndarray]:
    """(a^(j+1), a^-(j+1)) for j < BLOCK, each power computed once, the same for both paths."""
    a = (period - 1) / period
    up = np.array([a ** (j + 1) for j in range(BLOCK)])
    down = np.array([a ** -(j + 1) for j in range(BLOCK)])
    return up, down


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    h = np.asarray(high, dtype=float)
    lo = np.asarray(low, dtype=float)
    c = np.asarray(close, dtype=float)
    tr = h - lo
    if len(tr) > 1:
        prev = c[:-1]
        tr[1:] = np.maximum(np.maximum(tr[1:], np.abs(h[1:] - prev)), np.abs(lo[1:] - prev))
    return tr


def wilder_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """ATR of each bar (NaN before the first ``period`` bars)."""
    p = _check_period(period)
    tr = true_range(high, low, close)
    n = len(tr)
    out = np.full(n, np.nan)
    if n < p:
        return out
    # np.cumsum adds left to right, as the tracker does.
    prev = float(np.cumsum(tr[:p])[-1]) / p
    out[p - 1] = prev
    up, down = _tables(p)
    beta = 1.0 / p
    for s in range(p, n, BLOCK):
        block = tr[s:s + BLOCK]
        m = len(block)
        out[s:s + m] = up[:m] * (prev + beta * np.cumsum(block * down[:m]))
        prev = float(out[s + m - 1])
    return out


class AtrSeries:
    """The backtest's ATR source: every bar's ATR and the time it becomes known (the next
    bar's open; the last bar's never)."""

    def __init__(self, ts: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> None:
        self.period = _check_period(period)
        ts = np.asarray(ts, dtype=np.int64)
        self.known_ts = np.append(ts[1:], np.iinfo(np.int64).max)
        self.atr = wilder_atr(high, low, close, period)

    def value_at(self, t: int) -> float | None:
        done = int(np.searchsorted(self.known_ts, t, side="right"))  # bars complete at t
        return float(self.atr[done - 1]) if done >= self.period else None


class AtrTracker:
    """The live engine's ATR source: fed bars (or prices, aggregated into 1-minute bars) as
    they arrive; keeps O(1) state so it can sit in every checkpoint."""

    def __init__(self, period: int) -> None:
        self.period = _check_period(period)
        self.completed = 0  # bars completed so far
        self._pending: tuple[int, float, float, float] | None = None  # (open ts, high, low, close)
        self._by_price = False  # pending is a 1-minute bucket built from prices
        self._prev_close: float | None = None
        self._seed = 0.0  # running sum of the first ``period`` TRs
        self._block_start = 0.0  # ATR before the current block
        self._cs = 0.0  # running sum inside the block
        self._j = 0  # position inside the block
        # (known from, ATR) of the last bars: queries are never older than the last input.
        self._recent: deque[tuple[int, float]] = deque(maxlen=8)

    def add_bar(self, ts: int, high: float, low: float, close: float) -> None:
        """A bar opening at ``ts``: the previous one is complete from ``ts`` on."""
        if self._pending is not None:
            self._complete(ts)
        self._pending = (ts, float(high), float(low), float(close))
        self._by_price = False

    def add_price(self, ts: int, price: float) -> None:
        """A trade/tick: aggregated into 1-minute bars, each complete at its minute's end."""
        start = ts - ts % MINUTE_MS
        pending = self._pending
        if pending is not None and self._by_price and start <= pending[0]:  # same minute
            o, h, lo, _ = pending
            self._pending = (o, max(h, price), min(lo, price), float(price))
            return
        if pending is not None:
            self._complete(pending[0] + MINUTE_MS if self._by_price else ts)
        self._pending = (start, float(price), float(price), float(price))
        self._by_price = True

    def value_at(self, t: int) -> float | None:
        for known, atr in reversed(self._recent):
            if known <= t:
                return atr
        return None

    def _complete(self, known_ts: int) -> None:
        assert self._pending is not None
        _, h, lo, c = self._pending
        pc = self._prev_close
        tr = h - lo if pc is None else max(max(h - lo, abs(h - pc)), abs(lo - pc))
        self._prev_close = c
        self.completed += 1
        p = self.period
        if self.completed <= p:
            self._seed = tr if self.completed == 1 else self._seed + tr
            if self.completed < p:
                return
            atr = self._seed / p
            self._block_start = atr
        else:
            up, down = _tables(p)
            j = self._j
            x = tr * float(down[j])
            self._cs = x if j == 0 else self._cs + x
            atr = float(up[j]) * (self._block_start + (1.0 / p) * self._cs)
            self._j = j + 1
            if self._j == BLOCK:
                self._j = 0
                self._block_start = atr
        self._recent.append((known_ts, atr))
