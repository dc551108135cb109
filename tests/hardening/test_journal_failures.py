"""A journal write that fails (one injected database error, at each kind of write) loses no
fill: the run stops with the journal's error, nothing more is written, and the resumed run
ends with exactly the fills and positions of a run that never failed. (Issue 15, item 1.)"""

from __future__ import annotations

import pytest

from hedgekit.config import load_config
from hedgekit.store.journal import Journal, JournalError
from tests.engine.test_live import busy_config, paper, slice_csv

WRITES = ["commit_batch", "record_intent"]


def _fail_once(monkeypatch, method: str, at_call: int) -> list[int]:
    """Make Journal.<method> fail with a database error on its ``at_call``-th call."""
    real = getattr(Journal, method)
    calls = [0]

    def flaky(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == at_call:  # what Journal._write makes of sqlite's SQLITE_FULL
            raise JournalError(f"journal {self.location}: {method} failed (database or disk is full)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Journal, method, flaky)
    return calls


def _journaled(db, run_id: int) -> tuple:
    with Journal.open(db, readonly=True) as j:
        fills = {w: [(f.fill_id, f.qty, f.price, f.fee, f.position) for f in j.fills(run_id, w)] for w in ("long", "hedge")}
        status = {s.wallet: s.position for s in j.wallet_status(run_id)}
        from_fills = {w: j.position_from_fills(run_id, w) for w in ("long", "hedge")}
    return fills, status, from_fills


@pytest.mark.parametrize("method", WRITES)
@pytest.mark.parametrize("at_call", [3, 60])
def test_a_failed_journal_write_loses_no_fill(tmp_path, monkeypatch, method, at_call):
    cfg = load_config(busy_config(tmp_path))
    data = slice_csv(tmp_path, 1)

    clean_db = tmp_path / "clean.db"
    with Journal.open(clean_db) as j:
        reference = _journaled(clean_db, paper(cfg, j, data).run_id)
    assert sum(len(f) for f in reference[0].values()) > 50

    db = tmp_path / "failing.db"
    calls = _fail_once(monkeypatch, method, at_call)
    with Journal.open(db) as j, pytest.raises(JournalError, match="disk is full"):
        paper(cfg, j, data)
    assert calls[0] == at_call, "nothing is written after the failed write"
    monkeypatch.undo()

    with Journal.open(db) as j:  # the same command again: resumes from the last commit
        run_id = paper(cfg, j, data).run_id
        assert len(j.runs()) == 1
    fills, status, from_fills = _journaled(db, run_id)
    assert fills == reference[0]
    assert status == reference[1]
    assert from_fills == pytest.approx(status, abs=1e-9)  # a sum of fills: float rounding only
