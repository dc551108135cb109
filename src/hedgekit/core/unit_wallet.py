"""The unit wallet: what the long wallet and the hedge wallet share (SPEC §3, §4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from hedgekit.core.commands import Command
from hedgekit.core.compiled import mypyc_attr
from hedgekit.core.errors import ParameterError, require_positive
from hedgekit.core.events import OrderCancelled, OrderRejected
from hedgekit.core.instrument import Instrument
from hedgekit.core.orders import (
    OPENING_KINDS,
    PROTECTIVE_KINDS,
    OrderKind,
    OrderSpec,
    OrderType,
    Side,
)
from hedgekit.core.strategy import Phase, Strategy
from hedgekit.core.unit_spec import UnitMode, UnitSpec
from hedgekit.core.units import UnitGrid

WINDOW: Final = 4  # orders per window: c±1 … c±4


# A plain class when compiled: __post_init__ names the bad field (hedgekit.core.compiled).
@mypyc_attr(native_class=False)
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


P = TypeVar("P", bound=WalletParams)


@mypyc_attr(allow_interpreted_subclasses=True)  # as Strategy
class UnitWallet(Strategy, Generic[P]):
    """What the long and hedge wallets share: the opening market buy of N = allocation x
    leverage, the unit grid anchored at the fill (the engine's tracker follows ``grid``), the
    current unit, the last pure phase that names a mixed one, the RESET count, and the
    refusal rules of SPEC §4a.

    A window *slot* is a working order or a *deferred* one: an opening order the venue refused
    and that did not fit even re-sized. A deferred slot has no order at the venue (it cannot
    fill) but counts for the phase rules and slides like a working order; it is re-submitted
    at every later unit step or fill while it sits at a window level (c±1 … c±4), as a stop
    when its level is still ahead of the price, at market when the price has passed it.
    """

    def __init__(self, wallet: str, instrument: Instrument, params: P) -> None:
        super().__init__(wallet, instrument)
        params.check_against(instrument)
        self.params = params
        self.notional = params.notional  # N, re-based at every RESET
        self._grid: UnitGrid | None = None
        self._unit = 0
        self._last_pure = Phase.ADVANCE
        self.resets = 0
        self.deferred: dict[str, OrderSpec] = {}  # client id -> the slot's intended order
        self._resized: set[str] = set()  # ids that are already a re-size of a refused order
        self._protect_retried: set[str] = set()  # ids that are already a protective re-send
        self._from_deferred: set[str] = set()  # ids of re-submitted deferred slots
        if params.unit.mode is UnitMode.ATR:
            self.wants_atr = True
            self.atr_period = params.unit.atr_period

    @property
    def cash(self) -> float:
        """The account's margin balance as the venue books it: allocation + realized PnL -
        fees + funding (no unrealized PnL)."""
        return self.params.allocation + self.realized_pnl - self.fees + self.funding

    @property
    def grid(self) -> UnitGrid | None:
        return self._grid

    @property
    def unit(self) -> int:
        return self._unit

    def start(self, ts: int, price: float) -> list[Command]:
        if self.wants_atr:
            # Checked before the opening buy, which would otherwise be left without a grid.
            UnitGrid(price, self.params.unit, self.instrument, self.atr)
        qty = self.instrument.qty_for_notional(self.notional, price)
        if qty <= 0:
            raise ParameterError("allocation", self.params.allocation, f"buys less than one lot at {price:g}")
        return [self._place(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, qty)]

    def _lay_grid(self, price: float) -> None:
        spec = self.params.unit
        atr = self.atr
        if spec.mode is UnitMode.ATR and self._grid is not None:
            step = self.instrument.round_price(spec.value * atr) if atr is not None else 0.0
            if step < self.instrument.tick_size:
                # A RESET on flat data: keep the last unit rather than stop mid-cycle.
                self.warnings.append(
                    f"{self.wallet}: ATR {atr!r} gives a unit below the tick; unit kept at {self._grid.step:g}"
                )
                atr = self._grid.step / spec.value
        self._grid = UnitGrid(price, spec, self.instrument, atr)
        self._unit = 0
        self._last_pure = Phase.ADVANCE

    def _level(self, u: int) -> float:
        if self._grid is None:
            raise RuntimeError(f"{self.wallet}: no grid before the entry fill")
        return self._grid.level(u)

    # -- window slots (working + deferred) --------------------------------------------------
    def slots(self, *kinds: OrderKind) -> list[OrderSpec]:
        """Working and deferred orders of these kinds, lowest unit first."""
        found = self.orders(*kinds)
        if self.deferred:
            found += [o for o in self.deferred.values() if o.kind in kinds]
            found.sort(key=lambda o: o.unit if o.unit is not None else 0)
        return found

    def _has(self, kind: OrderKind, unit: int) -> bool:
        if any(o.kind is kind and o.unit == unit for o in self.working.values()):
            return True
        return any(o.kind is kind and o.unit == unit for o in self.deferred.values())

    def _drop(self, client_id: str) -> list[Command]:
        """Remove a slot: cancel its order at the venue, or forget a deferred one."""
        if self.deferred.pop(client_id, None) is not None:
            return []
        return [self._cancel(client_id)]

    def cancel_all(self) -> list[Command]:
        self.deferred.clear()
        return super().cancel_all()

    def stop(self, reason: str = "") -> list[Command]:
        self.deferred.clear()
        return super().stop(reason)

    # -- refusals (SPEC §4a) -----------------------------------------------------------------
    def _on_rejected(self, spec: OrderSpec, event: OrderRejected) -> list[Command]:
        if spec.kind in PROTECTIVE_KINDS:
            return self._protective_refused(spec, event.reason, self._protect_retried)
        if spec.kind in OPENING_KINDS and spec.unit is not None:
            return self._opening_refused(spec, event.reason, event.price)
        return self._other_refused(spec, event)

    def _on_cancelled(self, spec: OrderSpec, event: OrderCancelled) -> list[Command]:
        # A stop the venue cancelled (Hyperliquid: triggered, and its market order found nothing
        # within its slippage bound after a gap) is refused like a rejected one (SPEC §4a): a
        # protective stop still protecting the position is sent once more, then closed at
        # market; an opening one is re-sent once, then kept deferred at its level.
        q = self.position.qty
        if spec.kind in PROTECTIVE_KINDS and q * spec.side.sign < 0 and not self.instrument.is_zero_qty(q):
            return self._protective_refused(spec, "cancelled by the venue", self._protect_retried)
        if spec.kind in OPENING_KINDS and spec.unit is not None and not self.stopped:
            return self._opening_refused(spec, "cancelled by the venue", None)
        return []

    def _other_refused(self, spec: OrderSpec, event: OrderRejected) -> list[Command]:
        """A refusal of an order outside the window (entry market buy, a close): the wallet
        stops, keeping whatever protects a position it still has."""
        self.warnings.append(f"{self.wallet}: {spec.kind} refused ({event.reason}); wallet stopped")
        return self.stop(f"{spec.kind} refused")

    def fit_qty(self, side: Side, price: float) -> float:
        """Largest lot-rounded size on ``side`` at ``price`` that the venue's cross-margin check
        accepts: the resulting position's initial margin must fit in the equity at ``price``."""
        q0 = self.position.qty
        equity = self.cash + self.position.unrealized(price)
        room = max(equity, 0.0) * self.params.leverage / price  # the largest |position|
        most = room + abs(q0) if q0 * side.sign < 0 else room - abs(q0)
        return self.instrument.floor_qty(max(most, 0.0) * (1 - 1e-9))

    def _opening_refused(self, spec: OrderSpec, reason: str, price: float | None) -> list[Command]:
        """Re-size to what fits now (once), else keep the slot deferred at its level.
        ``price``: where the venue refused the fill (a gap fills beyond the level)."""
        assert spec.unit is not None
        level = self._level(spec.unit)
        if spec.client_id not in self._resized:
            at = level if price is None else (max(price, level) if spec.side is Side.BUY else min(price, level))
            qty = min(spec.qty, self.fit_qty(spec.side, at))
            if qty >= min_order_qty(self.instrument, level):
                place = self._place(spec.kind, spec.side, spec.type, qty, spec.price, unit=spec.unit)
                self._resized.add(place.order.client_id)
                self.warnings.append(
                    f"{self.wallet}: {spec.kind} at unit {spec.unit} refused ({reason}); "
                    f"re-sized {spec.qty:g} -> {qty:g}"
                )
                return [place]
        self.deferred[spec.client_id] = spec
        if spec.client_id in self._from_deferred:
            self._from_deferred.discard(spec.client_id)  # still waiting: reported when deferred
        else:
            self.warnings.append(
                f"{self.wallet}: {spec.kind} at unit {spec.unit} refused ({reason}); "
                f"deferred until it fits"
            )
        return []

    def forget_closed(self, open_ids: set[str]) -> None:
        super().forget_closed(open_ids)
        live = self._known.keys()
        self._resized &= live
        self._protect_retried &= live
        self._from_deferred &= live

    def _defer(self, kind: OrderKind, side: Side, qty: float, u: int) -> None:
        """Add a deferred slot at unit ``u`` (it has no order at the venue)."""
        spec = self._place(kind, side, OrderType.STOP, qty, self._level(u), unit=u).order
        del self.working[spec.client_id]
        self.deferred[spec.client_id] = spec

    def _resubmit_deferred(self) -> list[Command]:
        """Send every deferred slot within c±1 … c±4 that now fits (see the class docstring)."""
        if not self.deferred or self.stopped:
            return []
        cmds: list[Command] = []
        c = self._unit
        for cid, spec in sorted(self.deferred.items(), key=lambda kv: kv[1].unit or 0):
            u = spec.unit
            if u is None or u == c or abs(u - c) > WINDOW:
                continue
            level = self._level(u)
            passed = u < c if spec.side is Side.BUY else u > c
            # Passed: it goes at market, so it is sized at the price it will get.
            at = self.last_price if passed and self.last_price else level
            qty = self._slot_qty(spec, at)
            if qty < min_order_qty(self.instrument, at):
                continue
            del self.deferred[cid]
            otype = OrderType.MARKET if passed else OrderType.STOP
            place = self._place(spec.kind, spec.side, otype, qty, level, unit=u)
            self._resized.add(place.order.client_id)  # already sized to fit: refused, it waits
            self._from_deferred.add(place.order.client_id)
            cmds.append(place)
        return cmds

    def _slot_qty(self, spec: OrderSpec, level: float) -> float:
        """The size a re-submitted deferred slot gets now: its own rule capped by what fits."""
        return min(spec.qty, self.fit_qty(spec.side, level))
