"""Events a strategy receives. Frozen; ``ts`` is the data time in ms since the epoch (UTC),
set by the engine: strategies never read a clock."""

from __future__ import annotations

from dataclasses import dataclass

from hedgekit.core.fastinit import fast_init


@fast_init
@dataclass(frozen=True, slots=True)
class Tick:
    ts: int
    price: float


@fast_init
@dataclass(frozen=True, slots=True)
class UnitChanged:
    ts: int
    unit: int  # the new current unit
    price: float  # the level price that was reached (exact, on the grid)


@fast_init
@dataclass(frozen=True, slots=True)
class OrderFilled:
    ts: int
    client_id: str
    fill_id: str
    qty: float  # this fill's quantity (always positive)
    price: float
    fee: float  # in quote currency, positive = paid
    leaves_qty: float = 0.0  # > 0 for a partial fill

    @property
    def is_last(self) -> bool:
        return self.leaves_qty <= 0


@fast_init
@dataclass(frozen=True, slots=True)
class OrderRejected:
    ts: int
    client_id: str
    reason: str
    price: float | None = None  # the market price the venue refused a fill at, when it says


@fast_init
@dataclass(frozen=True, slots=True)
class OrderCancelled:
    ts: int
    client_id: str


@fast_init
@dataclass(frozen=True, slots=True)
class Timer:
    ts: int
    name: str


@fast_init
@dataclass(frozen=True, slots=True)
class FundingSettled:
    """A funding time passed: the venue paid or charged ``amount`` on the position (0.0 when
    flat) at ``rate``, the rate settled then (the latest a strategy can know)."""

    ts: int
    amount: float  # the cash change: negative when the wallet paid
    rate: float = 0.0


@fast_init
@dataclass(frozen=True, slots=True)
class AtrUpdated:
    """Wilder's ATR of the bars completed by ``ts`` (sent only to a strategy with
    ``wants_atr``, only when the value changed, just before its next other event)."""

    ts: int
    atr: float  # price units


Event = (
    Tick | UnitChanged | OrderFilled | OrderRejected | OrderCancelled | Timer | FundingSettled
    | AtrUpdated
)


# Account events a venue reports beside the strategy's own; the engine turns them into
# strategy calls (a liquidation) or books them (funding).
@dataclass(frozen=True, slots=True)
class FundingPaid:
    ts: int
    rate: float
    mark_price: float
    amount: float  # added to cash: negative when the wallet paid


@dataclass(frozen=True, slots=True)
class Liquidated:
    ts: int
    price: float  # the fill price of the forced close
    qty: float  # the position that was closed, signed (+ long, - short)
    loss: float  # cash lost by the forced close: realized loss plus its fee (positive = lost)


VenueEvent = Event | FundingPaid | Liquidated
