"""PAPER throughput and tick->decision latency against the backtest of the same config.

The longest 1m file in ../shared/data (ETHUSDT, 60,191 real Binance USD-M bars), the dual
wallet with 0.2 % units: PAPER replays it through the live engine (journal writes and
checkpoints included) and the fast backtest runs it; prints both times, their ratio (issue 15's
target: PAPER within 5x the backtest) and the per-input latency percentiles. Benchmarks print;
they never assert timings.

Options: ``--bars N`` replays only the first N bars (both sides), for a quick look while
iterating; ``--profile FILE`` writes a cProfile of the PAPER replay (pstats format).
"""

from __future__ import annotations

import argparse
import cProfile
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from loguru import logger

from hedgekit.cli import example_path
from hedgekit.config import load_config
from hedgekit.engine.live import LiveEngine
from hedgekit.engine.session import load_data, run_backtest
from hedgekit.feeds.replay import ReplayFeed
from hedgekit.store.journal import Journal


def _data_dir() -> Path:
    """``../shared/data`` next to the checkout (a git worktree may sit a level deeper)."""
    here = Path(__file__).resolve().parents[1]
    for root in (here, *here.parents):
        found = root.parent / "shared" / "data" / "typhonun_DcaTpStrategy"
        if found.is_dir():
            return found
    return here.parent / "shared" / "data" / "typhonun_DcaTpStrategy"


DATA = _data_dir()
CANDLES = DATA / "ETH_USDT_USDT-1m-futures.feather"


def config():
    cfg = load_config(example_path("dual_wallet.yaml"))
    wallets = [w.model_copy(update={"unit": w.unit.model_copy(update={"value": 0.002})}) for w in cfg.wallets]
    inst = cfg.instrument.model_copy(update={"symbol": "ETHUSDT", "tick_size": 0.01, "min_notional": 20})
    funding = cfg.venue.funding.model_copy(update={"file": str(DATA / "ETH_USDT_USDT-8h-funding_rate.feather")})
    return cfg.model_copy(update={"wallets": wallets, "instrument": inst,
                                  "venue": cfg.venue.model_copy(update={"funding": funding})})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=None, help="replay only the first N bars")
    ap.add_argument("--profile", type=Path, default=None, help="write a cProfile of the PAPER replay here")
    args = ap.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    if not CANDLES.exists():
        print(f"skipped: {CANDLES} is not there")
        return 0
    cfg = config()
    end = None
    if args.bars is not None:
        full = ReplayFeed(CANDLES, speed=None)
        if args.bars < full.end_seq - full.first_seq:
            end = int(full.data.ts[full.first_seq + args.bars])  # bars [0, N): end excluded
    loaded = load_data(cfg, str(CANDLES), end=end)
    t0 = time.perf_counter()
    bt = run_backtest(cfg, loaded=loaded)
    bt_s = time.perf_counter() - t0

    feed = ReplayFeed(CANDLES, speed=None, end=end)
    items = [feed._item(i) for i in range(feed.first_seq, feed.end_seq)]
    lat = np.empty(len(items))
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal.open(Path(tmp) / "bench.db")
        engine = LiveEngine(cfg, mode="paper", journal=journal, source=f"replay:{CANDLES}",
                            funding=loaded.funding, printer=lambda _line: None)
        engine.open(0)
        prof = cProfile.Profile() if args.profile is not None else None
        if prof is not None:
            prof.enable()
        t0 = time.perf_counter()
        for k, item in enumerate(items):
            t = time.perf_counter()
            engine.process(item)
            lat[k] = time.perf_counter() - t
        engine.shutdown()
        paper_s = time.perf_counter() - t0
        if prof is not None:
            prof.disable()
            prof.dump_stats(args.profile)
        fills = sum(len(journal.fills(engine.run_id, w.name)) for w in engine.wallets)
        engine.release_lease()
        journal.close()
    p50, p99, worst = np.percentile(lat, 50) * 1e6, np.percentile(lat, 99) * 1e6, lat.max() * 1e3
    print(f"ETHUSDT 1m (real, {len(items):,} bars), dual wallet, 0.2 % units, journal: SQLite file")
    print(f"  backtest  {bt_s:8.2f} s   {len(bt.fills):,} fills")
    print(f"  PAPER     {paper_s:8.2f} s   {fills:,} fills   {len(items) / paper_s:,.0f} inputs/s")
    print(f"  ratio     {paper_s / bt_s:8.1f}x   (target <= 5x)")
    print(f"  latency per input: p50 {p50:,.0f} us, p99 {p99:,.0f} us, worst {worst:,.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
