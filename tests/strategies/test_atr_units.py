"""ATR units (SPEC §2: U = multiple × ATR at anchor time, fixed until the next RESET) and the
runner's lazy ``AtrUpdated`` delivery."""

from __future__ import annotations

import pytest

from hedgekit.core import AtrUpdated, OrderKind, ParameterError, SetTimer, Timer, UnitMode, UnitSpec
from hedgekit.core.strategy import Phase, Strategy
from hedgekit.engine.driver import PathDriver
from hedgekit.engine.runner import WalletRunner
from hedgekit.engine.walker import MarketWalker
from hedgekit.strategies.long_wallet import LongWallet, LongWalletParams
from hedgekit.venues.sim import SimConfig, SimExchange

from .helpers import INSTRUMENT, units

SELL, BUY = OrderKind.STOP_LOSS, OrderKind.STOP_ENTRY_BUY


class Atr:
    """An ATR source whose value the test sets."""

    def __init__(self, value: float | None) -> None:
        self.value = value

    def value_at(self, ts: int) -> float | None:
        return self.value


def prices(strategy, kind: OrderKind) -> list[float]:
    return sorted(o.price for o in strategy.working.values() if o.kind is kind)


def long_wallet(atr: Atr, multiple: float = 2.5) -> PathDriver:
    params = LongWalletParams(allocation=4000.0, leverage=1.0, unit=UnitSpec(UnitMode.ATR, multiple, atr_period=14))
    return PathDriver(LongWallet("long", INSTRUMENT, params), cash=4000.0, atr=atr)


def test_long_wallet_levels_are_p0_plus_k_times_multiple_of_atr_rederived_at_reset():
    atr = Atr(40.04)
    d = long_wallet(atr)
    s = d.strategy
    d.start(1000.0)
    # U = 2.5 × 40.04 = 100.1 (on the 0.1 tick): sells at P0 - k·U, k = 1..4
    assert s.grid.step == 100.1 and s.grid.anchor == 1000.0
    assert prices(s, SELL) == [599.6, 699.7, 799.8, 899.9]
    assert s.atr == 40.04

    # The ATR moves: the strategy hears it at its next event, but U stays until RESET.
    atr.value = 30.0
    d.to_unit(-1)  # sell @-1 fills, buy placed at 0
    assert s.atr == 30.0
    assert prices(s, SELL) == [599.6, 699.7, 799.8] and prices(s, BUY) == [1000.0]
    assert s.grid.step == 100.1

    d.to_unit(0)  # the buy fills: all buys filled -> RESET at 1000 with U = 2.5 × 30 = 75
    assert s.resets == 1 and s.phase is Phase.ADVANCE
    assert s.grid.anchor == 1000.0 and s.grid.step == 75.0
    assert prices(s, SELL) == [700.0, 775.0, 850.0, 925.0]
    assert units(s, SELL) == [-4, -3, -2, -1]


def test_without_an_atr_the_wallet_refuses_to_start_before_buying():
    d = long_wallet(Atr(None))
    with pytest.raises(ParameterError, match=r"unit\.atr_period.*14 completed bars"):
        d.start(1000.0)
    assert d.venue.fills == [] and d.strategy.working == {}


def test_an_atr_too_small_for_the_tick_is_refused_at_start():
    d = long_wallet(Atr(0.01))
    with pytest.raises(ParameterError, match="smaller than the tick"):
        d.start(1000.0)
    assert d.venue.fills == []


class Spy(Strategy):
    name = "spy"
    wants_atr = True

    def __init__(self) -> None:
        super().__init__("spy", INSTRUMENT)
        self.seen: list = []

    @property
    def phase(self) -> Phase:
        return Phase.ACTIVE

    def start(self, ts: int, price: float) -> list:
        return [SetTimer("a", 120_000), SetTimer("b", 180_000), SetTimer("c", 240_000)]

    def on_event(self, event):
        self.seen.append(event)
        return super().on_event(event)


def test_atr_is_delivered_once_before_start_then_only_changed_and_only_before_another_event():
    atr = Atr(5.0)
    spy = Spy()
    runner = WalletRunner(spy, SimExchange(INSTRUMENT, SimConfig(initial_cash=1000.0)), atr=atr)
    walker = MarketWalker.of(runner)
    walker.start(0, 100.0)
    assert spy.seen == [AtrUpdated(0, 5.0)]

    atr.value = 6.0
    walker.advance(101.0, 60_000)  # nothing happens to the wallet: nothing is delivered
    assert spy.seen == [AtrUpdated(0, 5.0)]
    runner.fire_timers(120_000)  # the changed value comes just before the timer
    assert spy.seen[1:] == [AtrUpdated(120_000, 6.0), Timer(120_000, "a")]
    runner.fire_timers(180_000)  # unchanged: not sent again
    assert spy.seen[3:] == [Timer(180_000, "b")]
    atr.value = None  # no value (yet): nothing sent, the strategy keeps the last one
    runner.fire_timers(240_000)
    assert spy.seen[4:] == [Timer(240_000, "c")] and spy.atr == 6.0


def test_a_strategy_that_does_not_ask_gets_no_atr():
    class Quiet(Spy):
        wants_atr = False

    q = Quiet()
    runner = WalletRunner(q, SimExchange(INSTRUMENT, SimConfig(initial_cash=1000.0)), atr=Atr(5.0))
    MarketWalker.of(runner).start(0, 100.0)
    runner.fire_timers(120_000)
    assert runner.atr is None and q.seen == [Timer(120_000, "a")]


def test_a_reset_on_flat_data_keeps_the_last_unit_and_warns():
    atr = Atr(40.04)
    d = long_wallet(atr)
    s = d.strategy
    d.start(1000.0)
    atr.value = 0.0  # e.g. a run of bars with no range: U would be below the tick
    d.to_unit(-1)
    d.to_unit(0)  # RESET
    assert s.resets == 1 and s.grid.step == 100.1
    assert prices(s, SELL) == [599.6, 699.7, 799.8, 899.9]
    assert d.runner.log.warnings and "unit kept at 100.1" in d.runner.log.warnings[-1][1]
