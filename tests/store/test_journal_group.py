"""Group commit (PAPER replays) and the order lifecycle the journal enforces.

Deferred intents and batches are written together, in their order, with each wallet's
checkpoint made when the group is written: the journal ends exactly as with one transaction
per intent and per batch; nothing of a group is visible or kept before it is written."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from hedgekit.core.orders import OrderKind, OrderSpec, OrderStatus, OrderType, Side
from hedgekit.core.records import FillRecord, OrderLogRecord
from hedgekit.store import Journal, JournalError
from hedgekit.store.journal import Checkpoint

from .test_journal import SCRIPT, TINY, SimWallet, W, new_run, run_script


class _DeferredIntents:
    """What SimWallet.process sees as the journal: intents queued, not committed."""

    def __init__(self, j: Journal) -> None:
        self.j = j

    def record_intent(self, *args, **kwargs) -> None:
        self.j.record_intent(*args, **kwargs, durable=False)


def _contents(j: Journal, run_id: int) -> tuple:
    return (j.orders(run_id, W), j.fills(run_id, W), j.order_events(run_id, W), j.phases(run_id, W),
            j.wallet_status(run_id))


def _deferred(j: Journal, run_id: int, wallet: SimWallet, cursors: range) -> list[int]:
    """Process ``cursors`` with group commit; the checkpoint source reports each time it is
    asked (the cursor the wallet had reached then)."""
    asked: list[int] = []
    for c in cursors:
        batch = wallet.process(_DeferredIntents(j), run_id, c)  # type: ignore[arg-type]

        def now(c: int = c) -> Checkpoint:
            asked.append(c)
            return Checkpoint(c, SCRIPT[c][0], pickle.dumps(("state after", c)))

        j.commit_batch(run_id, W, **{**batch, "snapshot": None}, defer=now)
    return asked


def test_a_group_commit_writes_what_one_transaction_per_intent_and_batch_writes(db: str | Path,
                                                                                   tmp_path: Path) -> None:
    ref = Journal.open(tmp_path / "ref.db")
    run_script(ref, new_run(ref), SimWallet(), range(len(SCRIPT)))
    expected = _contents(ref, 1)
    ref.close()

    j = Journal.open(db)
    j.GROUP_MAX_S = 3600.0  # only the size makes a group due here: 1, then 2, then 4 batches
    run_id = new_run(j)
    asked = _deferred(j, run_id, SimWallet(), range(len(SCRIPT)))
    assert asked == [0, 2]  # groups [0] and [1, 2] were written; [3] is still queued
    assert j.load_checkpoint(run_id, W) == (2, pickle.dumps(("state after", 2)))
    assert len(j.fills(run_id, W)) == 2  # input 3's fill (the stop loss) is not written yet

    # a batch committed without defer writes the queued ones first, in the same transaction
    j.commit_batch(run_id, W, cursor=3, ts=4_000, order_events=[], fills=[], fill_phases={}, phases=[],
                   status=expected[4][0], snapshot=None)
    assert asked == [0, 2, 3]  # its last deferred batch gave a source: the checkpoint follows it
    assert j.load_checkpoint(run_id, W) == (3, pickle.dumps(("state after", 3)))
    assert _contents(j, run_id) == expected
    j.close()


def test_nothing_of_a_group_is_visible_or_kept_before_it_is_written(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    j = Journal.open(db)
    j.GROUP_MAX_S = 3600.0
    run_id = new_run(j)
    wallet = SimWallet()
    _deferred(j, run_id, wallet, range(1))  # a group of one: written at once; the next holds two
    before = _contents(j, run_id)
    batch = wallet.process(_DeferredIntents(j), run_id, 1)  # type: ignore[arg-type]
    j.commit_batch(run_id, W, **{**batch, "snapshot": None},
                   defer=lambda: Checkpoint(1, 2_000, b"never written"))
    assert not j.group_due()  # one batch queued of a group of two; and its four intents

    with Journal.open(db, readonly=True) as reader:
        assert _contents(reader, run_id) == before
    with pytest.raises(RuntimeError, match="queued for a group commit"):
        j.record_intent(run_id, W, TINY, 9_000)  # a durable intent cannot jump the queue
    j.close()  # as a crash: the queue is lost, the journal is as the last group left it

    j = Journal.open(db)
    assert _contents(j, run_id) == before and j.load_checkpoint(run_id, W)[0] == 0  # type: ignore[index]
    run_script(j, run_id, SimWallet(), range(len(SCRIPT)))  # the resume replays: nothing lost
    ref = Journal.open(tmp_path / "ref.db")
    run_script(ref, new_run(ref), SimWallet(), range(len(SCRIPT)))
    assert _contents(j, run_id) == _contents(ref, 1)
    ref.close()
    j.close()


def test_a_group_failing_midway_writes_nothing_and_is_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = Journal.open(tmp_path / "j.db")
    j.GROUP_MAX_S = 3600.0
    run_id = new_run(j)
    _deferred(j, run_id, SimWallet(), range(1))
    before = (_contents(j, run_id), j.load_checkpoint(run_id, W))

    def die(self, conn, rows):
        raise RuntimeError("boom in the group's fills insert")

    monkeypatch.setattr(Journal, "_insert_fills", die)
    wallet = SimWallet()
    _deferred(j, run_id, wallet, range(1))
    with pytest.raises(RuntimeError, match="boom"):
        _deferred(j, run_id, wallet, range(1, 2))
    monkeypatch.undo()
    assert not j.group_due() and (_contents(j, run_id), j.load_checkpoint(run_id, W)) == before
    j.close()


# -- one lifecycle: core's order transition table ------------------------------------------
def _event(cid: str, event: str, ts: int = 5_000, qty: float = 1.0) -> OrderLogRecord:
    return OrderLogRecord(ts, cid, event, "market_buy", Side.BUY, qty, None, 0, 100.0 if event == "filled" else None)


@pytest.mark.parametrize(("cid", "event", "status"), [
    ("hk-w1-0-0-mb-1", "placed", "filled"),  # a filled order placed again
    ("hk-w1-0-0-gs-4", "filled", "cancelled"),  # a cancelled order filling
    ("hk-w1-0-0-mb-1", "triggered", "filled"),
    (TINY.client_id, "triggered", "open"),  # legal by the table: accepted
])
def test_an_illegal_transition_is_refused_naming_the_order_and_nothing_is_written(
    db: str | Path, cid: str, event: str, status: str,
) -> None:
    j = Journal.open(db)
    run_id = new_run(j)
    wallet = SimWallet()
    run_script(j, run_id, wallet, range(len(SCRIPT)))
    before = (_contents(j, run_id), j.load_checkpoint(run_id, W))
    batch = {"cursor": 4, "ts": 5_000, "order_events": [_event(cid, event)], "fills": [], "fill_phases": {},
             "phases": [], "status": wallet.status(run_id, 5_000, 94.0), "snapshot": b"x"}
    if status == "open":  # OPEN -> TRIGGER is legal: the journal follows core's table
        j.commit_batch(run_id, W, **batch)
        assert next(o for o in j.orders(run_id, W) if o.client_id == cid).status is OrderStatus.TRIGGERED
        j.close()
        return
    with pytest.raises(JournalError, match=rf"order {cid} of wallet 'w1' in run {run_id}: event '{event}' of "
                                           rf"input 4 is an illegal transition from status {status}"):
        j.commit_batch(run_id, W, **batch)
    assert (_contents(j, run_id), j.load_checkpoint(run_id, W)) == before
    j.close()


def test_partial_fills_walk_the_table_and_a_rejected_id_may_be_sent_again(db: str | Path) -> None:
    j = Journal.open(db)
    run_id = new_run(j)
    wallet = SimWallet()
    run_script(j, run_id, wallet, range(1))
    cid = "hk-w1-0-0-gb-7"
    spec = OrderSpec(cid, W, OrderKind.GRID_BUY, Side.BUY, OrderType.LIMIT, 1.0, 90.0)
    status = wallet.status(run_id, 2_000, 100.0)

    def commit(cursor: int, events: list[str], fills: tuple[float, ...] = ()) -> None:
        recs = [FillRecord(2_000 + cursor, cid, "grid_buy", Side.BUY, q, 90.0, 0.0, None, 0.0, 0.0, f"{cid}#{cursor}{i}")
                for i, q in enumerate(fills)]
        left = list(fills)  # a "filled" event carries its fill's qty, as the venue reports it
        qtys = [left.pop(0) if e == "filled" else 1.0 for e in events]
        j.commit_batch(run_id, W, cursor=cursor, ts=2_000 + cursor,
                       order_events=[_event(cid, e, 2_000 + cursor, q) for e, q in zip(events, qtys, strict=True)],
                       fills=recs,
                       fill_phases={}, phases=[], status=status, snapshot=None)

    def state() -> tuple[OrderStatus, float]:
        o = next(o for o in j.orders(run_id, W) if o.client_id == cid)
        return o.status, o.filled_qty

    j.record_intent(run_id, W, spec, 2_000)
    commit(1, ["rejected"])
    assert state() == (OrderStatus.REJECTED, 0.0)
    j.record_intent(run_id, W, spec, 2_002)  # the same id again: back to new, then placed
    commit(2, ["placed", "filled"], (0.25,))
    assert state() == (OrderStatus.PARTIALLY_FILLED, 0.25)
    commit(3, ["filled", "filled"], (0.25, 0.5))  # the first is partial, the last completes it
    assert state() == (OrderStatus.FILLED, 1.0)
    with pytest.raises(JournalError, match=f"order {cid} .* event 'filled' of input 4 is an illegal "
                                           "transition from status filled"):
        commit(4, ["filled"], (0.1,))
    j.close()
