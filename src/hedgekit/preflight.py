"""Checks of a config against the data it is about to run on, before anything runs (SPEC §10:
never hang or balloon; issue 15 item 5). The config alone cannot know the price: these rules
take their bounds from the instrument and the data.

* the data's file name, when it says which pair it holds (freqtrade), names the config's symbol;
* a unit is below the price (a fixed unit of 1e12 is not a unit) and at least two ticks
  (levels are rounded to the tick, so a unit near one tick makes steps of one tick and two);
* the unit steps the price would make over the data, and in its widest bar, stay under a
  limit (each step places and cancels orders: millions of them run for hours and grow);
* the opening position splits into its WINDOW sells of at least one lot each at the first price.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from loguru import logger

from hedgekit.config import UNIT_WALLETS, BacktestConfig, ConfigError
from hedgekit.core.unit_spec import UnitMode
from hedgekit.core.unit_wallet import WINDOW
from hedgekit.core.units import MAX_STEPS_PER_MOVE
from hedgekit.feeds.datadir import check_symbol, iso
from hedgekit.feeds.history import Candles

__all__ = ["MAX_UNIT_STEPS", "MIN_UNIT_TICKS", "check_inputs", "max_unit_steps"]

# Unit steps one wallet may make over its data. Measured: the ETH 1m file of ../shared/data (60k
# bars) at a 0.2 % unit is about 52,000 steps and backtests in 13 s; half a day of BTC 1m at a
# 0.3 USD unit is about 100,000 steps per wallet, and two such wallets took 2.5 min and 1.7 GB.
# The golden cases make at most 43,000. Raise it with HEDGEKIT_MAX_UNIT_STEPS for long histories.
MAX_UNIT_STEPS = 100_000
MIN_UNIT_TICKS = 2


def max_unit_steps() -> int:
    text = os.environ.get("HEDGEKIT_MAX_UNIT_STEPS", "")
    return int(text) if text.strip().isdigit() else MAX_UNIT_STEPS


def check_inputs(cfg: BacktestConfig, candles: Candles, *, funding_file: str | Path | None = None,
                 limit: int | None = None) -> None:
    """Raise ConfigError naming the wallet (or DataError naming the file) for a config that
    cannot run sensibly on ``candles``; ``limit`` is the most unit steps allowed over the data
    (default ``MAX_UNIT_STEPS``, or ``HEDGEKIT_MAX_UNIT_STEPS``)."""
    for path in (candles.path, funding_file):
        if path is not None:
            check_symbol(cfg.instrument.symbol, path)
    if not len(candles):
        return
    limit = max_unit_steps() if limit is None else limit
    for i, w in enumerate(cfg.wallets):
        if isinstance(w, UNIT_WALLETS):
            _unit_checks(f"wallets[{i}] ({w.name})", w, cfg, candles, limit)


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.4g}"


def _unit_checks(name: str, w, cfg: BacktestConfig, c: Candles, limit: int) -> None:
    inst = cfg.instrument
    p0 = float(c.open[0])
    spec = w.unit
    mode = spec.mode
    ranges = c.high - c.low
    # The price path the unit tracker walks: every bar's range plus the jumps between bars.
    jumps = np.abs(c.open[1:] - c.close[:-1])
    if mode is UnitMode.GEOMETRIC:
        unit = p0 * spec.value
        per_bar = np.log(c.high / c.low) / math.log1p(spec.value)
        steps = float(per_bar.sum() + (np.abs(np.log(c.open[1:] / c.close[:-1])).sum() / math.log1p(spec.value)))
    else:
        if mode is UnitMode.FIXED:
            unit = spec.value
        elif mode is UnitMode.PERCENT:
            unit = p0 * spec.value
        else:  # ATR: the mean bar range stands in for the ATR the grid will be laid with
            unit = spec.value * float(ranges.mean())
        per_bar = ranges / unit if unit > 0 else ranges
        steps = float((ranges.sum() + jumps.sum()) / unit) if unit > 0 else math.inf
    what = f"{name}.unit ({mode}, {spec.value:g}"
    what += ")" if mode is UnitMode.FIXED else f" = {_fmt(unit)} at the first price {_fmt(p0)})"
    if unit >= p0:
        raise ConfigError(
            f"{what} is not below the price at the start of the data ({_fmt(p0)}): one step down "
            f"would reach zero; a unit must be below the price, as percent units are below 100 %: "
            f"typical units are 0.2-2 % of it ({_fmt(0.002 * p0)}-{_fmt(0.02 * p0)} here)"
        )
    ticks = unit / inst.tick_size
    if ticks < MIN_UNIT_TICKS and mode is not UnitMode.ATR:  # an ATR unit is known when laid: checked then
        raise ConfigError(
            f"{what} is {ticks:.3g} tick(s) of {inst.tick_size:g}: levels are rounded to the tick, so a unit "
            f"this close to one tick steps by one tick or two at random; use at least {MIN_UNIT_TICKS} ticks "
            f"({_fmt(MIN_UNIT_TICKS * inst.tick_size)})"
        )
    widest = int(np.argmax(per_bar))
    if per_bar[widest] > MAX_STEPS_PER_MOVE:
        raise ConfigError(
            f"{what}: the bar at {iso(int(c.ts[widest]))} (high {_fmt(c.high[widest])}, low "
            f"{_fmt(c.low[widest])}) alone crosses {per_bar[widest]:,.0f} unit levels, above the limit of "
            f"{MAX_STEPS_PER_MOVE:,} per move; use a larger unit"
        )
    if steps > limit:
        need = unit * steps / limit
        raise ConfigError(
            f"{what} implies about {steps:,.0f} unit steps over the {len(c):,} bars of the data, above the "
            f"limit of {limit:,} (each step places and cancels orders and keeps their records: such a run "
            f"takes minutes to hours and gigabytes of memory); use a unit of at least {_fmt(need)} ({need / p0:.3%} of the first price), "
            "less data, or raise the limit with HEDGEKIT_MAX_UNIT_STEPS"
        )
    span = float(c.high.max() - c.low.min())
    if mode is UnitMode.FIXED and unit > span:
        logger.warning(f"{what} is wider than the whole price range of the data ({_fmt(span)}): the price never "
                       "moves one unit, so nothing trades after the opening buy")
    n = w.allocation * w.leverage
    qty = n / p0
    if qty < WINDOW * inst.lot_size * (1 - 1e-9):
        need = WINDOW * inst.lot_size * p0 / w.leverage
        raise ConfigError(
            f"{name}.allocation={w.allocation:g}: N = allocation × leverage = {n:g} USD buys {qty:.6g} at the "
            f"first price {_fmt(p0)}, which cannot be split into the {WINDOW} sells of at least one lot "
            f"({inst.lot_size:g}) each; use an allocation of at least {math.ceil(need):,} (at leverage {w.leverage:g})"
        )
