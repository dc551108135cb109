"""The grid's derived numbers (SPEC §5): spacing Δ, rung size, stop loss and take profit."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hedgekit.core import Instrument, ParameterError
from hedgekit.core.volatility import historical_var
from hedgekit.strategies.grid_hedge.params import GridDirection, GridHedgeParams

__all__ = ["GridLevels", "derive", "grid_spacing", "is_num"]


def is_num(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class GridLevels:
    """The derived numbers of one grid (SPEC §5), computed when it is laid."""

    symbol: str
    spot_quantity: float
    price: float  # the centre, on the tick
    volatility: float
    spacing: float  # Δ, on the tick
    step: float  # rung size q, on the lot
    stop_loss_pct: float
    take_profit_pct: float
    portfolio_value: float
    risk_size: float

    def describe(self) -> str:
        return (
            f"Creating hedge grid for {self.symbol} - Spot: {self.spot_quantity!r}, "
            f"Price: {self.price!r}, Grid Spacing: {self.spacing!r}, Position Step: {self.step!r}, "
            f"Stop Loss: {self.stop_loss_pct:.2%}, Take Profit: {self.take_profit_pct:.2%}"
        )


def grid_spacing(
    params: GridHedgeParams, instrument: Instrument, price: float, volatility: float
) -> float:
    """Δ = price × σ / 2 (or price × spacing_pct), at least min_price_distance and one tick."""
    raw = price * params.grid.spacing_pct if params.grid.spacing_pct is not None else price * volatility * 0.5
    spacing = instrument.round_price(raw)
    if spacing < params.grid.min_price_distance:
        spacing = instrument.ceil_price(params.grid.min_price_distance)
    return max(spacing, instrument.tick_size)


def _stop_loss_fraction(
    params: GridHedgeParams, volatility: float, returns: np.ndarray | None
) -> float:
    if params.risk.stop_loss_pct is not None:
        return float(params.risk.stop_loss_pct)
    if returns is None:
        return 2.0 * volatility
    # The hedge loses when the price moves against it: a short on up-moves, a long on down-moves.
    r = np.asarray(returns, dtype=float)
    if params.direction is GridDirection.SHORT:
        var = historical_var(-r)
    elif params.direction is GridDirection.LONG:
        var = historical_var(r)
    else:
        var = max(historical_var(r), historical_var(-r))
    return var if var > 0 else 2.0 * volatility  # a history without losses gives no usable VaR


def derive(
    params: GridHedgeParams,
    instrument: Instrument,
    price: float,
    *,
    returns: np.ndarray | None = None,
    volatility: float | None = None,
) -> GridLevels:
    """The grid's derived parameters at ``price`` (SPEC §5). ``volatility`` overrides
    ``params.grid.volatility`` (e.g. an estimate from data); ``returns`` (simple daily returns)
    switch the default stop loss from 2σ to the 95 % historical VaR."""
    if not is_num(price) or price <= 0:
        raise ParameterError("price", price, "must be a positive price")
    sigma = params.grid.volatility if volatility is None else volatility
    if sigma is None:
        raise ParameterError(
            "grid.volatility",
            None,
            "not given: set grid.volatility, or let the engine estimate it from recent daily returns",
        )
    if not is_num(sigma) or not 0 < sigma < 1:
        raise ParameterError("grid.volatility", sigma, "must be a daily volatility in (0, 1) (0.02 = 2 % a day)")
    centre = instrument.round_price(price)
    spacing = grid_spacing(params, instrument, centre, sigma)
    portfolio = (
        params.risk.portfolio_value
        if params.risk.portfolio_value is not None
        else params.spot_quantity * centre
    )
    risk_size = portfolio * min(params.risk.max_size_pct, params.risk.target_vol / sigma)
    raw_step = min(params.spot_quantity / params.grid.num_levels, risk_size / centre)
    step = instrument.floor_qty(raw_step)
    if step < instrument.lot_size / 2:
        raise ParameterError(
            "spot_quantity",
            params.spot_quantity,
            f"the rung size {raw_step:.8g} rounds down to zero lots (lot {instrument.lot_size:g}); "
            "hedge a larger quantity, use fewer grid.num_levels or raise the risk limits",
        )
    if not instrument.meets_min_notional(step, centre):
        raise ParameterError(
            "spot_quantity",
            params.spot_quantity,
            f"a rung of {step:g} at {centre:g} is below the instrument's minimum notional "
            f"({instrument.min_notional:g}); hedge a larger quantity or use fewer grid.num_levels",
        )
    stop_loss = _stop_loss_fraction(params, sigma, returns)
    if not 0 < stop_loss < 1:
        raise ParameterError(
            "risk.stop_loss_pct",
            stop_loss,
            "the derived stop loss is not in (0, 1): set risk.stop_loss_pct",
        )
    take_profit = params.risk.take_profit_pct if params.risk.take_profit_pct is not None else 1.5 * stop_loss
    if not 0 < take_profit < 1:
        raise ParameterError(
            "risk.take_profit_pct",
            take_profit,
            "the derived take profit (1.5 × stop loss) is not in (0, 1): set risk.take_profit_pct",
        )
    return GridLevels(
        symbol=params.symbol,
        spot_quantity=float(params.spot_quantity),
        price=centre,
        volatility=float(sigma),
        spacing=spacing,
        step=step,
        stop_loss_pct=float(stop_loss),
        take_profit_pct=float(take_profit),
        portfolio_value=float(portfolio),
        risk_size=float(risk_size),
    )
