"""Funding on a REAL venue, read back through ccxt: a mixin of the REAL adapter.

The venue moves the cash itself (every 8 h on Binance USD-M, every hour on Hyperliquid). The
adapter has to learn of each payment once, in order, across restarts, and book it as the
simulator books its own (a ``FundingPaid`` record: cash and the status row's funding total),
and tell the strategy every settlement, with its rate, also when flat (a grid sizes its rungs
by the rate), as ``MarketWalker.apply_funding`` does.

Two lists are read, once per hour and at every reconciliation: the venue's public funding-rate
history (the settlements: time, rate and, on Binance, the mark price) and the account's funding
payments (time and cash change; Hyperliquid adds the rate and the position it was paid on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ccxt
from loguru import logger

from hedgekit.core.errors import HedgekitError
from hedgekit.core.events import FundingPaid, FundingSettled
from hedgekit.core.position import Position
from hedgekit.venues.ccxt_rows import VenueFatal

FUNDING_STATE_VERSION = 1
HOUR_MS = 3_600_000
FUNDING_PAGE = 100  # rows per request (Binance's default page)
SAME_SETTLEMENT_MS = 60_000  # a payment is booked within seconds of its settlement


def _key(row: dict[str, Any]) -> str:
    # Hyperliquid gives every funding payment the zero hash as its id: time and amount make it
    # unique (one payment per coin per funding time).
    return f"{row.get('timestamp')}:{row.get('id')}:{row.get('amount')}"


class FundingCursor:
    """Which rows of one list were taken: those before ``since`` and the keys seen at/after it."""

    def __init__(self, since: int) -> None:
        self.since = since
        self._seen: dict[str, int] = {}

    def fresh(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows not taken yet, oldest first; the cursor moves past them."""
        out = []
        for row in sorted(rows, key=lambda r: int(r.get("timestamp") or 0)):
            t = int(row.get("timestamp") or 0)
            key = _key(row)
            if t < self.since or key in self._seen:
                continue
            self._seen[key] = t
            out.append(row)
        if self._seen:
            self.since = max(self.since, max(self._seen.values()))
            self._seen = {k: v for k, v in self._seen.items() if v >= self.since}
        return out

    def state(self) -> dict[str, Any]:
        return {"version": FUNDING_STATE_VERSION, "since": self.since, "seen": dict(sorted(self._seen.items()))}

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("version") != FUNDING_STATE_VERSION:
            raise HedgekitError(
                f"funding cursor version {state.get('version')!r} cannot be restored by this hedgekit "
                f"(it writes version {FUNDING_STATE_VERSION})"
            )
        self.since = int(state["since"])
        self._seen = {str(k): int(v) for k, v in state.get("seen", {}).items()}


class VenueFunding:
    """Books the funding the venue settled (``poll_funding``); state in ``funding_state``."""

    if TYPE_CHECKING:  # the REAL adapter's, declared for the type checker
        exchange: Any
        symbol: str
        position: Position
        last_price: float | None
        _clock: Callable[[], int]

        def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...
        def _fatal(self, what: str, err: Exception) -> VenueFatal: ...

    def init_funding(self) -> None:
        now = self._clock()  # settlements before this run are not ours
        self.funding_log: list[FundingPaid] = []
        self.funding_paid = 0.0
        self._payments = FundingCursor(now)
        self._settlements = FundingCursor(now)
        self._funding_hour: int | None = None

    def funding_state(self) -> dict[str, Any]:
        return {"paid": self.funding_paid, "payments": self._payments.state(),
                "settlements": self._settlements.state()}  # fmt: skip

    def restore_funding(self, state: dict[str, Any] | None) -> None:
        if state is None:
            return  # a state from before funding was booked: from now on
        self.funding_paid = float(state["paid"])
        self._payments.restore(state["payments"])
        self._settlements.restore(state["settlements"])

    def poll_funding(self, ts: int, *, now: bool = False) -> list[FundingSettled]:
        """The settlements since the last poll, oldest first, each once, for the strategy; the
        payments among them booked to cash and the funding total. Asked at the first call in
        each hour of ``ts`` (both venues settle on the hour), or ``now``."""
        hour = ts // HOUR_MS
        if hour == self._funding_hour and not now:
            return []
        self._funding_hour = hour
        settlements = self._settlements.fresh(self._rows("fetch funding rates", self.exchange.fetch_funding_rate_history,
                                                         self._settlements.since))  # fmt: skip
        payments = self._payments.fresh(self._rows("fetch funding payments", self.exchange.fetch_funding_history,
                                                   self._payments.since))  # fmt: skip
        events: list[FundingSettled] = []
        for row in payments:
            t, amount = int(row["timestamp"]), float(row["amount"])
            match = _nearest(settlements, t)
            if match is not None:
                settlements.remove(match)
            paid = self._paid(row, match)
            self.funding_paid += amount
            self.funding_log.append(paid)
            events.append(FundingSettled(t, amount, paid.rate))
        # Settlements with no payment: flat then (or its payment is still to come: booked then).
        events += [FundingSettled(int(s["timestamp"]), 0.0, float(s["fundingRate"]))
                   for s in settlements if s.get("fundingRate") is not None]  # fmt: skip
        return sorted(events, key=lambda e: e.ts)

    def _rows(self, what: str, fetch: Callable[..., Any], since: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            try:
                page = self._call(what, fetch, self.symbol, since, FUNDING_PAGE) or []
            except ccxt.BaseError as err:  # an order-level class from _call: not an order here
                raise self._fatal(what, err) from None
            out += [r for r in page if r.get("symbol") in (None, self.symbol)]
            last = max((int(r.get("timestamp") or 0) for r in page), default=since)
            if len(page) < FUNDING_PAGE or last <= since:
                return out
            since = last

    def _paid(self, row: dict[str, Any], settlement: dict[str, Any] | None) -> FundingPaid:
        """A payment as the simulator's record. Hyperliquid's rows carry the rate and the position
        it was paid on (the mark follows); Binance's neither: they come from its settlement."""
        t, amount = int(row["timestamp"]), float(row["amount"])
        rate, mark = row.get("rate"), None
        if settlement is None and rate is None:
            settlement = _nearest(self._rows("fetch funding rates", self.exchange.fetch_funding_rate_history,
                                             t - SAME_SETTLEMENT_MS), t)  # fmt: skip
        if settlement is not None:
            rate = settlement["fundingRate"] if rate is None else rate
            listed = (settlement.get("info") or {}).get("markPrice")
            mark = float(listed) if listed else None
        szi = ((row.get("info") or {}).get("delta") or {}).get("szi")
        if mark is None and szi and rate:
            mark = abs(amount / (float(szi) * float(rate)))
        if rate is None or mark is None:
            logger.warning(f"funding {amount:+g} at {t}: the venue gave no rate or mark for it; booked "
                           "at the last price seen" + ("" if rate is not None else " with rate 0"))  # fmt: skip
        return FundingPaid(t, float(rate or 0.0), mark or self.last_price or 0.0, amount)


def _nearest(settlements: list[dict[str, Any]], t: int) -> dict[str, Any] | None:
    near = [s for s in settlements if abs(int(s["timestamp"]) - t) <= SAME_SETTLEMENT_MS]
    return min(near, key=lambda s: abs(int(s["timestamp"]) - t)) if near else None
