"""hedgekit optimize: walk-forward windows, out-of-sample figures, resuming after a SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest

from hedgekit.core.errors import HedgekitError
from hedgekit.sweep.optimize import DAY_MS, parse_duration, parse_objectives, walk_forward
from hedgekit.sweep.results import read_results
from tests.sweep._helpers import HEDGE, run

ARGS = ["optimize", str(HEDGE), "--param", "wallets.hedge.unit.value=log:0.003:0.06",
        "--param", "wallets.hedge.leverage=1:3", "--train", "14d", "--test", "7d", "--trials", "40",
        "--no-ray", "--out", "out"]


def test_walk_forward_windows_roll_by_the_test_length():
    w = walk_forward(0, 30 * DAY_MS, 14 * DAY_MS, 7 * DAY_MS)
    assert [(x.train_start, x.train_end, x.test_end) for x in w] == [
        (0, 14 * DAY_MS, 21 * DAY_MS), (7 * DAY_MS, 21 * DAY_MS, 28 * DAY_MS)]
    with pytest.raises(HedgekitError, match="longer than the data"):
        walk_forward(0, 10 * DAY_MS, 14 * DAY_MS, 7 * DAY_MS)
    assert parse_duration("12h", "--train") == 12 * 3_600_000
    with pytest.raises(HedgekitError, match="like 90d"):
        parse_duration("two weeks", "--train")
    assert [o.name for o in parse_objectives(None)] == ["return", "max_drawdown"]
    with pytest.raises(HedgekitError, match="choose from"):
        parse_objectives(["profit"])


def _finished(db) -> dict[tuple[int, int], tuple]:
    """(study, trial number) -> (state, values) of every finished trial."""
    with sqlite3.connect(db, timeout=10) as con:
        rows = con.execute(
            "SELECT t.study_id, t.number, t.state, group_concat(v.value) FROM trials t "
            "LEFT JOIN trial_values v ON v.trial_id = t.trial_id "
            "WHERE t.state = 'COMPLETE' GROUP BY t.trial_id").fetchall()
    return {(s, n): (st, vals) for s, n, st, vals in rows}


def test_optimize_resumes_after_sigkill_without_redoing_finished_trials(tmp_path):
    db = tmp_path / "out" / "optuna.db"
    proc = run(tmp_path, *ARGS)
    deadline = time.monotonic() + 120
    before: dict = {}
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            before = _finished(db) if db.exists() else {}
        except sqlite3.OperationalError:  # tables not created yet, or busy
            before = {}
        if len(before) >= 8:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    before = _finished(db)
    assert 8 <= len(before) < 80, f"not killed midway ({len(before)} trials done): {proc.stdout.read()}"

    again = run(tmp_path, *ARGS)
    output, _ = again.communicate(timeout=240)
    assert again.returncode == 0, output
    assert "resumed: window 1:" in output
    after = _finished(db)
    assert all(after[k] == v for k, v in before.items())  # kept, not redone
    per_study: dict[int, int] = {}
    for s, _n in after:
        per_study[s] = per_study.get(s, 0) + 1
    assert sorted(per_study.values()) == [40, 40]

    df, meta = read_results(tmp_path / "out")
    assert len(meta["windows_result"]) == 2
    for w in meta["windows_result"]:
        assert w["trials"] == 40 and w["out_of_sample"]["return_pct"] is not None
        assert w["in_sample"]["return_pct"] is not None
    test = df[df["part"] == "test"]
    assert len(test) >= 2 and test["selected"].sum() == 2 and test["pareto"].all()
    assert (df[df["part"] == "train"].groupby("window").size() == 40).all()
    # The test parts are the week after each train part.
    assert sorted(test.groupby("window")["start"].first().str[:10]) == ["2025-05-18", "2025-05-25"]
    assert "Out-of-sample return" in (tmp_path / "out" / "sweep.html").read_text()


def test_studies_in_the_journal_database(tmp_path):
    from hedgekit.store.journal import Journal

    db = tmp_path / "state" / "j.db"
    args = [a for a in ARGS if a != "40"]
    args[args.index("--trials") + 1:args.index("--trials") + 1] = ["4"]
    proc = run(tmp_path, *args, "--storage", f"journal:{db}", "--quiet")
    output, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, output
    Journal.open(db, readonly=True).close()  # still a valid journal
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0] == 8
    bad = run(tmp_path, *args, "--storage", "optuna.db", "--quiet")
    output, _ = bad.communicate(timeout=240)
    assert bad.returncode == 2 and "give an SQLAlchemy URL" in " ".join(output.split())


def test_ray_stream_draws_a_task_only_as_a_worker_frees_up(monkeypatch):
    """optimize asks optuna for a trial when a worker frees up, after the results so far were
    handed back: never more than two trials per worker drawn ahead of the results."""
    import numpy as np

    from hedgekit.config import load_config
    from hedgekit.engine import backtest as engine
    from hedgekit.engine.session import LoadedData
    from hedgekit.feeds.synthetic import random_walk_candles
    from hedgekit.sweep.runner import RayExecutor
    from hedgekit.sweep.trial import Task
    from tests.sweep._helpers import ray_env

    for k, v in ray_env().items():
        monkeypatch.setenv(k, v)
    cfg = load_config(HEDGE)
    loaded = LoadedData(random_walk_candles(2_000, seed=3), engine.Funding(np.empty(0, np.int64), np.empty(0)), "none")
    drawn: list[int] = []

    def tasks():
        for i in range(10):
            drawn.append(i)
            yield Task(i, cfg)

    seen = []
    with RayExecutor([loaded], cpus=2) as ex:
        for got, (task, row) in enumerate(ex.stream(tasks()), start=1):
            assert "error" not in row, row
            assert len(drawn) <= 2 * ex.parallel + got - 1  # drawn lazily, one per result handed back
            seen.append(task.key)
    assert sorted(seen) == list(range(10))
