"""Reading a journal: runs, wallets, orders, fills, events, phases, status and checkpoints."""

from __future__ import annotations

from dataclasses import fields

from sqlalchemy import func, select

from hedgekit.core.orders import OrderKind, OrderStatus, OrderType, Side
from hedgekit.store.base import JournalBase
from hedgekit.store.records import (
    WORKING_STATUSES,
    FillRow,
    JournalError,
    OrderEventRow,
    OrderRow,
    RunRow,
    WalletStatus,
)
from hedgekit.store.schema import (
    _checkpoints,
    _events,
    _expected,
    _fills,
    _orders,
    _phases,
    _runs,
    _select_all,
    _shown,
    _status,
    _wallets,
)


class QueryMixin(JournalBase):
    """What a journal holds, every row checked against its columns."""

    def runs(self) -> list[RunRow]:
        with self._read() as conn:
            rows = self._rows(conn, _select_all(_runs).order_by(_runs.c.run_id), _runs, lambda r: f"run {r['run_id']}")
        return [RunRow(**r) for r in rows]

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

    def wallets(self) -> list[tuple[int, str]]:
        """Every (run_id, wallet) registered, latest run first (a wallet may not have traded
        yet, so it has no status row)."""
        with self._read() as conn:
            rows = conn.execute(
                select(_wallets.c.run_id, _wallets.c.wallet).order_by(_wallets.c.run_id.desc(), _wallets.c.wallet)
            ).all()
        return [(int(r[0]), str(r[1])) for r in rows]

    def load_checkpoint(self, run_id: int, wallet: str) -> tuple[int, bytes] | None:
        """(cursor, snapshot) of the last batch committed with a snapshot, or None."""
        with self._read() as conn:
            row = conn.execute(select(_checkpoints.c.input_cursor, _checkpoints.c.snapshot).where(
                _checkpoints.c.run_id == run_id, _checkpoints.c.wallet == wallet,
            )).first()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def wallet_status(self, run_id: int | None = None) -> list[WalletStatus]:
        """Every wallet's status row of ``run_id`` (the latest run when None)."""
        with self._read() as conn:
            if run_id is None:
                run_id = conn.execute(select(func.max(_runs.c.run_id))).scalar_one_or_none()
                if run_id is None:
                    return []
            rows = self._rows(conn, _select_all(_status).where(_status.c.run_id == run_id).order_by(_status.c.wallet),
                              _status, lambda r: f"the status of wallet {r['wallet']!r} in run {r['run_id']}")
        return [WalletStatus(**{f.name: r[f.name] for f in fields(WalletStatus)} | {"paused": bool(r["paused"])})
                for r in rows]

    def orders(self, run_id: int, wallet: str, *, working_only: bool = False) -> list[OrderRow]:
        """The wallet's orders in creation order; ``working_only``: new/open/triggered/partial
        (and JournalError when an order's status is none of core's: it is not hidden)."""
        q = _select_all(_orders).where(_orders.c.run_id == run_id, _orders.c.wallet == wallet)
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
            rows = self._rows(conn, _select_all(_fills).where(
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
            rows = self._rows(conn, _select_all(_events).where(
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
