"""Instruments and the rounding rules every price and size goes through.

Prices and sizes are floats, but every value that reaches an order is snapped to an exact
multiple of the tick or lot and re-rounded to the tick's decimal places, so repeated arithmetic
never drifts (``0.1 + 0.2`` style errors are cut off at the instrument's precision).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from enum import StrEnum

from hedgekit.core.errors import ParameterError, require_positive
from hedgekit.core.rounding import round_places

# Tolerance, in ticks or lots, under which a float is treated as already on the grid.
_GRID_EPS = 1e-9


def _decimals(step: float) -> int:
    """Decimal places needed to print multiples of ``step`` exactly (0.001 -> 3, 5 -> 0)."""
    text = f"{step:.12f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


class ContractType(StrEnum):
    PERP = "perp"
    SPOT = "spot"


# Compiled with the hot path (a native class: its rounding is called tens of thousands of
# times a trial); frozen, so pickle rebuilds it through __init__ (see __reduce__).
@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    tick_size: float = 0.1
    lot_size: float = 0.001
    min_notional: float = 5.0
    contract: ContractType = ContractType.PERP
    maker_fee: float = 0.0002
    taker_fee: float = 0.0005
    funding_interval_hours: float = 8.0
    price_decimals: int = field(init=False, repr=False, compare=False)
    qty_decimals: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        require_positive("tick_size", self.tick_size)
        require_positive("lot_size", self.lot_size)
        if self.min_notional < 0:
            raise ParameterError("min_notional", self.min_notional, "must be >= 0")
        for name in ("maker_fee", "taker_fee"):
            fee = getattr(self, name)
            if not -0.01 <= fee <= 0.01:
                raise ParameterError(name, fee, "must be a rate between -0.01 and 0.01 (0.0005 = 5 bp)")
        # Derived once: rounding is on every hot path.
        object.__setattr__(self, "price_decimals", _decimals(self.tick_size))
        object.__setattr__(self, "qty_decimals", _decimals(self.lot_size))

    def __reduce__(self) -> tuple[type[Instrument], tuple[object, ...]]:
        # A frozen native instance cannot be filled in after __new__; rebuilt, it is checked again.
        return type(self), tuple(getattr(self, f.name) for f in fields(self) if f.init)

    # -- prices -------------------------------------------------------------------------
    def round_price(self, price: float) -> float:
        """Nearest tick."""
        return round_places(round(price / self.tick_size) * self.tick_size, self.price_decimals)

    def floor_price(self, price: float) -> float:
        return round_places(math.floor(price / self.tick_size + _GRID_EPS) * self.tick_size, self.price_decimals)

    def ceil_price(self, price: float) -> float:
        return round_places(math.ceil(price / self.tick_size - _GRID_EPS) * self.tick_size, self.price_decimals)

    def round_trigger(self, price: float, is_sell: bool) -> float:
        """Round a stop trigger so it never fires before the level it stands for.

        A sell stop fires when price <= trigger, so its trigger rounds down; a buy stop fires
        when price >= trigger, so it rounds up.
        """
        return self.floor_price(price) if is_sell else self.ceil_price(price)

    # -- sizes --------------------------------------------------------------------------
    def floor_qty(self, qty: float) -> float:
        """Sizes round down to the lot so an order never asks for more than was intended."""
        if qty <= 0:
            return 0.0
        return round_places(math.floor(qty / self.lot_size + _GRID_EPS) * self.lot_size, self.qty_decimals)

    def round_qty(self, qty: float) -> float:
        """Nearest lot, for sums of lot-sized values (removes float drift only)."""
        return round_places(round(qty / self.lot_size) * self.lot_size, self.qty_decimals)

    def qty_for_notional(self, notional: float, price: float) -> float:
        return self.floor_qty(notional / price)

    def is_zero_qty(self, qty: float) -> bool:
        return abs(qty) < self.lot_size / 2

    def meets_min_notional(self, qty: float, price: float) -> bool:
        return qty * price + 1e-9 >= self.min_notional and qty >= self.lot_size / 2
