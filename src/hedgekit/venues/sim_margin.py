"""The simulated account's money (SPEC §6): equity, margin checks and liquidation.

A base class of ``SimExchange`` (the state is the exchange's; it is declared here for the type
checker). One chain, ``SimFaults`` <- ``SimMargin`` <- ``SimExchange``, not mixins: the
compiled build (mypyc) has single inheritance only. Money model:

* ``cash`` is the margin balance: initial cash + realized PnL - fees + funding. Buying does
  not spend cash; the position only ties up margin. ``equity = cash + unrealized PnL``.
* Initial margin of a position is ``notional / leverage``. Cross margin: an order that grows
  the position is accepted when the resulting position's initial margin (at the fill price)
  is <= equity. Isolated margin: the position's margin is ``|qty| * entry / leverage`` and
  it must be <= cash (plus what the fill itself realizes). Fees are not part of the check,
  so a strategy can open exactly ``cash * leverage`` of notional, as on most venues.
* Maintenance margin is ``|qty| * price * maintenance_margin_rate``; see
  ``liquidation_price`` for the closed-form prices.
"""

from __future__ import annotations

from typing import Final

from hedgekit.core.compiled import mypyc_attr
from hedgekit.core.events import Liquidated, VenueEvent
from hedgekit.core.instrument import Instrument
from hedgekit.core.orders import Order, OrderTrigger, Side
from hedgekit.core.position import Position
from hedgekit.venues.sim_config import SimConfig
from hedgekit.venues.sim_faults import SimFaults

LIQUIDATION_ID: Final = "liquidation"
_MONEY_TOL: Final = 1e-9  # relative tolerance of the margin check
_BUY: Final = Side.BUY
_SELL: Final = Side.SELL
_CANCEL: Final = OrderTrigger.CANCEL


@mypyc_attr(allow_interpreted_subclasses=True)  # as SimExchange, which derives from it
class SimMargin(SimFaults):
    instrument: Instrument
    config: SimConfig
    position: Position
    cash: float
    last_price: float | None
    taker_fee: float
    fees_paid: float
    realized_pnl: float
    liquidated: bool
    _fill_rows: list[tuple]
    _cross: bool
    _spot: bool
    _liq_q: float
    _liq_avg: float
    _liq_cash: float
    _liq_price: float | None
    _liquidations: int
    _open: dict[str, Order]

    def _close(
        self, order: Order, trigger: OrderTrigger, ts: int, out: list[VenueEvent], reason: str,
        price: float | None = None,
    ) -> None:
        raise NotImplementedError  # the exchange's (SimExchange._close)

    def equity(self, price: float | None = None) -> float:
        """Cash plus unrealized PnL at ``price`` (default: the last price)."""
        p = self.last_price if price is None else price
        return self.cash + (self.position.unrealized(p) if p is not None else 0.0)

    def initial_margin(self, price: float | None = None) -> float:
        """Margin tied up by the position: cross at ``price``, isolated at its entry price."""
        q = abs(self.position.qty)
        if self._cross:
            p = self.last_price if price is None else price
            return q * (p or 0.0) / self.config.leverage
        return q * self.position.avg_price / self.config.leverage

    def available_margin(self, price: float | None = None) -> float:
        """What a new order may still use: cross equity - margin; isolated cash - margin."""
        base = self.equity(price) if self._cross else self.cash
        return base - self.initial_margin(price)

    def liquidation_price(self) -> float | None:
        """Price at which the position is liquidated, or None (flat, spot, or out of reach).

        Liquidation happens when the collateral backing the position falls to the maintenance
        margin: ``C + q (p - e) = mmr |q| p`` with q the signed qty and e the entry price.
        C is the cash (cross: the whole balance backs the position) or the isolated margin
        ``|q| e / leverage``. Solving for p:  ``p = (C - q e) / (mmr |q| - q)``, i.e.
        long  ``p = (q e - C) / (q (1 - mmr))``,  short ``p = (C + |q| e) / (|q| (1 + mmr))``.
        """
        pos = self.position
        q = pos.qty
        if q == 0 or self._spot:
            return None
        # Hot path (asked at every step of the backtest): memoised on what it depends on,
        # compared field by field (no key tuple to build).
        avg, cash = pos.avg_price, self.cash
        if q == self._liq_q and avg == self._liq_avg and cash == self._liq_cash:
            return self._liq_price
        p = (self._collateral() - q * avg) / (self.config.maintenance_margin_rate * abs(q) - q)
        self._liq_q, self._liq_avg, self._liq_cash = q, avg, cash
        self._liq_price = p if p > 0 else None
        return self._liq_price

    def _fill_problem(self, side: Side, qty: float, price: float) -> str | None:
        """Why a fill of ``qty`` at ``price`` cannot be afforded, or None."""
        pos = self.position
        q0 = pos.qty
        if q0 * side.sign < 0 and qty <= abs(q0):
            return None  # the fill only reduces the position: it frees margin (as below)
        scratch = Position(pos.qty, pos.avg_price, pos.qty_decimals)
        realized = scratch.apply_fill(side, qty, price)
        q1 = scratch.qty
        if self._spot and q1 < 0:
            return f"spot cannot be sold short: selling {qty:g} with a position of {q0:g}"
        if abs(q1) <= abs(q0) and q0 * q1 >= 0:
            return None  # the order only reduces the position: it frees margin
        lev = self.config.leverage
        if self._cross:
            # Cross: the resulting position's initial margin, at the fill price, must fit in
            # the equity at that price (unrealized PnL counts, fees do not).
            required = abs(q1) * price / lev
            available = self.cash + pos.unrealized(price)
        else:
            # Isolated: the resulting position's margin (entry notional / leverage) must fit
            # in the cash, including what this fill realizes when it flips the position.
            required = abs(q1) * scratch.avg_price / lev
            available = self.cash + realized
        if required <= available + _MONEY_TOL * max(required, 1.0):
            return None
        room = max(available, 0.0) * lev / price
        max_qty = room + abs(q0) if q0 * side.sign < 0 else room - abs(q0)
        return (
            f"insufficient margin: the resulting position {q1:g} needs {required:.2f} USD of "
            f"initial margin at {price:g} (leverage {lev:g}) but {available:.2f} USD is "
            f"available ({self.config.margin_mode}); reduce qty to at most "
            f"{self.instrument.floor_qty(max(max_qty, 0.0)):g} or raise the leverage"
        )

    def _collateral(self) -> float:
        """What backs the position: the whole balance (cross) or its isolated margin."""
        if self._cross:
            return self.cash
        return abs(self.position.qty) * self.position.avg_price / self.config.leverage

    def _liquidation_on_path(self, up: bool, target: float) -> float | None:
        q = self.position.qty
        if q == 0 or (q > 0) == up:
            return None  # a long is liquidated on the way down, a short on the way up
        liq = self.liquidation_price()
        if liq is None:
            return None
        return liq if (liq <= target if up else liq >= target) else None

    def _liquidatable_at(self, price: float) -> bool:
        liq = self.liquidation_price()
        if liq is None:
            return False
        return price <= liq if self.position.qty > 0 else price >= liq

    def _liquidate(self, ts: int, price: float, out: list[VenueEvent]) -> None:
        """Close the whole position at ``price``, cancel every order, stop the account."""
        pos = self.position
        q = pos.qty
        if q == 0:
            return
        collateral = self._collateral()
        # The venue never closes the trader beyond the bankruptcy price (collateral = 0,
        # i.e. p = e - C / q): past it the insurance fund takes the loss, not the account.
        bankruptcy = pos.avg_price - collateral / q
        price = max(price, bankruptcy) if q > 0 else min(price, bankruptcy)
        side = _SELL if q > 0 else _BUY
        qty = abs(q)
        realized = pos.apply_fill(side, qty, price)
        fee = qty * price * self.taker_fee
        # An account never owes more than the collateral that backed the position.
        fee = min(fee, max(collateral + realized, 0.0))
        self.cash += realized - fee
        self.fees_paid += fee
        self.realized_pnl += realized
        self._liquidations += 1
        self._fill_rows.append((
            ts, LIQUIDATION_ID, LIQUIDATION_ID, side, qty, price, fee, None, pos.qty,
            self.realized_pnl, f"{LIQUIDATION_ID}#{self._liquidations}", "taker",
        ))
        self.liquidated = True
        out.append(Liquidated(ts, price, q, fee - realized))
        for order in list(self._open.values()):
            self._close(order, _CANCEL, ts, out, "liquidation")
