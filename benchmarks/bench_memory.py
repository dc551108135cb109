"""Peak memory of a backtest of a SYNTHETIC coin-year of 1m bars (525,600 bars, seeded random
walk, not market data), dual wallet (issue 13, item 6: under 500 MB).

Each case runs in its own process and prints that process's peak resident memory:

1. the simulation alone (``run_backtest``, fast path, the result's summary);
2. ``hedgekit backtest`` end to end: the simulation, fills/orders/equity CSVs, report.html;
3. ``hedgekit report`` on that folder: report.html rebuilt from the files alone.

A sweep worker's memory across trials is in ``bench_sweep.py`` (after its 5th and its last
trial) and tested in ``tests/sweep/test_worker_memory.py``. Benchmarks print; they never assert.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET_MB = 500

SIM = """
import sys, resource
sys.path.insert(0, {bench!r})
from loguru import logger
logger.remove()
from bench_sweep import synthetic_year
from hedgekit.cli import example_path
from hedgekit.config import load_config
from hedgekit.engine.session import run_backtest
r = run_backtest(load_config(example_path("dual_wallet.yaml")), loaded=synthetic_year())
print(r.summary["total"]["fills"])
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

WRITE = """
import pandas as pd
from hedgekit.feeds.synthetic import random_walk_candles
c = random_walk_candles(525_600, seed=7)
pd.DataFrame({{"date": pd.to_datetime(c.ts, unit="ms", utc=True), "open": c.open, "high": c.high,
              "low": c.low, "close": c.close, "volume": c.volume}}).to_feather({path!r})
"""


# Runs a module as `python -m` would, then prints the process's own peak RSS (KB on Linux).
PEAK = """
import resource, runpy, sys
sys.argv = {argv!r}
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except SystemExit as e:
    if e.code:
        raise
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_mb(code: str) -> tuple[float, str]:
    """Run ``code`` in a child Python and return its peak RSS (MB) and its last line before."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("PEAK "):
        sys.exit(f"failed:\n{proc.stdout}{proc.stderr}")
    return int(lines[-1].split()[1]) / 1024, lines[-2] if len(lines) > 1 else ""


def main() -> int:
    py = sys.executable
    bench = str(Path(__file__).resolve().parent)
    print("SYNTHETIC coin-year: 525,600 1m bars (seeded random walk, not market data), dual wallet")
    sim_mb, fills = peak_mb(SIM.format(bench=bench))
    print(f"  simulation (run_backtest)   peak {sim_mb:6.0f} MB   ({fills} fills; target < {TARGET_MB} MB)")
    with tempfile.TemporaryDirectory(prefix="hk-bench-mem-") as tmp:
        data = os.path.join(tmp, "SYNTHETIC-year.feather")
        subprocess.run([py, "-c", WRITE.format(path=data)], check=True)
        argv = ["hedgekit.cli", "backtest", "--data", data, "--out", os.path.join(tmp, "out"), "--quiet"]
        full_mb, _ = peak_mb(PEAK.format(argv=argv))
        report_mb, _ = peak_mb(PEAK.format(argv=["hedgekit.cli", "report", os.path.join(tmp, "out")]))
    print(f"  hedgekit backtest (+ CSVs, report.html)  peak {full_mb:6.0f} MB   (target < {TARGET_MB} MB)")
    print(f"  hedgekit report (report.html from the folder)  peak {report_mb:6.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
