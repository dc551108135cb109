"""The simulated market's side of the port: walks prices through ``SimExchange``.

A backtest and PAPER have no exchange to fill their orders: the walker moves the simulated
market and hands what happens to the wallet's ``WalletRunner`` in the order it happens:

* a move is processed level by level; at each level the unit step is delivered before the
  fills of the orders at that level, and the runner executes the strategy's reaction before
  the price moves on;
* a gap (the price jumped, e.g. previous close -> bar open) fires every crossed stop at the
  gap price, in trigger order, still interleaved with the unit steps level by level;
* funding is paid at the last price as the mark and reported as ``FundingSettled``.

The fast path asks ``band()``: while the price stays strictly inside it nothing can happen
to the wallet, so a quiet move only sets the price. The reference loop always walks.
"""

from __future__ import annotations

from typing import Final

from hedgekit.core.compiled import mypyc_attr
from hedgekit.core.events import FundingSettled
from hedgekit.core.units import UnitTracker
from hedgekit.engine.runner import WalletRunner
from hedgekit.venues.sim import SimExchange

INF: Final = float("inf")


# compiled build: subclassable, and rebuilt by pickle and snapshots (hedgekit.core.compiled)
@mypyc_attr(allow_interpreted_subclasses=True)
class MarketWalker:
    def __init__(self, runner: WalletRunner, venue: SimExchange) -> None:
        # The runner's port is the simulator, or a sink in front of it (RECOMMENDATION).
        if runner.venue is not venue and getattr(runner.venue, "sim", None) is not venue:
            raise ValueError("the walker must walk the simulated exchange behind the runner's port")
        self.runner = runner
        self.venue = venue
        # What ``_band`` was computed for: venue revision, tracker and its unit.
        self._band_rev = -1
        self._band_tracker: UnitTracker | None = None
        self._band_unit = 0
        self._band: tuple[float, float] = (-INF, INF)

    @classmethod
    def of(cls, runner: WalletRunner) -> MarketWalker:
        venue = runner.venue
        if not isinstance(venue, SimExchange):
            raise TypeError(f"a market walker needs the simulated exchange, not {type(venue).__name__}")
        return cls(runner, venue)

    def start(self, ts: int, price: float) -> None:
        self.runner.deliver(self.venue.move_to(price, ts), ts)
        self.runner.start(ts, price)

    def apply_funding(self, rate: float, ts: int) -> None:
        """Funding due at ``ts``, at the last price as the mark; the strategy is told the
        cash it moved and the rate, also when flat (a grid sizes its rungs by the rate)."""
        venue = self.venue
        mark = venue.last_price
        if mark is None:
            return
        paid = venue.apply_funding(rate, mark, ts)
        self.runner.deliver([FundingSettled(ts, paid.amount if paid is not None else 0.0, rate)], ts)

    def band(self) -> tuple[float, float]:
        """(lo, hi): while the price stays strictly inside, nothing can happen to this wallet
        (no trigger, no liquidation, no unit step). Cached against the venue's revision and
        the tracker's grid and unit."""
        t = self.runner.tracker
        v = self.venue
        # Compared field by field (no key tuple): this is asked several times per walked bar.
        # A tracker keeps its grid, so "same tracker, same unit" implies "same grid and unit".
        if v.revision == self._band_rev and t is self._band_tracker and (t is None or t.unit == self._band_unit):
            return self._band
        lo = v.next_trigger_below()
        hi = v.next_trigger_above()
        if t is not None:
            d, u = t.down, t.up
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
                self._walk(target, ts, gap, True)  # ``advance`` without its quiet test: just made
                lo, hi = self.band()
            gap = False

    def advance(self, target: float, ts: int, gap: bool = False, quiet_skip: bool = False) -> None:
        """Move the market monotonically to ``target`` (a gap when ``gap``).

        ``quiet_skip`` (fast path only): a move that stays inside ``band()`` just sets the
        price; the reference loop always takes the full path.
        """
        if quiet_skip and self._quiet(target):
            return
        self._walk(target, ts, gap, quiet_skip)

    def _walk(self, target: float, ts: int, gap: bool, quiet_skip: bool) -> None:
        if gap:
            self._gap_to(target, ts)
            return
        venue = self.venue
        runner = self.runner
        while True:
            p = venue.last_price
            if p is None or target == p:
                return
            up = target > p
            nxt = target
            trig = venue.next_trigger_above() if up else venue.next_trigger_below()
            if trig is not None and (trig < nxt if up else trig > nxt):
                nxt = trig
            tracker = runner.tracker
            if tracker is not None:
                lvl = tracker.up if up else tracker.down  # down: -inf at the grid's floor
                if lvl < nxt if up else lvl > nxt:
                    nxt = lvl
            events = runner.unit_steps(nxt, ts)
            events += venue.move_to(nxt, ts)
            if nxt == target:
                if events:
                    runner.deliver(events, ts)
                return
            if events:
                runner.deliver(events, ts)
                # The reaction moved the band: the rest of the move is often inside it now.
                if quiet_skip and self._quiet(target):
                    return

    def tick(self, price: float, ts: int) -> None:
        """A trade/tick at ``price``: a monotone move from the last price (never a gap)."""
        self.advance(price, ts)

    def _quiet(self, target: float) -> bool:
        """Fast path: set the price to ``target`` if the move stays strictly inside ``band()``."""
        p = self.venue.last_price
        lo, hi = self.band()
        return p is not None and lo < p < hi and lo < target < hi and self.venue.drift(target)

    def _gap_to(self, target: float, ts: int) -> None:
        # Every crossed stop already fired at the gap price (the venue returns them in
        # trigger order); deliver them one by one, each after the unit steps down/up to its
        # own level, with the tracker re-synced after every reaction (a RESET re-anchors it).
        runner = self.runner
        runner.deliver_stepped(self.venue.move_to(target, ts, gap=True), ts)
        steps = runner.unit_steps(target, ts)
        if steps:
            runner.deliver(steps, ts)
