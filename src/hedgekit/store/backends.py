"""Opening a journal: a SQLite file (checked read-only before anything is written, created
atomically) or any SQLAlchemy URL (PostgreSQL: psycopg 3, READ COMMITTED). See journal.py."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, pool, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from hedgekit.logs import redact
from hedgekit.store.records import (
    _BUSY_TIMEOUT_MS,
    _CONNECT_TIMEOUT_S,
    _PG_CREATE_LOCK,
    _SQLITE_HEADER,
    DEFAULT_PATH,
    SCHEMA_VERSION,
    SQLITE_APPLICATION_ID,
    JournalError,
    _reason,
)
from hedgekit.store.schema import _check_schema, _create_schema, _meta, _migrate


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


def open_sqlite(path: Path, *, create: bool, readonly: bool) -> tuple[Engine, str, int]:
    """(engine, location, schema version) of a SQLite file journal, created when missing."""
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
        return probe, where, version
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
    return engine, where, version

def open_url(url: str, *, create: bool, readonly: bool) -> tuple[Engine, str, int]:
    """(engine, location with the password hidden, schema version) of a journal at a URL."""
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
    return engine, where, version
