"""The run journal (SPEC §8): orders, fills, phases, wallet status and checkpoints.

The live engine processes one market input at a time. Before an order goes to the venue it
records the *intent* (``record_intent``, committed at once; see "Group commit" for PAPER
replays); after the input is processed it writes everything the input produced in ONE
transaction (``commit_batch``): order events, fills, phase transitions, the wallet's status
row and a checkpoint (runner snapshot + input cursor). After a crash the engine loads the
checkpoint and re-processes the inputs after the cursor; strategies are deterministic, so the
same client ids come back and the journal makes the re-writes idempotent:

* orders are unique on (run_id, wallet, client_id); re-recording the same intent is a no-op;
* fills are unique on (run_id, wallet, fill_id); a fill id already stored is ignored;
* each batch's order events and phases are registered under (run_id, wallet, input_cursor,
  sha256 of their content): the same batch committed again for the same cursor is a replay and
  adds nothing; a different batch for the wallet's latest cursor (a shutdown or flatten batch
  after the input's own) is appended;
* a cursor below the wallet's latest is closed: a batch there must be a replay of what is
  stored (same events and phases, no new fill). A different one means two writers on one
  wallet or a replay that is not deterministic, and is refused (JournalError), nothing written;
* the status row and the checkpoint keep one row per wallet, that of the highest cursor.

Group commit: a PAPER replay runs against the simulated venue, which nobody outside sees, and
its inputs can be played again. Its intents (``record_intent(durable=False)``) and batches
(``commit_batch(defer=...)``) are queued and written in their order in ONE transaction per
group (a group doubles from 1 to ``GROUP_MAX_BATCHES`` batches, or is written once
``GROUP_MAX_S`` old); each wallet of a group gets the checkpoint of its state when the group
is written. A crash loses the queued group only, and the resume replays from the last
checkpoint. Everything else (RECOMMENDATION, a live feed, REAL) commits each intent before
the order is sent and each batch at once.

Orders follow core's order lifecycle (``core.orders``: OrderStatus, OrderTrigger and its
transition table): each event moves its order through the table, and an illegal move (an
event for a closed order, a status the table does not know) is a JournalError naming the
order. A rejected client id may be sent again: its next placement starts over from ``new``.
Rows read back are checked against their columns' types and names: an edited or corrupt
journal is a JournalError naming the run, wallet, row and column.

Column naming: what the venue reported keeps the venue's meaning (``venue_id``, ``fill_id``,
``price``, ``fee``, ``liquidity``, the event ``reason``); the bot's own fields are named for the
bot (``client_id``, ``kind``, ``unit``, ``phase``, ``position_after``, ``realized_pnl_cum``).
Positions are derivable from fills (``position_from_fills``).

Storage: SQLite by default (``./state/hedgekit.db``, WAL, synchronous=NORMAL: a committed batch
survives a process crash), or any SQLAlchemy URL. An existing SQLite file is inspected
read-only (header, application id, meta table, schema version) before anything is written; a
file that is not a hedgekit journal is refused and never modified. A new SQLite journal is
built in a temporary file and renamed into place, so a crash never leaves a half-made journal.

PostgreSQL (tested): ``postgresql://user:pass@host/db`` uses the psycopg 3 driver
(``pip install 'hedgekit[postgres]'``; ``postgresql+psycopg2://`` etc. pick another one). A new
journal is created in one transaction, only in a database (the URL's default schema) without
tables; one holding other tables is refused and left untouched. Transactions are READ
COMMITTED; each write locks its wallet's row first (``SELECT ... FOR NO KEY UPDATE``), so writes
to a wallet are serialized as SQLite's ``BEGIN IMMEDIATE`` serializes them. A read-only journal's
sessions are ``READ ONLY``. Timestamps are integer milliseconds (UTC) on every backend.

One writer per run (schema version 2): a process that writes a run's wallets holds the run's
*lease* (``run_leases``: holder ``pid@host``, a random token, heartbeat). ``acquire_lease`` takes
it when nobody holds it or the holder's heartbeat is older than the caller's timeout (the holder
is presumed dead) or the caller knows the holder died (same machine, no such pid);
``commit_batch`` and ``record_intent`` given the holder's token check, in their transaction,
that the token still holds the lease, so a process that stalled past the
timeout and was replaced writes nothing (``LeaseLost``). Other processes ask the holder to act
through ``requests`` (a flatten): the holder marks a request done in the same transaction as the
batch that carries it out, so a request is never half done nor done twice.

Older journals: a journal of schema version 1 opened for writing gets the version 2 tables
(``run_leases``, ``requests``; additive, in one transaction) and its version is raised; opened
read-only it is read as it is. A newer version is refused.

The parts: ``records`` (rows, errors, constants), ``schema`` (tables, versions, what a column
may hold), ``backends`` (opening SQLite files and URLs), ``base`` (engine and transactions),
``lease`` (the run's lease and requests), ``queries`` (reads), ``writer`` (the write path);
this module puts them together as ``Journal`` and re-exports what its importers use.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from hedgekit.core.orders import OrderSpec
from hedgekit.core.records import FillRecord, OrderLogRecord
from hedgekit.store.backends import _sqlite_path, open_sqlite, open_url
from hedgekit.store.lease import LeaseMixin
from hedgekit.store.queries import QueryMixin

# What importers of ``hedgekit.store.journal`` use lives in these modules now:
from hedgekit.store.records import (  # noqa: F401 (re-exported)
    APPLICATION,
    DEFAULT_PATH,
    REQUEST_DONE,
    REQUEST_FAILED,
    REQUEST_PENDING,
    SCHEMA_VERSION,
    WORKING_STATUSES,
    Checkpoint,
    CheckpointSource,
    FillRow,
    JournalError,
    Lease,
    LeaseLost,
    OrderEventRow,
    OrderRow,
    RequestOutcome,
    RequestRow,
    RunRow,
    WalletStatus,
    _inserted_id,
)
from hedgekit.store.schema import _fills, _runs, _wallets
from hedgekit.store.writer import (
    _INSERT,
    _Batch,
    _checkpoints_of,
    _event_rows,
    _execute_many,
    _GroupWriter,
    _Intent,
    _Op,
)

__all__ = [
    "APPLICATION",
    "DEFAULT_PATH",
    "REQUEST_DONE",
    "REQUEST_FAILED",
    "REQUEST_PENDING",
    "SCHEMA_VERSION",
    "WORKING_STATUSES",
    "Checkpoint",
    "CheckpointSource",
    "FillRow",
    "Journal",
    "JournalError",
    "Lease",
    "LeaseLost",
    "OrderEventRow",
    "OrderRow",
    "RequestOutcome",
    "RequestRow",
    "RunRow",
    "WalletStatus",
]


class Journal(LeaseMixin, QueryMixin):
    """A run journal. Open with ``Journal.open``; one writer per journal at a time."""

    # -- open
    @classmethod
    def open(
        cls, url: str | os.PathLike[str] | None = None, *, create: bool = True, readonly: bool = False
    ) -> Journal:
        """Open (or create) a journal.

        ``url``: None -> ``./state/hedgekit.db``; a plain path -> a SQLite file; otherwise any
        SQLAlchemy URL. ``readonly`` never writes and requires an existing journal.
        """
        path, sa_url = _sqlite_path(url)
        if path is not None:
            engine, where, version = open_sqlite(path, create=create and not readonly, readonly=readonly)
        else:
            engine, where, version = open_url(sa_url, create=create and not readonly, readonly=readonly)
        return cls(engine, location=where, schema_version=version, readonly=readonly)

    # -- runs and wallets
    def start_run(self, *, mode: str, config_json: str, source: str, started_ts: int) -> int:
        with self._write("start a run") as conn:
            res = conn.execute(_runs.insert().values(
                mode=mode, config_json=config_json, source=source, started_ts=started_ts,
                ended_ts=None, status="running",
            ))
            return _inserted_id(res)

    def finish_run(self, run_id: int, ended_ts: int, status: str = "finished") -> None:
        with self._write("finish a run") as conn:
            res = conn.execute(
                _runs.update().where(_runs.c.run_id == run_id).values(ended_ts=ended_ts, status=status)
            )
            if res.rowcount != 1:
                raise JournalError(f"journal {self.location}: finish_run: no run {run_id}")

    def ensure_wallet(self, run_id: int, name: str, strategy: str) -> None:
        with self._write("register a wallet") as conn:
            if conn.execute(select(_runs.c.run_id).where(_runs.c.run_id == run_id)).first() is None:
                raise JournalError(f"journal {self.location}: ensure_wallet({name!r}): no run {run_id}")
            known = conn.execute(
                select(_wallets.c.strategy).where(_wallets.c.run_id == run_id, _wallets.c.wallet == name)
            ).scalar_one_or_none()
            if known is None:
                conn.execute(_wallets.insert().values(run_id=run_id, wallet=name, strategy=strategy))
            elif known != strategy:
                raise JournalError(
                    f"journal {self.location}: wallet {name!r} of run {run_id} runs strategy "
                    f"{known!r}, not {strategy!r}; start a new run to change it"
                )

    # -- orders
    def record_intent(
        self, run_id: int, wallet: str, spec: OrderSpec, ts: int, *, lease: str | None = None,
        durable: bool = True,
    ) -> None:
        """Record an order before it is sent. Idempotent per client id.

        Same spec again: no-op (a replay), except that a rejected order goes back to ``new``
        (a retry with the same id). A different spec is accepted only while the order is
        ``new`` or ``rejected`` (a retry with adjusted parameters); otherwise JournalError.
        ``lease``: the writer's lease token, checked (LeaseLost when taken over).
        ``durable``: committed at once (a real venue, or a person reading recommendations,
        must never see an order the journal does not hold). False: queued and written in the
        transaction of the next batch written (group commit), for a simulated venue only,
        where nothing outside sees the order before that batch; a crash loses the intent with
        the batch, and the replay after it makes both again.
        """
        if spec.wallet != wallet:
            raise JournalError(
                f"record_intent: order {spec.client_id} belongs to wallet {spec.wallet!r}, not {wallet!r}"
            )
        op = _Intent(run_id, wallet, spec, ts, lease)
        if not durable:
            self._queue(op)
            return
        if self._pending:  # the queued ops' wallets may be mid-input: no checkpoint to take
            raise RuntimeError("record_intent(durable=True) while batches are queued for a group commit")
        self._write_ops([op], "record an order intent")

    # -- the batch
    def commit_batch(
        self, run_id: int, wallet: str, *, cursor: int, ts: int,
        order_events: Sequence[OrderLogRecord], fills: Sequence[FillRecord],
        fill_phases: Mapping[str, str], phases: Sequence[tuple[int, str]],
        status: WalletStatus, snapshot: bytes | None,
        venue_ids: Mapping[str, str] | None = None,
        lease: str | None = None, request: RequestOutcome | None = None,
        defer: CheckpointSource | None = None,
    ) -> None:
        """Write what one input produced, atomically (all of it or none of it).

        ``cursor`` identifies the input (increasing per wallet). The same batch committed again
        for the same cursor is a replay and adds nothing; a different one is appended at the
        wallet's latest cursor (a follow-up: shutdown, flatten) and refused below it (see the
        module doc). The status row and the checkpoint are replaced only by a batch of a
        cursor >= theirs.
        ``fill_phases`` maps fill id -> the wallet's phase at that fill. ``phases`` are
        (ts, phase) transitions. ``snapshot`` None leaves the checkpoint where it was (a
        checkpoint's cursor always matches its snapshot). ``venue_ids`` maps client id ->
        the venue's order id, when the venue reports one.
        ``lease``: the writer's lease token, checked in the transaction (LeaseLost when taken
        over). ``request``: a pending request this batch carries out, closed with it.

        ``defer`` (group commit, for a replay against the simulated venue only): the batch is
        queued and written together with the queued ones, in one transaction, once the group
        is due (``group_due``) or by the next batch committed without ``defer``. Each wallet
        of the group then gets the checkpoint its latest ``defer`` returns (its state at that
        moment, a cursor at or after its last batch), so a wallet's checkpoint never lags its
        batches. A crash loses the queued batches only: the resume replays the inputs after
        the last checkpoint and makes them again.
        """
        if status.run_id != run_id or status.wallet != wallet:
            raise JournalError(
                f"commit_batch: status row is for run {status.run_id} wallet {status.wallet!r}, "
                f"not run {run_id} wallet {wallet!r}"
            )
        op = _Batch(
            run_id, wallet, cursor, ts, _event_rows(order_events), fills, fill_phases,
            [{"ts": int(t), "phase": str(p)} for t, p in phases], status, snapshot,
            venue_ids or {}, lease, request, defer,
        )
        if defer is not None:
            self._queue(op)
            if not self.group_due():
                return
            ops = self._take_pending()
            self._group_size = min(2 * self._group_size, self.GROUP_MAX_BATCHES)
        else:
            ops = [*self._take_pending(), op]
        what = f"commit the batch of input {cursor} of wallet {wallet!r}"
        n = sum(isinstance(o, _Batch) for o in ops)
        if n > 1:
            first = next(o for o in ops if isinstance(o, _Batch))
            what = f"commit {n} batches (inputs {first.cursor}..{cursor})"
        self._write_ops(ops, what)

    # A deferred group is written once it holds ``_group_size`` batches, which doubles from 1
    # to GROUP_MAX_BATCHES (a run's first batches are committed as promptly as single ones;
    # a long replay pays for few commits), or once its first op is GROUP_MAX_S seconds old.
    GROUP_MAX_BATCHES = 256

    GROUP_MAX_S = 0.5

    def _queue(self, op: _Op) -> None:
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append(op)
        if isinstance(op, _Batch):
            self._pending_batches += 1

    def group_due(self) -> bool:
        """Ops are queued (``defer``/``durable=False``) and the group is full or old enough."""
        return bool(self._pending) and (
            self._pending_batches >= self._group_size
            or time.monotonic() - self._pending_since >= self.GROUP_MAX_S
        )

    def discard_pending(self) -> None:
        """Drop what is queued for a group commit (the writer failed and stops: its resume
        replays from the last checkpoint)."""
        self._take_pending()

    def _write_ops(self, ops: list[_Op], what: str) -> None:
        """Write intents and batches, in their order, in ONE transaction (see _GroupWriter)."""
        checkpoints = _checkpoints_of(ops)  # the snapshots are made before the lock is taken
        with self._write(what) as conn:
            _GroupWriter(self, conn, ops).write(checkpoints)

    def _insert_fills(self, conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert fill rows (already deduplicated); returns them."""
        if rows:
            _execute_many(conn, _INSERT[_fills.name], rows)
        return rows
