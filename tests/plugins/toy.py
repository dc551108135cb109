"""A toy strategy registered from the tests folder: proof that a strategy is one module plus
its config model, found by every part of hedgekit through the registry.

It buys ``fraction`` of its buying power at market, keeps a reduce-only stop ``stop_pct``
below the fill, and buys again at market once the stop has sold."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from hedgekit.core.commands import Command
from hedgekit.core.instrument import Instrument
from hedgekit.core.orders import OrderKind, OrderSpec, OrderType, Side
from hedgekit.core.strategy import Phase, Strategy
from hedgekit.registry import StrategyEntry


class ToyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: Literal["toy_buyer"]
    name: str = "toy"
    allocation: PositiveFloat
    leverage: PositiveFloat = 1.0
    fraction: float = Field(default=0.5, gt=0, le=1)
    stop_pct: float = Field(default=0.01, gt=0, lt=1)


class ToyBuyer(Strategy):
    name = "toy_buyer"

    def __init__(self, wallet: str, instrument: Instrument, cfg: ToyConfig) -> None:
        super().__init__(wallet, instrument)
        self.budget = cfg.allocation * cfg.leverage * cfg.fraction
        self.stop_pct = cfg.stop_pct
        self.buys = 0

    @property
    def phase(self) -> Phase:
        return Phase.STOPPED if self.stopped else Phase.ACTIVE

    def _buy(self, price: float) -> list[Command]:
        qty = self.instrument.round_qty(self.budget / price)
        self.buys += 1
        return [self._place(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, qty)]

    def start(self, ts: int, price: float) -> list[Command]:
        return self._buy(price)

    def _on_filled(self, spec: OrderSpec, qty: float, price: float, ts: int) -> list[Command]:
        if spec.kind is OrderKind.MARKET_BUY:
            stop = self.instrument.round_price(price * (1 - self.stop_pct))
            return [self._place(OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, qty, stop, reduce_only=True)]
        if spec.kind is OrderKind.STOP_LOSS and self.position.qty == 0:
            return self._buy(price)
        return []


# What a plugin passes to hedgekit.registry.register (tests/test_registry.py does, and
# unregisters it afterwards).
ENTRY = StrategyEntry("toy_buyer", ToyConfig, ToyBuyer, lambda w, inst, _lev: ToyBuyer(w.name, inst, w))
