"""The unit grid and the hysteresis unit tracker (SPEC §2)."""

from __future__ import annotations

from typing import Final

from hedgekit.core.compiled import mypyc_attr
from hedgekit.core.errors import HedgekitError, ParameterError, require_positive
from hedgekit.core.instrument import Instrument
from hedgekit.core.unit_spec import UnitMode, UnitSpec, atr_unit

# Most unit steps one price move may make. A real gap crosses a handful of levels; thousands
# mean a unit far too small for the price (a bad print, a RESET near zero), and walking them
# would flood the run with orders: it is refused instead (SPEC §10: never hang or balloon).
MAX_STEPS_PER_MOVE: Final = 10_000


class UnitStepLimit(HedgekitError):
    """A single price move would cross more than ``MAX_STEPS_PER_MOVE`` unit levels."""


# compiled build: subclassable, and rebuilt by pickle and snapshots (hedgekit.core.compiled)
@mypyc_attr(allow_interpreted_subclasses=True)
class UnitGrid:
    """Levels L(u) anchored at P0, each rounded to the tick once, when first asked for.

    The tracker and the orders read the same cached levels, so a trigger and its unit step
    coincide exactly. Levels are strictly monotone after rounding: where rounding would give
    a level its neighbour's price (geometric units far below the anchor, whose steps shrink
    under a tick) the level is moved one tick beyond its neighbour. Levels that would fall
    to or below zero are parked at one tick, the floor: the tracker never steps below it.
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
                f"the unit ({self.step:g}) is smaller than the tick ({instrument.tick_size:g}) at the anchor price {self.anchor:g}",
            )
        if spec.mode is UnitMode.GEOMETRIC and self.anchor * spec.value < instrument.tick_size:
            raise ParameterError(
                "unit_size", spec.value,
                f"the first geometric step ({self.anchor * spec.value:g}) is smaller than the tick",
            )
        self._cache: dict[int, float] = {0: self.anchor}

    def level(self, u: int) -> float:
        lvl = self._cache.get(u)
        if lvl is not None:
            return lvl
        # Levels are laid outward from the nearest one already known, each checked against
        # its inner neighbour (normally the one just before: the tracker moves one by one).
        out = 1 if u > 0 else -1
        k = u - out
        while k not in self._cache:
            k -= out
        tick = self.instrument.tick_size
        inner = self._cache[k]
        for v in range(k + out, u + out, out):
            if self.spec.mode is UnitMode.GEOMETRIC:
                raw = self.anchor * (1.0 + self.spec.value) ** v
            else:
                raw = self.anchor + v * self.step
            lvl = self.instrument.round_price(raw)
            if out > 0 and lvl <= inner:
                lvl = self.instrument.round_price(inner + tick)
            elif out < 0 and lvl >= inner:
                lvl = self.instrument.round_price(inner - tick)
            if lvl < tick:
                lvl = tick  # at or below zero: unreachable, parked at the floor
            self._cache[v] = inner = lvl
        return inner


# compiled build: subclassable, and rebuilt by pickle and snapshots (hedgekit.core.compiled)
@mypyc_attr(allow_interpreted_subclasses=True)
class UnitTracker:
    """Current unit with hysteresis: c moves to c+1 when price >= L(c+1) and to c-1 when
    price <= L(c-1); a jump across k levels yields k steps, in order."""

    # ``down``/``up``: the prices whose touch changes the unit, kept with ``unit`` (asked
    # on every move of a backtest: one attribute read instead of grid lookups).
    __slots__ = ("grid", "unit", "down", "up")

    def __init__(self, grid: UnitGrid, unit: int = 0) -> None:
        self.grid = grid
        self._move(unit)

    def _move(self, unit: int) -> None:
        level = self.grid.level
        self.unit = unit
        self.up = level(unit + 1)
        # Below the floor (one tick) there is no level: the tracker stays at the floor.
        down = level(unit - 1)
        self.down = down if down < level(unit) else float("-inf")

    def update(self, price: float) -> list[int]:
        """Move to ``price``; return the units stepped into, in order.

        Raises :class:`UnitStepLimit` rather than make more than ``MAX_STEPS_PER_MOVE`` steps."""
        if self.down < price < self.up:
            return []
        steps: list[int] = []
        while price >= self.up:
            self._move(self.unit + 1)
            steps.append(self.unit)
            if len(steps) > MAX_STEPS_PER_MOVE:
                self._too_many(price)
        if steps:
            return steps
        while price <= self.down:
            self._move(self.unit - 1)
            steps.append(self.unit)
            if len(steps) > MAX_STEPS_PER_MOVE:
                self._too_many(price)
        return steps

    def next_level(self, up: bool) -> float:
        """The price whose touch changes the unit upward (``up``) or downward; -inf at the floor."""
        return self.up if up else self.down

    def next_levels(self) -> tuple[float, float]:
        """(down, up) prices whose touch changes the unit."""
        return self.down, self.up

    def _too_many(self, price: float) -> None:
        g = self.grid
        raise UnitStepLimit(
            f"a move to {price:g} crosses more than {MAX_STEPS_PER_MOVE:,} unit levels (unit "
            f"{g.step or g.spec.value:g} {g.spec.mode}, anchor {g.anchor:g}): the unit is far too small for "
            "this price, usually a bad print or a RESET at an absurd price; check the data "
            "(data.on_spike) or use a larger unit"
        )
