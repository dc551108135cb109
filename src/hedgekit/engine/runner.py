"""One wallet's loop: price moves -> unit steps and venue fills -> strategy -> commands -> venue.

Every mode uses this class: the deterministic test driver, the backtest (both the fast path and
the per-bar reference loop) and PAPER. It is the only place where the ordering rules live:

* a move is processed level by level; at each level the unit step is delivered before the
  fills of the orders at that level, and everything the strategy asks for in reaction is
  executed (place before cancel, in the order given) before the price moves on;
* a gap (the price jumped, e.g. previous close -> bar open) fires every crossed stop at the
  gap price, in trigger order, still interleaved with the unit steps level by level;
* at each funding time the strategy is told the rate and the cash it moved (``FundingSettled``);
* a strategy that ``wants_atr`` gets ``AtrUpdated`` from ``atr`` (any object with
  ``value_at(ts)``) once before ``start`` and then just before any other event it is given,
  only when the value changed. Both loops deliver the same events at the same times, so they
  deliver the same ATRs; the fast path does nothing for it on the bars it skips.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hedgekit.core.commands import Cancel, Command, Place, Replace, SetTimer, expand
from hedgekit.core.events import (
    AtrUpdated,
    Event,
    FundingSettled,
    Liquidated,
    OrderFilled,
    Tick,
    Timer,
    UnitChanged,
    VenueEvent,
)
from hedgekit.core.strategy import Phase, Strategy
from hedgekit.core.units import UnitTracker
from hedgekit.venues.base import ExchangePort
from hedgekit.venues.sim import SimExchange

INF = float("inf")


class AtrSource(Protocol):
    def value_at(self, ts: int) -> float | None: ...


@dataclass(slots=True)
class PhaseSpan:
    ts: int
    phase: Phase


@dataclass(slots=True)
class RunnerLog:
    phases: list[PhaseSpan] = field(default_factory=list)  # one entry per phase change
    fill_phase: dict[str, Phase] = field(default_factory=dict)  # fill id -> phase after it
    warnings: list[tuple[int, str]] = field(default_factory=list)
    strategy_events: int = 0


class WalletRunner:
    def __init__(
        self,
        strategy: Strategy,
        venue: SimExchange,
        *,
        on_command: Callable[[int, Command, Strategy], None] | None = None,
        atr: AtrSource | None = None,
    ) -> None:
        self.strategy = strategy
        self.venue = venue
        self.atr = atr if strategy.wants_atr else None
        self._atr_sent: float | None = None
        self.tracker: UnitTracker | None = None
        self.log = RunnerLog()
        self._timers: list[tuple[int, int, str]] = []  # (ts, seq, name) heap
        self._timer_seq = 0
        self.on_command = on_command
        self._last_phase: Phase | None = None
        # What ``_band`` was computed for: venue revision, tracker and its unit.
        self._band_rev = -1
        self._band_tracker: UnitTracker | None = None
        self._band_unit = 0
        self._band: tuple[float, float] = (-INF, INF)

    # -- public -------------------------------------------------------------------------
    def start(self, ts: int, price: float) -> None:
        self._deliver(self.venue.move_to(price, ts), ts)
        if self.atr is not None:
            atr = self._atr_update(ts)
            if atr is not None:
                self._deliver([atr], ts)
        self.execute(self.strategy.start(ts, price), ts)
        self._settle(ts)

    def apply_funding(self, rate: float, ts: int) -> None:
        """Funding due at ``ts``, at the last price as the mark; the strategy is told the
        cash it moved and the rate, also when flat (a grid sizes its rungs by the rate)."""
        venue = self.venue
        mark = venue.last_price
        if mark is None:
            return
        paid = venue.apply_funding(rate, mark, ts)
        self._deliver([FundingSettled(ts, paid.amount if paid is not None else 0.0, rate)], ts)

    @property
    def next_timer(self) -> int | None:
        return self._timers[0][0] if self._timers else None

    def fire_timers(self, until_ts: int) -> None:
        """Deliver every timer due at or before ``until_ts``, each at its own time."""
        while self._timers and self._timers[0][0] <= until_ts:
            ts, _, name = heapq.heappop(self._timers)
            events: list[Event] = [Timer(ts, name)]
            price = self.venue.last_price
            if self.strategy.wants_ticks and price is not None:
                events.insert(0, Tick(ts, price))
            self._deliver(events, ts)

    def band(self) -> tuple[float, float]:
        """(lo, hi): while the price stays strictly inside, nothing can happen to this wallet
        (no trigger, no liquidation, no unit step). Cached against the venue's revision and
        the tracker's grid and unit."""
        t = self.tracker
        v = self.venue
        # Compared field by field (no key tuple): this is asked several times per walked bar.
        # A tracker keeps its grid, so "same tracker, same unit" implies "same grid and unit".
        if v.revision == self._band_rev and t is self._band_tracker and (t is None or t.unit == self._band_unit):
            return self._band
        lo = v.next_trigger_below()
        hi = v.next_trigger_above()
        if t is not None:
            d, u = t.next_levels()
            lo = d if lo is None or d > lo else lo
            hi = u if hi is None or u < hi else hi
        self._band = (-INF if lo is None else lo, INF if hi is None else hi)
        self._band_rev = v.revision
        self._band_tracker = t
        self._band_unit = 0 if t is None else t.unit
        return self._band

    def walk_quiet(self, ts: int, o: float, first: float, second: float, close: float) -> None:
        """Fast path: one bar's moves (the gap to the open, then the two extremes and the
        close), each exactly as ``advance(..., quiet_skip=True)``. Most of them stay inside
        the band, so that test is made here (one band lookup per bar, not one call per move)."""
        venue = self.venue
        p = venue.last_price
        gap = p != o
        lo, hi = self.band()
        # The whole bar (and the gap to it) inside the band, the usual case for a wallet that
        # is not the one being hit: every move would only set the price, so set it once.
        if (
            p is not None and lo < p < hi and lo < first < hi and lo < second < hi
            and lo < o < hi and lo < close < hi and venue.drift(close)
        ):
            return
        for target in (o, first, second, close) if gap else (first, second, close):
            p = venue.last_price
            if not (p is not None and lo < p < hi and lo < target < hi and venue.drift(target)):
                self.advance(target, ts, gap=gap, quiet_skip=True)
                lo, hi = self.band()
            gap = False

    def advance(self, target: float, ts: int, gap: bool = False, quiet_skip: bool = False) -> None:
        """Move the market monotonically to ``target`` (a gap when ``gap``).

        ``quiet_skip`` (fast path only): a move that stays inside ``band()`` just sets the
        price; the reference loop always takes the full path.
        """
        if quiet_skip and self._quiet(target):
            return
        if gap:
            self._gap_to(target, ts)
            return
        venue = self.venue
        while True:
            p = venue.last_price
            if p is None or target == p:
                return
            up = target > p
            nxt = target
            trig = venue.next_trigger_above() if up else venue.next_trigger_below()
            if trig is not None and (trig < nxt if up else trig > nxt):
                nxt = trig
            tracker = self.tracker
            if tracker is not None:
                lvl = tracker.next_level(up)  # -inf at the grid's floor: nothing below
                if lvl < nxt if up else lvl > nxt:
                    nxt = lvl
            events = self._unit_steps(nxt, ts)
            events += venue.move_to(nxt, ts)
            if nxt == target:
                if events:
                    self._deliver(events, ts)
                return
            if events:
                self._deliver(events, ts)
                # The reaction moved the band: the rest of the move is often inside it now.
                if quiet_skip and self._quiet(target):
                    return

    def _quiet(self, target: float) -> bool:
        """Fast path: set the price to ``target`` if the move stays strictly inside ``band()``."""
        p = self.venue.last_price
        lo, hi = self.band()
        return p is not None and lo < p < hi and lo < target < hi and self.venue.drift(target)

    def tick(self, price: float, ts: int) -> None:
        """A trade/tick at ``price``: a monotone move from the last price (never a gap)."""
        self.advance(price, ts)

    # -- internals ----------------------------------------------------------------------
    def _gap_to(self, target: float, ts: int) -> None:
        # Every crossed stop already fired at the gap price (the venue returns them in
        # trigger order); deliver them one by one, each after the unit steps down/up to its
        # own level, with the tracker re-synced after every reaction (a RESET re-anchors it).
        for ev in self.venue.move_to(target, ts, gap=True):
            if isinstance(ev, OrderFilled):
                spec = self.strategy.known_order(ev.client_id)
                if spec is not None and spec.price is not None:
                    steps = self._unit_steps(spec.price, ts)
                    if steps:
                        self._deliver(steps, ts)
            self._deliver([ev], ts)
        steps = self._unit_steps(target, ts)
        if steps:
            self._deliver(steps, ts)

    def _unit_steps(self, price: float, ts: int) -> list[VenueEvent]:
        tracker = self.tracker
        if tracker is None:
            return []
        grid = tracker.grid
        return [UnitChanged(ts, u, grid.level(u)) for u in tracker.update(price)]

    def _atr_update(self, ts: int) -> AtrUpdated | None:
        value = self.atr.value_at(ts) if self.atr is not None else None
        if value is None or value == self._atr_sent:
            return None
        self._atr_sent = value
        return AtrUpdated(ts, value)

    def _deliver(self, events: Sequence[VenueEvent], ts: int) -> None:
        queue: deque[VenueEvent] = deque(events)
        if self.atr is not None and events:
            atr = self._atr_update(ts)
            if atr is not None:
                queue.appendleft(atr)
        strategy = self.strategy
        log = self.log
        # The strategy's phase as read after the last event, or None when not read: commands
        # go to the venue only, so it still holds at the end unless a later event changed it.
        phase: Phase | None = None
        while queue:
            ev = queue.popleft()
            if isinstance(ev, Liquidated):
                log.warnings.append((ev.ts, f"{strategy.wallet}: LIQUIDATED at {ev.price} (loss {ev.loss:.2f})"))
                self.execute(strategy.liquidated(ev.qty, ev.price, ev.loss), ts, queue)
                phase = None
                continue
            if not isinstance(ev, Event):
                continue  # venue-level account event (funding) — not a strategy event
            log.strategy_events += 1
            commands = strategy.on_event(ev)
            if isinstance(ev, OrderFilled):
                phase = log.fill_phase[ev.fill_id] = strategy.phase
            else:
                phase = None
            if commands:
                self.execute(commands, ts, queue)  # ends with _sync_tracker()
            else:
                self._sync_tracker()
        self._settle(ts, phase)

    def execute(self, commands: Sequence[Command], ts: int, queue: deque[VenueEvent] | None = None) -> None:
        """Send commands to the venue in the order given and deliver what it reports (into
        ``queue`` when the caller is already delivering). Also used by the live engine for
        commands it decides itself (shutdown, flatten)."""
        out = queue if queue is not None else deque()
        venue: ExchangePort = self.venue  # commands need only the port, whatever the venue
        for cmd in commands:
            if isinstance(cmd, Replace):  # rare: run as its place-then-cancel, in place
                self.execute(expand([cmd]), ts, out)
                continue
            if self.on_command is not None:
                self.on_command(ts, cmd, self.strategy)
            if isinstance(cmd, Place):
                out.extend(venue.submit(cmd.order, ts))
            elif isinstance(cmd, Cancel):
                out.extend(venue.cancel(cmd.client_id, ts))
            elif isinstance(cmd, SetTimer):
                self._timer_seq += 1
                heapq.heappush(self._timers, (cmd.ts, self._timer_seq, cmd.name))
        if queue is None and out:
            self._deliver(list(out), ts)
        self._sync_tracker()

    def _sync_tracker(self) -> None:
        grid = self.strategy.grid
        if grid is None:
            self.tracker = None
        elif self.tracker is None or self.tracker.grid is not grid:
            self.tracker = UnitTracker(grid, self.strategy.unit)

    def _settle(self, ts: int, phase: Phase | None = None) -> None:
        strategy = self.strategy
        if phase is None:
            phase = strategy.phase
        if phase is not self._last_phase:
            self._last_phase = phase
            self.log.phases.append(PhaseSpan(ts, phase))
        drained = getattr(strategy, "warnings", None)
        if drained:
            self.log.warnings.extend((ts, w) for w in drained)
            drained.clear()
