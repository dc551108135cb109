"""The exchange port: what the engine needs from any venue, simulated or real.

The runner (``engine.runner``) dispatches a strategy's commands through ``submit``/``cancel`` and hands the
events they return (fills, rejections, cancellations, and account events such as funding and
liquidation) back to the strategy; the journal drains ``fills``/``order_log``; recovery
compares ``open_orders()`` with ``Strategy.desired_orders()`` (``core.orders.diff_orders``)
and reads ``account()``. ``SimExchange`` implements it (its market walking — ``move_to``,
``next_trigger_*``, ``drift`` — is the simulator's own, driven by ``engine.walker``); the REAL
adapter implements the same methods over ccxt, with fills arriving from the exchange.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hedgekit.core.events import VenueEvent
from hedgekit.core.orders import Order, OrderSpec
from hedgekit.core.records import FillRecord, OrderLogRecord


@dataclass(frozen=True, slots=True)
class AccountState:
    """A venue's view of one account: what reconciliation and `hedgekit status` read."""

    position: float  # signed base quantity
    avg_price: float  # entry price of the position (0 when flat)
    cash: float  # quote balance, realized PnL, fees and funding included
    equity: float  # cash plus unrealized PnL at the last price
    last_price: float | None
    open_orders: list[Order]


class ExchangePort(Protocol):
    @property
    def fills(self) -> list[FillRecord]:
        """Fills since the journal last drained them."""
        ...

    @property
    def order_log(self) -> list[OrderLogRecord]:
        """Order events since the journal last drained them."""
        ...

    @property
    def last_price(self) -> float | None:
        """The last price the venue saw (None before the first)."""
        ...

    def submit(self, spec: OrderSpec, ts: int) -> list[VenueEvent]:
        """Send an order; the events it caused at once (a rejection, an immediate fill)."""
        ...

    def cancel(self, client_id: str, ts: int) -> list[VenueEvent]:
        """Cancel a working order; an unknown or closed order is not an error (idempotent)."""
        ...

    def open_orders(self) -> list[Order]:
        """Working orders in submission order."""
        ...

    def account(self) -> AccountState: ...
