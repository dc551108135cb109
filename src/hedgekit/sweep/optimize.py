"""``hedgekit optimize``: optuna searches the params on the train part of each walk-forward
window and the best settings are scored on the test part that follows, so the headline
figures are out-of-sample, with the in-sample ones beside them.

Windows: ``train`` and ``test`` lengths; window k trains on ``[t0 + k·test, t0 + k·test + train)``
and tests on the ``test`` that follows; only whole windows inside the data are used.

Multi-objective (return and max drawdown by default): each window's study keeps a Pareto front;
every front setting is scored out-of-sample, and the window's *selected* setting (the one the
walk-forward figure chains) is the front setting with the best first objective in-sample.

Resuming: each window is its own optuna study in ``storage`` (SQLite in the output folder by
default), named from a hash of what is optimized; a rerun of the same command loads them,
keeps every finished trial, re-runs with the same params the trials a killed run left
unfinished, and runs only the trials still missing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hedgekit.config import BacktestConfig
from hedgekit.core.errors import HedgekitError
from hedgekit.sweep.grid import Dataset
from hedgekit.sweep.params import ParamSpec, apply_params, resolve_path
from hedgekit.sweep.runner import Executor
from hedgekit.sweep.trial import OBJECTIVES, Objective, Task

__all__ = ["Window", "parse_duration", "parse_objectives", "run_optimize", "study_key", "walk_forward"]

DAY_MS = 86_400_000
_UNITS = {"m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}
OnResult = Callable[[int, int, dict[str, Any], str], None]


def storage_url(value: str | None, out_dir) -> str:
    """``--storage``: None -> SQLite ``OUT/optuna.db``; ``journal`` or ``journal:DB`` -> the
    journal's database (``./state/hedgekit.db`` or DB, a path or URL as for ``--db``), opened
    (created) as a journal first so that it stays one; anything else an SQLAlchemy URL."""
    from pathlib import Path

    if value is None:
        return f"sqlite:///{(Path(out_dir) / 'optuna.db').resolve()}"
    if value == "journal" or value.startswith("journal:"):
        from hedgekit.store.journal import Journal, _sqlite_path

        db = value.removeprefix("journal").removeprefix(":") or None
        Journal.open(db).close()  # created or checked: optuna's tables go beside a valid journal
        path, url = _sqlite_path(db)
        return f"sqlite:///{path.resolve()}" if path is not None else url
    if "://" not in value:
        raise HedgekitError(f"--storage {value!r}: give an SQLAlchemy URL (sqlite:///file.db, "
                            "postgresql://...), or `journal` / `journal:DB` for the journal's database")
    return value


def parse_duration(text: str, option: str) -> int:
    """``90d``, ``12h``, ``2w``, ``30m`` -> milliseconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*", text or "")
    if not m:
        raise HedgekitError(f"{option} {text!r}: write a length like 90d, 12h, 2w or 30m")
    ms = int(float(m.group(1)) * _UNITS[m.group(2)])
    if ms <= 0:
        raise HedgekitError(f"{option} {text!r}: must be longer than zero")
    return ms


@dataclass(frozen=True, slots=True)
class Window:
    index: int
    train_start: int
    train_end: int  # = test start
    test_end: int

    def as_dict(self) -> dict[str, Any]:
        from hedgekit.report.results import iso_ms

        iso = [str(s) for s in iso_ms([self.train_start, self.train_end, self.test_end])]
        return {"window": self.index, "train_start": iso[0], "train_end": iso[1], "test_start": iso[1],
                "test_end": iso[2]}


def walk_forward(first_ts: int, end_ts: int, train: int, test: int) -> list[Window]:
    """Rolling windows over ``[first_ts, end_ts)``."""
    out = []
    k = 0
    while first_ts + k * test + train + test <= end_ts:
        a = first_ts + k * test
        out.append(Window(k, a, a + train, a + train + test))
        k += 1
    if not out:
        days = (end_ts - first_ts) / DAY_MS
        raise HedgekitError(
            f"--train {train / DAY_MS:g}d + --test {test / DAY_MS:g}d is longer than the data ({days:.1f} days): "
            "shorten them or give more data")
    return out


def parse_objectives(names: list[str] | None) -> list[Objective]:
    names = names or ["return", "max_drawdown"]
    out = []
    for n in names:
        if n not in OBJECTIVES:
            raise HedgekitError(f"--objective {n!r}: choose from {', '.join(OBJECTIVES)}")
        if OBJECTIVES[n] in out:
            raise HedgekitError(f"--objective {n} is given twice")
        out.append(OBJECTIVES[n])
    return out


def _distribution(spec: ParamSpec):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not spec.is_range or spec.count:
        return CategoricalDistribution(list(spec.points()))
    if spec.integer:
        return IntDistribution(int(spec.low), int(spec.high), log=spec.log)  # type: ignore[arg-type]
    return FloatDistribution(float(spec.low), float(spec.high), log=spec.log)  # type: ignore[arg-type]


def study_key(cfg: BacktestConfig, specs: list[ParamSpec], objectives: list[Objective],
              dataset: Dataset, windows: list[Window], seed: int) -> str:
    """Hash of everything that defines the studies: the same command resumes the same studies."""
    blob = json.dumps({
        "config": cfg.model_dump(mode="json"), "params": [repr(s) for s in specs],
        "objectives": [o.name for o in objectives], "data": dataset.loaded.candles.sha256,
        "bars": len(dataset.loaded.candles), "windows": [(w.train_start, w.train_end, w.test_end) for w in windows],
        "seed": seed,
    }, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _recover(study, objectives: list[Objective]) -> int:
    """Trials a killed run left RUNNING. One whose row was stored before the kill is finished
    with it; the others are marked failed (``interrupted``) and asked again with the same
    params. Returns how many are asked again."""
    from optuna.trial import TrialState

    again = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        row = t.user_attrs.get("row")
        if row is not None:
            values = None if "error" in row else [row.get(o.metric) for o in objectives]
            if values is None or any(v is None for v in values):
                study.tell(t.number, state=TrialState.FAIL)
            else:
                study.tell(t.number, values)
            continue
        study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
        again += 1
    return again


def _finished(study) -> list:
    """Trials that count as done: complete, or failed because the setting was refused."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE
            or (t.state == TrialState.FAIL and "row" in t.user_attrs and "interrupted" not in t.user_attrs)]


@dataclass(slots=True)
class OptimizeRun:
    rows: list[dict[str, Any]]
    windows: list[dict[str, Any]]  # per window: bounds, selected setting, in- and out-of-sample figures
    resumed: dict[int, int]  # window -> trials found finished in storage at start
    retried: int


def run_optimize(
    cfg: BacktestConfig,
    specs: list[ParamSpec],
    dataset: Dataset,
    executor: Executor,
    *,
    trials: int,
    objectives: list[Objective],
    windows: list[Window],
    storage: str,
    study_name: str,
    seed: int = 42,
    on_result: OnResult | None = None,
) -> OptimizeRun:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = cfg.model_dump(mode="json")
    for s in specs:
        resolve_path(base, s.path)
    dists = {s.path: _distribution(s) for s in specs}
    directions: list[Any] = [o.direction for o in objectives]  # "minimize" / "maximize"
    rows: list[dict[str, Any]] = []
    summaries: list[dict[str, Any]] = []
    resumed: dict[int, int] = {}
    retried = 0
    total = trials * len(windows)
    done_all = 0
    for w in windows:
        sampler = optuna.samplers.TPESampler(seed=seed + w.index, n_startup_trials=max(4, min(10, trials // 3)))
        study = optuna.create_study(study_name=f"{study_name}-w{w.index}", storage=storage, directions=directions,
                                    sampler=sampler, load_if_exists=True)
        retried += _recover(study, objectives)
        finished = len(_finished(study))
        resumed[w.index] = finished
        done_all += min(finished, trials)
        label = f"window {w.index + 1}/{len(windows)} train"
        while (missing := trials - len(_finished(study))) > 0:
            by_number: dict[int, Any] = {}
            refused: list[int] = []
            # Asked one at a time as workers free up (not in batches a worker waits out).
            for task, row in executor.stream(_asked(study, dists, cfg, base, w, missing, by_number, refused)):
                done_all += len(refused)
                refused.clear()
                t = by_number.pop(task.key)
                values: list[Any] | None = None if "error" in row else [row.get(o.metric) for o in objectives]
                if values is not None and any(v is None for v in values):
                    bad = [o.label for o, v in zip(objectives, values, strict=True) if v is None]
                    row = {**row, "error": f"objective undefined: {', '.join(bad)}"}
                    values = None
                study._storage.set_trial_user_attr(t._trial_id, "row", row)
                if values is None:
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(t, values)
                done_all += 1
                if on_result is not None:
                    on_result(done_all, total, {**dict(t.params), **row}, label)
            done_all += len(refused)
        summaries.append(_score_window(study, cfg, base, w, executor, objectives, rows, dataset.label))
    return OptimizeRun(rows, summaries, resumed, retried)


def _asked(study, dists, cfg: BacktestConfig, base, w: Window, n: int, by_number: dict[int, Any],
           refused: list[int]) -> Iterator[Task]:
    """``n`` trials asked of ``study``, one at a time, as tasks on the window's train part; a
    point the config refuses is told failed at once (its number goes to ``refused``)."""
    import optuna

    for _ in range(n):
        t = study.ask(dists)
        try:
            trial_cfg = apply_params(cfg, dict(t.params), base)
        except HedgekitError as err:  # a point the config refuses: a failed trial, not the end
            study._storage.set_trial_user_attr(t._trial_id, "row", {"error": str(err)})
            study.tell(t, state=optuna.trial.TrialState.FAIL)
            refused.append(t.number)
            continue
        by_number[t.number] = t
        yield Task(t.number, trial_cfg, 0, w.train_start, w.train_end)


def _score_window(study, cfg, base, w: Window, executor: Executor, objectives: list[Objective],
                  rows: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """Rows of the window's trials (in-sample) and of its Pareto front on the test part
    (out-of-sample; computed once and kept in the study, so a resume does not redo them)."""
    first = objectives[0]
    front = study.best_trials
    front_numbers = {t.number for t in front}
    for t in _finished(study):
        rows.append({"window": w.index, "part": "train", "trial": t.number, "dataset": label, **t.params,
                     **t.user_attrs["row"], "pareto": t.number in front_numbers, "selected": False})
    selected = None
    if front:
        sign = 1 if first.direction == "maximize" else -1
        selected = max(front, key=lambda t: (sign * t.values[0], -t.number))
    oos: dict[str, Any] = dict(study.user_attrs.get("oos") or {})
    todo = [t for t in front if str(t.number) not in oos]
    if todo:
        tasks = [Task(t.number, apply_params(cfg, dict(t.params), base), 0, w.train_end, w.test_end) for t in todo]
        for task, row in executor.run(tasks):
            oos[str(task.key)] = row
        study.set_user_attr("oos", oos)
    for t in front:
        rows.append({"window": w.index, "part": "test", "trial": t.number, "dataset": label, **t.params,
                     **oos[str(t.number)], "pareto": True, "selected": selected is not None and t is selected})
    for r in rows:
        if r["window"] == w.index and r["part"] == "train" and selected is not None and r["trial"] == selected.number:
            r["selected"] = True
    out = w.as_dict()
    out["trials"] = len(_finished(study))
    out["pareto"] = len(front)
    if selected is not None:
        out["selected_trial"] = selected.number
        out["params"] = dict(selected.params)
        out["in_sample"] = {o.metric: selected.user_attrs["row"].get(o.metric) for o in objectives}
        out["out_of_sample"] = {o.metric: oos[str(selected.number)].get(o.metric) for o in objectives}
        for key in ("return_pct", "max_drawdown_pct"):
            out["in_sample"].setdefault(key, selected.user_attrs["row"].get(key))
            out["out_of_sample"].setdefault(key, oos[str(selected.number)].get(key))
    return out
