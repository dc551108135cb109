"""Hedge wallet (SPEC §4): long → cash → short → cash → long, compounding at each RESET.

ADVANCE holds the long with a ``stop_loss_full`` at c-1 and four ``stop_entry_short`` stops at
c-1…c-4 (five orders). When the price drops one unit the full exit and the first short fire
at the same level. Neither is reduce-only, so on a one-way (netting) account the two sells
net to ``-Q + -f`` = a short of exactly one fragment whichever fills first; a reduce-only exit
firing second would be clipped to the remaining long and leave the wallet flat instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from hedgekit.core.commands import Command, SetTimer
from hedgekit.core.compiled import mypyc_attr
from hedgekit.core.errors import ParameterError
from hedgekit.core.events import OrderCancelled, OrderRejected, Timer, UnitChanged
from hedgekit.core.instrument import Instrument
from hedgekit.core.orders import OrderKind, OrderSpec, OrderType, Side
from hedgekit.core.strategy import Phase
from hedgekit.core.unit_wallet import WINDOW, UnitWallet, WalletParams, min_order_qty

FULL: Final = OrderKind.STOP_LOSS_FULL
SHORT: Final = OrderKind.STOP_ENTRY_SHORT
COVER: Final = OrderKind.STOP_LOSS_COVER
ENTRY_KINDS: Final = (OrderKind.MARKET_BUY, OrderKind.MARKET_BUY_FULL)
# Used on every event, so bound once: on Python 3.11 looking a member up on its enum
# class (``Phase.ADVANCE``) costs several times a global lookup.
STOPPED: Final = Phase.STOPPED
RESET: Final = Phase.RESET
STARTING: Final = Phase.STARTING
ADVANCE: Final = Phase.ADVANCE
RETRACEMENT: Final = Phase.RETRACEMENT
DECLINE: Final = Phase.DECLINE
RECOVERY: Final = Phase.RECOVERY
STOP: Final = OrderType.STOP

RESET_RETRY_TIMER: Final = "reset_retry"


# A plain class when compiled, as WalletParams.
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class HedgeWalletParams(WalletParams):
    max_short_notional: float | None = None  # cap on the four short fragments together
    reset_retry_ms: int = 5_000  # first back-off of a refused re-entry; doubles each time
    reset_max_retries: int = 8

    def __post_init__(self) -> None:
        WalletParams.__post_init__(self)
        if self.max_short_notional is not None and not self.max_short_notional > 0:
            raise ParameterError("max_short_notional", self.max_short_notional, "must be > 0 when set")
        if self.reset_retry_ms <= 0:
            raise ParameterError("reset_retry_ms", self.reset_retry_ms, "must be > 0")


@mypyc_attr(allow_interpreted_subclasses=True)  # as Strategy
class HedgeWallet(UnitWallet[HedgeWalletParams]):
    name = "hedge_wallet"

    def __init__(self, wallet: str, instrument: Instrument, params: HedgeWalletParams) -> None:
        super().__init__(wallet, instrument, params)
        self.fragment = self._fragment_usd(self.notional)  # F, USD per short
        self._resetting = False
        self._reset_attempt = 0
        self._reset_price = 0.0

    @property
    def phase(self) -> Phase:
        if self.stopped:
            return STOPPED
        if self._resetting:
            return RESET
        if self._grid is None:
            return STARTING
        full = shorts = covers = 0
        for o in self.working.values():
            kind = o.kind
            if kind is SHORT:
                shorts += 1
            elif kind is FULL:
                full += 1
            elif kind is COVER:
                covers += 1
        if self.deferred:
            shorts += sum(1 for o in self.deferred.values() if o.kind is SHORT)
        if full == 1 and shorts == WINDOW and covers == 0:
            return ADVANCE
        if covers == WINDOW and shorts == 0 and full == 0:
            return DECLINE
        return RETRACEMENT if self._last_pure is ADVANCE else RECOVERY

    # -- events -------------------------------------------------------------------------
    def _on_filled(self, spec: OrderSpec, qty: float, price: float, ts: int) -> list[Command]:
        if spec.kind in ENTRY_KINDS:
            return self._anchor(price)
        if spec.kind is FULL:
            # Normally the short that fired with it places the cover; a reduce-only re-send
            # of a refused exit may have absorbed shorts instead.
            return self._trim_covers()
        if spec.unit is None:
            return []  # a close outside the window (flatten, protective close)
        if spec.kind is SHORT:
            cmds: list[Command] = [self._place_cover(spec.unit + 1, qty)]
            if not self.slots(SHORT):
                self._last_pure = DECLINE
            return cmds + self._trim_covers() + self._resubmit_deferred()
        if spec.kind is COVER:
            if not self.orders(COVER) and self.instrument.is_zero_qty(self.position.qty):
                return self._start_reset(price, ts)
            return [self._place_short(spec.unit - 1), *self._resubmit_deferred()]
        return []

    def _on_unit(self, event: UnitChanged) -> list[Command]:
        previous, self._unit = self._unit, event.unit
        c = event.unit
        phase = self.phase
        # Guarded like the long wallet's slides: delivery order of fill and unit step is free.
        if phase is ADVANCE and c > previous and not self._has(FULL, c - 1):
            full = self.orders(FULL)[0]
            lowest = self.slots(SHORT)[0]
            return [
                self._place_full(c - 1, full.qty),
                self._place_short(c - 1),
                self._cancel(full.client_id),
                *self._drop(lowest.client_id),
                *self._resubmit_deferred(),
            ]
        cmds: list[Command] = []
        if phase is DECLINE and c < previous and not self._has(COVER, c + 1):
            highest = self.orders(COVER)[-1]
            cmds = [self._place_cover(c + 1, highest.qty), self._cancel(highest.client_id)]
        return cmds + self._resubmit_deferred() if self.deferred else cmds

    def _trim_covers(self) -> list[Command]:
        """Covers sum to the short position (SPEC §4). When a short only reduced a long (a
        refused exit re-sent reduce-only), covers beyond the short protect nothing: each
        such cover goes back to being a deferred short one unit below it (SPEC §4a)."""
        covers = self.orders(COVER)
        if not covers or self.orders(FULL):
            return []  # the exit still to fire turns the long into the short they cover
        short = max(-self.position.qty, 0.0)
        excess = sum(c.qty for c in covers) - short
        cmds: list[Command] = []
        for cover in reversed(covers):  # highest first
            if excess < self.instrument.lot_size / 2:
                break
            assert cover.unit is not None
            if cover.qty > excess + self.instrument.lot_size / 2:
                break  # a partly needed cover stays whole: over-protection is safe
            excess -= cover.qty
            u = cover.unit - 1
            self._defer(SHORT, Side.SELL, self._short_qty(self._level(u)), u)
            cmds.append(self._cancel(cover.client_id))
        return cmds

    def _on_cancelled(self, spec: OrderSpec, event: OrderCancelled) -> list[Command]:
        cmds = super()._on_cancelled(spec, event)  # a stop still protecting the short (SPEC §4a)
        if cmds or spec.kind is not COVER or spec.unit is None:
            return cmds
        # The venue expired a cover (reduce-only with nothing left to reduce): its slot lives
        # on as the short below it, deferred.
        self._defer(SHORT, Side.SELL, self._short_qty(self._level(spec.unit - 1)), spec.unit - 1)
        return self._resubmit_deferred()

    def _other_refused(self, spec: OrderSpec, event: OrderRejected) -> list[Command]:
        if spec.kind is OrderKind.MARKET_BUY_FULL:
            return self._retry_later(event.ts, event.reason)
        return super()._other_refused(spec, event)

    def _slot_qty(self, spec: OrderSpec, level: float) -> float:
        return min(self._short_qty(level), self.fit_qty(Side.SELL, level))

    def _on_timer(self, event: Timer) -> list[Command]:
        if event.name == RESET_RETRY_TIMER and self._resetting:
            return [self._market_buy_full()]
        return []

    # -- rules --------------------------------------------------------------------------
    def _fragment_usd(self, notional: float) -> float:
        f = notional / WINDOW
        if self.params.max_short_notional is not None:
            f = min(f, self.params.max_short_notional / WINDOW)
        return f

    def _anchor(self, price: float) -> list[Command]:
        """Long is on: anchor at the fill, lay the full stop and four shorts (ADVANCE)."""
        if self._resetting:
            self._resetting = False
            self.resets += 1
            self.cycle += 1
            self.notional = self.cash * self.params.leverage
            self.fragment = self._fragment_usd(self.notional)
        self._lay_grid(price)
        cmds: list[Command] = [self._place_full(-1, self.position.qty)]
        cmds += [self._place_short(-(i + 1)) for i in range(WINDOW)]
        return cmds

    def _start_reset(self, price: float, ts: int) -> list[Command]:
        """Flat: cancel the remaining shorts and buy back in with all equity × leverage."""
        self._resetting = True
        self._reset_attempt = 0
        self._reset_price = price
        cmds: list[Command] = self.cancel_all()
        return cmds + [self._market_buy_full()]

    def _market_buy_full(self) -> Command:
        # Flat, so the equity is the cash, funding included: the venue's margin check (like
        # Binance's "initial margin + open loss") leaves the fee out, so all of it × leverage
        # passes at the reset price. Each refused attempt asks for 5 % less (slippage, or a
        # venue that also reserves the fee).
        usd = self.cash * self.params.leverage * (0.95**self._reset_attempt)
        qty = self.instrument.qty_for_notional(usd, self._reset_price)
        qty = max(qty, min_order_qty(self.instrument, self._reset_price))
        return self._place(OrderKind.MARKET_BUY_FULL, Side.BUY, OrderType.MARKET, qty)

    def _retry_later(self, ts: int, reason: str) -> list[Command]:
        self._reset_attempt += 1
        if self._reset_attempt > self.params.reset_max_retries:
            self.warnings.append(f"{self.wallet}: re-entry refused {self._reset_attempt} times ({reason}); wallet stopped")
            return self.stop("re-entry refused")
        delay = self.params.reset_retry_ms * 2 ** (self._reset_attempt - 1)
        self.warnings.append(f"{self.wallet}: re-entry refused ({reason}); retry {self._reset_attempt} in {delay / 1000:g}s")
        return [SetTimer(RESET_RETRY_TIMER, ts + delay)]

    def _place_full(self, u: int, qty: float) -> Command:
        # Deliberately NOT reduce-only: see the module docstring.
        return self._place(FULL, Side.SELL, STOP, qty, self._level(u), unit=u)

    def _place_short(self, u: int) -> Command:
        level = self._level(u)
        return self._place(SHORT, Side.SELL, STOP, self._short_qty(level), level, unit=u)

    def _short_qty(self, level: float) -> float:
        return max(self.instrument.qty_for_notional(self.fragment, level), min_order_qty(self.instrument, level))

    def _place_cover(self, u: int, qty: float) -> Command:
        return self._place(COVER, Side.BUY, STOP, qty, self._level(u), unit=u, reduce_only=True)
