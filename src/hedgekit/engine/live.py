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
A live feed cannot wait those days: a grid without ``grid.volatility`` is refused there.

A wallet keeps its warm-up prices in memory only: it writes no checkpoint before it starts
(but for a flatten, after which it never starts), so while any wallet warms up the run's
``resume_after`` is -1 and a restarted replay reads the warm-up again from the first row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
import uuid
from array import array
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from loguru import logger

from hedgekit.alerts import Alerts
from hedgekit.config import BacktestConfig, GridHedgeConfig
from hedgekit.core.atr import AtrTracker
from hedgekit.core.commands import Command, Place
from hedgekit.core.errors import HedgekitError
from hedgekit.core.events import OrderFilled, VenueEvent
from hedgekit.core.orders import OrderSpec, OrderStatus, diff_orders
from hedgekit.core.snapshot import SnapshotError, check_header, decode, encode, snapshot_header
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
from hedgekit.engine.real import RealVenue
from hedgekit.engine.runner import WalletRunner
from hedgekit.engine.session import Warmup, build_strategy, drawdown_limits, sim_config, warmup_of
from hedgekit.engine.walker import MarketWalker
from hedgekit.feeds.base import Bar, FeedStatus, FeedStatusChange, PricePoint
from hedgekit.logs import fill_line, order_line
from hedgekit.store.journal import (
    REQUEST_DONE,
    REQUEST_FAILED,
    Checkpoint,
    Journal,
    JournalError,
    Lease,
    LeaseLost,
    RequestOutcome,
    RequestRow,
    WalletStatus,
)
from hedgekit.venues.base import ExchangePort
from hedgekit.venues.ccxt_venue import VenueUnavailable
from hedgekit.venues.recommend import RecommendationSink
from hedgekit.venues.sim import SimExchange

Mode = Literal["paper", "recommendation", "real"]


class EngineHooks:
    """The moments between two durable steps where a crash is most telling. The engine calls
    these and they do nothing; crash tests inject a subclass that kills the process there
    (``LiveEngine.hooks``), so production code reads no test switch."""

    def after_intent(self, intents: int) -> None:
        """An order intent (the ``intents``-th of this process) was committed; the venue has
        not seen the order yet."""

    def after_input(self, inputs: int) -> None:
        """The ``inputs``-th input of this process was processed (and committed if it changed
        anything)."""

    def in_request(self, kind: str) -> None:
        """A request (``flatten``) was carried out in memory; its batch is not committed."""

@dataclass
class LiveWallet:
    """One wallet: its runner (the state) and where it stands in the input stream.

    Everything but ``walker``/``paused``/``gap_next``/``recommendations`` is in the snapshot
    (``bars`` through the runner when it is the strategy's ATR; otherwise it only serves
    before start). The runner talks to the exchange port: the simulated exchange in PAPER, a
    ``RecommendationSink`` in front of it in RECOMMENDATION; ``walker`` walks the simulated
    market behind either.
    """

    name: str
    index: int  # position in cfg.wallets
    strategy_name: str
    runner: WalletRunner
    walker: MarketWalker | None  # None in REAL: the exchange moves its own market
    cursor: int = -1  # seq of the last input fully processed and committed
    seen: int = -1  # seq of the last input processed (committed or, if quiet, not yet)
    started: bool = False
    funding_index: int = 0  # next funding payment to apply
    last_ts: int = 0
    paused: bool = False
    gap_next: bool = False  # the next price jumped (after a stale period)
    recommendations: list[str] = field(default_factory=list)
    # The bars seen so far, for the warm-up and the ATR (the runner's ATR source when the
    # strategy wants one, so it is in the snapshot). None: no warm-up and no ATR.
    bars: AtrTracker | None = None
    # Times of the first and the last input seen while warming up (the days count from the first).
    first_ts: int | None = None
    warm_ts: int = 0
    # (ts, close) of the inputs of the warm-up, for a grid hedge's seed_history (None: not
    # a grid hedge, or no warm-up). Memory only: see the module's docstring.
    history: WarmupPrices | None = None
    # risk.max_drawdown_pct, checked after every input (in the snapshot).
    guard: DrawdownGuard | None = None
    # REAL: why reconciliation stopped this wallet (it then trades nothing; its stops stay).
    halted: str | None = None
    unreconciled: bool = False  # REAL: the venue failed mid-input; reconcile first

    @property
    def sim(self) -> SimExchange | RealVenue:
        """The account behind the port (what the status and the journal read): the simulated
        one, or in REAL the ccxt venue's book."""
        if self.walker is None:
            venue = self.runner.venue
            assert isinstance(venue, RealVenue)
            return venue
        return self.walker.venue

    @property
    def real(self) -> RealVenue | None:
        venue = self.runner.venue
        return venue if isinstance(venue, RealVenue) else None


@dataclass
class WarmupPrices:
    """The warm-up inputs a wallet saw, not traded: what the backtest seeds a grid with."""

    ts: array = field(default_factory=lambda: array("q"))
    close: array = field(default_factory=lambda: array("d"))

    def add(self, ts: int, close: float) -> None:
        self.ts.append(int(ts))
        self.close.append(float(close))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array(self.ts, dtype=np.int64), np.array(self.close, dtype=float)


@dataclass
class Snapshot:
    """What a checkpoint stores (versioned JSON, see ``dump_snapshot``): the runner and the
    engine's per-wallet counters."""

    runner: WalletRunner
    funding_index: int
    last_ts: int
    # False: flattened during its warm-up, so it never traded and never will in this run.
    started: bool = True
    guard: DrawdownGuard | None = None  # absent from snapshots written before it existed
    # REAL: the venue's plain-data state (RealVenue.engine_state); the runner's venue, a live
    # ccxt client, is not stored (None in the snapshot) and is re-attached on resume.
    venue_state: dict | None = None


def dump_snapshot(snap: Snapshot) -> bytes:
    """A checkpoint as JSON bytes, headed by the versions it was written with."""
    runner = snap.runner
    venue = runner.venue
    if isinstance(venue, RealVenue):
        snap.venue_state = venue.engine_state()
        runner.venue = None  # type: ignore[assignment]
    try:
        doc = snapshot_header(runner.strategy) | {"state": encode(snap)}
    finally:
        runner.venue = venue
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def load_snapshot(blob: bytes, strategy: type[Strategy]) -> Snapshot:
    """The checkpoint ``dump_snapshot`` wrote; another version or strategy is refused."""
    if blob[:1] == b"\x80":
        raise SnapshotError(
            "the checkpoint is a pickle written by an earlier hedgekit (pickled checkpoints "
            "are no longer read: they can run code and do not survive an upgrade); finish or "
            "flatten that run with the hedgekit that started it, or start a new run"
        )
    try:
        doc = json.loads(blob)
    except ValueError as e:
        raise SnapshotError(f"the checkpoint is not valid JSON ({e})") from None
    check_header(doc, strategy)
    snap = decode(doc["state"])
    if not isinstance(snap, Snapshot):
        raise SnapshotError(f"the checkpoint holds a {type(snap).__name__}, not a wallet snapshot")
    return snap


class LiveEngine:
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
        self.warmup: Warmup = warmup_of(cfg)
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
        if self.warmup.days and not self.data_time:
            cfg = self.cfg
            grids = [w.name for w in cfg.wallets if isinstance(w, GridHedgeConfig) and w.grid.volatility is None]
            raise HedgekitError(
                f"grid.volatility is not set (wallet {', '.join(grids)}): a backtest or a replay "
                f"estimates it from the first grid.volatility_lookback_days={self.warmup.days} days of "
                "data, which a live feed would have to wait for. Set grid.volatility (a daily σ: "
                "0.02 = 2 % a day) to run on a live feed"
            )
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
            self._deliver_fills(w, venue.poll(ts), ts)
            r.execute(r.strategy.close_position(left), ts)
            left = venue.account().position
        if not inst.is_zero_qty(left):
            return (f"flatten {w.name}: the venue still shows a position of {left:+g} after three reduce-only "
                    "closes; its protective stops stay working. Close it by hand")  # fmt: skip
        for o in venue.venue_open_orders():
            self._deliver_fills(w, venue.cancel(o.client_id, ts), ts)
        self._deliver_fills(w, venue.poll(ts), ts)
        closed = "" if inst.is_zero_qty(qty) else f"; closed {qty:+g} at market ({venue.last_price or 0:,.2f})"
        return f"flattened {w.name}: cancelled {cancelled} order(s){closed}; venue position now {left:g}"

    def attach(self, run_id: int, *, resumed: bool = True) -> None:
        """Restore every wallet of ``run_id`` from its last checkpoint (fresh when none)."""
        j = self.journal
        self.run_id = run_id
        instrument = self.cfg.instrument_model()
        for i, wc in enumerate(self.cfg.wallets):
            strategy = build_strategy(wc, instrument, self.cfg.venue.max_leverage)
            j.ensure_wallet(run_id, wc.name, strategy.name)
            checkpoint = j.load_checkpoint(run_id, wc.name) if resumed else None
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
                    bars=runner.atr if isinstance(runner.atr, AtrTracker) else None, guard=snap.guard,
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
                    port = self._port(SimExchange(instrument, sim_config(self.cfg, wc, i, 1.0)), strategy)
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

    def _port(self, sim: SimExchange, strategy: Strategy) -> ExchangePort:
        """What the runner sends orders to: the simulator (PAPER) or the sink before it."""
        return RecommendationSink(sim, strategy) if self.mode == "recommendation" else sim

    def _print_recommendations(self, w: LiveWallet) -> None:
        port = w.runner.venue
        if isinstance(port, RecommendationSink):
            for line in port.drain():
                w.recommendations.append(line)
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
                    tick = asyncio.ensure_future(asyncio.sleep(wait_s))
                # A stop request wins even while the feed is silent (reconnecting, stale).
                await asyncio.wait({next_item, stop_wait, tick}, return_when=asyncio.FIRST_COMPLETED)
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
                self.alerts.close(timeout=5.0)

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
        r.venue = self._port(sim, r.strategy)
        w.walker = MarketWalker(r, sim)
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
        return None if self.mode == "real" else _walker_of(runner)

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
            self._deliver_fills(w, venue.poll(ts), ts)
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

    def _deliver_fills(self, w: LiveWallet, events: list[VenueEvent], ts: int) -> None:
        """The venue's events in its order; before a stop's fill, the unit steps up to its
        trigger (the price passed them first), as the simulated market delivers them."""
        r = w.runner
        for ev in events:
            if isinstance(ev, OrderFilled):
                spec = r.strategy.known_order(ev.client_id)
                if spec is not None and spec.price is not None:
                    steps = r.unit_steps(spec.price, ts)
                    if steps:
                        r.deliver(steps, ts)
            r.deliver([ev], ts)

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
            self._deliver_fills(w, venue.poll(ts), ts)
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
                notes.append(f"cancelled orphan {o.client_id} ({o.spec.kind} {o.spec.side} {o.spec.qty:g})")
                self._deliver_fills(w, venue.cancel(o.client_id, ts), ts)
            for spec, o in diff.different:
                notes.append(f"order {spec.client_id} differs at the venue ({o.spec.qty:g} @ {o.spec.price}) "
                             f"from the journal ({spec.qty:g} @ {spec.price})")  # fmt: skip
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
                return dump_snapshot(Snapshot(r, w.funding_index, at_ts, w.started, w.guard))
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


def _walker_of(runner: WalletRunner) -> MarketWalker:
    """The walker of the simulated exchange behind ``runner``'s port (PAPER, RECOMMENDATION)."""
    port = runner.venue
    sim = port.sim if isinstance(port, RecommendationSink) else port
    if not isinstance(sim, SimExchange):
        raise TypeError(f"the live engine walks a simulated exchange, not {type(sim).__name__}")
    return MarketWalker(runner, sim)


def run_of_wallet(journal: Journal, wallet: str) -> int:
    """The latest run that has ``wallet``; HedgekitError naming the known wallets otherwise."""
    registered = journal.wallets()
    runs = [run_id for run_id, name in registered if name == wallet]
    if not runs:
        latest = registered[0][0] if registered else None
        known = ", ".join(sorted(name for run_id, name in registered if run_id == latest)) or "none"
        raise HedgekitError(f"no wallet {wallet!r} in the journal's latest run (wallets: {known})")
    return runs[0]


def serve_requests_directly(journal: Journal, run_id: int, *, printer: Callable[[str], None] | None = None) -> None:
    """Carry out the run's pending requests in this process, holding the run's lease meanwhile
    (RunBusy when a live process holds it: that one serves them)."""
    run = next(r for r in journal.runs() if r.run_id == run_id)
    cfg = BacktestConfig.model_validate_json(run.config_json)
    real: dict = {}
    if run.mode == "real":
        from hedgekit.engine.real import make_venue

        network = cfg.venue.network  # an emergency stop trades where the run traded
        real = {"network": network, "venue_factory": lambda wallet: make_venue(cfg, wallet, network=network)}
    engine = LiveEngine(cfg, mode=run.mode, journal=journal, source=run.source, printer=printer, **real)  # type: ignore[arg-type]
    engine.take_lease(run_id, purpose="flatten")
    try:
        engine.attach(run_id)
        engine.serve_requests()
    finally:
        engine.release_lease()


class RequestPending(HedgekitError):
    """The run's holder did not carry out a request in time; it stays pending."""


def flatten_wallet(
    journal: Journal, wallet: str, now_ms: int, *, wait_s: float = 30.0,
    on_wait: Callable[[Lease], None] | None = None, printer: Callable[[str], None] | None = None,
    finished_ok: bool = False,
) -> str:
    """Cancel every order of ``wallet`` (latest run that has it) and close its position at
    market, reduce-only; the strategy stays stopped, so a resumed run does not re-open it.

    Queues a flatten request. While a live engine holds the run, that engine carries it out
    (``on_wait(lease)`` is called while waiting, about every 0.2 s); otherwise this process
    takes the lease and does it. Returns the result line; HedgekitError when it failed, and
    RequestPending when the live holder did not answer within ``wait_s`` (the request stays
    pending: the holder, or whoever next holds the run, carries it out). A finished run is
    refused unless ``finished_ok``: nothing trades it any more, and its last price is old."""
    run_id = run_of_wallet(journal, wallet)
    run = next(r for r in journal.runs() if r.run_id == run_id)
    if run.ended_ts is not None and not finished_ok:
        status = next((s for s in journal.wallet_status(run_id) if s.wallet == wallet), None)
        price = ""
        if status is not None and status.last_price is not None and status.last_price_ts is not None:
            age_h = (now_ms - status.last_price_ts) / 3_600_000
            price = f"; its last price, {status.last_price:,.2f}, is {age_h:,.1f} hours old"
        raise HedgekitError(
            f"run {run_id} of wallet {wallet!r} is finished (mode {run.mode}, {run.source}){price}. "
            "Flattening it would book a close at that price in a run nothing trades any more; "
            "pass --finished to do it anyway"
        )
    request_id = journal.add_request(run_id, wallet, "flatten", now_ms)
    deadline = time.monotonic() + wait_s
    while True:
        req = journal.request(request_id)
        assert req is not None
        if req.status == REQUEST_DONE:
            return req.result or ""
        if req.status == REQUEST_FAILED:
            raise HedgekitError(f"flatten {wallet}: {req.result}")
        lease = journal.lease(run_id)
        now = wall_ms()
        if lease is None or lease_is_dead(lease, now):
            with contextlib.suppress(RunBusy):  # taken meanwhile: wait for the new holder
                serve_requests_directly(journal, run_id, printer=printer)
            continue
        if time.monotonic() >= deadline:
            raise RequestPending(
                f"the engine holding run {run_id}, {describe_lease(lease, now)}, did not carry out "
                f"flatten request #{request_id} of wallet {wallet!r} within {wait_s:g} s. The "
                "request stays pending: that engine carries it out when it next looks (every "
                f"{REQUEST_POLL_S:g} s between inputs), or the next `hedgekit run`/`flatten` of "
                "this run does; `hedgekit status` lists it"
            )
        if on_wait is not None:
            on_wait(lease)
        time.sleep(0.2)

