"""CcxtVenue with HyperliquidProfile: the same orders on the same real price path give the same
fills on the simulator (PAPER) and through the REAL adapter on the Hyperliquid stub, also when
the venue misbehaves; and what recovery compares survives Hyperliquid's price rounding.

Price path: the first bars of Binance USD-M BTCUSDT 1m candles (typhonun/DcaTpStrategy, MIT,
``../shared/data``), walked as SPEC §6 walks a candle (see test_ccxt_binance_vs_sim.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from loguru import logger

from hedgekit.core.instrument import Instrument
from hedgekit.core.orders import OrderKind, OrderSpec, OrderType, Side, make_client_id
from hedgekit.venues.ccxt_hyperliquid import HyperliquidProfile
from hedgekit.venues.ccxt_profile import VenueCredentials
from hedgekit.venues.ccxt_venue import CcxtVenue, RetryPolicy
from hedgekit.venues.sim import SimConfig, SimExchange
from tests.venues import test_ccxt_binance_vs_sim as binance
from tests.venues.stubs.hyperliquid import AGENT_KEY, MAIN_ADDRESS, HyperliquidStub, start_stub

SYMBOL = "BTC/USDC:USDC"
# BTC on Hyperliquid: 5 size decimals; at ~95 000 five significant figures are whole dollars.
INST = Instrument(SYMBOL, tick_size=1.0, lot_size=0.00001, min_notional=10.0)
# The only actions a REAL run may send: never approveBuilderFee, setReferrer, or a builder.
ALLOWED_ACTIONS = {"updateLeverage", "order", "cancel", "cancelByCloid"}


class Trailer(binance.Trailer):
    """The Binance test's trend follower, its prices at Hyperliquid's tick here."""

    def place(self, price: float, ts: int) -> None:
        old, binance.INST = binance.INST, INST
        try:
            super().place(price, ts)
        finally:
            binance.INST = old


def venue_on(stub: HyperliquidStub, *, sub_account: str = "", attempts: int = 5,
             sleeps: list[float] | None = None, wallet: str | None = None,
             inst: Instrument = INST) -> CcxtVenue:  # fmt: skip
    profile = HyperliquidProfile(rate_limit=False)
    creds = VenueCredentials(secret=AGENT_KEY, wallet_address=MAIN_ADDRESS, sub_account=sub_account)
    exchange = profile.make_exchange(creds, network="testnet", urls={"public": stub.url, "private": stub.url})
    venue = CcxtVenue(profile, exchange, inst, symbol=SYMBOL, retry=RetryPolicy(attempts=attempts),
                      sleep=(sleeps if sleeps is not None else []).append, wallet=wallet)  # fmt: skip
    venue.prepare(leverage=5)
    return venue


def assert_no_builder_or_referrer(stub: HyperliquidStub) -> None:
    assert stub.actions, "the run sent no action at all"
    assert {str(r.action.get("type")) for r in stub.actions} <= ALLOWED_ACTIONS
    assert all("builder" not in r.action for r in stub.actions)


@pytest.fixture(name="stub")
def stub_fixture() -> Iterator[HyperliquidStub]:
    stub = start_stub(price=95_000.0)
    try:
        yield stub
    finally:
        stub.stop()


@pytest.mark.parametrize(("chaos", "ack"), [(None, "resting"), (0.2, "resting"), (0.2, "waitingForTrigger")],
                         ids=["clean", "chaos", "chaos-waiting-ack"])
def test_same_path_same_fills_on_paper_and_on_the_hyperliquid_stub(stub: HyperliquidStub, chaos: float | None,
                                                                   ack: str) -> None:
    """With ``chaos`` a fifth of the private requests fail at random (429, 502 before acting,
    502 after acting, an answer lost after acting) and every fill is listed twice: still the
    same fills, one order per client id, none lost; trigger orders may be acknowledged as the
    bare "waitingForTrigger" (no order id)."""
    path = binance.price_path(120)
    sim = SimExchange(INST, SimConfig(initial_cash=10_000.0, leverage=5, margin_mode="isolated"))
    sim.move_to(path[0], 0)
    paper = Trailer(sim)
    paper.start(path[0], 0)

    stub.move_to(path[0])
    sleeps: list[float] = []
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{message}")
    venue = venue_on(stub, attempts=8, sleeps=sleeps)
    venue.note_price(path[0])  # a Hyperliquid market order is a limit around a reference price
    stub.trigger_ack = ack
    if chaos:
        stub.chaos(seed=12, p=chaos)
        stub.duplicate_fills = True
    real = Trailer(venue)
    real.start(path[0], 0)
    for ts, p in enumerate(path[1:], start=1):
        paper.on_events(sim.move_to(p, ts), p, ts)
        stub.move_to(p)
        venue.note_price(p)
        real.on_events(venue.poll(ts), p, ts)
    stub.chaos(seed=0, p=0.0)
    logger.remove(sink)

    assert len(paper.fills) >= 10  # the path does trade: stops on both sides fired
    assert {k for k, *_ in paper.fills} >= {"mb", "sl", "eb"}
    assert real.fills == paper.fills  # no fill lost, none applied twice
    assert real.position == paper.position == sim.position.qty
    assert venue.account().position == real.position
    cloids = [o.cloid for o in stub.orders.values()]
    assert len(cloids) == len(set(cloids)) == real.seq  # exactly one order per client id
    fills = stub.account(MAIN_ADDRESS).fills
    assert len(venue.fills) == len(fills) and {f.fill_id for f in venue.fills} == {str(f["tid"]) for f in fills}
    open_at_venue = sorted(o.cloid or "" for o in stub.orders.values() if o.status == "open")
    assert open_at_venue == sorted(venue.profile.venue_client_id(o.client_id) for o in venue.open_orders())
    if chaos:
        assert len(sleeps) > 10  # the faults did happen, and were retried
        assert stub.chaos_served["502-after"] and stub.chaos_served["lost"]  # acted, answer lost
        assert any("no answer" in line for line in lines)
    assert AGENT_KEY[2:34] not in "\n".join(lines)  # every warning of the run, and no key in any
    assert_no_builder_or_referrer(stub)


def spec(kind: OrderKind, side: Side, otype: OrderType, qty: float, price: float | None, seq: int, *,
         reduce_only: bool = False) -> OrderSpec:  # fmt: skip
    return OrderSpec(make_client_id("hedge", 1, 0, kind, seq), "hedge", kind, side, otype, qty, price,
                     reduce_only, 0)  # fmt: skip


def test_recovery_compares_the_price_hyperliquid_holds_after_its_5_figure_rounding(stub: HyperliquidStub) -> None:
    # A price has at most 5 significant figures unless it is whole: with the instrument at a
    # 0.1 tick (as on Binance) a stop asked at 103 123.4 is held at 103 123. A restarted run
    # (a fresh adapter) diffing the strategy's desired orders against the venue must see them
    # in sync, not replace them on every start.
    fine = Instrument(SYMBOL, tick_size=0.1, lot_size=0.00001, min_notional=10.0)
    stub.move_to(104_000)
    venue = venue_on(stub, wallet="hedge", inst=fine)
    venue.note_price(104_000)
    entry = spec(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, 0.02, None, 1)
    stop = spec(OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, 0.02, 103_123.4, 2, reduce_only=True)
    grid = spec(OrderKind.GRID_SELL, Side.SELL, OrderType.LIMIT, 0.01, 105_126.6, 3, reduce_only=True)
    for s in (entry, stop, grid):
        venue.submit(s, 1)
    held = {o.cloid: (o.trigger_px or o.limit_px) for o in stub.orders.values() if o.status == "open"}
    assert sorted(float(p) for p in held.values()) == [103_123, 105_127]
    assert [o.spec.price for o in venue.open_orders()] == [103_123, 105_127]
    assert venue.venue_spec(stop).price == 103_123

    restarted = venue_on(stub, wallet="hedge", inst=fine)
    diff = restarted.diff([stop, grid])
    assert diff.in_sync, diff
    assert [o.client_id for o in restarted.open_orders()] == [stop.client_id, grid.client_id]  # adopted
    moved = spec(OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, 0.02, 103_180.2, 2, reduce_only=True)
    diff = restarted.diff([moved, grid])
    assert [(s.price, o.spec.price) for s, o in diff.different] == [(103_180, 103_123)]
    assert not diff.missing and not diff.unexpected

    stub.move_to(103_000)  # the adopted stop fires: its fill is ours, at the held trigger
    (fill,) = [e for e in restarted.poll(2) if hasattr(e, "fill_id")]
    assert (fill.client_id, fill.qty, fill.price) == (stop.client_id, 0.02, 103_123)


def test_an_orphan_of_ours_is_listed_and_cancelled_by_its_cloid_and_foreign_orders_are_left(
    stub: HyperliquidStub,
) -> None:
    venue = venue_on(stub, wallet="hedge")
    profile = venue.profile
    gone = profile.venue_client_id(make_client_id("hedge", 0, 3, OrderKind.GRID_BUY, 7))  # an earlier run's
    other_wallet = profile.venue_client_id(make_client_id("long", 0, 3, OrderKind.GRID_BUY, 7))
    stub.preload_order(MAIN_ADDRESS, is_buy=True, sz=0.01, limit_px=90_000, cloid=gone)
    stub.preload_order(MAIN_ADDRESS, is_buy=True, sz=0.01, limit_px=89_000, cloid=other_wallet)
    stub.preload_order(MAIN_ADDRESS, is_buy=True, sz=0.01, limit_px=88_000)  # by hand, no cloid

    diff = venue.diff([])
    (orphan,) = diff.unexpected
    assert (orphan.client_id, orphan.spec.side, orphan.spec.price) == (gone, Side.BUY, 90_000)
    assert sorted(f.price or 0 for f in venue.foreign_orders()) == [88_000, 89_000]
    venue.cancel(orphan.client_id, 1)
    assert next(stub.accepted("cancelByCloid")).action["cancels"] == [{"asset": 0, "cloid": gone}]
    assert sorted(float(o.limit_px) for o in stub.orders.values() if o.status == "open") == [88_000, 89_000]


def test_a_waiting_trigger_ack_gets_its_order_id_and_lookups_send_only_the_cloid(stub: HyperliquidStub) -> None:
    venue = venue_on(stub, wallet="hedge")
    stub.trigger_ack = "waitingForTrigger"
    entry = spec(OrderKind.STOP_ENTRY_BUY, Side.BUY, OrderType.STOP, 0.01, 96_000, 1)
    assert venue.submit(entry, 1) == []
    order = venue.get_order(entry.client_id)
    assert order is not None and order.venue_id == str(next(iter(stub.orders)))
    stub.http_error(502, executed=True)  # the cancel is done, its answer is a gateway error
    venue.cancel(entry.client_id, 2)
    assert [o.status for o in stub.orders.values()] == ["canceled"]
    assert order.status.is_closed
    lookups: list[dict[str, Any]] = [r for r in stub.info_requests if r.get("type") == "orderStatus"]
    assert lookups and all(set(r) == {"type", "user", "oid"} for r in lookups)


def test_a_sub_account_from_the_credentials_is_traded_as_vault(stub: HyperliquidStub) -> None:
    sub = "0x" + "5b" * 20
    stub.add_account(sub, usdc=5_000, master=MAIN_ADDRESS)
    venue = venue_on(stub, sub_account=sub)
    venue.note_price(95_000)
    venue.submit(spec(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, 0.01, None, 1), 1)
    assert {r.vault for r in stub.actions} == {sub[2:]}
    assert (stub.account(sub).szi, stub.account(MAIN_ADDRESS).szi) == (Decimal("0.01"), 0)
    assert venue.account().position == 0.01
    assert "5b5b" not in repr(VenueCredentials(sub_account=sub))


def test_cancelling_a_partly_filled_order_reports_its_fill_then_the_cancel(stub: HyperliquidStub) -> None:
    # Hyperliquid answers a cancel with a bare "success" (no filled qty): the fill still comes
    # first, from the trades, and the order is closed once.
    venue = venue_on(stub, wallet="hedge")
    venue.note_price(95_000)
    venue.submit(spec(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, 0.02, None, 1), 1)
    grid = spec(OrderKind.GRID_SELL, Side.SELL, OrderType.LIMIT, 0.02, 96_000, 2, reduce_only=True)
    assert venue.submit(grid, 2) == []
    stub.fill_partially(venue.profile.venue_client_id(grid.client_id), 0.005)
    events = venue.cancel(grid.client_id, 3)
    assert [(type(e).__name__, getattr(e, "qty", None), getattr(e, "leaves_qty", None)) for e in events] == [
        ("OrderFilled", 0.005, 0.015), ("OrderCancelled", None, None)]
    assert venue.cancel(grid.client_id, 4) == []  # idempotent
    assert venue.account().position == 0.015


def test_an_order_ended_by_a_status_ccxt_does_not_map_is_reported_cancelled_not_kept_working(
    stub: HyperliquidStub,
) -> None:
    # SPEC §4a: a stop the venue no longer holds must reach the strategy as cancelled (it then
    # sends it again); kept as working, the position would sit without a stop, silently.
    venue = venue_on(stub, wallet="hedge")
    venue.note_price(95_000)
    venue.submit(spec(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, 0.02, None, 1), 1)
    stop = spec(OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, 0.02, 94_000, 2, reduce_only=True)
    assert venue.submit(stop, 2) == []
    stub.scheduled_cancel(MAIN_ADDRESS)
    events = venue.poll(3, rest=True)
    assert [(type(e).__name__, e.client_id) for e in events if not hasattr(e, "fill_id")] == [
        ("OrderCancelled", stop.client_id)]
    order = venue.get_order(stop.client_id)
    assert order is not None and order.status.is_closed


def test_a_market_order_that_finds_nothing_within_its_bound_ends_cancelled_once_not_fatal(stub: HyperliquidStub) -> None:
    # The market ran past the IOC's slippage bound around the feed's price: the venue answers
    # "could not immediately match" and keeps the cloid. The re-rounded resend is refused as a
    # duplicate; that is the first attempt's answer, found by its cloid: the order is over,
    # unfilled (SPEC §4a: the strategy decides what next), never a crash with the position bare.
    venue = venue_on(stub, wallet="hedge")
    venue.note_price(95_000)
    stub.move_to(101_000)  # 6.3 % up: past the 5 % bound
    close = spec(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, 0.01, None, 1)
    events = venue.submit(close, 1)
    assert [(type(e).__name__, e.client_id) for e in events] == [("OrderCancelled", close.client_id)]
    assert [o.status for o in stub.orders.values()] == ["canceled"] and stub.account(MAIN_ADDRESS).szi == 0
    order = venue.get_order(close.client_id)
    assert order is not None and order.status.is_closed and order.filled_qty == 0
