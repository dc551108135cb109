"""Runs over pathological data end, with bounded work (SPEC §10: a price at or below one tick
never hangs or balloons a run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hedgekit.cli import example_path
from hedgekit.config import load_config
from hedgekit.engine.session import LoadedData, run_backtest
from hedgekit.feeds.history import Candles

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
BTC_4H = SHARED / "ta4j" / "Coinbase-BTC-USD-PT4H-20160518_20251028.json"


def no_funding(cfg):
    funding = cfg.venue.funding.model_copy(update={"file": None})
    return cfg.model_copy(update={"venue": cfg.venue.model_copy(update={"funding": funding})})


def synthetic_print_at(low: float, *, n: int = 240, at: int = 100) -> Candles:
    """SYNTHETIC 1h bars: a gentle sine around 1,000 USD with one bar that opens and trades
    down to ``low`` (as a broken feed would print it) and closes back at the market."""
    close = 1000.0 + 30.0 * np.sin(np.arange(n) / 9.0)
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) + 2.0
    low_ = np.minimum(open_, close) - 2.0
    open_[at] = low_[at] = low
    ts = 1_704_067_200_000 + np.arange(n, dtype=np.int64) * 3_600_000
    return Candles(ts, open_, high, low_, close, np.ones(n))


@pytest.mark.parametrize("low", [0.1, 0.05])  # at, then below, one tick (0.1)
def test_a_print_at_one_tick_ends_the_run_the_same_on_both_loops(low, tmp_path):
    cfg = no_funding(load_config(example_path("dual_wallet.yaml")))
    loaded = LoadedData(synthetic_print_at(low), None, "none")

    fast = run_backtest(cfg, loaded=loaded, mode="fast")
    ref = run_backtest(cfg, loaded=loaded, mode="reference")

    # Bounded: ~100 unit steps (1 % of 1,000 USD) down to the floor and back up, per wallet,
    # each with its window's place/cancel; the same work at 0.1 as at 0.05.
    assert fast.summary["engine"]["strategy_events"] < 20_000
    f, r = fast.write(tmp_path / "fast"), ref.write(tmp_path / "ref")
    assert (f / "fills.csv").read_bytes() == (r / "fills.csv").read_bytes()
    assert (f / "orders.csv").read_bytes() == (r / "orders.csv").read_bytes()
    # Every working stop sat above the print and filled at the gap price: the long wallet is
    # out, nothing is left resting at or below one tick.
    assert (fast.fills[fast.fills.wallet == "long"].price >= low).all()


@pytest.mark.skipif(not BTC_4H.is_file(), reason="../shared/data is not beside the repo")
def test_full_coinbase_4h_history_with_its_bad_print_dropped_finishes():
    """Before the floor on unit levels this run never ended and grew past 16 GB."""
    cfg = no_funding(load_config(example_path("dual_wallet.yaml")))
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"on_spike": "drop"})})

    res = run_backtest(cfg, data=str(BTC_4H))

    eng = res.summary["engine"]
    assert eng["bars"] == 20_694  # 20,695 in the file, the 0.06 print dropped
    assert 10_000 < eng["strategy_events"] < 1_000_000
    assert res.summary["data"]["bad_prints"]["count"] == 1
