"""Grid hedge (SPEC §5): a volatility-spaced grid of futures limit orders that hedges a spot
holding, with an aggregate stop loss and take profit on the hedge.

A pure state machine: events in, commands out; no I/O, no clock, no logging. The engine logs
``levels.describe()`` at start and drains ``warnings``.

Vocabulary. The grid is a ladder with a centre ``C`` (the price when it was laid or last
re-centred) and a spacing ``Δ``: level ``k`` is the price ``C + kΔ`` rounded to the tick. The
sell side has ``n`` *rungs* (the buy side likewise, mirrored); a rung is

- *armed*: its opening order (a ``grid_sell``) is working at a level above the price;
- *held*: the opening order filled; its take-back (a ``grid_buy`` one spacing lower, "level
  ``i-1``") is working, or deferred while it cannot be placed;
- *idle*: neither (deferred by the hedge cap, the side of the price, or a rejection).

An armed or idle rung always goes to the nearest *free* level beyond the price (free: no other
rung within a quarter spacing), so at start the rungs sit at ``C + iΔ, i = 1…n``, and a
take-back filling at level ``i-1`` re-arms its rung at level ``i`` again. Re-centring moves the
unfilled rungs to the first free levels around the new price, keeping those already there.

Money-safety choices where the spec is silent (see also the module's tests):

- Exposure cap: for each side, ``position + working non-reduce-only orders that would grow
  |position| on that side`` stays <= ``spot × max_hedge_ratio``; opening rungs are trimmed to
  fit (or skipped), and a rung is moved by *cancel, then place*, because a rung adds risk
  (protective orders, which remove risk, are moved by *place, then cancel*).
- Take-backs are reduce-only for SHORT and LONG, so a late take-back can never flip the hedge.
- No order is sent on the wrong side of the last price: limits strictly away from it, stops
  strictly beyond it. A rung that cannot be placed is deferred and retried on later ticks; a
  stop loss or take profit whose level has already been passed is executed as a reduce-only
  market order instead (the hedge is closed and the grid stops).
- When the grid stops, any hedge left over (a fill that raced a cancel) is closed at market.
"""

from __future__ import annotations

import difflib
import math
from collections import deque
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import cast

import numpy as np

from hedgekit.core import (
    Command,
    Event,
    FundingSettled,
    HedgekitError,
    Instrument,
    OrderCancelled,
    OrderFilled,
    OrderKind,
    OrderRejected,
    OrderSpec,
    OrderType,
    ParameterError,
    Place,
    SetTimer,
    Side,
    Tick,
    Timer,
)
from hedgekit.core.strategy import Phase, Strategy
from hedgekit.core.volatility import DAY_MS, daily_closes, daily_volatility, historical_var

__all__ = [
    "FIELD_PATHS",
    "GridDirection",
    "GridHedge",
    "GridHedgeParams",
    "GridLevels",
    "derive",
    "grid_spacing",
]


class GridDirection(StrEnum):
    SHORT = "SHORT"  # sell rungs above the price: hedges a spot long
    LONG = "LONG"  # buy rungs below the price
    BOTH = "BOTH"


# Where each parameter lives in the YAML config; errors name the field by this path.
FIELD_PATHS: dict[str, str] = {
    "symbol": "symbol",
    "spot_quantity": "spot_quantity",
    "wallet": "wallet",
    "volatility": "grid.volatility",
    "num_levels": "grid.num_levels",
    "direction": "grid.direction",
    "spacing_pct": "grid.spacing_pct",
    "min_price_distance": "grid.min_price_distance",
    "volatility_lookback_days": "grid.volatility_lookback_days",
    "rebalance_interval_seconds": "grid.rebalance_interval_seconds",
    "portfolio_value": "risk.portfolio_value",
    "max_size_pct": "risk.max_size_pct",
    "target_vol": "risk.target_vol",
    "stop_loss_pct": "risk.stop_loss_pct",
    "take_profit_pct": "risk.take_profit_pct",
    "max_hedge_ratio": "risk.max_hedge_ratio",
    "max_hedge_ratio_limit": "risk.max_hedge_ratio_limit",
    "hedge_ratio_band": "risk.hedge_ratio_band",
    "rearm_after_seconds": "risk.rearm_after_seconds",
    "funding_threshold": "risk.funding_threshold",
    "funding_size_factor": "risk.funding_size_factor",
}

_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _is_num(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fail(field_name: str, value: object, problem: str) -> ParameterError:
    return ParameterError(FIELD_PATHS[field_name], value, problem)


@dataclass(frozen=True, slots=True)
class GridHedgeParams:
    """Settings of one grid hedge. Fractions are fractions (0.04 = 4 %), durations seconds."""

    symbol: str
    spot_quantity: float
    volatility: float | None = None  # daily σ; None: the engine estimates it before start
    num_levels: int = 5
    direction: GridDirection = GridDirection.SHORT
    spacing_pct: float | None = None  # Δ = price × spacing_pct instead of price × σ / 2
    min_price_distance: float = 0.0
    volatility_lookback_days: int = 30
    rebalance_interval_seconds: float = 60.0
    portfolio_value: float | None = None  # default: spot_quantity × price at (re)start
    max_size_pct: float = 0.2
    target_vol: float = 0.01
    stop_loss_pct: float | None = None  # default: 2σ, or the 95 % historical VaR
    take_profit_pct: float | None = None  # default: 1.5 × stop loss
    max_hedge_ratio: float = 1.0
    max_hedge_ratio_limit: float = 1.0
    hedge_ratio_band: tuple[float, float] = (0.0, 1.0)
    rearm_after_seconds: float | None = None  # None: stays stopped after a stop / take profit
    funding_threshold: float | None = None  # |funding rate| above which rungs are scaled
    funding_size_factor: float = 1.0
    wallet: str = "grid"

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol.strip():
            raise _fail("symbol", self.symbol, "must be a non-empty symbol such as 'BTCUSDT'")
        if not isinstance(self.wallet, str) or not self.wallet or set(self.wallet) - _ID_CHARS:
            raise _fail(
                "wallet", self.wallet, "use letters, digits and '_' only (it goes into order ids)"
            )
        if not _is_num(self.spot_quantity) or self.spot_quantity <= 0:
            raise _fail(
                "spot_quantity", self.spot_quantity, "must be a positive quantity of coins to hedge"
            )
        if self.volatility is not None and (not _is_num(self.volatility) or self.volatility <= 0):
            raise _fail(
                "volatility",
                self.volatility,
                "must be a positive daily volatility (0.02 = 2 % a day), or omitted to estimate it from data",
            )
        if self.volatility is not None and self.volatility >= 1:
            raise _fail(
                "volatility", self.volatility, "must be a fraction below 1 (0.02 = 2 % a day)"
            )
        if (
            isinstance(self.num_levels, bool)
            or not isinstance(self.num_levels, int)
            or not 1 <= self.num_levels <= 100
        ):
            raise _fail(
                "num_levels", self.num_levels, "must be a whole number of levels between 1 and 100"
            )
        if isinstance(self.direction, str) and not isinstance(self.direction, GridDirection):
            try:
                object.__setattr__(self, "direction", GridDirection(self.direction.strip().upper()))
            except ValueError:
                raise _fail(
                    "direction", self.direction, "must be one of SHORT, LONG, BOTH"
                ) from None
        if not isinstance(self.direction, GridDirection):
            raise _fail("direction", self.direction, "must be one of SHORT, LONG, BOTH")
        if self.spacing_pct is not None and (
            not _is_num(self.spacing_pct) or not 0 < self.spacing_pct < 1
        ):
            raise _fail(
                "spacing_pct",
                self.spacing_pct,
                "must be a fraction of the price in (0, 1), e.g. 0.01",
            )
        if not _is_num(self.min_price_distance) or self.min_price_distance < 0:
            raise _fail(
                "min_price_distance", self.min_price_distance, "must be a price distance >= 0"
            )
        lb = self.volatility_lookback_days
        if isinstance(lb, bool) or not isinstance(lb, int) or lb < 2:
            raise _fail("volatility_lookback_days", lb, "must be a whole number of days >= 2")
        if not _is_num(self.rebalance_interval_seconds) or self.rebalance_interval_seconds <= 0:
            raise _fail(
                "rebalance_interval_seconds", self.rebalance_interval_seconds, "must be > 0 seconds"
            )
        if self.portfolio_value is not None and (
            not _is_num(self.portfolio_value) or self.portfolio_value <= 0
        ):
            raise _fail(
                "portfolio_value", self.portfolio_value, "must be a positive amount, or omitted"
            )
        if not _is_num(self.max_size_pct) or not 0 < self.max_size_pct <= 1:
            raise _fail("max_size_pct", self.max_size_pct, "must be a fraction in (0, 1], e.g. 0.2")
        if not _is_num(self.target_vol) or self.target_vol <= 0:
            raise _fail("target_vol", self.target_vol, "must be a positive fraction, e.g. 0.01")
        for name in ("stop_loss_pct", "take_profit_pct"):
            value = getattr(self, name)
            if value is None:
                continue
            if not _is_num(value) or value <= 0:
                raise _fail(name, value, "must be > 0, a fraction of the entry price (0.04 = 4 %)")
            if value >= 1:
                raise _fail(name, value, "must be a fraction below 1 (0.04 = 4 %)")
        if not _is_num(self.max_hedge_ratio_limit) or self.max_hedge_ratio_limit <= 0:
            raise _fail("max_hedge_ratio_limit", self.max_hedge_ratio_limit, "must be > 0")
        if not _is_num(self.max_hedge_ratio) or self.max_hedge_ratio <= 0:
            raise _fail(
                "max_hedge_ratio", self.max_hedge_ratio, "must be > 0 (1.0 = hedge the whole spot)"
            )
        if self.max_hedge_ratio > self.max_hedge_ratio_limit:
            raise _fail(
                "max_hedge_ratio",
                self.max_hedge_ratio,
                f"must be <= risk.max_hedge_ratio_limit ({self.max_hedge_ratio_limit:g}): a hedge larger "
                "than the spot holding is a net position of its own; lower it, or raise the limit on purpose",
            )
        band = self.hedge_ratio_band
        if (
            not isinstance(band, tuple | list)
            or len(band) != 2
            or not all(_is_num(b) for b in band)
            or not 0 <= band[0] <= band[1]
        ):
            raise _fail(
                "hedge_ratio_band", band, "must be two numbers [low, high] with 0 <= low <= high"
            )
        object.__setattr__(self, "hedge_ratio_band", (float(band[0]), float(band[1])))
        if self.rearm_after_seconds is not None and (
            not _is_num(self.rearm_after_seconds) or self.rearm_after_seconds <= 0
        ):
            raise _fail(
                "rearm_after_seconds",
                self.rearm_after_seconds,
                "must be > 0 seconds, or omitted to stay stopped",
            )
        if self.funding_threshold is not None and (
            not _is_num(self.funding_threshold) or self.funding_threshold < 0
        ):
            raise _fail(
                "funding_threshold",
                self.funding_threshold,
                "must be a funding rate >= 0 (0.0001 = 1 bp)",
            )
        if not _is_num(self.funding_size_factor) or self.funding_size_factor <= 0:
            raise _fail(
                "funding_size_factor",
                self.funding_size_factor,
                "must be > 0 (0.5 halves the rungs)",
            )

    def with_volatility(self, volatility: float) -> GridHedgeParams:
        """A copy with ``volatility`` set (the engine's hook when it estimates σ from data)."""
        return replace(self, volatility=volatility)


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
    raw = price * params.spacing_pct if params.spacing_pct is not None else price * volatility * 0.5
    spacing = instrument.round_price(raw)
    if spacing < params.min_price_distance:
        spacing = instrument.ceil_price(params.min_price_distance)
    return max(spacing, instrument.tick_size)


def _stop_loss_fraction(
    params: GridHedgeParams, volatility: float, returns: np.ndarray | None
) -> float:
    if params.stop_loss_pct is not None:
        return float(params.stop_loss_pct)
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
    ``params.volatility`` (e.g. an estimate from data); ``returns`` (simple daily returns)
    switch the default stop loss from 2σ to the 95 % historical VaR."""
    if not _is_num(price) or price <= 0:
        raise ParameterError("price", price, "must be a positive price")
    sigma = params.volatility if volatility is None else volatility
    if sigma is None:
        raise _fail(
            "volatility",
            None,
            "not given: set grid.volatility, or let the engine estimate it from recent daily returns",
        )
    if not _is_num(sigma) or not 0 < sigma < 1:
        raise _fail("volatility", sigma, "must be a daily volatility in (0, 1) (0.02 = 2 % a day)")
    centre = instrument.round_price(price)
    spacing = grid_spacing(params, instrument, centre, sigma)
    portfolio = (
        params.portfolio_value
        if params.portfolio_value is not None
        else params.spot_quantity * centre
    )
    risk_size = portfolio * min(params.max_size_pct, params.target_vol / sigma)
    raw_step = min(params.spot_quantity / params.num_levels, risk_size / centre)
    step = instrument.floor_qty(raw_step)
    if step < instrument.lot_size / 2:
        raise _fail(
            "spot_quantity",
            params.spot_quantity,
            f"the rung size {raw_step:.8g} rounds down to zero lots (lot {instrument.lot_size:g}); "
            "hedge a larger quantity, use fewer grid.num_levels or raise the risk limits",
        )
    if not instrument.meets_min_notional(step, centre):
        raise _fail(
            "spot_quantity",
            params.spot_quantity,
            f"a rung of {step:g} at {centre:g} is below the instrument's minimum notional "
            f"({instrument.min_notional:g}); hedge a larger quantity or use fewer grid.num_levels",
        )
    stop_loss = _stop_loss_fraction(params, sigma, returns)
    if not 0 < stop_loss < 1:
        raise _fail(
            "stop_loss_pct",
            stop_loss,
            "the derived stop loss is not in (0, 1): set risk.stop_loss_pct",
        )
    take_profit = params.take_profit_pct if params.take_profit_pct is not None else 1.5 * stop_loss
    if not 0 < take_profit < 1:
        raise _fail(
            "take_profit_pct",
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


_OPEN, _EXIT = "open", "exit"
_GRID_KINDS = (OrderKind.GRID_SELL, OrderKind.GRID_BUY)
_PROTECTIVE_REJECTS_BEFORE_FLATTEN = 3


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


class GridHedge(Strategy):
    """The grid hedge state machine. Build it with ``GridHedge(params, instrument)`` or
    ``GridHedge.for_spot_hedge(...)``; the engine calls ``start`` then ``on_event``."""

    name = "grid_hedge"
    wants_ticks = True  # σ is re-estimated from the prices it is shown
    wants_history = True  # σ estimated from the warm-up when not configured

    def __init__(
        self, params: GridHedgeParams, instrument: Instrument, *, returns: np.ndarray | None = None
    ) -> None:
        if instrument.symbol != params.symbol:
            raise _fail(
                "symbol", params.symbol, f"does not match the instrument ({instrument.symbol!r})"
            )
        super().__init__(params.wallet, instrument)
        self.params = params
        self._returns = None if returns is None else np.array(returns, dtype=float)
        if self._returns is not None:
            historical_var(self._returns)  # validate now, not at start
        self._sigma: float | None = params.volatility
        self._levels: GridLevels | None = None
        self._centre = 0.0
        self._spacing = 0.0
        self._rungs: list[_Rung] = []
        self._rung_of: dict[str, tuple[int, int, str]] = {}  # cid -> (cycle, rung index, role)
        self._sl_cid: str | None = None
        self._tp_cid: str | None = None
        self._close_cid: str | None = None
        self._protective_rejects = 0
        self._phase = Phase.STOPPED
        self._started = False
        self._funding_rate = 0.0
        self._ratio_out = False
        # (day, ts, last price of that day), bounded: enough days for one volatility estimate.
        self._closes: deque[tuple[int, int, float]] = deque(
            maxlen=params.volatility_lookback_days + 1
        )

    # -- construction for scripting users ---------------------------------------------------
    @classmethod
    def for_spot_hedge(
        cls,
        *,
        symbol: str,
        spot_quantity: float,
        volatility: float | None = None,
        num_levels: int = 5,
        direction: str | GridDirection = GridDirection.SHORT,
        instrument: Instrument | None = None,
        wallet: str = "grid",
        returns: np.ndarray | None = None,
        **risk: object,
    ) -> GridHedge:
        """Hedge ``spot_quantity`` coins of ``symbol``. ``risk`` takes any other
        ``GridHedgeParams`` field (``stop_loss_pct=0.04``, ``max_hedge_ratio=0.8`` …). Without
        an ``instrument`` a perp with tick 0.01 and lot 0.001 (BTCUSDT-like) is assumed."""
        known = {f.name for f in fields(GridHedgeParams)} - {
            "symbol",
            "spot_quantity",
            "volatility",
            "num_levels",
            "direction",
            "wallet",
        }
        for key in risk:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = (
                    f"; did you mean {close[0]!r}?"
                    if close
                    else f"; known: {', '.join(sorted(known))}"
                )
                raise ParameterError(f"risk.{key}", risk[key], f"unknown setting{hint}")
        params = GridHedgeParams(
            symbol=symbol,
            spot_quantity=spot_quantity,
            volatility=volatility,
            num_levels=num_levels,
            direction=cast(GridDirection, direction),  # a str is parsed in __post_init__
            wallet=wallet,
            **risk,  # type: ignore[arg-type]
        )
        if instrument is None:
            instrument = Instrument(symbol, tick_size=0.01, lot_size=0.001)
        return cls(params, instrument, returns=returns)

    # -- public read-only view ----------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        return Phase.STOPPED if self.stopped else self._phase

    @property
    def levels(self) -> GridLevels | None:
        """The derived numbers of the grid as last laid (``levels.describe()`` for the log)."""
        return self._levels

    @property
    def centre(self) -> float:
        return self._centre

    @property
    def spacing(self) -> float:
        """The current Δ (recomputed at every rebalance)."""
        return self._spacing

    @property
    def volatility(self) -> float | None:
        """The current daily σ estimate."""
        return self._sigma

    @property
    def hedge_ratio(self) -> float:
        return abs(self.position.qty) / self.params.spot_quantity

    @property
    def rungs(self) -> list[OrderSpec]:
        """Working grid orders, lowest price first."""
        return sorted(
            (o for o in self.working.values() if o.kind in _GRID_KINDS),
            key=lambda o: o.price or 0.0,
        )

    @property
    def stop_loss_order(self) -> OrderSpec | None:
        return self.working.get(self._sl_cid) if self._sl_cid else None

    @property
    def take_profit_order(self) -> OrderSpec | None:
        return self.working.get(self._tp_cid) if self._tp_cid else None

    def describe(self, price: float) -> str:
        """The start-up line the engine logs, for a grid laid at ``price``."""
        return derive(
            self.params,
            self.instrument,
            price,
            returns=self._returns,
            volatility=self._current_sigma(),
        ).describe()

    def drain_warnings(self) -> list[str]:
        out, self.warnings = self.warnings, []
        return out

    # -- inputs besides events ---------------------------------------------------------------
    def _referenced_orders(self) -> set[str]:
        ids = {self._sl_cid, self._tp_cid, self._close_cid}
        for rung in self._rungs:
            ids |= {rung.open_cid, rung.exit_cid}
        return {cid for cid in ids if cid is not None}

    def seed_history(self, ts_ms: np.ndarray, close: np.ndarray) -> None:
        """Prices seen before start (any timeframe), for the volatility estimate."""
        close_ts, closes = daily_closes(ts_ms, close)
        for t, px in zip(close_ts.tolist(), closes.tolist(), strict=True):
            self._record(int(t), float(px))

    def set_funding_rate(self, rate: float) -> None:
        """The latest funding rate; rungs placed from now on are scaled by
        ``funding_size_factor`` while ``|rate| > funding_threshold``."""
        if not _is_num(rate):
            raise ParameterError("funding_rate", rate, "must be a finite number")
        self._funding_rate = float(rate)

    def _on_funding(self, event: FundingSettled) -> list[Command]:
        self.set_funding_rate(event.rate)
        return []

    # -- engine entry points -----------------------------------------------------------------
    def start(self, ts: int, price: float) -> list[Command]:
        if self._started:
            raise HedgekitError(f"{self.wallet}: grid hedge already started")
        if not _is_num(price) or price <= 0:
            raise ParameterError("price", price, "must be a positive price")
        self.last_price = float(price)
        self._record(ts, float(price))
        sigma = self._current_sigma()
        if sigma is None:
            raise _fail(
                "volatility",
                None,
                "not given and not enough history to estimate it (3 UTC days of prices needed): "
                "set grid.volatility or seed_history() before start",
            )
        self._sigma = sigma
        cmds = self._lay(ts, float(price))
        self._started = True
        return cmds

    def on_event(self, event: Event) -> list[Command]:
        cmds = super().on_event(event)
        if isinstance(event, OrderFilled) and self._started and not self.stopped:
            cmds += self._after_fill(event.ts)
        return cmds

    # -- hooks ---------------------------------------------------------------------------------
    def _on_tick(self, event: Tick) -> list[Command]:
        self._record(event.ts, event.price)
        if not self._started:
            return []
        if self._phase is Phase.STOPPED:
            return self._ensure_flat()
        return self._sync_protection(event.ts) + self._fill_gaps(include_blocked=False)

    def _on_timer(self, event: Timer) -> list[Command]:
        if not self._started:
            return []
        if event.name == self._timer_name("rebalance") and self._phase is Phase.ACTIVE:
            return self._rebalance(event.ts)
        if event.name == self._timer_name("rearm") and self._phase is Phase.STOPPED:
            return self._rearm(event.ts)
        return []

    def _on_filled(self, spec: OrderSpec, qty: float, price: float, ts: int) -> list[Command]:
        cid = spec.client_id
        if cid == self._close_cid:
            self._close_cid = None
            return []
        if spec.kind in (OrderKind.HEDGE_STOP_LOSS, OrderKind.HEDGE_TAKE_PROFIT):
            if cid in (self._sl_cid, self._tp_cid) and self._phase is Phase.ACTIVE:
                return self._stop_grid(ts, spec.kind)
            self.warnings.append(
                f"{self.wallet}: {spec.kind} {cid} filled ({qty:g} @ {price:g}) after the grid stopped or it was replaced"
            )
            return []
        role = self._rung_of.get(cid)
        if self._phase is not Phase.ACTIVE or role is None:
            return []  # the grid is stopped: _after_fill closes whatever this fill added
        cycle, index, kind = role
        if cycle != self.cycle:
            self.warnings.append(
                f"{self.wallet}: fill of {cid} from an earlier grid ({qty:g} @ {price:g})"
            )
            return []
        rung = self._rungs[index]
        return self._opened(rung, spec, qty) if kind == _OPEN else self._exited(rung, cid, price)

    def _on_rejected(self, spec: OrderSpec, event: OrderRejected) -> list[Command]:
        return self._lost(spec, event.ts, f"rejected ({event.reason})")

    def _on_cancelled(self, spec: OrderSpec, event: OrderCancelled) -> list[Command]:
        return self._lost(spec, event.ts, "cancelled by the venue")

    # -- laying, re-arming, rebalancing --------------------------------------------------------
    def _lay(self, ts: int, price: float) -> list[Command]:
        levels = derive(
            self.params, self.instrument, price, returns=self._returns, volatility=self._sigma
        )
        self._levels = levels
        self._centre = levels.price
        self._spacing = levels.spacing
        n = self.params.num_levels
        direction = self.params.direction
        sides: list[Side] = []
        if direction in (GridDirection.SHORT, GridDirection.BOTH):
            sides.append(Side.SELL)
        if direction in (GridDirection.LONG, GridDirection.BOTH):
            sides.append(Side.BUY)
        # interleaved (sell, buy, sell, …) so that BOTH lays its two sides nearest-first
        self._rungs = [_Rung(side) for _ in range(n) for side in sides]
        self._phase = Phase.ACTIVE
        self._protective_rejects = 0
        cmds = self._fill_gaps(include_blocked=True)
        cmds.append(
            SetTimer(
                self._timer_name("rebalance"), ts + self._ms(self.params.rebalance_interval_seconds)
            )
        )
        return cmds

    def _rearm(self, ts: int) -> list[Command]:
        rearm_ms = self._ms(self.params.rearm_after_seconds or 0)
        if not self.instrument.is_zero_qty(self.position.qty) or self._close_cid in self.working:
            # Still closing the last hedge: try again later rather than lay on top of it.
            return self._ensure_flat() + [SetTimer(self._timer_name("rearm"), ts + rearm_ms)]
        sigma = self._estimate_sigma() or self._sigma
        try:
            derive(
                self.params,
                self.instrument,
                self.last_price or 0.0,
                returns=self._returns,
                volatility=sigma,
            )
        except ParameterError as exc:
            self.warnings.append(f"{self.wallet}: grid not re-armed at {self.last_price}: {exc}")
            return [SetTimer(self._timer_name("rearm"), ts + rearm_ms)]
        self.cycle += 1
        self._sigma = sigma
        return self._lay(ts, float(self.last_price or 0.0))

    def _rebalance(self, ts: int) -> list[Command]:
        """Re-estimate σ, recompute Δ, drop stale take-backs, re-centre the unfilled rungs."""
        price = float(self.last_price or self._centre)
        sigma = self._estimate_sigma() or self._sigma or self._levels_sigma()
        self._sigma = sigma
        self._spacing = grid_spacing(self.params, self.instrument, price, sigma)
        self._centre = self.instrument.round_price(price)
        cmds: list[Command] = []
        for rung in self._rungs:
            rung.blocked = False
            if rung.exit_cid is not None:
                at = self.working[rung.exit_cid].price or 0.0
                side = rung.side.opposite
                if abs(at - price) > 2 * self._spacing or not self._placeable(
                    side, OrderType.LIMIT, at
                ):
                    cmds.append(self._cancel(rung.exit_cid))  # the piece stays in the hedge
                    rung.exit_cid = None
        for side in (Side.SELL, Side.BUY):
            cmds += self._recentre(side)
        cmds += self._fill_gaps(include_blocked=True)
        cmds += self._sync_protection(ts)
        cmds.append(
            SetTimer(
                self._timer_name("rebalance"), ts + self._ms(self.params.rebalance_interval_seconds)
            )
        )
        return cmds

    def _recentre(self, side: Side) -> list[Command]:
        """Cancel the armed rungs of ``side`` that are not on one of the first free levels
        beyond the price (or whose size is no longer right); the freed rungs are placed by
        ``_fill_gaps`` on the levels left. Rungs already in place stay (no churn)."""
        movable = [
            r
            for r in self._rungs
            if r.side is side
            and r.held <= 0
            and not (r.open_cid and self.filled_qty(r.open_cid) > 0)
        ]
        if not movable:
            return []
        mine = {r.open_cid for r in movable if r.open_cid}
        targets = self._free_levels(
            side, self.last_price or self._centre, len(movable), ignore=mine
        )
        tolerance = self._spacing / 4
        keep: set[str] = set()
        for target in targets:
            for rung in movable:
                cid = rung.open_cid
                if cid is None or cid in keep:
                    continue
                spec = self.working[cid]
                if abs((spec.price or 0.0) - target) < tolerance and self._lots(
                    spec.qty
                ) == self._opening_lots(side, freeing=spec):
                    keep.add(cid)
                    break
        cmds: list[Command] = []
        for rung in movable:
            if rung.open_cid is not None and rung.open_cid not in keep:
                cmds.append(self._cancel(rung.open_cid))  # cancel first: a rung adds risk
                rung.open_cid = None
        return cmds

    def _fill_gaps(self, *, include_blocked: bool) -> list[Command]:
        """Place every missing order that can be placed now: take-backs first, then rungs."""
        cmds: list[Command] = []
        for rung in self._rungs:
            if rung.held > 0 and rung.exit_cid is None and rung.exit_price is not None:
                if rung.blocked and not include_blocked:
                    continue
                if abs(rung.exit_price - (self.last_price or 0.0)) <= 2 * self._spacing:
                    place = self._place_exit(rung)
                    if place:
                        cmds.append(place)
        for rung in self._rungs:
            if rung.held <= 0 and rung.open_cid is None and (include_blocked or not rung.blocked):
                place = self._place_opening(rung, self.last_price or self._centre)
                if place:
                    cmds.append(place)
        return cmds

    # -- rung transitions ----------------------------------------------------------------------
    def _opened(self, rung: _Rung, spec: OrderSpec, qty: float) -> list[Command]:
        cmds: list[Command] = []
        if rung.open_cid is not None and rung.open_cid != spec.client_id:
            # A replaced order filled before its cancel landed: the rung is held now.
            cmds.append(self._cancel(rung.open_cid))
        rung.open_cid = None
        rung.open_price = spec.price
        rung.held = self.instrument.round_qty(rung.held + qty)
        if rung.exit_cid is not None:
            cmds.append(self._cancel(rung.exit_cid))  # re-sized below (cancel first: same price)
            rung.exit_cid = None
        else:
            rung.exit_price = self.instrument.round_price(
                (spec.price or 0.0) - rung.sign * self._spacing
            )
        place = self._place_exit(rung)
        if place:
            cmds.append(place)
        return cmds

    def _exited(self, rung: _Rung, cid: str, price: float) -> list[Command]:
        cmds: list[Command] = []
        if rung.exit_cid is not None and rung.exit_cid != cid:
            cmds.append(self._cancel(rung.exit_cid))
        beyond = rung.exit_price if rung.exit_price is not None else price
        rung.exit_cid = None
        rung.held = 0.0
        rung.exit_price = None
        # Re-arm one level beyond the take-back: back where the rung opened, unless re-centred.
        place = self._place_opening(rung, beyond) if rung.open_cid is None else None
        if place:
            cmds.append(place)
        return cmds

    def _lost(self, spec: OrderSpec, ts: int, what: str) -> list[Command]:
        """An order of ours is gone without filling (rejected, or cancelled by the venue)."""
        cid = spec.client_id
        self.warnings.append(
            f"{self.wallet}: {spec.kind} {cid} {spec.side} {spec.qty:g} @ {spec.price} {what}"
        )
        if cid == self._close_cid:
            self._close_cid = None  # retried on the next tick
            return []
        if cid in (self._sl_cid, self._tp_cid):
            if cid == self._sl_cid:
                self._sl_cid = None
            else:
                self._tp_cid = None
            if self._phase is not Phase.ACTIVE:
                return []
            self._protective_rejects += 1
            if self._protective_rejects >= _PROTECTIVE_REJECTS_BEFORE_FLATTEN:
                self.warnings.append(
                    f"{self.wallet}: the hedge's protective orders keep failing: closing the hedge and stopping"
                )
                return self._stop_grid(ts, spec.kind)
            return self._sync_protection(ts)
        role = self._rung_of.get(cid)
        if role is None or role[0] != self.cycle or self._phase is not Phase.ACTIVE:
            return []
        rung = self._rungs[role[1]]
        if role[2] == _OPEN and rung.open_cid == cid:
            rung.open_cid = None
            rung.blocked = True
        elif role[2] == _EXIT and rung.exit_cid == cid:
            rung.exit_cid = None
            rung.blocked = True
        return []

    def _stop_grid(self, ts: int, kind: OrderKind) -> list[Command]:
        """Stop loss or take profit: cancel every order, close what is left, maybe re-arm later."""
        cmds: list[Command] = [
            self._cancel(cid) for cid in list(self.working) if cid != self._close_cid
        ]
        self._rungs = []
        self._sl_cid = self._tp_cid = None
        self._phase = Phase.STOPPED
        cmds += self._ensure_flat(kind)
        if self.params.rearm_after_seconds is not None:
            cmds.append(
                SetTimer(self._timer_name("rearm"), ts + self._ms(self.params.rearm_after_seconds))
            )
        return cmds

    def _ensure_flat(self, kind: OrderKind = OrderKind.HEDGE_STOP_LOSS) -> list[Command]:
        """While stopped, any hedge left (a fill that raced a cancel) is closed at market."""
        if self._close_cid is not None and self._close_cid in self.working:
            return []
        qty = self.position.qty
        if self.instrument.is_zero_qty(qty):
            return []
        side = Side.BUY if qty < 0 else Side.SELL
        place = self._place(
            kind, side, OrderType.MARKET, self.instrument.round_qty(abs(qty)), reduce_only=True
        )
        self._close_cid = place.order.client_id
        return [place]

    def _after_fill(self, ts: int) -> list[Command]:
        """After any fill, partial ones included: ratio report, cap, protection."""
        self._check_ratio()
        if self._phase is not Phase.ACTIVE:
            return self._ensure_flat()
        return self._enforce_cap() + self._sync_protection(ts)

    # -- stop loss and take profit on the whole hedge -------------------------------------------
    def _sync_protection(self, ts: int) -> list[Command]:
        if self._phase is not Phase.ACTIVE:
            return []
        inst = self.instrument
        qty = self.position.qty
        cmds: list[Command] = []
        if inst.is_zero_qty(qty):
            for cid in (self._sl_cid, self._tp_cid):
                if cid is not None and cid in self.working:
                    cmds.append(self._cancel(cid))
            self._sl_cid = self._tp_cid = None
            return cmds
        size = inst.round_qty(abs(qty))
        entry = self.position.avg_price
        levels = self._levels
        if levels is None:
            return cmds
        short = qty < 0
        side = Side.BUY if short else Side.SELL
        sl_raw = entry * (1 + levels.stop_loss_pct) if short else entry * (1 - levels.stop_loss_pct)
        tp_raw = (
            entry * (1 - levels.take_profit_pct) if short else entry * (1 + levels.take_profit_pct)
        )
        # A stop rounds so it never fires before its level; a limit fills on the opposite touch,
        # so a buy limit rounds down and a sell limit up (round_trigger with the side flipped).
        sl_px = inst.round_trigger(sl_raw, is_sell=side is Side.SELL)
        tp_px = inst.round_trigger(tp_raw, is_sell=side is Side.BUY)
        sl = self._keep_or_replace(
            self._sl_cid, OrderKind.HEDGE_STOP_LOSS, side, OrderType.STOP, size, sl_px, cmds
        )
        if sl is None:
            self.warnings.append(
                f"{self.wallet}: price {self.last_price} is already through the hedge stop loss {sl_px}: closing"
            )
            return cmds + self._stop_grid(ts, OrderKind.HEDGE_STOP_LOSS)
        self._sl_cid = sl
        if tp_px <= 0:
            return cmds
        tp = self._keep_or_replace(
            self._tp_cid, OrderKind.HEDGE_TAKE_PROFIT, side, OrderType.LIMIT, size, tp_px, cmds
        )
        if tp is None:
            return cmds + self._stop_grid(ts, OrderKind.HEDGE_TAKE_PROFIT)
        self._tp_cid = tp
        return cmds

    def _keep_or_replace(
        self,
        cid: str | None,
        kind: OrderKind,
        side: Side,
        otype: OrderType,
        qty: float,
        price: float,
        cmds: list[Command],
    ) -> str | None:
        """Keep the working order if it already matches; otherwise place the new one, then
        cancel the old. None when the new one would be on the wrong side of the price."""
        old = self.working.get(cid) if cid is not None else None
        if old is not None and old.side is side and old.qty == qty and old.price == price:
            return cid
        if not self._placeable(side, otype, price):
            return None
        place = self._place(kind, side, otype, qty, price, reduce_only=True)
        cmds.append(place)
        if old is not None and cid is not None:
            cmds.append(self._cancel(cid))
        return place.order.client_id

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
        for _ in range(4 * self.params.num_levels + count + 4):
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
        cap = self.params.spot_quantity * self.params.max_hedge_ratio
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
        threshold = self.params.funding_threshold
        if threshold is not None and abs(self._funding_rate) > threshold:
            return self.instrument.floor_qty(step * self.params.funding_size_factor)
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
                    f"({self.params.spot_quantity * self.params.max_hedge_ratio:g})"
                )
        return cmds

    # -- reporting and volatility -------------------------------------------------------------------
    def _check_ratio(self) -> None:
        ratio = self.hedge_ratio
        low, high = self.params.hedge_ratio_band
        out = ratio < low - 1e-9 or ratio > high + 1e-9
        if out and not self._ratio_out:
            self.warnings.append(
                f"{self.params.symbol} hedge ratio {ratio:.2f} is outside its band [{low:.2f}, {high:.2f}] "
                f"(futures {self.position.qty:g}, spot {self.params.spot_quantity:g})"
            )
        self._ratio_out = out

    def _record(self, ts: int, price: float) -> None:
        day = ts // DAY_MS
        if self._closes and self._closes[-1][0] == day:
            if ts >= self._closes[-1][1]:
                self._closes[-1] = (day, ts, price)
        elif not self._closes or day > self._closes[-1][0]:
            self._closes.append((day, ts, price))
        # older than the last day seen: out of order, ignored

    def _estimate_sigma(self) -> float | None:
        if len(self._closes) < 3:
            return None
        ts = np.array([c[1] for c in self._closes], dtype=np.int64)
        px = np.array([c[2] for c in self._closes], dtype=float)
        try:
            sigma = daily_volatility(ts, px, self.params.volatility_lookback_days)
        except ParameterError:
            return None
        return sigma if math.isfinite(sigma) and sigma > 0 else None

    def _levels_sigma(self) -> float:
        return self._levels.volatility if self._levels else 0.0

    def _current_sigma(self) -> float | None:
        return self._sigma if self._sigma is not None else self._estimate_sigma()

    def _timer_name(self, what: str) -> str:
        return f"{self.name}.{self.wallet}.{what}.{self.cycle}"

    @staticmethod
    def _ms(seconds: float) -> int:
        return int(round(seconds * 1000))
