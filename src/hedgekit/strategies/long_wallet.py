"""Long wallet (SPEC §3): four stops trailing one unit behind the price.

Sells (``stop_loss``, reduce-only) sit below the current unit and scale out of the long on
the way down; buys (``stop_entry_buy``) sit above and scale back in on the way up. There are
always four working orders: sells contiguous below c, buys contiguous above.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from hedgekit.core.commands import Command
from hedgekit.core.compiled import mypyc_attr
from hedgekit.core.errors import ParameterError
from hedgekit.core.events import UnitChanged
from hedgekit.core.instrument import Instrument
from hedgekit.core.orders import OrderKind, OrderSpec, OrderType, Side
from hedgekit.core.position import Position
from hedgekit.core.strategy import Phase
from hedgekit.core.unit_wallet import WINDOW, UnitWallet, WalletParams, min_order_qty, split_qty

SELL: Final = OrderKind.STOP_LOSS
BUY: Final = OrderKind.STOP_ENTRY_BUY
# Used on every event, so bound once: on Python 3.11 looking a member up on its enum
# class (``Phase.ADVANCE``) costs several times a global lookup.
STOPPED: Final = Phase.STOPPED
STARTING: Final = Phase.STARTING
ADVANCE: Final = Phase.ADVANCE
RETRACEMENT: Final = Phase.RETRACEMENT
DECLINE: Final = Phase.DECLINE
RECOVER: Final = Phase.RECOVER
STOP: Final = OrderType.STOP


class BuyFragment(StrEnum):
    CONTINUOUS = "continuous"  # (N + realized PnL of the cycle) / 4, when placed
    FIXED = "fixed"  # N / 4


# A plain class when compiled, as WalletParams.
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class LongWalletParams(WalletParams):
    buy_fragment: BuyFragment = BuyFragment.CONTINUOUS

    def __post_init__(self) -> None:
        WalletParams.__post_init__(self)
        # Read untyped: compiled, a typed read of a bad value would raise TypeError first.
        given = getattr(self, "buy_fragment")  # noqa: B009
        try:
            fragment = BuyFragment(given)
        except ValueError:
            raise ParameterError("buy_fragment", given, "must be 'continuous' or 'fixed'") from None
        # "fixed" as text is the enum from here on (the wallet compares by identity).
        object.__setattr__(self, "buy_fragment", fragment)


@mypyc_attr(allow_interpreted_subclasses=True)  # as Strategy
class LongWallet(UnitWallet[LongWalletParams]):
    name = "long_wallet"

    def __init__(self, wallet: str, instrument: Instrument, params: LongWalletParams) -> None:
        super().__init__(wallet, instrument, params)
        # The cycle's own book (SPEC §3): at RESET the whole position's basis becomes P0, so
        # growth already compounded into N is not counted again in the buy fragment.
        self._cycle_book = Position(qty_decimals=self.position.qty_decimals)
        self._cycle_realized = 0.0
        self._superseded: set[str] = set()  # the previous cycle's sells, cancelled at RESET

    # -- state the engine reads ---------------------------------------------------------
    @property
    def cycle_realized(self) -> float:
        """Realized PnL of this cycle, measured from the cycle's basis P0."""
        return self._cycle_realized

    @property
    def phase(self) -> Phase:
        if self.stopped:
            return STOPPED
        if self._grid is None:
            return STARTING
        sells = buys = 0
        for o in self.working.values():  # one pass: asked after every event
            if o.kind is SELL:
                sells += 1
            elif o.kind is BUY:
                buys += 1
        if self.deferred:
            buys += sum(1 for o in self.deferred.values() if o.kind is BUY)
        if sells == WINDOW and buys == 0:
            return ADVANCE
        if buys == WINDOW and sells == 0:
            return DECLINE
        return RETRACEMENT if self._last_pure is ADVANCE else RECOVER

    # -- events -------------------------------------------------------------------------
    def _on_filled(self, spec: OrderSpec, qty: float, price: float, ts: int) -> list[Command]:
        if spec.kind is OrderKind.MARKET_BUY:
            return self._anchor(price)
        if spec.unit is None:
            return []
        self._cycle_realized += self._cycle_book.apply_fill(spec.side, qty, price)
        if spec.client_id in self._superseded:
            return self._relay_sells(spec.client_id)
        if spec.kind is SELL:
            cmds: list[Command] = [self._buy_at(spec.unit + 1)]
            if not self.orders(SELL):
                self._last_pure = DECLINE
            return cmds + self._resubmit_deferred()
        if spec.kind is BUY:
            cmds = [self._place_sell(spec.unit - 1, qty)]
            if not self.slots(BUY):
                return cmds + self._reset(price)
            return cmds + self._resubmit_deferred()
        return []

    def _on_unit(self, event: UnitChanged) -> list[Command]:
        previous, self._unit = self._unit, event.unit
        phase = self.phase
        c = event.unit
        # Slides are guarded by "is the new level already taken?" so a fill delivered before
        # or after its own unit step leads to the same window (live fill reports can lag).
        if phase is ADVANCE and c > previous and not self._has(SELL, c - 1):
            lowest = self.orders(SELL)[0]
            return [self._place_sell(c - 1, lowest.qty), self._cancel(lowest.client_id)]
        cmds: list[Command] = []
        if phase is DECLINE and c < previous and not self._has(BUY, c + 1):
            highest = self.slots(BUY)[-1]
            # The buy being cancelled releases its share of the buying power.
            released = None if highest.client_id in self.deferred else highest
            cmds = [self._buy_at(c + 1, releasing=released), *self._drop(highest.client_id)]
        return cmds + self._resubmit_deferred() if self.deferred else cmds

    # -- rules --------------------------------------------------------------------------
    def _anchor(self, price: float) -> list[Command]:
        """Lay the grid at ``price`` with c = 0 and four sells splitting the position."""
        self._lay_grid(price)
        self._cycle_book = Position(self.position.qty, price, self.position.qty_decimals)
        self._cycle_realized = 0.0
        sizes = split_qty(self.position.qty, WINDOW, self.instrument)
        return [self._place_sell(-(i + 1), q) for i, q in enumerate(sizes)]

    def _reset(self, price: float) -> list[Command]:
        """All buys filled: re-anchor at the last fill, compound N, re-lay the sells.

        New sells are placed before the old ones are cancelled (place-then-cancel).
        """
        old = [o.client_id for o in self.orders(SELL)]
        # Cancelled below, but one may already have filled at the venue (a gap crossed it)
        # with the report still on its way: see _relay_sells.
        self._superseded = set(old)
        self.resets += 1
        self.cycle += 1
        self.notional = self.position.qty * self.instrument.round_price(price)
        cmds = self._anchor(price)
        return cmds + [self._cancel(cid) for cid in old]

    def _relay_sells(self, cid: str) -> list[Command]:
        """A sell of the previous cycle filled after the RESET had laid the new sells for the
        position before it: the new sells now exceed the position. Re-split them over the same
        units so they equal it again (place-then-cancel); the window keeps its four sells."""
        self._superseded.discard(cid)
        sells = self.orders(SELL)
        sizes = split_qty(self.position.qty, len(sells), self.instrument) if sells else []
        if not sells or min(sizes) <= 0:
            return self.flatten("a sell of the previous cycle filled after the RESET")
        self.warnings.append(f"{self.wallet}: {cid} of the previous cycle filled after the RESET; "
                             f"the sells are re-split over the position {self.position.qty:g}")
        cmds: list[Command] = [self._place_sell(o.unit or 0, q) for o, q in zip(sells, sizes, strict=True)]
        return cmds + [self._cancel(o.client_id) for o in sells]

    def _place_sell(self, u: int, qty: float) -> Command:
        return self._place(SELL, Side.SELL, STOP, qty, self._level(u), unit=u, reduce_only=True)

    def _buy_at(self, u: int, releasing: OrderSpec | None = None) -> Command:
        level = self._level(u)
        qty = self._buy_qty(level, releasing)
        return self._place(BUY, Side.BUY, STOP, qty, level, unit=u)

    def _buy_qty(self, level: float, releasing: OrderSpec | None = None) -> float:
        """The buy fragment at ``level``, never more than the buying power left."""
        usd = self.notional / WINDOW
        if self.params.buy_fragment is BuyFragment.CONTINUOUS:
            usd = (self.notional + self.cycle_realized) / WINDOW
        released = releasing.qty * (releasing.price or level) if releasing is not None else 0.0
        usd = min(usd, self.buying_power(level) + released)
        return max(self.instrument.qty_for_notional(usd, level), min_order_qty(self.instrument, level))

    def _slot_qty(self, spec: OrderSpec, level: float) -> float:
        return min(self._buy_qty(level), self.fit_qty(Side.BUY, level))

    def buying_power(self, price: float) -> float:
        """Quote notional still buyable at ``price``: equity (unrealized included, as a cross
        margin account counts it) × leverage, less the long and the working buys."""
        equity = self.params.allocation + self.equity(price)
        committed = self.position.qty * price + sum(
            o.qty * (o.price or price) for o in self.orders(BUY)
        )
        return max(equity * self.params.leverage - committed, 0.0)
