"""Where the grid's rungs go and how large they may be: the ladder of levels around the centre,
placement strictly away from the last price, and the hedge cap (see the package docstring).

``GridLadder`` is the part of ``GridHedge`` that places rungs; the state it reads is set by
``GridHedge`` (``machine``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hedgekit.core import (
    Command,
    OrderKind,
    OrderSpec,
    OrderType,
    Place,
    Side,
)
from hedgekit.core.strategy import Strategy
from hedgekit.strategies.grid_hedge.params import GridDirection, GridHedgeParams
from hedgekit.strategies.grid_hedge.sizing import GridLevels

__all__ = ["GridLadder"]

_OPEN, _EXIT = "open", "exit"
_GRID_KINDS = (OrderKind.GRID_SELL, OrderKind.GRID_BUY)


@dataclass(slots=True)
class _Rung:
    side: Side  # the opening side: SELL on the short grid, BUY on the long grid
    open_cid: str | None = None
    open_price: float | None = None  # level of the working, or last filled, opening order
    held: float = 0.0  # coins this rung's filled opening order added to the hedge
    exit_price: float | None = None
    exit_cid: str | None = None
    blocked: bool = False  # rejected or cancelled by the venue: retried at the next rebalance

    @property
    def sign(self) -> int:
        """+1 when the rung opens above the price (sell), -1 below (buy)."""
        return 1 if self.side is Side.SELL else -1


class GridLadder(Strategy):
    """Rung placement and the hedge cap, for ``GridHedge``."""

    params: GridHedgeParams
    _levels: GridLevels | None
    _centre: float
    _spacing: float
    _rungs: list[_Rung]
    _rung_of: dict[str, tuple[int, int, str]]
    _funding_rate: float

    # -- rung placement ------------------------------------------------------------------------
    def _place_opening(self, rung: _Rung, beyond: float) -> Place | None:
        """The rung's opening order on the nearest free level beyond ``beyond`` (and beyond the
        last price), sized to the rung step trimmed to the hedge cap."""
        side = rung.side
        lots = self._opening_lots(side)
        if lots < 1:
            return None
        levels = self._free_levels(side, beyond, 1)
        if not levels:
            return None
        price = levels[0]
        qty = round(lots * self.instrument.lot_size, self.instrument.qty_decimals)
        if not self.instrument.meets_min_notional(qty, price):
            return None
        kind = OrderKind.GRID_SELL if side is Side.SELL else OrderKind.GRID_BUY
        place = self._place(kind, side, OrderType.LIMIT, qty, price, unit=self._unit_of(price))
        rung.open_cid = place.order.client_id
        rung.open_price = price
        self._rung_of[rung.open_cid] = (self.cycle, self._rungs.index(rung), _OPEN)
        return place

    def _place_exit(self, rung: _Rung) -> Place | None:
        price = rung.exit_price
        if price is None or rung.held <= 0 or price <= 0:
            return None
        side = rung.side.opposite
        both = self.params.direction is GridDirection.BOTH
        if both:  # not reduce-only (the other side may hold the net position): it counts in the cap
            long_lots, short_lots = self._exposure_lots()
            used = long_lots if side is Side.BUY else short_lots
            if used + self._lots(rung.held) > self._cap_lots():
                return None
        if not self._placeable(side, OrderType.LIMIT, price) or self._rung_near(
            price, self.instrument.tick_size / 2
        ):
            return None
        kind = OrderKind.GRID_SELL if side is Side.SELL else OrderKind.GRID_BUY
        place = self._place(
            kind,
            side,
            OrderType.LIMIT,
            rung.held,
            price,
            unit=self._unit_of(price),
            reduce_only=not both,
        )
        rung.exit_cid = place.order.client_id
        self._rung_of[rung.exit_cid] = (self.cycle, self._rungs.index(rung), _EXIT)
        return place

    def _free_levels(
        self, side: Side, beyond: float, count: int, ignore: set[str] | None = None
    ) -> list[float]:
        """The first ``count`` ladder levels strictly beyond ``beyond`` and the last price on
        the side where ``side`` limits rest, with no working rung within a quarter spacing
        (rungs in ``ignore`` excepted)."""
        last = self.last_price if self.last_price is not None else beyond
        edge = max(beyond, last) if side is Side.SELL else min(beyond, last)
        sign = 1 if side is Side.SELL else -1
        spacing = self._spacing
        k = (
            math.floor((edge - self._centre) / spacing)
            if side is Side.SELL
            else math.ceil((edge - self._centre) / spacing)
        )
        found: list[float] = []
        for _ in range(4 * self.params.grid.num_levels + count + 4):
            k += sign
            price = self.instrument.round_price(self._centre + k * spacing)
            if price <= 0:
                break
            if not self._placeable(side, OrderType.LIMIT, price) or (price - edge) * sign <= 0:
                continue
            if self._rung_near(price, spacing / 4, ignore) or price in found:
                continue
            found.append(price)
            if len(found) == count:
                break
        return found

    def _rung_near(self, price: float, distance: float, ignore: set[str] | None = None) -> bool:
        """Is a working rung (other than those in ``ignore``) closer than ``distance`` to ``price``?"""
        distance = max(distance, self.instrument.tick_size / 2)
        return any(
            o.kind in _GRID_KINDS
            and o.price is not None
            and abs(o.price - price) < distance
            and not (ignore and cid in ignore)
            for cid, o in self.working.items()
        )

    def _unit_of(self, price: float) -> int:
        """The ladder level of ``price`` (for the client id and the journal)."""
        return round((price - self._centre) / self._spacing) if self._spacing else 0

    def _placeable(self, side: Side, otype: OrderType, price: float) -> bool:
        """Strictly on the side of the last price where the order rests instead of executing."""
        last = self.last_price
        if last is None or otype is OrderType.MARKET:
            return True
        if otype is OrderType.LIMIT:
            return price < last if side is Side.BUY else price > last
        return price > last if side is Side.BUY else price < last

    # -- the hedge cap ---------------------------------------------------------------------------
    def _lots(self, qty: float) -> int:
        return round(qty / self.instrument.lot_size)

    def _cap_lots(self) -> int:
        cap = self.params.spot_quantity * self.params.risk.max_hedge_ratio
        return math.floor(cap / self.instrument.lot_size + 1e-9)

    def _exposure_lots(self) -> tuple[int, int]:
        """Worst-case (long, short) position in lots if every working order that can grow the
        position filled: reduce-only orders never can."""
        pos = self._lots(self.position.qty)
        buys = sells = 0
        for cid, o in self.working.items():
            if o.reduce_only:
                continue
            leaves = self._lots(max(o.qty - self.filled_qty(cid), 0.0))
            if o.side is Side.BUY:
                buys += leaves
            else:
                sells += leaves
        return pos + buys, -pos + sells

    def _opening_lots(self, side: Side, freeing: OrderSpec | None = None) -> int:
        """Lots a new opening rung on ``side`` may have: the rung size, trimmed to the cap.
        ``freeing``: a working rung that would be cancelled first (its room counts as free)."""
        long_lots, short_lots = self._exposure_lots()
        used = long_lots if side is Side.BUY else short_lots
        if freeing is not None:
            used -= self._lots(freeing.qty - self.filled_qty(freeing.client_id))
        return max(0, min(self._lots(self._rung_qty()), self._cap_lots() - used))

    def _rung_qty(self) -> float:
        step = self._levels.step if self._levels else 0.0
        threshold = self.params.risk.funding_threshold
        if threshold is not None and abs(self._funding_rate) > threshold:
            return self.instrument.floor_qty(step * self.params.risk.funding_size_factor)
        return step

    def _enforce_cap(self) -> list[Command]:
        """After a fill that raced a cancel, the worst case may exceed the cap: cancel the
        opening rungs farthest from the price until it fits again."""
        cap = self._cap_lots()
        cmds: list[Command] = []
        for side in (Side.SELL, Side.BUY):
            long_lots, short_lots = self._exposure_lots()
            excess = (short_lots if side is Side.SELL else long_lots) - cap
            if excess <= 0:
                continue
            armed = [r for r in self._rungs if r.open_cid is not None and r.side is side]
            price = self.last_price or self._centre
            for rung in sorted(armed, key=lambda r: -abs((r.open_price or price) - price)):
                cid = rung.open_cid
                if excess <= 0 or cid is None:
                    break
                excess -= self._lots(self.working[cid].qty - self.filled_qty(cid))
                cmds.append(self._cancel(cid))
                rung.open_cid = None
            if excess > 0:
                self.warnings.append(
                    f"{self.wallet}: hedge {self.position.qty:g} exceeds spot × max_hedge_ratio "
                    f"({self.params.spot_quantity * self.params.risk.max_hedge_ratio:g})"
                )
        return cmds
