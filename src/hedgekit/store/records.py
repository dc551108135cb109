"""What the journal hands out and refuses with: its rows, errors and constants."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import SQLAlchemyError

from hedgekit.core.errors import HedgekitError
from hedgekit.core.orders import OrderKind, OrderStatus, OrderType, Side

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


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A wallet's saved state after input ``cursor``: what recovery starts from."""

    cursor: int
    ts: int
    snapshot: bytes


# Makes a wallet's checkpoint from its state at the moment it is called (group commit).
CheckpointSource = Callable[[], Checkpoint]


def _inserted_id(res: CursorResult[Any]) -> int:
    key = res.inserted_primary_key
    if key is None:  # only for statements that insert nothing: a bug here, not bad input
        raise RuntimeError("insert returned no primary key")
    return int(key[0])


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0]
