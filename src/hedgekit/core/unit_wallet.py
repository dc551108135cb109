"""The unit wallet: what the long wallet and the hedge wallet share (SPEC §3, §4)."""

from __future__ import annotations

from dataclasses import dataclass

from hedgekit.core.commands import Command
from hedgekit.core.errors import ParameterError, require_positive
from hedgekit.core.instrument import Instrument
from hedgekit.core.orders import OrderKind, OrderType, Side
from hedgekit.core.strategy import Phase, Strategy
from hedgekit.core.units import UnitGrid, UnitMode, UnitSpec

WINDOW = 4  # orders per window: c±1 … c±4


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


class UnitWallet(Strategy):
    """What the long and hedge wallets share: the opening market buy of N = allocation x
    leverage, the unit grid anchored at the fill (the engine's tracker follows ``grid``), the
    current unit, the last pure phase that names a mixed one, and the RESET count."""

    def __init__(self, wallet: str, instrument: Instrument, params: WalletParams) -> None:
        super().__init__(wallet, instrument)
        params.check_against(instrument)
        self.params = params
        self.notional = params.notional  # N, re-based at every RESET
        self._grid: UnitGrid | None = None
        self._unit = 0
        self._last_pure = Phase.ADVANCE
        self.resets = 0
        self.warnings: list[str] = []  # drained and logged by the engine
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
