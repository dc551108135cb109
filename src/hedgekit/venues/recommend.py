"""RECOMMENDATION's venue: every order is printed for the trader instead of sent anywhere.

The sink stands where the exchange stands for PAPER and REAL (it implements the exchange
port): the strategy's commands reach it through ``submit``/``cancel``, and each becomes a
``RECOMMEND …`` line. Behind it, the simulated exchange assumes the trader followed the
advice, so the strategy carries on exactly as in PAPER (its fills are the simulator's).
The lines wait in ``lines`` (plain data, like the rest of a checkpoint) until the engine
prints them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hedgekit.core.events import VenueEvent
from hedgekit.core.orders import Order, OrderSpec
from hedgekit.core.records import FillRecord, OrderLogRecord
from hedgekit.core.strategy import Strategy
from hedgekit.venues.base import AccountState, ExchangePort
from hedgekit.venues.sim import SimExchange


def describe_place(spec: OrderSpec, strategy: Strategy) -> str:
    """`RECOMMEND place stop_loss SELL 0.25 BTC @ 64,200.0 (wallet long, unit -1, phase ADVANCE)`."""
    inst = strategy.instrument
    base = inst.symbol.removesuffix("USDT").removesuffix("USD") or inst.symbol
    at = f" @ {spec.price:,.{inst.price_decimals}f}" if spec.price is not None else " at market"
    unit = "" if spec.unit is None else f", unit {spec.unit}"
    return (
        f"RECOMMEND place {spec.kind} {spec.side.upper()} {spec.qty:.{inst.qty_decimals}f} {base}{at} "
        f"(wallet {strategy.wallet}{unit}, phase {strategy.phase})"
    )


def describe_cancel(client_id: str, strategy: Strategy) -> str:
    inst = strategy.instrument
    spec = strategy.known_order(client_id)
    what = f"{spec.kind} {spec.side.upper()} @ {spec.price:,.{inst.price_decimals}f}" if spec and spec.price else client_id
    return f"RECOMMEND cancel {what} (wallet {strategy.wallet}, phase {strategy.phase})"


class RecommendationSink:
    def __init__(self, sim: SimExchange, strategy: Strategy) -> None:
        self.sim = sim  # what the trader's account does if the advice is followed
        self.strategy = strategy  # read for the wording only (phase, known orders)
        self.lines: list[str] = []  # not printed yet

    @property
    def fills(self) -> list[FillRecord]:
        return self.sim.fills

    @property
    def order_log(self) -> list[OrderLogRecord]:
        return self.sim.order_log

    @property
    def last_price(self) -> float | None:
        return self.sim.last_price

    def submit(self, spec: OrderSpec, ts: int) -> list[VenueEvent]:
        self.lines.append(describe_place(spec, self.strategy))
        return self.sim.submit(spec, ts)

    def cancel(self, client_id: str, ts: int) -> list[VenueEvent]:
        self.lines.append(describe_cancel(client_id, self.strategy))
        return self.sim.cancel(client_id, ts)

    def open_orders(self) -> list[Order]:
        return self.sim.open_orders()

    def account(self) -> AccountState:
        return self.sim.account()

    def drain(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


if TYPE_CHECKING:
    _PORT: type[ExchangePort] = RecommendationSink  # mypy checks that the sink implements the port
