"""The strategy registry: a strategy is one module plus its config model.

The config loader, the backtest, the live engine, warm-up and the report find a strategy here
by its ``strategy:`` name; nothing else names one. The three built-in strategies register
below; another is added with ``register`` (e.g. from a plugin or a test) without an edit
under ``src/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from hedgekit.config import (
    GridHedgeConfig,
    HedgeWalletConfig,
    LongWalletConfig,
    set_wallet_models,
)
from hedgekit.core import snapshot
from hedgekit.core.errors import HedgekitError
from hedgekit.core.instrument import Instrument
from hedgekit.core.strategy import Strategy


@dataclass(frozen=True, slots=True)
class StrategyEntry:
    name: str  # the config's `strategy:` value
    config: type[BaseModel]  # one wallet's settings; fields `strategy`, `name`, `allocation`, `leverage`
    strategy: type[Strategy]
    # (wallet config, instrument, venue.max_leverage) -> a strategy ready to start
    build: Callable[[Any, Instrument, float], Strategy]
    # days of history the strategy needs before its first trade (not traded: no look-ahead)
    warmup_days: Callable[[Any], int] = lambda _w: 0


_ENTRIES: dict[str, StrategyEntry] = {}


def register(entry: StrategyEntry) -> StrategyEntry:
    """Make ``entry`` known to every part of hedgekit (replacing one of the same name)."""
    _ENTRIES[entry.name] = entry
    set_wallet_models([e.config for e in _ENTRIES.values()])
    # Its state may go into checkpoints: its module is trusted to be rebuilt from them.
    snapshot.trust_module(entry.strategy.__module__)
    return entry


def unregister(name: str) -> None:
    """Forget a strategy registered with ``register`` (the built-ins stay)."""
    if name in ("long_wallet", "hedge_wallet", "grid_hedge"):
        raise HedgekitError(f"{name} is built in")
    if _ENTRIES.pop(name, None) is not None:
        set_wallet_models([e.config for e in _ENTRIES.values()])


def entries() -> list[StrategyEntry]:
    return list(_ENTRIES.values())


def lookup(name: str) -> StrategyEntry:
    try:
        return _ENTRIES[name]
    except KeyError:
        raise HedgekitError(f"unknown strategy {name!r}; known: {', '.join(sorted(_ENTRIES))}") from None


def for_wallet(w: Any) -> StrategyEntry:
    """The entry of a validated wallet config."""
    return lookup(w.strategy)


def build_strategy(w: Any, instrument: Instrument, max_leverage: float) -> Strategy:
    return for_wallet(w).build(w, instrument, max_leverage)


# -- the built-in strategies ------------------------------------------------------------------
def _long(w: LongWalletConfig, instrument: Instrument, max_leverage: float) -> Strategy:
    from hedgekit.strategies.long_wallet import BuyFragment, LongWallet, LongWalletParams

    params = LongWalletParams(
        allocation=w.allocation, leverage=w.leverage, unit=w.unit.spec(),
        max_leverage=max_leverage, buy_fragment=BuyFragment(w.buy_fragment),
    )
    return LongWallet(w.name, instrument, params)


def _hedge(w: HedgeWalletConfig, instrument: Instrument, max_leverage: float) -> Strategy:
    from hedgekit.strategies.hedge_wallet import HedgeWallet, HedgeWalletParams

    params = HedgeWalletParams(
        allocation=w.allocation, leverage=w.leverage, unit=w.unit.spec(),
        max_leverage=max_leverage, max_short_notional=w.max_short_notional,
    )
    return HedgeWallet(w.name, instrument, params)


def _grid(w: GridHedgeConfig, instrument: Instrument, _max_leverage: float) -> Strategy:
    from hedgekit.strategies.grid_hedge import GridHedge

    return GridHedge(w.params(instrument.symbol), instrument)


def _grid_warmup(w: GridHedgeConfig) -> int:
    """σ not configured: estimated from the first lookback days of the data."""
    return w.grid.volatility_lookback_days if w.grid.volatility is None else 0


def _register_builtins() -> None:
    from hedgekit.strategies.grid_hedge import GridHedge
    from hedgekit.strategies.hedge_wallet import HedgeWallet
    from hedgekit.strategies.long_wallet import LongWallet

    register(StrategyEntry("long_wallet", LongWalletConfig, LongWallet, _long))
    register(StrategyEntry("hedge_wallet", HedgeWalletConfig, HedgeWallet, _hedge))
    register(StrategyEntry("grid_hedge", GridHedgeConfig, GridHedge, _grid, _grid_warmup))


_register_builtins()
