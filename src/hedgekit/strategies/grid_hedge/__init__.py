"""Grid hedge (SPEC §5): a volatility-spaced grid of futures limit orders that hedges a spot
holding, with an aggregate stop loss and take profit on the hedge.

A pure state machine: events in, commands out; no I/O, no clock, no logging. The engine logs
``levels.describe()`` at start and drains ``warnings``. Modules: ``params`` (the settings, one
validated model that the config file uses too), ``sizing`` (the derived numbers), ``ladder``
(rung placement and the hedge cap) and ``machine`` (the state machine).

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


from hedgekit.strategies.grid_hedge.machine import GridHedge
from hedgekit.strategies.grid_hedge.params import (
    GridDirection,
    GridHedgeParams,
    GridSettings,
    RiskSettings,
)
from hedgekit.strategies.grid_hedge.sizing import GridLevels, derive, grid_spacing

__all__ = [
    "GridDirection",
    "GridHedge",
    "GridHedgeParams",
    "GridLevels",
    "GridSettings",
    "RiskSettings",
    "derive",
    "grid_spacing",
]
