"""Orders: what a strategy asks for (OrderSpec) and the venue-side order with its status FSM."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from hedgekit.core.compiled import mypyc_attr
from hedgekit.core.errors import HedgekitError
from hedgekit.core.fastinit import fast_init


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is _BUY else -1

    @property
    def opposite(self) -> Side:
        return _SELL if self is _BUY else _BUY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"  # stop-market: becomes a market order when the trigger is touched


class OrderKind(StrEnum):
    """Order roles; the values are the names written to output files (SPEC §2)."""

    MARKET_BUY = "market_buy"
    STOP_LOSS = "stop_loss"
    STOP_ENTRY_BUY = "stop_entry_buy"
    STOP_LOSS_FULL = "stop_loss_full"
    STOP_ENTRY_SHORT = "stop_entry_short"
    STOP_LOSS_COVER = "stop_loss_cover"
    MARKET_BUY_FULL = "market_buy_full"
    GRID_SELL = "grid_sell"
    GRID_BUY = "grid_buy"
    HEDGE_STOP_LOSS = "hedge_stop_loss"
    HEDGE_TAKE_PROFIT = "hedge_take_profit"
    FLATTEN = "flatten"  # emergency close from `hedgekit flatten`
    PROTECTIVE_CLOSE = "protective_close"  # market close of what a refused stop protected (SPEC §4a)
    # REAL: market close of what an order recovered after a crash, and never issued again by
    # the strategy, filled (SPEC §4a); the engine's order, never a strategy's
    ORPHAN_CLOSE = "orphan_close"


# Short codes used inside client order ids (exchanges cap their length).
KIND_CODE: Final[dict[OrderKind, str]] = {
    OrderKind.MARKET_BUY: "mb",
    OrderKind.STOP_LOSS: "sl",
    OrderKind.STOP_ENTRY_BUY: "eb",
    OrderKind.STOP_LOSS_FULL: "sf",
    OrderKind.STOP_ENTRY_SHORT: "es",
    OrderKind.STOP_LOSS_COVER: "sc",
    OrderKind.MARKET_BUY_FULL: "mf",
    OrderKind.GRID_SELL: "gs",
    OrderKind.GRID_BUY: "gb",
    OrderKind.HEDGE_STOP_LOSS: "hs",
    OrderKind.HEDGE_TAKE_PROFIT: "ht",
    OrderKind.FLATTEN: "fl",
    OrderKind.PROTECTIVE_CLOSE: "pc",
    OrderKind.ORPHAN_CLOSE: "oc",
}
KIND_BY_CODE: Final = {v: k for k, v in KIND_CODE.items()}

# SPEC §4a: the stops that protect a position. They are never cancelled while the position they
# protect exists; a refused one is sent once more, then what it protected is closed at market.
PROTECTIVE_KINDS: Final = frozenset({
    OrderKind.STOP_LOSS, OrderKind.STOP_LOSS_FULL, OrderKind.STOP_LOSS_COVER, OrderKind.HEDGE_STOP_LOSS,
})
# Window orders that open (or add to) a position: refused ones are re-sized or deferred, never skipped.
OPENING_KINDS: Final = frozenset({OrderKind.STOP_ENTRY_BUY, OrderKind.STOP_ENTRY_SHORT})

CLIENT_ID_PREFIX: Final = "hk"


def make_client_id(wallet: str, cycle: int, unit: int | None, kind: OrderKind, seq: int) -> str:
    """Deterministic client order id: ``hk-<wallet>-<cycle>-<unit>-<kind>-<seq>``.

    ``seq`` is the strategy's own monotonic counter, so ids never repeat within a wallet and
    a restarted bot recognises its orders. Binance allows ``[.A-Z:/a-z0-9_-]{1,36}``.
    """
    u = "x" if unit is None else (f"m{-unit}" if unit < 0 else str(unit))
    return f"{CLIENT_ID_PREFIX}-{wallet}-{cycle}-{u}-{KIND_CODE[kind]}-{seq}"


def client_id_kind(client_id: str) -> OrderKind | None:
    """The kind coded in a client id made by ``make_client_id`` (None for any other id)."""
    parts = client_id.split("-")
    return KIND_BY_CODE.get(parts[-2]) if len(parts) >= 6 else None


def orphan_close_id(client_id: str) -> str:
    """The client id of the close of an orphan's fill (``OrderKind.ORPHAN_CLOSE``): the
    orphan's id with the kind code ``oc``, as long as it, one per orphan (so a restart finds
    it by lookup instead of sending it twice), and no strategy's (strategies never issue that
    kind)."""
    head, sep, seq = client_id.rpartition("-")
    rest, sep2, _code = head.rpartition("-")
    if not (sep and sep2 and client_id.startswith(f"{CLIENT_ID_PREFIX}-")):
        raise HedgekitError(f"{client_id!r} is not a hedgekit client id (hk-<wallet>-<cycle>-<unit>-<kind>-<seq>)")
    return f"{rest}-{KIND_CODE[OrderKind.ORPHAN_CLOSE]}-{seq}"


@fast_init
@dataclass(frozen=True, slots=True)
class OrderSpec:
    """An order as a strategy wants it. ``price`` is the trigger of a stop or the limit price."""

    client_id: str
    wallet: str
    kind: OrderKind
    side: Side
    type: OrderType
    qty: float
    price: float | None = None
    reduce_only: bool = False
    unit: int | None = None

    def __post_init__(self) -> None:
        if not self.qty > 0:
            raise HedgekitError(f"order {self.client_id}: qty must be > 0, got {self.qty!r}")
        if self.type is not _MARKET and (self.price is None or not self.price > 0):
            raise HedgekitError(f"order {self.client_id}: {self.type} order needs a positive price")


class OrderStatus(StrEnum):
    NEW = "new"  # intent recorded, not yet acknowledged by the venue
    OPEN = "open"
    TRIGGERED = "triggered"  # a stop whose trigger was touched, now executing
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_closed(self) -> bool:
        return self in _CLOSED


class OrderTrigger(StrEnum):
    ACCEPT = "accept"
    TRIGGER = "trigger"
    FILL_PARTIAL = "fill_partial"
    FILL = "fill"
    CANCEL = "cancel"
    REJECT = "reject"


# Members used on every order event, bound once: on Python 3.11 looking a member up on its
# enum class (``Side.BUY``) goes through the enum metaclass's attribute hook, which costs
# several times a global lookup.
_BUY: Final = Side.BUY
_SELL: Final = Side.SELL
_MARKET: Final = OrderType.MARKET
_CLOSED: Final = (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED)
_FILL: Final = OrderTrigger.FILL
_FILL_PARTIAL: Final = OrderTrigger.FILL_PARTIAL

_S: Final = OrderStatus
_T: Final = OrderTrigger
# (state, trigger) -> next state. Anything not listed is an illegal move.
_TRANSITIONS: Final[dict[tuple[OrderStatus, OrderTrigger], OrderStatus]] = {
    (_S.NEW, _T.ACCEPT): _S.OPEN,
    (_S.NEW, _T.REJECT): _S.REJECTED,
    (_S.NEW, _T.CANCEL): _S.CANCELLED,
    (_S.NEW, _T.FILL): _S.FILLED,  # market orders fill on arrival
    (_S.NEW, _T.FILL_PARTIAL): _S.PARTIALLY_FILLED,
    (_S.OPEN, _T.TRIGGER): _S.TRIGGERED,
    (_S.OPEN, _T.FILL): _S.FILLED,
    (_S.OPEN, _T.FILL_PARTIAL): _S.PARTIALLY_FILLED,
    (_S.OPEN, _T.CANCEL): _S.CANCELLED,
    (_S.OPEN, _T.REJECT): _S.REJECTED,
    (_S.TRIGGERED, _T.FILL): _S.FILLED,
    (_S.TRIGGERED, _T.FILL_PARTIAL): _S.PARTIALLY_FILLED,
    (_S.TRIGGERED, _T.CANCEL): _S.CANCELLED,
    (_S.TRIGGERED, _T.REJECT): _S.REJECTED,
    (_S.PARTIALLY_FILLED, _T.FILL_PARTIAL): _S.PARTIALLY_FILLED,
    (_S.PARTIALLY_FILLED, _T.FILL): _S.FILLED,
    (_S.PARTIALLY_FILLED, _T.CANCEL): _S.CANCELLED,
}


class InvalidOrderTransition(HedgekitError):
    pass


def next_status(state: OrderStatus, trigger: OrderTrigger) -> OrderStatus:
    try:
        return _TRANSITIONS[(state, trigger)]
    except KeyError:
        raise InvalidOrderTransition(f"illegal order transition {state} -> {trigger}") from None


@dataclass(slots=True)
class Order:
    """A venue-side order: a spec plus its status and fills. Changes only through ``apply``."""

    spec: OrderSpec
    status: OrderStatus = OrderStatus.NEW
    filled_qty: float = 0.0
    avg_price: float = 0.0
    venue_id: str | None = None
    fill_ids: set[str] = field(default_factory=set)

    @property
    def client_id(self) -> str:
        return self.spec.client_id

    @property
    def leaves_qty(self) -> float:
        return max(self.spec.qty - self.filled_qty, 0.0)

    def apply(self, trigger: OrderTrigger) -> None:
        # next_status() inlined: every order goes through here two or three times.
        try:
            self.status = _TRANSITIONS[(self.status, trigger)]
        except KeyError:
            raise InvalidOrderTransition(f"illegal order transition {self.status} -> {trigger}") from None

    def record_fill(self, fill_id: str, qty: float, price: float, lot: float) -> None:
        """Apply a fill; duplicate fill ids are refused, overfills raise."""
        if fill_id in self.fill_ids:
            raise InvalidOrderTransition(f"order {self.client_id}: duplicate fill {fill_id}")
        if qty > self.leaves_qty + lot / 2:
            raise InvalidOrderTransition(
                f"order {self.client_id}: overfill {qty} > leaves {self.leaves_qty}"
            )
        total = self.filled_qty + qty
        self.avg_price = (self.avg_price * self.filled_qty + price * qty) / total
        self.filled_qty = total
        self.fill_ids.add(fill_id)
        done = self.spec.qty - total < lot / 2
        self.apply(_FILL if done else _FILL_PARTIAL)


# compiled build: a plain class, for pickle (Ray); do not subclass it (hedgekit.core.compiled)
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class OrderDiff:
    """Desired working orders (a strategy's) against the orders a venue has open."""

    missing: list[OrderSpec]  # desired, not at the venue: to place
    unexpected: list[Order]  # at the venue, not desired: to cancel
    different: list[tuple[OrderSpec, Order]]  # same id, other side/type/qty/price: to replace

    @property
    def in_sync(self) -> bool:
        return not (self.missing or self.unexpected or self.different)


def diff_orders(desired: list[OrderSpec], open_orders: list[Order], lot: float) -> OrderDiff:
    """What recovery must do so the venue holds exactly ``desired`` (passivbot's "ideal
    orders" diffed against actual ones)."""
    at_venue = {o.client_id: o for o in open_orders}
    wanted = {s.client_id: s for s in desired}
    different = []
    for cid, spec in wanted.items():
        o = at_venue.get(cid)
        if o is not None and (
            o.spec.side is not spec.side or o.spec.type is not spec.type or o.spec.price != spec.price
            or abs(o.spec.qty - spec.qty) >= lot / 2
        ):
            different.append((spec, o))
    return OrderDiff(
        missing=[s for cid, s in wanted.items() if cid not in at_venue],
        unexpected=[o for cid, o in at_venue.items() if cid not in wanted],
        different=different,
    )
