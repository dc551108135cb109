"""The fast path and the per-bar reference loop give byte-identical output on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hedgekit.cli import example_path
from hedgekit.config import load_config
from hedgekit.engine import backtest as engine
from hedgekit.engine.session import LoadedData, run_backtest
from hedgekit.feeds.synthetic import random_walk_candles

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "typhonun_DcaTpStrategy"
FILES = ["BTC_USDT_USDT-1m-futures.feather", "BTC_USDT_USDT-5m-futures.feather",
         "ETH_USDT_USDT-1m-futures.feather", "ETH_USDT_USDT-5m-futures.feather"]


def dual_for(symbol: str):
    cfg = load_config(example_path("dual_wallet.yaml"))
    if symbol.startswith("ETH"):
        inst = cfg.instrument.model_copy(update={"symbol": "ETHUSDT", "tick_size": 0.01, "min_notional": 20})
        funding = cfg.venue.funding.model_copy(update={"file": str(SHARED / "ETH_USDT_USDT-8h-funding_rate.feather")})
        cfg = cfg.model_copy(update={"instrument": inst, "venue": cfg.venue.model_copy(update={"funding": funding})})
    return cfg


def both(cfg, tmp_path: Path, **kw) -> tuple[bytes, bytes, bytes, bytes]:
    fast = run_backtest(cfg, mode="fast", **kw).write(tmp_path / "fast")
    ref = run_backtest(cfg, mode="reference", **kw).write(tmp_path / "ref")
    return ((fast / "fills.csv").read_bytes(), (ref / "fills.csv").read_bytes(),
            (fast / "orders.csv").read_bytes(), (ref / "orders.csv").read_bytes())


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside the repo")
@pytest.mark.parametrize("name", FILES)
def test_fast_equals_reference_on_real_data(name, tmp_path):
    cfg = dual_for(name)
    fills_fast, fills_ref, orders_fast, orders_ref = both(cfg, tmp_path, data=str(SHARED / name))
    assert fills_fast.count(b"\n") > 20, "the run must actually trade for the comparison to mean anything"
    assert fills_fast == fills_ref
    assert orders_fast == orders_ref


def test_fast_equals_reference_on_a_synthetic_quarter(tmp_path):
    """SYNTHETIC data (seeded random walk): 3 months of 1m bars; the full year is in make bench."""
    cfg = load_config(example_path("dual_wallet.yaml"))
    cfg = cfg.model_copy(update={"venue": cfg.venue.model_copy(update={"funding": cfg.venue.funding.model_copy(update={"file": None, "rate": 0.0001})})})
    candles = random_walk_candles(131_400, seed=11)
    step = 8 * 3_600_000
    fts = np.arange((int(candles.ts[0]) // step + 1) * step, int(candles.ts[-1]) + 1, step, dtype=np.int64)
    loaded = LoadedData(candles, engine.Funding(fts, np.full(len(fts), 0.0001)), "constant 0.0001")
    fills_fast, fills_ref, orders_fast, orders_ref = both(cfg, tmp_path, loaded=loaded)
    assert fills_fast.count(b"\n") > 20
    assert fills_fast == fills_ref and orders_fast == orders_ref


def test_fast_equals_reference_for_the_grid_hedge(tmp_path):
    """Timers (rebalance) and limit orders go through the same walk in both loops."""
    cfg = load_config(example_path("grid_hedge.yaml"))
    fills_fast, fills_ref, orders_fast, orders_ref = both(cfg, tmp_path, end="2025-05-12")
    assert fills_fast.count(b"\n") > 5
    assert fills_fast == fills_ref and orders_fast == orders_ref
