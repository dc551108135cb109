"""Backtest engine: one or more wallets, each its own strategy and simulated account, over candles.

Intrabar path (written down here, where the assumption is made): a bar that closes up is
walked open -> low -> high -> close, a bar that closes down (or flat) open -> high -> low ->
close. The move from the previous close to the open is a gap: stops it jumps over fill at
the open. Every level crossing on the path is processed in order by ``WalletRunner``.
``run(..., opposite_intrabar=True)`` walks the other way round (open -> high -> low -> close
for a bar that closes up, open -> low -> high -> close otherwise): on bars too coarse for the
unit the result depends on this guess, and the session shows both.

A wallet with a drawdown limit (``engine.guard``) is checked at each bar close, after the bar
is walked and before its equity is recorded, in both loops.

Two loops produce the same fills:

* ``reference`` walks every bar through the runner (simple, the oracle);
* ``fast`` does no Python work on quiet bars: it asks each wallet for the band (next trigger
  below, next trigger above) outside which anything can happen, and finds with a vectorised
  numpy scan the next bar whose range reaches a band edge, or the next funding/timer time.
  Only that bar is walked, exactly as the reference would. Equity on the skipped bars is
  computed in bulk (position and cash are constant there).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np

from hedgekit.core.atr import AtrSeries
from hedgekit.core.compiled import mypyc_attr
from hedgekit.core.strategy import Phase, Strategy
from hedgekit.engine.guard import DrawdownGuard
from hedgekit.engine.runner import WalletRunner
from hedgekit.engine.walker import MarketWalker
from hedgekit.venues.sim import SimExchange

INF: Final = float("inf")


# compiled build: a plain class, for pickle (Ray); do not subclass it (hedgekit.core.compiled)
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Bars:
    """The minimum the engine needs: bar open times (ms) and OHLC arrays."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)


# compiled build: a plain class, for pickle (Ray); do not subclass it (hedgekit.core.compiled)
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Funding:
    ts: np.ndarray  # ms, when the payment is due
    rate: np.ndarray


@dataclass(slots=True)
class WalletRun:
    """Everything recorded for one wallet."""

    name: str
    strategy: Strategy
    venue: SimExchange
    runner: WalletRunner
    walker: MarketWalker  # walks the simulated market for the runner
    equity: np.ndarray  # per bar, at the close
    position: np.ndarray
    guard: DrawdownGuard | None = None  # risk.max_drawdown_pct


@dataclass(slots=True)
class EngineStats:
    bars: int = 0
    stepped_bars: int = 0  # bars walked through the runner
    strategy_events: int = 0


@dataclass(slots=True)
class EngineRun:
    bars: Bars
    wallets: list[WalletRun]
    stats: EngineStats = field(default_factory=EngineStats)


WalletFactory = Callable[[], tuple[Strategy, SimExchange]]
Progress = Callable[[int], None]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector. A backtest allocates tens of thousands of small
    acyclic objects (orders, events, records) and keeps them: the collector's passes over
    them find nothing and cost ~20 % of the run. Reference counting still frees everything.

    On the way out the objects the run kept are moved to the oldest generation (freeze then
    unfreeze: no traversal) instead of being left young: else the first allocation after
    ``gc.enable`` walks all of them in one generation-0 pass (~5 % of a run). They are still
    examined by the next full collection. Skipped when something else froze objects."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def walk_bar(
    walkers: list[MarketWalker], i: int, bars: Bars, skip_quiet: bool = False, opposite: bool = False
) -> None:
    """Walk bar ``i``: gap to the open, then the two extremes, then the close.

    ``skip_quiet`` (fast path only) lets each runner set the price of segments that stay
    inside its quiet band instead of walking them; the result is the same. ``opposite``
    visits the extremes in the other order (see the module docstring).
    """
    ts = int(bars.ts[i])
    o, h, lo, c = bars.open[i], bars.high[i], bars.low[i], bars.close[i]
    if skip_quiet:
        # Python floats: a numpy scalar reaches the venue's prices, cash and PnL and makes
        # every comparison, product and round() downstream several times slower. (The
        # reference loop, the oracle, is left as it was.)
        o, h, lo, c = float(o), float(h), float(lo), float(c)
    first, second = (lo, h) if (c > o) != opposite else (h, lo)
    for w in walkers:
        r = w.runner
        if r.next_timer is not None:
            r.fire_timers(ts)
        if skip_quiet:
            w.walk_quiet(ts, o, first, second, c)
            continue
        if w.venue.last_price != o:
            w.advance(o, ts, gap=True)
        w.advance(first, ts)
        w.advance(second, ts)
        w.advance(c, ts)


def _apply_funding(walkers: list[MarketWalker], rate: float, ts: int) -> None:
    for w in walkers:
        w.apply_funding(rate, ts)


def _atr_source(bars: Bars, history: Bars | None, period: int) -> AtrSeries:
    """ATR over the warm-up bars followed by the traded ones (computed once, vectorised)."""
    parts = [bars] if history is None else [history, bars]
    ts, high, low, close = (np.concatenate([getattr(b, k) for b in parts]) for k in ("ts", "high", "low", "close"))
    return AtrSeries(ts, high, low, close, period)


def run(
    bars: Bars,
    factories: list[tuple[str, WalletFactory]],
    *,
    funding: Funding | None = None,
    mode: Literal["fast", "reference"] = "fast",
    progress: Progress | None = None,
    history: Bars | None = None,
    max_drawdown: Mapping[str, float] | None = None,
    opposite_intrabar: bool = False,
) -> EngineRun:
    """``history``: warm-up bars just before ``bars`` (not traded; they feed the ATR).
    ``max_drawdown``: wallet name -> drawdown limit (fraction) for the wallets that have one.
    ``opposite_intrabar``: walk each bar's extremes in the other order."""
    n = len(bars)
    if n == 0:
        raise ValueError("no bars to backtest")
    wallets: list[WalletRun] = []
    atr_by_period: dict[int, AtrSeries] = {}
    for name, factory in factories:
        strategy, venue = factory()
        atr = None
        if strategy.wants_atr:
            p = strategy.atr_period
            if p not in atr_by_period:
                atr_by_period[p] = _atr_source(bars, history, p)
            atr = atr_by_period[p]
        runner = WalletRunner(strategy, venue, atr=atr)
        wallets.append(WalletRun(name, strategy, venue, runner, MarketWalker(runner, venue), np.empty(n), np.empty(n)))
    walkers = [w.walker for w in wallets]
    for w in wallets:
        limit = (max_drawdown or {}).get(w.name)
        if limit is not None:
            w.guard = DrawdownGuard(limit, w.venue.config.initial_cash)
    stats = EngineStats(bars=n)
    # Start on the first bar's open, then walk the rest of that bar.
    ts0 = int(bars.ts[0])
    for wk in walkers:
        wk.start(ts0, float(bars.open[0]))
    fund_ts = funding.ts if funding is not None else np.empty(0, dtype=np.int64)
    fund_rate = funding.rate if funding is not None else np.empty(0)
    fi = int(np.searchsorted(fund_ts, ts0, side="right"))  # payments after the start
    stepper = _fast if mode == "fast" else _reference
    with gc_paused():
        stepper(bars, wallets, walkers, fund_ts, fund_rate, fi, stats, progress, opposite_intrabar)
    stats.strategy_events = sum(w.runner.log.strategy_events for w in wallets)
    return EngineRun(bars, wallets, stats)


def _record(w: WalletRun, i: int, price: float) -> None:
    w.equity[i] = w.venue.equity(price)
    w.position[i] = w.venue.position.qty


def _check_guards(guarded: list[WalletRun], ts: int, close: float) -> None:
    for w in guarded:
        w.guard.check(w.runner, w.venue, ts, close)  # type: ignore[union-attr]


def _reference(bars: Bars, wallets: list[WalletRun], walkers: list[MarketWalker], fund_ts: np.ndarray,
               fund_rate: np.ndarray, fi: int, stats: EngineStats, progress: Progress | None,
               opposite: bool) -> None:
    n = len(bars)
    ts_arr = bars.ts
    guarded = [w for w in wallets if w.guard is not None]
    for i in range(n):
        ts = int(ts_arr[i])
        while fi < len(fund_ts) and fund_ts[fi] <= ts:
            _apply_funding(walkers, float(fund_rate[fi]), int(fund_ts[fi]))
            fi += 1
        walk_bar(walkers, i, bars, opposite=opposite)
        stats.stepped_bars += 1
        c = float(bars.close[i])
        if guarded:
            _check_guards(guarded, ts, c)
        for w in wallets:
            _record(w, i, c)
        if progress is not None and (i & 0xFFFF) == 0:
            progress(i)
    if progress is not None:
        progress(n)


def _band(walkers: list[MarketWalker]) -> tuple[float, float]:
    """(lo, hi): a bar whose low > lo and high < hi changes nothing in any wallet."""
    lo, hi = -INF, INF
    for w in walkers:
        b_lo, b_hi = w.band()
        lo = b_lo if b_lo > lo else lo
        hi = b_hi if b_hi < hi else hi
    return lo, hi


def _first_hit(low: np.ndarray, high: np.ndarray, start: int, stop: int, lo: float, hi: float) -> int:
    """Index of the first bar in [start, stop) whose range reaches lo or hi, else ``stop``.

    Scans in growing chunks so a nearby event costs a small slice and a far one few calls
    (the first chunk covers most gaps between events: the median is ~100 bars).
    """
    chunk = 256
    i = start
    while i < stop:
        j = min(i + chunk, stop)
        hit = low[i:j] <= lo
        hit |= high[i:j] >= hi
        k = int(hit.argmax())  # first True (0 when there is none: checked below)
        if hit[k]:
            return i + k
        i = j
        chunk = min(chunk * 4, 1 << 16)
    return stop


# compiled build: subclassable, and rebuilt by pickle and snapshots (hedgekit.core.compiled)
@mypyc_attr(allow_interpreted_subclasses=True)
class _Curve:
    """One wallet's equity and position per bar, written once at the end of the fast path.

    The bars are recorded in order as runs: a quiet run keeps its position and cash, so its
    equity is ``equity(0) + qty * close`` (linear in the close); a walked bar keeps the
    exact value ``equity(close)`` the reference loop records, written over its run.
    """

    __slots__ = ("w", "lengths", "qty", "eq0", "walked", "walked_eq")

    def __init__(self, w: WalletRun) -> None:
        self.w = w
        self.lengths: list[int] = []
        self.qty: list[float] = []
        self.eq0: list[float] = []
        self.walked: list[int] = []
        self.walked_eq: list[float] = []

    def quiet(self, a: int, b: int) -> None:
        v = self.w.venue
        self.lengths.append(b - a)
        self.qty.append(v.position.qty)
        self.eq0.append(v.equity(0.0))

    def walked_bar(self, i: int, price: float) -> None:
        v = self.w.venue
        self.lengths.append(1)
        self.qty.append(v.position.qty)
        self.eq0.append(0.0)
        self.walked.append(i)
        self.walked_eq.append(v.equity(price))

    def write(self, close: np.ndarray) -> None:
        lengths = np.array(self.lengths, dtype=np.int64)
        qty = np.repeat(np.array(self.qty, dtype=float), lengths)
        w = self.w
        w.position[:] = qty
        # Element by element the same float operations as ``equity(0.0) + q * close[a:b]``.
        w.equity[:] = np.repeat(np.array(self.eq0, dtype=float), lengths) + qty * close
        w.equity[np.array(self.walked, dtype=np.int64)] = self.walked_eq


def _guard_scan(guarded: list[WalletRun], close: np.ndarray, i: int, k: int) -> int:
    """Quiet bars ``i..k-1`` (position and cash constant): the first whose close breaches a
    wallet's drawdown limit ends the quiet run, so that it is walked and checked like every
    walked bar; the peaks move over the bars before it. Returns the new ``k``."""
    scanned = []
    for w in guarded:
        g = w.guard
        if g is None or g.done:
            continue
        if g.pending:
            return i  # a close still to retry: every bar is checked
        v = w.venue
        q = v.position.qty
        # SimExchange.equity's own float operations, element by element.
        eq = v.cash + q * (close[i:k] - v.position.avg_price) if q else np.full(k - i, v.cash + 0.0)
        k = min(k, i + g.first_breach(eq))
        scanned.append((g, eq))
        if k == i:
            return i  # the first quiet bar breaches: it is walked and checked
    if k > i:
        for g, eq in scanned:
            g.see(float(eq[: k - i].max()))
    return k


def _fast(bars: Bars, wallets: list[WalletRun], walkers: list[MarketWalker], fund_ts: np.ndarray,
          fund_rate: np.ndarray, fi: int, stats: EngineStats, progress: Progress | None,
          opposite: bool) -> None:
    n = len(bars)
    low, high, close, ts_arr = bars.low, bars.high, bars.close, bars.ts
    curves = [_Curve(w) for w in wallets]
    guarded = [w for w in wallets if w.guard is not None]
    i = 0
    next_report = 0
    # The bar index of each funding payment, found at once (one searchsorted call each cost
    # ~2 % of a run).
    fund_bar: list[int] = np.searchsorted(ts_arr, fund_ts, side="left").tolist()
    while i < n:
        # The next bar that must be walked: first hit of the band, a funding time, a timer.
        stop = n
        if fi < len(fund_bar):
            stop = min(stop, fund_bar[fi])
        for w in walkers:
            nt = w.runner.next_timer
            if nt is not None:
                stop = min(stop, int(np.searchsorted(ts_arr, nt, side="left")))
        stop = max(stop, i)
        lo, hi = _band(walkers)
        k = _first_hit(low, high, i, stop, lo, hi)
        if guarded and k > i:
            k = _guard_scan(guarded, close, i, k)
        if k > i:
            # Bars i..k-1 are quiet: the price just ends at close[k-1].
            last_close = float(close[k - 1])
            ts_last = int(ts_arr[k - 1])
            for curve in curves:
                curve.quiet(i, k)
                curve.w.walker.advance(last_close, ts_last, quiet_skip=True)
            i = k
            if i >= n:
                break
        ts = int(ts_arr[i])
        if fi < len(fund_ts) and fund_ts[fi] <= ts:
            while fi < len(fund_ts) and fund_ts[fi] <= ts:
                _apply_funding(walkers, float(fund_rate[fi]), int(fund_ts[fi]))
                fi += 1
            # Paid before bar i, as the reference does; bar i itself is scanned again against
            # the band as it is now: a quiet one (the usual case) joins the next quiet run.
            continue
        walk_bar(walkers, i, bars, skip_quiet=True, opposite=opposite)
        stats.stepped_bars += 1
        c = float(close[i])
        if guarded:
            _check_guards(guarded, ts, c)
        for curve in curves:
            curve.walked_bar(i, c)
        i += 1
        if progress is not None and i >= next_report:
            progress(i)
            next_report = i + 4096
    for curve in curves:
        curve.write(close)
    if progress is not None:
        progress(n)


__all__ = ["Bars", "EngineRun", "Funding", "Phase", "WalletRun", "run"]
