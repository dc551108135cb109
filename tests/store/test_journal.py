"""The run journal: round trips, idempotent replays, atomic batches, crash safety, refusals."""

from __future__ import annotations

import os
import pickle
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from hedgekit.core.instrument import Instrument
from hedgekit.core.orders import OrderKind, OrderSpec, OrderStatus, OrderType, Side
from hedgekit.store import (
    Journal,
    JournalError,
    LeaseLost,
    RequestOutcome,
    RequestRow,
    WalletStatus,
)
from hedgekit.store.journal import SCHEMA_VERSION
from hedgekit.venues.sim import FillRecord, OrderLogRecord, SimConfig, SimExchange

BUY, SELL = Side.BUY, Side.SELL
MARKET, LIMIT, STOP = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP
INST = Instrument(
    "BTCUSDT", tick_size=0.1, lot_size=0.001, min_notional=5.0, maker_fee=0.0002, taker_fee=0.0005
)
W = "w1"


def spec(cid: str, kind: OrderKind, side: Side, otype: OrderType, qty: float,
         price: float | None = None, *, ro: bool = False, unit: int | None = None) -> OrderSpec:
    return OrderSpec(cid, W, kind, side, otype, qty, price, reduce_only=ro, unit=unit)


TINY = spec("hk-w1-0-x-gs-5", OrderKind.GRID_SELL, SELL, LIMIT, 0.01, 120.0)  # 1.2 USD: rejected
# One input per entry: (ts, price, orders sent in that order, cancels, new phase or None).
SCRIPT: list[tuple[int, float, list[OrderSpec], list[str], str | None]] = [
    (1_000, 100.0, [], [], "flat"),
    (2_000, 100.0, [
        spec("hk-w1-0-0-mb-1", OrderKind.MARKET_BUY, BUY, MARKET, 1.0, unit=0),
        spec("hk-w1-0-0-sl-2", OrderKind.STOP_LOSS, SELL, STOP, 1.0, 95.0, ro=True, unit=0),
        spec("hk-w1-0-0-gb-3", OrderKind.GRID_BUY, BUY, LIMIT, 0.5, 98.0, unit=-1),
        spec("hk-w1-0-0-gs-4", OrderKind.GRID_SELL, SELL, LIMIT, 0.5, 110.0, ro=True, unit=1),
    ], [], "long"),
    # the grid buy fills; TINY is rejected, then retried with the same id and a valid size
    (3_000, 97.0, [TINY, replace(TINY, qty=0.1)], [], None),
    # the stop loss fills; the grid sell is cancelled
    (4_000, 94.0, [], ["hk-w1-0-0-gs-4"], "stopped"),
]


@dataclass
class SimWallet:
    """Drives a simulated account the way the live engine will: intent, send, then one batch."""

    sim: SimExchange = field(default_factory=lambda: SimExchange(INST, SimConfig(initial_cash=10_000.0)))
    log_i: int = 0
    fill_i: int = 0
    phase: str = "start"

    def process(self, j: Journal, run_id: int, cursor: int) -> dict:
        """Process input ``cursor``; return the batch to commit (intents are already written)."""
        ts, price, orders, cancels, phase = SCRIPT[cursor]
        self.sim.move_to(price, ts)
        for s in orders:
            j.record_intent(run_id, W, s, ts)
            self.sim.submit(s, ts)
        for cid in cancels:
            self.sim.cancel(cid, ts)
        if phase is not None:
            self.phase = phase
        events, fills = self.sim.order_log[self.log_i:], self.sim.fills[self.fill_i:]
        self.log_i, self.fill_i = len(self.sim.order_log), len(self.sim.fills)
        return {
            "cursor": cursor, "ts": ts, "order_events": events, "fills": fills,
            "fill_phases": {f.fill_id: self.phase for f in fills},
            "phases": [] if phase is None else [(ts, phase)],
            "status": self.status(run_id, ts, price), "snapshot": pickle.dumps(self),
        }

    def status(self, run_id: int, ts: int, price: float) -> WalletStatus:
        pos = self.sim.position
        return WalletStatus(
            run_id=run_id, wallet=W, strategy="long_wallet", mode="paper", phase=self.phase,
            unit=0, anchor=100.0, position=pos.qty, avg_price=pos.avg_price,
            realized_pnl=self.sim.realized_pnl, unrealized_pnl=pos.unrealized(price),
            fees=self.sim.fees_paid, funding=self.sim.funding_paid, equity=self.sim.equity(price),
            last_price=price, last_price_ts=ts, updated_ts=ts, paused=False,
        )


def new_run(j: Journal) -> int:
    run_id = j.start_run(mode="paper", config_json='{"a": 1}', source="binance", started_ts=500)
    j.ensure_wallet(run_id, W, "long_wallet")
    return run_id


def run_script(j: Journal, run_id: int, wallet: SimWallet, cursors: range) -> None:
    for c in cursors:
        j.commit_batch(run_id, W, **wallet.process(j, run_id, c))


def file_state(path: Path) -> tuple[bytes, int, list[str]]:
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(path.parent))


# -- opening ------------------------------------------------------------------------------
def test_a_new_sqlite_journal_is_wal_with_our_marker_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "j.db"

    with Journal.open(path) as j:
        assert j.schema_version == SCHEMA_VERSION

    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert con.execute("PRAGMA application_id").fetchone() == (0x484B4A4C,)
    assert dict(con.execute("SELECT key, value FROM hedgekit_meta")) == {
        "application": "hedgekit", "schema_version": str(SCHEMA_VERSION),
    }
    con.close()
    assert sorted(os.listdir(path.parent)) == ["j.db"]  # no temp file left behind


def test_default_location_plain_path_and_sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    Journal.open().close()
    with Journal.open(f"sqlite:///{tmp_path / 'u.db'}") as j:
        new_run(j)
    with Journal.open(str(tmp_path / "u.db"), create=False) as j:
        assert len(j.runs()) == 1

    assert (tmp_path / "state" / "hedgekit.db").is_file()


def test_an_in_memory_url_works_through_the_generic_path() -> None:
    with Journal.open("sqlite://") as j:
        run_id = new_run(j)
        run_script(j, run_id, SimWallet(), range(len(SCRIPT)))
        assert len(j.fills(run_id, W)) == 3


def test_create_false_and_readonly_refuse_a_missing_file_and_create_nothing(tmp_path: Path) -> None:
    target = tmp_path / "state" / "j.db"

    with pytest.raises(JournalError, match=r"j\.db.*no such file \(opened read-only\)"):
        Journal.open(target, readonly=True)
    with pytest.raises(JournalError, match="no such file"):
        Journal.open(target, create=False)

    assert not (tmp_path / "state").exists()


def _corrupt(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(8192))


def _torn(path: Path) -> None:  # a SQLite header, then garbage
    path.write_bytes(b"SQLite format 3\x00" + bytes(84) + random.Random(7).randbytes(8092))


def _foreign(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO users VALUES (1, 'ann')")
    con.commit()
    con.close()


def _other_app_id(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA application_id=1234")
    con.execute("CREATE TABLE hedgekit_meta (key TEXT PRIMARY KEY, value TEXT)")
    con.commit()
    con.close()


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _newer(path: Path) -> None:
    Journal.open(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE hedgekit_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()


def _other_meta(path: Path) -> None:
    Journal.open(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE hedgekit_meta SET value = 'otherbot' WHERE key = 'application'")
    con.commit()
    con.close()


@pytest.mark.parametrize(("make", "problem"), [
    (_corrupt, "not a SQLite database"),
    (_torn, "cannot be read as SQLite"),
    (_foreign, "without a hedgekit_meta table"),
    (_other_app_id, "application id 0x000004d2 belongs to another application"),
    (_empty, "the file is empty"),
    (_newer, f"schema version {SCHEMA_VERSION + 1} was written by a newer hedgekit"),
    (_other_meta, "names application 'otherbot'"),
])
@pytest.mark.parametrize("readonly", [False, True])
def test_a_file_that_is_not_our_journal_is_refused_and_never_modified(
    tmp_path: Path, make, problem: str, readonly: bool,
) -> None:
    path = tmp_path / "j.db"
    make(path)
    time.sleep(0.01)  # so that any write would show in the mtime
    before = file_state(path)

    with pytest.raises(JournalError) as err:
        Journal.open(path, readonly=readonly)

    assert str(path) in str(err.value)
    assert problem in str(err.value)
    assert file_state(path) == before


def test_readonly_reads_but_never_writes_or_creates_side_files(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal.open(path) as j:
        run_id = new_run(j)
        run_script(j, run_id, SimWallet(), range(len(SCRIPT)))
    time.sleep(0.01)
    before = file_state(path)

    with Journal.open(path, readonly=True) as ro:
        assert [s.phase for s in ro.wallet_status()] == ["stopped"]
        assert len(ro.fills(run_id, W)) == 3
        with pytest.raises(JournalError, match="opened read-only, cannot start a run"):
            ro.start_run(mode="paper", config_json="{}", source="x", started_ts=1)
        with pytest.raises(JournalError, match="read-only"):
            ro.finish_run(run_id, 9)

    assert file_state(path) == before


def test_readonly_sees_what_a_live_writer_committed(db: str | Path) -> None:
    path = db
    writer = Journal.open(path)
    run_id = new_run(writer)
    wallet = SimWallet()
    run_script(writer, run_id, wallet, range(2))

    with Journal.open(path, readonly=True) as ro:
        assert ro.load_checkpoint(run_id, W)[0] == 1  # type: ignore[index]
        run_script(writer, run_id, wallet, range(2, 4))
        assert ro.load_checkpoint(run_id, W)[0] == 3  # type: ignore[index]
    writer.close()


# -- round trip -----------------------------------------------------------------------------
def test_round_trip_of_every_table(db: str | Path) -> None:
    j = Journal.open(db)
    run_id = new_run(j)
    wallet = SimWallet()
    run_script(j, run_id, wallet, range(len(SCRIPT)))
    j.finish_run(run_id, 9_000, "stopped")
    other = j.start_run(mode="paper", config_json='{"a": 1}', source="binance", started_ts=10_000)
    j.close()

    j = Journal.open(db)
    # runs
    (first, second) = j.runs()
    assert (first.run_id, first.mode, first.config_json, first.source) == (run_id, "paper", '{"a": 1}', "binance")
    assert (first.started_ts, first.ended_ts, first.status) == (500, 9_000, "stopped")
    assert (second.run_id, second.ended_ts, second.status) == (other, None, "running")
    assert j.find_resumable_run(mode="paper", config_json='{"a": 1}', source="binance") == other
    assert j.find_resumable_run(mode="paper", config_json='{"a": 2}', source="binance") is None
    assert j.find_resumable_run(mode="real", config_json='{"a": 1}', source="binance") is None
    # orders: statuses follow the venue's events; filled qty is the sum of the fills
    orders = {o.client_id: o for o in j.orders(run_id, W)}
    assert {cid: o.status for cid, o in orders.items()} == {
        "hk-w1-0-0-mb-1": OrderStatus.FILLED, "hk-w1-0-0-sl-2": OrderStatus.FILLED,
        "hk-w1-0-0-gb-3": OrderStatus.FILLED, "hk-w1-0-0-gs-4": OrderStatus.CANCELLED,
        "hk-w1-0-x-gs-5": OrderStatus.OPEN,
    }
    sl = orders["hk-w1-0-0-sl-2"]
    assert (sl.kind, sl.order_type, sl.side, sl.qty, sl.trigger, sl.reduce_only, sl.unit) == (
        OrderKind.STOP_LOSS, STOP, SELL, 1.0, 95.0, True, 0)
    assert (sl.filled_qty, sl.created_ts, sl.updated_ts, sl.venue_id) == (1.0, 2_000, 4_000, None)
    assert orders["hk-w1-0-x-gs-5"].qty == 0.1  # the retried spec replaced the rejected one
    assert orders["hk-w1-0-0-gs-4"].filled_qty == 0.0
    assert [o.client_id for o in j.orders(run_id, W, working_only=True)] == ["hk-w1-0-x-gs-5"]
    # order events: exactly the venue's log, in order
    events = j.order_events(run_id, W)
    assert [(e.client_id, e.event, e.qty, e.trigger, e.price, e.reason, e.unit, e.kind, e.side)
            for e in events] == [
        (r.order_id, r.event, r.qty, r.trigger_price, r.price, r.reason, r.unit, r.kind, r.side)
        for r in wallet.sim.order_log
    ]
    assert [(e.cursor, e.event) for e in events if e.client_id == TINY.client_id] == [
        (2, "rejected"), (2, "placed")]
    # fills: every field, the phase at the fill
    fills = j.fills(run_id, W)
    assert [(f.fill_id, f.client_id, f.ts, f.kind, f.side, f.qty, f.price, f.fee, f.unit,
             f.position, f.realized_pnl, f.liquidity) for f in fills] == [
        (r.fill_id, r.order_id, r.ts, r.kind, r.side, r.qty, r.price, r.fee, r.unit,
         r.position_after, r.realized_pnl_cum, r.liquidity) for r in wallet.sim.fills
    ]
    assert [f.phase for f in fills] == ["long", "long", "stopped"]
    # phases, status, checkpoint
    assert j.phases(run_id, W) == [(1_000, "flat"), (2_000, "long"), (4_000, "stopped")]
    (status,) = j.wallet_status(run_id)
    assert status == wallet.status(run_id, 4_000, 94.0)
    assert j.wallet_status() == []  # the latest run has no wallet yet
    assert j.position_from_fills(run_id, W) == pytest.approx(status.position, abs=1e-12)
    assert status.position == pytest.approx(0.5)
    cursor, snapshot = j.load_checkpoint(run_id, W)  # type: ignore[misc]
    assert cursor == 3
    assert pickle.loads(snapshot).sim.position.qty == status.position
    j.close()


def test_venue_ids_are_stored_and_unique(db: str | Path) -> None:
    j = Journal.open(db)
    run_id = new_run(j)
    wallet = SimWallet()
    run_script(j, run_id, wallet, range(1))
    batch = wallet.process(j, run_id, 1)

    j.commit_batch(run_id, W, **batch, venue_ids={"hk-w1-0-0-mb-1": "v1", "hk-w1-0-0-sl-2": "v2"})

    assert [o.venue_id for o in j.orders(run_id, W)] == ["v1", "v2", None, None]
    with pytest.raises(JournalError, match="(?i)unique"):
        j.commit_batch(run_id, W, **batch, venue_ids={"hk-w1-0-0-gb-3": "v1"})
    j.close()


# -- idempotent replay ----------------------------------------------------------------------
def test_a_crash_between_intent_and_batch_replays_without_duplicates(db: str | Path) -> None:
    path = db
    j = Journal.open(path)
    run_id = new_run(j)
    run_script(j, run_id, SimWallet(), range(1))
    # input 1: the intents are written and the orders "sent", then the process dies
    SimWallet.process(pickle.loads(j.load_checkpoint(run_id, W)[1]), j, run_id, 1)  # type: ignore[index]
    j.close()

    j = Journal.open(path)
    assert j.find_resumable_run(mode="paper", config_json='{"a": 1}', source="binance") == run_id
    assert {o.status for o in j.orders(run_id, W)} == {OrderStatus.NEW}  # intents only
    cursor, snapshot = j.load_checkpoint(run_id, W)  # type: ignore[misc]
    assert cursor == 0
    wallet: SimWallet = pickle.loads(snapshot)
    batch = wallet.process(j, run_id, 1)  # same intents again
    j.commit_batch(run_id, W, **batch)
    j.commit_batch(run_id, W, **batch)  # and the same batch twice
    run_script(j, run_id, wallet, range(2, len(SCRIPT)))
    j.commit_batch(run_id, W, **batch)  # a late replay of an old input changes nothing
    j.close()

    j = Journal.open(path)
    orders = j.orders(run_id, W)
    fills = j.fills(run_id, W)
    assert len(orders) == len({o.client_id for o in orders}) == 5
    assert [f.fill_id for f in fills] == [f.fill_id for f in wallet.sim.fills]
    assert len(j.order_events(run_id, W)) == len(wallet.sim.order_log)
    assert j.phases(run_id, W) == [(1_000, "flat"), (2_000, "long"), (4_000, "stopped")]
    assert orders[0].status is OrderStatus.FILLED and orders[0].filled_qty == 1.0
    assert j.load_checkpoint(run_id, W)[0] == 3  # type: ignore[index]
    assert j.wallet_status(run_id)[0] == wallet.status(run_id, 4_000, 94.0)
    assert j.position_from_fills(run_id, W) == pytest.approx(j.wallet_status(run_id)[0].position)
    j.close()


def test_another_batch_for_the_same_cursor_is_appended_and_replays_stay_idempotent(db: str | Path) -> None:
    # the engine's shutdown / flatten batch reuses the last cursor with new events
    j = Journal.open(db)
    run_id = new_run(j)
    wallet = SimWallet()
    run_script(j, run_id, wallet, range(len(SCRIPT)))
    n_events = len(j.order_events(run_id, W))
    wallet.sim.cancel(TINY.client_id, 5_000)
    wallet.phase = "stopped-by-user"
    shutdown = {
        "cursor": 3, "ts": 5_000, "order_events": wallet.sim.order_log[wallet.log_i:], "fills": [],
        "fill_phases": {}, "phases": [(5_000, "stopped-by-user")],
        "status": wallet.status(run_id, 5_000, 94.0), "snapshot": pickle.dumps(wallet),
    }

    j.commit_batch(run_id, W, **shutdown)
    j.commit_batch(run_id, W, **shutdown)  # replayed: nothing added

    events = j.order_events(run_id, W)
    assert len(events) == n_events + 1
    assert (events[-1].cursor, events[-1].client_id, events[-1].event) == (3, TINY.client_id, "cancelled")
    assert j.orders(run_id, W, working_only=True) == []
    assert j.phases(run_id, W)[-1] == (5_000, "stopped-by-user")
    assert len(j.phases(run_id, W)) == 4
    assert j.wallet_status(run_id)[0].phase == "stopped-by-user"
    assert pickle.loads(j.load_checkpoint(run_id, W)[1]).phase == "stopped-by-user"  # type: ignore[index]
    j.close()


def test_a_different_batch_below_the_latest_cursor_is_refused_and_nothing_is_written(db: str | Path) -> None:
    # Below the wallet's latest cursor only replays are possible (the engine resumes after its
    # checkpoint, which is always the latest batch): a different batch there means a second
    # writer or a non-deterministic replay, and must not be appended.
    j = Journal.open(db)
    run_id = new_run(j)
    wallet = SimWallet()
    batches = []
    for c in range(len(SCRIPT)):
        batches.append(wallet.process(j, run_id, c))
        j.commit_batch(run_id, W, **batches[-1])
    old = batches[1]
    state = (j.fills(run_id, W), j.order_events(run_id, W), j.phases(run_id, W), j.orders(run_id, W),
             j.wallet_status(run_id), j.load_checkpoint(run_id, W))
    other_fill = replace(old["fills"][0], fill_id="elsewhere#1")

    with pytest.raises(JournalError, match=r"input 1 of wallet 'w1' comes again with order events or "
                       r"phases other than .* moved on to input 3: a second writer"):
        j.commit_batch(run_id, W, **{**old, "order_events": old["order_events"][:-1]})
    with pytest.raises(JournalError, match=r"input 1 .* phases other than"):
        j.commit_batch(run_id, W, **{**old, "phases": [(2_000, "short")]})
    with pytest.raises(JournalError, match=r"input 1 .* fill\(s\) not journaled for it \(elsewhere#1\)"):
        j.commit_batch(run_id, W, **{**old, "fills": [*old["fills"], other_fill]})
    with pytest.raises(JournalError, match=r"input 2 .* order events"):  # another input's batch
        j.commit_batch(run_id, W, **{**batches[0], "cursor": 2})

    assert (j.fills(run_id, W), j.order_events(run_id, W), j.phases(run_id, W), j.orders(run_id, W),
            j.wallet_status(run_id), j.load_checkpoint(run_id, W)) == state
    j.commit_batch(run_id, W, **old)  # the true replay is still accepted, and adds nothing
    j.commit_batch(run_id, W, **{**old, "order_events": [], "phases": []})  # so is a part of it
    assert (j.fills(run_id, W), j.order_events(run_id, W), j.phases(run_id, W)) == state[:3]
    j.close()


def test_an_unknown_event_name_is_refused(db: str | Path) -> None:
    j = Journal.open(db)
    run_id = new_run(j)
    wallet = SimWallet()
    batch = wallet.process(j, run_id, 0)
    odd = OrderLogRecord(1_000, "x", "amended", "grid_buy", BUY, 1.0, 90.0, None)

    with pytest.raises(JournalError, match="unknown order event 'amended' of x"):
        j.commit_batch(run_id, W, **{**batch, "order_events": [odd]})
    j.close()


def test_a_fill_id_already_stored_is_ignored(db: str | Path) -> None:
    j = Journal.open(db)
    run_id = new_run(j)
    wallet = SimWallet()
    run_script(j, run_id, wallet, range(2))
    (fill,) = j.fills(run_id, W)
    again = wallet.sim.fills[0]

    j.commit_batch(run_id, W, **{**wallet.process(j, run_id, 2), "fills": [again, again, *wallet.sim.fills[1:]]})

    assert [f.fill_id for f in j.fills(run_id, W)] == [fill.fill_id, wallet.sim.fills[1].fill_id]
    j.close()


def test_record_intent_rules(db: str | Path) -> None:
    j = Journal.open(db)
    run_id = new_run(j)
    wallet = SimWallet()
    run_script(j, run_id, wallet, range(2))
    mb = SCRIPT[1][2][0]

    j.record_intent(run_id, W, mb, 9_999)  # same spec again: no-op
    with pytest.raises(JournalError, match="hk-w1-0-0-mb-1 .* status filled with a different spec"):
        j.record_intent(run_id, W, replace(mb, qty=2.0), 9_999)
    with pytest.raises(JournalError, match="belongs to wallet 'w2'"):
        j.record_intent(run_id, W, replace(mb, wallet="w2"), 9_999)
    with pytest.raises(JournalError, match="unknown wallet 'w2'"):
        j.record_intent(run_id, "w2", replace(mb, wallet="w2"), 9_999)

    (row,) = [o for o in j.orders(run_id, W) if o.client_id == mb.client_id]
    assert (row.status, row.qty, row.updated_ts) == (OrderStatus.FILLED, 1.0, 2_000)
    j.close()


def test_an_event_for_an_order_without_intent_is_refused_and_nothing_is_written(db: str | Path) -> None:
    j = Journal.open(db)
    run_id = new_run(j)
    wallet = SimWallet()
    run_script(j, run_id, wallet, range(1))
    batch = wallet.process(j, run_id, 1)
    ghost = OrderLogRecord(2_000, "hk-w1-9-x-gb-99", "placed", "grid_buy", BUY, 1.0, 90.0, None)

    with pytest.raises(JournalError, match="unknown client id.*hk-w1-9-x-gb-99.*record_intent"):
        j.commit_batch(run_id, W, **{**batch, "order_events": [*batch["order_events"], ghost]})

    assert j.fills(run_id, W) == []
    assert j.load_checkpoint(run_id, W)[0] == 0  # type: ignore[index]
    j.close()


def test_a_batch_without_snapshot_keeps_the_checkpoint(db: str | Path) -> None:
    j = Journal.open(db)
    run_id = new_run(j)
    wallet = SimWallet()
    run_script(j, run_id, wallet, range(1))

    j.commit_batch(run_id, W, **{**wallet.process(j, run_id, 1), "snapshot": None})

    assert j.load_checkpoint(run_id, W)[0] == 0  # type: ignore[index]
    assert j.wallet_status(run_id)[0].phase == "long"
    j.close()


def test_a_liquidation_fill_needs_no_order_row(db: str | Path) -> None:
    j = Journal.open(db)
    run_id = new_run(j)
    wallet = SimWallet()
    batch = wallet.process(j, run_id, 0)
    liq = FillRecord(1_000, "liquidation", "liquidation", SELL, 1.0, 50.0, 0.1, None, -1.0, -50.0,
                     "liquidation#1")

    j.commit_batch(run_id, W, **{**batch, "fills": [liq]})

    (fill,) = j.fills(run_id, W)
    assert (fill.client_id, fill.kind, fill.phase) == ("liquidation", "liquidation", None)
    assert j.position_from_fills(run_id, W) == -1.0
    j.close()


# -- atomicity -----------------------------------------------------------------------------
def test_a_batch_failing_midway_leaves_nothing_behind(db: str | Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = db
    j = Journal.open(path)
    run_id = new_run(j)
    wallet = SimWallet()
    run_script(j, run_id, wallet, range(1))
    before = (j.fills(run_id, W), j.order_events(run_id, W), j.phases(run_id, W), j.wallet_status(run_id))
    batch = wallet.process(j, run_id, 1)
    inserted: list[int] = []
    real_insert = Journal._insert_fills

    def insert_then_die(self, conn, *args):  # the fills are in, then the process "fails"
        inserted.extend(r["ts"] for r in real_insert(self, conn, *args))
        raise RuntimeError("boom after the fills insert")

    monkeypatch.setattr(Journal, "_insert_fills", insert_then_die)
    with pytest.raises(RuntimeError, match="boom"):
        j.commit_batch(run_id, W, **batch)
    j.close()
    monkeypatch.undo()

    j = Journal.open(path)
    assert inserted  # the failure did happen after rows were written
    assert (j.fills(run_id, W), j.order_events(run_id, W), j.phases(run_id, W), j.wallet_status(run_id)) == before
    assert j.load_checkpoint(run_id, W)[0] == 0  # type: ignore[index]
    assert {o.status for o in j.orders(run_id, W)} == {OrderStatus.NEW}
    j.commit_batch(run_id, W, **batch)  # the same batch commits cleanly afterwards
    assert len(j.fills(run_id, W)) == 1
    j.close()


# -- kill -9 -------------------------------------------------------------------------------
_CHILD = textwrap.dedent("""
    import pickle, sys
    from hedgekit.core.orders import OrderKind, OrderSpec, OrderType, Side
    from hedgekit.store import Journal, WalletStatus
    from hedgekit.venues.sim import FillRecord, OrderLogRecord

    j = Journal.open(sys.argv[1])
    args = dict(mode="paper", config_json="{}", source="kill")
    run = j.find_resumable_run(**args) or j.start_run(**args, started_ts=0)
    j.ensure_wallet(run, "w", "long_wallet")
    cp = j.load_checkpoint(run, "w")
    i = 0 if cp is None else cp[0] + 1
    print("ready", flush=True)
    while True:
        cid = f"hk-w-0-x-mb-{i}"
        spec = OrderSpec(cid, "w", OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, 1.0)
        j.record_intent(run, "w", spec, i)
        events = [OrderLogRecord(i, cid, "placed", "market_buy", Side.BUY, 1.0, None, None),
                  OrderLogRecord(i, cid, "filled", "market_buy", Side.BUY, 1.0, None, None, 100.0)]
        fills = [FillRecord(i, cid, "market_buy", Side.BUY, 1.0, 100.0, 0.05, None, i + 1.0, 0.0, cid + "#1")]
        status = WalletStatus(run, "w", "long_wallet", "paper", "long", None, None, i + 1.0, 100.0,
                              0.0, 0.0, 0.05 * (i + 1), 0.0, 1000.0, 100.0, i, i)
        j.commit_batch(run, "w", cursor=i, ts=i, order_events=events, fills=fills,
                       fill_phases={cid + "#1": "long"}, phases=[(i, "long")] if i % 10 == 0 else [],
                       status=status, snapshot=pickle.dumps({"cursor": i, "pad": bytes(4000)}))
        i += 1
""")


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_or_tears_a_batch(tmp_path: Path) -> None:
    path = tmp_path / "kill.db"
    rng = random.Random(20240607)
    cursors: list[int] = []
    for _ in range(10):
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.0, 0.25))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()

        con = sqlite3.connect(path)
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        con.close()
        with Journal.open(path) as j:
            (run,) = j.runs()
            cp = j.load_checkpoint(run.run_id, "w")
            if cp is None:  # killed before the first batch committed
                assert j.fills(run.run_id, "w") == []
                continue
            c, snapshot = cp
            n = c + 1
            assert pickle.loads(snapshot)["cursor"] == c
            fills = j.fills(run.run_id, "w")
            orders = j.orders(run.run_id, "w")
            assert [f.fill_id for f in fills] == [f"hk-w-0-x-mb-{k}#1" for k in range(n)]
            assert len(j.order_events(run.run_id, "w")) == 2 * n
            assert len(j.phases(run.run_id, "w")) == (n + 9) // 10
            assert sum(o.status is OrderStatus.FILLED for o in orders) == n
            assert len(orders) in (n, n + 1)  # at most one intent without its batch
            (status,) = j.wallet_status(run.run_id)
            assert status.position == n == j.position_from_fills(run.run_id, "w")
            cursors.append(c)
    assert cursors == sorted(cursors) and cursors[-1] > 10  # progress across restarts


# -- the run's lease and requests (schema version 2) -----------------------------------------
def _lease_args(token: str, now: int, **kw) -> dict:
    return {"holder": f"{token}@host", "token": token, "purpose": "run", "now_ms": now,
            "timeout_ms": 10_000, **kw}


def test_a_run_has_one_lease_holder_until_it_goes_stale_or_is_released(db: str | Path) -> None:
    j = Journal.open(db)
    run_id = new_run(j)
    wallet = SimWallet()
    t0 = 1_700_000_000_000

    assert j.lease(run_id) is None
    assert j.acquire_lease(run_id, **_lease_args("a", t0)) is None
    assert j.acquire_lease(run_id, **_lease_args("a", t0 + 1)) is None  # the holder again: fine
    held = j.acquire_lease(run_id, **_lease_args("b", t0 + 9_000))
    assert held is not None and (held.holder, held.token, held.heartbeat_ts) == ("a@host", "a", t0 + 1)
    assert held.age_s(t0 + 9_000) == pytest.approx(8.999)
    # a live holder the caller knows to be dead is taken over at once
    gone = j.acquire_lease(run_id, **_lease_args("c", t0 + 2_000, gone=lambda lease: lease.token == "zzz"))
    assert gone is not None and gone.token == "a"
    assert j.renew_lease(run_id, "a", t0 + 9_500)
    assert j.acquire_lease(run_id, **_lease_args("b", t0 + 19_000)) is not None  # renewed: still live
    run_script(j, run_id, wallet, range(2))
    j.commit_batch(run_id, W, **wallet.process(j, run_id, 2), lease="a")  # the holder writes

    # stale: its heartbeat is older than the timeout (the holder was killed): taken over
    assert j.acquire_lease(run_id, **_lease_args("b", t0 + 19_500)) is None
    assert j.lease(run_id).token == "b"  # type: ignore[union-attr]
    assert not j.renew_lease(run_id, "a", t0 + 19_600)  # the old holder learns it lost it
    state = (j.fills(run_id, W), j.order_events(run_id, W), j.orders(run_id, W), j.load_checkpoint(run_id, W))
    batch = wallet.process(j, run_id, 3)
    with pytest.raises(LeaseLost, match=r"no longer holds the lease of run .* \(b@host holds it now"):
        j.commit_batch(run_id, W, **batch, lease="a")
    with pytest.raises(LeaseLost):
        j.record_intent(run_id, W, spec("hk-w1-0-9-mb-9", OrderKind.MARKET_BUY, BUY, MARKET, 1.0), 9_000, lease="a")
    assert (j.fills(run_id, W), j.order_events(run_id, W), j.orders(run_id, W), j.load_checkpoint(run_id, W)) == state
    j.commit_batch(run_id, W, **batch, lease="b")

    j.release_lease(run_id, "a")  # not the holder: no-op
    assert j.lease(run_id).token == "b"  # type: ignore[union-attr]
    j.release_lease(run_id, "b")
    assert j.lease(run_id) is None
    with pytest.raises(LeaseLost, match="nobody holds it now"):
        j.commit_batch(run_id, W, **batch, lease="b")
    with pytest.raises(JournalError, match="no run 99"):
        j.acquire_lease(99, **_lease_args("a", t0))
    j.close()


def test_a_request_is_closed_by_the_batch_that_carries_it_out_exactly_once(db: str | Path) -> None:
    j = Journal.open(db)
    run_id = new_run(j)
    wallet = SimWallet()
    run_script(j, run_id, wallet, range(2))
    first = j.add_request(run_id, W, "flatten", 5_000)
    second = j.add_request(run_id, W, "flatten", 5_001)
    with pytest.raises(JournalError, match="unknown wallet 'nope'"):
        j.add_request(run_id, "nope", "flatten", 5_002)
    assert [(r.id, r.status, r.result, r.done_ts) for r in j.requests(run_id, pending_only=True)] == [
        (first, "pending", None, None), (second, "pending", None, None)]

    # a batch that fails leaves its request pending
    batch = wallet.process(j, run_id, 2)
    done = RequestOutcome(first, "done", "flattened w1", 6_000)
    bad = [replace(batch["order_events"][0], event="exploded")]
    with pytest.raises(JournalError, match="unknown order event"):
        j.commit_batch(run_id, W, **{**batch, "order_events": bad}, request=done)
    assert j.request(first).status == "pending"  # type: ignore[union-attr]

    j.commit_batch(run_id, W, **batch, request=done)
    assert j.request(first) == RequestRow(first, run_id, W, "flatten", 5_000, "done", "flattened w1", 6_000)
    # the same request again (a second executor, or a replay): refused, nothing written
    state = (j.fills(run_id, W), j.order_events(run_id, W), j.load_checkpoint(run_id, W))
    with pytest.raises(JournalError, match=f"request {first} of run {run_id} is not pending"):
        j.commit_batch(run_id, W, **wallet.process(j, run_id, 3), request=done)
    assert (j.fills(run_id, W), j.order_events(run_id, W), j.load_checkpoint(run_id, W)) == state
    j.finish_request(run_id, RequestOutcome(second, "failed", "nothing to flatten", 6_100))
    assert [r.status for r in j.requests(run_id)] == ["done", "failed"]
    assert j.requests(run_id, pending_only=True) == []
    j.close()


def _downgrade_to_v1(j: Journal) -> None:
    """What a schema version 1 journal is: the same without the version 2 tables."""
    with j._engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE requests")
        conn.exec_driver_sql("DROP TABLE run_leases")
        conn.exec_driver_sql("UPDATE hedgekit_meta SET value = '1' WHERE key = 'schema_version'")


def test_a_version_1_journal_is_upgraded_in_place_when_opened_for_writing(db: str | Path) -> None:
    j = Journal.open(db)
    run_id = new_run(j)
    wallet = SimWallet()
    run_script(j, run_id, wallet, range(3))
    _downgrade_to_v1(j)
    j.close()
    if isinstance(db, Path):
        time.sleep(0.01)
        before = file_state(db)
    with Journal.open(db, readonly=True) as ro:  # read as it is, never upgraded
        assert ro.schema_version == 1
        assert len(ro.fills(run_id, W)) == 2 and ro.wallet_status()[0].phase == "long"
        assert ro.lease(run_id) is None and ro.requests(run_id) == []
    if isinstance(db, Path):
        assert file_state(db) == before

    with Journal.open(db) as j:
        assert j.schema_version == SCHEMA_VERSION == 2
        assert len(j.fills(run_id, W)) == 2  # the old content is all there
        assert j.load_checkpoint(run_id, W)[0] == 2  # type: ignore[index]
        assert j.acquire_lease(run_id, **_lease_args("a", 1_000)) is None
        rid = j.add_request(run_id, W, "flatten", 1_000)
        j.commit_batch(run_id, W, **wallet.process(j, run_id, 3), lease="a",
                       request=RequestOutcome(rid, "done", "ok", 2_000))
        assert j.request(rid).status == "done"  # type: ignore[union-attr]
    with Journal.open(db, readonly=True) as ro:
        assert ro.schema_version == 2 and len(ro.fills(run_id, W)) == 3


def test_a_version_1_journal_holding_a_foreign_requests_table_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal.open(path) as j:
        new_run(j)
        _downgrade_to_v1(j)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE requests (url TEXT)")
    con.commit()
    con.close()
    time.sleep(0.01)
    before = file_state(path)
    with pytest.raises(JournalError, match=r"schema version 1 also holds table\(s\) requests .* left untouched"):
        Journal.open(path)
    assert file_state(path) == before
