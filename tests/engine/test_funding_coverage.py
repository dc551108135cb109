"""A funding file that does not cover the candles says which span has no funding (SPEC §10):
logged and in summary.json, never a silent zero while the file is named as the source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from loguru import logger

from hedgekit.cli import example_path
from hedgekit.config import load_config
from hedgekit.engine.session import load_data, run_backtest
from hedgekit.feeds.coverage import FundingGap, funding_gaps
from hedgekit.feeds.history import BUNDLED_BTC_FUNDING, load_funding, to_epoch_ms

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "typhonun_DcaTpStrategy"
H = 3_600_000
EIGHT = 8 * H


def ms(text: str) -> int:
    return to_epoch_ms(text)


@pytest.fixture
def warnings():
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    yield lines
    logger.remove(sink)


def test_head_hole_and_tail_are_found_with_their_payments():
    day = ms("2025-01-02T00:00:00Z")
    ts = np.array([day + k * EIGHT for k in (2, 3, 6, 7)])  # 16:00, 00:00, [08:00, 16:00 missing], 00:00, 08:00
    gaps = funding_gaps(ts, day, day + 12 * EIGHT, EIGHT)

    assert gaps == [
        FundingGap(day, day + 2 * EIGHT, 1),  # 08:00 on the first day (00:00 is the start: not due)
        FundingGap(day + 3 * EIGHT, day + 6 * EIGHT, 2),
        FundingGap(day + 7 * EIGHT, day + 12 * EIGHT, 5),
    ]
    assert gaps[1].as_dict() == {"from": "2025-01-03T00:00:00Z", "to": "2025-01-04T00:00:00Z", "payments": 2}


def test_full_coverage_with_late_stamps_has_no_gap():
    # Binance stamps funding a few ms after the hour (the ETH file's last rate is at .005 s).
    start = ms("2025-01-01T03:00:00Z")
    ts = np.array([ms("2025-01-01T08:00:00Z") + k * EIGHT + 5 for k in range(9)])
    assert funding_gaps(ts, start, int(ts[-1]) + 7 * H, EIGHT) == []
    assert funding_gaps(np.array([], dtype=np.int64), start, start + 3 * EIGHT, EIGHT) == [
        FundingGap(start, start + 3 * EIGHT, 3)
    ]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside the repo")
@pytest.mark.parametrize("tf", ["5m", "1h"])
def test_real_files_that_cover_each_other_give_no_warning(tf, warnings):
    cfg = load_config(example_path("dual_wallet.yaml"))

    loaded = load_data(cfg, str(SHARED / f"BTC_USDT_USDT-{tf}-futures.feather"))

    assert loaded.funding_gaps == ()
    assert not [w for w in warnings if "funding" in w]


def test_bundled_month_misses_the_last_payment_and_says_so(tmp_path, warnings):
    # The bundled candles end 2025-06-03 15:31, the funding file at 2025-06-03 00:00: the
    # 08:00 payment is not in the file.
    res = run_backtest(load_config(example_path("dual_wallet.yaml")))

    missing = json.loads((res.write(tmp_path) / "summary.json").read_text())["data"]["funding_missing"]
    assert missing == {"payments": 1, "interval_hours": 8.0, "spans": [
        {"from": "2025-06-03T00:00:00Z", "to": "2025-06-03T15:31:00Z", "payments": 1}]}
    assert any(str(BUNDLED_BTC_FUNDING) in w and "2025-06-03T00:00:00Z -> 2025-06-03T15:31:00Z" in w
               for w in warnings)


def test_a_hole_and_a_late_start_in_the_funding_file_are_named(tmp_path, warnings):
    """The real bundled funding rates with three payments deleted and the first week cut."""
    fs = load_funding(BUNDLED_BTC_FUNDING).to_frame().reset_index()
    fs = fs[fs.timestamp >= "2025-05-11"]
    fs = fs[(fs.timestamp < "2025-05-20") | (fs.timestamp > "2025-05-21")]
    path = tmp_path / "funding_with_hole.csv"
    pd.DataFrame({"timestamp": fs.timestamp.dt.strftime("%Y-%m-%dT%H:%M:%SZ"), "rate": fs.rate}).to_csv(path, index=False)
    cfg = load_config(example_path("dual_wallet.yaml"))
    cfg = cfg.model_copy(update={"venue": cfg.venue.model_copy(update={
        "funding": cfg.venue.funding.model_copy(update={"file": str(path)})})})

    res = run_backtest(cfg, end="2025-06-01")

    spans = res.summary["data"]["funding_missing"]["spans"]
    assert spans == [
        # 16:00 on the 4th, then three a day from the 5th to the 10th
        {"from": "2025-05-04T15:33:00Z", "to": "2025-05-11T00:00:00Z", "payments": 19},
        {"from": "2025-05-19T16:00:00Z", "to": "2025-05-21T08:00:00Z", "payments": 4},
    ]
    assert res.summary["data"]["funding_missing"]["payments"] == 23
    assert any(str(path) in w and "23 of the 8h payments" in w for w in warnings)
