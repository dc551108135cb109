"""Backtest output pinned byte for byte: fills.csv and orders.csv of every example on every
1m/5m file of ../shared/data/typhonun_DcaTpStrategy and on the SYNTHETIC coin-year of make bench (seeded
random walk), compared with sha256 hashes written by the code before the exchange-port
redesign. A refactoring that changes one fill fails here.

Regenerate only for an intended behaviour change, and say why in the commit:
    .venv/bin/python -m tests.engine.test_golden --write
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from hedgekit.cli import example_path
from hedgekit.config import load_config
from hedgekit.engine import backtest as engine
from hedgekit.engine.session import LoadedData, load_data, run_backtest
from hedgekit.feeds.synthetic import random_walk_candles

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "typhonun_DcaTpStrategy"
HASHES = Path(__file__).with_name("golden") / "hashes.json"
EXAMPLES = ["long_wallet", "hedge_wallet", "dual_wallet", "grid_hedge"]
FILES = ["BTC_USDT_USDT-1m-futures.feather", "BTC_USDT_USDT-5m-futures.feather",
         "ETH_USDT_USDT-1m-futures.feather", "ETH_USDT_USDT-5m-futures.feather"]
SYNTHETIC = "synthetic-year"
CASES = [(ex, f) for ex in EXAMPLES for f in [*FILES, SYNTHETIC]]


def _config(example: str, data: str):
    cfg = load_config(example_path(f"{example}.yaml"))
    venue = cfg.venue
    if data == SYNTHETIC:
        venue = venue.model_copy(update={"funding": venue.funding.model_copy(update={"file": None, "rate": 0.0001})})
    elif data.startswith("ETH"):
        funding = venue.funding.model_copy(update={"file": str(SHARED / "ETH_USDT_USDT-8h-funding_rate.feather")})
        venue = venue.model_copy(update={"funding": funding})
        cfg = cfg.model_copy(update={"instrument": cfg.instrument.model_copy(
            update={"symbol": "ETHUSDT", "tick_size": 0.01, "min_notional": 20})})
    return cfg.model_copy(update={"venue": venue})


def _loaded(cfg, data: str) -> LoadedData:
    if data != SYNTHETIC:
        return load_data(cfg, str(SHARED / data))
    candles = random_walk_candles(525_600, seed=7)  # the bench's coin-year
    step = 8 * 3_600_000
    fts = np.arange((int(candles.ts[0]) // step + 1) * step, int(candles.ts[-1]) + 1, step, dtype=np.int64)
    return LoadedData(candles, engine.Funding(fts, np.full(len(fts), 0.0001)), "constant 0.0001")


def digests(example: str, data: str, out: Path) -> dict[str, str]:
    cfg = _config(example, data)
    folder = run_backtest(cfg, loaded=_loaded(cfg, data)).write(out)
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
            for name in ("fills.csv", "orders.csv")}


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside the repo")
@pytest.mark.parametrize(("example", "data"), CASES)
def test_output_is_byte_identical_to_the_pinned_run(example, data, tmp_path):
    expected = json.loads(HASHES.read_text())[f"{example}/{data}"]
    assert digests(example, data, tmp_path) == expected


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import tempfile

    from loguru import logger

    logger.remove()
    with tempfile.TemporaryDirectory() as tmp:
        pinned = {f"{ex}/{d}": digests(ex, d, Path(tmp) / f"{ex}-{d}") for ex, d in CASES}
    HASHES.write_text(json.dumps(pinned, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(pinned)} cases to {HASHES}")
