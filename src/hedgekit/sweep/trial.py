"""One trial: a config backtested on one data set (or one time window of it) -> a row of metrics.

A trial is exactly ``hedgekit backtest`` (``engine.session.run_backtest`` on the same loaded
data), reduced to the figures of its ``summary.json`` plus Sharpe and Calmar of the summed
equity curve: a row of the results equals a separate backtest with that setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hedgekit.config import BacktestConfig, HedgeWalletConfig, LongWalletConfig
from hedgekit.core.unit_spec import UnitMode
from hedgekit.engine.memo import same_arrays
from hedgekit.engine.session import LoadedData, run_backtest
from hedgekit.report.metrics import (
    cagr,
    max_drawdown,
    periods_per_year,
    sharpe_ratio,
    simple_returns,
)

__all__ = ["METRICS", "OBJECTIVES", "Objective", "Task", "dearest_first", "evaluate", "expected_cost", "run_task",
           "window"]


@dataclass(frozen=True, slots=True)
class Objective:
    name: str
    metric: str  # column of the results
    direction: str  # "maximize" | "minimize"
    label: str


OBJECTIVES: dict[str, Objective] = {
    "return": Objective("return", "return_pct", "maximize", "return %"),
    "max_drawdown": Objective("max_drawdown", "max_drawdown_pct", "minimize", "max drawdown %"),
    "sharpe": Objective("sharpe", "sharpe", "maximize", "Sharpe"),
    "calmar": Objective("calmar", "calmar", "maximize", "Calmar"),
    "return_fees": Objective("return_fees", "return_per_fee", "maximize", "return / fees"),
}

# Columns of a trial's row, in this order (per-wallet figures follow as wallet.<name>.<metric>).
METRICS = ("return_pct", "max_drawdown_pct", "sharpe", "calmar", "return_per_fee", "fees", "funding",
           "fills", "resets", "end_equity", "buy_and_hold_return_pct", "liquidated", "coarse_bars",
           "opposite_return_pct", "bars", "start", "end")


@dataclass(frozen=True, slots=True)
class Task:
    """What a worker runs: ``cfg`` on data set ``dataset`` between ``start`` and ``end`` (ms,
    end exclusive; None = the whole set). ``key`` comes back with the row."""

    key: Any
    cfg: BacktestConfig
    dataset: int = 0
    start: int | None = None
    end: int | None = None


_periods_per_year = same_arrays(periods_per_year)  # of the same bars, trial after trial


def window(loaded: LoadedData, start: int | None, end: int | None) -> LoadedData:
    """The bars ``start <= ts < end`` of a loaded data set (shares memory). Funding payments
    outside the bars are never applied by the engine, so the funding series is kept whole."""
    if start is None and end is None:
        return loaded
    key = (id(loaded), start, end)
    hit = _windows.get(key)
    if hit is not None and hit[0] is loaded:
        return hit[1]
    part = replace(loaded, candles=loaded.candles.slice(start, end))
    if len(_windows) >= 16:  # a walk-forward has a few windows, each asked again and again
        _windows.pop(next(iter(_windows)))
    _windows[key] = (loaded, part)  # the same window object for a worker's next trial
    return part


_windows: dict[tuple[int, int | None, int | None], tuple[LoadedData, LoadedData]] = {}


def _num(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def evaluate(cfg: BacktestConfig, loaded: LoadedData) -> dict[str, Any]:
    """Backtest ``cfg`` on ``loaded`` and return the trial's metrics."""
    result = run_backtest(cfg, loaded=loaded, frames=False)
    s = result.summary
    total = s["total"]
    ts = result.engine.bars.ts
    curve = np.zeros(len(ts))
    for w in result.engine.wallets:
        curve += w.equity
    start_eq = float(total["start_equity"])
    full = np.concatenate([[start_eq], curve])
    ppy = _periods_per_year(ts)
    years = (len(ts) / ppy) if ppy else 0.0
    mdd = max_drawdown(full)
    growth = cagr(start_eq, float(full[-1]), years) if years > 0 else None
    fees = float(total["fees"])
    dq = s.get("data_quality") or {}
    coarse = any(c.get("coarse") for c in (dq.get("coarse_bars") or {}).values())
    opposite = (dq.get("opposite_intrabar") or {}).get("total") or {}
    row: dict[str, Any] = {
        "return_pct": float(total["return_pct"]),
        "max_drawdown_pct": float(total["max_drawdown_pct"]),
        "sharpe": _num(sharpe_ratio(simple_returns(full), ppy)),
        "calmar": _num(growth / mdd) if growth is not None and mdd > 0 else None,
        "return_per_fee": float(total["end_equity"] - start_eq) / fees if fees > 0 else None,
        "fees": fees,
        "funding": float(total["funding"]),
        "fills": int(total["fills"]),
        "resets": int(total["resets"]),
        "end_equity": float(total["end_equity"]),
        "buy_and_hold_return_pct": float(total["buy_and_hold_return_pct"]),
        "liquidated": any(bool(w.get("liquidated")) for w in s["wallets"].values()),
        "coarse_bars": coarse,
        "opposite_return_pct": _num(opposite.get("return_pct")),
        "bars": int(s["data"]["bars"]),
        "start": s["data"]["start"],
        "end": s["data"]["end"],
    }
    for name, w in s["wallets"].items():
        row[f"wallet.{name}.return_pct"] = float(w["return_pct"])
        row[f"wallet.{name}.max_drawdown_pct"] = float(w["max_drawdown_pct"])
    return row


def expected_cost(task: Task, datasets: list[LoadedData]) -> float:
    """A trial's cost relative to the others' (a ranking, not seconds): its bars times the unit
    levels a price move crosses, about 1 / (unit as a fraction of the price), summed over the
    unit wallets. A unit 10x smaller costs about 10x more."""
    c = datasets[task.dataset].candles
    lo = 0 if task.start is None else int(np.searchsorted(c.ts, task.start, side="left"))
    hi = len(c) if task.end is None else int(np.searchsorted(c.ts, task.end, side="left"))
    if hi <= lo:
        return 0.0
    price = float(c.open[lo])
    levels = 0.0
    for w in task.cfg.wallets:
        if not isinstance(w, LongWalletConfig | HedgeWalletConfig):
            levels += 1.0  # a grid hedge: its spacing is not a unit; one level, like a 100 % unit
            continue
        spec = w.unit.spec()
        if spec.mode is UnitMode.FIXED:
            frac = spec.value / price
        elif spec.mode is UnitMode.ATR:  # ~ the median bar range, from the first bars
            k = min(hi, lo + 10_000)
            frac = spec.value * float(np.median(c.high[lo:k] - c.low[lo:k])) / price
        else:
            frac = spec.value
        levels += 1.0 / max(frac, 1e-9)
    return (hi - lo) * levels


def dearest_first(tasks: list[Task], datasets: list[LoadedData]) -> list[Task]:
    """The tasks, dearest first (longest processing time first): the workers then finish on
    the cheapest trials, together, instead of one running a slow trial alone at the end."""
    costs = [expected_cost(t, datasets) for t in tasks]
    order = sorted(range(len(tasks)), key=lambda i: -costs[i])  # stable: ties keep their order
    return [tasks[i] for i in order]


def run_task(task: Task, datasets: list[LoadedData]) -> dict[str, Any]:
    """A task's metrics, or ``{"error": message}`` when the backtest refuses the setting (a
    trial that cannot run is a result of the sweep, not the end of it)."""
    from hedgekit.core.errors import HedgekitError

    loaded = window(datasets[task.dataset], task.start, task.end)
    try:
        return evaluate(task.cfg, loaded)
    except (HedgekitError, ValueError) as err:
        return {"error": f"{type(err).__name__}: {err}"}

