"""The journal's tables and schema versions: creating, checking and upgrading them, and
what each column may hold when a row is read back (an edited or corrupt journal is refused
naming the column, not read into a TypeError further on)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Double,
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
    inspect,
    select,
    type_coerce,
)

from hedgekit.core.orders import OrderKind, OrderStatus, OrderType, Side
from hedgekit.store.records import APPLICATION, SCHEMA_VERSION, JournalError

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


def _select_all(table: Table) -> Any:
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


def _expected(names: Sequence[str]) -> str:
    return "one of " + ", ".join(names)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_RULES = {t.name: {c.name: _rule(c) for c in t.columns} for t in _md.sorted_tables}
