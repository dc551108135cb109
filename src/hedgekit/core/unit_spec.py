"""How the unit size is chosen (SPEC §2): the validated settings of a wallet's unit grid.

Kept apart from ``core.units`` (the grid and the tracker), which the optional compiled build
compiles: a compiled class checks its field types on construction, before the validation
here could name the bad field (``atr_period=2.5`` must say ``atr_period``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hedgekit.core.errors import ParameterError, require_positive
from hedgekit.core.instrument import Instrument


class UnitMode(StrEnum):
    FIXED = "fixed"  # U is an amount of quote currency
    PERCENT = "percent"  # U = P0 * value (value 0.01 = 1 %)
    GEOMETRIC = "geometric"  # L(u) = P0 * (1 + value) ** u
    ATR = "atr"  # U = value * ATR(atr_period) when the grid is laid, rounded to the tick


@dataclass(frozen=True, slots=True)
class UnitSpec:
    """How the unit size is chosen at each anchor. ATR units read the ATR the engine last
    sent the strategy (``AtrUpdated``); ``atr_period`` is used by ATR units only."""

    mode: UnitMode
    value: float
    atr_period: int = 14

    def __post_init__(self) -> None:
        require_positive("unit_size", self.value)
        if self.mode in (UnitMode.PERCENT, UnitMode.GEOMETRIC) and self.value >= 1:
            raise ParameterError("unit_size", self.value, f"{self.mode} units are a fraction of P0 and must be < 1")
        p = self.atr_period
        if isinstance(p, bool) or not isinstance(p, int) or p < 2:
            raise ParameterError("atr_period", p, "must be a whole number of bars >= 2")


def atr_unit(spec: UnitSpec, atr: float | None, instrument: Instrument) -> float:
    """U = multiple x ATR, rounded to the tick; a clear error when there is no ATR yet."""
    if atr is None:
        raise ParameterError(
            "unit.atr_period", spec.atr_period,
            f"no ATR yet: ATR units need {spec.atr_period} completed bars before the grid is "
            "laid (the engine's warm-up provides them)",
        )
    return instrument.round_price(spec.value * atr)
