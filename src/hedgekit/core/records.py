"""What a venue reports happened, as rows: the fills and the order events that the journal
stores, the reports export and the simulated and real venues both produce."""

from __future__ import annotations

from dataclasses import dataclass

from hedgekit.core.fastinit import fast_init
from hedgekit.core.orders import Side


@fast_init
@dataclass(frozen=True, slots=True)
class FillRecord:
    ts: int
    order_id: str  # client id, or "liquidation"
    kind: str  # OrderKind value, or "liquidation"
    side: Side
    qty: float
    price: float
    fee: float  # quote currency, positive = paid
    unit: int | None
    position_after: float  # signed
    realized_pnl_cum: float  # before fees
    fill_id: str = ""
    liquidity: str = "taker"  # "maker" or "taker"


@fast_init
@dataclass(frozen=True, slots=True)
class OrderLogRecord:
    ts: int
    order_id: str
    event: str  # placed, cancelled, triggered, filled, rejected
    kind: str
    side: Side
    qty: float  # placed/rejected: order qty; filled: this fill; cancelled: the qty left
    trigger_price: float | None  # stop trigger or limit price
    unit: int | None
    price: float | None = None  # fill price (filled) or market price (triggered)
    reason: str = ""  # why it was rejected or cancelled
