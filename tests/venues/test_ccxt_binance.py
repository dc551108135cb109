"""REAL trading on Binance USD-M through ccxt, against a local stub that verifies the signatures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from loguru import logger

from hedgekit.core.errors import HedgekitError
from hedgekit.core.events import OrderCancelled, OrderFilled, OrderRejected
from hedgekit.core.instrument import Instrument
from hedgekit.core.orders import OrderKind, OrderSpec, OrderStatus, OrderType, Side, make_client_id
from hedgekit.venues.ccxt_binance import BinanceUsdmProfile
from hedgekit.venues.ccxt_profile import VenueCredentials
from hedgekit.venues.ccxt_venue import CcxtVenue, VenueFatal, VenueUnavailable
from tests.venues.stubs.binance_usdm import API_KEY, SECRET, BinanceUsdmStub, sign


@pytest.fixture
def stub() -> Iterator[BinanceUsdmStub]:
    with BinanceUsdmStub() as s:
        yield s


def _signed_get(stub: BinanceUsdmStub, path: str, query: str, *, secret: str = SECRET,
                tamper: bool = False) -> requests.Response:  # fmt: skip
    sig = sign(query, secret)
    if tamper:  # change the request after signing it
        query = query.replace("recvWindow=5000", "recvWindow=6000")
    return requests.get(f"{stub.url}{path}?{query}&signature={sig}", headers={"X-MBX-APIKEY": API_KEY},
                        timeout=5)  # fmt: skip


def test_stub_checks_the_hmac_signature_as_binance_does(stub: BinanceUsdmStub) -> None:
    import time

    query = f"timestamp={int(time.time() * 1000)}&recvWindow=5000"
    good = _signed_get(stub, "/fapi/v1/positionSide/dual", query)
    assert good.status_code == 200 and good.json() == {"dualSidePosition": False}
    tampered = _signed_get(stub, "/fapi/v1/positionSide/dual", query, tamper=True)
    wrong_key = _signed_get(stub, "/fapi/v1/positionSide/dual", query, secret=SECRET + "x")
    for bad in (tampered, wrong_key):
        assert bad.status_code == 400
        assert bad.json() == {"code": -1022, "msg": "Signature for this request is not valid."}
    assert stub.rejected_signatures == 2
    no_key = requests.get(f"{stub.url}/fapi/v1/positionSide/dual?{query}&signature={sign(query)}", timeout=5)
    assert no_key.status_code == 401 and no_key.json()["code"] == -2015


# -- the adapter over ccxt, against the stub -------------------------------------------------------

INST = Instrument("BTC/USDT:USDT", tick_size=0.1, lot_size=0.001, min_notional=5.0)
SYM = "BTC/USDT:USDT"


@dataclass
class Rig:
    stub: BinanceUsdmStub
    venue: CcxtVenue
    sleeps: list[float]


def make_rig(stub: BinanceUsdmStub, *, secret: str = SECRET, leverage: float = 5, prepare: bool = True,
             profile: BinanceUsdmProfile | None = None) -> Rig:  # fmt: skip
    profile = profile or BinanceUsdmProfile()
    exchange = profile.make_exchange(VenueCredentials(API_KEY, secret), network="testnet", urls=stub.urls())
    exchange.rateLimit = 1  # ccxt's own throttle is not what these tests measure
    sleeps: list[float] = []
    venue = CcxtVenue(profile, exchange, INST, symbol=SYM, sleep=sleeps.append)
    if prepare:
        venue.prepare(leverage=leverage)
    return Rig(stub, venue, sleeps)


@pytest.fixture
def rig(stub: BinanceUsdmStub) -> Rig:
    return make_rig(stub)


def spec(seq: int, kind: OrderKind, side: Side, type_: OrderType, qty: float, price: float | None = None,
         *, reduce_only: bool = False, unit: int | None = 0) -> OrderSpec:  # fmt: skip
    cid = make_client_id("long", 1, unit, kind, seq)
    return OrderSpec(cid, "long", kind, side, type_, qty, price, reduce_only, unit)


def buy_market(seq: int, qty: float = 0.01) -> OrderSpec:
    return spec(seq, OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, qty)


def stop_loss(seq: int, qty: float, trigger: float) -> OrderSpec:
    return spec(seq, OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, qty, trigger, reduce_only=True)


def fills_of(events: list) -> list[OrderFilled]:
    return [e for e in events if isinstance(e, OrderFilled)]


def test_prepare_sets_isolated_margin_and_leverage(stub: BinanceUsdmStub) -> None:
    make_rig(stub, leverage=7)
    assert (stub.margin_type, stub.leverage) == ("ISOLATED", 7)
    make_rig(stub, leverage=3)  # again: margin type already set is not an error
    assert (stub.margin_type, stub.leverage) == ("ISOLATED", 3)


def test_hedge_mode_account_is_refused_with_a_clear_message(stub: BinanceUsdmStub) -> None:
    stub.dual = True
    with pytest.raises(HedgekitError, match=r"hedge mode \(dual-side positions\).*one-way mode"):
        make_rig(stub)
    assert not any(p == "/fapi/v1/leverage" for _, p, _ in stub.requests)  # nothing was changed


def test_wrong_secret_is_rejected_by_the_stub_and_is_fatal(stub: BinanceUsdmStub) -> None:
    with pytest.raises(VenueFatal, match="AuthenticationError.*Signature for this request is not valid"):
        make_rig(stub, secret="not-the-secret-0123456789")
    assert stub.rejected_signatures == 1
    assert not isinstance(VenueFatal("x"), VenueUnavailable)


def test_market_order_fills_at_once_with_the_stubs_trade(rig: Rig) -> None:
    events = rig.venue.submit(buy_market(1, 0.0104), ts=1)  # rounded down to the lot
    [fill] = fills_of(events)
    assert (fill.client_id, fill.qty, fill.price, fill.leaves_qty) == (buy_market(1).client_id, 0.01, 60_000.0, 0.0)
    assert fill.fill_id == str(rig.stub.trades[0]["id"])
    assert fill.fee == pytest.approx(0.01 * 60_000 * 0.0005)
    assert rig.venue.get_order(fill.client_id).status is OrderStatus.FILLED
    assert [r.event for r in rig.venue.order_log] == ["placed", "filled"]
    [rec] = rig.venue.fills
    assert (rec.kind, rec.side, rec.qty, rec.position_after, rec.fill_id) == ("market_buy", Side.BUY, 0.01, 0.01, fill.fill_id)
    acct = rig.venue.account()
    assert (acct.position, acct.avg_price) == (0.01, 60_000.0)
    assert acct.cash == pytest.approx(10_000 - 0.3)
    assert rig.venue.poll(ts=2) == []  # reported once


def test_stop_order_goes_to_the_algo_service_and_is_listed_and_cancelled(rig: Rig) -> None:
    rig.venue.submit(buy_market(1), ts=1)
    sl = stop_loss(2, 0.01, 58_000.04)  # a sell stop's trigger rounds down
    assert rig.venue.submit(sl, ts=2) == []
    [(method, path, params)] = [r for r in rig.stub.requests if r[1] == "/fapi/v1/algoOrder"]
    assert method == "POST"
    assert (params["type"], params["triggerPrice"], params["clientAlgoId"], params["reduceOnly"]) == (
        "STOP_MARKET", "58000", sl.client_id, "true")
    limit = spec(3, OrderKind.GRID_SELL, Side.SELL, OrderType.LIMIT, 0.005, 61_000.0, reduce_only=True)
    assert rig.venue.submit(limit, ts=3) == []
    listed = rig.venue.open_orders()
    assert [(o.client_id, o.spec.type, o.spec.price, o.status) for o in listed] == [
        (sl.client_id, OrderType.STOP, 58_000.0, OrderStatus.OPEN),
        (limit.client_id, OrderType.LIMIT, 61_000.0, OrderStatus.OPEN),
    ]
    assert rig.venue.cancel(sl.client_id, ts=4) == [OrderCancelled(4, sl.client_id)]
    assert rig.venue.cancel(sl.client_id, ts=5) == []  # idempotent
    assert rig.venue.cancel("hk-long-1-0-sl-999", ts=5) == []  # unknown: not an error
    assert rig.venue.cancel(limit.client_id, ts=6) == [OrderCancelled(6, limit.client_id)]
    assert rig.stub.open_client_ids() == [] and rig.venue.open_orders() == []
    deletes = [(m, p) for m, p, _ in rig.stub.requests if m == "DELETE"]
    assert ("DELETE", "/fapi/v1/algoOrder") in deletes and ("DELETE", "/fapi/v1/order") in deletes


def test_a_stop_fired_by_the_price_path_is_one_fill_however_often_it_is_reported(rig: Rig) -> None:
    rig.venue.submit(buy_market(1), ts=1)
    sl = stop_loss(2, 0.01, 59_000.0)
    rig.venue.submit(sl, ts=2)
    rig.stub.move_to(59_500.0)
    assert rig.venue.poll(ts=3) == []
    rig.stub.duplicate_trades = True  # the venue sends every trade twice
    rig.stub.move_to(58_000.0)  # crosses the trigger: fills at it
    events = rig.venue.poll(ts=4)
    stub_trade = rig.stub.trades[-1]
    assert events == [OrderFilled(4, sl.client_id, str(stub_trade["id"]), 0.01, 59_000.0,
                                  pytest.approx(0.01 * 59_000 * 0.0005), 0.0)]  # fmt: skip
    assert rig.venue.poll(ts=5) == [] and rig.venue.poll(ts=6) == []
    assert [r.event for r in rig.venue.order_log if r.order_id == sl.client_id] == ["placed", "triggered", "filled"]
    assert rig.venue.position.qty == 0 and rig.venue.account().position == 0


def test_a_gap_fills_the_stop_at_the_gap_price(rig: Rig) -> None:
    rig.venue.submit(buy_market(1), ts=1)
    rig.venue.submit(stop_loss(2, 0.01, 59_000.0), ts=2)
    rig.stub.move_to(57_000.0, gap=True)
    [fill] = fills_of(rig.venue.poll(ts=3))
    assert fill.price == 57_000.0


def test_closed_orders_can_be_forgotten(rig: Rig) -> None:
    rig.venue.submit(buy_market(1), ts=1)
    sl = stop_loss(2, 0.01, 59_000.0)
    rig.venue.submit(sl, ts=2)
    rig.venue.forget_closed()
    assert rig.venue.get_order(buy_market(1).client_id) is None
    assert rig.venue.get_order(sl.client_id) is not None
    rig.stub.move_to(58_000.0)
    assert [f.client_id for f in fills_of(rig.venue.poll(ts=3))] == [sl.client_id]


def test_fill_cursor_survives_a_restart_as_plain_data(stub: BinanceUsdmStub) -> None:
    first = make_rig(stub)
    first.venue.submit(buy_market(1), ts=1)
    sl = stop_loss(2, 0.01, 59_000.0)
    first.venue.submit(sl, ts=2)
    state = first.venue.state()
    assert json.loads(json.dumps(state)) == state
    stub.move_to(58_000.0)
    # a new process: restores the cursor and knows its working stop from the journal
    second = make_rig(stub)
    second.venue.restore(state)
    second.venue.adopt(first.venue.get_order(sl.client_id))
    [fill] = fills_of(second.venue.poll(ts=3))
    assert (fill.client_id, fill.qty) == (sl.client_id, 0.01)  # the market buy's fill is not re-applied
    with pytest.raises(HedgekitError, match="version 99"):
        second.venue.restore({**state, "version": 99})


def test_lost_answer_of_a_placed_order_never_makes_a_second_order(rig: Rig) -> None:
    rig.venue.submit(buy_market(1), ts=1)
    for mode in ("close", "502"):
        rig.stub.drop_placed, rig.stub.drop_mode = 1, mode
        sl = stop_loss(2 if mode == "close" else 3, 0.01, 59_000.0)
        assert rig.venue.submit(sl, ts=2) == []
        assert len(rig.stub.orders_with(sl.client_id)) == 1  # exactly one order at the venue
        assert rig.venue.get_order(sl.client_id).status is OrderStatus.OPEN
        posts = [r for r in rig.stub.requests if r[0] == "POST" and r[2].get("clientAlgoId") == sl.client_id]
        assert len(posts) == 1  # looked up, never resent
    # a lost market order too: its fill is reported once
    rig.stub.drop_placed = 1
    events = rig.venue.submit(buy_market(9), ts=3)
    assert len(rig.stub.orders_with(buy_market(9).client_id)) == 1
    assert [f.qty for f in fills_of(events)] == [0.01]


def test_an_order_still_in_flight_is_found_after_the_duplicate_id_refusal(rig: Rig) -> None:
    rig.venue.submit(buy_market(1), ts=1)
    sl = stop_loss(2, 0.01, 59_000.0)
    rig.stub.drop_placed = 1  # placed, answer lost
    rig.stub.hide_from_lookup = 1  # and the first look-up does not see it yet
    assert rig.venue.submit(sl, ts=2) == []
    assert len(rig.stub.orders_with(sl.client_id)) == 1
    assert rig.venue.get_order(sl.client_id).status is OrderStatus.OPEN
    posts = [r for r in rig.stub.requests if r[0] == "POST" and r[2].get("clientAlgoId") == sl.client_id]
    assert len(posts) == 2  # the resend was refused as a duplicate id, then the order was found


def test_an_order_journaled_but_unanswered_before_a_crash_is_adopted_not_resent(stub: BinanceUsdmStub) -> None:
    first = make_rig(stub)
    first.venue.submit(buy_market(1), ts=1)
    sl = stop_loss(2, 0.01, 59_000.0)
    stub.drop_placed = 1
    stub.fail_next(5, 503, path="/fapi/v1/algoOrder", method="GET")  # every look-up fails: give up
    with pytest.raises(VenueUnavailable):
        first.venue.submit(sl, ts=2)
    # restart: the journal has the intent (the spec) and no answer
    second = make_rig(stub)
    assert second.venue.resume(sl, ts=3) == []
    assert len(stub.orders_with(sl.client_id)) == 1
    other = stop_loss(3, 0.01, 58_000.0)  # an intent that never reached the venue is placed
    assert second.venue.resume(other, ts=4) == []
    assert [o.client_id for o in second.venue.open_orders()] == [sl.client_id, other.client_id]


def test_a_cancel_that_loses_the_race_against_the_fill_reports_the_fill(rig: Rig) -> None:
    rig.venue.submit(buy_market(1), ts=1)
    sl = stop_loss(2, 0.01, 59_000.0)
    rig.venue.submit(sl, ts=2)
    rig.stub.move_to(58_000.0)  # fired before our cancel arrives
    [fill] = rig.venue.cancel(sl.client_id, ts=3)
    assert isinstance(fill, OrderFilled) and fill.client_id == sl.client_id and fill.price == 59_000.0
    assert rig.venue.get_order(sl.client_id).status is OrderStatus.FILLED


def test_cancelling_a_partly_filled_order_reports_its_fill_then_the_cancel(rig: Rig) -> None:
    rig.stub.partial_next = 0.5
    limit = spec(1, OrderKind.GRID_BUY, Side.BUY, OrderType.LIMIT, 0.02, 60_500.0)  # marketable
    [fill] = rig.venue.submit(limit, ts=1)
    assert (fill.qty, fill.leaves_qty) == (0.01, 0.01)
    assert rig.venue.cancel(limit.client_id, ts=2) == [OrderCancelled(2, limit.client_id)]
    assert [r.event for r in rig.venue.order_log] == ["placed", "filled", "cancelled"]
    assert rig.venue.order_log[-1].qty == 0.01  # what was left


def test_a_cancel_waits_for_the_fills_the_venue_booked_before_it(rig: Rig) -> None:
    rig.stub.hold_trades()  # the trade report lags behind the order's status
    rig.stub.partial_next = 0.5
    limit = spec(1, OrderKind.GRID_BUY, Side.BUY, OrderType.LIMIT, 0.02, 60_500.0)
    assert rig.venue.submit(limit, ts=1) == []  # filled half at the venue; not reported yet
    assert rig.venue.cancel(limit.client_id, ts=2) == []  # cancelled there: waits for the fill
    assert rig.venue.poll(ts=3) == []
    rig.stub.release_trades()
    events = rig.venue.poll(ts=4)
    assert [type(e).__name__ for e in events] == ["OrderFilled", "OrderCancelled"]
    assert (events[0].qty, events[0].leaves_qty) == (0.01, 0.01)
    assert rig.venue.get_order(limit.client_id).status is OrderStatus.CANCELLED


def test_profile_builds_requests_and_clients_as_binance_wants(stub: BinanceUsdmStub) -> None:
    p = BinanceUsdmProfile()
    creds = VenueCredentials(API_KEY, SECRET)
    demo = p.make_exchange(creds, network="testnet")
    assert demo.urls["api"]["fapiPrivate"].startswith("https://demo-fapi.binance.com/")
    live = p.make_exchange(creds, network="mainnet")
    assert live.urls["api"]["fapiPrivate"].startswith("https://fapi.binance.com/")
    assert "apiKey" not in repr(creds) and SECRET not in repr(creds)
    req = p.order_request(stop_loss(2, 0.01, 59_000.0), SYM, ref_price=None)
    assert (req.type, req.side, req.amount, req.price) == ("STOP_MARKET", "sell", 0.01, None)
    assert req.params == {"newClientOrderId": stop_loss(2, 0.01, 1.0).client_id, "reduceOnly": True,
                          "triggerPrice": 59_000.0, "workingType": "CONTRACT_PRICE"}  # fmt: skip
    mkt = p.order_request(buy_market(1), SYM, ref_price=60_000.0)
    assert (mkt.type, mkt.params) == ("market", {"newClientOrderId": buy_market(1).client_id})
    assert p.open_order_queries() == [{}, {"trigger": True}]
    with pytest.raises(HedgekitError, match="1-36 characters"):
        p.venue_client_id("hk-" + "x" * 40)
    with pytest.raises(HedgekitError, match="whole number"):
        make_rig(stub, leverage=2.5)


def test_rate_limit_and_5xx_are_retried_with_the_injected_sleep(rig: Rig) -> None:
    rig.stub.fail_next(2, 429, path="/fapi/v1/order", method="POST")
    rig.stub.fail_next(1, 503, path="/fapi/v1/order", method="POST")
    events = rig.venue.submit(buy_market(1), ts=1)
    assert [f.qty for f in fills_of(events)] == [0.01]
    assert len(rig.stub.orders_with(buy_market(1).client_id)) == 1
    assert rig.sleeps == [0.5, 1.0, 2.0]  # bounded exponential backoff, no real waiting
    rig.stub.fail_next(10, 502, path="/fapi/v1/openOrders")
    with pytest.raises(VenueUnavailable, match="did not answer after 5 attempts"):
        rig.venue.open_orders()


def test_margin_rejection_is_reported_as_insufficient_margin_with_the_last_price(rig: Rig) -> None:
    rig.venue.note_price(60_000.0)
    rig.stub.reject_margin = 1
    [rej] = rig.venue.submit(buy_market(1), ts=1)
    assert isinstance(rej, OrderRejected) and rej.price == 60_000.0
    assert rej.reason.startswith("insufficient margin at 60000") and "Margin is insufficient" in rej.reason
    assert rig.venue.get_order(rej.client_id).status is OrderStatus.REJECTED
    # the real margin check too: 5x leverage on 10 000 USDT is at most ~0.83 BTC at 60 000
    [rej2] = rig.venue.submit(buy_market(2, 1.0), ts=2)
    assert isinstance(rej2, OrderRejected) and "insufficient margin" in rej2.reason
    assert rig.stub.position == 0


def test_invalid_order_is_rerounded_once_then_reported(rig: Rig) -> None:
    rig.venue.submit(buy_market(1), ts=1)
    # a stop whose trigger was already crossed: re-rounding cannot help, reported once re-sent
    bad = stop_loss(2, 0.01, 61_000.0)
    [rej] = rig.venue.submit(bad, ts=2)
    assert isinstance(rej, OrderRejected) and "would immediately trigger" in rej.reason
    posts = [r for r in rig.stub.requests if r[0] == "POST" and r[2].get("clientAlgoId") == bad.client_id]
    assert len(posts) == 2


def test_partial_fill_reports_leaves_qty(rig: Rig) -> None:
    rig.venue.submit(buy_market(1, 0.02), ts=1)
    sl = stop_loss(2, 0.02, 59_000.0)
    rig.venue.submit(sl, ts=2)
    rig.stub.partial_next = 0.5
    rig.stub.move_to(58_500.0)
    [first] = fills_of(rig.venue.poll(ts=3))
    assert (first.qty, first.leaves_qty) == (0.01, 0.01)
    assert rig.venue.get_order(sl.client_id).status is OrderStatus.PARTIALLY_FILLED
    rig.stub.move_to(58_400.0)  # the rest fills
    [second] = fills_of(rig.venue.poll(ts=4))
    assert (second.qty, second.leaves_qty, second.price) == (0.01, 0.0, 58_500.0)
    assert rig.venue.get_order(sl.client_id).status is OrderStatus.FILLED


def test_a_stop_refused_when_it_triggers_is_reported_rejected(rig: Rig) -> None:
    entry = spec(1, OrderKind.STOP_ENTRY_BUY, Side.BUY, OrderType.STOP, 0.01, 61_000.0)
    rig.venue.submit(entry, ts=1)
    rig.stub.reject_margin = 1
    rig.stub.move_to(61_500.0)
    [rej] = rig.venue.poll(ts=2)
    assert isinstance(rej, OrderRejected) and rej.client_id == entry.client_id
    assert rig.venue.get_order(entry.client_id).status is OrderStatus.REJECTED


def test_orphans_with_our_prefix_are_ours_and_foreign_orders_are_listed_apart(rig: Rig) -> None:
    orphan_id = make_client_id("long", 0, -2, OrderKind.STOP_ENTRY_SHORT, 7)
    rig.stub.add_order(orphan_id, "SELL", 0.01, trigger=58_000.0)
    rig.stub.add_order("web_manual_1", "BUY", 0.002, price=55_000.0)
    [orphan] = rig.venue.open_orders()
    assert (orphan.client_id, orphan.spec.kind, orphan.spec.unit, orphan.spec.type, orphan.spec.price) == (
        orphan_id, OrderKind.STOP_ENTRY_SHORT, -2, OrderType.STOP, 58_000.0)
    [foreign] = rig.venue.foreign_orders()
    assert (foreign.client_id, foreign.side, foreign.qty, foreign.price) == ("web_manual_1", "buy", 0.002, 55_000.0)
    assert rig.venue.cancel(orphan_id, ts=1) == []  # cancelled at the venue; the strategy never knew it
    assert rig.stub.open_client_ids() == ["web_manual_1"]


def test_a_sub_account_address_is_refused_on_binance() -> None:
    creds = VenueCredentials(API_KEY, SECRET, sub_account="0x" + "5b" * 20)
    with pytest.raises(HedgekitError, match="a sub-account trades with its own API key"):
        BinanceUsdmProfile().make_exchange(creds, network="testnet")


def test_recovery_diff_after_a_restart_adopts_ours_and_scopes_orphans_to_the_wallet(stub: BinanceUsdmStub) -> None:
    first = make_rig(stub).venue
    first.submit(buy_market(1, 0.02), ts=1)
    sl = stop_loss(2, 0.02, 58_000.04)  # held at 58 000.0 (a sell stop's trigger rounds down)
    limit = spec(3, OrderKind.GRID_SELL, Side.SELL, OrderType.LIMIT, 0.005, 61_000.0, reduce_only=True)
    first.submit(sl, ts=2)
    first.submit(limit, ts=3)
    stub.add_order(make_client_id("hedge", 0, 1, OrderKind.GRID_BUY, 4), "BUY", 0.002, price=55_000.0)

    restarted = make_rig(stub).venue  # a new process: nothing known but what the venue lists
    restarted.wallet = "long"
    diff = restarted.diff([sl, limit])
    assert diff.in_sync, diff  # the desired stop compares at the price Binance holds
    assert [o.client_id for o in restarted.open_orders()] == [sl.client_id, limit.client_id]
    assert [f.client_id for f in restarted.foreign_orders()] == ["hk-hedge-0-1-gb-4"]  # another wallet's
    diff = restarted.diff([spec(5, OrderKind.GRID_BUY, Side.BUY, OrderType.LIMIT, 0.005, 57_000.0), sl])
    assert [s.client_id for s in diff.missing] == ["hk-long-1-0-gb-5"]
    assert [o.client_id for o in diff.unexpected] == [limit.client_id]


def test_a_position_changed_by_hand_shows_in_the_account_and_its_trades_are_not_ours(rig: Rig) -> None:
    rig.venue.submit(buy_market(1), ts=1)
    by_hand = rig.stub.trade_by_hand("BUY", 0.04)
    assert rig.venue.poll(ts=2) == []  # not one of our orders: no strategy event
    assert [(t["order"], t["amount"]) for t in rig.venue.foreign_trades] == [(str(by_hand.order_id), 0.04)]
    acct = rig.venue.account()
    assert (acct.position, acct.avg_price) == (0.05, 60_000.0)
    assert rig.venue.position.qty == 0.01  # what our own fills say: reconciliation compares the two
    rig.stub.set_position(0.2, 59_000.0)
    assert rig.venue.account().position == 0.2


def test_no_key_appears_in_logs_or_errors(stub: BinanceUsdmStub) -> None:
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{message}")
    errors: list[str] = []
    try:
        r = make_rig(stub)
        stub.fail_next(1, 429)
        stub.drop_placed = 1
        r.venue.submit(buy_market(1), ts=1)
        r.venue.submit(stop_loss(2, 0.01, 61_000.0), ts=2)  # refused, with the venue's message
        with pytest.raises(VenueFatal) as err:
            make_rig(stub, secret="a-wrong-secret-987654321")
        errors.append(str(err.value))
        stub.fail_next(10, 504)
        with pytest.raises(VenueUnavailable) as err2:
            r.venue.account()
        errors.append(str(err2.value))
    finally:
        logger.remove(sink)
    text = "\n".join(lines + errors)
    assert "Too many requests" in text or "RateLimitExceeded" in text  # the logs did see the faults
    for secret in (API_KEY, SECRET, "a-wrong-secret-987654321"):
        assert secret not in text
    assert "signature=" not in text


def grid_limit(seq: int, side: Side, qty: float, price: float, *, reduce_only: bool = False) -> OrderSpec:
    kind = OrderKind.GRID_BUY if side is Side.BUY else OrderKind.GRID_SELL
    return spec(seq, kind, side, OrderType.LIMIT, qty, price, reduce_only=reduce_only, unit=seq)


def test_resting_limits_fill_at_their_own_price_as_makers_when_the_price_crosses_them(rig: Rig) -> None:
    """Grid rungs: a sell limit above fills on the way up, a buy limit below on the way down,
    in price order, at the limit (a maker, maker fee), a gap included; none fills before."""
    s1, s2 = grid_limit(1, Side.SELL, 0.01, 60_100.0), grid_limit(2, Side.SELL, 0.01, 60_200.0)
    b1 = grid_limit(3, Side.BUY, 0.02, 59_800.0, reduce_only=True)
    for s in (s2, s1):
        assert rig.venue.submit(s, ts=1) == []  # resting: no fill at 60,000
    rig.stub.move_to(60_099.9)
    assert rig.venue.poll(ts=2) == []
    rig.stub.move_to(60_500.0, gap=True)  # jumps over both: each fills at its own price, lower first
    fills = fills_of(rig.venue.poll(ts=3))
    assert [(f.client_id, f.qty, f.price) for f in fills] == [(s1.client_id, 0.01, 60_100.0), (s2.client_id, 0.01, 60_200.0)]
    assert fills[0].fee == pytest.approx(0.01 * 60_100 * 0.0002)
    assert all(t["maker"] for t in rig.stub.trades)
    rig.venue.submit(b1, ts=4)
    rig.stub.partial_next = 0.5
    rig.stub.move_to(59_700.0)  # half of the buy fills at 59,800 ...
    [first] = fills_of(rig.venue.poll(ts=5))
    assert (first.qty, first.price, first.leaves_qty) == (0.01, 59_800.0, 0.01)
    rig.stub.move_to(59_750.0)  # ... the rest before the next move, still at its limit
    [second] = fills_of(rig.venue.poll(ts=6))
    assert (second.qty, second.price, second.leaves_qty) == (0.01, 59_800.0, 0.0)
    assert rig.venue.account().position == 0


def test_a_limit_is_margin_checked_when_placed_and_needs_a_time_in_force(rig: Rig) -> None:
    rig.stub.balance = 100.0  # 5x: 500 USD of notional
    [refused] = rig.venue.submit(grid_limit(1, Side.SELL, 0.02, 60_100.0), ts=1)
    assert isinstance(refused, OrderRejected) and refused.reason.startswith("insufficient margin")
    import time

    query = (f"symbol=BTCUSDT&side=SELL&type=LIMIT&quantity=0.001&price=60100&timestamp={int(time.time() * 1000)}"
             "&recvWindow=60000")  # fmt: skip
    answer = requests.post(f"{rig.stub.url}/fapi/v1/order", data=f"{query}&signature={sign(query)}",
                           headers={"X-MBX-APIKEY": API_KEY}, timeout=60)  # fmt: skip
    assert answer.json()["code"] == -1102 and "timeInForce" in answer.json()["msg"]
