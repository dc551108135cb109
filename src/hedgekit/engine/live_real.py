"""REAL mode's part of the live engine (a mixin of ``LiveEngine``): the venue of each wallet,
its start, one input (the exchange's fills, then timers and unit steps), reconciliation
with the venue (SPEC §7) and a flatten verified against it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from loguru import logger

from hedgekit.alerts import Alerts
from hedgekit.config import BacktestConfig
from hedgekit.core.commands import Place
from hedgekit.core.orders import OrderSpec, OrderStatus, diff_orders
from hedgekit.engine.guard import DrawdownGuard
from hedgekit.engine.lease import wall_ms
from hedgekit.engine.live_state import LiveWallet
from hedgekit.engine.real import RealVenue
from hedgekit.engine.runner import WalletRunner
from hedgekit.engine.session import drawdown_limits
from hedgekit.feeds.base import Bar, PricePoint
from hedgekit.store.journal import Journal, RequestOutcome
from hedgekit.venues.ccxt_venue import VenueUnavailable


class RealWallets:
    cfg: BacktestConfig
    journal: Journal
    run_id: int
    adopt: bool
    alerts: Alerts
    data_time: bool
    venue_factory: Callable[[str], RealVenue] | None

    if TYPE_CHECKING:
        def _checkpoint(self, w: LiveWallet, cursor: int, ts: int, *, force: bool,
                        request: RequestOutcome | None = None) -> None: ...  # fmt: skip

        def _guard_alert(self, w: LiveWallet) -> None: ...

    def _flatten_real(self, w: LiveWallet, venue: RealVenue, ts: int) -> str:
        """REAL flatten: close the venue's position (not ours: it is the one at risk) at market,
        reduce-only, verified against the venue's position (retried twice); only once it is
        flat are our remaining orders cancelled (SPEC §4a: never stops off with a position)."""
        r = w.runner
        inst = r.strategy.instrument
        cancelled = len(r.strategy.working)
        qty = venue.account().position
        r.execute(r.strategy.flatten("flatten", qty), ts)
        left = venue.account().position
        for _ in range(2):
            if inst.is_zero_qty(left):
                break
            w.runner.deliver_stepped(venue.poll(ts), ts)
            r.execute(r.strategy.close_position(left), ts)
            left = venue.account().position
        if not inst.is_zero_qty(left):
            return (f"flatten {w.name}: the venue still shows a position of {left:+g} after three reduce-only "
                    "closes; its protective stops stay working. Close it by hand")  # fmt: skip
        for o in venue.venue_open_orders():
            w.runner.deliver_stepped(venue.cancel(o.client_id, ts), ts)
        w.runner.deliver_stepped(venue.poll(ts), ts)
        closed = "" if inst.is_zero_qty(qty) else f"; closed {qty:+g} at market ({venue.last_price or 0:,.2f})"
        return f"flattened {w.name}: cancelled {cancelled} order(s){closed}; venue position now {left:g}"

    def _real_venue(self, wallet: str, leverage: float, state: dict | None) -> RealVenue:
        """The wallet's ccxt venue, prepared (markets, account checks, leverage), with the
        state of the last checkpoint restored."""
        assert self.venue_factory is not None
        venue = self.venue_factory(wallet)
        venue.prepare(leverage=leverage)
        if state is not None:
            venue.restore_engine_state(state)
        return venue

    def _start_real(self, w: LiveWallet, venue: RealVenue, ts: int, price: float) -> None:
        r = w.runner
        venue.note_price(price)
        venue.start_cash = venue.account().cash
        if r.strategy.wants_history and w.history is not None:
            r.strategy.seed_history(*w.history.arrays())
            w.history = None
        line = r.strategy.describe(price)
        if line:
            logger.info(line)
        r.start(ts, price)
        w.started = True
        limit = drawdown_limits(self.cfg).get(w.name)
        if limit is not None:
            w.guard = DrawdownGuard(limit, venue.equity(price))

    def _process_real(self, w: LiveWallet, venue: RealVenue, item: Bar | PricePoint) -> None:
        """One input in REAL: the exchange filled (or not) on its own; its fills are delivered,
        then due timers, then the unit steps the price crossed; then the checkpoint.

        The venue out of reach past the adapter's retries (``VenueUnavailable``) leaves the
        input half done: the wallet is reconciled before its next input (§7), which sends what
        never arrived, cancels what should have been cancelled and applies the fills."""
        r = w.runner
        ts = item.ts
        price = item.close if isinstance(item, Bar) else item.price
        try:
            if w.unreconciled:
                self.reconcile(w)
                w.unreconciled = False
                if w.halted is not None:
                    return
            # Timers due by now fire first, at the last input's price (as PAPER fires them
            # before it walks to this input); then the venue's fills, then the unit steps.
            if r.next_timer is not None:
                r.fire_timers(ts)
            venue.note_price(price)
            w.runner.deliver_stepped(venue.poll(ts), ts)
            r.price_moved(price, ts)
        except VenueUnavailable as err:
            w.unreconciled = True
            logger.error(f"{w.name}: {err}; reconciling before the next input")
            self.alerts.error(w.name, f"{err}; reconciling before the next input")
            return
        finally:
            venue.note_price(price)  # a fill's own price is not where the market is now
        if w.guard is not None and w.guard.check(r, venue, ts, price):
            self._guard_alert(w)
        w.last_ts = ts
        w.seen = item.seq
        self._checkpoint(w, item.seq, ts, force=False)

    def reconcile(self, w: LiveWallet) -> list[str]:
        """SPEC §7, at start and after a reconnect: intents never answered are looked up (never
        sent twice), missed fills are applied in order, the strategy's desired orders are
        diffed against the venue's (missing placed, our orphans cancelled, foreign ones left
        and reported), and the venue's position is checked against the journal's. A position
        that disagrees halts the wallet (``halted``) unless ``adopt``. Returns what it did."""
        venue = w.real
        assert venue is not None
        r = w.runner
        ts = w.last_ts if self.data_time else max(wall_ms(), w.last_ts)
        notes: list[str] = []
        pending = [
            OrderSpec(o.client_id, w.name, o.kind, o.side, o.order_type, o.qty, o.trigger, o.reduce_only, o.unit)
            for o in self.journal.orders(self.run_id, w.name, working_only=True)
            if o.status is OrderStatus.NEW and venue.get_order(o.client_id) is None
        ]
        for cid in venue.recover(pending, ts):
            notes.append(f"order {cid} (journaled before a stop, unanswered) is at the venue: kept, not sent again")
        if w.started:
            notes += sync_orders(r, venue, ts)
        else:
            # Not started: the strategy's start re-issues the orders a crash interrupted (the
            # recovered ones, same client ids); any other order of ours is an orphan.
            for o in venue.venue_open_orders():
                if o.client_id.startswith(f"hk-{w.name}-") and o.client_id not in venue.recovered:
                    notes.append(f"cancelled orphan {o.client_id} (left from an earlier run)")
                    venue.cancel(o.client_id, ts)
        for f in venue.foreign_orders():
            notes.append(f"foreign order {f.venue_id} ({f.side} {f.type} {f.qty:g}) left alone")
        acct = venue.account()
        ours = venue.position.qty
        inst = r.strategy.instrument
        if not w.started and venue.recovered:
            pass  # its interrupted start is resumed: the recovered orders' fills come through poll
        elif not inst.is_zero_qty(acct.position - ours):
            diff_text = (f"the venue's position is {acct.position:+g} @ {acct.avg_price:,.2f}, the journal's "
                         f"{ours:+g} @ {venue.position.avg_price:,.2f} (difference {acct.position - ours:+g})")  # fmt: skip
            if self.adopt:
                venue.position.qty, venue.position.avg_price = acct.position, acct.avg_price
                notes.append(f"ADOPTED: {diff_text}")
            else:
                w.halted = f"position mismatch: {diff_text}"
                notes.append(f"HALTED: {diff_text}; its orders stay as they are. Find out why (a trade by "
                             "hand?), then run again with --adopt to take the venue's position")  # fmt: skip
        for n in notes:
            (logger.error if n.startswith("HALTED") else logger.warning)(f"{w.name}: reconciliation: {n}")
        if notes:
            self.alerts.reconciliation(w.name, "; ".join(notes))
        if w.started or notes:
            self._checkpoint(w, max(w.seen, w.cursor), ts, force=w.started)
        return notes


def sync_orders(r: WalletRunner, venue: RealVenue, ts: int) -> list[str]:
    """A started wallet's part of reconciliation (SPEC §7): the venue's fills first, then the
    strategy's desired orders diffed against the venue's: missing ones placed, our orphans
    cancelled, different ones reported. Returns what it did. (benchmarks/chaos.py recovers
    through this too.)"""
    notes: list[str] = []
    r.deliver_stepped(venue.poll(ts), ts)
    at_venue = venue.venue_open_orders()
    diff = diff_orders(r.strategy.desired_orders(), at_venue, r.strategy.instrument.lot_size)
    # Missing and never accepted by the venue (unknown, or sent without an answer); a
    # known order that left the venue was reported by the poll (filled or cancelled).
    missing = [s for s in diff.missing if (o := venue.get_order(s.client_id)) is None
               or o.status is OrderStatus.NEW]  # fmt: skip
    if missing:
        notes.append(f"placed {len(missing)} missing order(s): {', '.join(s.client_id for s in missing)}")
        r.execute([Place(s) for s in missing], ts)
    for o in diff.unexpected:
        if o.client_id in venue.recovered:
            # Journaled and placed just before a crash, newer than the checkpoint: the replay
            # of its input sends it again (``submit`` keeps this one). Cancelled here, that
            # send would be skipped and a stop counted as working would be gone (§4a).
            continue
        notes.append(f"cancelled orphan {o.client_id} ({o.spec.kind} {o.spec.side} {o.spec.qty:g})")
        r.deliver_stepped(venue.cancel(o.client_id, ts), ts)
    for spec, o in diff.different:
        notes.append(f"order {spec.client_id} differs at the venue ({o.spec.qty:g} @ {o.spec.price}) "
                     f"from the journal ({spec.qty:g} @ {spec.price})")  # fmt: skip
    return notes
