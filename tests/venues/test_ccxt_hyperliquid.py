"""HyperliquidProfile drives a real ``ccxt.hyperliquid`` client against the local stub, which
verifies every signature the way the venue does (tests/venues/stubs/hyperliquid.py)."""

from __future__ import annotations

import json
import logging
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest

from hedgekit.core.orders import OrderKind, OrderSpec, OrderType, Side, make_client_id
from hedgekit.venues.ccxt_hyperliquid import HyperliquidError, HyperliquidProfile, round_price
from hedgekit.venues.ccxt_profile import VenueCredentials
from tests.venues.stubs.hyperliquid import (
    AGENT_ADDRESS,
    AGENT_KEY,
    MAIN_ADDRESS,
    MAIN_KEY,
    OTHER_KEY,
    HyperliquidStub,
    hyperliquid_stub_fixture,  # noqa: F401 - the `hyperliquid_stub` fixture
)

SYMBOL = "BTC/USDC:USDC"
DATA = Path(__file__).resolve().parents[2] / "src" / "hedgekit" / "data"
WALLET = "long-a"  # a wallet name with a dash: the cloid must still name the wallet


def creds(key: str = AGENT_KEY, address: str = MAIN_ADDRESS) -> VenueCredentials:
    return VenueCredentials(secret=key, wallet_address=address)


def client(stub: HyperliquidStub, key: str = AGENT_KEY, *, network: str = "testnet",
           profile: HyperliquidProfile | None = None) -> tuple[HyperliquidProfile, Any]:
    profile = profile or HyperliquidProfile(rate_limit=False)
    ex = profile.make_exchange(creds(key), network=network,  # type: ignore[arg-type]
                               urls={"public": stub.url, "private": stub.url})
    return profile, ex


def prepared(stub: HyperliquidStub, leverage: float = 5) -> tuple[HyperliquidProfile, Any]:
    profile, ex = client(stub)
    profile.prepare_account(ex, SYMBOL, leverage=leverage)
    return profile, ex


def spec(kind: OrderKind, side: Side, otype: OrderType, qty: float, price: float | None = None, *,
         seq: int = 1, reduce_only: bool = False) -> OrderSpec:
    return OrderSpec(make_client_id(WALLET, 1, 0, kind, seq), WALLET, kind, side, otype, qty, price,
                     reduce_only=reduce_only, unit=0)


def send(profile: HyperliquidProfile, ex: Any, s: OrderSpec, ref_price: float | None = None) -> dict[str, Any]:
    req = profile.order_request(s, SYMBOL, ref_price=ref_price)
    return ex.create_order(req.symbol, req.type, req.side, req.amount, req.price, req.params)  # type: ignore[no-any-return]


def order_actions(stub: HyperliquidStub) -> list[dict[str, Any]]:
    return [r.action for r in stub.accepted("order")]


def post(stub: HyperliquidStub, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(stub.url + "/exchange", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


# --- signatures --------------------------------------------------------------------------

def test_orders_signed_by_the_registered_agent_key_are_accepted(hyperliquid_stub: HyperliquidStub) -> None:
    profile, ex = prepared(hyperliquid_stub)
    send(profile, ex, spec(OrderKind.GRID_BUY, Side.BUY, OrderType.LIMIT, 0.01, 42_000))
    rec = next(hyperliquid_stub.accepted("order"))
    assert rec.signer == AGENT_ADDRESS.lower()
    assert rec.answer == {"status": "ok", "response": {"type": "order", "data": {"statuses": [
        {"resting": {"oid": 30_000_000_001, "cloid": profile.venue_client_id(spec(
            OrderKind.GRID_BUY, Side.BUY, OrderType.LIMIT, 0.01, 42_000).client_id)}}]}}}


def test_an_order_signed_by_another_key_is_rejected_and_nothing_is_placed(hyperliquid_stub: HyperliquidStub) -> None:
    good_profile, _ = prepared(hyperliquid_stub)  # loads the size decimals
    _, ex = client(hyperliquid_stub, OTHER_KEY, profile=good_profile)
    with pytest.raises(ccxt.InvalidOrder, match="User or API Wallet 0x[0-9a-f]{40} does not exist"):
        send(good_profile, ex, spec(OrderKind.GRID_BUY, Side.BUY, OrderType.LIMIT, 0.01, 42_000))
    rejected = [r for r in hyperliquid_stub.actions if r.action.get("type") == "order"]
    assert [r.accepted for r in rejected] == [False]
    assert hyperliquid_stub.orders == {}


def test_a_mainnet_signature_is_worthless_on_testnet(hyperliquid_stub: HyperliquidStub) -> None:
    # The phantom agent's source ("a" mainnet, "b" testnet) is inside what is signed.
    profile, _ = prepared(hyperliquid_stub)
    _, ex = client(hyperliquid_stub, network="mainnet", profile=profile)
    with pytest.raises(ccxt.InvalidOrder, match="does not exist"):
        send(profile, ex, spec(OrderKind.GRID_BUY, Side.BUY, OrderType.LIMIT, 0.01, 42_000))
    assert hyperliquid_stub.orders == {}


def test_the_stub_rejects_a_tampered_action_and_accepts_the_original(hyperliquid_stub: HyperliquidStub) -> None:
    _, ex = client(hyperliquid_stub)
    action = {"type": "order", "orders": [{"a": 0, "b": True, "p": "42000", "s": "0.01", "r": False,
                                           "t": {"limit": {"tif": "Gtc"}}}], "grouping": "na"}
    nonce = 1_765_000_000_000
    signature = ex.sign_l1_action(action, nonce)
    tampered = json.loads(json.dumps(action))
    tampered["orders"][0]["s"] = "1.0"  # a bigger order under the same signature
    answer = post(hyperliquid_stub, {"action": tampered, "nonce": nonce, "signature": signature})
    assert answer["status"] == "err" and "does not exist" in answer["response"]
    other_nonce = post(hyperliquid_stub, {"action": action, "nonce": nonce + 1, "signature": signature})
    assert other_nonce["status"] == "err"
    assert hyperliquid_stub.orders == {}
    ok = post(hyperliquid_stub, {"action": action, "nonce": nonce, "signature": signature})
    assert ok["status"] == "ok" and "resting" in ok["response"]["data"]["statuses"][0]
    replay = post(hyperliquid_stub, {"action": action, "nonce": nonce, "signature": signature})
    assert replay == {"status": "err", "response": f"Invalid nonce: duplicate nonce {nonce}"}
    assert len(hyperliquid_stub.orders) == 1


def test_the_stub_hashes_the_venue_field_order_not_the_json_order(hyperliquid_stub: HyperliquidStub) -> None:
    # The venue re-packs the action in its structs' field order before hashing: a client that
    # signed the fields in another order signed something else.
    _, ex = client(hyperliquid_stub)
    wire = {"a": 0, "b": True, "p": "42000", "s": "0.01", "r": False, "t": {"limit": {"tif": "Gtc"}}}
    shuffled = {"type": "order", "orders": [dict(reversed(list(wire.items())))], "grouping": "na"}
    nonce = 1_765_000_000_000
    answer = post(hyperliquid_stub, {"action": shuffled, "nonce": nonce, "signature": ex.sign_l1_action(shuffled, nonce)})
    assert answer["status"] == "err" and "does not exist" in answer["response"]
    canonical = {"type": "order", "orders": [wire], "grouping": "na"}
    answer = post(hyperliquid_stub, {"action": shuffled, "nonce": nonce + 1,
                                     "signature": ex.sign_l1_action(canonical, nonce + 1)})
    assert answer["status"] == "ok"  # same fields, any JSON order, signed in the venue's order


def test_a_malformed_cloid_cannot_be_deserialized(hyperliquid_stub: HyperliquidStub) -> None:
    profile, ex = prepared(hyperliquid_stub)
    req = profile.order_request(spec(OrderKind.GRID_BUY, Side.BUY, OrderType.LIMIT, 0.01, 42_000), SYMBOL, ref_price=None)
    with pytest.raises(ccxt.ExchangeError, match="422"):
        ex.create_order(req.symbol, req.type, req.side, req.amount, req.price,
                        {**req.params, "clientOrderId": "hk-long-a-1-0-gb-1"})
    assert hyperliquid_stub.orders == {}


# --- orders ------------------------------------------------------------------------------

def test_market_order_is_an_ioc_limit_at_the_reference_price_plus_slippage(hyperliquid_stub: HyperliquidStub) -> None:
    profile, ex = prepared(hyperliquid_stub)
    s = spec(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, 0.012344)
    with pytest.raises(HyperliquidError, match="needs a reference price"):
        profile.order_request(s, SYMBOL, ref_price=None)
    placed = send(profile, ex, s, ref_price=43_000)
    assert placed["clientOrderId"] == profile.venue_client_id(s.client_id)
    assert placed["id"] == "30000000001" and placed["filled"] == 0.01234
    (wire,) = order_actions(hyperliquid_stub)[0]["orders"]
    assert wire == {"a": 0, "b": True, "p": "45150", "s": "0.01234", "r": False,
                    "t": {"limit": {"tif": "Ioc"}}, "c": profile.venue_client_id(s.client_id)}
    assert hyperliquid_stub.account(MAIN_ADDRESS).szi == Decimal("0.01234")


def test_stop_is_a_reduce_only_sl_trigger_order_listed_with_its_trigger(hyperliquid_stub: HyperliquidStub) -> None:
    profile, ex = prepared(hyperliquid_stub)
    send(profile, ex, spec(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, 0.02), ref_price=43_000)
    stop = spec(OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, 0.02, 42_123.4, seq=2, reduce_only=True)
    send(profile, ex, stop)
    (wire,) = order_actions(hyperliquid_stub)[1]["orders"]
    cloid = profile.venue_client_id(stop.client_id)
    assert wire == {"a": 0, "b": False, "p": "40017", "s": "0.02", "r": True,
                    "t": {"trigger": {"isMarket": True, "triggerPx": "42123", "tpsl": "sl"}}, "c": cloid}
    listed = [o for q in profile.open_order_queries() for o in ex.fetch_open_orders(SYMBOL, params=dict(q))]
    assert [(o["clientOrderId"], o["side"], o["amount"], o["triggerPrice"], o["reduceOnly"]) for o in listed] == [
        (cloid, "sell", 0.02, 42_123.0, True)]


def test_a_trigger_order_acknowledged_as_waiting_is_found_by_its_cloid(hyperliquid_stub: HyperliquidStub) -> None:
    profile, ex = prepared(hyperliquid_stub)
    hyperliquid_stub.trigger_ack = "waitingForTrigger"
    entry = spec(OrderKind.STOP_ENTRY_BUY, Side.BUY, OrderType.STOP, 0.01, 43_500)
    placed = send(profile, ex, entry)
    assert placed["id"] is None  # nothing to know the order by but our cloid
    found = ex.fetch_order(None, SYMBOL, {"clientOrderId": profile.venue_client_id(entry.client_id)})
    assert (found["id"], found["status"], found["triggerPrice"]) == ("30000000001", "open", 43_500)


def test_entry_stops_trigger_on_the_right_side(hyperliquid_stub: HyperliquidStub) -> None:
    # A buy stop fires when the price rises to it, a sell stop when it falls to it.
    profile, ex = prepared(hyperliquid_stub)
    send(profile, ex, spec(OrderKind.STOP_ENTRY_BUY, Side.BUY, OrderType.STOP, 0.01, 43_500, seq=1))
    send(profile, ex, spec(OrderKind.STOP_ENTRY_SHORT, Side.SELL, OrderType.STOP, 0.01, 42_500, seq=2))
    assert hyperliquid_stub.move_to(43_400) == []
    fills = hyperliquid_stub.move_to(43_600)
    assert [(f["side"], f["px"], f["sz"]) for f in fills] == [("B", "43500", "0.01")]
    fills = hyperliquid_stub.move_to(42_000)
    assert [(f["side"], f["px"], f["dir"]) for f in fills] == [("A", "42500", "Close Long")]
    assert hyperliquid_stub.account(MAIN_ADDRESS).szi == 0


def test_order_looked_up_and_cancelled_by_cloid(hyperliquid_stub: HyperliquidStub) -> None:
    profile, ex = prepared(hyperliquid_stub)
    s = spec(OrderKind.GRID_BUY, Side.BUY, OrderType.LIMIT, 0.01, 41_000)
    send(profile, ex, s)
    cloid = profile.venue_client_id(s.client_id)
    found = ex.fetch_order(None, SYMBOL, {"clientOrderId": cloid})
    assert (found["id"], found["clientOrderId"], found["status"], found["price"]) == ("30000000001", cloid, "open", 41_000)
    ex.cancel_order(None, SYMBOL, {"clientOrderId": cloid})
    cancel = next(hyperliquid_stub.accepted("cancelByCloid")).action
    assert cancel == {"type": "cancelByCloid", "cancels": [{"asset": 0, "cloid": cloid}]}
    assert ex.fetch_order(None, SYMBOL, {"clientOrderId": cloid})["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        ex.cancel_order(None, SYMBOL, {"clientOrderId": cloid})
    unknown = profile.venue_client_id(make_client_id(WALLET, 9, 9, OrderKind.GRID_BUY, 99))
    with pytest.raises(ccxt.OrderNotFound):
        ex.fetch_order(None, SYMBOL, {"clientOrderId": unknown})


def test_price_path_fires_the_stop_and_its_fill_carries_the_venue_trade_id(hyperliquid_stub: HyperliquidStub) -> None:
    profile, ex = prepared(hyperliquid_stub)
    send(profile, ex, spec(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, 0.02), ref_price=43_000)
    stop = spec(OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, 0.02, 42_000, seq=2, reduce_only=True)
    oid = send(profile, ex, stop)["id"]
    assert hyperliquid_stub.move_to(42_500) == []
    (fired,) = hyperliquid_stub.move_to(41_000)
    trades = ex.fetch_my_trades(SYMBOL)
    by_id = {t["id"]: t for t in trades}
    trade = by_id[str(fired["tid"])]
    assert (trade["order"], trade["side"], trade["amount"], trade["price"]) == (oid, "sell", 0.02, 42_000)
    assert trade["info"]["cloid"] == profile.venue_client_id(stop.client_id)
    since = ex.fetch_my_trades(SYMBOL, since=fired["time"])  # userFillsByTime: the cursor
    assert [t["id"] for t in since] == [str(fired["tid"])]
    assert ex.fetch_order(oid, SYMBOL)["status"] == "closed"
    assert ex.fetch_positions([SYMBOL]) == []
    assert ex.fetch_open_orders(SYMBOL) == []


def test_a_real_btc_minute_path_fires_the_stop_in_the_bar_that_reaches_it(hyperliquid_stub: HyperliquidStub) -> None:
    # Real Binance BTCUSDT 1m candles bundled with hedgekit (src/hedgekit/data/SOURCE.md).
    import pandas as pd

    bars = pd.read_feather(DATA / "BTC_USDT_USDT-1m-futures.feather").iloc[:1440]
    ohlc = list(zip(bars.open, bars.high, bars.low, bars.close, strict=True))
    hyperliquid_stub.move_to(ohlc[0][3])
    profile, ex = prepared(hyperliquid_stub)
    send(profile, ex, spec(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, 0.01), ref_price=ohlc[0][3])
    stop = spec(OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, 0.01, ohlc[0][3] * 0.995, seq=2, reduce_only=True)
    trigger = profile.order_request(stop, SYMBOL, ref_price=None).price
    assert trigger is not None
    send(profile, ex, stop)
    expected = next(i for i, (_, _, low, _) in enumerate(ohlc[1:], 1) if low <= trigger)
    (fired,) = hyperliquid_stub.replay_bars(ohlc[1:expected + 5])
    bar, fill = fired
    assert bar + 1 == expected
    gap_open = ohlc[expected][0]
    assert float(fill["px"]) == (gap_open if gap_open <= trigger else trigger)
    assert any(t["id"] == str(fill["tid"]) for t in ex.fetch_my_trades(SYMBOL))


def test_a_gap_fills_the_stop_at_the_gap_price(hyperliquid_stub: HyperliquidStub) -> None:
    profile, ex = prepared(hyperliquid_stub)
    send(profile, ex, spec(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, 0.02), ref_price=43_000)
    send(profile, ex, spec(OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, 0.02, 42_000, seq=2, reduce_only=True))
    (fill,) = hyperliquid_stub.move_to(40_000, gap=True)
    assert (fill["px"], fill["sz"], fill["closedPnl"]) == ("40000", "0.02", "-60")



def test_a_gap_within_the_stops_slippage_bound_fills_there_and_past_it_trades_nothing(
    hyperliquid_stub: HyperliquidStub,
) -> None:
    """A triggered market stop is the venue's market order: an IOC at the limit price ccxt sent
    (the trigger less the 5 % slippage for a sell). A gap to inside that bound fills at the gap
    price (PAPER's gap rule); a gap past it finds nothing to trade: the order ends cancelled,
    the position is left as it was."""
    profile, ex = prepared(hyperliquid_stub)
    send(profile, ex, spec(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, 0.04), ref_price=43_000)
    near = spec(OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, 0.02, 42_000, seq=2, reduce_only=True)
    far = spec(OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, 0.02, 39_000, seq=3, reduce_only=True)
    send(profile, ex, near)
    (fill,) = hyperliquid_stub.move_to(39_950, gap=True)
    (wire,) = order_actions(hyperliquid_stub)[1]["orders"]
    assert (wire["p"], wire["t"]) == ("39900", {"trigger": {"isMarket": True, "triggerPx": "42000", "tpsl": "sl"}})
    assert (fill["px"], fill["sz"]) == ("39950", "0.02")

    oid = send(profile, ex, far)["id"]  # limit 37050
    assert hyperliquid_stub.move_to(37_000, gap=True) == []
    assert ex.fetch_order(oid, SYMBOL)["status"] == "canceled"
    assert hyperliquid_stub.account(MAIN_ADDRESS).szi == Decimal("0.02")
    assert ex.fetch_open_orders(SYMBOL) == []

# --- builder fee and referrer --------------------------------------------------------------

def full_session(stub: HyperliquidStub, *, verbose: bool = False) -> None:
    profile, ex = client(stub)
    ex.verbose = verbose  # ccxt prints every request and answer
    ex.load_markets()
    profile.prepare_account(ex, SYMBOL, leverage=3)
    ex.fetch_balance()
    send(profile, ex, spec(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, 0.02), ref_price=43_000)
    send(profile, ex, spec(OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, 0.02, 42_000, seq=2, reduce_only=True))
    grid = spec(OrderKind.GRID_SELL, Side.SELL, OrderType.LIMIT, 0.01, 44_000, seq=3, reduce_only=True)
    send(profile, ex, grid)
    ex.fetch_open_orders(SYMBOL, params={"method": "frontendOpenOrders"})
    ex.cancel_order(None, SYMBOL, {"clientOrderId": profile.venue_client_id(grid.client_id)})
    stub.move_to(41_000)
    ex.fetch_my_trades(SYMBOL)
    ex.fetch_positions([SYMBOL])


def test_no_builder_fee_approval_referrer_or_builder_field_is_ever_sent(hyperliquid_stub: HyperliquidStub) -> None:
    full_session(hyperliquid_stub)
    types = hyperliquid_stub.action_types()
    assert types == ["updateLeverage", "order", "order", "order", "cancelByCloid"]
    assert all("builder" not in r.action for r in hyperliquid_stub.actions)
    assert all(r.accepted for r in hyperliquid_stub.actions)


def test_plain_ccxt_would_send_them_so_the_check_above_can_see_them(hyperliquid_stub: HyperliquidStub) -> None:
    ex = ccxt.hyperliquid({"walletAddress": MAIN_ADDRESS, "privateKey": AGENT_KEY, "enableRateLimit": False,
                           "options": {"builderFee": False, "fetchMarkets": {"types": ["swap"]}}})
    ex.set_sandbox_mode(True)
    ex.urls["api"] = {"public": hyperliquid_stub.url, "private": hyperliquid_stub.url}
    ex.load_markets()
    assert {"approveBuilderFee", "setReferrer"} <= set(hyperliquid_stub.action_types())


def test_the_client_refuses_to_sign_a_builder_even_if_its_options_are_changed(hyperliquid_stub: HyperliquidStub) -> None:
    profile, ex = prepared(hyperliquid_stub)
    ex.options["approvedBuilderFee"] = True  # what ccxt sets after approving one
    with pytest.raises(HyperliquidError, match="builder or referrer"):
        send(profile, ex, spec(OrderKind.GRID_BUY, Side.BUY, OrderType.LIMIT, 0.01, 42_000))
    with pytest.raises(HyperliquidError, match="never approves a builder fee"):
        ex.approve_builder_fee("0x6530512A6c89C7cfCEbC3BA7fcD9aDa5f30827a6", "0.1%")
    ex.options["refSet"] = False
    with pytest.raises(HyperliquidError, match="builder or referrer"):
        ccxt.hyperliquid.set_ref(ex)  # ccxt's own method: its action cannot be signed either
    assert hyperliquid_stub.action_types() == ["updateLeverage"]


def test_a_sub_account_is_traded_by_the_main_wallets_agent_as_vault(hyperliquid_stub: HyperliquidStub) -> None:
    sub = "0x" + "5b" * 20
    hyperliquid_stub.add_account(sub, usdc=5_000, master=MAIN_ADDRESS)
    profile = HyperliquidProfile(rate_limit=False)
    ex = profile.make_exchange(creds(), network="testnet", sub_account=sub,
                               urls={"public": hyperliquid_stub.url, "private": hyperliquid_stub.url})
    profile.prepare_account(ex, SYMBOL, leverage=4)
    send(profile, ex, spec(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, 0.02), ref_price=43_000)
    assert [(r.action["type"], r.vault, r.signer) for r in hyperliquid_stub.actions] == [
        ("updateLeverage", sub[2:], AGENT_ADDRESS.lower()), ("order", sub[2:], AGENT_ADDRESS.lower())]
    assert (hyperliquid_stub.account(sub).szi, hyperliquid_stub.account(sub).leverage) == (Decimal("0.02"), 4)
    assert hyperliquid_stub.account(MAIN_ADDRESS).szi == 0
    (pos,) = ex.fetch_positions([SYMBOL])  # queries read the sub-account
    assert pos["contracts"] == 0.02
    stranger = "0x" + "6c" * 20  # not a sub-account of MAIN: the agent may not trade it
    hyperliquid_stub.add_account(stranger, usdc=5_000)
    ex2 = profile.make_exchange(creds(), network="testnet", sub_account=stranger,
                                urls={"public": hyperliquid_stub.url, "private": hyperliquid_stub.url})
    with pytest.raises(HyperliquidError, match="does not know the agent key"):
        profile.prepare_account(ex2, SYMBOL, leverage=4)


# --- client ids, rounding, account preparation ---------------------------------------------

def test_cloid_is_16_bytes_deterministic_and_names_our_wallet() -> None:
    a, b = HyperliquidProfile(), HyperliquidProfile()
    cid = make_client_id(WALLET, 3, -2, OrderKind.STOP_LOSS, 17)
    cloid = a.venue_client_id(cid)
    assert cloid == b.venue_client_id(cid)  # stable across restarts (no process state)
    assert len(cloid) == 34 and cloid.startswith("0x686b") and int(cloid, 16) >= 0
    assert a.venue_client_id(make_client_id(WALLET, 3, -2, OrderKind.STOP_LOSS, 18)) != cloid
    assert a.is_ours(cloid, WALLET) and a.is_ours(cloid)
    assert not a.is_ours(cloid, "long")  # another wallet's orders are not this wallet's
    assert not a.is_ours("0x" + "ab" * 16) and not a.is_ours(None)


def test_sizes_and_prices_are_rounded_to_the_venue_rules(hyperliquid_stub: HyperliquidStub) -> None:
    profile, _ = client(hyperliquid_stub)
    s = spec(OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, 0.0123456, 42_123.6, reduce_only=True)
    with pytest.raises(HyperliquidError, match="not prepared"):
        profile.order_request(s, SYMBOL, ref_price=None)
    profile, _ = prepared(hyperliquid_stub)
    req = profile.order_request(s, SYMBOL, ref_price=None)
    assert (req.type, req.side, req.amount, req.price, req.params["triggerPrice"]) == ("market", "sell", 0.01235, 42_124, 42_124)
    with pytest.raises(HyperliquidError, match="rounds to 0 at 5 decimals"):
        profile.order_request(spec(OrderKind.GRID_BUY, Side.BUY, OrderType.LIMIT, 0.000001, 42_000), SYMBOL, ref_price=None)
    assert [str(round_price(p, n)) for p, n in [(43_210.55, 5), (4_321.55, 5), (0.1234567, 0), (123_456.7, 2)]] == [
        "43211", "4321.6", "0.12346", "123457"]


def test_prepare_account_sets_isolated_leverage(hyperliquid_stub: HyperliquidStub) -> None:
    prepared(hyperliquid_stub, leverage=7)
    acct = hyperliquid_stub.account(MAIN_ADDRESS)
    assert (acct.leverage, acct.is_cross) == (7, False)
    assert next(hyperliquid_stub.accepted("updateLeverage")).action == {
        "type": "updateLeverage", "asset": 0, "isCross": False, "leverage": 7}


@pytest.mark.parametrize(("symbol", "leverage", "message"), [
    ("ETH/USDC:USDC", 5, r"no perpetual 'ETH/USDC:USDC' .*listed: BTC/USDC:USDC"),
    (SYMBOL, 2.5, r"whole number of at least 1 \(got 2.5"),
    (SYMBOL, 60, r"at most 50x leverage on Hyperliquid, got 60x"),
])
def test_prepare_account_refuses_what_cannot_work(hyperliquid_stub: HyperliquidStub, symbol: str, leverage: float,
                                                  message: str) -> None:
    profile, ex = client(hyperliquid_stub)
    with pytest.raises(HyperliquidError, match=message):
        profile.prepare_account(ex, symbol, leverage=leverage)
    assert hyperliquid_stub.action_types() == []


def test_prepare_account_refuses_an_open_cross_position_and_an_empty_account(hyperliquid_stub: HyperliquidStub) -> None:
    hyperliquid_stub.manual_trade(MAIN_ADDRESS, is_buy=False, sz=0.5)  # cross, by hand
    profile, ex = client(hyperliquid_stub)
    with pytest.raises(HyperliquidError, match="open cross-margin position of 0.5 .* close it first"):
        profile.prepare_account(ex, SYMBOL, leverage=5)
    empty = "0x" + "77" * 20
    hyperliquid_stub.add_account(empty, usdc=0)
    ex2 = profile.make_exchange(creds(address=empty), network="testnet",
                                urls={"public": hyperliquid_stub.url, "private": hyperliquid_stub.url})
    with pytest.raises(HyperliquidError, match="holds no USDC"):
        profile.prepare_account(ex2, SYMBOL, leverage=5)
    assert hyperliquid_stub.action_types() == []


def test_prepare_account_explains_an_agent_key_the_venue_does_not_know(hyperliquid_stub: HyperliquidStub) -> None:
    profile, ex = client(hyperliquid_stub, OTHER_KEY)
    with pytest.raises(HyperliquidError, match="does not know the agent key as an API wallet"):
        profile.prepare_account(ex, SYMBOL, leverage=5)


def test_testnet_by_default_and_mainnet_only_when_asked() -> None:
    profile = HyperliquidProfile()
    test = profile.make_exchange(creds(), network="testnet")
    main = profile.make_exchange(creds(), network="mainnet")
    assert test.urls["api"]["private"] == "https://api.hyperliquid-testnet.xyz"
    assert main.implode_hostname(main.urls["api"]["private"]) == "https://api.hyperliquid.xyz"
    assert test.options["sandboxMode"] is True and main.options["sandboxMode"] is False
    with pytest.raises(HyperliquidError, match="'testnet' or 'mainnet'"):
        profile.make_exchange(creds(), network="prod")  # type: ignore[arg-type]


@pytest.mark.parametrize(("key", "address", "message"), [
    (AGENT_KEY[:-2], MAIN_ADDRESS, r"64 hex characters, optionally prefixed 0x \(got 64 characters\)"),
    ("", MAIN_ADDRESS, r"\(got 0 characters\)"),
    (AGENT_KEY, AGENT_KEY, r"MAIN wallet's address"),
], ids=["short-key", "no-key", "key-as-address"])
def test_malformed_credentials_are_refused_without_echoing_them(key: str, address: str, message: str) -> None:
    with pytest.raises(HyperliquidError, match=message) as info:
        HyperliquidProfile().make_exchange(creds(key, address), network="testnet")
    assert AGENT_KEY[2:-2] not in str(info.value)


# --- faults ------------------------------------------------------------------------------

def test_margin_rejection_is_insufficient_funds(hyperliquid_stub: HyperliquidStub) -> None:
    profile, ex = prepared(hyperliquid_stub)
    hyperliquid_stub.reject_margin()
    entry = spec(OrderKind.STOP_ENTRY_BUY, Side.BUY, OrderType.STOP, 0.01, 43_500)
    with pytest.raises(ccxt.InsufficientFunds, match="Insufficient margin to place order"):
        send(profile, ex, entry)
    with pytest.raises(ccxt.InsufficientFunds):  # 10 BTC at 5x is beyond 10 000 USDC
        send(profile, ex, spec(OrderKind.STOP_ENTRY_BUY, Side.BUY, OrderType.STOP, 10, 43_500, seq=2))
    assert hyperliquid_stub.orders == {}
    send(profile, ex, entry)  # the same order once margin allows: placed once
    assert len(hyperliquid_stub.orders) == 1


def test_a_lost_answer_is_resolved_by_cloid_and_never_doubles_the_order(hyperliquid_stub: HyperliquidStub) -> None:
    profile, ex = prepared(hyperliquid_stub)
    s = spec(OrderKind.STOP_ENTRY_BUY, Side.BUY, OrderType.STOP, 0.01, 43_500)
    hyperliquid_stub.drop_answer("order")
    with pytest.raises(ccxt.NetworkError):
        send(profile, ex, s)
    found = ex.fetch_order(None, SYMBOL, {"clientOrderId": profile.venue_client_id(s.client_id)})
    assert (found["status"], found["triggerPrice"]) == ("open", 43_500)
    with pytest.raises(ccxt.ExchangeError, match="Duplicate cloid"):  # a blind resend is refused
        send(profile, ex, s)
    assert len(hyperliquid_stub.orders) == 1


@pytest.mark.parametrize(("status", "error"), [(429, ccxt.RateLimitExceeded), (502, ccxt.ExchangeNotAvailable)])
def test_http_errors_are_ccxt_temporary_errors_and_nothing_happens(hyperliquid_stub: HyperliquidStub, status: int,
                                                                   error: type[Exception]) -> None:
    profile, ex = prepared(hyperliquid_stub)
    s = spec(OrderKind.GRID_BUY, Side.BUY, OrderType.LIMIT, 0.01, 42_000)
    hyperliquid_stub.http_error(status)
    with pytest.raises(error):
        send(profile, ex, s)
    assert issubclass(error, ccxt.NetworkError) and hyperliquid_stub.orders == {}
    send(profile, ex, s)
    assert len(hyperliquid_stub.orders) == 1
    hyperliquid_stub.http_error(status, path="/info", info_type="frontendOpenOrders")
    with pytest.raises(error):
        ex.fetch_open_orders(SYMBOL)
    assert len(ex.fetch_open_orders(SYMBOL)) == 1


def test_a_gateway_error_after_the_venue_acted_is_resolved_by_cloid_too(hyperliquid_stub: HyperliquidStub) -> None:
    # A 5xx is no proof that nothing happened: the order may be on the book.
    profile, ex = prepared(hyperliquid_stub)
    s = spec(OrderKind.GRID_BUY, Side.BUY, OrderType.LIMIT, 0.01, 42_000)
    hyperliquid_stub.http_error(502, executed=True)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        send(profile, ex, s)
    found = ex.fetch_order(None, SYMBOL, {"clientOrderId": profile.venue_client_id(s.client_id)})
    assert (found["status"], found["price"]) == ("open", 42_000)
    assert len(hyperliquid_stub.orders) == 1


def test_an_entry_stop_without_margin_when_it_fires_is_cancelled_unfilled(hyperliquid_stub: HyperliquidStub) -> None:
    profile, ex = prepared(hyperliquid_stub)  # 10 000 USDC at 5x
    entry = spec(OrderKind.STOP_ENTRY_BUY, Side.BUY, OrderType.STOP, 0.25, 43_500)
    send(profile, ex, entry)  # needs 2 175 USDC of margin: accepted
    hyperliquid_stub.manual_trade(MAIN_ADDRESS, is_buy=True, sz=1.0)  # by hand: ~1 780 left at 43 500
    assert hyperliquid_stub.move_to(43_600) == []
    gone = ex.fetch_order(None, SYMBOL, {"clientOrderId": profile.venue_client_id(entry.client_id)})
    assert (gone["status"], gone["filled"]) == ("canceled", 0)
    assert gone["info"]["status"] == "marginCanceled"


def test_partial_and_split_fills_arrive_as_separate_trades(hyperliquid_stub: HyperliquidStub) -> None:
    profile, ex = prepared(hyperliquid_stub)
    hyperliquid_stub.partial_next_market(0.5)
    placed = send(profile, ex, spec(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, 0.04), ref_price=43_000)
    assert placed["filled"] == 0.02  # IOC: the rest is cancelled
    grid = spec(OrderKind.GRID_SELL, Side.SELL, OrderType.LIMIT, 0.02, 44_000, seq=2, reduce_only=True)
    send(profile, ex, grid)
    hyperliquid_stub.fill_partially(profile.venue_client_id(grid.client_id), 0.005)
    left = ex.fetch_order(None, SYMBOL, {"clientOrderId": profile.venue_client_id(grid.client_id)})
    assert (left["status"], left["filled"], left["remaining"]) == ("open", 0.005, 0.015)
    hyperliquid_stub.split_next_fill(3)
    hyperliquid_stub.move_to(44_100)
    trades = [t for t in ex.fetch_my_trades(SYMBOL) if t["side"] == "sell"]
    assert sorted(t["amount"] for t in trades) == [0.005, 0.005, 0.005, 0.005]
    assert len({t["id"] for t in trades}) == 4
    assert ex.fetch_positions([SYMBOL]) == []


def test_an_orphan_and_a_trade_by_hand_are_visible_and_told_apart(hyperliquid_stub: HyperliquidStub) -> None:
    profile, ex = prepared(hyperliquid_stub)
    ours = profile.venue_client_id(make_client_id(WALLET, 1, 2, OrderKind.STOP_LOSS, 4))
    hyperliquid_stub.preload_order(MAIN_ADDRESS, is_buy=False, sz=0.01, trigger_px=41_000, cloid=ours, reduce_only=True)
    hyperliquid_stub.preload_order(MAIN_ADDRESS, is_buy=True, sz=0.01, limit_px=40_000)  # foreign, no cloid
    listed = ex.fetch_open_orders(SYMBOL, params=profile.open_order_queries()[0])
    assert sorted((profile.is_ours(o["clientOrderId"], WALLET), o["type"]) for o in listed) == [
        (False, "limit"), (True, "market")]
    plain = ex.fetch_open_orders(SYMBOL, params={"method": "openOrders"})  # no trigger details there
    assert sorted((o["clientOrderId"] or "", o["triggerPrice"]) for o in plain) == [("", None), (ours, None)]
    hyperliquid_stub.manual_trade(MAIN_ADDRESS, is_buy=True, sz=0.03)
    (pos,) = ex.fetch_positions([SYMBOL])
    assert (pos["side"], pos["contracts"], pos["entryPrice"]) == ("long", 0.03, 43_000)
    (trade,) = ex.fetch_my_trades(SYMBOL)
    assert trade["info"]["cloid"] is None


# --- secrets -----------------------------------------------------------------------------

def failures(profile: HyperliquidProfile, ex: Any, key: str) -> list[str]:
    """The texts of the errors a session with ``key`` runs into (refusals, rejections)."""
    texts = []
    for attempt in (
        lambda: profile.prepare_account(ex, SYMBOL, leverage=5),
        lambda: profile.prepare_account(ex, SYMBOL, leverage=500),
        lambda: send(profile, ex, spec(OrderKind.STOP_ENTRY_BUY, Side.BUY, OrderType.STOP, 100, 43_500)),
        lambda: profile.make_exchange(creds(key[:-1]), network="testnet"),
    ):
        try:
            attempt()
        except Exception as e:  # noqa: BLE001 - every error text is checked
            texts += [str(e), repr(e)]
    return texts


def test_fake_keys_never_appear_in_logs_or_errors(hyperliquid_stub: HyperliquidStub, caplog: pytest.LogCaptureFixture,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    profile, _ = client(hyperliquid_stub)
    full_session(hyperliquid_stub, verbose=True)
    for key in (OTHER_KEY, AGENT_KEY):
        p2, bad = client(hyperliquid_stub, key)
        bad.verbose = True
        texts += failures(p2, bad, key)
    texts += [repr(creds()), repr(profile), caplog.text, *capsys.readouterr()]
    texts += [json.dumps(r.action) + json.dumps(r.answer) for r in hyperliquid_stub.actions]
    blob = "\n".join(texts)
    assert "Insufficient margin" in blob and "does not exist" in blob  # the errors were captured
    for secret in (AGENT_KEY, MAIN_KEY, OTHER_KEY):
        assert secret[2:].lower() not in blob.lower()
        assert secret[2:34].lower() not in blob.lower()
