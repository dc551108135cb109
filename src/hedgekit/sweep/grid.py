"""``hedgekit sweep``: every point of a Cartesian product (or N random points) of config fields,
on one or more data sets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hedgekit.config import BacktestConfig
from hedgekit.engine.session import LoadedData, load_data
from hedgekit.sweep.params import ParamSpec, check_points, grid_points, random_points
from hedgekit.sweep.runner import Executor
from hedgekit.sweep.trial import Task

__all__ = ["Dataset", "OnResult", "load_datasets", "run_sweep", "sweep_points"]

# (trials done, trials in all, the row just finished)
OnResult = Callable[[int, int, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Dataset:
    """A data set as the user gave it (``--data``, ``--from``, ``--to``) and as loaded."""

    label: str
    data: str | None
    start: str | None
    end: str | None
    loaded: LoadedData

    def meta(self) -> dict[str, Any]:
        c = self.loaded.candles
        return {"label": self.label, "data": self.data, "start": self.start, "end": self.end,
                "file": str(c.path), "bars": len(c), "sha256": c.sha256}


def load_datasets(cfg: BacktestConfig, data: list[str] | None, start: str | None, end: str | None) -> list[Dataset]:
    out: list[Dataset] = []
    values: list[str | None] = list(data) if data else [None]
    for value in values:
        loaded = load_data(cfg, value, start, end)
        label = Path(value).name if value else Path(str(loaded.candles.path)).name
        if any(d.label == label for d in out):
            label = f"{label}#{len(out)}"
        out.append(Dataset(label, value, start, end, loaded))
    return out


def sweep_points(cfg: BacktestConfig, specs: list[ParamSpec], samples: int | None, seed: int) -> tuple[list[dict], list[BacktestConfig]]:
    points = random_points(specs, samples, seed) if samples else grid_points(specs)
    return points, check_points(cfg, specs, points)


def run_sweep(
    points: list[dict[str, Any]],
    configs: list[BacktestConfig],
    datasets: list[Dataset],
    executor: Executor,
    on_result: OnResult | None = None,
    first_trial: int = 0,
) -> list[dict[str, Any]]:
    """One row per point and data set: ``trial`` (numbered from ``first_trial``), ``dataset``,
    the params, the metrics."""
    tasks = [Task((t, d), c, d) for t, c in enumerate(configs) for d in range(len(datasets))]
    rows = []
    for task, metrics in executor.run(tasks):
        t, d = task.key
        row = {"trial": first_trial + t, "dataset": datasets[d].label, **points[t], **metrics}
        rows.append(row)
        if on_result is not None:
            on_result(len(rows), len(tasks), row)
    return rows
