"""Netting position accounting (one signed position per wallet), shared by strategies and venues."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from hedgekit.core.orders import Side
from hedgekit.core.rounding import round_places

_BUY: Final = Side.BUY


@dataclass(slots=True)
class Position:
    """Signed quantity (+ long, - short) and its average entry price.

    ``apply_fill`` returns the realized PnL of the part of the fill that reduced the position;
    a fill larger than the position flips it, and the excess opens at the fill price.
    """

    qty: float = 0.0
    avg_price: float = 0.0
    qty_decimals: int = 8

    def apply_fill(self, side: Side, qty: float, price: float) -> float:
        signed = qty if side is _BUY else -qty  # qty * side.sign, without the property call
        realized = 0.0
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            new_qty = self.qty + signed
            self.avg_price = (abs(self.qty) * self.avg_price + qty * price) / abs(new_qty)
            self.qty = round_places(new_qty, self.qty_decimals)
            return 0.0
        closing = min(qty, abs(self.qty))
        direction = 1.0 if self.qty > 0 else -1.0
        realized = closing * (price - self.avg_price) * direction
        new_qty = round_places(self.qty + signed, self.qty_decimals)
        if new_qty == 0:
            self.avg_price = 0.0
        elif (new_qty > 0) != (self.qty > 0):
            self.avg_price = price  # flipped: the remainder opened at this fill
        self.qty = new_qty
        return realized

    def unrealized(self, price: float) -> float:
        return self.qty * (price - self.avg_price) if self.qty else 0.0

    def notional(self, price: float) -> float:
        return abs(self.qty) * price
