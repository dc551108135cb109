"""The fast path's per-bar equity and position curves match the reference loop's.

Positions are exact; on quiet bars the fast path computes equity as ``equity(0) + qty * close``
(linear in the close) instead of ``cash + qty * (close - entry)``, so equity may differ in
the last bits there, never more.
"""

from __future__ import annotations

import numpy as np

from hedgekit.cli import example_path
from hedgekit.config import load_config
from hedgekit.engine import backtest as engine
from hedgekit.engine.session import LoadedData, run_backtest
from hedgekit.feeds.synthetic import random_walk_candles


def test_equity_and_position_curves_match_the_reference_on_synthetic_data():
    """SYNTHETIC data (seeded random walk): one month of 1m bars, dual wallet."""
    cfg = load_config(example_path("dual_wallet.yaml"))
    candles = random_walk_candles(43_200, seed=3)
    step = 8 * 3_600_000
    fts = np.arange((int(candles.ts[0]) // step + 1) * step, int(candles.ts[-1]) + 1, step, dtype=np.int64)
    loaded = LoadedData(candles, engine.Funding(fts, np.full(len(fts), 0.0001)), "constant 0.0001")
    fast = run_backtest(cfg, loaded=loaded, mode="fast").engine
    ref = run_backtest(cfg, loaded=loaded, mode="reference").engine
    assert fast.stats.stepped_bars < len(candles) // 10, "the fast path must skip most bars"
    assert sum(len(w.venue.fills) for w in fast.wallets) > 20
    for f, r in zip(fast.wallets, ref.wallets, strict=True):
        assert np.array_equal(f.position, r.position)
        assert np.allclose(f.equity, r.equity, rtol=1e-12, atol=1e-6)
