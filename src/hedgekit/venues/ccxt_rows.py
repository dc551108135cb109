"""What the REAL adapter (``venues.ccxt_venue``) makes of the venue's answers: the error
classes it maps ccxt's errors to, its retry policy, and orders rebuilt from the venue's rows
(foreign orders, and orphans of ours left by an earlier run)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import ccxt

from hedgekit.core.errors import HedgekitError
from hedgekit.core.orders import (
    Order,
    OrderKind,
    OrderSpec,
    OrderTrigger,
    OrderType,
    Side,
    client_id_kind,
)

__all__ = ["ForeignOrder", "RetryPolicy", "VenueFatal", "VenueUnavailable"]


class VenueFatal(HedgekitError):
    """The venue refused for a reason retrying cannot fix (keys, permissions, account
    set-up): the wallet must stop safely (SPEC §4a)."""


class VenueUnavailable(VenueFatal):
    """The venue kept failing with temporary errors past the retry budget."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff for temporary errors: ``attempts`` tries in all, waiting
    ``base_s * 2**n`` (at most ``max_s``) between them."""

    attempts: int = 5
    base_s: float = 0.5
    max_s: float = 8.0

    def delay(self, attempt: int) -> float:
        return min(self.base_s * 2**attempt, self.max_s)


@dataclass(frozen=True, slots=True)
class ForeignOrder:
    """A working order at the venue that hedgekit did not place (no ``hk-`` client id): listed,
    never touched."""

    venue_id: str
    client_id: str | None
    side: str
    type: str
    qty: float
    price: float | None
    trigger_price: float | None
    reduce_only: bool


# Temporary: worth retrying. NetworkError covers RequestTimeout, ExchangeNotAvailable (5xx),
# DDoSProtection and RateLimitExceeded (418/429) and InvalidNonce (clock drift).
_TEMPORARY: tuple[type[Exception], ...] = (ccxt.NetworkError,)
_INVALID: tuple[type[Exception], ...] = (ccxt.InvalidOrder, ccxt.BadRequest)


def _duplicate(err: Exception) -> bool:
    text = str(err).lower()
    return "duplicat" in text


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def _foreign(row: dict[str, Any]) -> ForeignOrder:
    return ForeignOrder(
        str(row.get("id")), row.get("clientOrderId"), str(row.get("side")), str(row.get("type")),
        float(row.get("amount") or 0.0), _float(row.get("price")), _float(row.get("triggerPrice")),
        bool(row.get("reduceOnly")),
    )  # fmt: skip


def _opaque_orphan(row: dict[str, Any], venue_client_id: str, wallet: str) -> Order:
    """An orphan of ours whose venue client id is a digest of our id (Hyperliquid): known by
    that venue id, its role guessed from the venue's fields - enough to be cancelled."""
    side = Side.SELL if str(row.get("side")) == "sell" else Side.BUY
    trigger, limit = _float(row.get("triggerPrice")), _float(row.get("price"))
    reduce_only = bool(row.get("reduceOnly"))
    if trigger:
        type_, price = OrderType.STOP, trigger
        kind = OrderKind.STOP_LOSS if reduce_only else (
            OrderKind.STOP_ENTRY_BUY if side is Side.BUY else OrderKind.STOP_ENTRY_SHORT)
    elif limit:
        type_, price = OrderType.LIMIT, limit
        kind = OrderKind.GRID_BUY if side is Side.BUY else OrderKind.GRID_SELL
    else:
        type_, price, kind = OrderType.MARKET, None, OrderKind.MARKET_BUY
    qty = float(row.get("amount") or 0.0) or float(row.get("remaining") or 0.0) or 1e-12
    order = Order(OrderSpec(venue_client_id, wallet, kind, side, type_, qty, price, reduce_only),
                  venue_id=str(row.get("id")))  # fmt: skip
    order.apply(OrderTrigger.ACCEPT)
    return order


def _orphan(row: dict[str, Any], client_id: str) -> Order | None:
    """An order with our prefix this run does not know (left from an earlier run), rebuilt
    from its id ``hk-<wallet>-<cycle>-<unit>-<kind>-<seq>`` and the venue's fields."""
    kind = client_id_kind(client_id)
    parts = client_id.split("-")
    wallet = "-".join(parts[1:-4])
    if kind is None or not wallet:
        return None
    unit_text = parts[-3]
    unit = None if unit_text == "x" else (-int(unit_text[1:]) if unit_text.startswith("m") else int(unit_text))
    trigger = _float(row.get("triggerPrice"))
    limit = _float(row.get("price"))
    type_ = OrderType.STOP if trigger else (OrderType.LIMIT if limit else OrderType.MARKET)
    try:
        spec = OrderSpec(
            client_id, wallet, kind, Side(str(row.get("side"))), type_, float(row.get("amount") or 0.0),
            trigger or limit, bool(row.get("reduceOnly")), unit,
        )  # fmt: skip
    except (HedgekitError, ValueError):
        return None
    order = Order(spec, venue_id=str(row.get("id")))
    order.apply(OrderTrigger.ACCEPT)
    filled = float(row.get("filled") or 0.0)
    if filled > 0:
        order.apply(OrderTrigger.FILL_PARTIAL)
        order.filled_qty = filled
    return order
