"""Shared test helpers for the unit strategies."""

from __future__ import annotations

from hedgekit.core import Instrument, OrderKind, UnitMode, UnitSpec

# Exact decimal sizes for the worked examples: 4 decimals of lot, no minimum notional.
INSTRUMENT = Instrument("TESTUSD", tick_size=0.1, lot_size=0.0001, min_notional=0.0)
UNIT_100 = UnitSpec(UnitMode.FIXED, 100.0)


def units(strategy, kind: OrderKind) -> list[int]:
    return sorted(o.unit for o in strategy.working.values() if o.kind is kind)


def sizes(strategy, kind: OrderKind) -> dict[int, float]:
    return {o.unit: o.qty for o in strategy.working.values() if o.kind is kind}


def total(strategy, kind: OrderKind) -> float:
    return sum(o.qty for o in strategy.working.values() if o.kind is kind)
