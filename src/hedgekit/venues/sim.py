"""The simulated exchange (SPEC §6): one account (wallet), one instrument, one-way netting.

Synchronous and deterministic. The engine moves the market with ``move_to`` and sends orders
with ``submit`` / ``cancel``; each call returns the events the venue reports, in the order it
reports them. The account itself (position, cash, fees, funding, orders) is always exact;
an optional ``FaultPlan`` only changes what is *reported* (and, for partial fills, when the
rest of an order fills), to test the engine's handling of a misbehaving venue.

The module holds the order book and the price path; the money (equity, margin checks,
liquidation) is ``venues.sim_margin``, the settings and the fault plan ``venues.sim_config``,
the reporting faults ``venues.sim_faults``.

Intrabar assumptions are commented where they are made (search for "Assumption").
"""

from __future__ import annotations

import bisect
import math
import random
from typing import TYPE_CHECKING, Final

from hedgekit.core.compiled import mypyc_attr
from hedgekit.core.errors import HedgekitError, ParameterError
from hedgekit.core.events import (
    FundingPaid,
    Liquidated,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    VenueEvent,
)
from hedgekit.core.instrument import ContractType, Instrument
from hedgekit.core.orders import Order, OrderSpec, OrderStatus, OrderTrigger, OrderType, Side
from hedgekit.core.position import Position
from hedgekit.core.records import FillRecord, OrderLogRecord
from hedgekit.venues.base import AccountState, ExchangePort
from hedgekit.venues.sim_config import FaultPlan, SimConfig
from hedgekit.venues.sim_margin import LIQUIDATION_ID, SimMargin

__all__ = [
    "FaultPlan",
    "FillRecord",
    "FundingPaid",
    "LIQUIDATION_ID",
    "Liquidated",
    "OrderLogRecord",
    "SimConfig",
    "SimEvent",
    "SimExchange",
]

# Relative tolerance for "is this value on the tick/lot grid".
_GRID_TOL: Final = 1e-6

# Enum members used on every order event, bound once: looking a member up on its class
# (``OrderType.STOP``) goes through the enum metaclass's attribute hook, which costs
# several times a global lookup.
_BUY: Final = Side.BUY
_SELL: Final = Side.SELL
_MARKET: Final = OrderType.MARKET
_LIMIT: Final = OrderType.LIMIT
_STOP: Final = OrderType.STOP
_ACCEPT: Final = OrderTrigger.ACCEPT
_TRIGGER: Final = OrderTrigger.TRIGGER
_CANCEL: Final = OrderTrigger.CANCEL
_REJECT: Final = OrderTrigger.REJECT
_FILLED: Final = OrderStatus.FILLED
_REJECTED: Final = OrderStatus.REJECTED


# The records are in core.records (one definition for the venue, the journal and reports).
SimEvent = VenueEvent  # what the simulated venue reports: strategy events plus account events

# A resting order in a trigger book: (sort key, strict, seq, client id). The key is the price
# in the "up" book and minus the price in the "down" book, so both books sort along the
# direction of travel; ``strict`` orders ("through" limits) fire only beyond their price, so
# they sort after the inclusive ones at the same price; seq is the submission order.
_Entry = tuple[float, bool, int, str]


# Tests (and a user's own venue quirks) subclass the simulator in plain Python
# (hedgekit.core.compiled).
@mypyc_attr(allow_interpreted_subclasses=True)
class SimExchange(SimMargin):
    """A simulated account trading one instrument (see the module docstring for the model).

    Public state: ``last_price``, ``position``, ``cash``, ``fees_paid``, ``funding_paid``
    (net funding credited to cash, negative when the wallet paid), ``realized_pnl`` (before
    fees), ``fills``, ``order_log``, ``funding_log``, ``liquidated``.
    """

    def __init__(
        self, instrument: Instrument, config: SimConfig, faults: FaultPlan | None = None
    ) -> None:
        if instrument.contract is ContractType.SPOT and config.leverage != 1:
            raise ParameterError("leverage", config.leverage, "spot is traded without leverage: use 1")
        self.instrument = instrument
        self.config = config
        self.faults = faults if faults is not None else FaultPlan()
        self.maker_fee = instrument.maker_fee if config.maker_fee is None else config.maker_fee
        self.taker_fee = instrument.taker_fee if config.taker_fee is None else config.taker_fee
        self.last_price: float | None = None
        # Fills are always whole lots, so the position is kept at the lot's precision.
        self.position = Position(qty_decimals=instrument.qty_decimals)
        self.cash = float(config.initial_cash)
        # Bumped on every change of orders, position or cash: callers cache what depends
        # on them (the backtest's quiet band) against it.
        self.revision = 0
        # liquidation_price() memo: the (qty, entry, cash) it was computed for (NaN: none yet).
        self._liq_q = self._liq_avg = self._liq_cash = math.nan
        self._liq_price: float | None = None
        self.fees_paid = 0.0
        self.funding_paid = 0.0
        self.realized_pnl = 0.0
        self.liquidated = False
        # Fills too are kept as rows (``FillRecord``'s field order) until ``fills`` is read:
        # a sweep trial only counts them (``fill_count``).
        self._fill_rows: list[tuple] = []
        self._fills: list[FillRecord] = []
        # The order log is kept as rows (tuples in ``OrderLogRecord``'s field order) while the
        # run goes and made records when ``order_log`` is read. ``keep_order_log = False``
        # keeps none (a sweep trial never reads it: ~85k rows on a small-unit coin-year); reading
        # ``order_log`` then raises instead of returning [].
        self._order_rows: list[tuple] = []
        self._order_log: list[OrderLogRecord] = []
        self.keep_order_log = True
        self.funding_log: list[FundingPaid] = []  # every payment, in order (cycles.csv)

        self._spot = instrument.contract is ContractType.SPOT
        self._cross = config.margin_mode == "cross"
        self._orders: dict[str, Order] = {}  # every order by client id
        self._open: dict[str, Order] = {}  # working orders, in submission order
        self._up: list[_Entry] = []  # fire when the price rises: buy stops, sell limits
        self._down: list[_Entry] = []  # fire when it falls: sell stops, buy limits
        self._entries: dict[str, tuple[list[_Entry], _Entry]] = {}
        self._resume: dict[str, bool] = {}  # partially filled by a fault: id -> maker?
        self._seq = 0
        self._rng = random.Random(config.seed)  # trigger order of ties
        self._fault_rng = random.Random(self.faults.seed)
        self._rejects_left = set(self.faults.reject)
        f = self.faults
        # Whether a fault can touch a report, an order or a fill at all: without one (the
        # common case) ``_report`` hands the events back as they are and no fault is looked
        # up per order or per fill.
        self._report_faults = bool(
            f.duplicate or f.duplicate_prob or f.delay or f.delay_prob or f.reorder or f.reorder_prob
        )
        self._reject_faults = bool(f.reject or f.reject_prob)
        self._partial_faults = bool(f.partial or f.partial_prob)
        self._held: list[tuple[int, SimEvent]] = []  # (call number when due, event)
        self._calls = 0
        self._liquidations = 0

    # -- queries ------------------------------------------------------------------------
    @property
    def fills(self) -> list[FillRecord]:
        """Every fill, in order; the same list on every read (a caller may clear or insert)."""
        rows = self._fill_rows
        if rows:
            self._fills.extend([FillRecord(*row) for row in rows])
            rows.clear()
        return self._fills

    @property
    def fill_count(self) -> int:
        """``len(fills)`` without making the records."""
        return len(self._fills) + len(self._fill_rows)

    @property
    def order_log(self) -> list[OrderLogRecord]:
        """Every order event (placed, triggered, filled, cancelled, rejected), in order. The
        same list on every read: a caller may clear it or insert into it."""
        if not self.keep_order_log:
            raise HedgekitError("this simulated venue keeps no order log (keep_order_log=False)")
        rows = self._order_rows
        if rows:
            self._order_log.extend([OrderLogRecord(*row) for row in rows])
            rows.clear()
        return self._order_log

    def open_orders(self) -> list[Order]:
        """Working orders (open, triggered or partially filled), in submission order."""
        return list(self._open.values())

    def account(self) -> AccountState:
        """The account as the exchange port reports it (see ``venues.base``)."""
        pos = self.position
        return AccountState(pos.qty, pos.avg_price, self.cash, self.equity(), self.last_price, self.open_orders())

    def forget_closed(self) -> None:
        """Drop closed orders (a live run calls this once they are journaled, so its state
        stays O(1)). Client ids carry a per-wallet sequence, so a forgotten id never comes
        back; the duplicate-id check covers the orders kept."""
        self._orders = {cid: o for cid, o in self._orders.items() if not o.status.is_closed}

    def get_order(self, client_id: str) -> Order | None:
        """Any order this venue has seen (the latest one, if a rejected id was reused)."""
        return self._orders.get(client_id)

    def next_trigger_above(self) -> float | None:
        """Lowest price above ``last_price`` at which something fires: a buy stop, a sell
        limit (a "through" limit: one tick beyond its price), or a short's liquidation."""
        return self._next_trigger(self._up, up=True)

    def next_trigger_below(self) -> float | None:
        """Highest price below ``last_price`` at which something fires: a sell stop, a buy
        limit (a "through" limit: one tick beyond its price), or a long's liquidation."""
        return self._next_trigger(self._down, up=False)

    # -- commands -----------------------------------------------------------------------
    def submit(self, spec: OrderSpec, ts: int) -> list[SimEvent]:
        """Accept or reject an order. A market order fills at once at the last price
        (± slippage); a stop already reached at the last price triggers and fills there; a
        limit better than the last price fills at once as a taker (never beyond its limit)."""
        self._calls += 1
        out: list[SimEvent] = []
        problem = self._check_new(spec)
        if problem is None and self._reject_faults and self._fault_reject(spec.client_id):
            problem = "injected fault: venue rejected the order (FaultPlan.reject)"
        if problem is not None:
            order = Order(spec)
            previous = self._orders.get(spec.client_id)
            if previous is None or previous.status is _REJECTED:
                self._orders[spec.client_id] = order
            order.apply(_REJECT)
            self._log(ts, order, "rejected", spec.qty, reason=problem)
            out.append(OrderRejected(ts, spec.client_id, problem))
            return self._report(out)

        order = Order(spec)
        order.apply(_ACCEPT)
        self._orders[spec.client_id] = order
        self._open[spec.client_id] = order
        self._log(ts, order, "placed", spec.qty)
        last = self._price()
        if spec.type is _MARKET:
            self._execute(order, self._taker_price(spec), False, ts, out)
        elif spec.type is _STOP:
            trigger = _price_of(spec)
            if trigger <= last if spec.side is _BUY else trigger >= last:
                # Assumption: a stop whose trigger is already reached fills at the last price.
                order.apply(_TRIGGER)
                self._log(ts, order, "triggered", order.leaves_qty, price=last)
                self._execute(order, last, False, ts, out)
            else:
                self._rest(order)
        else:
            limit = _price_of(spec)
            if limit > last if spec.side is _BUY else limit < last:
                # Assumption: a limit better than the market takes liquidity at once, at the
                # market price (± slippage) but never beyond its limit; taker fee.
                self._execute(order, self._taker_price(spec), False, ts, out)
            else:
                self._rest(order)
        # Only a fill can make the account liquidatable at the unchanged price (before the
        # call it was not: every move, funding payment and fill checks it).
        if out and not self.liquidated and self._liquidatable_at(last):
            self._liquidate(ts, last, out)
        return self._report(out)

    def cancel(self, client_id: str, ts: int) -> list[SimEvent]:
        """Cancel a working order: ``[OrderCancelled]``.

        Returns ``[]`` when the id is unknown or the order is already closed (filled,
        cancelled, rejected, or swept by a liquidation): as a venue answering "unknown
        order", there is nothing left to cancel and the order's final event has already been
        reported. A cancel that loses the race against a fill is normal, not an error.
        (Reports released by a ``delay`` fault may be returned too.)
        """
        self._calls += 1
        out: list[SimEvent] = []
        order = self._open.get(client_id)
        if order is not None:
            self._close(order, _CANCEL, ts, out, "cancelled by the client")
        return self._report(out)

    def move_to(self, price: float, ts: int, gap: bool = False) -> list[SimEvent]:
        """Move the market monotonically from ``last_price`` to ``price``.

        Every working order crossed fires in order of its price along the direction of
        travel (ties in ``config.trigger_order``), and the position is liquidated where the
        path reaches its liquidation price. ``gap=True`` means the price jumped (no trade in
        between): crossed stops and a liquidation fill at ``price``. The first call only sets
        the price.
        """
        if not (math.isfinite(price) and price > 0):
            raise HedgekitError(f"move_to: price {price!r} must be a positive finite number")
        self._calls += 1
        out: list[SimEvent] = []
        if self.last_price is None:
            self.last_price = price
            return self._report(out)
        if self._resume:
            self._resume_partials(ts, out)
        if not self.liquidated and self._liquidatable_at(self.last_price):
            self._liquidate(ts, self.last_price, out)
        if price != self.last_price and not self.liquidated:
            self._travel(price, ts, gap, out)
        self.last_price = price
        return self._report(out)

    def drift(self, price: float) -> bool:
        """Set the price for a move the caller knows reaches no trigger and no liquidation
        (the backtest's quiet band). Refused (False) while reports or partial fills are
        pending, so fault injection always goes through ``move_to``."""
        if self.last_price is None or self.liquidated or self._resume or self._held:
            return False
        self.last_price = price
        return True

    def apply_funding(self, rate: float, mark_price: float, ts: int) -> FundingPaid | None:
        """Pay or receive funding: ``amount = -qty * mark_price * rate`` is added to cash
        (longs pay a positive rate, shorts receive it). None when flat (or on spot).

        If the payment pushes the account to its maintenance margin, the position is
        liquidated at once at ``mark_price``; those events are reported by the next call.
        """
        q = self.position.qty
        if q == 0 or self._spot:
            return None
        amount = -q * mark_price * rate
        self.revision += 1  # cash moved: the liquidation price moved
        self.cash += amount
        self.funding_paid += amount
        paid = FundingPaid(ts, rate, mark_price, amount)
        self.funding_log.append(paid)
        if self._liquidatable_at(mark_price):
            held: list[SimEvent] = []
            self._liquidate(ts, mark_price, held)
            self._held.extend((self._calls + 1, ev) for ev in held)
        return paid

    # -- validation ---------------------------------------------------------------------
    def _check_new(self, spec: OrderSpec) -> str | None:
        inst = self.instrument
        if self.liquidated:
            return "account was liquidated: no new orders are accepted"
        if self.last_price is None:
            return "no market price yet: call move_to() before submitting orders"
        previous = self._orders.get(spec.client_id)
        if previous is not None and previous.status is not _REJECTED:
            return (
                f"duplicate client id {spec.client_id!r}: already used by an order that is "
                f"{previous.status}; client ids must be unique per wallet"
            )
        if spec.qty < inst.lot_size * (1 - _GRID_TOL):
            return f"qty {spec.qty:g} is below the lot size {inst.lot_size:g}"
        if not _on_grid(spec.qty, inst.lot_size):
            return (
                f"qty {spec.qty!r} is not a multiple of the lot size {inst.lot_size:g}: "
                f"round it with Instrument.floor_qty (-> {inst.floor_qty(spec.qty):g})"
            )
        if spec.price is not None and spec.type is not _MARKET and not _on_grid(
            spec.price, inst.tick_size
        ):
            return (
                f"price {spec.price!r} is not on the tick {inst.tick_size:g}: round it with "
                f"Instrument.round_price (-> {inst.round_price(spec.price):g})"
            )
        ref = self.last_price if spec.type is _MARKET else _price_of(spec)
        if not spec.reduce_only and not inst.meets_min_notional(spec.qty, ref):
            min_qty = inst.round_qty(math.ceil(inst.min_notional / ref / inst.lot_size) * inst.lot_size)
            return (
                f"notional {spec.qty * ref:.2f} USD ({spec.qty:g} x {ref:g}) is below the "
                f"minimum {inst.min_notional:g} USD: raise qty to at least {min_qty:g}"
            )
        if spec.reduce_only or spec.type is _STOP:
            return None  # stops are margin-checked when they fire
        if spec.type is _MARKET:
            fill = self._taker_price(spec)
        else:
            limit = _price_of(spec)
            marketable = limit > self.last_price if spec.side is _BUY else limit < self.last_price
            fill = self._taker_price(spec) if marketable else limit
        return self._fill_problem(spec.side, spec.qty, fill)

    # -- order execution ----------------------------------------------------------------
    def _price(self) -> float:
        if self.last_price is None:  # pragma: no cover - guarded by _check_new
            raise HedgekitError("no market price yet: call move_to() first")
        return self.last_price

    def _taker_price(self, spec: OrderSpec) -> float:
        p = self._price()
        slip = self.config.slippage
        if slip:
            # Assumption: a market order pays the configured slippage against the last trade,
            # rounded to the tick against the taker.
            inst = self.instrument
            p = inst.ceil_price(p * (1 + slip)) if spec.side is _BUY else inst.floor_price(p * (1 - slip))
        if spec.type is _LIMIT:
            limit = _price_of(spec)
            p = min(p, limit) if spec.side is _BUY else max(p, limit)
        return p

    def _reducible(self, side: Side) -> float:
        """How much an order on ``side`` can reduce the position (0 if same side or flat)."""
        q = self.position.qty
        return abs(q) if (q < 0 if side is _BUY else q > 0) else 0.0

    def _execute(
        self, order: Order, price: float, maker: bool, ts: int, out: list[SimEvent],
        *, resume: bool = False,
    ) -> None:
        """Fill what is left of ``order`` at ``price``, or cancel/reject it."""
        spec = order.spec
        inst = self.instrument
        qty = inst.round_qty(order.leaves_qty)
        clamped = False
        if spec.reduce_only:
            avail = self._reducible(spec.side)
            if inst.is_zero_qty(avail):
                self._close(order, _CANCEL, ts, out, "reduce-only: no opposite position left to reduce")
                return
            if qty > avail:
                qty, clamped = avail, True  # never flips: clamp to the position, the rest expires
        elif not resume:
            problem = self._fill_problem(spec.side, qty, price)
            if problem is not None:
                self._close(order, _REJECT, ts, out, problem, price)
                return
        if (
            self._partial_faults and not clamped and not resume
            and self._fault_hit(self.faults.partial, self.faults.partial_prob, spec.client_id)
        ):
            part = inst.floor_qty(qty * self.faults.partial_fraction)
            if part > 0 and not inst.is_zero_qty(qty - part):
                qty = part
                self._resume[spec.client_id] = maker
        self._book_fill(order, qty, price, maker, ts, out, last=clamped)
        if clamped:
            self._close(order, _CANCEL, ts, out, "reduce-only: clamped to the position, the rest expired")
        elif order.status is _FILLED:  # (just filled: FILLED or PARTIALLY_FILLED)
            self._unlist(spec.client_id)

    def _book_fill(
        self, order: Order, qty: float, price: float, maker: bool, ts: int,
        out: list[SimEvent], *, last: bool,
    ) -> None:
        spec = order.spec
        self.revision += 1
        fill_id = f"{spec.client_id}#{len(order.fill_ids) + 1}"
        order.record_fill(fill_id, qty, price, self.instrument.lot_size)
        realized = self.position.apply_fill(spec.side, qty, price)
        fee = qty * price * (self.maker_fee if maker else self.taker_fee)
        self.cash += realized - fee
        self.fees_paid += fee
        self.realized_pnl += realized
        # A filled order has less than half a lot left, which rounds to exactly 0.0.
        leaves = 0.0 if last or order.status is _FILLED else self.instrument.round_qty(order.leaves_qty)
        self._fill_rows.append((
            ts, spec.client_id, str(spec.kind), spec.side, qty, price, fee, spec.unit,
            self.position.qty, self.realized_pnl, fill_id, "maker" if maker else "taker",
        ))
        self._log(ts, order, "filled", qty, price=price)
        out.append(OrderFilled(ts, spec.client_id, fill_id, qty, price, fee, leaves))

    def _close(
        self, order: Order, trigger: OrderTrigger, ts: int, out: list[SimEvent], reason: str,
        price: float | None = None,
    ) -> None:
        """Cancel or reject a working order and report it."""
        cid = order.spec.client_id
        left = self.instrument.round_qty(order.leaves_qty)
        order.apply(trigger)
        self._unlist(cid)
        if trigger is _CANCEL:
            self._log(ts, order, "cancelled", left, reason=reason)
            out.append(OrderCancelled(ts, cid))
        else:
            self._log(ts, order, "rejected", left, reason=reason)
            out.append(OrderRejected(ts, cid, reason, price))

    def _unlist(self, cid: str) -> None:
        self._open.pop(cid, None)
        if self._resume:
            self._resume.pop(cid, None)
        entry = self._entries.pop(cid, None)
        if entry is not None:
            book, item = entry
            book.remove(item)

    def _rest(self, order: Order) -> None:
        spec = order.spec
        price = _price_of(spec)
        # Assumption ("through"): a limit fills only once the price trades strictly beyond it.
        strict = spec.type is _LIMIT and self.config.limit_fill == "through"
        fires_up = (spec.type is _STOP) == (spec.side is _BUY)
        self._seq += 1
        if fires_up:
            book, item = self._up, (price, strict, self._seq, spec.client_id)
        else:
            book, item = self._down, (-price, strict, self._seq, spec.client_id)
        bisect.insort(book, item)
        self._entries[spec.client_id] = (book, item)

    def _resume_partials(self, ts: int, out: list[SimEvent]) -> None:
        # Assumption (partial-fill fault): the rest of a partially filled order fills at the
        # start of the next move, before the price moves: a limit at its limit price, a
        # market order at the last price ± slippage, a triggered stop at the last price.
        for cid, maker in list(self._resume.items()):
            order = self._open[cid]
            spec = order.spec
            if maker:
                price = _price_of(spec)
            elif spec.type is _STOP:
                price = self._price()
            else:
                price = self._taker_price(spec)
            del self._resume[cid]
            self._execute(order, price, maker, ts, out, resume=True)

    # -- the price path -----------------------------------------------------------------
    def _travel(self, target: float, ts: int, gap: bool, out: list[SimEvent]) -> None:
        up = target > self.last_price  # type: ignore[operator]  # set: move_to checked it
        book = self._up if up else self._down
        while not self.liquidated:
            level: float | None = None
            strict = False
            if book:
                key, strict, _, _ = book[0]
                level = key if up else -key
                reached = (target > level if up else target < level) if strict else (
                    target >= level if up else target <= level
                )
                if not reached:
                    level = None
            liq = self._liquidation_on_path(up, target)
            if liq is not None and (
                level is None or (liq < level if up else liq > level) or (liq == level and strict)
            ):
                # Assumption: liquidation fills at the liquidation price the path reaches (the
                # mark a real venue closes at); in a gap, at the gap price. An order at the
                # very same price fires first (it was resting in the book).
                self._liquidate(ts, target if gap else liq, out)
                return
            if level is None:
                return
            group: list[_Entry] = []
            while book and book[0][0] == key and book[0][1] == strict:  # same price and kind
                item = book.pop(0)
                del self._entries[item[3]]
                group.append(item)
            for cid in self._arrange(group):
                if self.liquidated:
                    return  # the liquidation cancelled the rest of the group
                order = self._open[cid]
                self._fire(order, level, target, gap, ts, out)
                if not self.liquidated and self._liquidatable_at(level):
                    self._liquidate(ts, target if gap else level, out)

    def _arrange(self, group: list[_Entry]) -> list[str]:
        """Order simultaneous triggers (same price): submission order, its reverse, or a
        seeded shuffle, so a strategy that depends on the order shows it."""
        ids = [item[3] for item in group]  # already in submission order (seq)
        mode = self.config.trigger_order
        if mode == "reverse":
            ids.reverse()
        elif mode == "random" and len(ids) > 1:
            self._rng.shuffle(ids)
        return ids

    def _fire(
        self, order: Order, level: float, target: float, gap: bool, ts: int, out: list[SimEvent]
    ) -> None:
        spec = order.spec
        if spec.type is _STOP:
            # Assumption: a stop becomes a market order when the path reaches its trigger and
            # fills at the trigger; after a gap (no trade in between) it fills at the first
            # traded price, `target`, which is always the worse one. No slippage on stops.
            order.apply(_TRIGGER)
            self._log(ts, order, "triggered", order.leaves_qty, price=level)
            self._execute(order, target if gap else level, False, ts, out)
        else:
            # Assumption: a resting limit fills at its own price, also when a gap jumps over
            # it (never better than asked: conservative); maker fee.
            self._execute(order, _price_of(spec), True, ts, out)

    # -- trigger queries ----------------------------------------------------------------
    def _next_trigger(self, book: list[_Entry], *, up: bool) -> float | None:
        last = self.last_price
        if last is None or self.liquidated:
            return None
        tick = self.instrument.tick_size
        best: float | None = None
        for key, strict, _, _ in book:
            price = key if up else -key
            if best is not None and (price >= best if up else price <= best):
                break
            # A strict ("through") limit, or a limit sitting exactly at the last price, fires
            # only once the price trades beyond it: report the first tick beyond.
            if strict or price == last:
                price = self.instrument.round_price(price + tick if up else price - tick)
            if best is None or (price < best if up else price > best):
                best = price
        q = self.position.qty
        if q != 0 and (q < 0) == up:
            liq = self.liquidation_price()
            if liq is not None and (best is None or (liq < best if up else liq > best)):
                best = liq
        return best

    # -- reporting ----------------------------------------------------------------------
    def _log(
        self, ts: int, order: Order, event: str, qty: float, *,
        price: float | None = None, reason: str = "",
    ) -> None:
        self.revision += 1
        if self.keep_order_log:
            spec = order.spec
            self._order_rows.append(
                (ts, spec.client_id, event, str(spec.kind), spec.side, qty, spec.price, spec.unit, price, reason)
            )


def _price_of(spec: OrderSpec) -> float:
    if spec.price is None:  # pragma: no cover - OrderSpec guarantees it for stops and limits
        raise HedgekitError(f"order {spec.client_id}: {spec.type} order without a price")
    return spec.price


def _on_grid(value: float, step: float) -> bool:
    steps = value / step
    # Relative past a million steps: a float of 1e7 coins on a 0.001 lot is off by ~1e-6 lots.
    return abs(steps - round(steps)) <= max(_GRID_TOL, abs(steps) * 1e-12)


if TYPE_CHECKING:
    _PORT: type[ExchangePort] = SimExchange  # mypy checks that the simulator implements the port
