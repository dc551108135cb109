"""Leveraged buy-and-hold is a position held from the first price and liquidated like the
simulated exchange liquidates: never below -100 %, and no recovery after it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hedgekit.cli import example_path
from hedgekit.config import load_config
from hedgekit.engine.session import LoadedData, run_backtest
from hedgekit.feeds.history import Candles
from hedgekit.report.metrics import buy_and_hold_curve, compute_run_metrics


def test_a_3x_long_liquidated_stays_at_minus_100_pct():
    # 1,000 USD at 3x from 100: 30 units. At 60, equity 1000 - 30 x 40 = -200 <= maintenance
    # 0.005 x 30 x 60 = 9: liquidated, nothing left. The rally to 120 does not bring it back
    # (return x leverage would say +60 %).
    curve = buy_and_hold_curve([100.0, 80.0, 60.0, 120.0], 1000.0, 3.0,
                               maintenance_margin_rate=0.005, taker_fee=0.0005)
    assert curve.tolist() == [1000.0, 400.0, 0.0, 0.0]


def test_liquidation_at_the_maintenance_margin_keeps_what_is_left_after_the_fee():
    # At 67: equity 1000 - 30 x 33 = 10 <= 0.005 x 30 x 67 = 10.05: liquidated; the taker fee
    # 0.0005 x 30 x 67 = 1.005 is taken, 8.995 stays. At 67.5 (equity 25 > 10.125) it held.
    curve = buy_and_hold_curve([100.0, 67.5, 67.0, 200.0], 1000.0, 3.0,
                               maintenance_margin_rate=0.005, taker_fee=0.0005)
    assert curve == pytest.approx([1000.0, 25.0, 8.995, 8.995])
    # 1x is never liquidated: it just follows the price.
    assert buy_and_hold_curve([100.0, 10.0, 200.0], 1000.0, 1.0, maintenance_margin_rate=0.005).tolist() == [
        1000.0, 100.0, 2000.0]


def synthetic_crash_and_rally(n: int = 300) -> Candles:
    """SYNTHETIC 1h closes: 1,000 -> 500 (-50 %) -> 1,200 (+20 % over the start)."""
    close = np.round(np.r_[np.linspace(1000.0, 500.0, n // 2), np.linspace(500.0, 1200.0, n - n // 2)], 1)
    open_ = np.r_[1000.0, close[:-1]]
    ts = 1_704_067_200_000 + np.arange(n, dtype=np.int64) * 3_600_000
    return Candles(ts, open_, np.maximum(open_, close), np.minimum(open_, close), close, np.ones(n))


def test_summary_and_report_metrics_agree_on_a_liquidated_buy_and_hold(tmp_path):
    cfg = load_config(example_path("long_wallet.yaml"))
    cfg = cfg.model_copy(update={
        "wallets": [cfg.wallets[0].model_copy(update={"leverage": 3.0})],
        "venue": cfg.venue.model_copy(update={"funding": cfg.venue.funding.model_copy(update={"file": None})}),
    })

    res = run_backtest(cfg, loaded=LoadedData(synthetic_crash_and_rally(), None, "none"))
    folder = res.write(tmp_path)

    w = res.summary["wallets"]["long"]
    assert w["buy_and_hold_1x_return_pct"] == pytest.approx(20.0)
    # Not +60 %: the 3x long died near -33 %, keeping only a sliver of maintenance margin.
    bh = w["buy_and_hold_return_pct"]
    assert -100.0 <= bh < -99.0
    assert res.summary["total"]["buy_and_hold_return_pct"] == bh
    m = compute_run_metrics(pd.read_csv(folder / "equity.csv"), pd.read_csv(folder / "fills.csv"), res.summary)
    assert m["wallets"]["long"]["buy_and_hold_return_pct"] == pytest.approx(bh, abs=1e-4)
    assert m["total"]["buy_and_hold_return_pct"] == pytest.approx(bh, abs=1e-4)
