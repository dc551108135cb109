"""Grid hedge (SPEC §5). The test plays the exchange: it feeds fills, ticks and timers."""

from __future__ import annotations

import heapq
import math
import statistics

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hedgekit.core import (
    Cancel,
    Command,
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
from hedgekit.core.strategy import Phase
from hedgekit.core.volatility import DAY_MS
from hedgekit.strategies.grid_hedge import GridHedge, GridHedgeParams, derive

INST = Instrument("BTCUSDT", tick_size=0.01, lot_size=0.001)
T0 = 1_700_000_000_000
SPEC_PRICE = 95203.05
# SPEC §5: price 95203.05, σ 0.02 -> Δ = 952.03; sell rungs at price + iΔ.
SPEC_SELLS = [96155.08, 97107.11, 98059.14, 99011.17, 99963.20]
SPEC_BUYS = [94251.02, 93298.99, 92346.96, 91394.93, 90442.90]


def make(**kw: object) -> GridHedge:
    base: dict[str, object] = {"symbol": "BTCUSDT", "spot_quantity": 1.0, "volatility": 0.02}
    base.update(kw)
    return GridHedge(GridHedgeParams.of(**base), INST)  # type: ignore[arg-type]


def places(cmds: list[Command]) -> list[OrderSpec]:
    return [c.order for c in cmds if isinstance(c, Place)]


def cancels(cmds: list[Command]) -> list[str]:
    return [c.client_id for c in cmds if isinstance(c, Cancel)]


def timers(cmds: list[Command]) -> list[SetTimer]:
    return [c for c in cmds if isinstance(c, SetTimer)]


def fill(
    g: GridHedge,
    spec: OrderSpec,
    ts: int = T0 + 1000,
    price: float | None = None,
    qty: float | None = None,
    leaves: float = 0.0,
) -> list[Command]:
    px = spec.price if price is None else price
    assert px is not None
    return g.on_event(
        OrderFilled(
            ts,
            spec.client_id,
            f"f{spec.client_id}-{leaves}",
            spec.qty if qty is None else qty,
            px,
            0.0,
            leaves,
        )
    )


def rung_at(g: GridHedge, price: float) -> OrderSpec:
    found = [o for o in g.rungs if o.price == price]
    assert len(found) == 1, f"no single rung at {price}: {[o.price for o in g.rungs]}"
    return found[0]


def shorted(**overrides) -> GridHedge:
    """Started at the SPEC price, its first sell rung filled: a hedged grid with a stop loss."""
    g = make(**overrides)
    g.start(T0, SPEC_PRICE)
    fill(g, rung_at(g, SPEC_SELLS[0]))
    return g


# -- derived parameters ------------------------------------------------------------------------
def test_spec_example_derived_numbers() -> None:
    params = GridHedgeParams.of(symbol="BTCUSDT", spot_quantity=1.0, volatility=0.02, num_levels=5)

    levels = derive(params, INST, SPEC_PRICE)

    assert levels.price == 95203.05
    assert levels.spacing == 952.03
    assert levels.risk_size == pytest.approx(19040.61)  # 95203.05 × min(0.2, 0.01 / 0.02)
    assert levels.step == 0.2  # min(1.0 / 5, 19040.61 / 95203.05)
    assert levels.stop_loss_pct == 0.04
    assert levels.take_profit_pct == 0.06


def test_describe_matches_the_spec_line_exactly() -> None:
    g = GridHedge.for_spot_hedge(symbol="BTCUSDT", spot_quantity=1.0, volatility=0.02)

    assert g.describe(SPEC_PRICE) == (
        "Creating hedge grid for BTCUSDT - Spot: 1.0, Price: 95203.05, Grid Spacing: 952.03, "
        "Position Step: 0.2, Stop Loss: 4.00%, Take Profit: 6.00%"
    )
    g.start(T0, SPEC_PRICE)
    assert g.levels is not None and g.levels.describe() == g.describe(SPEC_PRICE)


def test_spacing_pct_and_min_price_distance() -> None:
    by_pct = derive(
        GridHedgeParams.of(symbol="BTCUSDT", spot_quantity=1.0, volatility=0.02, spacing_pct=0.005),
        INST,
        100000.0,
    )
    floored = derive(
        GridHedgeParams.of(
            symbol="BTCUSDT", spot_quantity=1.0, volatility=0.02, min_price_distance=1500.004
        ),
        INST,
        100000.0,
    )

    assert by_pct.spacing == 500.0
    assert floored.spacing == 1500.01  # at least the minimum, rounded up to the tick


def test_stop_loss_defaults_to_historical_var_when_returns_are_given() -> None:
    returns = np.linspace(-0.05, 0.05, 101)  # 95 % quantile of the up-moves = 0.045
    params = GridHedgeParams.of(symbol="BTCUSDT", spot_quantity=1.0, volatility=0.02)

    levels = derive(params, INST, SPEC_PRICE, returns=returns)

    assert levels.stop_loss_pct == pytest.approx(0.045)
    assert levels.take_profit_pct == pytest.approx(0.0675)


def test_rung_size_capped_by_risk_budget() -> None:
    # σ 0.05: risk = 100000 × min(0.2, 0.01 / 0.05) = 20000 -> 0.2 coins; spot / n = 2.0 / 2 = 1.0
    params = GridHedgeParams.of(
        symbol="BTCUSDT", spot_quantity=2.0, volatility=0.05, num_levels=2, portfolio_value=100000.0
    )

    assert derive(params, INST, 100000.0).step == 0.2


# -- laying the grid ------------------------------------------------------------------------------
def test_start_lays_the_five_sell_rungs() -> None:
    g = make()

    cmds = g.start(T0, SPEC_PRICE)

    orders = places(cmds)
    assert [o.price for o in orders] == SPEC_SELLS
    assert all(o.qty == 0.2 and o.side is Side.SELL and o.type is OrderType.LIMIT for o in orders)
    assert all(o.kind is OrderKind.GRID_SELL and not o.reduce_only for o in orders)
    assert [o.unit for o in orders] == [1, 2, 3, 4, 5]
    assert timers(cmds) == [SetTimer("grid_hedge.grid.rebalance.0", T0 + 60_000)]
    assert g.phase is Phase.ACTIVE


def test_long_lays_mirrored_buy_rungs() -> None:
    g = make(direction="LONG")

    orders = places(g.start(T0, SPEC_PRICE))

    assert [o.price for o in orders] == SPEC_BUYS
    assert all(o.kind is OrderKind.GRID_BUY and o.side is Side.BUY and o.qty == 0.2 for o in orders)
    assert [o.unit for o in orders] == [-1, -2, -3, -4, -5]


def test_both_lays_both_sides() -> None:
    g = make(direction="BOTH")

    orders = places(g.start(T0, SPEC_PRICE))

    assert sorted(o.price for o in orders if o.side is Side.SELL) == SPEC_SELLS
    assert sorted((o.price for o in orders if o.side is Side.BUY), reverse=True) == SPEC_BUYS
    assert len(orders) == 10


def test_long_rung_fill_places_the_sell_back_one_level_up() -> None:
    g = make(direction="LONG")
    g.start(T0, SPEC_PRICE)

    cmds = fill(g, rung_at(g, 94251.02))

    back = [o for o in places(cmds) if o.kind is OrderKind.GRID_SELL]
    assert [(o.price, o.qty, o.reduce_only) for o in back] == [(95203.05, 0.2, True)]
    sl = g.stop_loss_order
    tp = g.take_profit_order
    assert sl is not None and tp is not None
    assert (sl.side, sl.type, sl.price) == (
        Side.SELL,
        OrderType.STOP,
        90480.97,
    )  # 94251.02 × 0.96 = 90480.9792, down
    assert (tp.side, tp.type, tp.price) == (
        Side.SELL,
        OrderType.LIMIT,
        99906.09,
    )  # × 1.06 = 99906.0812, up


# -- rung round trip --------------------------------------------------------------------------------
def test_rung_fill_at_level_2_places_buy_at_level_1_and_its_fill_rearms_level_2() -> None:
    g = make()
    g.start(T0, SPEC_PRICE)
    fill(g, rung_at(g, SPEC_SELLS[0]))  # the price rises through level 1 first

    cmds = fill(g, rung_at(g, SPEC_SELLS[1]), ts=T0 + 2000)

    buy = [o for o in places(cmds) if o.kind is OrderKind.GRID_BUY]
    assert [(o.price, o.qty, o.unit, o.reduce_only) for o in buy] == [(96155.08, 0.2, 1, True)]
    assert g.position.qty == pytest.approx(-0.4)

    cmds = fill(g, buy[0], ts=T0 + 3000)

    rearmed = [o for o in places(cmds) if o.kind is OrderKind.GRID_SELL]
    assert [(o.price, o.qty, o.unit) for o in rearmed] == [(97107.11, 0.2, 2)]
    assert g.position.qty == pytest.approx(-0.2)
    assert sorted(o.price for o in g.rungs if o.side is Side.SELL) == SPEC_SELLS[1:]


# -- stop loss and take profit ---------------------------------------------------------------------
def test_protection_after_one_and_after_two_rung_fills() -> None:
    g = make()
    g.start(T0, SPEC_PRICE)

    cmds = fill(g, rung_at(g, SPEC_SELLS[0]))

    sl, tp = g.stop_loss_order, g.take_profit_order
    assert sl is not None and tp is not None
    # entry 96155.08: stop 96155.08 × 1.04 = 100001.2832 -> up to 100001.29; TP × 0.94 = 90385.7752 -> down
    assert (sl.kind, sl.side, sl.type, sl.qty, sl.price, sl.reduce_only) == (
        OrderKind.HEDGE_STOP_LOSS,
        Side.BUY,
        OrderType.STOP,
        0.2,
        100001.29,
        True,
    )
    assert (tp.kind, tp.side, tp.type, tp.qty, tp.price, tp.reduce_only) == (
        OrderKind.HEDGE_TAKE_PROFIT,
        Side.BUY,
        OrderType.LIMIT,
        0.2,
        90385.77,
        True,
    )
    assert len(places(cmds)) == 3 and cancels(cmds) == []
    old = (sl.client_id, tp.client_id)

    cmds = fill(g, rung_at(g, SPEC_SELLS[1]), ts=T0 + 2000)

    sl, tp = g.stop_loss_order, g.take_profit_order
    assert sl is not None and tp is not None
    # entry (96155.08 + 97107.11) / 2 = 96631.095: 100496.3388 -> 100496.34; 90833.2293 -> 90833.22
    assert (sl.qty, sl.price, tp.qty, tp.price) == (0.4, 100496.34, 0.4, 90833.22)
    # place the new one, then cancel the old one
    kinds = [
        (type(c).__name__, c.order.kind if isinstance(c, Place) else c.client_id)
        for c in cmds
        if isinstance(c, Place | Cancel)
    ]
    assert kinds[1:] == [
        ("Place", OrderKind.HEDGE_STOP_LOSS),
        ("Cancel", old[0]),
        ("Place", OrderKind.HEDGE_TAKE_PROFIT),
        ("Cancel", old[1]),
    ]


def test_protection_shrinks_when_a_take_back_fills_and_goes_when_flat() -> None:
    g = shorted()
    fill(g, rung_at(g, SPEC_SELLS[1]))

    fill(g, rung_at(g, 96155.08))  # take-back of level 2

    sl = g.stop_loss_order
    assert sl is not None and sl.qty == 0.2
    assert sl.price == 100496.34  # the average entry of what is left is unchanged

    cmds = fill(g, rung_at(g, SPEC_PRICE))  # take-back of level 1: flat

    assert g.stop_loss_order is None and g.take_profit_order is None
    assert len(cancels(cmds)) == 2


def test_partial_fill_is_protected_at_once() -> None:
    g = make()
    g.start(T0, SPEC_PRICE)
    rung = rung_at(g, SPEC_SELLS[0])

    cmds = fill(g, rung, qty=0.1, leaves=0.1)

    assert [(o.kind, o.qty) for o in places(cmds)] == [
        (OrderKind.HEDGE_STOP_LOSS, 0.1),
        (OrderKind.HEDGE_TAKE_PROFIT, 0.1),
    ]


def _five_rungs_filled(g: GridHedge) -> None:
    g.start(T0, SPEC_PRICE)
    for i, price in enumerate(SPEC_SELLS):
        fill(g, rung_at(g, price), ts=T0 + 1000 * (i + 1))


def test_stop_loss_fill_cancels_every_grid_order_and_stops() -> None:
    g = make()
    _five_rungs_filled(g)
    sl = g.stop_loss_order
    assert sl is not None and sl.qty == 1.0
    assert sl.price == 101981.51  # average 98059.14 × 1.04 = 101981.5056, rounded up
    working_before = set(g.working) - {sl.client_id}

    cmds = fill(g, sl, ts=T0 + 10_000)

    assert set(cancels(cmds)) == working_before  # 5 take-backs and the take profit
    assert places(cmds) == [] and timers(cmds) == []
    assert g.phase is Phase.STOPPED and g.working == {} and g.position.qty == 0
    assert g.on_event(Tick(T0 + 20_000, 90000.0)) == []
    assert g.on_event(Timer(T0 + 60_000, "grid_hedge.grid.rebalance.0")) == []


def test_take_profit_fill_cancels_every_grid_order_and_stops() -> None:
    g = shorted()
    tp = g.take_profit_order
    assert tp is not None

    # a gap down through the take-back and the take profit; the exchange fires the TP first
    cmds = fill(g, tp, ts=T0 + 5000)

    assert len(cancels(cmds)) == 6  # 4 sells, the take-back, the stop loss
    assert g.phase is Phase.STOPPED and g.working == {} and g.position.qty == 0


def test_rearm_after_stop_around_the_current_price() -> None:
    g = make(rearm_after_seconds=300)
    _five_rungs_filled(g)
    sl = g.stop_loss_order
    assert sl is not None

    cmds = fill(g, sl, ts=T0 + 10_000)

    assert timers(cmds) == [SetTimer("grid_hedge.grid.rearm.0", T0 + 310_000)]
    g.on_event(Tick(T0 + 100_000, 101500.0))

    cmds = g.on_event(Timer(T0 + 310_000, "grid_hedge.grid.rearm.0"))

    # Δ = 101500 × 0.02 / 2 = 1015; q = min(1 / 5, 101500 × 0.2 / 101500) = 0.2; a new cycle
    orders = places(cmds)
    assert [o.price for o in orders] == [102515.0, 103530.0, 104545.0, 105560.0, 106575.0]
    assert all(o.qty == 0.2 and o.client_id.startswith("hk-grid-1-") for o in orders)
    assert timers(cmds) == [SetTimer("grid_hedge.grid.rebalance.1", T0 + 370_000)]
    assert g.phase is Phase.ACTIVE


def test_stop_already_passed_when_the_hedge_grows_closes_at_market() -> None:
    g = shorted()

    # level 2 reported at a gap price: entry 100577.54, stop 104600.64 < last price 105000
    cmds = fill(g, rung_at(g, SPEC_SELLS[1]), price=105000.0, ts=T0 + 2000)

    market = [o for o in places(cmds) if o.type is OrderType.MARKET]
    assert [(o.side, o.qty, o.reduce_only) for o in market] == [(Side.BUY, 0.4, True)]
    assert g.phase is Phase.STOPPED
    assert set(g.working) == {market[0].client_id}
    assert any("stop loss" in w for w in g.drain_warnings())


# -- the hedge cap ------------------------------------------------------------------------------------
def test_rungs_are_trimmed_to_the_hedge_cap() -> None:
    g = make(max_hedge_ratio=0.5)

    orders = places(g.start(T0, SPEC_PRICE))

    assert [(o.price, o.qty) for o in orders] == [(96155.08, 0.2), (97107.11, 0.2), (98059.14, 0.1)]

    fill(g, rung_at(g, SPEC_SELLS[0]))
    cmds = fill(g, rung_at(g, SPEC_PRICE))  # take-back fills: level 1 re-armed within the cap

    assert [(o.price, o.qty) for o in places(cmds)] == [(96155.08, 0.2)]


def test_funding_rate_beyond_threshold_scales_new_rungs() -> None:
    g = make(funding_threshold=0.0005, funding_size_factor=0.5)
    g.set_funding_rate(-0.001)

    orders = places(g.start(T0, SPEC_PRICE))

    assert {o.qty for o in orders} == {0.1}


def test_hedge_ratio_and_band_warning() -> None:
    g = make(hedge_ratio_band=(0.0, 0.3))
    g.start(T0, SPEC_PRICE)
    fill(g, rung_at(g, SPEC_SELLS[0]))
    assert g.hedge_ratio == pytest.approx(0.2) and g.warnings == []

    fill(g, rung_at(g, SPEC_SELLS[1]))
    fill(g, rung_at(g, SPEC_SELLS[2]))

    assert g.hedge_ratio == pytest.approx(0.6)
    assert len(g.warnings) == 1 and "outside its band" in g.warnings[0]


def test_rejected_rung_is_deferred_to_the_next_rebalance() -> None:
    g = make()
    g.start(T0, SPEC_PRICE)
    rung = rung_at(g, SPEC_SELLS[2])

    g.on_event(OrderRejected(T0 + 1, rung.client_id, "margin"))

    assert places(g.on_event(Tick(T0 + 2, SPEC_PRICE))) == []
    cmds = g.on_event(Timer(T0 + 60_000, "grid_hedge.grid.rebalance.0"))
    assert [(o.price, o.qty) for o in places(cmds)] == [(98059.14, 0.2)]


def test_stop_loss_cancelled_by_the_venue_is_replaced() -> None:
    g = shorted()
    sl = g.stop_loss_order
    assert sl is not None

    cmds = g.on_event(OrderCancelled(T0 + 5, sl.client_id))

    assert [(o.kind, o.price, o.qty) for o in places(cmds)] == [
        (OrderKind.HEDGE_STOP_LOSS, 100001.29, 0.2)
    ]


def test_a_stop_loss_refused_again_closes_the_hedge_at_market_and_stops_the_grid() -> None:
    """SPEC §4a as the unit wallets: sent once more, refused again -> closed at market at once."""
    g = shorted()
    first = g.stop_loss_order
    assert first is not None
    again = places(g.on_event(OrderCancelled(T0 + 5, first.client_id)))[0]
    working = {o.client_id for o in g.working.values()} - {again.client_id}  # rungs, take-back, take profit

    cmds = g.on_event(OrderRejected(T0 + 6, again.client_id, "invalid order"))

    assert [(o.kind, o.side, o.type, o.qty, o.reduce_only) for o in places(cmds)] == [
        (OrderKind.HEDGE_STOP_LOSS, Side.BUY, OrderType.MARKET, 0.2, True)
    ]
    assert set(cancels(cmds)) == working and len(working) == 6
    assert g.phase is Phase.STOPPED and g.stop_loss_order is None
    assert [w.split(": ", 1)[1] for w in g.warnings if " at 100001.29 refused" in w] == [
        "hedge_stop_loss at 100001.29 refused (cancelled by the venue); sent once more",
        "hedge_stop_loss at 100001.29 refused twice (rejected (invalid order)); closing the hedge (-0.2) at market; "
        "grid stopped",
    ]


# -- rebalance ---------------------------------------------------------------------------------------
def test_rebalance_recentres_with_a_new_spacing() -> None:
    day0 = 19_700 * DAY_MS
    noon = DAY_MS // 2
    g = make()
    g.start(day0 + noon, 100000.0)  # Δ 1000, sells 101000 … 105000
    old = {o.client_id for o in g.rungs}
    for day, price in ((1, 98000.0), (2, 99000.0), (3, 97000.0)):
        assert g.on_event(Tick(day0 + day * DAY_MS + noon, price)) == []

    cmds = g.on_event(Timer(day0 + 3 * DAY_MS + noon, "grid_hedge.grid.rebalance.0"))

    sigma = statistics.stdev([math.log(98 / 100), math.log(99 / 98), math.log(97 / 99)])
    assert g.volatility == pytest.approx(sigma) and sigma == pytest.approx(0.0175853, abs=1e-7)
    assert g.spacing == 852.89  # 97000 × 0.0175853 / 2 = 852.888…
    assert set(cancels(cmds)) == old
    new = places(cmds)
    assert [(o.price, o.qty) for o in new] == [
        (97852.89, 0.2),
        (98705.78, 0.2),
        (99558.67, 0.2),
        (100411.56, 0.2),
        (101264.45, 0.2),
    ]
    last_cancel = max(i for i, c in enumerate(cmds) if isinstance(c, Cancel))
    first_place = min(i for i, c in enumerate(cmds) if isinstance(c, Place))
    assert last_cancel < first_place  # rungs add risk: cancel first, then place
    assert timers(cmds) == [
        SetTimer("grid_hedge.grid.rebalance.0", day0 + 3 * DAY_MS + noon + 60_000)
    ]


def test_rebalance_without_a_move_changes_nothing() -> None:
    g = make()
    g.start(T0, SPEC_PRICE)

    cmds = g.on_event(Timer(T0 + 60_000, "grid_hedge.grid.rebalance.0"))

    assert [type(c) for c in cmds] == [SetTimer]


def test_rebalance_drops_a_take_back_more_than_two_spacings_away_and_restores_it() -> None:
    g = make(num_levels=1, max_size_pct=1.0, target_vol=0.02)  # one rung of 1.0 at 101000
    g.start(T0, 100000.0)
    fill(g, rung_at(g, 101000.0))
    take_back = rung_at(g, 100000.0)
    g.on_event(Tick(T0 + 2000, 103000.0))

    cmds = g.on_event(Timer(T0 + 60_000, "grid_hedge.grid.rebalance.0"))

    # Δ = 103000 × 0.01 = 1030: the take-back is 3000 > 2Δ away
    assert cancels(cmds) == [take_back.client_id]
    assert [o for o in places(cmds) if o.kind in (OrderKind.GRID_BUY, OrderKind.GRID_SELL)] == []
    assert g.position.qty == -1.0  # the hedge stays on, still protected
    assert g.stop_loss_order is not None

    cmds = g.on_event(Tick(T0 + 70_000, 101500.0))  # back within 2Δ

    assert [(o.price, o.qty, o.side) for o in places(cmds)] == [(100000.0, 1.0, Side.BUY)]


def test_rebalance_keeps_rungs_in_place_and_skips_the_level_of_a_take_back() -> None:
    # σ tiny, so Δ is the 1000 minimum whatever the price: the ladder only moves with the centre
    g = make(direction="BOTH", volatility=0.001, min_price_distance=1000.0)
    g.start(T0, 100000.0)
    fill(g, rung_at(g, 101000.0))  # short rung 1 held; its take-back buys at 100000
    before = {o.client_id for o in g.rungs}

    cmds = g.on_event(Timer(T0 + 60_000, "grid_hedge.grid.rebalance.0"))

    # Re-centred on 101000: the sells at 102000 … 105000 and the buys at 99000 … 95000 are
    # already on the first free levels (100000 is taken by the take-back): nothing moves.
    assert [type(c) for c in cmds] == [SetTimer]
    assert g.centre == 101000.0
    assert {o.client_id for o in g.rungs} == before
    prices = [o.price for o in g.rungs]
    assert len(prices) == len(set(prices)) == 10


# -- settings ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"num_levels": 0}, "grid.num_levels"),
        ({"volatility": -0.02}, "grid.volatility"),
        ({"take_profit_pct": 0.0}, "risk.take_profit_pct"),
        ({"take_profit_pct": -0.06}, "risk.take_profit_pct"),
        ({"max_hedge_ratio": 1.5}, "risk.max_hedge_ratio"),
        ({"spot_quantity": 0}, "spot_quantity"),
        ({"direction": "SIDEWAYS"}, "grid.direction"),
        ({"hedge_ratio_band": (0.8, 0.2)}, "risk.hedge_ratio_band"),
    ],
)
def test_bad_settings_name_the_field(changes: dict[str, object], field: str) -> None:
    kwargs: dict[str, object] = {"symbol": "BTCUSDT", "spot_quantity": 1.0, "volatility": 0.02}
    kwargs.update(changes)

    with pytest.raises(ParameterError) as err:
        GridHedgeParams.of(**kwargs)  # type: ignore[arg-type]

    assert err.value.name == field
    assert str(err.value).startswith(f"{field}=")


def test_max_hedge_ratio_above_one_needs_a_raised_limit() -> None:
    params = GridHedgeParams.of(
        symbol="BTCUSDT",
        spot_quantity=1.0,
        volatility=0.02,
        max_hedge_ratio=1.5,
        max_hedge_ratio_limit=2.0,
    )
    assert params.risk.max_hedge_ratio == 1.5


def test_for_spot_hedge_rejects_unknown_settings_with_a_hint() -> None:
    with pytest.raises(ParameterError, match="did you mean 'stop_loss_pct'") as err:
        GridHedge.for_spot_hedge(
            symbol="BTCUSDT", spot_quantity=1.0, volatility=0.02, stop_los_pct=0.04
        )
    assert err.value.name == "risk.stop_los_pct"


def test_missing_volatility_is_estimated_from_seeded_history_or_refused() -> None:
    g = GridHedge.for_spot_hedge(symbol="BTCUSDT", spot_quantity=1.0)
    with pytest.raises(ParameterError) as err:
        g.start(T0, 100000.0)
    assert err.value.name == "grid.volatility"

    day0 = 19_700 * DAY_MS
    g = GridHedge.for_spot_hedge(symbol="BTCUSDT", spot_quantity=1.0)
    g.seed_history(
        np.array([day0, day0 + DAY_MS, day0 + 2 * DAY_MS]), np.array([100000.0, 102000.0, 99000.0])
    )
    g.start(day0 + 3 * DAY_MS, 100000.0)
    expected = statistics.stdev([math.log(102 / 100), math.log(99 / 102), math.log(100 / 99)])
    assert g.volatility == pytest.approx(expected)


# -- property: random price paths against a simulated exchange -----------------------------------------
class Exchange:
    """Minimal exchange: limits fill when touched, stops when crossed (at their price), market
    orders at once; reduce-only orders never grow or flip the position. Checks the invariants."""

    def __init__(self, g: GridHedge, price: float, ts: int) -> None:
        self.g = g
        self.price = price
        self.ts = ts
        self.lot = g.instrument.lot_size
        self.cap = math.floor(g.params.spot_quantity * g.params.risk.max_hedge_ratio / self.lot + 1e-9)
        self.book: dict[str, OrderSpec] = {}
        self.pos = 0  # lots
        self.ids: set[str] = set()
        self.timers: list[tuple[int, int, str]] = []
        self.n = 0

    def lots(self, qty: float) -> int:
        return round(qty / self.lot)

    def apply(self, cmds: list[Command]) -> None:
        markets: list[OrderSpec] = []
        for cmd in cmds:
            if isinstance(cmd, Place):
                o = cmd.order
                assert o.client_id not in self.ids, f"client id reused: {o.client_id}"
                self.ids.add(o.client_id)
                if o.type is OrderType.LIMIT:
                    assert o.price is not None
                    ok = o.price < self.price if o.side is Side.BUY else o.price > self.price
                    assert ok, f"limit {o} on the wrong side of {self.price}"
                elif o.type is OrderType.STOP:
                    assert o.price is not None
                    ok = o.price > self.price if o.side is Side.BUY else o.price < self.price
                    assert ok, f"stop {o} on the wrong side of {self.price}"
                if o.kind in (OrderKind.GRID_BUY, OrderKind.GRID_SELL):
                    same = [
                        b
                        for b in self.book.values()
                        if b.kind in (OrderKind.GRID_BUY, OrderKind.GRID_SELL)
                        and b.price == o.price
                    ]
                    assert not same, f"two rungs at {o.price}"
                self.book[o.client_id] = o
                if o.type is OrderType.MARKET:
                    markets.append(o)
            elif isinstance(cmd, Cancel):
                assert cmd.client_id in self.book, f"cancel of unknown {cmd.client_id}"
                del self.book[cmd.client_id]
            else:
                self.n += 1
                heapq.heappush(self.timers, (cmd.ts, self.n, cmd.name))
        self.check_exposure()
        for o in markets:
            if o.client_id in self.book:
                self.fill(o, self.price)

    def check_exposure(self) -> None:
        buys = sum(
            self.lots(o.qty) for o in self.book.values() if o.side is Side.BUY and not o.reduce_only
        )
        sells = sum(
            self.lots(o.qty)
            for o in self.book.values()
            if o.side is Side.SELL and not o.reduce_only
        )
        assert self.pos + buys <= self.cap and -self.pos + sells <= self.cap, (
            "worst case beyond the cap"
        )

    def fill(self, o: OrderSpec, price: float) -> None:
        del self.book[o.client_id]
        qty = self.lots(o.qty)
        sign = 1 if o.side is Side.BUY else -1
        if o.reduce_only:
            if self.pos == 0 or (self.pos > 0) == (sign > 0):
                self.apply(self.g.on_event(OrderRejected(self.ts, o.client_id, "reduce only")))
                return
            qty = min(qty, abs(self.pos))
        self.pos += sign * qty
        assert abs(self.pos) <= self.cap, f"hedge {self.pos} lots beyond the cap {self.cap}"
        self.n += 1
        self.price = price
        self.apply(
            self.g.on_event(
                OrderFilled(self.ts, o.client_id, f"x{self.n}", qty * self.lot, price, 0.0)
            )
        )
        assert self.g.instrument.round_qty(self.g.position.qty) == pytest.approx(
            self.pos * self.lot
        )

    def next_fill(self, target: float) -> OrderSpec | None:
        up = target > self.price
        hits = []
        for o in self.book.values():
            if o.type is OrderType.MARKET or o.price is None:
                continue
            rises = (o.side is Side.SELL) == (o.type is OrderType.LIMIT)  # sell limit / buy stop
            crossed = self.price < o.price <= target if up else target <= o.price < self.price
            if crossed and rises == up:
                hits.append(o)
        if not hits:
            return None
        return min(hits, key=lambda o: abs((o.price or 0.0) - self.price))

    def run_timers(self, now: int) -> None:
        while self.timers and self.timers[0][0] <= now:
            ts, _, name = heapq.heappop(self.timers)
            self.ts = ts
            self.apply(self.g.on_event(Timer(ts, name)))

    def move(self, target: float, ts: int) -> None:
        self.run_timers(ts)
        self.ts = ts
        while (o := self.next_fill(target)) is not None:
            assert o.price is not None
            self.fill(o, o.price)
        self.price = target
        self.apply(self.g.on_event(Tick(ts, target)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    direction=st.sampled_from(["SHORT", "LONG", "BOTH"]),
    num_levels=st.integers(1, 6),
    sigma=st.floats(0.005, 0.08),
    max_hedge_ratio=st.sampled_from([0.35, 0.6, 1.0]),
    stop_loss=st.sampled_from([None, 0.015, 0.05]),
    rearm=st.sampled_from([None, 3600.0]),
    start=st.floats(2000.0, 100000.0),
    steps=st.lists(
        st.tuples(
            st.one_of(st.floats(-0.012, 0.012), st.floats(-0.05, 0.05)),
            st.integers(1, 8),
            st.sampled_from([None, None, None, 0.0, 0.002]),
        ),
        min_size=1,
        max_size=80,
    ),
)
def test_random_paths_keep_the_invariants(
    direction: str,
    num_levels: int,
    sigma: float,
    max_hedge_ratio: float,
    stop_loss: float | None,
    rearm: float | None,
    start: float,
    steps: list[tuple[float, int, float | None]],
) -> None:
    g = make(
        direction=direction,
        num_levels=num_levels,
        volatility=sigma,
        max_hedge_ratio=max_hedge_ratio,
        stop_loss_pct=stop_loss,
        rearm_after_seconds=rearm,
        rebalance_interval_seconds=4 * 3600.0,
        funding_threshold=0.001,
        funding_size_factor=0.5,
    )
    price = INST.round_price(start)
    ex = Exchange(g, price, T0)
    ex.apply(g.start(T0, price))
    ts = T0
    for move, hours, funding in steps:
        if funding is not None:
            g.set_funding_rate(funding)
        ts += hours * 3_600_000
        price = INST.round_price(max(price * (1 + move), 100.0))
        ex.move(price, ts)
        if g.phase is Phase.STOPPED:
            assert ex.pos == 0 and ex.book == {}
        assert abs(g.position.qty) <= g.params.spot_quantity * g.params.risk.max_hedge_ratio + 1e-9
