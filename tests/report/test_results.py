"""The output folder's files as ``BacktestResult.write`` writes them."""

from __future__ import annotations

import numpy as np
import pytest
from loguru import logger

from hedgekit.cli import example_path
from hedgekit.config import load_config
from hedgekit.engine.session import LoadedData, run_backtest
from hedgekit.feeds.synthetic import random_walk_candles
from hedgekit.report import results
from hedgekit.report.results import MONEY_DECIMALS, _csv


@pytest.fixture(scope="module")
def mixed_run():
    """Long, hedge and grid wallets: the grid's hedge columns are blank on the others' rows."""
    grid, dual = load_config(example_path("grid_hedge.yaml")), load_config(example_path("dual_wallet.yaml"))
    cfg = grid.model_copy(update={"wallets": [*dual.wallets, *grid.wallets]})
    logger.disable("hedgekit")
    try:
        return run_backtest(cfg, loaded=LoadedData(random_walk_candles(3001, seed=3), None, "none"))
    finally:
        logger.enable("hedgekit")


@pytest.mark.parametrize("every", [1, 3, 7])
def test_equity_csv_written_a_slice_at_a_time_is_the_whole_frame_written_at_once(mixed_run, tmp_path,
                                                                                   monkeypatch, every):
    # What write() did before writing in slices: the whole frame, every N-th bar and the last.
    eq = mixed_run.equity
    assert eq["hedge_ratio"].isna().any() and eq["hedge_ratio"].notna().any()
    if every > 1:
        bar = np.arange(len(eq)) // 3
        eq = eq[(bar % every == 0) | (bar == bar.max())]
    inst = mixed_run.config.instrument_model()
    _csv(eq, tmp_path / "whole.csv", {"equity": MONEY_DECIMALS, "position": inst.qty_decimals + 4,
                                      "price": inst.price_decimals})
    monkeypatch.setattr(results, "EQUITY_CHUNK_BARS", 10)  # 3001 bars: 301 slices, the last of one bar

    out = mixed_run.write(tmp_path / "out", equity_every=every)

    assert (out / "equity.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
