"""The simulated exchange: fills, netting, margin, liquidation, funding, fees, faults.

Numbers are computed by hand in the comments; fees are zero unless a test is about fees.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hedgekit.core.errors import HedgekitError, ParameterError
from hedgekit.core.events import OrderCancelled, OrderFilled, OrderRejected
from hedgekit.core.instrument import ContractType, Instrument
from hedgekit.core.orders import OrderKind, OrderSpec, OrderStatus, OrderType, Side
from hedgekit.venues.sim import FaultPlan, FundingPaid, Liquidated, SimConfig, SimExchange

BUY, SELL = Side.BUY, Side.SELL
MARKET, LIMIT, STOP = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP

INST = Instrument(
    "BTCUSDT", tick_size=0.1, lot_size=0.001, min_notional=5.0, maker_fee=0.0002, taker_fee=0.0005
)


def order(
    cid: str, side: Side, otype: OrderType, qty: float, price: float | None = None,
    *, ro: bool = False, kind: OrderKind = OrderKind.STOP_LOSS,
) -> OrderSpec:
    return OrderSpec(cid, "w", kind, side, otype, qty, price, reduce_only=ro)


def make(
    cash: float = 100_000.0, price: float = 1000.0, faults: FaultPlan | None = None,
    inst: Instrument = INST, **cfg: object,
) -> SimExchange:
    cfg.setdefault("maker_fee", 0.0)
    cfg.setdefault("taker_fee", 0.0)
    cfg.setdefault("trigger_order", "fifo")
    sim = SimExchange(inst, SimConfig(initial_cash=cash, **cfg), faults)  # type: ignore[arg-type]
    sim.move_to(price, 0)
    return sim


def long_of(sim: SimExchange, qty: float, cid: str = "entry") -> None:
    (fill,) = sim.submit(order(cid, BUY, MARKET, qty, kind=OrderKind.MARKET_BUY), 1)
    assert isinstance(fill, OrderFilled)


def fills_of(events: list) -> list[OrderFilled]:
    return [e for e in events if isinstance(e, OrderFilled)]


# -- stops: trigger vs gap ----------------------------------------------------------------
def test_sell_stop_fills_at_its_trigger_on_a_continuous_move() -> None:
    sim = make()
    long_of(sim, 1.0)
    sim.submit(order("sl", SELL, STOP, 1.0, 950.0, ro=True), 2)

    events = sim.move_to(900.0, 3)

    (fill,) = fills_of(events)
    assert (fill.client_id, fill.qty, fill.price) == ("sl", 1.0, 950.0)
    assert sim.position.qty == 0
    assert sim.realized_pnl == pytest.approx(-50.0)  # 1 x (950 - 1000)


def test_sell_stop_gapped_through_fills_at_the_gap_price_not_the_trigger() -> None:
    sim = make()
    long_of(sim, 1.0)
    sim.submit(order("sl", SELL, STOP, 1.0, 950.0, ro=True), 2)

    events = sim.move_to(900.0, 3, gap=True)

    (fill,) = fills_of(events)
    assert fill.price == 900.0  # the first traded price after the jump
    assert sim.realized_pnl == pytest.approx(-100.0)  # 1 x (900 - 1000), not -50


def test_buy_stop_gapped_up_fills_at_the_gap_price() -> None:
    sim = make()
    sim.submit(order("eb", BUY, STOP, 1.0, 1050.0, kind=OrderKind.STOP_ENTRY_BUY), 1)

    (fill,) = fills_of(sim.move_to(1080.0, 2, gap=True))

    assert fill.price == 1080.0
    assert sim.position.qty == 1.0 and sim.position.avg_price == 1080.0


def test_crossed_stops_fire_in_price_order_along_the_move() -> None:
    sim = make()
    long_of(sim, 2.0)
    sim.submit(order("low", SELL, STOP, 1.0, 900.0, ro=True), 2)
    sim.submit(order("high", SELL, STOP, 1.0, 950.0, ro=True), 2)

    events = sim.move_to(850.0, 3)

    assert [(f.client_id, f.price) for f in fills_of(events)] == [("high", 950.0), ("low", 900.0)]


def test_a_stop_already_reached_when_submitted_fills_at_the_last_price() -> None:
    sim = make()
    long_of(sim, 1.0)

    (fill,) = fills_of(sim.submit(order("sl", SELL, STOP, 1.0, 1010.0, ro=True), 2))

    assert fill.price == 1000.0
    assert [r.event for r in sim.order_log if r.order_id == "sl"] == ["placed", "triggered", "filled"]


def test_without_an_order_log_the_fills_are_the_same_and_reading_the_log_refuses() -> None:
    """A sweep trial keeps no order log (nothing reads it); the trading is unchanged and a
    reader gets an error, not an empty log."""
    kept, bare = make(), make()
    bare.keep_order_log = False
    for sim in (kept, bare):
        long_of(sim, 2.0)
        sim.submit(order("sl", SELL, STOP, 1.0, 950.0, ro=True), 2)
        sim.move_to(900.0, 3)
    assert bare.fills == kept.fills and bare.position == kept.position and bare.cash == kept.cash
    assert kept.order_log
    with pytest.raises(HedgekitError, match="keeps no order log"):
        _ = bare.order_log


# -- simultaneous triggers ------------------------------------------------------------------
def _two_sells_at_950(trigger_order: str) -> SimExchange:
    """Long 1, then a reduce-only stop-loss (placed first) and a short-entry stop at 950."""
    sim = make(trigger_order=trigger_order)
    long_of(sim, 1.0)
    sim.submit(order("exit", SELL, STOP, 1.0, 950.0, ro=True), 2)
    sim.submit(order("short", SELL, STOP, 1.0, 950.0, kind=OrderKind.STOP_ENTRY_SHORT), 2)
    return sim


def test_fifo_fires_same_price_stops_in_placement_order() -> None:
    sim = _two_sells_at_950("fifo")

    events = sim.move_to(940.0, 3)

    # exit closes the long (1 -> 0), then the short entry opens a short (0 -> -1)
    assert [f.client_id for f in fills_of(events)] == ["exit", "short"]
    assert sim.position.qty == -1.0


def test_reverse_fires_same_price_stops_last_placed_first() -> None:
    sim = _two_sells_at_950("reverse")

    events = sim.move_to(940.0, 3)

    # the short entry nets the long to flat first, so the reduce-only exit has nothing to
    # reduce and is cancelled: the same two orders end flat instead of short 1
    assert [f.client_id for f in fills_of(events)] == ["short"]
    assert OrderCancelled(3, "exit") in events
    assert sim.position.qty == 0.0


def _random_fire_order(seed: int) -> list[str]:
    sim = make(trigger_order="random", seed=seed)
    for i in range(6):
        sim.submit(order(f"b{i}", BUY, STOP, 0.01, 1100.0, kind=OrderKind.STOP_ENTRY_BUY), 1)
    return [f.client_id for f in fills_of(sim.move_to(1200.0, 2))]


def test_random_trigger_order_is_reproducible_for_a_seed() -> None:
    assert _random_fire_order(7) == _random_fire_order(7)
    # and the seed matters: a few seeds give more than one order of the six fills
    assert len({tuple(_random_fire_order(s)) for s in range(5)}) > 1


# -- netting ------------------------------------------------------------------------------
def test_reduce_only_sell_larger_than_the_long_fills_the_long_and_never_flips() -> None:
    sim = make()
    long_of(sim, 1.0)

    events = sim.submit(order("ro", SELL, MARKET, 2.0, ro=True), 2)

    fill = fills_of(events)[0]
    assert (fill.qty, fill.leaves_qty) == (1.0, 0.0)  # nothing more will come
    assert events[-1] == OrderCancelled(2, "ro")  # the rest expired
    assert sim.position.qty == 0.0
    assert sim.get_order("ro").status is OrderStatus.CANCELLED
    assert sim.get_order("ro").filled_qty == 1.0


def test_reduce_only_stop_on_a_flat_position_is_cancelled_when_it_fires() -> None:
    sim = make()
    sim.submit(order("ro", SELL, STOP, 1.0, 950.0, ro=True), 1)

    events = sim.move_to(900.0, 2)

    assert events == [OrderCancelled(2, "ro")]
    assert sim.position.qty == 0.0
    assert "no opposite position" in sim.order_log[-1].reason


def test_plain_sell_larger_than_the_long_flips_to_a_short_of_the_excess() -> None:
    sim = make()
    long_of(sim, 1.0)  # long 1 @ 1000
    sim.move_to(1100.0, 2)

    sim.submit(order("flip", SELL, MARKET, 3.0, kind=OrderKind.STOP_ENTRY_SHORT), 3)

    assert sim.position.qty == -2.0
    assert sim.position.avg_price == 1100.0  # the excess opened at the fill
    assert sim.realized_pnl == pytest.approx(100.0)  # 1 x (1100 - 1000)


# -- liquidation --------------------------------------------------------------------------
def test_20x_cross_long_is_liquidated_exactly_at_the_formula_price() -> None:
    # cash 1000, 20 coins @ 1000 (20 000 USD notional = 20x), mmr 0.005.
    # cash + q (p - e) = mmr q p  ->  p = (q e - cash) / (q (1 - mmr))
    #                                  = (20 000 - 1000) / (20 x 0.995) = 19 000 / 19.9 = 954.7738...
    sim = make(cash=1000.0, leverage=20, maintenance_margin_rate=0.005)
    long_of(sim, 20.0)
    sim.submit(order("eb", BUY, STOP, 1.0, 1100.0, kind=OrderKind.STOP_ENTRY_BUY), 2)
    liq = 19_000 / 19.9
    assert sim.liquidation_price() == pytest.approx(liq)

    # one tick above: equity 1000 - 20 x 45.2 = 96 > maintenance 0.005 x 20 x 954.8 = 95.48
    assert sim.move_to(954.8, 3) == []
    assert not sim.liquidated

    events = sim.move_to(954.7, 4)

    assert events[0] == Liquidated(4, pytest.approx(liq), 20.0, pytest.approx(20 * (1000 - liq)))
    assert OrderCancelled(4, "eb") in events  # every working order is cancelled
    assert sim.liquidated and sim.position.qty == 0.0 and sim.open_orders() == []
    assert sim.fills[-1].price == pytest.approx(liq)
    # what is left is exactly the maintenance margin: 0.005 x 20 x 954.77 = 95.48
    assert sim.cash == pytest.approx(0.005 * 20 * liq)
    (rej,) = sim.submit(order("again", BUY, MARKET, 1.0, kind=OrderKind.MARKET_BUY), 5)
    assert isinstance(rej, OrderRejected) and "liquidated" in rej.reason


def test_liquidation_price_accounts_for_the_fee_already_paid() -> None:
    # taker fee 0.0005 on 20 000 = 10 -> cash 990 -> p = (20 000 - 990) / 19.9 = 955.2763...
    sim = make(cash=1000.0, leverage=20, taker_fee=0.0005)
    long_of(sim, 20.0)

    assert sim.cash == pytest.approx(990.0)
    assert sim.liquidation_price() == pytest.approx(19_010 / 19.9)


def test_20x_cross_short_is_liquidated_on_the_way_up() -> None:
    # short 20 @ 1000, cash 1000: cash - n (p - e) = mmr n p  ->  p = (cash + n e) / (n (1 + mmr))
    #                                                              = 21 000 / 20.1 = 1044.7761...
    sim = make(cash=1000.0, leverage=20)
    sim.submit(order("s", SELL, MARKET, 20.0, kind=OrderKind.STOP_ENTRY_SHORT), 1)
    liq = 21_000 / 20.1

    assert sim.next_trigger_above() == pytest.approx(liq)
    assert sim.move_to(1044.7, 2) == []
    (ev,) = sim.move_to(1044.8, 3)
    assert ev == Liquidated(3, pytest.approx(liq), -20.0, pytest.approx(20 * (liq - 1000)))


def test_isolated_liquidation_only_risks_the_position_margin() -> None:
    # cash 2000, 20 coins @ 1000 at 20x isolated: margin = 20 000 / 20 = 1000.
    # margin + q (p - e) = mmr q p  ->  p = e (1 - 1/L) / (1 - mmr) = 950 / 0.995 = 954.7738...
    # (cross with the same cash would be (20 000 - 2000) / 19.9 = 904.52)
    iso = make(cash=2000.0, leverage=20, margin_mode="isolated")
    cross = make(cash=2000.0, leverage=20, margin_mode="cross")
    long_of(iso, 20.0)
    long_of(cross, 20.0)
    liq = 950 / 0.995
    assert iso.liquidation_price() == pytest.approx(liq)
    assert cross.liquidation_price() == pytest.approx(18_000 / 19.9)
    assert iso.next_trigger_below() == pytest.approx(liq)

    assert iso.move_to(954.8, 2) == [] and not iso.liquidated
    (ev,) = iso.move_to(954.7, 3)

    assert isinstance(ev, Liquidated) and ev.price == pytest.approx(liq)
    # the loss is 20 x (1000 - 954.77) = 904.52; the other 1000 of cash was never at risk
    assert iso.cash == pytest.approx(2000 - 20 * (1000 - liq))
    assert not cross.liquidated


def test_a_gap_through_the_liquidation_price_never_loses_more_than_the_collateral() -> None:
    # cross long 20 @ 1000 with cash 1000: bankruptcy price = e - cash / q = 1000 - 50 = 950.
    # A jump to 900 would lose 2000; the venue closes at the bankruptcy price instead.
    sim = make(cash=1000.0, leverage=20, taker_fee=0.0005)
    long_of(sim, 20.0)  # fee 10 -> cash 990, bankruptcy 1000 - 990/20 = 950.5

    (ev,) = sim.move_to(900.0, 2, gap=True)

    assert ev.price == pytest.approx(950.5)
    assert sim.cash == pytest.approx(0.0)  # the fee is waived: nothing is left to pay it


def test_a_protective_stop_above_the_liquidation_price_saves_the_account() -> None:
    sim = make(cash=1000.0, leverage=20)
    long_of(sim, 20.0)
    sim.submit(order("sl", SELL, STOP, 20.0, 960.0, ro=True), 2)

    events = sim.move_to(900.0, 3)

    assert [f.price for f in fills_of(events)] == [960.0]
    assert not sim.liquidated
    assert sim.cash == pytest.approx(1000 - 20 * 40)  # 200 left


# -- funding ------------------------------------------------------------------------------
def test_funding_a_long_pays_a_positive_rate() -> None:
    sim = make(cash=10_000.0)
    long_of(sim, 2.0)

    paid = sim.apply_funding(0.0001, 1000.0, 5)

    # 2 coins x 1000 x 0.0001 = 0.2 paid
    assert paid == FundingPaid(5, 0.0001, 1000.0, pytest.approx(-0.2))
    assert sim.cash == pytest.approx(10_000 - 0.2)
    assert sim.funding_paid == pytest.approx(-0.2)


def test_funding_a_short_receives_a_positive_rate() -> None:
    sim = make(cash=10_000.0)
    sim.submit(order("s", SELL, MARKET, 2.0, kind=OrderKind.STOP_ENTRY_SHORT), 1)

    paid = sim.apply_funding(0.0001, 1000.0, 5)

    assert paid is not None and paid.amount == pytest.approx(0.2)
    assert sim.cash == pytest.approx(10_000 + 0.2)


def test_no_funding_when_flat() -> None:
    sim = make()
    assert sim.apply_funding(0.0001, 1000.0, 5) is None
    assert sim.cash == 100_000.0


def test_funding_that_exhausts_the_margin_liquidates_and_reports_on_the_next_call() -> None:
    sim = make(cash=1000.0, leverage=20)
    long_of(sim, 20.0)  # equity 1000, maintenance 100 at 1000

    sim.apply_funding(0.05, 1000.0, 5)  # pays 20 x 1000 x 0.05 = 1000

    assert sim.liquidated and sim.position.qty == 0.0
    events = sim.move_to(1000.0, 6)
    assert isinstance(events[0], Liquidated)


# -- fees and slippage ----------------------------------------------------------------------
def test_taker_fee_is_qty_times_price_times_rate() -> None:
    sim = make(cash=10_000.0, taker_fee=0.001)

    (fill,) = sim.submit(order("m", BUY, MARKET, 2.0, kind=OrderKind.MARKET_BUY), 1)

    assert fill.fee == pytest.approx(2.0)  # 2 x 1000 x 0.001
    assert sim.fees_paid == pytest.approx(2.0) and sim.cash == pytest.approx(9998.0)


def test_maker_fee_on_a_resting_limit_and_taker_fee_on_a_stop() -> None:
    sim = make(cash=10_000.0, maker_fee=0.0002, taker_fee=0.0005)
    sim.submit(order("gb", BUY, LIMIT, 1.0, 990.0, kind=OrderKind.GRID_BUY), 1)
    sim.submit(order("sl", SELL, STOP, 1.0, 980.0, ro=True), 1)

    limit_fill, stop_fill = fills_of(sim.move_to(970.0, 2))

    assert limit_fill.fee == pytest.approx(0.198)  # 1 x 990 x 0.0002
    assert stop_fill.fee == pytest.approx(0.49)  # 1 x 980 x 0.0005
    assert [r.liquidity for r in sim.fills] == ["maker", "taker"]


def test_instrument_fees_are_used_when_the_config_has_none() -> None:
    sim = SimExchange(INST, SimConfig(initial_cash=10_000.0))
    sim.move_to(1000.0, 0)

    (fill,) = sim.submit(order("m", BUY, MARKET, 1.0, kind=OrderKind.MARKET_BUY), 1)

    assert fill.fee == pytest.approx(0.5)  # 1 x 1000 x 0.0005


def test_market_orders_pay_slippage_against_the_taker() -> None:
    sim = make(cash=10_000.0, slippage=0.001)

    (buy,) = sim.submit(order("b", BUY, MARKET, 1.0, kind=OrderKind.MARKET_BUY), 1)
    (sell,) = sim.submit(order("s", SELL, MARKET, 1.0, ro=True), 2)

    assert (buy.price, sell.price) == (1001.0, 999.0)
    assert sim.realized_pnl == pytest.approx(-2.0)


# -- limits -------------------------------------------------------------------------------
def test_touch_limit_fills_when_the_price_reaches_it() -> None:
    sim = make(limit_fill="touch")
    sim.submit(order("gb", BUY, LIMIT, 1.0, 990.0, kind=OrderKind.GRID_BUY), 1)

    (fill,) = fills_of(sim.move_to(990.0, 2))

    assert fill.price == 990.0


def test_through_limit_needs_a_trade_beyond_its_price_and_fills_at_its_price() -> None:
    sim = make(limit_fill="through")
    sim.submit(order("gb", BUY, LIMIT, 1.0, 990.0, kind=OrderKind.GRID_BUY), 1)

    assert sim.move_to(990.0, 2) == []
    assert sim.next_trigger_below() == 989.9  # one tick beyond
    (fill,) = fills_of(sim.move_to(989.9, 3))

    assert fill.price == 990.0


def test_a_gapped_limit_fills_at_its_own_price() -> None:
    sim = make()
    sim.submit(order("gs", SELL, LIMIT, 1.0, 1010.0, kind=OrderKind.GRID_SELL), 1)

    (fill,) = fills_of(sim.move_to(1050.0, 2, gap=True))

    assert fill.price == 1010.0  # never better than asked


def test_a_marketable_limit_takes_at_the_market_price() -> None:
    sim = make(maker_fee=0.0002, taker_fee=0.0005)

    (fill,) = sim.submit(order("gb", BUY, LIMIT, 1.0, 1010.0, kind=OrderKind.GRID_BUY), 1)

    assert fill.price == 1000.0 and fill.fee == pytest.approx(0.5)


# -- rejections ---------------------------------------------------------------------------
def _rejected(events: list) -> OrderRejected:
    (ev,) = events
    assert isinstance(ev, OrderRejected)
    return ev


def test_reject_insufficient_margin() -> None:
    sim = make(cash=1000.0, leverage=1)

    ev = _rejected(sim.submit(order("m", BUY, MARKET, 2.0, kind=OrderKind.MARKET_BUY), 1))

    assert "insufficient margin" in ev.reason and "at most 1" in ev.reason
    assert sim.position.qty == 0 and sim.order_log[-1].event == "rejected"


def test_a_20x_account_can_open_exactly_cash_times_leverage() -> None:
    sim = make(cash=1000.0, leverage=20)
    long_of(sim, 20.0)  # 20 000 notional / 20 = 1000 of margin
    ev = _rejected(sim.submit(order("more", BUY, MARKET, 0.1, kind=OrderKind.MARKET_BUY), 2))
    assert "insufficient margin" in ev.reason


def test_a_stop_that_cannot_be_afforded_when_it_fires_is_rejected_then() -> None:
    sim = make(cash=1000.0, leverage=1)
    sim.submit(order("eb", BUY, STOP, 1.0, 1100.0, kind=OrderKind.STOP_ENTRY_BUY), 1)  # accepted

    ev = _rejected(sim.move_to(1200.0, 2))

    assert "insufficient margin" in ev.reason  # needs 1100, has 1000
    assert [r.event for r in sim.order_log] == ["placed", "triggered", "rejected"]


def test_reject_below_min_notional_but_not_for_reduce_only() -> None:
    sim = make()
    long_of(sim, 0.01)

    ev = _rejected(sim.submit(order("tiny", BUY, MARKET, 0.002, kind=OrderKind.MARKET_BUY), 2))
    assert "below the minimum 5" in ev.reason and "at least 0.005" in ev.reason

    events = sim.submit(order("ro", SELL, MARKET, 0.002, ro=True), 3)
    assert isinstance(events[0], OrderFilled)


def test_reject_duplicate_client_id() -> None:
    sim = make()
    sim.submit(order("dup", SELL, STOP, 1.0, 900.0, ro=True), 1)

    ev = _rejected(sim.submit(order("dup", SELL, STOP, 1.0, 800.0, ro=True), 2))

    assert "duplicate client id 'dup'" in ev.reason
    assert sim.get_order("dup").spec.price == 900.0  # the original is untouched


def test_reject_price_off_the_tick() -> None:
    sim = make()

    ev = _rejected(sim.submit(order("odd", SELL, STOP, 1.0, 950.05, ro=True), 1))

    assert "not on the tick 0.1" in ev.reason


def test_reject_qty_below_the_lot() -> None:
    sim = make()
    ev = _rejected(sim.submit(order("q", BUY, MARKET, 0.0004, kind=OrderKind.MARKET_BUY), 1))
    assert "below the lot size 0.001" in ev.reason


def test_reject_before_the_first_price() -> None:
    sim = SimExchange(INST, SimConfig(initial_cash=1000.0))
    ev = _rejected(sim.submit(order("m", BUY, MARKET, 0.01, kind=OrderKind.MARKET_BUY), 1))
    assert "no market price yet" in ev.reason


def test_config_rejects_maintenance_margin_at_or_above_the_initial_margin() -> None:
    with pytest.raises(ParameterError, match="maintenance_margin_rate"):
        SimConfig(initial_cash=1000.0, leverage=200, maintenance_margin_rate=0.005)


# -- cancel -------------------------------------------------------------------------------
def test_cancel_a_working_order_then_cancel_again_is_a_no_op() -> None:
    sim = make()
    sim.submit(order("sl", SELL, STOP, 1.0, 900.0, ro=True), 1)

    assert sim.cancel("sl", 2) == [OrderCancelled(2, "sl")]
    assert sim.cancel("sl", 3) == []
    assert sim.cancel("unknown", 3) == []
    assert sim.move_to(800.0, 4) == []  # the cancelled stop no longer fires


def test_spot_cannot_be_sold_short_and_pays_no_funding() -> None:
    spot = Instrument("BTC", tick_size=0.1, lot_size=0.001, contract=ContractType.SPOT)
    sim = make(cash=10_000.0, inst=spot)
    long_of(sim, 1.0)

    ev = _rejected(sim.submit(order("s", SELL, MARKET, 2.0, kind=OrderKind.STOP_ENTRY_SHORT), 2))

    assert "spot cannot be sold short" in ev.reason
    assert sim.apply_funding(0.01, 1000.0, 3) is None
    with pytest.raises(ParameterError, match="leverage"):
        SimExchange(spot, SimConfig(initial_cash=1000.0, leverage=2))


# -- next triggers ------------------------------------------------------------------------
def test_next_triggers_are_the_nearest_order_prices() -> None:
    sim = make(cash=100_000.0)
    long_of(sim, 4.0)
    sim.submit(order("sl1", SELL, STOP, 1.0, 950.0, ro=True), 1)
    sim.submit(order("sl2", SELL, STOP, 1.0, 900.0, ro=True), 1)
    sim.submit(order("gb", BUY, LIMIT, 1.0, 970.0, kind=OrderKind.GRID_BUY), 1)
    sim.submit(order("eb", BUY, STOP, 1.0, 1100.0, kind=OrderKind.STOP_ENTRY_BUY), 1)
    sim.submit(order("gs", SELL, LIMIT, 1.0, 1050.0, kind=OrderKind.GRID_SELL), 1)

    assert sim.next_trigger_below() == 970.0
    assert sim.next_trigger_above() == 1050.0
    sim.move_to(960.0, 2)  # the buy limit fills
    assert sim.next_trigger_below() == 950.0


def test_next_trigger_below_is_the_liquidation_price_when_it_is_nearest() -> None:
    sim = make(cash=1000.0, leverage=20)
    long_of(sim, 20.0)
    sim.submit(order("sl", SELL, STOP, 20.0, 900.0, ro=True), 1)  # below the liquidation

    assert sim.next_trigger_below() == pytest.approx(19_000 / 19.9)
    assert sim.next_trigger_above() is None


def test_a_limit_resting_exactly_at_the_last_price_reports_the_next_tick() -> None:
    # An engine that moves to the next trigger must never be told "the current price".
    sim = make()
    sim.submit(order("gb", BUY, LIMIT, 1.0, 1000.0, kind=OrderKind.GRID_BUY), 1)

    assert sim.next_trigger_below() == 999.9
    (fill,) = fills_of(sim.move_to(999.9, 2))
    assert fill.price == 1000.0


def test_next_triggers_none_when_nothing_can_fire() -> None:
    sim = make()
    long_of(sim, 1.0)  # 1x: a long cannot be liquidated above zero
    assert (sim.next_trigger_above(), sim.next_trigger_below()) == (None, None)


# -- faults -------------------------------------------------------------------------------
def test_fault_reject_rejects_the_next_submit_only() -> None:
    sim = make(faults=FaultPlan(reject={"m"}))
    spec = order("m", BUY, MARKET, 1.0, kind=OrderKind.MARKET_BUY)

    ev = _rejected(sim.submit(spec, 1))
    assert "injected fault" in ev.reason and sim.position.qty == 0

    (fill,) = sim.submit(spec, 2)  # a retry with the same id is accepted
    assert isinstance(fill, OrderFilled) and sim.position.qty == 1.0


def test_fault_partial_fills_a_fraction_now_and_the_rest_at_the_next_move() -> None:
    sim = make(faults=FaultPlan(partial={"sl"}, partial_fraction=0.5))
    long_of(sim, 2.0)
    sim.submit(order("sl", SELL, STOP, 2.0, 950.0, ro=True), 1)

    (first,) = fills_of(sim.move_to(940.0, 2))
    assert (first.qty, first.price, first.leaves_qty) == (1.0, 950.0, 1.0)
    assert sim.position.qty == 1.0
    assert sim.get_order("sl").status is OrderStatus.PARTIALLY_FILLED

    (rest,) = fills_of(sim.move_to(945.0, 3))
    # the rest of the (now market) order fills at the price where the last move ended
    assert (rest.qty, rest.price, rest.leaves_qty) == (1.0, 940.0, 0.0)
    assert sim.position.qty == 0.0 and sim.get_order("sl").status is OrderStatus.FILLED


def test_fault_duplicate_reports_the_same_fill_twice_but_books_it_once() -> None:
    sim = make(faults=FaultPlan(duplicate={"m"}))

    events = sim.submit(order("m", BUY, MARKET, 1.0, kind=OrderKind.MARKET_BUY), 1)

    assert len(events) == 2 and events[0] == events[1]
    assert sim.position.qty == 1.0 and len(sim.fills) == 1


def test_fault_delay_holds_the_fill_report_for_n_calls() -> None:
    sim = make(faults=FaultPlan(delay={"m"}, delay_calls=2))

    assert sim.submit(order("m", BUY, MARKET, 1.0, kind=OrderKind.MARKET_BUY), 1) == []
    assert sim.position.qty == 1.0  # the account filled; only the report is late
    assert sim.pending_reports == 1
    assert sim.move_to(1001.0, 2) == []
    (late,) = sim.move_to(1002.0, 3)

    assert isinstance(late, OrderFilled) and late.client_id == "m" and late.ts == 1
    assert sim.pending_reports == 0


def test_fault_delay_reports_can_be_flushed() -> None:
    sim = make(faults=FaultPlan(delay={"m"}, delay_calls=5))
    sim.submit(order("m", BUY, MARKET, 1.0, kind=OrderKind.MARKET_BUY), 1)

    (late,) = sim.flush_reports()

    assert late.client_id == "m" and sim.pending_reports == 0


def test_fault_reorder_reverses_one_calls_reports() -> None:
    plain, faulty = make(), make(faults=FaultPlan(reorder={"b"}))
    for sim in (plain, faulty):
        sim.submit(order("a", BUY, STOP, 1.0, 1010.0, kind=OrderKind.STOP_ENTRY_BUY), 1)
        sim.submit(order("b", BUY, STOP, 1.0, 1020.0, kind=OrderKind.STOP_ENTRY_BUY), 1)

    in_order = plain.move_to(1030.0, 2)
    reordered = faulty.move_to(1030.0, 2)

    assert [e.client_id for e in in_order] == ["a", "b"]
    assert reordered == in_order[::-1]
    assert faulty.fills == plain.fills  # the account is the same


# -- properties ---------------------------------------------------------------------------
PROP_INST = Instrument("TEST", tick_size=1.0, lot_size=0.1, min_notional=0.0)

_op = st.one_of(
    st.tuples(
        st.just("order"), st.sampled_from([BUY, SELL]), st.sampled_from([STOP, STOP, LIMIT, MARKET]),
        st.integers(1, 40), st.integers(80, 120), st.booleans(),
    ),
    st.tuples(st.just("move"), st.integers(70, 130), st.booleans()),
    st.tuples(st.just("fund"), st.sampled_from([-0.001, 0.0001, 0.002])),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
)
_config = st.builds(
    dict,
    initial_cash=st.sampled_from([200.0, 1000.0, 100_000.0]),
    leverage=st.sampled_from([1.0, 5.0, 20.0]),
    margin_mode=st.sampled_from(["cross", "isolated"]),
    limit_fill=st.sampled_from(["touch", "through"]),
    trigger_order=st.sampled_from(["random", "fifo", "reverse"]),
    seed=st.integers(0, 3),
    maker_fee=st.sampled_from([0.0, 0.0002]),
    taker_fee=st.sampled_from([0.0, 0.0005]),
)


def _run(ops: list[tuple], cfg: dict, faults: FaultPlan | None = None) -> tuple[SimExchange, list]:
    sim = SimExchange(PROP_INST, SimConfig(**cfg), faults)
    reported = list(sim.move_to(100.0, 0))
    for ts, op in enumerate(ops, start=1):
        if op[0] == "order":
            _, side, otype, lots, price, ro = op
            spec = OrderSpec(
                f"o{ts}", "w", OrderKind.STOP_LOSS, side, otype, round(lots * 0.1, 1),
                None if otype is MARKET else float(price), reduce_only=ro,
            )
            reported += sim.submit(spec, ts)
        elif op[0] == "move":
            reported += sim.move_to(float(op[1]), ts, gap=op[2])
        elif op[0] == "fund":
            if sim.last_price is not None:
                sim.apply_funding(op[1], sim.last_price, ts)
        else:
            reported += sim.cancel(f"o{op[1]}", ts)
    reported += sim.flush_reports()
    return sim, reported


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_op, max_size=40), cfg=_config)
def test_property_the_account_always_balances(ops: list[tuple], cfg: dict) -> None:
    sim, _ = _run(ops, cfg)

    # the position is the signed sum of every fill (liquidations included)
    assert sum(f.side.sign * f.qty for f in sim.fills) == pytest.approx(sim.position.qty, abs=1e-9)
    # cash = initial + realized - fees + funding
    expected = cfg["initial_cash"] + sim.realized_pnl - sim.fees_paid + sim.funding_paid
    assert sim.cash == pytest.approx(expected, rel=1e-9, abs=1e-6)
    # no reduce-only fill ever grows or flips the position
    before = 0.0
    for f in sim.fills:
        o = sim.get_order(f.order_id)
        if o is not None and o.spec.reduce_only:
            assert abs(f.position_after) <= abs(before) + 1e-9
            assert f.position_after * before >= 0
        before = f.position_after
    # each order's filled qty is the sum of its fills; closed orders are not working
    for o in sim.open_orders():
        assert not o.status.is_closed
    for cid in {f.order_id for f in sim.fills} - {"liquidation"}:
        booked = sum(f.qty for f in sim.fills if f.order_id == cid)
        assert sim.get_order(cid).filled_qty == pytest.approx(booked)
    # a live account is never past its own liquidation price
    if sim.liquidated:
        assert sim.position.qty == 0 and sim.open_orders() == []
    elif (liq := sim.liquidation_price()) is not None:
        assert sim.last_price > liq if sim.position.qty > 0 else sim.last_price < liq


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_op, max_size=40), cfg=_config, fault_seed=st.integers(0, 100))
def test_property_reporting_faults_never_change_the_account(
    ops: list[tuple], cfg: dict, fault_seed: int
) -> None:
    faults = FaultPlan(duplicate_prob=0.3, delay_prob=0.3, delay_calls=2, reorder_prob=0.5, seed=fault_seed)

    clean, clean_reports = _run(ops, cfg)
    faulty, faulty_reports = _run(ops, cfg, faults)

    assert faulty.fills == clean.fills and faulty.cash == clean.cash
    # every fill is reported at least once, by the end, and nothing else is invented
    reported_ids = {e.fill_id for e in faulty_reports if isinstance(e, OrderFilled)}
    booked_ids = {f.fill_id for f in faulty.fills if f.order_id != "liquidation"}
    assert reported_ids == booked_ids
    assert {e for e in faulty_reports if not isinstance(e, OrderFilled)} == {
        e for e in clean_reports if not isinstance(e, OrderFilled)
    }


def test_the_exchange_port_account_view_after_a_fill():

    venue = SimExchange(Instrument("BTCUSDT", tick_size=0.1, lot_size=0.001),
                        SimConfig(initial_cash=10_000.0, leverage=2.0, taker_fee=0.0005, maker_fee=0.0))
    venue.move_to(100.0, 0)
    venue.submit(OrderSpec("hk-w-0-x-mb-1", "w", OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, 10.0), 1)
    venue.submit(OrderSpec("hk-w-0--1-sl-2", "w", OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, 10.0, 90.0,
                           reduce_only=True, unit=-1), 2)
    venue.move_to(110.0, 3)
    acct = venue.account()
    assert (acct.position, acct.avg_price, acct.last_price) == (10.0, 100.0, 110.0)
    assert acct.cash == 10_000.0 - 10 * 100.0 * 0.0005
    assert acct.equity == acct.cash + 100.0
    assert [o.client_id for o in acct.open_orders] == ["hk-w-0--1-sl-2"]
