"""Start-of-backtest checks of each unit wallet's unit against the data and the fees (SPEC §4a).

* **Coarse bars**: when the median bar range (high - low) over the traded bars is at least one
  unit, most bars span a unit or more, and the fixed intrabar path (``engine.backtest``) decides
  which of several crossings comes first: the chop inside the bar is invisible and the result is
  optimistic. The session then also runs the backtest with the opposite intrabar order.
* **Unit vs fee**: a unit smaller than 4 x the taker fee on its price cannot pay for a unit round
  trip (two taker fills) with margin to spare.

The unit is taken at the first traded price P0 (the opening fill's price): a fixed unit as given,
a percent or geometric one as ``value x P0``, an ATR unit as the multiple of the ATR at start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hedgekit.core.instrument import Instrument
from hedgekit.core.unit_spec import UnitMode, UnitSpec, atr_unit
from hedgekit.engine.memo import same_arrays

FEE_MULTIPLE = 4.0  # a unit must be at least this many taker fees on its price


def start_unit(spec: UnitSpec, price: float, instrument: Instrument, atr: float | None) -> float:
    """One unit at the first price (see the module docstring)."""
    if spec.mode is UnitMode.FIXED:
        return spec.value
    if spec.mode is UnitMode.ATR:
        return atr_unit(spec, atr, instrument)
    return spec.value * price


@dataclass(frozen=True, slots=True)
class CoarseBars:
    wallet: str
    median_range: float
    unit: float
    bars: int

    @property
    def ratio(self) -> float:
        # A unit that rounds to 0 (an ATR multiple below half a tick): infinitely coarse; the
        # strategy refuses it when it lays its grid.
        return self.median_range / self.unit if self.unit > 0 else float("inf")

    @property
    def coarse(self) -> bool:
        return self.median_range >= self.unit

    @property
    def message(self) -> str:
        if not self.coarse:
            return (f"{self.wallet}: median bar range {self.median_range:,.2f} is {self.ratio:.2f} of a unit "
                    f"({self.unit:,.2f}): bars are fine enough for this unit")
        return (
            f"{self.wallet}: bars too coarse for the unit: the median bar range {self.median_range:,.2f} "
            f"is {self.ratio:.2f} units ({self.unit:,.2f}); the intrabar path hides the chop, so this "
            "result is optimistic. Use finer data (e.g. 1m) or a larger unit; the result under the "
            "opposite intrabar order is shown beside it"
        )

    def as_dict(self) -> dict:
        return {"median_range": round(self.median_range, 8), "unit": round(self.unit, 8),
                "ratio": round(self.ratio, 4), "bars": self.bars, "coarse": self.coarse,
                "message": self.message}


@same_arrays  # every wallet of a run, and every trial of a sweep worker, asks it of the same bars
def median_range(high: np.ndarray, low: np.ndarray) -> float:
    return float(np.median(high - low))


def coarse_bars(wallet: str, high: np.ndarray, low: np.ndarray, unit: float) -> CoarseBars:
    return CoarseBars(wallet, median_range(high, low), unit, len(high))


@dataclass(frozen=True, slots=True)
class UnitVsFee:
    wallet: str
    unit: float
    price: float
    taker_fee: float

    @property
    def min_unit(self) -> float:
        return FEE_MULTIPLE * self.taker_fee * self.price

    @property
    def ok(self) -> bool:
        return not self.unit < self.min_unit

    @property
    def message(self) -> str:
        what = "at least" if self.ok else "smaller than"
        text = (f"{self.wallet}: one unit ({self.unit:,.2f}) is {what} {FEE_MULTIPLE:g} x the taker fee "
                f"{self.taker_fee:.4%} on its price {self.price:,.2f} ({self.min_unit:,.2f})")
        if self.ok:
            return text
        return text + ": a unit round trip cannot pay its fees; use a larger unit or a lower-fee tier"

    def as_dict(self) -> dict:
        return {"unit": round(self.unit, 8), "price": self.price, "taker_fee": self.taker_fee,
                "min_unit": round(self.min_unit, 8), "ok": self.ok, "message": self.message}


def unit_vs_fee(wallet: str, unit: float, price: float, taker_fee: float) -> UnitVsFee:
    return UnitVsFee(wallet, unit, price, taker_fee)


@dataclass(frozen=True, slots=True)
class StartChecks:
    """Every unit wallet's checks, in config order."""

    coarse: tuple[CoarseBars, ...] = ()
    fees: tuple[UnitVsFee, ...] = ()

    @property
    def any_coarse(self) -> bool:
        return any(c.coarse for c in self.coarse)

    @property
    def warnings(self) -> list[str]:
        return [c.message for c in self.coarse if c.coarse] + [f.message for f in self.fees if not f.ok]


__all__ = ["CoarseBars", "StartChecks", "UnitVsFee", "coarse_bars", "start_unit", "unit_vs_fee"]
