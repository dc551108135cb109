"""Pieces shared by the two unit strategies (long wallet and hedge wallet)."""

from __future__ import annotations

from dataclasses import dataclass

from hedgekit.core.errors import ParameterError, require_positive
from hedgekit.core.instrument import Instrument
from hedgekit.core.units import UnitMode, UnitSpec

WINDOW = 4  # orders per window: c±1 … c±4


@dataclass(frozen=True, slots=True)
class WalletParams:
    """Money parameters of a unit wallet. ``max_leverage`` is the configured ceiling."""

    allocation: float
    leverage: float
    unit: UnitSpec
    max_leverage: float = 20.0

    def __post_init__(self) -> None:
        require_positive("allocation", self.allocation)
        require_positive("leverage", self.leverage)
        require_positive("max_leverage", self.max_leverage)
        if self.leverage > self.max_leverage:
            raise ParameterError(
                "leverage", self.leverage, f"is above the configured maximum of {self.max_leverage:g}"
            )

    def check_against(self, instrument: Instrument) -> None:
        """Checks that need the instrument (percent units are checked when the grid is laid)."""
        if self.unit.mode is UnitMode.FIXED and self.unit.value < instrument.tick_size:
            raise ParameterError(
                "unit_size", self.unit.value,
                f"the unit is smaller than the tick ({instrument.tick_size:g}) of {instrument.symbol}",
            )

    @property
    def notional(self) -> float:
        return self.allocation * self.leverage


def split_qty(total: float, parts: int, instrument: Instrument) -> list[float]:
    """``parts`` lot-rounded sizes summing exactly to ``total``; the last absorbs rounding."""
    each = instrument.floor_qty(total / parts)
    sizes = [each] * (parts - 1)
    sizes.append(instrument.round_qty(total - each * (parts - 1)))
    return sizes


def min_order_qty(instrument: Instrument, price: float) -> float:
    """Smallest lot-rounded size that meets the instrument's minimum notional at ``price``."""
    q = instrument.floor_qty(instrument.min_notional / price)
    while not instrument.meets_min_notional(q, price):
        q = instrument.round_qty(q + instrument.lot_size)
    return q
