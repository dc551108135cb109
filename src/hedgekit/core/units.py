"""The unit grid and the hysteresis unit tracker (SPEC §2)."""

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


class UnitGrid:
    """Levels L(u) anchored at P0, each rounded to the tick once, when first asked for.

    The tracker and the orders read the same cached levels, so a trigger and its unit step
    coincide exactly.
    """

    __slots__ = ("anchor", "spec", "instrument", "step", "_cache")

    def __init__(
        self, anchor: float, spec: UnitSpec, instrument: Instrument, atr: float | None = None
    ) -> None:
        require_positive("anchor price", anchor)
        self.anchor = instrument.round_price(anchor)
        self.spec = spec
        self.instrument = instrument
        if spec.mode is UnitMode.FIXED:
            self.step = spec.value
        elif spec.mode is UnitMode.ATR:
            self.step = atr_unit(spec, atr, instrument)
        elif spec.mode is UnitMode.PERCENT:
            self.step = self.anchor * spec.value
        else:
            self.step = 0.0
        if spec.mode is not UnitMode.GEOMETRIC and self.step < instrument.tick_size:
            raise ParameterError(
                "unit_size", spec.value,
                f"the unit ({self.step:g}) is smaller than the tick ({instrument.tick_size:g})",
            )
        if spec.mode is UnitMode.GEOMETRIC and self.anchor * spec.value < instrument.tick_size:
            raise ParameterError(
                "unit_size", spec.value,
                f"the first geometric step ({self.anchor * spec.value:g}) is smaller than the tick",
            )
        self._cache: dict[int, float] = {}

    def level(self, u: int) -> float:
        lvl = self._cache.get(u)
        if lvl is None:
            if self.spec.mode is UnitMode.GEOMETRIC:
                raw = self.anchor * (1.0 + self.spec.value) ** u
            else:
                raw = self.anchor + u * self.step
            lvl = self.instrument.round_price(raw)
            if lvl <= 0:
                # A level at or below zero can never be reached; park it at one tick.
                lvl = self.instrument.tick_size
            self._cache[u] = lvl
        return lvl


class UnitTracker:
    """Current unit with hysteresis: c moves to c+1 when price >= L(c+1) and to c-1 when
    price <= L(c-1); a jump across k levels yields k steps, in order."""

    __slots__ = ("grid", "unit")

    def __init__(self, grid: UnitGrid, unit: int = 0) -> None:
        self.grid = grid
        self.unit = unit

    def update(self, price: float) -> list[int]:
        """Move to ``price``; return the units stepped into, in order."""
        steps: list[int] = []
        level = self.grid.level
        while price >= level(self.unit + 1):
            self.unit += 1
            steps.append(self.unit)
        if steps:
            return steps
        while price <= level(self.unit - 1):
            self.unit -= 1
            steps.append(self.unit)
        return steps

    def next_levels(self) -> tuple[float, float]:
        """(down, up) prices whose touch changes the unit."""
        return self.grid.level(self.unit - 1), self.grid.level(self.unit + 1)
