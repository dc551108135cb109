"""One wallet's dispatcher: events in -> strategy -> commands -> the exchange port -> events.

The runner is venue-agnostic: it talks to the venue only through ``ExchangePort`` (submit,
cancel) and is handed events — the venue's fills, rejections and account events, and the
unit steps of the price moves it is told about. Where those come from is the caller's
business: ``engine.walker.MarketWalker`` walks the simulated market (backtest, PAPER); the
REAL adapter reports what the exchange did. The ordering rules that are the runner's own:

* everything the strategy asks for in reaction to an event is executed (place before cancel,
  in the order given) before the next event is delivered; what the venue answers at once
  (a rejection, an immediate fill) is delivered in turn, before the caller moves on;
* a strategy that ``wants_atr`` gets ``AtrUpdated`` from ``atr`` (any object with
  ``value_at(ts)``) once before ``start`` and then just before any other event it is given,
  only when the value changed;
* timers (``SetTimer``) fire at their own time, before the input that passes them.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from hedgekit.core.commands import Cancel, Command, Place, Replace, SetTimer, expand
from hedgekit.core.compiled import mypyc_attr
from hedgekit.core.events import (
    AtrUpdated,
    Event,
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

# The strategy event classes, for dispatch on the exact type in the delivery loop.
_STRATEGY_EVENTS: Final = frozenset(Event.__args__)


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


# compiled build: subclassable, and rebuilt by pickle and snapshots (hedgekit.core.compiled)
@mypyc_attr(allow_interpreted_subclasses=True)
class WalletRunner:
    def __init__(
        self,
        strategy: Strategy,
        venue: ExchangePort,
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

    # -- public -------------------------------------------------------------------------
    def start(self, ts: int, price: float) -> None:
        """The strategy's first orders at ``price`` (the venue already knows that price)."""
        if self.atr is not None:
            atr = self._atr_update(ts)
            if atr is not None:
                self.deliver([atr], ts)
        self.execute(self.strategy.start(ts, price), ts)
        self._settle(ts)

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
            self.deliver(events, ts)

    def price_moved(self, price: float, ts: int) -> None:
        """A venue that fills its own orders (REAL) saw the price reach ``price``: deliver the
        unit steps it crossed. Its fills arrive separately, through ``deliver``."""
        steps = self.unit_steps(price, ts)
        if steps:
            self.deliver(steps, ts)

    def deliver_stepped(self, events: Sequence[VenueEvent], ts: int) -> None:
        """The venue's events in its order; before a stop's fill, the unit steps up to its
        trigger (the price passed them first), each followed by its reaction."""
        for ev in events:
            if isinstance(ev, OrderFilled):
                spec = self.strategy.known_order(ev.client_id)
                if spec is not None and spec.price is not None:
                    steps = self.unit_steps(spec.price, ts)
                    if steps:
                        self.deliver(steps, ts)
            self.deliver([ev], ts)

    def unit_steps(self, price: float, ts: int) -> list[VenueEvent]:
        """The unit steps from the tracker's unit to ``price`` (the tracker moves with them)."""
        tracker = self.tracker
        if tracker is None:
            return []
        grid = tracker.grid
        return [UnitChanged(ts, u, grid.level(u)) for u in tracker.update(price)]

    def deliver(self, events: Sequence[VenueEvent], ts: int) -> None:
        """Hand ``events`` to the strategy one by one, each followed by its reaction."""
        queue: deque[VenueEvent] = deque(events)
        if self.atr is not None and events:
            atr = self._atr_update(ts)
            if atr is not None:
                queue.appendleft(atr)
        strategy = self.strategy
        on_event = strategy.on_event
        log = self.log
        fill_phase = log.fill_phase
        popleft = queue.popleft
        # The strategy's phase as read after the last event, or None when not read: commands
        # go to the venue only, so it still holds at the end unless a later event changed it.
        phase: Phase | None = None
        while queue:
            ev = popleft()
            t = type(ev)
            # Dispatch on the exact type (one set lookup); isinstance only for what is not
            # one of the event classes themselves.
            if t not in _STRATEGY_EVENTS:
                if isinstance(ev, Liquidated):
                    log.warnings.append((ev.ts, f"{strategy.wallet}: LIQUIDATED at {ev.price} (loss {ev.loss:.2f})"))
                    self.execute(strategy.liquidated(ev.qty, ev.price, ev.loss), ts, queue)
                    phase = None
                    continue
                if not isinstance(ev, Event):
                    continue  # venue-level account event (funding) — not a strategy event
            log.strategy_events += 1
            commands = on_event(ev)  # type: ignore[arg-type]
            if t is OrderFilled or (t not in _STRATEGY_EVENTS and isinstance(ev, OrderFilled)):
                phase = fill_phase[ev.fill_id] = strategy.phase  # type: ignore[union-attr]
            else:
                phase = None
            if commands:
                self.execute(commands, ts, queue)  # ends with _sync_tracker()
            elif self.tracker is None or self.tracker.grid is not strategy.grid:
                self._sync_tracker()  # (the test above is its own: skipped when in sync)
        self._settle(ts, phase)

    def execute(self, commands: Sequence[Command], ts: int, queue: deque[VenueEvent] | None = None) -> None:
        """Send commands to the venue in the order given and deliver what it reports (into
        ``queue`` when the caller is already delivering). Also used by the live engine for
        commands it decides itself (shutdown, flatten)."""
        out = queue if queue is not None else deque()
        venue = self.venue
        on_command = self.on_command
        for cmd in commands:
            t = type(cmd)
            if t is Place:
                if on_command is not None:
                    on_command(ts, cmd, self.strategy)
                out.extend(venue.submit(cmd.order, ts))  # type: ignore[union-attr]
                continue
            if t is Cancel:
                if on_command is not None:
                    on_command(ts, cmd, self.strategy)
                out.extend(venue.cancel(cmd.client_id, ts))  # type: ignore[union-attr]
                continue
            if isinstance(cmd, Replace):  # rare: run as its place-then-cancel, in place
                self.execute(expand([cmd]), ts, out)
                continue
            if on_command is not None:
                on_command(ts, cmd, self.strategy)
            if isinstance(cmd, Place):
                out.extend(venue.submit(cmd.order, ts))
            elif isinstance(cmd, Cancel):
                out.extend(venue.cancel(cmd.client_id, ts))
            elif isinstance(cmd, SetTimer):
                self._timer_seq += 1
                heapq.heappush(self._timers, (cmd.ts, self._timer_seq, cmd.name))
        if queue is None and out:
            self.deliver(list(out), ts)
        self._sync_tracker()

    # -- internals ----------------------------------------------------------------------
    def _atr_update(self, ts: int) -> AtrUpdated | None:
        value = self.atr.value_at(ts) if self.atr is not None else None
        if value is None or value == self._atr_sent:
            return None
        self._atr_sent = value
        return AtrUpdated(ts, value)

    def _sync_tracker(self) -> None:
        grid = self.strategy.grid
        if grid is None:
            self.tracker = None
            return
        tracker = self.tracker
        if tracker is None or tracker.grid is not grid:
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
