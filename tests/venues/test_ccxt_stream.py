"""The user stream (``venues.ccxt_stream``) feeding the REAL adapter, on both stub venues: fills
pushed by the websocket are applied once, in the exchange's order, whatever the stream does
(duplicates, out of order, a drop right after a fill was booked, silence), and REST is asked
for trades only when the stream cannot vouch for them.

No test waits on time: each waits for a condition (what the stub sent has arrived, the stream
reconnected) with an upper bound only; the REST safety net runs on an injected clock."""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from hedgekit.core.events import OrderFilled
from hedgekit.core.instrument import Instrument
from hedgekit.venues.ccxt_binance import BinanceUsdmProfile
from hedgekit.venues.ccxt_hyperliquid import HyperliquidProfile
from hedgekit.venues.ccxt_profile import VenueCredentials, VenueProfile
from hedgekit.venues.ccxt_stream import UserStream
from hedgekit.venues.ccxt_venue import REST_EVERY_MS, CcxtVenue, RetryPolicy
from tests.venues import test_ccxt_hyperliquid_vs_sim as hl_sim
from tests.venues.stubs import hyperliquid as hl
from tests.venues.stubs.binance_usdm import API_KEY, SECRET, BinanceUsdmStub
from tests.venues.stubs.ws import WsServer
from tests.venues.test_ccxt_binance import INST as BINANCE_INST
from tests.venues.test_ccxt_binance import buy_market, stop_loss

VENUES = ("binance", "hyperliquid")
WAIT_S = 20.0  # upper bound of every wait (a loaded 2-core machine)


def wait_until(cond: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Wait for ``cond`` (an upper bound only: it returns as soon as ``cond`` holds)."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


@dataclass
class Rig:
    venue: CcxtVenue
    stream: UserStream
    ws: WsServer
    price: float
    move_to: Callable[[float], None]
    trade_ids: Callable[[], list[str]]  # the venue's trades, in the order it booked them
    clock: list[int]

    def sent(self) -> set[str]:
        return {str(t) for t in self.ws.sent_tags}

    def wait_pushed(self) -> None:
        """Until every copy of every trade the stub pushed has reached the stream."""
        def arrived() -> bool:
            got = Counter(self.stream.received)
            return all(got[str(tag)] >= n for tag, n in self.ws.sent_copies.items())

        wait_until(arrived, "the pushed trades")

    def fill_ids(self) -> list[str]:
        return [f.fill_id for f in self.venue.fills]


def _rig(profile: VenueProfile, creds: VenueCredentials, urls: dict, inst: Instrument, symbol: str,
         ws: WsServer, price: float, move_to: Callable[[float], None],
         trade_ids: Callable[[], list[str]]) -> Rig:  # fmt: skip
    clock = [time.time_ns() // 1_000_000]
    stream = UserStream(lambda: profile.make_exchange(creds, network="testnet", urls=urls, pro=True), symbol,
                        name="long", backoff=RetryPolicy(attempts=0, base_s=0.01, max_s=0.05))  # fmt: skip
    exchange = profile.make_exchange(creds, network="testnet", urls=urls)
    exchange.enableRateLimit = False
    venue = CcxtVenue(profile, exchange, inst, symbol=symbol, stream=stream, clock=lambda: clock[0],
                      sleep=lambda _s: None, wallet="long")  # fmt: skip
    venue.prepare(leverage=5)
    venue.note_price(price)
    stream.start()
    wait_until(lambda: stream.up, "the stream to connect")
    return Rig(venue, stream, ws, price, move_to, trade_ids, clock)


@pytest.fixture(params=VENUES)
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    if request.param == "binance":
        with BinanceUsdmStub(price=60_000.0) as stub:
            r = _rig(BinanceUsdmProfile(), VenueCredentials(API_KEY, SECRET), stub.urls(ws=True), BINANCE_INST,
                     "BTC/USDT:USDT", stub.ws, 60_000.0, stub.move_to,
                     lambda: [str(t["id"]) for t in stub.trades])  # fmt: skip
            try:
                yield r
            finally:
                r.stream.close()
    else:
        stub = hl.start_stub(price=95_000.0)
        try:
            urls = {"public": stub.url, "private": stub.url, "ws": {"public": stub.ws_url}}
            r = _rig(HyperliquidProfile(rate_limit=False), VenueCredentials(secret=hl.AGENT_KEY,
                     wallet_address=hl.MAIN_ADDRESS), urls, hl_sim.INST, hl_sim.SYMBOL, stub.ws, 95_000.0,
                     stub.move_to, lambda: [str(f["tid"]) for f in stub.account(hl.MAIN_ADDRESS).fills])  # fmt: skip
            try:
                yield r
            finally:
                r.stream.close()
        finally:
            stub.stop()


def _long_with_stops(r: Rig, stops: int = 3) -> list[str]:
    """A long of ``stops`` × 0.01 (filled at once: REST is asked, as for any immediate fill)
    and one reduce-only stop of 0.01 every 100 below the price. Returns the stops' ids."""
    [entry] = r.venue.submit(buy_market(1, 0.01 * stops), 1)
    assert isinstance(entry, OrderFilled)
    ids = []
    for i in range(stops):
        spec = stop_loss(10 + i, 0.01, r.price - 100 * (i + 1))
        assert r.venue.submit(spec, 2) == []
        ids.append(spec.client_id)
    r.wait_pushed()
    assert r.venue.poll(3, rest=r.venue.rest_due()) == []  # the entry's pushed copy changes nothing
    return ids


@pytest.mark.parametrize("fault", ["clean", "duplicate", "reverse", "duplicate+reverse"])
def test_fills_come_from_the_stream_once_and_in_the_venues_order(rig: Rig, fault: str) -> None:
    stops = _long_with_stops(rig)
    rig.ws.duplicate = "duplicate" in fault
    rig.ws.reverse = "reverse" in fault
    rig.move_to(rig.price - 400)  # the three stops fire in one move: one burst of messages
    rig.wait_pushed()
    booked = rig.trade_ids()
    received = rig.stream.received[-(6 if rig.ws.duplicate else 3):]
    if rig.ws.reverse:
        assert received[0] == booked[-1]  # the stream did get them out of order
    assert not rig.venue.rest_due()  # the stream is up and caught up: no REST poll for trades
    events = rig.venue.poll(4, rest=rig.venue.rest_due())
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [f.client_id for f in fills] == stops  # in the order the venue filled them
    assert [f.fill_id for f in fills] == booked[-3:]
    assert all(f.qty == pytest.approx(0.01) and f.leaves_qty == 0 for f in fills)
    assert rig.fill_ids() == booked  # every trade of the account applied exactly once
    assert rig.venue.poll(5, rest=True) == []  # REST lists them again: nothing changes
    assert rig.venue.position.qty == pytest.approx(0.0)


def test_a_drop_right_after_a_fill_loses_nothing(rig: Rig) -> None:
    """The connection drops after the venue booked a fill and before it pushed it: the stream
    does not see that trade live; REST finds it (once) as soon as the stream is not vouching, and the
    reconnect is reported once so that the engine reconciles."""
    stops = _long_with_stops(rig)
    rig.ws.drop_next = 1
    rig.move_to(rig.price - 150)  # the first stop fires; its message is lost with the connection
    lost = rig.trade_ids()[-1]
    wait_until(lambda: rig.stream.drops == 1 and rig.stream.generation == 2, "the stream to drop and reconnect")
    # Never pushed live (Hyperliquid's new subscription does replay it in its snapshot).
    assert lost not in rig.sent()
    assert rig.venue.rest_due()  # a new connection: what happened before it is asked by REST
    fills = [e for e in rig.venue.poll(4, rest=rig.venue.rest_due()) if isinstance(e, OrderFilled)]
    assert [(f.client_id, f.fill_id) for f in fills] == [(stops[0], lost)]
    assert rig.stream.take_reconnect() and not rig.stream.take_reconnect()
    # After the reconnect the next fill comes by the stream again, REST not asked.
    rig.move_to(rig.price - 250)
    rig.wait_pushed()
    assert not rig.venue.rest_due()
    fills = [e for e in rig.venue.poll(5, rest=False) if isinstance(e, OrderFilled)]
    assert [f.client_id for f in fills] == [stops[1]]
    assert rig.fill_ids() == rig.trade_ids()


def test_a_silent_stream_is_caught_by_the_rest_safety_net(rig: Rig) -> None:
    stops = _long_with_stops(rig, stops=1)
    rig.ws.silent = True
    rig.move_to(rig.price - 150)
    assert not rig.venue.rest_due()
    assert rig.venue.poll(4, rest=rig.venue.rest_due()) == []  # not pushed, REST not due yet
    rig.clock[0] += REST_EVERY_MS
    assert rig.venue.rest_due()
    fills = [e for e in rig.venue.poll(5, rest=rig.venue.rest_due()) if isinstance(e, OrderFilled)]
    assert [f.client_id for f in fills] == stops
    assert rig.trade_ids()[-1] not in rig.stream.received
    assert rig.fill_ids() == rig.trade_ids()


def test_a_stream_down_means_rest_at_every_poll(rig: Rig) -> None:
    rig.stream.close()
    assert not rig.stream.up and rig.venue.rest_due()


def test_a_partial_fill_pushed_in_two_trades() -> None:
    """Binance: a triggered stop fills half now and the rest at the next move; each part is
    pushed and applied once (``leaves_qty`` first > 0, then 0)."""
    with BinanceUsdmStub(price=60_000.0) as stub:
        r = _rig(BinanceUsdmProfile(), VenueCredentials(API_KEY, SECRET), stub.urls(ws=True), BINANCE_INST,
                 "BTC/USDT:USDT", stub.ws, 60_000.0, stub.move_to, lambda: [str(t["id"]) for t in stub.trades])  # fmt: skip
        try:
            [stop] = _long_with_stops(r, stops=1)
            stub.partial_next = 0.5
            stub.move_to(59_850)
            r.wait_pushed()
            first = r.venue.poll(4, rest=False)
            stub.move_to(59_840)
            r.wait_pushed()
            second = r.venue.poll(5, rest=False)
            assert [(e.client_id, e.qty, e.leaves_qty) for e in first] == [(stop, 0.005, 0.005)]
            assert [(e.client_id, e.qty, e.leaves_qty) for e in second if isinstance(e, OrderFilled)] == [(stop, 0.005, 0.0)]
            assert r.fill_ids() == r.trade_ids()
        finally:
            r.stream.close()


def test_closing_the_stream_leaves_no_session_open(rig: Rig, capfd: pytest.CaptureFixture[str]) -> None:
    thread = rig.stream._thread
    rig.stream.close()
    gc.collect()
    assert thread is not None and not thread.is_alive()
    err = capfd.readouterr().err
    assert "Unclosed" not in err and "unclosed" not in err
