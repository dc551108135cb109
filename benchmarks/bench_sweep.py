"""Sweep speed against the machine-independent yardstick (../shared/bench/yardstick.py).

Prints, timed in this process on the same SYNTHETIC coin-year of 1m bars (525,600 bars, seeded
random walk, not market data), dual wallet:

1. the fast path (``run_backtest``, best of 3) as a ratio to the yardstick loop (target <= 0.6x);
2. the reference loop over the fast path (target >= 20x); with the compiled hot path, also the
   pure-Python fast path and reference loop (a HEDGEKIT_PURE=1 child with its own yardstick),
   and the compiled fast path against the reference loop as written, in pure Python: the
   oracle is the plain per-bar loop, and compiling it too would only shrink the ratio;
3. a sweep of N trials (default 1,000: random points of unit size and leverage) on a local Ray
   with 2 CPUs (``PARAMS``), end to end (Ray start-up, data in the object store, every trial, results and
   sweep.html written), as a ratio to the yardstick timed just before and just after it (their
   mean; a warning when they differ by over 20 %) (target <= 300x), and where its time went:
   each phase, the trials' own time (measured in the workers) against the rest, each worker's
   idle time at the end and its resident memory after its 5th and its last trial.

Benchmarks print; they never assert timings. ``--trials 100`` gives a quicker run (the sweep
ratio is then also shown scaled to 1,000 trials).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from loguru import logger

import hedgekit
from hedgekit.cli import example_path
from hedgekit.config import load_config
from hedgekit.engine import backtest as engine
from hedgekit.engine.session import LoadedData, run_backtest
from hedgekit.feeds.synthetic import random_walk_candles

# ../shared beside the clone (a git worktree one level deeper finds the main clone's).
_ROOT = Path(__file__).resolve().parents[1]
YARDSTICK = next((p for p in (_ROOT.parent / "shared" / "bench" / "yardstick.py",
                              _ROOT.parent.parent / "shared" / "bench" / "yardstick.py") if p.is_file()),
                 _ROOT.parent / "shared" / "bench" / "yardstick.py")
# The range of unit sizes (0.5 % ... 5 %, both wallets) and leverage 1 to 3. The cost of
# a trial grows fast as the unit shrinks (more events), so the range sets the sweep's time.
PARAMS = ["wallets.*.unit.value=log:0.005:0.05", "wallets.*.leverage=1,2,3"]


def load_yardstick(path: Path):
    if not path.is_file():
        sys.exit(f"{path}: the yardstick is missing (it lives in ../shared/bench/ beside the repository; "
                 "--yardstick PATH names another copy)")
    spec = importlib.util.spec_from_file_location("yardstick", path)
    ys = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(ys)  # type: ignore[union-attr]
    return ys


def synthetic_year() -> LoadedData:
    candles = random_walk_candles(525_600, seed=7)
    step = 8 * 3_600_000
    fts = np.arange((int(candles.ts[0]) // step + 1) * step, int(candles.ts[-1]) + 1, step, dtype=np.int64)
    return LoadedData(candles, engine.Funding(fts, np.full(len(fts), 0.0001)), "constant 0.0001")


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def sweep_seconds(cfg, loaded: LoadedData, trials: int, cpus: int, out: Path) -> dict:
    """The sweep end to end, and where its time went (s): ``phases`` in order, the workers'
    ``stats`` (one ``TrialStat`` per trial)."""
    from hedgekit.sweep.grid import Dataset, run_sweep, sweep_points
    from hedgekit.sweep.html import build_sweep_report
    from hedgekit.sweep.params import parse_params
    from hedgekit.sweep.results import write_results
    from hedgekit.sweep.runner import RayExecutor

    specs = parse_params(PARAMS)
    t0 = time.perf_counter()
    phases: dict[str, float] = {}
    points, configs = sweep_points(cfg, specs, trials, seed=1)
    datasets = [Dataset("synthetic-year", None, None, None, loaded)]
    ex = RayExecutor([loaded], cpus=cpus)
    with ex:
        phases.update(ex.timings)
        t = time.perf_counter()
        rows = run_sweep(points, configs, datasets, ex)
        phases["trials"] = time.perf_counter() - t
        where = ex.description
        t = time.perf_counter()
    phases["ray shutdown"] = time.perf_counter() - t
    t = time.perf_counter()
    meta = {"kind": "sweep", "command": "benchmarks/bench_sweep.py", "config": "dual_wallet.yaml",
            "params": [s.path for s in specs], "trials": trials, "datasets": [datasets[0].meta()],
            "executor": where, "seconds": time.perf_counter() - t0}
    write_results(out, rows, meta)
    phases["results files"] = time.perf_counter() - t
    t = time.perf_counter()
    build_sweep_report(out)
    phases["sweep.html"] = time.perf_counter() - t
    return {"seconds": time.perf_counter() - t0, "phases": phases, "stats": ex.stats, "where": where,
            "workers": ex.parallel, "errors": sum(1 for r in rows if "error" in r)}


def print_sweep(res: dict, trials: int, t_pre: float, t_post: float) -> None:
    """``t_pre``/``t_post``: the yardstick timed just before and just after the sweep. The ratio
    is to their mean: the machine's speed can change during a sweep of minutes, and either one
    alone would credit or blame the sweep for it."""
    secs, stats, n = res["seconds"], res["stats"], res["workers"]
    t_ys = (t_pre + t_post) / 2
    print(f"  sweep           {secs:8.1f} s   {trials:,} trials of {' '.join(PARAMS)}")
    print(f"                  on {res['where']}, end to end "
          f"({trials / secs:.2f} trials/s, {res['errors']} refused)")
    ratio = secs / t_ys
    print(f"                  ratio to yardstick {ratio:7.1f}x   (target for 1,000 trials <= 300x; yardstick "
          f"{t_pre:.3f} s before the sweep, {t_post:.3f} s after: {secs / t_pre:.0f}x and {secs / t_post:.0f}x)")
    if max(t_pre, t_post) > 1.2 * min(t_pre, t_post):
        print("                  WARNING: the yardstick moved by more than 20 % during the sweep (the machine's "
              "speed changed): the ratio is uncertain, run again on a quiet machine")
    print("                  phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in res["phases"].items()))
    busy = sum(s.seconds for s in stats)
    cpu = sum(s.cpu_seconds for s in stats)
    ideal = busy / n
    print(f"                  trials' own time: {busy:.1f} s wall ({cpu:.1f} s CPU) over {n} workers = "
          f"{ideal:.1f} s; overhead (everything else) {secs - ideal:.1f} s = {(secs - ideal) / secs:.0%} of the sweep")
    tail = res["phases"]["trials"] - ideal
    print(f"                  of which dispatch + idle workers in the trial phase {tail:.1f} s")
    by: dict[int, list] = {}
    for s in stats:
        by.setdefault(s.worker, []).append(s)
    t_end = max(s.finished for s in stats)
    for pid, ss in by.items():
        k = min(5, len(ss))
        print(f"                  worker {pid}: {len(ss)} trials, idle at the end {t_end - ss[-1].finished:.1f} s; "
              f"RSS after trial {k} {ss[k - 1].rss_mb:.0f} MB, after the last {ss[-1].rss_mb:.0f} MB "
              f"(peak {max(s.peak_rss_mb for s in ss):.0f} MB)")
    if trials != 1000:
        per = busy / trials
        print(f"                  scaled to 1,000 trials: ~{(secs - ideal + per * 1000 / n) / t_ys:.0f}x "
              "(the same overhead, the trials' mean time; an estimate)")


def pure_child(yardstick: Path) -> dict[str, float]:
    """Fast path, reference loop and yardstick timed by a pure-Python child (HEDGEKIT_PURE=1)."""
    env = {**os.environ, "HEDGEKIT_PURE": "1"}
    out = subprocess.run([sys.executable, __file__, "--pure-child", "--yardstick", str(yardstick)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _pure_child_main(ys, cfg, loaded: LoadedData) -> int:
    assert not hedgekit.compiled(), "the pure child must run pure Python"
    c = loaded.candles
    before = ys.seconds(c.open, c.high, c.low, c.close)
    run_backtest(cfg, loaded=loaded)
    fast = best_of(lambda: run_backtest(cfg, loaded=loaded), 3)
    after = ys.seconds(c.open, c.high, c.low, c.close)
    ref = best_of(lambda: run_backtest(cfg, loaded=loaded, mode="reference"), 1)
    print(json.dumps({"yardstick": (before + after) / 2, "fast": fast, "reference": ref}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pure-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--trials", type=int, default=1000, help="trials of the sweep (default 1000; 0 skips it)")
    ap.add_argument("--cpus", type=int, default=2, help="Ray CPUs of the sweep (default 2)")
    ap.add_argument("--no-reference", action="store_true", help="skip the reference loop (~15 s)")
    ap.add_argument("--yardstick", type=Path, default=YARDSTICK, help="path of yardstick.py")
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    logger.remove()
    logger.add(sys.stderr, level="ERROR")

    ys = load_yardstick(args.yardstick)
    cfg = load_config(example_path("dual_wallet.yaml"))
    loaded = synthetic_year()
    if args.pure_child:
        return _pure_child_main(ys, cfg, loaded)
    c = loaded.candles
    print(f"SYNTHETIC coin-year: {len(c):,} 1m bars (seeded random walk, not market data), dual wallet")
    print(f"  hot path: {hedgekit.build_mode()}")
    print("  load average at the start {:.2f} {:.2f} {:.2f} on {} CPUs".format(*os.getloadavg(), os.cpu_count()))
    t_before = ys.seconds(c.open, c.high, c.low, c.close)
    run_backtest(cfg, loaded=loaded)  # warm-up (imports, caches)
    t_fast = best_of(lambda: run_backtest(cfg, loaded=loaded), 3)
    t_after = ys.seconds(c.open, c.high, c.low, c.close)
    t_ys = (t_before + t_after) / 2  # timed on both sides of the fast path: drift shows as a spread
    print(f"  yardstick       {t_ys:8.3f} s   (median of 3 runs, {t_before:.3f} s before and {t_after:.3f} s after)")
    print(f"  fast path       {t_fast:8.3f} s   ratio to yardstick {t_fast / t_ys:5.2f}x   (target <= 0.6x)")
    if not args.no_reference:
        t_ref = best_of(lambda: run_backtest(cfg, loaded=loaded, mode="reference"), 1)
        same = "" if not hedgekit.compiled() else " (both compiled)"
        print(f"  reference loop  {t_ref:8.3f} s   fast/reference speed-up {t_ref / t_fast:5.1f}x{same}")
        if hedgekit.compiled():
            # The oracle as written: the reference loop in pure Python, in a child process
            # (one process cannot hold both builds); each side divided by its own yardstick.
            pure = pure_child(args.yardstick)
            ref_ys = pure["reference"] / pure["yardstick"]
            print(f"  pure Python     fast path {pure['fast']:.3f} s = {pure['fast'] / pure['yardstick']:.2f}x "
                  f"its yardstick ({pure['yardstick']:.3f} s), reference loop {pure['reference']:.3f} s")
            print(f"  compiled fast path / pure reference loop  {ref_ys / (t_fast / t_ys):5.1f}x   (target >= 20x)")
        else:
            print("                  (target >= 20x)")
    if args.trials:
        t_pre = ys.seconds(c.open, c.high, c.low, c.close)
        with tempfile.TemporaryDirectory(prefix="hk-bench-sweep-") as tmp:
            res = sweep_seconds(cfg, loaded, args.trials, args.cpus, Path(tmp))
        load = os.getloadavg()
        print_sweep(res, args.trials, t_pre, ys.seconds(c.open, c.high, c.low, c.close))
        print(f"                  load average after the sweep {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
              f"(the machine's other work slows the trials; the ratio is only fair on an idle machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
