"""The run journal (SPEC §8): orders, fills, phases, wallet status and checkpoints.

The live engine processes one market input at a time. Before an order goes to the venue it
records the *intent* (``record_intent``, committed at once; see "Group commit" for PAPER
replays); after the input is processed it writes everything the input produced in ONE
transaction (``commit_batch``): order events,
fills, phase transitions, the wallet's status row and a checkpoint (runner snapshot + input
cursor). After a crash the engine loads the checkpoint and re-processes the inputs after the
cursor; strategies are deterministic, so the same client ids come back and the journal makes
the re-writes idempotent:

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
is presumed dead) or the caller knows the holder died (same machine, no such pid); ``commit_batch`` and ``record_intent`` given the holder's token check, in
their transaction, that the token still holds the lease, so a process that stalled past the
timeout and was replaced writes nothing (``LeaseLost``). Other processes ask the holder to act
through ``requests`` (a flatten): the holder marks a request done in the same transaction as the
batch that carries it out, so a request is never half done nor done twice.

Older journals: a journal of schema version 1 opened for writing gets the version 2 tables
(``run_leases``, ``requests``; additive, in one transaction) and its version is raised; opened
read-only it is read as it is. A newer version is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import operator
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Double,
    Engine,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    pool,
    select,
    type_coerce,
)
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from hedgekit.core.errors import HedgekitError
from hedgekit.core.orders import (
    InvalidOrderTransition,
    OrderKind,
    OrderSpec,
    OrderStatus,
    OrderTrigger,
    OrderType,
    Side,
    next_status,
)
from hedgekit.core.records import FillRecord, OrderLogRecord
from hedgekit.logs import redact

__all__ = [
    "APPLICATION",
    "DEFAULT_PATH",
    "REQUEST_PENDING",
    "SCHEMA_VERSION",
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

APPLICATION = "hedgekit"
SCHEMA_VERSION = 2
DEFAULT_PATH = Path("state") / "hedgekit.db"
# SQLite header field "application id" (offset 68): ASCII "HKJL".
SQLITE_APPLICATION_ID = 0x484B4A4C
_SQLITE_HEADER = b"SQLite format 3\x00"
_BUSY_TIMEOUT_MS = 10_000
# A "filled" event closes the order when the fills cover its qty up to this relative error.
_QTY_RTOL = 1e-9
# Seconds a PostgreSQL connection attempt may take (psycopg), unless the URL says otherwise.
_CONNECT_TIMEOUT_S = 10
# PostgreSQL advisory lock key held while a journal is checked and created ("HKJL").
_PG_CREATE_LOCK = SQLITE_APPLICATION_ID

WORKING_STATUSES = (
    OrderStatus.NEW, OrderStatus.OPEN, OrderStatus.TRIGGERED, OrderStatus.PARTIALLY_FILLED,
)


class JournalError(HedgekitError):
    """The journal cannot be opened, or a write would corrupt or contradict it."""


class LeaseLost(JournalError):
    """A write by a process whose lease on the run was taken over: nothing was written."""


REQUEST_PENDING, REQUEST_DONE, REQUEST_FAILED = "pending", "done", "failed"


# -- rows ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RunRow:
    run_id: int
    mode: str
    config_json: str
    source: str
    started_ts: int
    ended_ts: int | None
    status: str  # "running" until finish_run


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds a run (writes its wallets): ``holder`` is ``pid@host``, ``purpose`` ``run`` or
    ``flatten``; timestamps are the holder's wall clock (ms)."""

    run_id: int
    holder: str
    token: str
    purpose: str
    acquired_ts: int
    heartbeat_ts: int
    host_key: str = ""  # the holder's machine and pid namespace, where its pid means something

    def age_s(self, now_ms: int) -> float:
        """Seconds since the last heartbeat (0 when the holder's clock is ahead)."""
        return max(now_ms - self.heartbeat_ts, 0) / 1000


@dataclass(frozen=True, slots=True)
class RequestRow:
    """A request to the run's holder (``kind`` ``flatten``); ``status`` pending, done or failed."""

    id: int
    run_id: int
    wallet: str
    kind: str
    created_ts: int
    status: str
    result: str | None
    done_ts: int | None


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """How a request ended, committed with the batch that carried it out."""

    request_id: int
    status: str  # REQUEST_DONE or REQUEST_FAILED
    result: str
    done_ts: int


def _inserted_id(res: CursorResult[Any]) -> int:
    key = res.inserted_primary_key
    if key is None:  # only for statements that insert nothing: a bug here, not bad input
        raise RuntimeError("insert returned no primary key")
    return int(key[0])


@dataclass(frozen=True, slots=True)
class WalletStatus:
    """One wallet's latest state, as `hedgekit status` shows it."""

    run_id: int
    wallet: str
    strategy: str
    mode: str
    phase: str
    unit: int | None
    anchor: float | None
    position: float  # signed
    avg_price: float
    realized_pnl: float
    unrealized_pnl: float
    fees: float
    funding: float
    equity: float
    last_price: float | None
    last_price_ts: int | None
    updated_ts: int
    paused: bool = False


@dataclass(frozen=True, slots=True)
class OrderRow:
    client_id: str
    venue_id: str | None  # the venue's own order id, once known
    kind: OrderKind
    order_type: OrderType
    unit: int | None
    side: Side
    qty: float
    trigger: float | None  # stop trigger or limit price (OrderSpec.price)
    reduce_only: bool
    status: OrderStatus
    filled_qty: float  # sum of the journaled fills of this order
    created_ts: int
    updated_ts: int


@dataclass(frozen=True, slots=True)
class FillRow:
    fill_id: str
    client_id: str  # or "liquidation"
    ts: int
    kind: str  # OrderKind value or "liquidation"
    side: Side
    qty: float
    price: float
    fee: float  # quote currency, positive = paid
    unit: int | None
    phase: str | None  # the wallet's phase when the fill happened (from fill_phases)
    position: float  # signed position after the fill
    realized_pnl: float  # cumulative, before fees
    liquidity: str


@dataclass(frozen=True, slots=True)
class OrderEventRow:
    cursor: int
    seq: int
    ts: int
    client_id: str
    event: str  # placed, triggered, filled, cancelled, rejected
    kind: str
    side: Side
    qty: float
    trigger: float | None
    unit: int | None
    price: float | None
    reason: str


# -- schema -------------------------------------------------------------------------------
_md = MetaData()

_meta = Table(
    "hedgekit_meta", _md,
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),
)
_runs = Table(
    "runs", _md,
    Column("run_id", Integer, primary_key=True, autoincrement=True),
    Column("mode", String(32), nullable=False),
    Column("config_json", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("started_ts", BigInteger, nullable=False),
    Column("ended_ts", BigInteger),
    Column("status", Text, nullable=False),
    Index("ix_runs_resume", "mode", "ended_ts"),
)
_wallets = Table(
    "wallets", _md,
    Column("run_id", Integer, nullable=False),
    Column("wallet", String(128), nullable=False),
    Column("strategy", String(128), nullable=False),
    PrimaryKeyConstraint("run_id", "wallet"),
    ForeignKeyConstraint(["run_id"], ["runs.run_id"]),
)
_orders = Table(
    "orders", _md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("wallet", String(128), nullable=False),
    # the bot's own fields (the intent)
    Column("client_id", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("order_type", String(16), nullable=False),
    Column("side", String(4), nullable=False),
    Column("qty", Double, nullable=False),
    Column("trigger_price", Double),
    Column("reduce_only", Boolean, nullable=False),
    Column("unit", Integer),
    Column("status", String(24), nullable=False),
    Column("filled_qty", Double, nullable=False),
    Column("created_ts", BigInteger, nullable=False),
    Column("updated_ts", BigInteger, nullable=False),
    # the venue's field
    Column("venue_id", String(128)),
    UniqueConstraint("run_id", "wallet", "client_id", name="uq_orders_client_id"),
    UniqueConstraint("run_id", "wallet", "venue_id", name="uq_orders_venue_id"),
    ForeignKeyConstraint(["run_id", "wallet"], ["wallets.run_id", "wallets.wallet"]),
)
_batches = Table(  # one row per committed batch that had events or phases
    "batches", _md,
    Column("batch_id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("wallet", String(128), nullable=False),
    Column("input_cursor", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("digest", String(64), nullable=False),  # sha256 of the batch's events and phases
    UniqueConstraint("run_id", "wallet", "input_cursor", "digest", name="uq_batches_digest"),
    ForeignKeyConstraint(["run_id", "wallet"], ["wallets.run_id", "wallets.wallet"]),
)
_events = Table(
    "order_events", _md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("wallet", String(128), nullable=False),
    Column("input_cursor", BigInteger, nullable=False),
    Column("batch_id", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("client_id", String(128), nullable=False),
    # as the venue reported it
    Column("event", String(16), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("side", String(4), nullable=False),
    Column("qty", Double, nullable=False),
    Column("trigger_price", Double),
    Column("unit", Integer),
    Column("price", Double),
    Column("reason", Text, nullable=False),
    UniqueConstraint("batch_id", "seq", name="uq_order_events_key"),
    ForeignKeyConstraint(["batch_id"], ["batches.batch_id"]),
    ForeignKeyConstraint(
        ["run_id", "wallet", "client_id"],
        ["orders.run_id", "orders.wallet", "orders.client_id"],
    ),
)
_fills = Table(
    "fills", _md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("wallet", String(128), nullable=False),
    Column("input_cursor", BigInteger, nullable=False),
    # as the venue reported it
    Column("fill_id", String(128), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("side", String(4), nullable=False),
    Column("qty", Double, nullable=False),
    Column("price", Double, nullable=False),
    Column("fee", Double, nullable=False),
    Column("liquidity", String(8), nullable=False),
    # the bot's own fields
    Column("client_id", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("unit", Integer),
    Column("phase", String(128)),
    Column("position_after", Double, nullable=False),
    Column("realized_pnl_cum", Double, nullable=False),
    UniqueConstraint("run_id", "wallet", "fill_id", name="uq_fills_fill_id"),
    ForeignKeyConstraint(["run_id", "wallet"], ["wallets.run_id", "wallets.wallet"]),
)
_phases = Table(
    "phases", _md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("wallet", String(128), nullable=False),
    Column("input_cursor", BigInteger, nullable=False),
    Column("batch_id", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("phase", String(128), nullable=False),
    UniqueConstraint("batch_id", "seq", name="uq_phases_key"),
    ForeignKeyConstraint(["batch_id"], ["batches.batch_id"]),
    ForeignKeyConstraint(["run_id", "wallet"], ["wallets.run_id", "wallets.wallet"]),
)
_status = Table(
    "wallet_status", _md,
    Column("run_id", Integer, nullable=False),
    Column("wallet", String(128), nullable=False),
    Column("strategy", String(128), nullable=False),
    Column("mode", String(32), nullable=False),
    Column("phase", String(128), nullable=False),
    Column("unit", Integer),
    Column("anchor", Double),
    Column("position", Double, nullable=False),
    Column("avg_price", Double, nullable=False),
    Column("realized_pnl", Double, nullable=False),
    Column("unrealized_pnl", Double, nullable=False),
    Column("fees", Double, nullable=False),
    Column("funding", Double, nullable=False),
    Column("equity", Double, nullable=False),
    Column("last_price", Double),
    Column("last_price_ts", BigInteger),
    Column("updated_ts", BigInteger, nullable=False),
    Column("paused", Boolean, nullable=False),
    Column("input_cursor", BigInteger, nullable=False),  # the batch that wrote this row
    PrimaryKeyConstraint("run_id", "wallet"),
    ForeignKeyConstraint(["run_id", "wallet"], ["wallets.run_id", "wallets.wallet"]),
)
_checkpoints = Table(
    "checkpoints", _md,
    Column("run_id", Integer, nullable=False),
    Column("wallet", String(128), nullable=False),
    Column("input_cursor", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("snapshot", LargeBinary, nullable=False),
    PrimaryKeyConstraint("run_id", "wallet"),
    ForeignKeyConstraint(["run_id", "wallet"], ["wallets.run_id", "wallets.wallet"]),
)
# -- schema version 2: the run's lease and requests to its holder
_leases = Table(
    "run_leases", _md,
    Column("run_id", Integer, primary_key=True, autoincrement=False),
    Column("holder", Text, nullable=False),  # pid@host
    Column("token", String(64), nullable=False),  # random, per acquisition
    Column("purpose", String(16), nullable=False),  # run | flatten
    Column("acquired_ts", BigInteger, nullable=False),
    Column("heartbeat_ts", BigInteger, nullable=False),
    Column("host_key", String(200), nullable=False),
    ForeignKeyConstraint(["run_id"], ["runs.run_id"]),
)
_requests = Table(
    "requests", _md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("wallet", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("created_ts", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("result", Text),
    Column("done_ts", BigInteger),
    Index("ix_requests_pending", "run_id", "status"),
    ForeignKeyConstraint(["run_id", "wallet"], ["wallets.run_id", "wallets.wallet"]),
)
_TABLES = tuple(t.name for t in _md.sorted_tables)
# The tables of each schema version (a version only ever adds tables).
_V1_TABLES = (
    "hedgekit_meta", "runs", "wallets", "orders", "batches", "order_events", "fills", "phases",
    "wallet_status", "checkpoints",
)
_TABLES_OF = {1: _V1_TABLES, 2: _TABLES}


# -- opening ------------------------------------------------------------------------------
def _sqlite_connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """A DBAPI connection with our settings; read-only ones never create or change a file.

    Read-only: when a ``-wal`` file exists (a writer is connected, or one crashed) the file is
    opened ``mode=ro`` so committed WAL content is seen; otherwise no writer is connected and
    the file is opened ``immutable=1``, which creates no ``-wal``/``-shm`` side files.
    """
    if readonly:
        wal = path.with_name(path.name + "-wal")
        flag = "mode=ro" if wal.exists() else "immutable=1"
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?{flag}", uri=True, timeout=_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None, check_same_thread=False,
        )
    else:
        conn = sqlite3.connect(
            str(path), timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
            check_same_thread=False,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit is in the WAL before it returns, so a process crash
        # (SIGKILL) loses nothing committed; only a power loss may lose the latest commits,
        # never corrupt the file. FULL would fsync every commit.
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _sqlite_engine(path: Path, *, readonly: bool) -> Engine:
    engine = create_engine(
        "sqlite://",
        creator=lambda: _sqlite_connect(path, readonly=readonly),
        # read-only: a fresh connection each time, so the ro/immutable choice is current
        poolclass=pool.NullPool if readonly else pool.QueuePool,
    )
    # sqlite3 runs with isolation_level=None (no implicit BEGIN); we begin explicitly.
    # IMMEDIATE takes the write lock up front, so a read-then-write batch never deadlocks.
    begin_sql = "BEGIN" if readonly else "BEGIN IMMEDIATE"

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin_sql)

    return engine


def _check_sqlite_file(path: Path) -> None:
    """Refuse, without writing anything, a file that is not a SQLite database."""
    size = path.stat().st_size
    if size == 0:
        raise JournalError(
            f"journal {path}: the file is empty (0 bytes), not a hedgekit journal; "
            "remove it or choose another path"
        )
    with path.open("rb") as fh:
        header = fh.read(100)
    if header[:16] != _SQLITE_HEADER:
        raise JournalError(
            f"journal {path}: not a SQLite database (first bytes {header[:16]!r}); "
            "the file is corrupt or belongs to something else; choose another path"
        )
    if len(header) >= 72:
        app_id = int.from_bytes(header[68:72], "big")
        if app_id not in (0, SQLITE_APPLICATION_ID):
            raise JournalError(
                f"journal {path}: SQLite application id {app_id:#010x} belongs to another "
                f"application (hedgekit's is {SQLITE_APPLICATION_ID:#010x}); choose another path"
            )


def _check_schema(conn: Connection, where: str) -> int | None:
    """The stored schema version, or None when there is no hedgekit table at all.

    Raises JournalError for a database that holds another application's tables, a meta table
    naming another application, a newer or unknown schema version, or missing tables.
    """
    tables = set(inspect(conn).get_table_names())
    if _meta.name not in tables:
        clash = sorted(tables & set(_TABLES))
        if clash:
            raise JournalError(
                f"journal {where}: has table(s) {', '.join(clash)} but no {_meta.name} table: "
                "not a hedgekit journal; choose another database"
            )
        return None
    meta = dict(conn.execute(select(_meta.c.key, _meta.c.value)).all())
    app = meta.get("application")
    if app != APPLICATION:
        raise JournalError(
            f"journal {where}: {_meta.name} names application {app!r}, not {APPLICATION!r}; "
            "choose another database"
        )
    raw = meta.get("schema_version", "")
    try:
        version = int(raw)
    except ValueError:
        raise JournalError(f"journal {where}: invalid schema_version {raw!r} in {_meta.name}") from None
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"journal {where}: schema version {version} was written by a newer hedgekit "
            f"(this one reads up to {SCHEMA_VERSION}); upgrade hedgekit"
        )
    if version < 1:
        raise JournalError(f"journal {where}: invalid schema version {version}")
    missing = sorted(set(_TABLES_OF[version]) - tables)
    if missing:
        raise JournalError(f"journal {where}: incomplete journal, missing table(s) {', '.join(missing)}")
    return version


def _migrate(conn: Connection, version: int, where: str) -> int:
    """Bring a checked journal of an older ``version`` up to SCHEMA_VERSION: create the tables
    the newer versions add, then record the version (the caller's transaction: all or nothing).
    A table of that name that is already there (not ours) is refused, nothing changed."""
    if version >= SCHEMA_VERSION:
        return version
    new = [t for t in _md.sorted_tables if t.name not in _TABLES_OF[version]]
    clash = sorted({t.name for t in new} & set(inspect(conn).get_table_names()))
    if clash:
        raise JournalError(
            f"journal {where}: schema version {version} also holds table(s) {', '.join(clash)} "
            f"that hedgekit did not create, so it cannot be upgraded to version {SCHEMA_VERSION}; "
            "left untouched"
        )
    for t in new:
        t.create(conn)
    conn.execute(_meta.update().where(_meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))
    return SCHEMA_VERSION


def _create_schema(conn: Connection) -> None:
    _md.create_all(conn)
    conn.execute(_meta.insert(), [
        {"key": "application", "value": APPLICATION},
        {"key": "schema_version", "value": str(SCHEMA_VERSION)},
    ])


def _create_sqlite_file(path: Path) -> None:
    """Build a new journal in a temporary file, then rename it into place (atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.creating-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        engine = _sqlite_engine(tmp, readonly=False)
        try:
            with engine.begin() as conn:
                _create_schema(conn)
                conn.exec_driver_sql(f"PRAGMA application_id={SQLITE_APPLICATION_ID}")
        finally:
            engine.dispose()  # the last connection closes: WAL checkpointed and removed
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        if path.exists():  # created meanwhile by another process: inspect theirs instead
            return
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # not every platform can fsync a directory
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)


def _sqlite_path(url: str | os.PathLike[str] | None) -> tuple[Path | None, str]:
    """(file path for a SQLite file journal or None, SQLAlchemy URL)."""
    if url is None:
        return DEFAULT_PATH, ""
    text = os.fspath(url)
    if "://" not in text:
        return Path(text), ""
    try:
        parsed = make_url(text)
    except ArgumentError as exc:
        raise JournalError(f"journal URL {text!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            return Path(db), ""
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):  # plain postgresql:// -> psycopg 3, not psycopg2
        parsed = parsed.set(drivername=f"postgresql+{driver or 'psycopg'}")
        return None, parsed.render_as_string(hide_password=False)
    return None, text


def _missing_driver(where: str, drivername: str, exc: ImportError) -> str:
    if drivername == "postgresql+psycopg":
        how = "pip install 'hedgekit[postgres]' (or: pip install 'psycopg[binary]')"
    else:
        how = f"install the Python package of the {drivername!r} driver"
    return f"journal {where}: the database driver is not installed ({exc}); {how}"


def _foreign_tables(conn: Connection) -> list[str]:
    """The tables and views of the connection's default schema (a journal's place)."""
    insp = inspect(conn)
    return sorted({*insp.get_table_names(), *insp.get_view_names()})


# -- the write path: intents and batches, one transaction per group -----------------------
@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A wallet's saved state after input ``cursor``: what recovery starts from."""

    cursor: int
    ts: int
    snapshot: bytes


# Makes a wallet's checkpoint from its state at the moment it is called (group commit).
CheckpointSource = Callable[[], Checkpoint]


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


# -- the journal --------------------------------------------------------------------------
class Journal:
    """A run journal. Open with ``Journal.open``; one writer per journal at a time."""

    def __init__(self, engine: Engine, *, location: str, schema_version: int, readonly: bool) -> None:
        self._engine = engine
        self.location = location  # the file path, or the URL with its password hidden
        self.schema_version = schema_version
        self.readonly = readonly
        self._pending: list[_Op] = []  # queued for a group commit, in call order
        self._pending_since = 0.0  # time.monotonic() of the first queued op
        self._pending_batches = 0
        self._group_size = 1

    # -- open / close
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
            return cls._open_sqlite(path, create=create and not readonly, readonly=readonly)
        return cls._open_url(sa_url, create=create and not readonly, readonly=readonly)

    @classmethod
    def _open_sqlite(cls, path: Path, *, create: bool, readonly: bool) -> Journal:
        if path.is_dir():
            raise JournalError(f"journal {path}: is a directory; give a file path")
        if not path.exists():
            if not create:
                why = "opened read-only" if readonly else "create=False"
                raise JournalError(f"journal {path}: no such file ({why}); run hedgekit first or fix the path")
            _create_sqlite_file(path)
        _check_sqlite_file(path)
        where, path = str(path), path.resolve()  # a later chdir must not move the journal
        probe = _sqlite_engine(path, readonly=True)
        try:
            with probe.connect() as conn:
                version = _check_schema(conn, where)
        except SQLAlchemyError as exc:
            probe.dispose()
            raise JournalError(
                f"journal {where}: cannot be read as SQLite ({_reason(exc)}); "
                "the file is corrupt or not a journal"
            ) from None
        if version is None:
            probe.dispose()
            raise JournalError(
                f"journal {where}: a SQLite database without a {_meta.name} table: "
                "not a hedgekit journal; choose another path"
            )
        if readonly:
            return cls(probe, location=where, schema_version=version, readonly=True)
        probe.dispose()
        engine = _sqlite_engine(path, readonly=False)
        if version < SCHEMA_VERSION:
            try:
                with engine.begin() as conn:  # BEGIN IMMEDIATE: one upgrader at a time
                    version = _migrate(conn, _check_schema(conn, where) or version, where)
            except SQLAlchemyError as exc:
                engine.dispose()
                raise JournalError(f"journal {where}: cannot upgrade the schema ({_reason(exc)})") from None
            except BaseException:
                engine.dispose()
                raise
        return cls(engine, location=where, schema_version=version, readonly=False)

    @classmethod
    def _open_url(cls, url: str, *, create: bool, readonly: bool) -> Journal:
        parsed = make_url(url)
        # The password hidden wherever it is: user:password@ and ?password=/sslpassword=...
        where = redact(parsed.render_as_string(hide_password=True))
        backend = parsed.get_backend_name()
        kwargs: dict[str, Any] = {}
        if backend == "sqlite":  # in-memory: one shared connection
            kwargs = {"poolclass": pool.StaticPool, "connect_args": {"check_same_thread": False}}
        elif backend == "postgresql":
            # READ COMMITTED whatever the server's default: each statement sees what committed
            # before it, and the wallet row lock (_require_wallet) serializes a wallet's writers.
            # pre_ping: a connection the server dropped (restart, idle timeout) is replaced.
            kwargs = {"isolation_level": "READ COMMITTED", "pool_pre_ping": True}
            if parsed.get_driver_name() == "psycopg" and "connect_timeout" not in parsed.query:
                kwargs["connect_args"] = {"connect_timeout": _CONNECT_TIMEOUT_S}
            if readonly:
                kwargs["execution_options"] = {"postgresql_readonly": True}
        try:
            engine = create_engine(parsed, **kwargs)
        except ImportError as exc:
            raise JournalError(_missing_driver(where, parsed.drivername, exc)) from None
        except ArgumentError as exc:
            raise JournalError(f"journal {where}: {exc}") from None
        if backend == "sqlite":
            event.listen(engine, "connect", lambda dbapi_conn, _rec: dbapi_conn.execute("PRAGMA foreign_keys=ON"))
        try:
            with engine.begin() as conn:
                if backend == "postgresql" and not readonly:
                    # one creator or upgrader at a time (transaction-scoped, per database)
                    conn.execute(select(func.pg_advisory_xact_lock(_PG_CREATE_LOCK)))
                version = _check_schema(conn, where)
                if version is not None and not readonly:
                    version = _migrate(conn, version, where)
                if version is None:
                    others = _foreign_tables(conn)
                    if others:
                        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
                        raise JournalError(
                            f"journal {where}: the database holds other tables ({shown}) and no "
                            f"{_meta.name} table: not a hedgekit journal, left untouched; give an "
                            "empty database for a new journal, or an empty schema of its own "
                            "(PostgreSQL: add ?options=-csearch_path%3DSCHEMA to the URL)"
                        )
                    if not create:
                        raise JournalError(f"journal {where}: no hedgekit journal there (no {_meta.name} table)")
                    _create_schema(conn)
                    version = SCHEMA_VERSION
        except SQLAlchemyError as exc:
            engine.dispose()
            raise JournalError(f"journal {where}: cannot open ({_reason(exc)})") from None
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, location=where, schema_version=version, readonly=readonly)

    def close(self) -> None:
        self._take_pending()  # not committed: as after a crash, the resume makes them again
        self._engine.dispose()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({self.location!r}, schema_version={self.schema_version}, readonly={self.readonly})"

    # -- transactions
    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise JournalError(f"journal {self.location}: read failed ({_reason(exc)})") from exc

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[Connection]:
        if self.readonly:
            raise JournalError(f"journal {self.location}: opened read-only, cannot {what}")
        try:
            with self._engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise JournalError(f"journal {self.location}: {what} failed ({_reason(exc)})") from exc

    # -- runs
    def start_run(self, *, mode: str, config_json: str, source: str, started_ts: int) -> int:
        with self._write("start a run") as conn:
            res = conn.execute(_runs.insert().values(
                mode=mode, config_json=config_json, source=source, started_ts=started_ts,
                ended_ts=None, status="running",
            ))
            return _inserted_id(res)

    def find_resumable_run(self, *, mode: str, config_json: str, source: str) -> int | None:
        """The latest run with this mode, config and source that ``finish_run`` never closed."""
        q = (
            select(_runs.c.run_id)
            .where(_runs.c.mode == mode, _runs.c.config_json == config_json,
                   _runs.c.source == source, _runs.c.ended_ts.is_(None))
            .order_by(_runs.c.run_id.desc()).limit(1)
        )
        with self._read() as conn:
            found = conn.execute(q).scalar_one_or_none()
        return None if found is None else int(found)

    def finish_run(self, run_id: int, ended_ts: int, status: str = "finished") -> None:
        with self._write("finish a run") as conn:
            res = conn.execute(
                _runs.update().where(_runs.c.run_id == run_id).values(ended_ts=ended_ts, status=status)
            )
            if res.rowcount != 1:
                raise JournalError(f"journal {self.location}: finish_run: no run {run_id}")

    def runs(self) -> list[RunRow]:
        with self._read() as conn:
            rows = self._rows(conn, _read(_runs).order_by(_runs.c.run_id), _runs, lambda r: f"run {r['run_id']}")
        return [RunRow(**r) for r in rows]

    # -- wallets
    def wallets(self) -> list[tuple[int, str]]:
        """Every (run_id, wallet) registered, latest run first (a wallet may not have traded
        yet, so it has no status row)."""
        with self._read() as conn:
            rows = conn.execute(
                select(_wallets.c.run_id, _wallets.c.wallet).order_by(_wallets.c.run_id.desc(), _wallets.c.wallet)
            ).all()
        return [(int(r[0]), str(r[1])) for r in rows]

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

    # -- the run's lease (one writer per run) and requests to its holder
    def acquire_lease(
        self, run_id: int, *, holder: str, token: str, purpose: str, now_ms: int, timeout_ms: int,
        host_key: str = "", gone: Callable[[Lease], bool] | None = None,
    ) -> Lease | None:
        """Take the run's lease for ``token``: None when taken (also when ``token`` already
        held it), else the live lease of another holder (heartbeat younger than
        ``timeout_ms``), left alone. A stale lease (holder presumed dead), or one whose holder
        ``gone`` knows to be dead, is taken over."""
        with self._write(f"take the lease of run {run_id}") as conn:
            # serializes the takers (PostgreSQL: a row lock; SQLite: BEGIN IMMEDIATE already)
            q = select(_runs.c.run_id).where(_runs.c.run_id == run_id).with_for_update(key_share=True)
            if conn.execute(q).first() is None:
                raise JournalError(f"journal {self.location}: no run {run_id}")
            row = conn.execute(select(_leases).where(_leases.c.run_id == run_id)).mappings().first()
            if row is not None and row["token"] != token and now_ms - int(row["heartbeat_ts"]) < timeout_ms:
                held = Lease(**row)
                if gone is None or not gone(held):
                    return held
            values = {"holder": holder, "token": token, "purpose": purpose,
                      "acquired_ts": now_ms, "heartbeat_ts": now_ms, "host_key": host_key}
            if row is None:
                conn.execute(_leases.insert().values(run_id=run_id, **values))
            else:
                if row["token"] == token:
                    values["acquired_ts"] = int(row["acquired_ts"])
                conn.execute(_leases.update().where(_leases.c.run_id == run_id).values(**values))
        return None

    def renew_lease(self, run_id: int, token: str, now_ms: int) -> bool:
        """The heartbeat: False when ``token`` no longer holds the lease (taken over)."""
        with self._write(f"renew the lease of run {run_id}") as conn:
            res = conn.execute(_leases.update().where(
                _leases.c.run_id == run_id, _leases.c.token == token,
            ).values(heartbeat_ts=now_ms))
            return res.rowcount == 1

    def release_lease(self, run_id: int, token: str) -> None:
        """Give the lease up (a no-op when ``token`` does not hold it)."""
        with self._write(f"release the lease of run {run_id}") as conn:
            conn.execute(_leases.delete().where(_leases.c.run_id == run_id, _leases.c.token == token))

    def lease(self, run_id: int) -> Lease | None:
        """The run's lease, live or stale; None when nobody holds it."""
        if self.schema_version < 2:
            return None
        with self._read() as conn:
            rows = self._rows(conn, _read(_leases).where(_leases.c.run_id == run_id), _leases,
                              lambda r: f"the lease of run {run_id}")
        return Lease(**rows[0]) if rows else None

    def _check_lease(self, conn: Connection, run_id: int, token: str | None) -> None:
        """Refuse a write by a process whose lease was taken over. The lease row stays share
        locked until the transaction ends (PostgreSQL), so a take-over waits for the write."""
        if token is None:
            return
        q = select(_leases.c.token, _leases.c.holder).where(_leases.c.run_id == run_id).with_for_update(read=True)
        row = conn.execute(q).first()
        if row is None or row[0] != token:
            now = "nobody holds it now" if row is None else f"{row[1]} holds it now"
            raise LeaseLost(
                f"journal {self.location}: this process no longer holds the lease of run {run_id} "
                f"({now}; did it stall longer than the lease timeout?): nothing written"
            )

    def add_request(self, run_id: int, wallet: str, kind: str, now_ms: int) -> int:
        """Queue a request for the run's holder; returns its id."""
        with self._write(f"queue a {kind} request") as conn:
            self._require_wallet(conn, run_id, wallet)
            res = conn.execute(_requests.insert().values(
                run_id=run_id, wallet=wallet, kind=kind, created_ts=now_ms, status=REQUEST_PENDING,
                result=None, done_ts=None,
            ))
            return _inserted_id(res)

    def requests(self, run_id: int, *, pending_only: bool = False) -> list[RequestRow]:
        """The run's requests in the order they were made."""
        if self.schema_version < 2:
            return []
        q = _read(_requests).where(_requests.c.run_id == run_id)
        if pending_only:
            q = q.where(_requests.c.status == REQUEST_PENDING)
        with self._read() as conn:
            rows = self._rows(conn, q.order_by(_requests.c.id), _requests, _request_named)
        return [RequestRow(**r) for r in rows]

    def request(self, request_id: int) -> RequestRow | None:
        with self._read() as conn:
            rows = self._rows(conn, _read(_requests).where(_requests.c.id == request_id), _requests, _request_named)
        return RequestRow(**rows[0]) if rows else None

    def finish_request(self, run_id: int, outcome: RequestOutcome, *, lease: str | None = None) -> None:
        """Close a request that needed no batch (it failed before anything was done)."""
        with self._write(f"close request {outcome.request_id}") as conn:
            self._check_lease(conn, run_id, lease)
            self._close_request(conn, run_id, outcome)

    def _close_request(self, conn: Connection, run_id: int, outcome: RequestOutcome) -> None:
        res = conn.execute(_requests.update().where(
            _requests.c.id == outcome.request_id, _requests.c.run_id == run_id,
            _requests.c.status == REQUEST_PENDING,
        ).values(status=outcome.status, result=outcome.result, done_ts=outcome.done_ts))
        if res.rowcount != 1:
            raise JournalError(
                f"journal {self.location}: request {outcome.request_id} of run {run_id} is not "
                "pending (done already, or unknown): nothing written"
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

    # -- group commit
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

    def _take_pending(self) -> list[_Op]:
        ops, self._pending, self._pending_batches = self._pending, [], 0
        return ops

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

    def _require_wallet(self, conn: Connection, run_id: int, wallet: str) -> None:
        """Check that the wallet exists and lock its row until the transaction ends.

        PostgreSQL: FOR NO KEY UPDATE serializes the wallet's writers (and lets the foreign
        key checks of the rows they insert through). SQLite: BEGIN IMMEDIATE already holds the
        database's write lock; SQLAlchemy renders no FOR clause there."""
        if conn.execute(_Q_WALLET_LOCK, {"run_id": run_id, "wallet": wallet}).first() is None:
            raise JournalError(
                f"journal {self.location}: unknown wallet {wallet!r} in run {run_id}; call ensure_wallet first"
            )

    def _insert_fills(self, conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert fill rows (already deduplicated); returns them."""
        if rows:
            _execute_many(conn, _INSERT[_fills.name], rows)
        return rows

    def load_checkpoint(self, run_id: int, wallet: str) -> tuple[int, bytes] | None:
        """(cursor, snapshot) of the last batch committed with a snapshot, or None."""
        with self._read() as conn:
            row = conn.execute(select(_checkpoints.c.input_cursor, _checkpoints.c.snapshot).where(
                _checkpoints.c.run_id == run_id, _checkpoints.c.wallet == wallet,
            )).first()
        return None if row is None else (int(row[0]), bytes(row[1]))

    # -- reads (every row is checked against its column types: an edited or corrupt journal is
    # a JournalError naming the run, wallet, row and column, never a TypeError further on)
    def _rows(self, conn: Connection, q: Any, table: Table, what: Callable[[Mapping[str, Any]], str]) -> list[dict[str, Any]]:
        rows = [dict(r) for r in conn.execute(q).mappings()]
        rules = _RULES[table.name]
        for r in rows:
            for name, value in r.items():
                problem = _bad_value(value, *rules[name])
                if problem is not None:
                    raise JournalError(
                        f"journal {self.location}: {what(r)}: column {table.name}.{name} holds "
                        f"{_shown(value)}, not {problem}; the journal was edited or is corrupt"
                    )
        return rows

    def wallet_status(self, run_id: int | None = None) -> list[WalletStatus]:
        """Every wallet's status row of ``run_id`` (the latest run when None)."""
        with self._read() as conn:
            if run_id is None:
                run_id = conn.execute(select(func.max(_runs.c.run_id))).scalar_one_or_none()
                if run_id is None:
                    return []
            rows = self._rows(conn, _read(_status).where(_status.c.run_id == run_id).order_by(_status.c.wallet),
                              _status, lambda r: f"the status of wallet {r['wallet']!r} in run {r['run_id']}")
        return [WalletStatus(**{f.name: r[f.name] for f in fields(WalletStatus)} | {"paused": bool(r["paused"])})
                for r in rows]

    def orders(self, run_id: int, wallet: str, *, working_only: bool = False) -> list[OrderRow]:
        """The wallet's orders in creation order; ``working_only``: new/open/triggered/partial
        (and JournalError when an order's status is none of core's: it is not hidden)."""
        q = _read(_orders).where(_orders.c.run_id == run_id, _orders.c.wallet == wallet)
        with self._read() as conn:
            if working_only:
                odd = conn.execute(select(_orders.c.client_id, _orders.c.status).where(
                    _orders.c.run_id == run_id, _orders.c.wallet == wallet,
                    _orders.c.status.not_in([str(s) for s in OrderStatus]),
                ).limit(1)).first()
                if odd is not None:
                    raise JournalError(
                        f"journal {self.location}: order {odd[0]} of wallet {wallet!r} in run {run_id}: "
                        f"column orders.status holds {_shown(odd[1])}, not {_expected(tuple(OrderStatus))}; "
                        "the journal was edited or is corrupt"
                    )
                q = q.where(_orders.c.status.in_([str(s) for s in WORKING_STATUSES]))
            rows = self._rows(conn, q.order_by(_orders.c.id), _orders,
                              lambda r: f"order {r['client_id']} of wallet {wallet!r} in run {run_id}")
        return [OrderRow(
            client_id=r["client_id"], venue_id=r["venue_id"], kind=OrderKind(r["kind"]),
            order_type=OrderType(r["order_type"]), unit=r["unit"], side=Side(r["side"]), qty=r["qty"],
            trigger=r["trigger_price"], reduce_only=bool(r["reduce_only"]),
            status=OrderStatus(r["status"]), filled_qty=r["filled_qty"], created_ts=r["created_ts"],
            updated_ts=r["updated_ts"],
        ) for r in rows]

    def fills(self, run_id: int, wallet: str) -> list[FillRow]:
        """The wallet's fills in the order they were journaled."""
        with self._read() as conn:
            rows = self._rows(conn, _read(_fills).where(
                _fills.c.run_id == run_id, _fills.c.wallet == wallet,
            ).order_by(_fills.c.id), _fills, lambda r: f"fill {r['fill_id']} of wallet {wallet!r} in run {run_id}")
        return [FillRow(
            fill_id=r["fill_id"], client_id=r["client_id"], ts=r["ts"], kind=r["kind"],
            side=Side(r["side"]), qty=r["qty"], price=r["price"], fee=r["fee"], unit=r["unit"],
            phase=r["phase"], position=r["position_after"], realized_pnl=r["realized_pnl_cum"],
            liquidity=r["liquidity"],
        ) for r in rows]

    def order_events(self, run_id: int, wallet: str) -> list[OrderEventRow]:
        """The wallet's order events in input order."""
        with self._read() as conn:
            rows = self._rows(conn, _read(_events).where(
                _events.c.run_id == run_id, _events.c.wallet == wallet,
            ).order_by(_events.c.input_cursor, _events.c.batch_id, _events.c.seq), _events,
                lambda r: f"event {r['event']!r} of order {r['client_id']} of wallet {wallet!r} in run {run_id}")
        return [OrderEventRow(
            cursor=r["input_cursor"], seq=r["seq"], ts=r["ts"], client_id=r["client_id"],
            event=r["event"], kind=r["kind"], side=Side(r["side"]), qty=r["qty"],
            trigger=r["trigger_price"], unit=r["unit"], price=r["price"], reason=r["reason"],
        ) for r in rows]

    def phases(self, run_id: int, wallet: str) -> list[tuple[int, str]]:
        """The wallet's (ts, phase) transitions in input order."""
        with self._read() as conn:
            rows = conn.execute(select(_phases.c.ts, _phases.c.phase).where(
                _phases.c.run_id == run_id, _phases.c.wallet == wallet,
            ).order_by(_phases.c.input_cursor, _phases.c.batch_id, _phases.c.seq)).all()
        return [(int(ts), str(p)) for ts, p in rows]

    def position_from_fills(self, run_id: int, wallet: str) -> float:
        """The signed position rebuilt from the journaled fills (sum of signed quantities)."""
        return sum(f.qty * f.side.sign for f in self.fills(run_id, wallet))


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


# -- reading rows back: what each column may hold
# (table, column) -> the values a column of names may hold
_NAMES: dict[tuple[str, str], tuple[str, ...]] = {
    ("orders", "status"): tuple(OrderStatus), ("orders", "kind"): tuple(OrderKind),
    ("orders", "order_type"): tuple(OrderType), ("orders", "side"): tuple(Side),
    ("fills", "side"): tuple(Side), ("order_events", "side"): tuple(Side),
    ("order_events", "event"): ("placed", "triggered", "filled", "cancelled", "rejected"),
}


def _rule(c: Column[Any]) -> tuple[tuple[type, ...], str, bool, frozenset[str] | None]:
    """(Python types a value may have, what they are called, NULL allowed, the names allowed)."""
    t = c.type
    types: tuple[type, ...]
    if isinstance(t, Boolean):
        types, called = (bool, int), "true/false (0 or 1)"
    elif isinstance(t, Double):
        types, called = (float, int), "a number"
    elif isinstance(t, Integer):  # also BigInteger
        types, called = (int,), "an integer"
    elif isinstance(t, LargeBinary):
        types, called = (bytes, memoryview), "bytes"
    else:
        types, called = (str,), "text"
    names = _NAMES.get((str(c.table.name), c.name))
    if names is not None:
        called = _expected(names)
    return types, called, bool(c.nullable), None if names is None else frozenset(names)


def _read(table: Table) -> Any:
    """SELECT of every column, booleans as stored (SQLite keeps anything in a column; a
    boolean read as such turns any text into True)."""
    return select(*(type_coerce(c, Integer).label(c.name) if isinstance(c.type, Boolean) else c
                    for c in table.columns))


def _bad_value(value: Any, types: tuple[type, ...], called: str, nullable: bool,
               names: frozenset[str] | None) -> str | None:
    """What ``value`` should have been, or None when it is fine."""
    if value is None:
        return None if nullable else f"{called} (it is NULL)"
    if type(value) not in types:
        return called
    if types[0] is bool and value not in (0, 1):
        return called
    if names is not None and value not in names:
        return called
    return None


def _request_named(r: Mapping[str, Any]) -> str:
    return f"request #{r['id']} of wallet {r['wallet']!r} in run {r['run_id']}"


def _expected(names: Sequence[str]) -> str:
    return "one of " + ", ".join(names)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0]


_RULES = {t.name: {c.name: _rule(c) for c in t.columns} for t in _md.sorted_tables}
