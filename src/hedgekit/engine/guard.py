"""The per-wallet drawdown guard rail (SPEC §4a: ``risk.max_drawdown_pct``).

Where it is checked: at each bar close, in both backtest loops and in PAPER on each input
(a bar close, or each price of a tick feed). Intrabar lows are not checked: the wallet's own
protective stops are the intrabar protection. The equity is the simulated exchange's
(allocation + realized - fees + funding + unrealized at the close) and its peak starts at the
allocation.

On a breach the wallet is closed and stopped in the money-safe order: the strategy is frozen
(it books fills but reacts to nothing), a reduce-only market order closes the venue's position
while every protective stop is still working, and only once the venue reports the position
flat are the working orders cancelled (``Strategy.stop``). A close that did not flatten the
position (refused, partial) is sent again at the next check, the stops still in place.

The fast path skips quiet bars, so it asks ``first_breach`` over a run of closes with the
position and cash held constant; the equity there is computed with the very float operations
``SimExchange.equity`` uses, so both loops trip at the same bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from hedgekit.core.position import Position
from hedgekit.engine.runner import WalletRunner


class GuardedAccount(Protocol):
    """What the guard reads: the simulated account, or a REAL venue's book."""

    position: Position

    def equity(self, price: float) -> float: ...


@dataclass(frozen=True, slots=True)
class DrawdownStop:
    """Why and where a wallet was stopped by its drawdown limit."""

    ts: int
    equity: float
    peak: float
    drawdown: float  # fraction of the peak
    limit: float
    price: float  # the bar close (or tick) the breach was seen at
    closed_qty: float  # signed position that was closed at market (0: it was flat)

    def as_dict(self) -> dict:
        return {
            "reason": "max_drawdown",
            "time": iso(self.ts),
            "equity": round(self.equity, 2),
            "peak_equity": round(self.peak, 2),
            "drawdown_pct": round(self.drawdown * 100, 4),
            "limit_pct": round(self.limit * 100, 4),
            "price": self.price,
            "closed_qty": self.closed_qty,
        }


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class DrawdownGuard:
    """One wallet's drawdown limit: the running peak of its equity and, once tripped, the stop."""

    __slots__ = ("limit", "peak", "stop", "done")

    def __init__(self, limit: float, start_equity: float) -> None:
        if not 0 < limit < 1:
            raise ValueError(f"max_drawdown_pct={limit!r}: a fraction between 0 and 1 (0.10 = 10 %)")
        self.limit = limit
        self.peak = float(start_equity)
        self.stop: DrawdownStop | None = None  # set when tripped
        self.done = False  # closed and stopped (or the wallet stopped for another reason)

    @property
    def pending(self) -> bool:
        """Tripped, but the position is not closed yet (the close is retried at each check)."""
        return self.stop is not None and not self.done

    def first_breach(self, equity: np.ndarray) -> int:
        """Index of the first close of ``equity`` (consecutive bar closes, after the current
        peak) at which the limit is breached, else ``len(equity)``. Does not move the peak."""
        if not len(equity):
            return 0
        peaks = np.maximum.accumulate(equity)
        np.maximum(peaks, self.peak, out=peaks)
        hit = 1.0 - equity / peaks >= self.limit
        j = int(hit.argmax())
        return j if hit[j] else len(equity)

    def see(self, max_equity: float) -> None:
        """Closes that did not breach (the fast path's quiet bars): only the peak moves."""
        if max_equity > self.peak:
            self.peak = max_equity

    def check(self, runner: WalletRunner, venue: GuardedAccount, ts: int, price: float) -> bool:
        """At a bar close (or tick) at ``price``: True when the wallet was stopped here.
        ``venue``: the simulated account behind the runner's port (its equity at ``price``)."""
        if self.done:
            return False
        strategy = runner.strategy
        if self.stop is None:
            if strategy.stopped:
                self.done = True  # stopped for another reason (liquidation, flatten)
                return False
            equity = venue.equity(price)
            if equity > self.peak:
                self.peak = equity
            drawdown = 1.0 - equity / self.peak
            if not drawdown >= self.limit:
                return False
            self.stop = DrawdownStop(ts, equity, self.peak, drawdown, self.limit, price, venue.position.qty)
            # SPEC §4a: close first; the strategy cancels its stops once the close has filled.
            runner.execute(strategy.flatten("max drawdown", venue.position.qty), ts)
        else:
            qty = venue.position.qty  # an earlier close did not flatten: try again
            if not strategy.instrument.is_zero_qty(qty):
                runner.execute(strategy.close_position(qty), ts)
        if strategy.instrument.is_zero_qty(venue.position.qty):
            self.done = True
        runner.log.warnings.append((ts, self.message(strategy.wallet, self.stop, venue.position.qty)))
        return True

    @staticmethod
    def message(wallet: str, s: DrawdownStop, left: float) -> str:
        head = (
            f"{wallet}: max drawdown reached at {iso(s.ts)}: equity {s.equity:,.2f} is {s.drawdown:.2%} "
            f"below its peak {s.peak:,.2f} (risk.max_drawdown_pct {s.limit:.2%}), price {s.price:g}; "
        )
        if left:
            return head + f"closing at market did not flatten the position ({left:g} left): stops kept, retrying"
        closed = f"closed {s.closed_qty:+g} at market, " if s.closed_qty else "flat, "
        return head + closed + "every order cancelled, wallet stopped"


__all__ = ["DrawdownGuard", "DrawdownStop", "iso"]
