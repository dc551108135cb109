"""The journal's write path: intents and batches applied in their order to the wallets' rows in
memory, then written in one transaction with a few statements per table (see journal.py)."""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, bindparam, select

from hedgekit.core.orders import (
    InvalidOrderTransition,
    OrderSpec,
    OrderStatus,
    OrderTrigger,
    next_status,
)
from hedgekit.core.records import FillRecord, OrderLogRecord
from hedgekit.store.records import (
    _QTY_RTOL,
    Checkpoint,
    CheckpointSource,
    JournalError,
    RequestOutcome,
    WalletStatus,
)
from hedgekit.store.schema import (
    _batches,
    _checkpoints,
    _events,
    _fills,
    _orders,
    _phases,
    _status,
    _wallets,
)

if TYPE_CHECKING:
    from hedgekit.store.journal import Journal


@dataclass(slots=True)
class _Intent:
    run_id: int
    wallet: str
    spec: OrderSpec
    ts: int
    lease: str | None


@dataclass(slots=True)
class _Batch:
    run_id: int
    wallet: str
    cursor: int
    ts: int
    events: list[dict[str, Any]]
    fills: Sequence[FillRecord]
    fill_phases: Mapping[str, str]
    phases: list[dict[str, Any]]
    status: WalletStatus
    snapshot: bytes | None
    venue_ids: Mapping[str, str]
    lease: str | None
    request: RequestOutcome | None
    source: CheckpointSource | None


_Op = _Intent | _Batch


# Venue order-log event -> the trigger of core's order transition table ("filled": FILL or
# FILL_PARTIAL, resolved against the order's fills).
_EVENT_TRIGGER: dict[str, OrderTrigger | None] = {
    "placed": OrderTrigger.ACCEPT,
    "triggered": OrderTrigger.TRIGGER,
    "filled": None,
    "cancelled": OrderTrigger.CANCEL,
    "rejected": OrderTrigger.REJECT,
}


# A rejected client id may be sent again (record_intent puts it back to "new"): a placement or
# rejection of a rejected order starts its lifecycle over.
_RESTART = frozenset({OrderTrigger.ACCEPT, OrderTrigger.REJECT})


_SPEC_COLUMNS = ("kind", "order_type", "side", "qty", "trigger_price", "reduce_only", "unit")


_ORDER_STATE = ("status", "filled_qty", "updated_ts", "venue_id", *_SPEC_COLUMNS)


_order_state = operator.itemgetter(*_ORDER_STATE)


_IN_CHUNK = 500  # ids per IN (...) list: far below SQLite's and PostgreSQL's bind limits


def _spec_columns(spec: OrderSpec) -> dict[str, Any]:
    return {
        "kind": str(spec.kind), "order_type": str(spec.type), "side": str(spec.side),
        "qty": float(spec.qty), "trigger_price": None if spec.price is None else float(spec.price),
        "reduce_only": bool(spec.reduce_only), "unit": spec.unit,
    }


def _checkpoints_of(ops: Sequence[_Op]) -> dict[tuple[int, str], Checkpoint]:
    """Per wallet, the checkpoint a group writes: its batches' snapshot of the highest cursor
    (the later one on a tie); when its last batch has none but a deferred batch gave a
    source, the wallet's state now (so its checkpoint never lags the batches written)."""
    out: dict[tuple[int, str], Checkpoint] = {}
    last: dict[tuple[int, str], _Batch] = {}
    source: dict[tuple[int, str], CheckpointSource] = {}
    for op in ops:
        if not isinstance(op, _Batch):
            continue
        key = (op.run_id, op.wallet)
        last[key] = op
        if op.source is not None:
            source[key] = op.source
        if op.snapshot is not None:
            cp = Checkpoint(op.cursor, op.ts, bytes(op.snapshot))
            known = out.get(key)
            if known is None or cp.cursor >= known.cursor:
                out[key] = cp
    for key, op in last.items():
        if op.snapshot is None and key in source:
            cp = source[key]()
            known = out.get(key)
            if known is None or cp.cursor >= known.cursor:
                out[key] = cp
    return out


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    for i in range(0, len(ids), _IN_CHUNK):
        yield list(ids[i:i + _IN_CHUNK])


# Statements built once (the hot path pays no statement construction).
def _of_wallet(table: Table) -> tuple[Any, Any]:
    return table.c.run_id == bindparam("run_id"), table.c.wallet == bindparam("wallet")


_Q_WALLET_LOCK = select(_wallets.c.wallet).where(*_of_wallet(_wallets)).with_for_update(key_share=True)


_Q_ORDERS_IN = select(_orders).where(
    *_of_wallet(_orders), _orders.c.client_id.in_(bindparam("ids", expanding=True)))


_Q_FILL_IDS_IN = select(_fills.c.fill_id).where(
    *_of_wallet(_fills), _fills.c.fill_id.in_(bindparam("ids", expanding=True)))


_Q_STATUS_CURSOR = select(_status.c.input_cursor).where(*_of_wallet(_status))


_Q_BATCH_KNOWN = select(_batches.c.batch_id).where(
    *_of_wallet(_batches), _batches.c.input_cursor == bindparam("cursor"),
    _batches.c.digest == bindparam("digest"))


_Q_BATCH_IDS = select(_batches.c.batch_id, _batches.c.input_cursor, _batches.c.digest).where(
    *_of_wallet(_batches), _batches.c.input_cursor.between(bindparam("lo"), bindparam("hi")))


_UPD_ORDER = _orders.update().where(
    _orders.c.run_id == bindparam("k_run"), _orders.c.wallet == bindparam("k_wallet"),
    _orders.c.client_id == bindparam("k_cid"))


_INSERT = {t.name: t.insert() for t in (_orders, _batches, _events, _phases, _fills)}


# (dialect, statement, parameter keys) -> compiled; the statements are the module's own
_COMPILED: dict[tuple[str, int, tuple[str, ...]], Any] = {}


def _execute_many(conn: Connection, stmt: Any, rows: list[dict[str, Any]]) -> None:
    """executemany of ``stmt`` straight to the driver, compiled once per dialect and keys:
    SQLAlchemy's per-row parameter processing costs more than the rows' insert itself, and
    these values are plain already (str, int, float, bool, None, bytes)."""
    if not rows:
        return
    keys = tuple(rows[0])
    cache_key = (conn.dialect.name, id(stmt), keys)
    compiled = _COMPILED.get(cache_key)
    if compiled is None:
        compiled = _COMPILED[cache_key] = stmt.compile(dialect=conn.dialect, column_keys=list(keys))
    params: list[Any]
    if compiled.positional:
        order = compiled.positiontup
        params = list(map(operator.itemgetter(*order), rows)) if len(order) > 1 else [(r[order[0]],) for r in rows]
    else:
        params = rows
    conn.exec_driver_sql(compiled.string, params)


@dataclass(slots=True)
class _WalletRows:
    """One wallet's rows as the transaction goes: read once, changed in memory, written last."""

    run_id: int
    wallet: str
    orders: dict[str, dict[str, Any]]  # client id -> the row as it will be written
    written: dict[str, dict[str, Any]]  # client id -> the row as stored (loaded or inserted)
    fill_ids: set[str]  # stored, or written by this transaction
    db_latest: int | None  # the status row's cursor before this transaction
    latest: int | None
    new: list[str] = field(default_factory=list)  # client ids to insert, in intent order
    digests: set[tuple[int, str]] = field(default_factory=set)  # batches added here
    status: WalletStatus | None = None
    status_cursor: int = 0


class _GroupWriter:
    """Intents and batches applied in their order to the wallets' rows in memory (read once
    per wallet), then written with a few statements per table: the same rules as one
    transaction per intent and per batch, at a fraction of the statements."""

    def __init__(self, journal: Journal, conn: Connection, ops: Sequence[_Op]) -> None:
        self.j, self.conn, self.ops = journal, conn, ops
        self.wallets: dict[tuple[int, str], _WalletRows] = {}
        self.batch_rows: list[dict[str, Any]] = []
        self.fill_rows: list[dict[str, Any]] = []
        self.event_rows: list[tuple[int, list[dict[str, Any]], list[dict[str, Any]], _Batch]] = []

    def write(self, checkpoints: Mapping[tuple[int, str], Checkpoint]) -> None:
        conn = self.conn
        keys = sorted({(op.run_id, op.wallet) for op in self.ops})
        for run_id, wallet in keys:  # one lock order for every writer
            self.j._require_wallet(conn, run_id, wallet)
        for run_id, token in dict.fromkeys((op.run_id, op.lease) for op in self.ops):
            self.j._check_lease(conn, run_id, token)
        for key in keys:
            self.wallets[key] = self._load(*key)
        for op in self.ops:
            if isinstance(op, _Intent):
                self._intent(op)
            else:
                self._batch(op)
        self._write_rows(checkpoints)

    def _load(self, run_id: int, wallet: str) -> _WalletRows:
        conn, key = self.conn, {"run_id": run_id, "wallet": wallet}
        ids: dict[str, None] = {}
        fill_ids: dict[str, None] = {}
        for op in self.ops:
            if op.run_id != run_id or op.wallet != wallet:
                continue
            if isinstance(op, _Intent):
                ids[op.spec.client_id] = None
                continue
            ids.update(dict.fromkeys(r["client_id"] for r in op.events))
            ids.update(dict.fromkeys(op.venue_ids))
            ids.update(dict.fromkeys(f.order_id for f in op.fills))
            fill_ids.update(dict.fromkeys(f.fill_id for f in op.fills))
        orders: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(list(ids)):
            for r in conn.execute(_Q_ORDERS_IN, {**key, "ids": chunk}).mappings():
                orders[r["client_id"]] = dict(r)
        stored: set[str] = set()
        for chunk in _chunks([f for f in fill_ids if f]):
            stored.update(conn.execute(_Q_FILL_IDS_IN, {**key, "ids": chunk}).scalars())
        latest = conn.execute(_Q_STATUS_CURSOR, key).scalar_one_or_none()
        return _WalletRows(run_id, wallet, orders, {cid: dict(r) for cid, r in orders.items()},
                           stored, latest, latest)

    def _state(self, w: _WalletRows, cid: str) -> OrderStatus:
        raw = w.orders[cid]["status"]
        try:
            return OrderStatus(raw)
        except ValueError:
            raise JournalError(
                f"journal {self.j.location}: order {cid} of wallet {w.wallet!r} in run {w.run_id}: "
                f"column orders.status holds {raw!r}, not an order status "
                f"({', '.join(OrderStatus)}); the journal was edited or is corrupt"
            ) from None

    def _intent(self, op: _Intent) -> None:
        w = self.wallets[(op.run_id, op.wallet)]
        spec, cid = op.spec, op.spec.client_id
        columns = _spec_columns(spec)
        row = w.orders.get(cid)
        if row is None:
            w.orders[cid] = {
                "run_id": op.run_id, "wallet": op.wallet, "client_id": cid, "status": OrderStatus.NEW,
                "filled_qty": 0.0, "created_ts": op.ts, "updated_ts": op.ts, "venue_id": None, **columns,
            }
            w.new.append(cid)
            return
        status = self._state(w, cid)
        same = all(row[k] == v for k, v in columns.items())
        if same and status is not OrderStatus.REJECTED:
            return
        if status not in (OrderStatus.NEW, OrderStatus.REJECTED):
            raise JournalError(
                f"journal {self.j.location}: client id {cid} of wallet {op.wallet!r} "
                f"is already an order in status {status} with a different spec; "
                "a client id must never be reused for another order"
            )
        row.update(status=OrderStatus.NEW, updated_ts=op.ts, **columns)

    def _batch(self, op: _Batch) -> None:
        w = self.wallets[(op.run_id, op.wallet)]
        closed = w.latest if w.latest is not None and op.cursor < w.latest else None
        if op.request is not None:
            self.j._close_request(self.conn, op.run_id, op.request)
        batch: int | None = None  # index into batch_rows of a new batch
        if op.events or op.phases:
            body = json.dumps([[list(r.values()) for r in op.events], [list(r.values()) for r in op.phases]])
            digest = hashlib.sha256(body.encode()).hexdigest()
            known = (op.cursor, digest) in w.digests or (
                w.db_latest is not None and op.cursor <= w.db_latest and self.conn.execute(_Q_BATCH_KNOWN, {
                    "run_id": op.run_id, "wallet": op.wallet, "cursor": op.cursor, "digest": digest,
                }).first() is not None
            )
            if not known:
                if closed is not None:
                    raise _diverged(op.wallet, op.cursor, closed,
                                    "order events or phases other than those journaled for it")
                w.digests.add((op.cursor, digest))
                batch = len(self.batch_rows)
                self.batch_rows.append({"run_id": op.run_id, "wallet": op.wallet,
                                        "input_cursor": op.cursor, "ts": op.ts, "digest": digest})
        new_fills = self._fills(w, op, closed)
        named = {r["client_id"] for r in op.events} | set(op.venue_ids)
        unknown = sorted(named - w.orders.keys())
        if unknown:
            raise JournalError(
                f"commit_batch: order event for unknown client id(s) {', '.join(unknown)} of wallet "
                f"{op.wallet!r}; record_intent must be called before an order is sent"
            )
        before: dict[str, float] = {}  # filled qty before this batch, of the orders it fills
        for f in new_fills:  # summed in journal order, as a SUM over the fills would
            row = w.orders.get(f.order_id)
            if row is not None:
                before.setdefault(f.order_id, row["filled_qty"])
                row["filled_qty"] += float(f.qty)
        if batch is not None:
            self._apply_events(w, op, before)
            self.event_rows.append((batch, op.events, op.phases, op))
        for cid, venue_id in op.venue_ids.items():
            w.orders[cid]["venue_id"] = venue_id
        if w.latest is None or op.cursor >= w.latest:
            w.status = op.status
            w.status_cursor = w.latest = op.cursor

    def _fills(self, w: _WalletRows, op: _Batch, closed: int | None) -> list[FillRecord]:
        """The batch's fills not stored yet (queued for insertion). ``closed``: the wallet's
        latest cursor when the batch's is below it (a replay, which must bring no new fill)."""
        for f in op.fills:
            if not f.fill_id:
                raise JournalError(f"commit_batch: fill of order {f.order_id} at {f.ts} has no fill_id")
        new: list[FillRecord] = []
        for f in op.fills:
            if f.fill_id in w.fill_ids:
                continue
            w.fill_ids.add(f.fill_id)
            new.append(f)
        if new and closed is not None:
            raise _diverged(op.wallet, op.cursor, closed, "fill(s) not journaled for it ("
                            + ", ".join(f.fill_id for f in new[:3]) + ("...)" if len(new) > 3 else ")"))
        self.fill_rows.extend({
            "run_id": op.run_id, "wallet": op.wallet, "input_cursor": op.cursor, "fill_id": f.fill_id,
            "ts": int(f.ts), "side": str(f.side), "qty": float(f.qty), "price": float(f.price),
            "fee": float(f.fee), "liquidity": f.liquidity, "client_id": f.order_id,
            "kind": f.kind, "unit": f.unit, "phase": op.fill_phases.get(f.fill_id),
            "position_after": float(f.position_after), "realized_pnl_cum": float(f.realized_pnl_cum),
        } for f in new)
        return new

    def _apply_events(self, w: _WalletRows, op: _Batch, before: Mapping[str, float]) -> None:
        """Run the batch's order events through core's order transition table. A "filled"
        event is a FILL when the order's fills cover its qty then, else a FILL_PARTIAL; the
        order's last one in the batch is judged on all the batch's fills."""
        last_fill = {r["client_id"]: i for i, r in enumerate(op.events) if r["event"] == "filled"}
        running: dict[str, float] = {}
        for i, r in enumerate(op.events):
            cid = r["client_id"]
            row = w.orders[cid]
            state = self._state(w, cid)
            trigger = _EVENT_TRIGGER[r["event"]]
            if trigger is None:
                if last_fill[cid] == i:
                    done = row["filled_qty"]  # with all of the batch's fills
                else:
                    running[cid] = running.get(cid, 0.0) + r["qty"]
                    done = before.get(cid, row["filled_qty"]) + running[cid]
                full = done >= row["qty"] * (1 - _QTY_RTOL)
                trigger = OrderTrigger.FILL if full else OrderTrigger.FILL_PARTIAL
            if state is OrderStatus.REJECTED and trigger in _RESTART:
                state = OrderStatus.NEW
            try:
                row["status"] = next_status(state, trigger)
            except InvalidOrderTransition:
                raise JournalError(
                    f"journal {self.j.location}: order {cid} of wallet {op.wallet!r} in run {op.run_id}: "
                    f"event {r['event']!r} of input {op.cursor} is an illegal transition from status "
                    f"{state} ({state} -> {trigger}); a second writer, or a venue report out of order"
                ) from None
            row["updated_ts"] = max(int(row["updated_ts"]), r["ts"])

    def _write_rows(self, checkpoints: Mapping[tuple[int, str], Checkpoint]) -> None:
        conn = self.conn
        new_orders = []
        for w in self.wallets.values():
            for cid in w.new:
                row = w.orders[cid]
                new_orders.append({**row, "status": str(row["status"])})
                w.written[cid] = dict(row)
        if new_orders:
            _execute_many(conn, _INSERT[_orders.name], new_orders)
        ids: dict[tuple[int, str, int, str], int] = {}
        if self.batch_rows:
            # executemany, then the ids read back by their unique key: SQLite's RETURNING in
            # parameter order would cost one statement per row
            _execute_many(conn, _INSERT[_batches.name], self.batch_rows)
            for w in self.wallets.values():
                cursors = [b["input_cursor"] for b in self.batch_rows
                           if b["run_id"] == w.run_id and b["wallet"] == w.wallet]
                if cursors:
                    for batch_id, cursor, digest in conn.execute(_Q_BATCH_IDS, {
                        "run_id": w.run_id, "wallet": w.wallet, "lo": min(cursors), "hi": max(cursors),
                    }):
                        ids[(w.run_id, w.wallet, int(cursor), str(digest))] = int(batch_id)
        self.j._insert_fills(conn, self.fill_rows)
        events: list[dict[str, Any]] = []
        phases: list[dict[str, Any]] = []
        for index, batch_events, batch_phases, op in self.event_rows:
            b = self.batch_rows[index]
            batch_id = ids[(op.run_id, op.wallet, op.cursor, b["digest"])]
            head = {"run_id": op.run_id, "wallet": op.wallet, "input_cursor": op.cursor, "batch_id": batch_id}
            events.extend({**head, "seq": i, **r} for i, r in enumerate(batch_events))
            phases.extend({**head, "seq": i, **r} for i, r in enumerate(batch_phases))
        if events:
            _execute_many(conn, _INSERT[_events.name], events)
        if phases:
            _execute_many(conn, _INSERT[_phases.name], phases)
        updates = []
        for w in self.wallets.values():
            for cid, row in w.orders.items():
                was = w.written.get(cid)
                if was is None or _order_state(row) != _order_state(was):
                    updates.append({"k_run": w.run_id, "k_wallet": w.wallet, "k_cid": cid,
                                    **{c: row[c] for c in _ORDER_STATE}, "status": str(row["status"])})
        if updates:
            _execute_many(conn, _UPD_ORDER, updates)
        for w in self.wallets.values():
            if w.status is not None:
                values = {f.name: getattr(w.status, f.name) for f in fields(WalletStatus)}
                _upsert_latest(conn, _status, w.run_id, w.wallet, w.status_cursor, values, stored=w.db_latest)
        for (run_id, wallet), cp in checkpoints.items():
            _upsert_latest(conn, _checkpoints, run_id, wallet, cp.cursor, {"ts": cp.ts, "snapshot": cp.snapshot})


def _event_rows(events: Sequence[OrderLogRecord]) -> list[dict[str, Any]]:
    rows = [{
        "client_id": e.order_id, "ts": int(e.ts), "event": e.event, "kind": e.kind,
        "side": str(e.side), "qty": float(e.qty),
        "trigger_price": None if e.trigger_price is None else float(e.trigger_price),
        "unit": e.unit, "price": None if e.price is None else float(e.price), "reason": e.reason,
    } for e in events]
    for r in rows:
        if r["event"] not in _EVENT_TRIGGER:
            raise JournalError(
                f"commit_batch: unknown order event {r['event']!r} of {r['client_id']} "
                f"(known: {', '.join(_EVENT_TRIGGER)})"
            )
    return rows


_UNREAD: Any = object()


def _upsert_latest(
    conn: Connection, table: Table, run_id: int, wallet: str, cursor: int, values: dict[str, Any],
    *, stored: int | None = _UNREAD,
) -> None:
    """Keep one row per wallet: the one of the highest input cursor (a replay of an older
    input, already superseded, leaves it alone). ``stored``: the row's cursor when the caller
    has read it in this transaction (None: no row)."""
    key = (table.c.run_id == run_id, table.c.wallet == wallet)
    if stored is _UNREAD:
        stored = conn.execute(select(table.c.input_cursor).where(*key)).scalar_one_or_none()
    values = {**values, "run_id": run_id, "wallet": wallet, "input_cursor": cursor}
    if stored is None:
        conn.execute(table.insert().values(**values))
    elif cursor >= stored:
        conn.execute(table.update().where(*key).values(**values))


def _diverged(wallet: str, cursor: int, latest: int, what: str) -> JournalError:
    return JournalError(
        f"commit_batch: input {cursor} of wallet {wallet!r} comes again with {what}, after the "
        f"wallet's journal moved on to input {latest}: a second writer on this wallet, or a "
        "replay that is not deterministic; nothing was written"
    )
