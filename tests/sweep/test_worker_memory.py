"""A sweep worker keeps nothing from one trial to the next (issue 13, item 6): the memory its
trials leave behind stays flat however many it runs (``benchmarks/bench_sweep.py`` prints the
workers' resident memory after their 5th and their last trial). Counted with tracemalloc (every Python
and numpy allocation), so the check does not depend on the allocator or the machine."""

from __future__ import annotations

import gc
import tracemalloc

from hedgekit.cli import example_path
from hedgekit.config import load_config
from hedgekit.sweep.grid import load_datasets, sweep_points
from hedgekit.sweep.params import parse_params
from hedgekit.sweep.runner import measured_task
from hedgekit.sweep.trial import Task


def test_memory_left_after_a_trial_does_not_grow_with_the_trials():
    cfg = load_config(example_path("dual_wallet.yaml"))
    data = [d.loaded for d in load_datasets(cfg, None, "2025-05-05", "2025-05-12")]  # a week of the bundled month
    specs = parse_params(["wallets.*.unit.value=0.004,0.008,0.016", "wallets.long.leverage=1,3"])
    _, configs = sweep_points(cfg, specs, None, seed=0)
    left: list[int] = []  # bytes still allocated after each trial
    tracemalloc.start()
    try:
        for i in range(24):
            row, _ = measured_task(Task(i, configs[i % len(configs)]), data)  # what a Ray worker runs
            assert "error" not in row and row["fills"] > 0
            del row
            gc.collect()
            left.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    # After a warm-up (first imports, caches filled), every further trial leaves nothing: a
    # leaked result alone (its per-bar equity curves) would be ~0.3 MB a trial.
    growth = left[-1] - left[5]
    assert growth < 200_000, [round(b / 1e3) for b in left]
