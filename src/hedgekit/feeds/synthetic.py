"""SYNTHETIC price paths (seeded random walks) for benchmarks and tests.

These are not market data and are always labelled as synthetic where used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hedgekit.feeds.history import Candles

MINUTE_MS = 60_000


def random_walk_candles(
    n: int = 525_600,
    *,
    seed: int = 7,
    start_price: float = 60_000.0,
    daily_vol: float = 0.03,
    tick: float = 0.1,
    start_ts: int = 1_704_067_200_000,  # 2024-01-01T00:00Z
    step_ms: int = MINUTE_MS,
) -> Candles:
    """A seeded geometric random walk of ``n`` 1m bars with consistent OHLC."""
    rng = np.random.default_rng(seed)
    per_step = daily_vol / np.sqrt(86_400_000 / step_ms)
    # Four sub-steps per bar give a realistic intrabar range around open/close.
    sub = rng.normal(0.0, per_step / 2.0, size=(n, 4))
    logp = np.log(start_price) + np.cumsum(sub.ravel()).reshape(n, 4)
    path = np.exp(logp)
    close = path[:, 3]
    open_ = np.empty(n)
    open_[0] = start_price
    open_[1:] = close[:-1]
    high = np.maximum(path.max(axis=1), open_)
    low = np.minimum(path.min(axis=1), open_)

    def snap(a: np.ndarray) -> np.ndarray:
        return np.round(np.round(a / tick) * tick, 8)

    open_, high, low, close = snap(open_), snap(high), snap(low), snap(close)
    high = np.maximum.reduce([high, open_, close])
    low = np.minimum.reduce([low, open_, close])
    ts = start_ts + np.arange(n, dtype=np.int64) * step_ms
    # The path names what it is, so no report can pass it off as market data.
    return Candles(
        ts, open_, high, low, close, np.zeros(n),
        path=Path(f"SYNTHETIC-random-walk-seed{seed}-n{n}"), timeframe_ms=step_ms,
    )
