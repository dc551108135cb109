"""REAL mode's part of the live engine (a mixin of ``LiveEngine``): the venue of each wallet,
its start, one input (the exchange's fills, then timers and unit steps), reconciliation
with the venue (SPEC §7) and a flatten verified against it.

User streams (``venues.ccxt_stream``): a wallet's stream starts with its first traded input.
Each input takes what it pushed (and asks REST only when ``RealVenue.rest_due``); on a live
feed the loop's wait between inputs is cut short by a push, so a fill is delivered (and
journaled) at once, not with the next price; a replay runs on the data's clock and delivers
its fills with its inputs. After every reconnect of a stream the wallet is reconciled; the
streams are closed when the run ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from loguru import logger

from hedgekit.alerts import Alerts
from hedgekit.config import BacktestConfig, GridHedgeConfig, WalletConfig
from hedgekit.core.commands import Place
from hedgekit.core.errors import ParameterError
from hedgekit.core.instrument import Instrument
from hedgekit.core.orders import OrderSpec, OrderStatus, diff_orders, orphan_close_id
from hedgekit.core.strategy import Strategy
from hedgekit.core.volatility import daily_volatility
from hedgekit.engine.guard import DrawdownGuard
from hedgekit.engine.lease import wall_ms
from hedgekit.engine.live_state import LiveWallet
from hedgekit.engine.orphan_fill import close_orphan_fill, is_orphan_close, unprotected
from hedgekit.engine.real import RealVenue, public_candles
from hedgekit.engine.runner import WalletRunner
from hedgekit.engine.session import build_strategy, drawdown_limits
from hedgekit.feeds.base import Bar, FeedError, PricePoint
from hedgekit.feeds.daily import DailyCandles
from hedgekit.store.journal import Journal, RequestOutcome
from hedgekit.venues.ccxt_venue import VenueUnavailable


class RealWallets:
    cfg: BacktestConfig
    journal: Journal
    run_id: int
    adopt: bool
    network: str
    alerts: Alerts
    data_time: bool
    venue_factory: Callable[[str], RealVenue] | None
    # RECOMMENDATION with --account: wallet -> (base asset, spot coins) read from the exchange
    spot_reader: Callable[[str], tuple[str, float]] | None = None

    if TYPE_CHECKING:
        def _checkpoint(self, w: LiveWallet, cursor: int, ts: int, *, force: bool,
                        request: RequestOutcome | None = None) -> None: ...  # fmt: skip

        def _guard_alert(self, w: LiveWallet) -> None: ...

        wallets: list[LiveWallet]

    _wake: asyncio.Event | None = None  # set (from a stream's thread) when a stream pushed
    _wake_loop: asyncio.AbstractEventLoop | None = None

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

    @property
    def _stash(self) -> dict[str, RealVenue]:
        """Venues made to read the account, until their wallet takes them (per engine)."""
        return self.__dict__.setdefault("_stashed_venues", {})

    def _strategy_for(self, wc: WalletConfig, instrument: Instrument, *, fresh: bool) -> Strategy:
        """The wallet's strategy. A grid hedge with ``spot_quantity: account`` gets the spot
        balance read now from the exchange (REAL: its venue; RECOMMENDATION: ``spot_reader``,
        with --account); elsewhere ``account`` is an error naming the field (``spot_coins``).
        Not ``fresh`` (resumed from a checkpoint): the snapshot holds the strategy with the
        quantity read at its start, and this instance only names its type, so nothing is read."""
        if isinstance(wc, GridHedgeConfig) and wc.spot_quantity == "account":
            if not fresh:
                wc = wc.model_copy(update={"spot_quantity": 1.0})  # never started: only its type is used
            elif self.venue_factory is not None or self.spot_reader is not None:
                if self.venue_factory is not None:
                    venue = self._stash[wc.name] = self._real_venue(wc.name, wc.leverage, None)
                    asset, qty = venue.spot_balance()
                else:
                    assert self.spot_reader is not None
                    asset, qty = self.spot_reader(wc.name)
                if not qty > 0:
                    raise ParameterError(
                        f"wallets ({wc.name}).spot_quantity", "account",
                        f"the {self.cfg.venue.name} account of wallet {wc.name} holds no {asset} on spot "
                        f"(read {qty:g}): there is nothing to hedge. Buy or transfer {asset} to the spot "
                        "wallet, or give the quantity to hedge as a number",
                    )
                logger.info(f"{wc.name}: spot_quantity: account -> {qty:g} {asset} on the {self.cfg.venue.name} spot wallet")
                wc = wc.model_copy(update={"spot_quantity": qty})
        return build_strategy(wc, instrument, self.cfg.venue.max_leverage)

    def _seed_sigma(self, w: LiveWallet, source: DailyCandles | None, ts: int) -> None:
        """A grid hedge without ``grid.volatility`` on the market's clock (REAL, or PAPER /
        RECOMMENDATION on a live feed): its σ history is the last ``grid.volatility_lookback_days
        + 1`` daily candles up to now (the open one included) of ``source`` (REAL: its venue;
        None: the live feed's exchange, public candles), handed to the strategy as the backtest
        hands it the warm-up (``seed_history``)."""
        wc = self.cfg.wallets[w.index]
        if not (isinstance(wc, GridHedgeConfig) and wc.grid.volatility is None):
            return
        days = wc.grid.volatility_lookback_days
        venue = self.cfg.venue.name
        field = f"wallets ({wc.name}).grid.volatility"
        fix = "set grid.volatility (a daily σ: 0.02 = 2 % a day) or a shorter grid.volatility_lookback_days"
        if source is None:
            source = public_candles(self.cfg, wc.name, network=self.network)
        try:
            rows = source.daily_candles(days + 1, ts)
        except FeedError as e:
            raise ParameterError(field, None, f"not set, and its σ history could not be read: {e}; {fix}") from None
        if len(rows) < days + 1:
            raise ParameterError(
                field, None,
                f"not set, and {venue} answered {len(rows)} daily candle(s) of {source.symbol} where "
                f"grid.volatility_lookback_days={days} needs {days + 1}: {fix}",
            )  # fmt: skip
        t = np.array([r[0] for r in rows], dtype=np.int64)
        close = np.array([r[4] for r in rows], dtype=float)
        sigma = daily_volatility(t, close, days)
        first, last = (time.strftime("%Y-%m-%d", time.gmtime(x / 1000)) for x in (t[0], t[-1]))
        logger.info(f"{w.name}: σ {sigma:.6f} (daily) from {len(rows)} daily candles of {source.symbol} on "
                    f"{venue}, {first} to {last} (closes {close[0]:,.2f} to {close[-1]:,.2f})")  # fmt: skip
        w.runner.strategy.seed_history(t, close)

    def _real_venue(self, wallet: str, leverage: float, state: dict | None) -> RealVenue:
        """The wallet's ccxt venue, prepared (markets, account checks, leverage), with the
        state of the last checkpoint restored (one made for reading the account is reused)."""
        assert self.venue_factory is not None
        if state is None and wallet in self._stash:
            return self._stash.pop(wallet)
        venue = self.venue_factory(wallet)
        venue.prepare(leverage=leverage)
        if state is not None:
            venue.restore_engine_state(state)
        return venue

    def _start_real(self, w: LiveWallet, venue: RealVenue, ts: int, price: float) -> None:
        r = w.runner
        venue.note_price(price)
        venue.start_cash = venue.account().cash
        self._seed_sigma(w, venue, ts)  # the older days first: the strategy keeps closes in time order
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

    def _catch_up(self, w: LiveWallet, ts: int) -> bool:
        """Before the venue's fills are delivered: the reconciliation a reconnect or an outage
        left due, then the timers due by ``ts``. False when reconciliation halted the wallet."""
        if w.unreconciled:
            self.reconcile(w)
            w.unreconciled = False
            if w.halted is not None:
                return False
        if w.runner.next_timer is not None:
            w.runner.fire_timers(ts)
        return True

    def _process_real(self, w: LiveWallet, venue: RealVenue, item: Bar | PricePoint) -> None:
        """One input in REAL: the exchange filled (or not) on its own; its fills are delivered,
        then due timers, then the unit steps the price crossed; then the checkpoint.

        The venue out of reach past the adapter's retries (``VenueUnavailable``) leaves the
        input half done: the wallet is reconciled before its next input (§7), which sends what
        never arrived, cancels what should have been cancelled and applies the fills."""
        r = w.runner
        ts = item.ts
        price = item.close if isinstance(item, Bar) else item.price
        self._stream_check(w, venue)
        try:
            # Timers due by now fire first, at the last input's price (as PAPER fires them
            # before it walks to this input); then the venue's fills, then the unit steps.
            if not self._catch_up(w, ts):
                return
            venue.note_price(price)
            w.runner.deliver_stepped(venue.poll(ts, rest=venue.rest_due()), ts)
            self._book_funding(w, venue, ts, now=False)
            r.price_moved(price, ts)
            if venue.recovered:
                self._sweep_recovered(w, venue, ts)
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
        self._checkpoint(w, item.seq, ts, force=w.halted is not None)  # a halt is durable at once

    def _sweep_recovered(self, w: LiveWallet, venue: RealVenue, ts: int) -> None:
        """Orders recovered after a crash (``RealVenue.recover``) that the resumed strategy has
        not issued again once it processed an input later than their intent's: the inputs
        that issued them are past (a replay), or were never seen again (a live feed), so no
        one will claim them. One the strategy already counts as working is its own (claimed);
        any other is an orphan of ours: cancelled. One that filled (its fills held: the
        strategy does not know it) left a position the strategy does not know, without a
        stop (SPEC §4a): that fill is undone at market, reduce-only (``engine.orphan_fill``);
        the wallet goes on if the venue's position is the strategy's again, else halts."""
        r = w.runner
        for cid, issued in list(venue.recovered_ts.items()):
            if issued >= ts or cid not in venue.recovered:
                continue
            if is_orphan_close(cid):
                self._release_close(w, venue, cid)
            elif cid in r.strategy.working:
                r.deliver_stepped(venue.claim(cid), ts)
                continue
            else:
                self._sweep_orphan(w, venue, cid, ts)
            if w.halted is not None:
                return

    def _sweep_orphan(self, w: LiveWallet, venue: RealVenue, cid: str, ts: int) -> None:
        r = w.runner
        spec = venue.recovered[cid]
        # Its own events (a last fill, the cancel) are held; the poll's others are delivered.
        r.deliver_stepped(venue.cancel(cid, ts), ts)
        if r.strategy.instrument.is_zero_qty(venue.held_fill(cid)):
            venue.claim(cid)  # nobody's: its cancel report is dropped with it
            self._note(w, f"cancelled orphan {cid} ({spec.kind} {spec.side} {spec.qty:g}): recovered after a "
                          "crash, never issued again")  # fmt: skip
            return
        out = close_orphan_fill(r, venue, cid, ts)
        w.halted = out.halted
        self._note(w, out.note, bare=out.bare)

    def _release_close(self, w: LiveWallet, venue: RealVenue, cid: str) -> None:
        """A close of an orphan's fill (``engine.orphan_fill``) whose events are held: left
        while its orphan is still to be handled (which claims it), dropped once it is done.
        Its orphan gone otherwise (issued again by the strategy after the restart, which
        took its fill) leaves a diff only a person can sort out: the wallet halts."""
        if any(orphan_close_id(o) == cid for o in venue.recovered if not is_orphan_close(o)):
            return
        order = venue.get_order(cid)
        if order is not None and not order.status.is_closed:
            return  # still executing: what it reports stays held
        filled = venue.held_fill(cid)
        venue.claim(cid)
        if not filled:
            return
        acct, ours = venue.account().position, w.runner.strategy.position.qty
        if w.runner.strategy.instrument.is_zero_qty(acct - ours):
            return
        w.halted = (f"{cid}, the close of the fill of an orphan recovered after a crash, filled {filled:g}, but the "
                    f"strategy has since taken that orphan as its own: the venue's position is {acct:+g}, the "
                    f"strategy's {ours:+g}")  # fmt: skip
        self._note(w, f"HALTED: {w.halted}. Flatten the wallet, or check and run again with --adopt",
                   bare=self._unprotected(w, acct))  # fmt: skip

    def _note(self, w: LiveWallet, note: str, *, bare: float = 0.0) -> None:
        """A reconciliation's note: logged, and alerted (a position without a stop: urgently)."""
        (logger.error if note.startswith("HALTED") else logger.warning)(f"{w.name}: reconciliation: {note}")
        self.alerts.reconciliation(w.name, note)
        if bare > w.runner.strategy.instrument.lot_size / 2:
            self.alerts.error(w.name, f"{bare:g} of the venue's position has no protective stop: {note}")

    def _book_funding(self, w: LiveWallet, venue: RealVenue, ts: int, *, now: bool) -> None:
        """The funding the venue settled (once per hour, or ``now``), told to the strategy as
        the simulated market tells it (``MarketWalker.apply_funding``)."""
        for settled in venue.poll_funding(ts, now=now):
            if settled.amount:
                logger.info(f"{w.name}: funding {settled.amount:+,.4f} at {settled.ts} (rate {settled.rate:.6%})")
            w.runner.deliver([settled], ts)

    @staticmethod
    def _unprotected(w: LiveWallet, position: float) -> float:
        """How much of ``position`` (signed) the wallet's working protective stops do not cover."""
        return unprotected(w.runner.strategy, position)

    # -- user streams ------------------------------------------------------------------------------
    def _stream_check(self, w: LiveWallet, venue: RealVenue) -> None:
        """Start the wallet's stream (once); after each reconnect of it, reconcile (SPEC §7)."""
        s = venue.stream
        if s is None:
            return
        if not s.started:
            s.notify = self._notify
            s.start()
        elif s.take_reconnect():
            w.unreconciled = True
            self.alerts.reconnect(f"{w.name} user stream")

    def _notify(self) -> None:  # on a stream's thread
        loop, wake = self._wake_loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    async def _idle(self, wait_s: float) -> None:
        """The loop's wait between inputs (``wait_s``: until the heartbeat is due). On a live
        feed a stream's push cuts it short and is delivered now (``_deliver_streams``)."""
        if self.data_time or not any(w.real is not None and w.real.stream is not None for w in self.wallets):
            await asyncio.sleep(wait_s)
            return
        loop = asyncio.get_running_loop()
        if self._wake is None or self._wake_loop is not loop:
            self._wake, self._wake_loop = asyncio.Event(), loop
        try:
            await asyncio.wait_for(self._wake.wait(), wait_s)
        except TimeoutError:
            return
        self._wake.clear()
        self._deliver_streams()

    async def _wait(self, *aws: asyncio.Future) -> None:
        """``asyncio.wait`` for the first of ``aws``; an error of the wait between inputs
        (the last one, ``_idle``) is raised here, in the loop."""
        await asyncio.wait(aws, return_when=asyncio.FIRST_COMPLETED)
        idle = aws[-1]
        if idle.done() and not idle.cancelled() and idle.exception() is not None:
            raise idle.exception()  # type: ignore[misc]

    def _deliver_streams(self) -> None:
        """Between inputs: each REAL wallet's pushed fills (then the checkpoint), and its
        reconciliation after a reconnect, at the wall clock's time."""
        for w in self.wallets:
            venue = w.real
            if venue is None or venue.stream is None or not w.started or w.halted is not None:
                continue
            self._stream_check(w, venue)
            if not (venue.stream.pending or w.unreconciled):
                continue
            r = w.runner
            ts = max(wall_ms(), w.last_ts)
            price = venue.last_price
            try:
                if not self._catch_up(w, ts):
                    continue
                r.deliver_stepped(venue.poll(ts, rest=False), ts)
            except VenueUnavailable as err:
                w.unreconciled = True
                logger.error(f"{w.name}: {err}; reconciling before the next input")
                continue
            finally:
                if price is not None:
                    venue.note_price(price)  # the market is where the feed last said
            if price is not None and w.guard is not None and w.guard.check(r, venue, ts, price):
                self._guard_alert(w)
            self._checkpoint(w, max(w.seen, w.cursor), ts, force=False)

    def _close_connections(self) -> None:
        """At the end of a run: the user streams (websocket and client) and the alerts."""
        for w in self.wallets:
            if w.real is not None and w.real.stream is not None:
                w.real.stream.close()
        self.alerts.close(timeout=5.0)

    def reconcile(self, w: LiveWallet) -> list[str]:
        """SPEC §7, at start and after a reconnect: intents never answered are looked up (never
        sent twice), missed fills are applied in order, the strategy's desired orders are
        diffed against the venue's (missing placed, our orphans cancelled, foreign ones left
        and reported), and the venue's position is checked against the journal's. A position
        that disagrees halts the wallet (``halted``) unless ``adopt``. Returns what it did.

        A halt is in the checkpoint: a restart keeps it (the wallet trades nothing, its orders
        stay, and this says why) unless ``adopt`` lifts it. Lifted, the fills of recovered
        orders nobody claimed are taken as the venue has them (never closed again: the user
        may have done that by hand), and the venue's position must still be covered."""
        venue = w.real
        assert venue is not None
        r = w.runner
        ts = w.last_ts if self.data_time else max(wall_ms(), w.last_ts)
        notes: list[str] = []
        lifted = w.halted is not None
        if lifted and not self.adopt:
            note = (f"HALTED (kept from an earlier run): {w.halted}. It trades nothing and its orders stay "
                    "as they are; once that is sorted out, run again with --adopt")  # fmt: skip
            logger.error(f"{w.name}: reconciliation: {note}")
            self.alerts.reconciliation(w.name, note)
            return [note]
        if lifted:
            notes.append(f"halt lifted by --adopt: {w.halted}")
            w.halted = None
        rows = [o for o in self.journal.orders(self.run_id, w.name, working_only=True)
                if o.status is OrderStatus.NEW and venue.get_order(o.client_id) is None]  # fmt: skip
        pending = [
            OrderSpec(o.client_id, w.name, o.kind, o.side, o.order_type, o.qty, o.trigger, o.reduce_only, o.unit)
            for o in rows
        ]
        for cid in venue.recover(pending, ts, {o.client_id: o.created_ts for o in rows}):
            notes.append(f"order {cid} (journaled before a stop, unanswered) is at the venue: kept, not sent again")
        if w.started:
            notes += sync_orders(r, venue, ts)
            self._book_funding(w, venue, ts, now=True)
        else:
            # Not started: the strategy's start re-issues the orders a crash interrupted (the
            # recovered ones, same client ids); any other order of ours is an orphan.
            for o in venue.venue_open_orders():
                if o.client_id.startswith(f"hk-{w.name}-") and o.client_id not in venue.recovered:
                    notes.append(f"cancelled orphan {o.client_id} (left from an earlier run)")
                    venue.cancel(o.client_id, ts)
        if lifted:  # (unfilled ones are left to the sweep: a replay may still issue them)
            for cid in [c for c in venue.recovered if c not in r.strategy.working and venue.held_fill(c)]:
                r.deliver_stepped(venue.cancel(cid, ts), ts)  # its own events stay held
                notes.append(f"ADOPTED the fill of {cid} ({venue.held_fill(cid):g}, recovered after a crash) as "
                             "the venue has it")  # fmt: skip
                venue.claim(cid)
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
            uncovered = self._unprotected(w, acct.position)
            if self.adopt and uncovered > inst.lot_size / 2:
                # SPEC §4a: taking a position the wallet's stops do not cover would leave it bare.
                w.halted = f"position mismatch: {diff_text}"
                notes.append(f"HALTED, not adopted: {diff_text}; the wallet's protective stops cover "
                             f"{abs(acct.position) - uncovered:g} of it, so adopting it would leave {uncovered:g} "
                             "without a stop. Close that part by hand (or flatten the wallet), then run again "
                             "with --adopt")  # fmt: skip
            elif self.adopt:
                venue.position.qty, venue.position.avg_price = acct.position, acct.avg_price
                notes.append(f"ADOPTED: {diff_text}")
            else:
                w.halted = f"position mismatch: {diff_text}"
                notes.append(f"HALTED: {diff_text}; its orders stay as they are. Find out why (a trade by "
                             "hand?), then run again with --adopt to take the venue's position")  # fmt: skip
        if lifted and w.halted is None:
            bare = self._unprotected(w, acct.position)
            if bare > inst.lot_size / 2:  # SPEC §4a, as for an adopted difference
                w.halted = f"{bare:g} of the venue's position {acct.position:+g} has no protective stop"
                notes.append(f"HALTED, not adopted: {w.halted}. Close that part by hand (or flatten the wallet), "
                             "then run again with --adopt")  # fmt: skip
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
