"""REAL, after a crash: the fill of an order recovered at the venue that the resumed strategy
never issued again (``RealWallets._sweep_recovered``). The strategy does not know that order,
so the venue's position differs from the strategy's by what it filled, and no stop of the
strategy's covers that part (SPEC §4a). ``close_orphan_fill`` undoes it at market, reduce-only,
with an order of the engine's own (``OrderKind.ORPHAN_CLOSE``, client id ``orphan_close_id``:
one per orphan, its intent journaled before it is sent, so a crash mid-close is resolved by
looking it up, never by a second close), then checks the venue's position.

Only what *reduces* the venue's position is undone: an orphan that added to the position (an
entry) is sold back; one that reduced it (a stop, a take profit) is not bought back, since
that would open a position the strategy's stops were never sized for, and the strategy's
reduce-only stops then over-cover a smaller position (safe at the venue: a reduce-only order
larger than the position closes only what is there). One that flipped the position is closed
back to flat, never re-opened.
"""

from __future__ import annotations

from dataclasses import dataclass

from hedgekit.core.commands import Place
from hedgekit.core.events import OrderFilled, OrderRejected, VenueEvent
from hedgekit.core.orders import (
    OrderKind,
    OrderSpec,
    OrderStatus,
    OrderType,
    Side,
    client_id_kind,
    orphan_close_id,
)
from hedgekit.core.strategy import Strategy
from hedgekit.engine.real import RealVenue
from hedgekit.engine.runner import WalletRunner


@dataclass(frozen=True, slots=True)
class OrphanOutcome:
    note: str  # what to log and alert
    halted: str | None = None  # why the wallet stops trading (None: it goes on)
    bare: float = 0.0  # of the venue's position, what no protective stop of the strategy covers


def unprotected(strategy: Strategy, position: float) -> float:
    """How much of ``position`` (signed) the strategy's working protective stops do not cover."""
    return max(abs(position) - strategy.covered(Side.SELL if position > 0 else Side.BUY, closes=False), 0.0)


def is_orphan_close(client_id: str) -> bool:
    return client_id_kind(client_id) is OrderKind.ORPHAN_CLOSE


def hold_close(venue: RealVenue, close: OrderSpec, ts: int) -> None:
    """Until the close is done at the adapter, its events are held like a recovered order's
    (the strategy would take its fill for an unknown order's); the sweep drops them then."""
    order = venue.get_order(close.client_id)
    if order is not None and not order.status.is_closed:  # (None: done, and forgotten)
        venue.recovered[close.client_id] = close
        venue.recovered_ts[close.client_id] = ts


def close_orphan_fill(r: WalletRunner, venue: RealVenue, cid: str, ts: int) -> OrphanOutcome:
    """Undo what the recovered, unclaimed order ``cid`` filled (its events held, its rest
    cancelled by the caller); see the module docstring. The wallet goes on only when the
    venue's position is the strategy's again; otherwise the outcome halts it."""
    strategy = r.strategy
    inst = strategy.instrument
    half_lot = inst.lot_size / 2
    spec = venue.recovered[cid]
    filled = venue.held_fill(cid)
    moved = spec.side.sign * filled  # what the orphan did to the venue's position
    close_cid = orphan_close_id(cid)
    # What a close sent before (a crash, or an outage mid-close) did: its fills are held since
    # (found by ``recover``, or held by ``hold_close``), else the adapter knows it.
    prior = venue.get_order(close_cid)
    done = venue.held_fill(close_cid) if close_cid in venue.recovered else prior.filled_qty if prior else 0.0
    done *= spec.side.opposite.sign
    # The position after the orphan's fill and before its close (our book: the same answer
    # after a restart, so the same close, which the journal and the venue then recognise).
    before = inst.round_qty(venue.position.qty - done)
    qty = inst.round_qty(min(filled, abs(before))) if before * moved > 0 else 0.0
    head = (f"order {cid} ({spec.kind} {spec.side} {spec.qty:g}), recovered after a crash and never issued "
            f"again by the strategy, filled {filled:g} at the venue")  # fmt: skip
    closed = ""
    refused = ""
    if qty > half_lot:
        close = OrderSpec(close_cid, spec.wallet, OrderKind.ORPHAN_CLOSE, spec.side.opposite, OrderType.MARKET,
                          qty, None, reduce_only=True, unit=spec.unit)  # fmt: skip
        events = _send(r, venue, close, ts)
        own = [e for e in events if getattr(e, "client_id", None) == close_cid]
        r.deliver_stepped([e for e in events if getattr(e, "client_id", None) != close_cid], ts)
        fills = [e for e in own if isinstance(e, OrderFilled)]
        got = sum(e.qty for e in fills)
        price = sum(e.qty * e.price for e in fills) / got if got else (venue.last_price or 0.0)
        refused = "; ".join(e.reason for e in own if isinstance(e, OrderRejected))
        closed = f"{close.side} {qty:g} at market, reduce-only ({close_cid}), filled {got:g} at {price:,.2f}"
    acct = venue.account().position
    ours = strategy.position.qty
    bare = unprotected(strategy, acct)
    want = inst.round_qty(before - (qty if moved > 0 else -qty))
    if abs(acct - want) > half_lot:
        if closed:
            detail = f"its close ({closed}) " + (f"was refused: {refused}" if refused else "fell short")
        else:
            detail = "nothing was sent"
        halted = (f"{head}; {detail}: the venue's position is {acct:+g} where {want:+g} was meant, the "
                  f"strategy's {ours:+g}, {bare:g} of it without a protective stop")  # fmt: skip
        todo = f"Close {bare:g} by hand (or flatten the wallet)" if bare > half_lot else "Find out why"
        return OrphanOutcome(f"HALTED: {halted}. {todo}, then run again with --adopt", halted=halted, bare=bare)
    if abs(acct - ours) <= half_lot:
        # Provably as before the crash: the strategy's position and its stops are the
        # venue's again, so it goes on (halting would change nothing at the venue).
        venue.claim(cid)  # its held fills were undone: nobody's
        return OrphanOutcome(f"{head}: closed it ({closed}); the venue's position {acct:+g} is the "
                             f"strategy's again, its stops cover {abs(acct) - bare:g} of it",
                             bare=bare)  # fmt: skip
    # Undoing (the rest of) it would open a position: nothing more is sent, and the strategy
    # no longer knows the venue's position, which a person must look at.
    what = (f"; closed {closed}, back to flat; undoing the rest would open a position: nothing more sent" if closed
            else ", which reduced the venue's position: undoing it would open a position, so nothing was sent")  # fmt: skip
    advice = (f"{bare:g} of it has NO protective stop" if bare > half_lot
              else "the strategy's stops cover all of it (reduce-only, sized for its larger position)")  # fmt: skip
    halted = f"{head}{what}. The venue's position is {acct:+g}, the strategy's {ours:+g}"
    return OrphanOutcome(f"HALTED: {halted}; {advice}. Flatten the wallet, or check and run again with --adopt "
                         "to go on from the venue's position", halted=halted, bare=bare)  # fmt: skip


def _send(r: WalletRunner, venue: RealVenue, close: OrderSpec, ts: int) -> list[VenueEvent]:
    """The close: its intent journaled first (the engine's hook, as for every REAL order),
    then sent; one placed before (found after a crash, or answered) is not sent again, and
    one sent without an answer is looked up first (``RealVenue.submit``)."""
    cid = close.client_id
    recovered = cid in venue.recovered
    held = venue.claim(cid) if recovered else []
    prior = venue.get_order(cid)
    if (recovered and prior is None) or (prior is not None and prior.status is not OrderStatus.NEW):
        hold_close(venue, close, ts)  # the venue has it (None: it was closed, then forgotten)
        return held
    if r.on_command is None:
        raise RuntimeError("a REAL wallet's runner has no journal hook: its orders would not be journaled")
    r.on_command(ts, Place(close), r.strategy)
    try:
        return held + venue.submit(close, ts)
    finally:
        hold_close(venue, close, ts)
