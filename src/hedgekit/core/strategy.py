"""Base of every strategy: a pure state machine, events in, commands out.

It keeps the book every strategy needs (working orders, partial fills, the position and its
PnL, deterministic client ids) so each strategy module holds only its own rules. No I/O, no
clock, no globals: the engine feeds events and executes the returned commands in order.
"""

from __future__ import annotations

from enum import StrEnum

from hedgekit.core.commands import Cancel, Command, Place
from hedgekit.core.errors import HedgekitError
from hedgekit.core.events import (
    AtrUpdated,
    Event,
    FundingSettled,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    Tick,
    Timer,
    UnitChanged,
)
from hedgekit.core.instrument import Instrument
from hedgekit.core.orders import OrderKind, OrderSpec, OrderType, Side, make_client_id
from hedgekit.core.position import Position
from hedgekit.core.units import UnitGrid


class Phase(StrEnum):
    STARTING = "STARTING"  # initial market order in flight
    ADVANCE = "ADVANCE"
    RETRACEMENT = "RETRACEMENT"
    DECLINE = "DECLINE"
    RECOVER = "RECOVER"  # long wallet's mixed phase entered from DECLINE
    RECOVERY = "RECOVERY"  # hedge wallet's mixed phase entered from DECLINE
    RESET = "RESET"  # re-entry market order in flight
    ACTIVE = "ACTIVE"  # grid hedge running
    STOPPED = "STOPPED"


class Strategy:
    """Shared bookkeeping. Subclasses implement ``start`` and the ``_on_*`` hooks."""

    name = "strategy"
    wants_ticks = False  # True: the engine sends a Tick with the price before every Timer
    wants_atr = False  # True: the engine sends AtrUpdated (period ``atr_period``) when it changes
    atr_period = 14

    def __init__(self, wallet: str, instrument: Instrument) -> None:
        if not wallet or any(ch not in _ID_CHARS for ch in wallet):
            raise HedgekitError(
                f"wallet name {wallet!r}: use letters, digits and '_' only (it goes into order ids)"
            )
        self.wallet = wallet
        self.instrument = instrument
        self.working: dict[str, OrderSpec] = {}
        self.position = Position(qty_decimals=instrument.qty_decimals + 4)
        self.realized_pnl = 0.0  # all cycles, before fees
        self.fees = 0.0
        self.funding = 0.0  # net funding credited to the account (negative: paid)
        self.atr: float | None = None  # the last AtrUpdated value
        self.cycle = 0
        self.seq = 0
        self.last_price: float | None = None
        self.stopped = False
        self._known: dict[str, OrderSpec] = {}  # every order ever placed, by client id
        self._filled: dict[str, tuple[float, float]] = {}  # client id -> (qty, qty*price)
        self._fill_ids: set[str] = set()

    # -- the engine's entry points ------------------------------------------------------
    def start(self, ts: int, price: float) -> list[Command]:
        raise NotImplementedError

    def on_event(self, event: Event) -> list[Command]:
        if isinstance(event, OrderFilled):
            return self._handle_fill(event)
        if isinstance(event, FundingSettled):
            self.funding += event.amount  # cash moved, stopped or not
            return [] if self.stopped else self._on_funding(event)
        if isinstance(event, AtrUpdated):
            self.atr = event.atr
            return []
        if self.stopped:
            return []
        if isinstance(event, UnitChanged):
            self.last_price = event.price
            return self._on_unit(event)
        if isinstance(event, Tick):
            self.last_price = event.price
            return self._on_tick(event)
        if isinstance(event, OrderRejected):
            spec = self.working.pop(event.client_id, None)
            return self._on_rejected(spec, event) if spec else []
        if isinstance(event, OrderCancelled):
            # Our own cancels were removed from `working` when issued; an unsolicited cancel
            # (venue expiry, manual cancel) is handed to the strategy to repair.
            spec = self.working.pop(event.client_id, None)
            return self._on_cancelled(spec, event) if spec else []
        if isinstance(event, Timer):
            return self._on_timer(event)
        raise HedgekitError(f"unknown event {event!r}")

    @property
    def phase(self) -> Phase:
        raise NotImplementedError

    @property
    def grid(self) -> UnitGrid | None:
        """The unit grid the engine's tracker must follow (None for non-unit strategies)."""
        return None

    @property
    def unit(self) -> int:
        return 0

    # -- hooks --------------------------------------------------------------------------
    def _on_unit(self, event: UnitChanged) -> list[Command]:
        return []

    def _on_tick(self, event: Tick) -> list[Command]:
        return []

    def _on_funding(self, event: FundingSettled) -> list[Command]:
        return []

    def _on_filled(self, spec: OrderSpec, qty: float, price: float, ts: int) -> list[Command]:
        """Called once per order, when it is completely filled, with its average price."""
        return []

    def _on_rejected(self, spec: OrderSpec, event: OrderRejected) -> list[Command]:
        return []

    def _on_cancelled(self, spec: OrderSpec, event: OrderCancelled) -> list[Command]:
        return []

    def _on_timer(self, event: Timer) -> list[Command]:
        return []

    # -- helpers for subclasses ---------------------------------------------------------
    def _place(
        self,
        kind: OrderKind,
        side: Side,
        otype: OrderType,
        qty: float,
        price: float | None = None,
        *,
        unit: int | None = None,
        reduce_only: bool = False,
    ) -> Place:
        self.seq += 1
        cid = make_client_id(self.wallet, self.cycle, unit, kind, self.seq)
        # Positional (client_id, wallet, kind, side, type, qty, price, reduce_only, unit):
        # one of these is made for every order.
        spec = OrderSpec(cid, self.wallet, kind, side, otype, qty, price, reduce_only, unit)
        self.working[cid] = spec
        self._known[cid] = spec
        return Place(spec)

    def _cancel(self, client_id: str) -> Cancel:
        self.working.pop(client_id)
        return Cancel(client_id)

    def cancel_all(self) -> list[Command]:
        return [self._cancel(cid) for cid in list(self.working)]

    def orders(self, *kinds: OrderKind) -> list[OrderSpec]:
        """Working orders of these kinds, lowest unit (or price) first."""
        found = [o for o in self.working.values() if o.kind in kinds]
        if len(found) > 1:
            found.sort(key=_unit_then_price)
        return found

    def known_order(self, client_id: str) -> OrderSpec | None:
        """Any order this strategy ever placed (working or not)."""
        return self._known.get(client_id)

    def _has(self, kind: OrderKind, unit: int) -> bool:
        return any(o.kind is kind and o.unit == unit for o in self.working.values())

    def filled_qty(self, client_id: str) -> float:
        return self._filled.get(client_id, (0.0, 0.0))[0]

    def equity(self, price: float | None = None) -> float:
        """Realized PnL less fees plus funding plus unrealized at ``price`` (allocation added
        by subclasses)."""
        p = self.last_price if price is None else price
        unreal = self.position.unrealized(p) if p else 0.0
        return self.realized_pnl - self.fees + self.funding + unreal

    def close_position(self, qty: float) -> list[Command]:
        """A reduce-only market order closing ``qty`` (signed; the venue's position), for an
        emergency flatten after ``stop``."""
        side = Side.SELL if qty > 0 else Side.BUY
        return [self._place(OrderKind.FLATTEN, side, OrderType.MARKET, abs(qty), reduce_only=True)]

    def stop(self) -> list[Command]:
        """Stop trading: cancel every working order (used on liquidation and flatten)."""
        cmds = self.cancel_all()
        self.stopped = True
        return cmds

    # -- fills --------------------------------------------------------------------------
    def _handle_fill(self, ev: OrderFilled) -> list[Command]:
        if ev.fill_id in self._fill_ids:
            return []  # duplicated report: already applied
        spec = self._known.get(ev.client_id)
        if spec is None:
            raise HedgekitError(f"{self.wallet}: fill for unknown order {ev.client_id}")
        self._fill_ids.add(ev.fill_id)
        self.realized_pnl += self.position.apply_fill(spec.side, ev.qty, ev.price)
        self.fees += ev.fee
        self.last_price = ev.price
        qty, cost = self._filled.get(ev.client_id, (0.0, 0.0))
        qty, cost = qty + ev.qty, cost + ev.qty * ev.price
        self._filled[ev.client_id] = (qty, cost)
        if not ev.is_last:
            return []
        # A fill of an order we had already cancelled (the cancel lost the race) is still a
        # real change of position, so it goes through the same rules as any fill.
        self.working.pop(ev.client_id, None)
        if self.stopped:
            return []
        return self._on_filled(spec, self.instrument.round_qty(qty), cost / qty, ev.ts)


def _unit_then_price(o: OrderSpec) -> tuple[int, float]:
    return (o.unit if o.unit is not None else 0, o.price or 0.0)


_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
