"""Real-time engine for PAPER and RECOMMENDATION: feed -> wallet runners -> journal.

Crash safety is "checkpoint + deterministic replay":

* every order intent is committed to the journal before the order reaches the venue;
* after each market input (a bar or a price) that changed anything, one transaction writes the
  order events, fills, phase changes, the wallet's status, a snapshot of its runner (strategy,
  simulated account, unit tracker, timers) and the input cursor;
* on restart each wallet is restored from its snapshot and the inputs after its cursor are
  processed again. Strategies and the simulated exchange are deterministic, so the same client
  ids and fill ids come back and the journal's idempotent writes keep them single: a crash at
  any point loses no fill and duplicates no order.

Each wallet has exactly one writer: the engine processes an input for each wallet in turn
inside one coroutine, so no two coroutines ever touch a wallet's state.

Bars are walked exactly like the backtest's walk (``engine.backtest._walk_bar``), so a PAPER
replay of a history file produces the backtest's fills. With ATR units every wallet waits the
backtest's warm-up (``atr_warmup_bars`` bars) before it starts, and a wallet's ATR comes from
the bars it has seen (a price feed is aggregated into 1-minute bars, so there the ATR is a
1-minute ATR and the warm-up lasts that many minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from loguru import logger

from hedgekit.config import BacktestConfig
from hedgekit.core.atr import AtrTracker
from hedgekit.core.commands import Cancel, Command, Place
from hedgekit.core.errors import HedgekitError
from hedgekit.core.orders import Side
from hedgekit.core.strategy import Strategy
from hedgekit.engine import backtest as bt
from hedgekit.engine.runner import WalletRunner
from hedgekit.engine.session import atr_warmup_bars, build_strategy, sim_config
from hedgekit.feeds.base import Bar, FeedStatus, FeedStatusChange, PricePoint
from hedgekit.logs import fill_line, order_line
from hedgekit.store.journal import Journal, WalletStatus
from hedgekit.strategies.grid_hedge import GridHedge
from hedgekit.venues.sim import SimExchange

Mode = Literal["paper", "recommendation"]
# Test hook: SIGKILL this process right after the Nth order intent is committed (crash tests).
KILL_AFTER_INTENT_ENV = "HEDGEKIT_TEST_KILL_AFTER_INTENT"


def format_recommendation(cmd: Command, strategy: Strategy) -> str | None:
    """`RECOMMEND place stop_loss SELL 0.25 BTC @ 64,200.0 (wallet long, unit -1, phase ADVANCE)`."""
    inst = strategy.instrument
    base = inst.symbol.removesuffix("USDT").removesuffix("USD") or inst.symbol
    if isinstance(cmd, Place):
        o = cmd.order
        at = f" @ {o.price:,.{inst.price_decimals}f}" if o.price is not None else " at market"
        unit = "" if o.unit is None else f", unit {o.unit}"
        return (
            f"RECOMMEND place {o.kind} {o.side.upper()} {o.qty:.{inst.qty_decimals}f} {base}{at} "
            f"(wallet {strategy.wallet}{unit}, phase {strategy.phase})"
        )
    if isinstance(cmd, Cancel):
        spec = strategy.known_order(cmd.client_id)
        what = f"{spec.kind} {spec.side.upper()} @ {spec.price:,.{inst.price_decimals}f}" if spec and spec.price else cmd.client_id
        return f"RECOMMEND cancel {what} (wallet {strategy.wallet}, phase {strategy.phase})"
    return None


@dataclass
class LiveWallet:
    """One wallet: its runner (the state) and where it stands in the input stream.

    Everything but ``paused``/``gap_next``/``recommendations`` is in the snapshot (``bars``
    through the runner when it is the strategy's ATR; otherwise it only serves before start).
    """

    name: str
    index: int  # position in cfg.wallets
    strategy_name: str
    runner: WalletRunner
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


@dataclass
class Snapshot:
    """What a checkpoint stores (pickled): the runner and the engine's per-wallet counters."""

    runner: WalletRunner
    funding_index: int
    last_ts: int


class LiveEngine:
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
    ) -> None:
        self.cfg = cfg
        self.mode = mode
        self.journal = journal
        self.source = source
        self.funding = funding
        self.printer = printer or print
        self.cancel_on_exit = cancel_on_exit
        self.config_json = cfg.model_dump_json()
        self.run_id = 0
        self.wallets: list[LiveWallet] = []
        self.warmup_bars = atr_warmup_bars(cfg)
        self._stop = asyncio.Event()
        self._kill_after = int(os.environ.get(KILL_AFTER_INTENT_ENV, "0") or 0)
        self._intents_total = 0
        self.items = 0
        self.stopped_early = False

    # -- set-up and recovery ----------------------------------------------------------------
    def open(self, now_ms: int) -> None:
        """Start a new run, or resume the unfinished one with the same mode, config and source."""
        j = self.journal
        run_id = j.find_resumable_run(mode=self.mode, config_json=self.config_json, source=self.source)
        resumed = run_id is not None
        if run_id is None:
            run_id = j.start_run(mode=self.mode, config_json=self.config_json, source=self.source, started_ts=now_ms)
        self.attach(run_id, resumed=resumed)

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
                snap: Snapshot = pickle.loads(blob)
                runner = snap.runner
                wallet = LiveWallet(
                    wc.name, i, strategy.name, runner, cursor=cursor, seen=cursor, started=True,
                    funding_index=snap.funding_index, last_ts=snap.last_ts,
                    bars=runner.atr if isinstance(runner.atr, AtrTracker) else None,
                )
            else:
                # The account is opened on the first input (a grid hedge's default allocation
                # is the spot value at that price): see _start.
                bars = None
                if strategy.wants_atr or self.warmup_bars:
                    # Without ATR units it only counts the warm-up bars (any period will do).
                    bars = AtrTracker(strategy.atr_period if strategy.wants_atr else 2)
                runner = WalletRunner(strategy, SimExchange(instrument, sim_config(self.cfg, wc, i, 1.0)), atr=bars)
                wallet = LiveWallet(wc.name, i, strategy.name, runner, bars=bars)
            runner._on_command = self._command_hook(wallet)
            self.wallets.append(wallet)
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
                # The intent is durable before the venue sees the order.
                self.journal.record_intent(self.run_id, wallet.name, cmd.order, ts)
                self._intents_total += 1
                if self._kill_after and self._intents_total >= self._kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
            if self.mode == "recommendation":
                line = format_recommendation(cmd, strategy)
                if line:
                    wallet.recommendations.append(line)
                    self.printer(line)

        return hook

    # -- the loop -----------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    async def run(self, feed: AsyncIterator) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        stop_wait = asyncio.ensure_future(self._stop.wait())
        iterator = feed.__aiter__()
        try:
            while True:
                # A stop request wins even while the feed is silent (reconnecting, stale).
                next_item = asyncio.ensure_future(iterator.__anext__())
                await asyncio.wait({next_item, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if self._stop.is_set():
                    next_item.cancel()
                    self.stopped_early = True
                    logger.info("stop requested: no new orders; journal flushed")
                    break
                try:
                    item = next_item.result()
                except StopAsyncIteration:
                    break
                if isinstance(item, FeedStatusChange):
                    self._on_status(item)
                    if item.status is FeedStatus.CLOSED:
                        break
                else:
                    self.process(item)
                self.items += 1
        finally:
            stop_wait.cancel()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            close = getattr(feed, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
            self.shutdown()

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
            logger.info("feed live: strategies resumed")

    def process(self, item: Bar | PricePoint) -> None:
        """Hand one input to every wallet (each wallet is its own single writer)."""
        for w in self.wallets:
            if item.seq <= w.cursor:
                continue  # already in this wallet's checkpoint
            self._process_wallet(w, item)

    def _process_wallet(self, w: LiveWallet, item: Bar | PricePoint) -> None:
        r = w.runner
        ts = item.ts
        if w.bars is not None:
            # Completes the previous bar first: what happens at ``ts`` may use it.
            if isinstance(item, Bar):
                w.bars.add_bar(ts, item.high, item.low, item.close)
            else:
                w.bars.add_price(ts, item.price)
        if not w.started:
            if w.bars is not None and w.bars.completed < self.warmup_bars:
                w.seen = item.seq  # warm-up: the backtest does not trade these bars either
                return
            self._start(w, item)
        self._apply_funding(w, ts)
        if isinstance(item, Bar):
            bars = bt.Bars(
                np.array([item.ts]), np.array([item.open]), np.array([item.high]),
                np.array([item.low]), np.array([item.close]),
            )
            bt._walk_bar([r], 0, bars)
        else:
            if r.next_timer is not None:
                r.fire_timers(ts)
            r.advance(item.price, ts, gap=item.gap or w.gap_next)
            w.gap_next = False
        w.last_ts = ts
        w.seen = item.seq
        self._checkpoint(w, item.seq, ts, force=False)

    def _start(self, w: LiveWallet, item: Bar | PricePoint) -> None:
        price = item.open if isinstance(item, Bar) else item.price
        r = w.runner
        wc = self.cfg.wallets[w.index]
        r.venue = SimExchange(r.strategy.instrument, sim_config(self.cfg, wc, w.index, price))
        if isinstance(r.strategy, GridHedge):
            logger.info(r.strategy.describe(price))
        r.start(item.ts, price)
        w.started = True
        if self.funding is not None:
            # As in the backtest: payments strictly after the start.
            w.funding_index = int(np.searchsorted(self.funding.ts, item.ts, side="right"))

    def _apply_funding(self, w: LiveWallet, ts: int) -> None:
        f = self.funding
        if f is None:
            return
        # Same rule as the backtest: every payment due at or before this input, before it.
        while w.funding_index < len(f.ts) and f.ts[w.funding_index] <= ts:
            w.runner.apply_funding(float(f.rate[w.funding_index]), int(f.ts[w.funding_index]))
            w.funding_index += 1

    def _checkpoint(self, w: LiveWallet, cursor: int, ts: int, *, force: bool) -> None:
        r = w.runner
        v = r.venue
        changed = bool(v.fills or v.order_log or r.log.phases)
        if not (changed or force):
            return  # nothing new: replaying this input after a crash re-derives it
        status = self.status_of(w, ts)
        fill_phases = {fid: str(p) for fid, p in r.log.fill_phase.items()}
        phases = [(p.ts, str(p.phase)) for p in r.log.phases]
        # Drain what is now journaled, so snapshots stay small.
        fills, events = list(v.fills), list(v.order_log)
        v.fills.clear()
        v.order_log.clear()
        r.log.fill_phase.clear()
        r.log.phases.clear()
        for e in events:
            logger.info(order_line(w.name, e.event, e.order_id, e.kind, str(e.side), e.qty, e.trigger_price, e.unit))
        for f in fills:
            logger.info(fill_line(w.name, f.order_id, str(f.kind), str(f.side), f.qty, f.price, f.fee,
                                  f.position_after, fill_phases.get(f.fill_id, "")))
        for _, msg in r.log.warnings:
            logger.warning(msg)
        r.log.warnings.clear()
        w.last_ts = ts
        hook, r._on_command = r._on_command, None  # a closure over the journal: not state
        try:
            blob = pickle.dumps(Snapshot(r, w.funding_index, ts), protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            r._on_command = hook
        self.journal.commit_batch(
            self.run_id, w.name, cursor=cursor, ts=ts, order_events=events, fills=fills,
            fill_phases=fill_phases, phases=phases, status=status, snapshot=blob,
        )
        w.cursor = cursor

    def status_of(self, w: LiveWallet, ts: int) -> WalletStatus:
        r = w.runner
        s, v = r.strategy, r.venue
        price = v.last_price or 0.0
        grid = s.grid
        return WalletStatus(
            run_id=self.run_id, wallet=w.name, strategy=w.strategy_name, mode=self.mode,
            phase=str(s.phase), unit=s.unit if grid is not None else None,
            anchor=grid.anchor if grid is not None else None,
            position=v.position.qty, avg_price=v.position.avg_price,
            realized_pnl=v.realized_pnl, unrealized_pnl=v.position.unrealized(price),
            fees=v.fees_paid, funding=v.funding_paid, equity=v.equity(price),
            last_price=price, last_price_ts=ts, updated_ts=ts, paused=w.paused,
        )

    def shutdown(self) -> None:
        """Flush every wallet's state; working orders stay (they are the protection) unless
        cancel_on_exit."""
        for w in self.wallets:
            if not w.started:
                continue
            ts = w.last_ts
            if self.cancel_on_exit:
                w.runner._execute(w.runner.strategy.stop(), ts)
            self._checkpoint(w, max(w.seen, w.cursor), ts, force=True)


def flatten_wallet(journal: Journal, wallet: str, now_ms: int) -> str:
    """Cancel every order of ``wallet`` (latest run that has it) and close its position at
    market, reduce-only. The strategy stays stopped in the journal, so a resumed run does not
    re-open it."""
    from hedgekit.core.orders import OrderKind, OrderType

    statuses = [s for s in journal.wallet_status() if s.wallet == wallet]
    if not statuses:
        known = ", ".join(sorted({s.wallet for s in journal.wallet_status()})) or "none"
        raise HedgekitError(f"no wallet {wallet!r} in the journal's latest run (wallets: {known})")
    run_id = statuses[0].run_id
    run = next(r for r in journal.runs() if r.run_id == run_id)
    cfg = BacktestConfig.model_validate_json(run.config_json)
    engine = LiveEngine(cfg, mode=run.mode, journal=journal, source=run.source)  # type: ignore[arg-type]
    engine.attach(run_id)
    w = next(x for x in engine.wallets if x.name == wallet)
    if not w.started:
        raise HedgekitError(f"wallet {wallet!r} has not traded yet: nothing to flatten")
    r = w.runner
    ts = max(now_ms, w.last_ts)
    cancelled = len(r.strategy.working)
    r._execute(r.strategy.stop(), ts)
    qty = r.venue.position.qty
    closed = ""
    if not r.strategy.instrument.is_zero_qty(qty):
        side = Side.SELL if qty > 0 else Side.BUY
        place = r.strategy._place(OrderKind.FLATTEN, side, OrderType.MARKET, abs(qty), reduce_only=True)
        r._execute([place], ts)
        closed = f"; closed {qty:+g} at market ({r.venue.last_price:,.2f})"
    engine._checkpoint(w, max(w.seen, w.cursor), ts, force=True)
    return f"flattened {wallet}: cancelled {cancelled} order(s){closed}; position now {r.venue.position.qty:g}"
