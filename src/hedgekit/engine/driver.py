"""Deterministic driver for tests and the demo.

Feeds one strategy a path of prices on the simulated exchange with zero fees and no slippage,
so every stop fills exactly at its trigger (or at the price when a gap jumps through it).
Simultaneous triggers fire in placement order (``fifo``) or its reverse, to check that both
orders lead to the same positions.
"""

from __future__ import annotations

from typing import Literal

from hedgekit.core.strategy import Strategy
from hedgekit.engine.runner import AtrSource, WalletRunner
from hedgekit.engine.walker import MarketWalker
from hedgekit.venues.sim import SimConfig, SimExchange

STEP_MS = 60_000


class PathDriver:
    def __init__(
        self,
        strategy: Strategy,
        *,
        cash: float,
        leverage: float = 1.0,
        trigger_order: Literal["fifo", "reverse", "random"] = "fifo",
        seed: int = 0,
        atr: AtrSource | None = None,
        taker_fee: float = 0.0,
        maintenance_margin_rate: float = 0.0,
        venue_type: type[SimExchange] = SimExchange,
    ) -> None:
        config = SimConfig(
            initial_cash=cash, leverage=leverage, trigger_order=trigger_order, seed=seed,
            maker_fee=0.0, taker_fee=taker_fee, maintenance_margin_rate=maintenance_margin_rate,
        )
        self.strategy = strategy
        self.venue = venue_type(strategy.instrument, config)
        self.runner = WalletRunner(strategy, self.venue, atr=atr)
        self.walker = MarketWalker(self.runner, self.venue)
        self.ts = 0

    def start(self, price: float) -> None:
        self.walker.start(self.ts, price)

    def goto(self, price: float, *, gap: bool = False) -> None:
        """Move the price to ``price`` (monotone path, or a jump when ``gap``)."""
        self.ts += STEP_MS
        self.walker.advance(price, self.ts, gap=gap)

    def fund(self, rate: float) -> None:
        """A funding payment now, at the last price."""
        self.ts += STEP_MS
        self.walker.apply_funding(rate, self.ts)

    def to_unit(self, unit: int, *, gap: bool = False) -> None:
        """Move to the level of ``unit`` on the strategy's current grid."""
        grid = self.strategy.grid
        if grid is None:
            raise RuntimeError("the strategy has no grid yet: call start() first")
        self.goto(grid.level(unit), gap=gap)

    def path(self, *units: int) -> None:
        for u in units:
            self.to_unit(u)
