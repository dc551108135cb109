"""What every part of the journal stands on: its engine, its transactions and checked reads."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Self

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.exc import SQLAlchemyError

from hedgekit.store.records import JournalError, _reason
from hedgekit.store.schema import _RULES, _bad_value, _shown
from hedgekit.store.writer import _Q_WALLET_LOCK, _Op


class JournalBase:
    """A journal's engine and transactions; ``Journal`` adds the rest."""

    def __init__(self, engine: Engine, *, location: str, schema_version: int, readonly: bool) -> None:
        self._engine = engine
        self.location = location  # the file path, or the URL with its password hidden
        self.schema_version = schema_version
        self.readonly = readonly
        self._pending: list[_Op] = []  # queued for a group commit, in call order
        self._pending_since = 0.0  # time.monotonic() of the first queued op
        self._pending_batches = 0
        self._group_size = 1

    def close(self) -> None:
        self._take_pending()  # not committed: as after a crash, the resume makes them again
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({self.location!r}, schema_version={self.schema_version}, readonly={self.readonly})"

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

    def _require_wallet(self, conn: Connection, run_id: int, wallet: str) -> None:
        """Check that the wallet exists and lock its row until the transaction ends.

        PostgreSQL: FOR NO KEY UPDATE serializes the wallet's writers (and lets the foreign
        key checks of the rows they insert through). SQLite: BEGIN IMMEDIATE already holds the
        database's write lock; SQLAlchemy renders no FOR clause there."""
        if conn.execute(_Q_WALLET_LOCK, {"run_id": run_id, "wallet": wallet}).first() is None:
            raise JournalError(
                f"journal {self.location}: unknown wallet {wallet!r} in run {run_id}; call ensure_wallet first"
            )

    def _take_pending(self) -> list[_Op]:
        ops, self._pending, self._pending_batches = self._pending, [], 0
        return ops
