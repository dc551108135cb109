"""Real-time engine for PAPER and RECOMMENDATION: feed -> wallet runners -> journal.

Crash safety is "checkpoint + deterministic replay":

* every order intent is committed to the journal before the order reaches the venue (a PAPER
  replay, whose venue nobody else sees, queues intents and batches and commits them in groups
  at a bounded rate: a crash loses only the queued group, which the resume replays);
* after each market input (a bar or a price) that changed anything, one transaction writes the
  order events, fills, phase changes, the wallet's status, a snapshot of its runner (strategy,
  simulated account, unit tracker, timers) and the input cursor;
* on restart each wallet is restored from its snapshot and the inputs after its cursor are
  processed again. Strategies and the simulated exchange are deterministic, so the same client
  ids and fill ids come back and the journal's idempotent writes keep them single: a crash at
  any point loses no fill and duplicates no order.

Each wallet has exactly one writer: the engine processes an input for each wallet in turn
inside one coroutine, so no two coroutines ever touch a wallet's state. Across processes the
run's *lease* in the journal keeps it so: the engine takes it when it opens a run (a second
``hedgekit run`` of the same run is refused while the holder's heartbeat is fresh), renews it
every ``lease_timeout_s() / 4`` seconds, fences its writes with it and gives it up on exit. A
lease whose heartbeat is older than ``lease_timeout_s()`` is stale (the holder was killed) and
may be taken over; so is one whose holder ran on this machine and whose pid is gone
(``holder_gone``: a restart after a crash need not wait).

`hedgekit flatten` while the engine runs does not write the wallet itself: it queues a request
in the journal, which the engine polls between inputs (every ``REQUEST_POLL_S``, also while the
feed is silent) and carries out in its loop; the request is closed in the transaction of the
flatten's batch and checkpoint, so a crash before that commit leaves it pending (done once,
after the restart) and a crash after it leaves it done. With no live lease the flatten takes the
lease itself and does the same (``flatten_wallet``).

Bars are walked exactly like the backtest's walk (``engine.backtest.walk_bar``), so a PAPER
replay of a history file produces the backtest's fills. Every wallet waits the backtest's
warm-up (``engine.session.Warmup``, the rule both share) before it starts: with ATR units
``atr_period`` bars, and a wallet's ATR comes from the bars it has seen (a price feed is
aggregated into 1-minute bars, so there the ATR is a 1-minute ATR and the warm-up lasts that
many minutes); with a grid hedge without ``grid.volatility`` the first
``grid.volatility_lookback_days`` days of the replay, whose (time, close) every grid hedge gets
through ``GridHedge.seed_history`` before its start, as in the backtest, to estimate σ from.
A live feed cannot wait those days: there (as in REAL) σ comes from the exchange's daily candles.

A wallet keeps its warm-up prices in memory only: it writes no checkpoint before it starts
(but for a flatten, after which it never starts), so while any wallet warms up the run's
``resume_after`` is -1 and a restarted replay reads the warm-up again from the first row.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Literal

import numpy as np
from loguru import logger

from hedgekit.alerts import Alerts
from hedgekit.config import BacktestConfig
from hedgekit.core.atr import AtrTracker
from hedgekit.core.commands import Command, Place
from hedgekit.core.errors import HedgekitError
from hedgekit.core.snapshot import SnapshotError
from hedgekit.core.strategy import Strategy
from hedgekit.core.volatility import DAY_MS
from hedgekit.engine import backtest as bt
from hedgekit.engine.guard import DrawdownGuard
from hedgekit.engine.lease import (  # noqa: F401 - re-exported for the CLI and tests
    HOST_KEY,
    LEASE_TIMEOUT_ENV,
    LEASE_TIMEOUT_S,
    REQUEST_POLL_S,
    RunBusy,
    describe_lease,
    holder_gone,
    lease_is_dead,
    lease_timeout_s,
    wall_ms,
)
from hedgekit.engine.live_real import RealWallets
from hedgekit.engine.live_state import (  # noqa: F401 - re-exported for tests
    EngineHooks,
    LiveWallet,
    Snapshot,
    WarmupPrices,
    dump_snapshot,
    load_snapshot,
    port_for,
    walker_of,
)
from hedgekit.engine.real import RealVenue
from hedgekit.engine.runner import WalletRunner
from hedgekit.engine.session import Warmup, drawdown_limits, sim_config, warmup_of
from hedgekit.engine.walker import MarketWalker
from hedgekit.feeds.base import Bar, FeedStatus, FeedStatusChange, PricePoint
from hedgekit.logs import fill_line, order_line
from hedgekit.store.journal import (
    REQUEST_DONE,
    REQUEST_FAILED,
    Checkpoint,
    Journal,
    JournalError,
    LeaseLost,
    RequestOutcome,
    RequestRow,
    WalletStatus,
)
from hedgekit.venues.base import ExchangePort
from hedgekit.venues.sim import SimExchange

Mode = Literal["paper", "recommendation", "real"]


class LiveEngine(RealWallets):
    hooks = EngineHooks()  # crash tests replace it (see EngineHooks)

    def __init__(
        self,
        cfg: BacktestConfig,
        *,
        mode: Mode,
        journal: Journal,
        source: str,
        funding: bt.Funding | None = None,
        printer: Callable[[str], None] | None = None,
        cancel_on_exit: bool = False,
        venue_factory: Callable[[str], RealVenue] | None = None,
        network: str = "testnet",
        adopt: bool = False,
    ) -> None:
        if mode == "real" and venue_factory is None:
            raise HedgekitError("REAL mode needs a venue for each wallet (engine.real.make_venue)")
        self.venue_factory = venue_factory  # REAL: wallet name -> its (unprepared) venue
        self.network = network
        self.adopt = adopt  # REAL: take the venue's position when it disagrees with the journal
        self.cfg = cfg
        self.mode = mode
        self.journal = journal
        self.source = source
        self.funding = funding
        self.printer = printer or print
        # Alerts (cfg.alerts, apprise URLs) for what a trader must hear about: in REAL, and on a
        # live feed; a replay would send one line per simulated fill, so it sends none.
        self.alerts = Alerts(cfg.alerts if mode == "real" or not source.startswith(("replay:", "stdin")) else [],
                             label="MAINNET" if network == "mainnet" else mode.upper())  # fmt: skip
        self.cancel_on_exit = cancel_on_exit
        self.config_json = cfg.model_dump_json()
        # Replays and piped streams run on the data's clock (a flatten is stamped with the
        # last input's time); a live feed on the wall clock.
        self.data_time = source.startswith(("replay:", "stdin"))
        self.run_id = 0
        self.wallets: list[LiveWallet] = []
        self.warmup: Warmup = warmup_of(cfg, venue_history=mode == "real" or not self.data_time)
        self._stop = asyncio.Event()
        self.lease_timeout_s = lease_timeout_s()
        self.holder = f"{os.getpid()}@{socket.gethostname()}"
        self.lease_token: str | None = None  # set while this engine holds the run's lease
        self._lease_lost = False
        # A journal write failed: this process writes nothing more (a resume starts from the
        # last committed batch; see _checkpoint).
        self._journal_failed = False
        self._renew_at = 0.0  # time.monotonic() of the next heartbeat
        self._poll_at = 0.0  # time.monotonic() of the next look for requests
        self._intents_total = 0
        self.items = 0
        self.stopped_early = False
        self.stop_signal: int | None = None  # the signal that stopped the run, if one did

    # -- set-up and recovery ----------------------------------------------------------------
    def open(self, now_ms: int) -> None:
        """Start a new run, or resume the unfinished one with the same mode, config and source.
        Takes the run's lease: RunBusy when a live process holds it."""
        j = self.journal
        run_id = j.find_resumable_run(mode=self.mode, config_json=self.config_json, source=self.source)
        resumed = run_id is not None
        if run_id is None:
            run_id = j.start_run(mode=self.mode, config_json=self.config_json, source=self.source, started_ts=now_ms)
        self.take_lease(run_id, purpose="run")
        try:
            self.attach(run_id, resumed=resumed)
        except BaseException:
            self.release_lease()
            raise

    # -- the run's lease ------------------------------------------------------------------------
    def take_lease(self, run_id: int, *, purpose: str) -> None:
        token = uuid.uuid4().hex
        now = wall_ms()
        held = self.journal.acquire_lease(
            run_id, holder=self.holder, token=token, purpose=purpose, now_ms=now,
            timeout_ms=int(self.lease_timeout_s * 1000), host_key=HOST_KEY, gone=holder_gone,
        )
        if held is not None:
            raise RunBusy(
                f"run {run_id} is held by {describe_lease(held, now)}: another process is running "
                f"it, and each wallet has one writer. Stop that one first (Ctrl-C or SIGTERM); if "
                f"it died on another machine, its lease is free once its heartbeat is {self.lease_timeout_s:g} s old",
                held,
            )
        self.lease_token = token
        self._renew_at = time.monotonic() + self.lease_timeout_s / 4
        logger.debug(f"run {run_id}: lease taken by {self.holder} for {purpose}")

    def release_lease(self) -> None:
        """Give the lease up (errors are logged: the lease then goes stale by itself)."""
        token, self.lease_token = self.lease_token, None
        if token is None or self._lease_lost:
            return
        try:
            self.journal.release_lease(self.run_id, token)
        except HedgekitError as exc:
            logger.warning(f"run {self.run_id}: could not release the lease ({exc}); it goes stale by itself")

    def _renew_lease(self, now: float) -> None:
        if self.lease_token is None:
            return
        if not self.journal.renew_lease(self.run_id, self.lease_token, wall_ms()):
            self._lease_lost = True
            raise LeaseLost(
                f"run {self.run_id}: this process lost the run's lease (another process took it "
                "over after this one stalled past the lease timeout); stopping without writing"
            )
        self._renew_at = now + self.lease_timeout_s / 4

    def _housekeep(self) -> None:
        """Heartbeat when due, then carry out pending requests. Between inputs only."""
        now = time.monotonic()
        if now >= self._renew_at:
            self._renew_lease(now)
        self.serve_requests()
        self._poll_at = time.monotonic() + REQUEST_POLL_S

    # -- requests (flatten) -----------------------------------------------------------------------
    def serve_requests(self) -> list[RequestRow]:
        """Carry out the run's pending requests, oldest first; returns them as they ended."""
        done = []
        for req in self.journal.requests(self.run_id, pending_only=True):
            done.append(self._serve(req))
        return done

    def _serve(self, req: RequestRow) -> RequestRow:
        w = next((x for x in self.wallets if x.name == req.wallet), None)
        failure = None
        if req.kind != "flatten":
            failure = f"unknown request kind {req.kind!r}"
        elif w is None:
            failure = f"no wallet {req.wallet!r} in run {self.run_id}"
        if failure is not None or w is None:
            outcome = RequestOutcome(req.id, REQUEST_FAILED, failure or "", wall_ms())
            self.journal.finish_request(self.run_id, outcome, lease=self.lease_token)
            logger.warning(f"request {req.id} ({req.kind} {req.wallet}) failed: {failure}")
        else:
            ts = w.last_ts if self.data_time else max(wall_ms(), w.last_ts)
            msg = self._flatten(w, ts)
            self.hooks.in_request(req.kind)
            outcome = RequestOutcome(req.id, REQUEST_DONE, msg, wall_ms())
            self._checkpoint(w, max(w.seen, w.cursor), ts, force=True, request=outcome)
            logger.warning(f"request {req.id}: {msg}")
        return RequestRow(req.id, req.run_id, req.wallet, req.kind, req.created_ts,
                          outcome.status, outcome.result, outcome.done_ts)

    def _flatten(self, w: LiveWallet, ts: int) -> str:
        """Stop the strategy (it stays stopped: in the snapshot), cancel its orders and close
        the position at market, reduce-only. In memory: the caller commits."""
        r = w.runner
        if not w.started:
            # Still warming up: an emergency stop must keep it from ever opening.
            r.strategy.stop("flatten")
            return f"flattened {w.name}: it had not traded yet and now never will in this run"
        real = w.real
        if real is not None:
            return self._flatten_real(w, real, ts)
        cancelled = len(r.strategy.working)
        v = w.sim
        qty = v.position.qty
        # SPEC §4a: close first; the protective stops are cancelled once the close has filled.
        r.execute(r.strategy.flatten("flatten", qty), ts)
        closed = ""
        if not r.strategy.instrument.is_zero_qty(qty):
            closed = f"; closed {qty:+g} at market ({v.last_price:,.2f})"
        self._print_recommendations(w)
        return f"flattened {w.name}: cancelled {cancelled} order(s){closed}; position now {v.position.qty:g}"

    def attach(self, run_id: int, *, resumed: bool = True) -> None:
        """Restore every wallet of ``run_id`` from its last checkpoint (fresh when none)."""
        j = self.journal
        self.run_id = run_id
        instrument = self.cfg.instrument_model()
        for i, wc in enumerate(self.cfg.wallets):
            checkpoint = j.load_checkpoint(run_id, wc.name) if resumed else None
            strategy = self._strategy_for(wc, instrument, fresh=checkpoint is None)  # REAL: reads the account
            j.ensure_wallet(run_id, wc.name, strategy.name)
            if checkpoint is not None:
                cursor, blob = checkpoint
                try:
                    snap = load_snapshot(blob, type(strategy))
                except SnapshotError as e:
                    raise SnapshotError(f"run {run_id}, wallet {wc.name}: {e}") from None
                runner = snap.runner
                if self.mode == "real":
                    runner.venue = self._real_venue(wc.name, wc.leverage, getattr(snap, "venue_state", None))
                wallet = LiveWallet(
                    wc.name, i, strategy.name, runner, self._walker(runner), cursor=cursor, seen=cursor, started=snap.started,
                    funding_index=snap.funding_index, last_ts=snap.last_ts,
                    bars=runner.atr if isinstance(runner.atr, AtrTracker) else None, guard=snap.guard, halted=snap.halted,
                )
            else:
                # The account is opened on the first input (a grid hedge's default allocation
                # is the spot value at that price): see _start.
                bars = None
                if strategy.wants_atr or self.warmup.bars:
                    # Without ATR units it only counts the warm-up bars (any period will do).
                    bars = AtrTracker(strategy.atr_period if strategy.wants_atr else 2)
                port: ExchangePort
                if self.mode == "real":
                    port = self._real_venue(wc.name, wc.leverage, None)
                else:
                    port = port_for(self.mode, SimExchange(instrument, sim_config(self.cfg, wc, i, 1.0)), strategy)
                runner = WalletRunner(strategy, port, atr=bars)
                history = WarmupPrices() if self.warmup and strategy.wants_history else None
                wallet = LiveWallet(wc.name, i, strategy.name, runner, self._walker(runner), bars=bars, history=history)
            runner.on_command = self._command_hook(wallet)
            self.wallets.append(wallet)
            if self.mode == "real":
                self.reconcile(wallet)
        what = "resumed" if resumed else "started"
        logger.info(
            f"run {run_id} {what}: mode={self.mode} wallets={[w.name for w in self.wallets]} "
            f"cursors={[w.cursor for w in self.wallets]} source={self.source}"
        )

    @property
    def resume_after(self) -> int:
        """Inputs at or below this seq are already in every wallet's checkpoint."""
        return min((w.cursor for w in self.wallets), default=-1)

    def _command_hook(self, wallet: LiveWallet) -> Callable[[int, Command, Strategy], None]:
        def hook(ts: int, cmd: Command, strategy: Strategy) -> None:
            if isinstance(cmd, Place):
                # The intent is durable before the venue sees the order. A PAPER replay's venue
                # is the simulator, which nobody outside sees, and a crash replays its inputs:
                # its intents go with the next batch (group commit, see _checkpoint).
                replay = self.mode == "paper" and self.source.startswith("replay:")
                self.journal.record_intent(self.run_id, wallet.name, cmd.order, ts, lease=self.lease_token,
                                           durable=not replay)
                self._intents_total += 1
                self.hooks.after_intent(self._intents_total)

        return hook

    def _print_recommendations(self, w: LiveWallet) -> None:
        for line in w.take_recommendations():
            self.printer(line)

    # -- the loop -----------------------------------------------------------------------------
    def stop(self, signum: int | None = None) -> None:
        """Stop between two inputs (SIGINT/SIGTERM call this with their number)."""
        if signum is not None:
            self.stop_signal = signum
        self._stop.set()

    async def run(self, feed: AsyncIterator) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop, sig)
        stop_wait = asyncio.ensure_future(self._stop.wait())
        iterator = feed.__aiter__()
        next_item: asyncio.Future | None = None
        tick: asyncio.Future | None = None  # wakes the loop for the heartbeat and requests
        clean = False
        try:
            self._housekeep()  # requests queued while no engine ran
            while True:
                if next_item is None:
                    next_item = asyncio.ensure_future(iterator.__anext__())
                # Heartbeat and requests on a time basis, between inputs: a fast replay pays
                # a clock read per input (one timer per poll period, not per input), and a
                # silent feed still wakes the loop.
                if tick is None or tick.done():
                    wait_s = self._poll_at - time.monotonic()
                    if wait_s <= 0:
                        self._housekeep()
                        continue
                    tick = asyncio.ensure_future(self._idle(wait_s))
                # A stop request wins even while the feed is silent (reconnecting, stale).
                await self._wait(next_item, stop_wait, tick)
                if self._stop.is_set():
                    self.stopped_early = True
                    logger.info("stop requested: no new orders; journal flushed")
                    break
                if not next_item.done():
                    continue  # time for the heartbeat / requests; the input stays awaited
                done, next_item = next_item, None
                try:
                    item = done.result()
                except StopAsyncIteration:
                    break
                if isinstance(item, FeedStatusChange):
                    self._on_status(item)
                    if item.status is FeedStatus.CLOSED:
                        break
                else:
                    self.process(item)
                self.items += 1
                self.hooks.after_input(self.items)
            clean = True
        except LeaseLost as err:
            self._lease_lost = True
            self.alerts.error(f"run {self.run_id}", err)
            raise
        except JournalError as err:
            self._journal_failed = True
            self.alerts.error(f"run {self.run_id}", err)
            raise
        except Exception as err:
            self.alerts.error(f"run {self.run_id}", err)
            raise
        finally:
            for pending in (next_item, tick):
                if pending is not None:
                    pending.cancel()
            stop_wait.cancel()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            close = getattr(feed, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
            try:
                # Lease lost: the new holder writes now. Journal failed: nothing more is written.
                if not (self._lease_lost or self._journal_failed):
                    if clean:
                        self.serve_requests()  # one that came in at the very end
                    self.shutdown()
            except LeaseLost:
                self._lease_lost = True
                raise
            finally:
                if self._journal_failed:
                    with contextlib.suppress(JournalError):  # the first error is the one to show
                        self.release_lease()
                else:
                    self.release_lease()
                self._close_connections()

    def _on_status(self, change: FeedStatusChange) -> None:
        if change.status is FeedStatus.STALE:
            for w in self.wallets:
                w.paused = True
            logger.warning(f"feed stale ({change.reason}): strategies paused")
        elif change.status is FeedStatus.LIVE:
            for w in self.wallets:
                if w.paused:
                    w.paused = False
                    w.gap_next = True  # prices moved while we were blind
                    if w.real is not None and w.halted is None:
                        self.reconcile(w)  # SPEC §7: after every reconnect
            logger.info("feed live: strategies resumed")
            self.alerts.reconnect("price feed")

    def process(self, item: Bar | PricePoint) -> None:
        """Hand one input to every wallet (each wallet is its own single writer)."""
        for w in self.wallets:
            if item.seq <= w.cursor:
                continue  # already in this wallet's checkpoint
            self._process_wallet(w, item)

    def _process_wallet(self, w: LiveWallet, item: Bar | PricePoint) -> None:
        if w.halted is not None:
            return
        r = w.runner
        ts = item.ts
        if w.bars is not None:
            # Completes the previous bar first: what happens at ``ts`` may use it.
            if isinstance(item, Bar):
                w.bars.add_bar(ts, item.high, item.low, item.close)
            else:
                w.bars.add_price(ts, item.price)
        if not w.started:
            if r.strategy.stopped:
                w.seen = item.seq  # flattened before its first trade: it stays out
                return
            if self.warmup and not self._warmup_over(w, item):
                w.seen = item.seq  # warm-up: the backtest does not trade these bars either
                return
            self._start(w, item)
        real = w.real
        if real is not None:
            self._process_real(w, real, item)
            return
        walker = w.walker
        assert walker is not None
        self._apply_funding(w, ts)
        if isinstance(item, Bar):
            bars = bt.Bars(
                np.array([item.ts]), np.array([item.open]), np.array([item.high]),
                np.array([item.low]), np.array([item.close]),
            )
            bt.walk_bar([walker], 0, bars)
        else:
            if r.next_timer is not None:
                r.fire_timers(ts)
            walker.advance(item.price, ts, gap=item.gap or w.gap_next)
            w.gap_next = False
        # At the bar's close, or at each price of a tick feed.
        if w.guard is not None and w.guard.check(r, w.sim, ts, item.close if isinstance(item, Bar) else item.price):
            self._guard_alert(w)
        self._print_recommendations(w)
        w.last_ts = ts
        w.seen = item.seq
        self._checkpoint(w, item.seq, ts, force=False)

    def _warmup_over(self, w: LiveWallet, item: Bar | PricePoint) -> bool:
        """The shared rule (``Warmup.over``): is ``item`` the wallet's first traded input?
        If not, the wallet keeps it for the grid's σ."""
        if w.first_ts is None:
            w.first_ts = item.ts
        w.warm_ts = item.ts
        completed = w.bars.completed if w.bars is not None else 0
        if self.warmup.over(completed, item.ts, w.first_ts):
            return True
        if w.history is not None:
            w.history.add(item.ts, item.close if isinstance(item, Bar) else item.price)
        return False

    def _start(self, w: LiveWallet, item: Bar | PricePoint) -> None:
        price = item.open if isinstance(item, Bar) else item.price
        r = w.runner
        wc = self.cfg.wallets[w.index]
        real = w.real
        if real is not None:
            self._start_real(w, real, item.ts, price)
            return
        sim = SimExchange(r.strategy.instrument, sim_config(self.cfg, wc, w.index, price))
        r.venue = port_for(self.mode, sim, r.strategy)
        w.walker = MarketWalker(r, sim)
        if not self.data_time:
            self._seed_sigma(w, None, item.ts)  # a live feed: the exchange's daily candles (as REAL)
        if r.strategy.wants_history and w.history is not None:
            r.strategy.seed_history(*w.history.arrays())  # as the backtest: the warm-up's bars
            w.history = None
        line = r.strategy.describe(price)
        if line:
            logger.info(line)
        w.walker.start(item.ts, price)
        w.started = True
        limit = drawdown_limits(self.cfg).get(w.name)
        if limit is not None:
            w.guard = DrawdownGuard(limit, sim.config.initial_cash)
        if self.funding is not None:
            # As in the backtest: payments strictly after the start.
            w.funding_index = int(np.searchsorted(self.funding.ts, item.ts, side="right"))

    # -- REAL -------------------------------------------------------------------------------------
    def _walker(self, runner: WalletRunner) -> MarketWalker | None:
        return None if self.mode == "real" else walker_of(runner)

    def _warmup_left(self, w: LiveWallet) -> str:
        left = []
        if self.warmup.bars:
            done = w.bars.completed if w.bars is not None else 0
            left.append(f"{done} of {self.warmup.bars} bars")
        if self.warmup.days and w.first_ts is not None:
            seen = (w.warm_ts - w.first_ts) / DAY_MS
            left.append(f"{seen:.2f} of {self.warmup.days} days")
        return ", ".join(left)

    def _apply_funding(self, w: LiveWallet, ts: int) -> None:
        f = self.funding
        if f is None:
            return
        # Same rule as the backtest: every payment due at or before this input, before it.
        while w.funding_index < len(f.ts) and f.ts[w.funding_index] <= ts:
            assert w.walker is not None
            w.walker.apply_funding(float(f.rate[w.funding_index]), int(f.ts[w.funding_index]))
            w.funding_index += 1

    def _checkpoint(
        self, w: LiveWallet, cursor: int, ts: int, *, force: bool, request: RequestOutcome | None = None,
    ) -> None:
        r = w.runner
        v = w.sim
        changed = bool(v.fills or v.order_log or r.log.phases)
        # Group commit (PAPER replay: a simulated venue and inputs a resume plays again): the
        # batches go to the journal together, at a bounded rate, each wallet's checkpoint made
        # then; a crash loses only what the replay from the last checkpoint derives again.
        group = self.mode == "paper" and self.source.startswith("replay:") and request is None and not force
        if not (changed or force or (group and self.journal.group_due())):
            return  # nothing new: replaying this input after a crash re-derives it
        status = self.status_of(w, ts)
        fill_phases = {fid: str(p) for fid, p in r.log.fill_phase.items()}
        phases = [(p.ts, str(p.phase)) for p in r.log.phases]
        # The snapshot is the state after this batch, without the records the batch itself
        # journals: they leave memory only once the commit succeeded (commit, then clear).
        fills, events, funding = list(v.fills), list(v.order_log), list(v.funding_log)
        spans, fill_phase = list(r.log.phases), dict(r.log.fill_phase)
        v.fills.clear()
        v.order_log.clear()
        v.funding_log.clear()  # for a backtest's cycles.csv; the status row carries the total
        r.log.fill_phase.clear()
        r.log.phases.clear()
        for _, msg in r.log.warnings:
            logger.warning(msg)
        r.log.warnings.clear()
        # Orders closed by now are in this batch or an earlier one: the journal keeps them.
        v.forget_closed()
        r.strategy.forget_closed({o.client_id for o in v.open_orders()})

        def snapshot(at_ts: int) -> bytes:
            hook, r.on_command = r.on_command, None  # a closure over the journal: not state
            try:
                return dump_snapshot(Snapshot(r, w.funding_index, at_ts, w.started, w.guard, halted=w.halted))
            finally:
                r.on_command = hook

        def checkpoint_now() -> Checkpoint:  # the wallet's state when the group is written
            at = max(w.seen, w.cursor)
            return Checkpoint(at, w.last_ts, snapshot(w.last_ts))

        try:
            self.journal.commit_batch(
                self.run_id, w.name, cursor=cursor, ts=ts, order_events=events, fills=fills,
                fill_phases=fill_phases, phases=phases, status=status,
                snapshot=None if group else snapshot(ts),
                lease=self.lease_token, request=request, defer=checkpoint_now if group else None,
            )
        except BaseException:
            # Not journaled: keep the records, and write nothing more from this process (a
            # resume replays from the last committed batch and derives them again).
            v.fills[:0], v.order_log[:0], v.funding_log[:0] = fills, events, funding
            r.log.phases[:0] = spans
            r.log.fill_phase.update(fill_phase)
            self.journal.discard_pending()
            self._journal_failed = True
            raise
        w.last_ts = ts
        w.cursor = cursor
        for e in events:
            logger.info(order_line(w.name, e.event, e.order_id, e.kind, str(e.side), e.qty, e.trigger_price, e.unit))
        for f in fills:
            logger.info(fill_line(w.name, f.order_id, str(f.kind), str(f.side), f.qty, f.price, f.fee,
                                  f.position_after, fill_phases.get(f.fill_id, "")))
        if self.alerts.enabled:
            for e in events:
                if e.event == "rejected":
                    self.alerts.refusal(w.name, f"{e.kind} {e.side} {e.qty:g} ({e.order_id})", e.reason)
            for f in fills:
                self.alerts.fill(w.name, str(f.kind), str(f.side), f.qty, f.price, f.position_after)

    def _guard_alert(self, w: LiveWallet) -> None:
        stop = w.guard.stop if w.guard is not None else None
        if stop is not None:
            self.alerts.guard_trip(w.name, "risk.max_drawdown_pct",
                                   f"equity {stop.equity:,.2f} is {stop.drawdown:.2%} below its peak {stop.peak:,.2f}")  # fmt: skip

    def status_of(self, w: LiveWallet, ts: int) -> WalletStatus:
        s, v = w.runner.strategy, w.sim
        mode = self.mode if self.network != "mainnet" else f"{self.mode} MAINNET"
        price = v.last_price or 0.0
        grid = s.grid
        return WalletStatus(
            run_id=self.run_id, wallet=w.name, strategy=w.strategy_name, mode=mode,
            phase=str(s.phase), unit=s.unit if grid is not None else None,
            anchor=grid.anchor if grid is not None else None,
            position=v.position.qty, avg_price=v.position.avg_price,
            realized_pnl=v.realized_pnl, unrealized_pnl=v.position.unrealized(price),
            fees=v.fees_paid, funding=v.funding_paid, equity=v.equity(price),
            last_price=price, last_price_ts=ts, updated_ts=ts, paused=w.paused or w.halted is not None,
        )

    def shutdown(self) -> None:
        """Flush every wallet's state; working orders stay (they are the protection) unless
        cancel_on_exit."""
        for w in self.wallets:
            if not w.started:
                if not w.runner.strategy.stopped and w.seen >= 0:
                    logger.warning(f"{w.name}: still warming up ({self._warmup_left(w)}): it has not traded yet")
                continue
            ts = w.last_ts
            if self.cancel_on_exit:
                # The protective stops stay while there is a position (SPEC §4a).
                w.runner.execute(w.runner.strategy.stop("cancel on exit"), ts)
                self._print_recommendations(w)
            self._checkpoint(w, max(w.seen, w.cursor), ts, force=True)
