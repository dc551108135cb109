"""The grid hedge state machine: events in, commands out (laying, rebalancing, re-arming,
the stop loss and take profit on the whole hedge); rung placement is in ``ladder``."""

from __future__ import annotations

import math
from collections import deque

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
    SetTimer,
    Side,
    Tick,
    Timer,
)
from hedgekit.core.strategy import Phase
from hedgekit.core.volatility import DAY_MS, daily_closes, daily_volatility, historical_var
from hedgekit.strategies.grid_hedge.ladder import _EXIT, _GRID_KINDS, _OPEN, GridLadder, _Rung
from hedgekit.strategies.grid_hedge.params import GridDirection, GridHedgeParams
from hedgekit.strategies.grid_hedge.sizing import GridLevels, derive, grid_spacing, is_num

__all__ = ["GridHedge"]


_PROTECTIVE_REJECTS_BEFORE_FLATTEN = 3


class GridHedge(GridLadder):
    """The grid hedge state machine. Build it with ``GridHedge(params, instrument)`` or
    ``GridHedge.for_spot_hedge(...)``; the engine calls ``start`` then ``on_event``."""

    name = "grid_hedge"
    wants_ticks = True  # σ is re-estimated from the prices it is shown
    wants_history = True  # σ estimated from the warm-up when not configured
    SNAPSHOT_VERSION = 2  # 2: params became one pydantic model with grid/risk sections
    _sl_refused = False  # default for a snapshot written before it existed (same version)

    def __init__(
        self, params: GridHedgeParams, instrument: Instrument, *, returns: np.ndarray | None = None
    ) -> None:
        if instrument.symbol != params.symbol:
            raise ParameterError(
                "symbol", params.symbol, f"does not match the instrument ({instrument.symbol!r})"
            )
        super().__init__(params.wallet, instrument)
        self.params = params
        self._returns = None if returns is None else np.array(returns, dtype=float)
        if self._returns is not None:
            historical_var(self._returns)  # validate now, not at start
        self._sigma: float | None = params.grid.volatility
        self._levels: GridLevels | None = None
        self._centre = 0.0
        self._spacing = 0.0
        self._rungs: list[_Rung] = []
        self._rung_of: dict[str, tuple[int, int, str]] = {}  # cid -> (cycle, rung index, role)
        self._sl_cid: str | None = None
        self._tp_cid: str | None = None
        self._close_cid: str | None = None
        self._protective_rejects = 0
        self._sl_refused = False  # a hedge stop refused once in this grid: the next refusal closes
        self._phase = Phase.STOPPED
        self._started = False
        self._funding_rate = 0.0
        self._ratio_out = False
        # (day, ts, last price of that day), bounded: enough days for one volatility estimate.
        self._closes: deque[tuple[int, int, float]] = deque(
            maxlen=params.grid.volatility_lookback_days + 1
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
        """Hedge ``spot_quantity`` coins of ``symbol``. ``risk`` takes any other setting of
        ``GridSettings`` or ``RiskSettings`` (``stop_loss_pct=0.04``, ``max_hedge_ratio=0.8`` …).
        Without an ``instrument`` a perp with tick 0.01 and lot 0.001 (BTCUSDT-like) is assumed."""
        params = GridHedgeParams.of(
            symbol=symbol, spot_quantity=spot_quantity, wallet=wallet,
            volatility=volatility, num_levels=num_levels, direction=direction, **risk,
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
        if not is_num(rate):
            raise ParameterError("funding_rate", rate, "must be a finite number")
        self._funding_rate = float(rate)

    def _on_funding(self, event: FundingSettled) -> list[Command]:
        self.set_funding_rate(event.rate)
        return []

    # -- engine entry points -----------------------------------------------------------------
    def start(self, ts: int, price: float) -> list[Command]:
        if self._started:
            raise HedgekitError(f"{self.wallet}: grid hedge already started")
        if not is_num(price) or price <= 0:
            raise ParameterError("price", price, "must be a positive price")
        self.last_price = float(price)
        self._record(ts, float(price))
        sigma = self._current_sigma()
        if sigma is None:
            raise ParameterError(
                "grid.volatility",
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
        n = self.params.grid.num_levels
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
        self._sl_refused = False
        cmds = self._fill_gaps(include_blocked=True)
        cmds.append(
            SetTimer(
                self._timer_name("rebalance"), ts + self._ms(self.params.grid.rebalance_interval_seconds)
            )
        )
        return cmds

    def _rearm(self, ts: int) -> list[Command]:
        rearm_ms = self._ms(self.params.risk.rearm_after_seconds or 0)
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
                self._timer_name("rebalance"), ts + self._ms(self.params.grid.rebalance_interval_seconds)
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
            if spec.kind is OrderKind.HEDGE_STOP_LOSS and not self.instrument.is_zero_qty(self.position.qty):
                # SPEC §4a, as the unit wallets: the stop is sent once more (re-sized to the hedge
                # if that changed); refused again in this grid, the hedge is closed at market.
                if self._sl_refused:
                    self.warnings.append(
                        f"{self.wallet}: {spec.kind} at {spec.price} refused twice ({what}); closing the hedge "
                        f"({self.position.qty:g}) at market; grid stopped"
                    )
                    return self._stop_grid(ts, spec.kind)
                self._sl_refused = True
                self.warnings.append(f"{self.wallet}: {spec.kind} at {spec.price} refused ({what}); sent once more")
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
        if self.params.risk.rearm_after_seconds is not None:
            cmds.append(
                SetTimer(self._timer_name("rearm"), ts + self._ms(self.params.risk.rearm_after_seconds))
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

    # -- reporting and volatility -------------------------------------------------------------------
    def _check_ratio(self) -> None:
        ratio = self.hedge_ratio
        low, high = self.params.risk.hedge_ratio_band
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
            sigma = daily_volatility(ts, px, self.params.grid.volatility_lookback_days)
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
