"""Funding the venue settled on a REAL position, read back through ccxt.

The venue moves the cash itself (every 8 h on Binance USD-M, every hour on Hyperliquid); the
adapter only has to learn of each payment once, in order, across restarts, to book it as the
simulator books its own (``FundingPaid``: cash, the status row's funding total, the strategy's
``FundingSettled``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loguru import logger

from hedgekit.core.errors import HedgekitError
from hedgekit.core.events import FundingPaid

FUNDING_STATE_VERSION = 1
HOUR_MS = 3_600_000


def _key(row: dict[str, Any]) -> str:
    # Hyperliquid gives every funding row the zero hash as its id: time and amount make it unique
    # (one payment per coin per funding time).
    return f"{row.get('timestamp')}:{row.get('id')}:{row.get('amount')}"


class FundingCursor:
    """Which funding rows were booked: those before ``since`` and the keys seen at/after it.

    Polled once per funding hour (``due``) and at every reconciliation, not per input: a payment
    is at most an hour late in the book, never missed, never booked twice."""

    def __init__(self, since: int) -> None:
        self.since = since
        self._seen: dict[str, int] = {}
        self._hour: int | None = None

    def due(self, ts: int) -> bool:
        """True once per clock hour (the first time ``ts`` falls in a new one)."""
        hour = ts // HOUR_MS
        if hour == self._hour:
            return False
        self._hour = hour
        return True

    def fresh(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows not booked yet, oldest first; the cursor moves past them."""
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


def funding_paid(row: dict[str, Any], rate_at: Callable[[int], tuple[float, float | None] | None],
                 last_price: float | None) -> FundingPaid:
    """One ccxt funding-history row as the simulator's record. The venue reports the cash change
    (negative when the wallet paid). Hyperliquid gives the rate and the position it was paid on
    (the mark follows from them); Binance neither: ``rate_at(ts)`` looks up the rate and mark
    settled then. Without them the rate is 0 and the mark the last price seen (logged)."""
    amount, ts = float(row["amount"]), int(row["timestamp"])
    rate, mark = row.get("rate"), None
    delta = (row.get("info") or {}).get("delta") or {}
    if rate is None:
        found = rate_at(ts)
        if found is not None:
            rate, mark = found
    elif delta.get("szi") and float(rate):
        mark = -amount / (float(delta["szi"]) * float(rate))
    if rate is None or mark is None:
        logger.warning(f"funding {amount:+g} at {ts}: the venue gave no rate/mark for it; "
                       "booked with rate 0 at the last price seen")
    return FundingPaid(ts, float(rate or 0.0), abs(mark) if mark else (last_price or 0.0), amount)
