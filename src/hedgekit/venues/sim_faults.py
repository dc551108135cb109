"""What the simulated exchange reports, and the faults a ``FaultPlan`` injects into it
(rejections, duplicated, delayed and reordered reports) to test the engine against a
misbehaving venue. The first base class of ``SimExchange`` (its state is declared here for the type
checker)."""

from __future__ import annotations

import random
from collections.abc import Set as AbstractSet

from hedgekit.core.compiled import mypyc_attr
from hedgekit.core.events import OrderFilled, VenueEvent
from hedgekit.venues.sim_config import FaultPlan


@mypyc_attr(allow_interpreted_subclasses=True)  # as SimExchange, which derives from it
class SimFaults:
    faults: FaultPlan
    _fault_rng: random.Random
    _rejects_left: set[str]
    _held: list[tuple[int, VenueEvent]]
    _calls: int
    _report_faults: bool

    @property
    def pending_reports(self) -> int:
        """Reports held back by a ``delay`` fault (or by a liquidation during funding)."""
        return len(self._held)

    def flush_reports(self) -> list[VenueEvent]:
        """Return every held-back report now (e.g. at the end of a run)."""
        out = [ev for _, ev in self._held]
        self._held.clear()
        return out

    def _fault_hit(self, ids: AbstractSet[str], prob: float, cid: str) -> bool:
        if cid in ids:
            return True
        return prob > 0 and self._fault_rng.random() < prob

    def _fault_reject(self, cid: str) -> bool:
        if cid in self._rejects_left:
            self._rejects_left.discard(cid)
            return True
        prob = self.faults.reject_prob
        return prob > 0 and self._fault_rng.random() < prob

    def _report(self, out: list[VenueEvent]) -> list[VenueEvent]:
        """Apply the reporting faults to one call's events and release held reports."""
        if not self._report_faults and not self._held:
            return out  # nothing can be duplicated, delayed, reordered or released
        faults = self.faults
        reported: list[VenueEvent] = []
        for ev in out:
            if not isinstance(ev, OrderFilled):
                reported.append(ev)
                continue
            copies = 2 if self._fault_hit(faults.duplicate, faults.duplicate_prob, ev.client_id) else 1
            if self._fault_hit(faults.delay, faults.delay_prob, ev.client_id):
                due = self._calls + faults.delay_calls
                self._held.extend((due, ev) for _ in range(copies))
            else:
                reported.extend([ev] * copies)
        if self._held:
            keep: list[tuple[int, VenueEvent]] = []
            for due, ev in self._held:
                if due <= self._calls:
                    reported.append(ev)
                else:
                    keep.append((due, ev))
            self._held = keep
        if len(reported) > 1 and self._reorder(reported):
            reported.reverse()
        return reported

    def _reorder(self, events: list[VenueEvent]) -> bool:
        ids = self.faults.reorder
        if ids and any(getattr(ev, "client_id", None) in ids for ev in events):
            return True
        prob = self.faults.reorder_prob
        return prob > 0 and self._fault_rng.random() < prob
