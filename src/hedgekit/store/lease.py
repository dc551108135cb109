"""One writer per run: the run's lease, and requests (a flatten) to its holder (schema v2)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, select

from hedgekit.store.base import JournalBase
from hedgekit.store.records import (
    REQUEST_PENDING,
    JournalError,
    Lease,
    LeaseLost,
    RequestOutcome,
    RequestRow,
    _inserted_id,
)
from hedgekit.store.schema import _leases, _requests, _runs, _select_all


class LeaseMixin(JournalBase):
    """The run's lease (one writer per run) and requests to its holder."""

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
            rows = self._rows(conn, _select_all(_leases).where(_leases.c.run_id == run_id), _leases,
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
        q = _select_all(_requests).where(_requests.c.run_id == run_id)
        if pending_only:
            q = q.where(_requests.c.status == REQUEST_PENDING)
        with self._read() as conn:
            rows = self._rows(conn, q.order_by(_requests.c.id), _requests, _request_named)
        return [RequestRow(**r) for r in rows]

    def request(self, request_id: int) -> RequestRow | None:
        with self._read() as conn:
            rows = self._rows(conn, _select_all(_requests).where(_requests.c.id == request_id), _requests, _request_named)
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


def _request_named(r: Mapping[str, Any]) -> str:
    return f"request #{r['id']} of wallet {r['wallet']!r} in run {r['run_id']}"
