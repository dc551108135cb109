"""Backtest throughput: fast path vs per-bar reference loop, dual wallet.

Prints bars/s and strategy events/s for both loops and their ratio, on the bundled real
BTCUSDT 1m data and on a SYNTHETIC year of 1m bars (525,600 bars, seeded random walk).
Benchmarks print; they never assert timings.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from loguru import logger

import hedgekit
from hedgekit.cli import example_path
from hedgekit.config import load_config
from hedgekit.engine import backtest as engine
from hedgekit.engine.session import LoadedData, load_data, run_backtest
from hedgekit.feeds.synthetic import random_walk_candles


def timed(cfg, loaded, mode: str, repeat: int = 3):
    best = float("inf")
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = run_backtest(cfg, loaded=loaded, mode=mode)
        best = min(best, time.perf_counter() - t0)
    return best, result


def report(label: str, cfg, loaded, ref_repeat: int = 1) -> None:
    n = len(loaded.candles)
    fast_s, fast = timed(cfg, loaded, "fast")
    ref_s, ref = timed(cfg, loaded, "reference", ref_repeat)
    ev = fast.summary["engine"]["strategy_events"]
    stepped = fast.summary["engine"]["stepped_bars"]
    same = fast.fills.equals(ref.fills)
    print(f"\n{label}: {n:,} bars, {len(fast.fills):,} fills, {ev:,} strategy events, "
          f"{stepped:,} bars walked by the fast path ({stepped / n:.1%})")
    print(f"  fast      {fast_s:8.3f} s   {n / fast_s:>14,.0f} bars/s   {ev / fast_s:>12,.0f} events/s")
    print(f"  reference {ref_s:8.3f} s   {n / ref_s:>14,.0f} bars/s   {ev / ref_s:>12,.0f} events/s")
    print(f"  ratio     {ref_s / fast_s:8.1f}x   identical fills: {same}")


def main() -> int:
    # Each run repeats the same strategy warnings; a benchmark prints figures, not those.
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    cfg = load_config(example_path("dual_wallet.yaml"))
    print(f"hot path: {hedgekit.build_mode()}")
    report("bundled BTCUSDT 1m (real, Binance USD-M, May 2025)", cfg, load_data(cfg))
    candles = random_walk_candles(525_600, seed=7)
    step = 8 * 3_600_000
    fts = np.arange((int(candles.ts[0]) // step + 1) * step, int(candles.ts[-1]) + 1, step, dtype=np.int64)
    loaded = LoadedData(candles, engine.Funding(fts, np.full(len(fts), 0.0001)), "constant 0.0001")
    report("SYNTHETIC year of 1m bars (seeded random walk, not market data)", cfg, loaded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
