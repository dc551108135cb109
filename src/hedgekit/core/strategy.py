"""Base of every strategy: a pure state machine, events in, commands out.

It keeps the book every strategy needs (working orders, partial fills, the position and its
PnL, deterministic client ids) so each strategy module holds only its own rules. No I/O, no
clock, no globals: the engine feeds events and executes the returned commands in order.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum
from typing import Any, ClassVar, Final

from hedgekit.core.commands import Cancel, Command, Place
from hedgekit.core.compiled import mypyc_attr
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
from hedgekit.core.orders import (
    PROTECTIVE_KINDS,
    OrderKind,
    OrderSpec,
    OrderType,
    Side,
    make_client_id,
)
from hedgekit.core.position import Position
from hedgekit.core.snapshot import SnapshotError, check_header, decode, encode, snapshot_header
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


# Compiled with the hot path and subclassed by plain-Python strategies and plugins: what
# subclasses set in their class body is a ClassVar, and the two per-instance settings below
# are copied in by __init__ (hedgekit.core.compiled).
@mypyc_attr(allow_interpreted_subclasses=True)
class Strategy:
    """Shared bookkeeping. Subclasses implement ``start`` and the ``_on_*`` hooks."""

    name: ClassVar[str] = "strategy"
    wants_ticks: ClassVar[bool] = False  # True: the engine sends a Tick with the price before every Timer
    wants_history: ClassVar[bool] = False  # True: seeded with the warm-up's (ts, close) before start
    # Per instance (a unit wallet sets them from its unit), or in a subclass's class body.
    wants_atr = False  # True: the engine sends AtrUpdated (period ``atr_period``) when it changes
    atr_period = 14
    # The shape of this strategy's state: bump it when a change makes older snapshots wrong,
    # and a journal written before is refused instead of restored into the new shape.
    SNAPSHOT_VERSION: ClassVar[int] = 1

    def __init__(self, wallet: str, instrument: Instrument) -> None:
        if not wallet or any(ch not in _ID_CHARS for ch in wallet):
            raise HedgekitError(
                f"wallet name {wallet!r}: use letters, digits and '_' only (it goes into order ids)"
            )
        cls = type(self)
        for attr in ("wants_atr", "atr_period"):
            slot = vars(Strategy)[attr]  # compiled: the native slot's descriptor
            value = getattr(cls, attr)
            if value is not slot and hasattr(slot, "__set__"):  # a class-body override
                slot.__set__(self, value)
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
        self.stop_reason = ""
        self.warnings: list[str] = []  # drained and logged by the engine
        self._known: dict[str, OrderSpec] = {}  # every order ever placed, by client id
        self._filled: dict[str, tuple[float, float]] = {}  # client id -> (qty, qty*price)
        self._fill_ids: dict[str, str] = {}  # fill id -> client id: duplicates are ignored
        # Client ids of closed orders dropped by forget_closed: a later report for one is a
        # duplicate of what was applied (a venue reports every fill before the close).
        self._forgotten: deque[str] = deque(maxlen=256)

    # -- the engine's entry points ------------------------------------------------------
    def start(self, ts: int, price: float) -> list[Command]:
        raise NotImplementedError

    def on_event(self, event: Event) -> list[Command]:
        # The two events of nearly every call first, by exact type (the chain below is the rule).
        t = type(event)
        if t is UnitChanged and not self.stopped:
            self.last_price = event.price  # type: ignore[union-attr]
            return self._on_unit(event)  # type: ignore[arg-type]
        if t is OrderFilled or isinstance(event, OrderFilled):
            return self._handle_fill(event)  # type: ignore[arg-type]
        if t is OrderCancelled and event.client_id not in self.working:  # type: ignore[union-attr]
            return []  # the report of our own cancel (what the chain below does with it too)
        if isinstance(event, FundingSettled):
            self.funding += event.amount  # cash moved, stopped or not
            return [] if self.stopped else self._on_funding(event)
        if isinstance(event, AtrUpdated):
            self.atr = event.atr
            return []
        if isinstance(event, OrderRejected):
            spec = self.working.pop(event.client_id, None)
            if spec is None:
                return []
            if self.stopped and spec.kind not in PROTECTIVE_KINDS and spec.kind not in _CLOSING_KINDS:
                return []  # a stopped wallet no longer opens anything
            return self._on_rejected(spec, event)
        if self.stopped:
            # A stopped wallet keeps its protective stops: one the venue cancels is still repaired.
            kept = self.working.get(event.client_id) if isinstance(event, OrderCancelled) else None
            if kept is None or kept.kind not in PROTECTIVE_KINDS:
                return []
            del self.working[event.client_id]  # type: ignore[union-attr]
            return self._on_cancelled(kept, event)  # type: ignore[arg-type]
        if isinstance(event, UnitChanged):
            self.last_price = event.price
            return self._on_unit(event)
        if isinstance(event, Tick):
            self.last_price = event.price
            return self._on_tick(event)
        if isinstance(event, OrderCancelled):
            # Our own cancels were removed from `working` when issued; an unsolicited cancel
            # (venue expiry, manual cancel) is handed to the strategy to repair.
            spec = self.working.pop(event.client_id, None)
            if spec is None:
                return []
            qty, cost = self._filled.get(event.client_id, (0.0, 0.0))
            if not self.instrument.is_zero_qty(qty):
                # Partly filled, the rest cancelled by the venue (an IOC market order's rest on
                # Hyperliquid): the order is done at what filled, and handled as such — else
                # its position would wait for a completion that never comes, without a stop.
                return self._on_filled(spec, self.instrument.round_qty(qty), cost / qty, event.ts)
            return self._on_cancelled(spec, event)
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

    def seed_history(self, ts: Any, close: Any) -> None:
        """The warm-up's bar times and closes (arrays), before ``start``: ``wants_history``."""

    def describe(self, price: float) -> str | None:
        """A line the engine logs before the start at ``price`` (None: nothing to say)."""
        return None

    # -- state as data ----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """This strategy's whole state as versioned JSON data (see ``core.snapshot``)."""
        return snapshot_header(self) | {"state": encode(self)}

    @classmethod
    def restore(cls, data: dict[str, Any]) -> Strategy:
        """The strategy ``snapshot`` described; another strategy or version is refused."""
        check_header(data, cls)
        strategy = decode(data["state"])
        if not isinstance(strategy, cls):
            raise SnapshotError(f"snapshot holds a {type(strategy).__name__}, not a {cls.__name__}")
        return strategy

    def desired_orders(self) -> list[OrderSpec]:
        """The orders this strategy expects to be working at the venue now: what recovery
        diffs against a venue's open orders (see ``core.orders.diff_orders``)."""
        return list(self.working.values())

    def forget_closed(self, open_ids: set[str]) -> None:
        """Drop what is kept per order for orders that can no longer change: neither working
        here, nor open at the venue (``open_ids``), nor still referenced by the strategy
        (``_referenced_orders``). Once they are journaled a live run keeps O(1) state instead
        of every order and fill ever seen."""
        keep = self.working.keys() | open_ids | self._referenced_orders()
        gone = [cid for cid in self._known if cid not in keep]
        if not gone:
            return
        for cid in gone:
            del self._known[cid]
            self._filled.pop(cid, None)
        self._forgotten.extend(gone)
        self._fill_ids = {f: cid for f, cid in self._fill_ids.items() if cid in self._known}

    def _referenced_orders(self) -> set[str]:
        """Closed orders whose fills the strategy still reads (``filled_qty``)."""
        return set()

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

    def close_position(self, qty: float, kind: OrderKind = OrderKind.FLATTEN) -> list[Command]:
        """A reduce-only market order closing ``qty`` (signed, as the position: > 0 sells)."""
        side = Side.SELL if qty > 0 else Side.BUY
        return [self._place(kind, side, OrderType.MARKET, abs(qty), reduce_only=True)]

    def stop(self, reason: str = "") -> list[Command]:
        """Stop trading (SPEC §4a). What opens or adds to a position is cancelled now; the
        protective stops (and a close in flight) stay working while the position exists and
        are cancelled once it is flat, so a stopped wallet never holds an unprotected position."""
        if reason and not self.stop_reason:
            self.stop_reason = reason
        self.stopped = True
        if self.instrument.is_zero_qty(self.position.qty):
            return self.cancel_all()
        keep = PROTECTIVE_KINDS | _CLOSING_KINDS
        return [self._cancel(cid) for cid, o in list(self.working.items()) if o.kind not in keep]

    def liquidated(self, qty: float, price: float, loss: float) -> list[Command]:
        """The venue closed ``qty`` (signed, the position) at ``price``, losing ``loss`` in
        cash (fee included): booked like a fill, then the wallet stops."""
        side = Side.SELL if qty > 0 else Side.BUY
        realized = self.position.apply_fill(side, abs(qty), price)
        self.realized_pnl += realized
        self.fees += max(loss + realized, 0.0)
        return self.stop("liquidated")

    def flatten(self, reason: str, qty: float | None = None) -> list[Command]:
        """Close the position at market (reduce-only), then stop. ``qty``: the venue's signed
        position when it is known better than ours. The protective stops are cancelled only
        once the close has filled."""
        q = self.position.qty if qty is None else qty
        cmds = [] if self.instrument.is_zero_qty(q) else self.close_position(q)
        return cmds + self.stop(reason)

    def _protective_refused(self, spec: OrderSpec, reason: str, retried: set[str]) -> list[Command]:
        """SPEC §4a: a refused protective stop is re-rounded and sent once more (its id goes
        into ``retried``); refused again, the part it protects is closed at market at once
        and the wallet stops (its other stops stay working until it is flat)."""
        inst = self.instrument
        q = self.position.qty
        if spec.client_id not in retried:
            price = inst.round_price(spec.price) if spec.price is not None else None
            qty = inst.round_qty(spec.qty)
            if not spec.reduce_only and q * spec.side.sign < 0:
                # A stop that also opens (the hedge's full exit) is re-sent reduce-only for
                # the position alone: protecting it needs no margin.
                qty = inst.round_qty(min(qty, abs(q)))
            place = self._place(
                spec.kind, spec.side, spec.type, qty, price, unit=spec.unit,
                reduce_only=spec.reduce_only or q * spec.side.sign < 0,
            )
            retried.add(place.order.client_id)
            self.warnings.append(f"{self.wallet}: {spec.kind} at {spec.price} refused ({reason}); sent once more")
            return [place]
        protected = min(spec.qty, abs(q)) if q * spec.side.sign < 0 else 0.0
        cmds: list[Command] = []
        what = "nothing left to protect"
        if not inst.is_zero_qty(protected):
            cmds = self.close_position(protected if q > 0 else -protected, OrderKind.PROTECTIVE_CLOSE)
            what = f"closing {protected:g} at market"
        self.warnings.append(
            f"{self.wallet}: {spec.kind} at {spec.price} refused twice ({reason}); {what}; wallet stopped"
        )
        return cmds + self.stop(f"{spec.kind} refused twice")

    def covered(self, closing: Side, *, closes: bool = True) -> float:
        """What the working protective stops (and with ``closes`` the closes in flight) on the
        ``closing`` side still take off the position: their unfilled part."""
        return sum(o.qty - self._filled.get(cid, (0.0, 0.0))[0] for cid, o in self.working.items()
                   if o.side is closing and (o.kind in PROTECTIVE_KINDS or closes and o.kind in _CLOSING_KINDS))  # fmt: skip

    # -- fills --------------------------------------------------------------------------
    def _handle_fill(self, ev: OrderFilled) -> list[Command]:
        if ev.fill_id in self._fill_ids:
            return []  # duplicated report: already applied
        spec = self._known.get(ev.client_id)
        if spec is None:
            if ev.client_id in self._forgotten:
                self.warnings.append(f"{self.wallet}: late duplicate of fill {ev.fill_id} of the closed order "
                                     f"{ev.client_id} ignored (it was applied and journaled)")
                return []
            raise HedgekitError(f"{self.wallet}: fill for unknown order {ev.client_id}")
        self._fill_ids[ev.fill_id] = ev.client_id
        self.realized_pnl += self.position.apply_fill(spec.side, ev.qty, ev.price)
        self.fees += ev.fee
        self.last_price = ev.price
        qty, cost = self._filled.get(ev.client_id, (0.0, 0.0))
        qty, cost = qty + ev.qty, cost + ev.qty * ev.price
        self._filled[ev.client_id] = (qty, cost)
        if self.stopped:
            if ev.is_last:
                self.working.pop(ev.client_id, None)
            # Stopped: the protective stops were kept for the position; flat, they go.
            q = self.position.qty
            if self.instrument.is_zero_qty(q):
                return self.cancel_all() if self.working else []
            # A fill that lost the race with the stop's cancel (an entry) grows the position past
            # what the kept stops cover: that part is closed at market (SPEC §4a).
            bare = self.instrument.round_qty(abs(q) - self.covered(Side.SELL if q > 0 else Side.BUY))
            if self.instrument.is_zero_qty(bare) or bare <= 0:
                return []
            return self.close_position(bare if q > 0 else -bare, OrderKind.PROTECTIVE_CLOSE)
        if not ev.is_last:
            return []
        # A fill of an order we had already cancelled (the cancel lost the race) is still a
        # real change of position, so it goes through the same rules as any fill.
        self.working.pop(ev.client_id, None)
        return self._on_filled(spec, self.instrument.round_qty(qty), cost / qty, ev.ts)


def _unit_then_price(o: OrderSpec) -> tuple[int, float]:
    return (o.unit if o.unit is not None else 0, o.price or 0.0)


# Reduce-only market closes a stopped wallet keeps in flight.
_CLOSING_KINDS: Final = frozenset({OrderKind.FLATTEN, OrderKind.PROTECTIVE_CLOSE})

_ID_CHARS: Final = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
