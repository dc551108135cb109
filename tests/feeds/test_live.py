"""Live feeds: the Binance trade stream against a local server replaying a REAL recorded feed,
and the ccxt feed against fake exchanges on a virtual clock. No test touches the internet."""

from __future__ import annotations

import asyncio
import heapq
import json
from collections.abc import Callable
from functools import cache
from http import HTTPStatus
from typing import Any

import ccxt
import pytest

from hedgekit.core.errors import ParameterError
from hedgekit.feeds.history import load_trades
from hedgekit.feeds.live import (
    Backoff,
    BinanceTradeStream,
    CcxtFeed,
    FeedError,
    FeedItem,
    FeedStatus,
    FeedStatusChange,
    PricePoint,
    parse_binance_trade,
)
from tests.feeds.binance_ws_server import BTC_FEED, BinanceWsServer, load_messages, market_trades

requires_feed = pytest.mark.skipif(
    not BTC_FEED.is_file(),
    reason=f"real Binance feed {BTC_FEED} not found (../shared/data is not checked out here)",
)


@cache
def trade_messages() -> list[tuple[int, str]]:
    return load_messages(BTC_FEED, trades_only=True, limit=1000)


def prices(items: list[FeedItem]) -> list[PricePoint]:
    return [i for i in items if isinstance(i, PricePoint)]


def changes(items: list[FeedItem], status: FeedStatus | None = None) -> list[FeedStatusChange]:
    out = [i for i in items if isinstance(i, FeedStatusChange)]
    return out if status is None else [c for c in out if c.status is status]


def statuses(items: list[FeedItem]) -> list[FeedStatus]:
    return [c.status for c in changes(items)]


def strictly_increasing(values: list[int]) -> bool:
    return all(b > a for a, b in zip(values, values[1:], strict=False))


# -- parsing ----------------------------------------------------------------------------------

RAW = {"e": "trade", "E": 2, "T": 1, "s": "BTCUSDT", "t": 7, "p": "61800.30", "q": "0.006",
       "X": "MARKET", "m": False}  # fmt: skip


def test_parse_binance_trade_reads_raw_and_combined_messages() -> None:
    combined = json.dumps({"stream": "btcusdt@trade", "data": RAW})

    assert parse_binance_trade(json.dumps(RAW)) == PricePoint(1, 61800.3, 7)
    assert parse_binance_trade(combined, "BTCUSDT") == PricePoint(1, 61800.3, 7)
    assert parse_binance_trade(combined.encode()) == PricePoint(1, 61800.3, 7)


def test_parse_binance_trade_skips_what_is_not_a_market_trade_of_the_symbol() -> None:
    assert parse_binance_trade(json.dumps({**RAW, "X": "INSURANCE_FUND"})) is None
    assert parse_binance_trade(json.dumps({**RAW, "s": "ETHUSDT"}), "BTCUSDT") is None
    assert parse_binance_trade('{"result": null, "id": 1}') is None
    book = {"stream": "btcusdt@bookTicker", "data": {"e": "bookTicker", "b": "1", "a": "2"}}
    assert parse_binance_trade(json.dumps(book)) is None


@pytest.mark.parametrize(
    "raw", ["not json", "[1, 2]", json.dumps({**RAW, "p": "abc"}), json.dumps({**RAW, "p": "0"}),
            json.dumps({k: v for k, v in RAW.items() if k != "t"})],
)  # fmt: skip
def test_parse_binance_trade_rejects_broken_trades(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_binance_trade(raw)


# -- backoff ----------------------------------------------------------------------------------


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    backoff = Backoff(initial=0.5, factor=2, max=3, jitter=0)

    assert [backoff.delay(n, backoff.rng()) for n in range(1, 6)] == [0.5, 1, 2, 3, 3]


def test_backoff_jitter_is_seeded_and_only_shortens() -> None:
    backoff = Backoff(initial=1, factor=2, max=8, jitter=0.2, seed=42)
    first, second = backoff.rng(), backoff.rng()

    a = [backoff.delay(n, first) for n in range(1, 8)]
    b = [backoff.delay(n, second) for n in range(1, 8)]

    assert a == b
    for n, d in enumerate(a, start=1):
        plain = min(8, 2 ** (n - 1))
        assert 0.8 * plain <= d <= plain


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0}, {"factor": 0.5}, {"max": 0.1, "initial": 1}, {"jitter": 1},
               {"max_attempts": 0}],
)  # fmt: skip
def test_backoff_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ParameterError, match="backoff"):
        Backoff(**kwargs)


# -- Binance stream against the local replay server -------------------------------------------


async def _consume(
    feed: BinanceTradeStream, items: list[FeedItem], progress: asyncio.Event
) -> None:
    async for item in feed:
        items.append(item)
        progress.set()


async def _until(check: Callable[[], bool], progress: asyncio.Event) -> None:
    while not check():
        progress.clear()
        await progress.wait()


@requires_feed
def test_stream_follows_the_recorded_prices_in_order() -> None:
    messages = load_messages(BTC_FEED, trades_only=False, limit=3000)  # depth, book and trades
    expected = market_trades(messages)
    assert len(expected) > 300

    async def scenario() -> list[FeedItem]:
        async with BinanceWsServer(messages) as server:
            feed = BinanceTradeStream("BTCUSDT", server.url, stale_after=5)
            items: list[FeedItem] = []
            async with asyncio.timeout(10), feed:
                async for item in feed:
                    items.append(item)
                    if len(prices(items)) == len(expected):
                        break
            items.extend([item async for item in feed])  # CLOSED, then the end
            return items

    items = asyncio.run(scenario())

    got = prices(items)
    assert [(p.seq, p.ts, p.price) for p in got] == expected
    assert statuses(items) == [FeedStatus.LIVE, FeedStatus.CLOSED]
    assert isinstance(items[0], FeedStatusChange)
    # the same prices as the history loader reads from the file
    history = load_trades(BTC_FEED)
    assert [p.ts for p in got] == history.ts[: len(got)].tolist()
    assert [p.price for p in got] == history.price[: len(got)].tolist()


@requires_feed
def test_stream_survives_dropped_connections_without_duplicates() -> None:
    messages = trade_messages()[:600]
    expected = market_trades(messages)

    async def scenario() -> tuple[list[FeedItem], BinanceTradeStream, BinanceWsServer]:
        async with BinanceWsServer(messages, drop_after=150, resend=25) as server:
            feed = BinanceTradeStream(
                "BTCUSDT", server.url, stale_after=5, backoff=Backoff(initial=0.02, jitter=0)
            )
            items: list[FeedItem] = []
            async with asyncio.timeout(10), feed:
                async for item in feed:
                    items.append(item)
                    if len(prices(items)) == len(expected):
                        break
            return items, feed, server

    items, feed, server = asyncio.run(scenario())

    assert [(p.seq, p.ts, p.price) for p in prices(items)] == expected
    assert server.connections >= 4
    assert feed.dropped == 25 * (server.connections - 1)  # every re-sent trade was dropped
    reconnects = changes(items, FeedStatus.RECONNECTING)
    assert len(reconnects) == server.connections - 1
    # data flowed in between, so every outage starts again from the initial delay
    assert {(r.attempt, r.delay) for r in reconnects} == {(1, 0.02)}


@requires_feed
def test_stream_outage_reconnects_with_backoff_goes_stale_and_resumes() -> None:
    messages = trade_messages()[:500]
    expected = market_trades(messages)
    backoff = Backoff(initial=0.05, factor=2, max=0.4, jitter=0)

    async def scenario() -> tuple[list[FeedItem], BinanceTradeStream, BinanceWsServer, int]:
        server = BinanceWsServer(messages, resend=30, hold_at=200)
        await server.start()
        feed = BinanceTradeStream("BTCUSDT", server.url, stale_after=0.3, backoff=backoff)
        items: list[FeedItem] = []
        progress = asyncio.Event()
        try:
            async with asyncio.timeout(10):
                consumer = asyncio.create_task(_consume(feed, items, progress))
                await _until(lambda: len(prices(items)) == 200, progress)
                killed_at = len(items)
                await server.stop()  # kill it mid-stream
                await _until(
                    lambda: (
                        FeedStatus.STALE in statuses(items)
                        and len(changes(items, FeedStatus.RECONNECTING)) >= 3
                    ),
                    progress,
                )
                server.refuse(2)  # comes back, but turns the first two handshakes away
                server.release(None)
                await server.start()
                await _until(lambda: len(prices(items)) == len(expected), progress)
        finally:
            await feed.close()
            await server.stop()
        await asyncio.wait_for(consumer, 2)  # ends after CLOSED
        return items, feed, server, killed_at

    items, feed, server, killed_at = asyncio.run(scenario())

    # no trade lost, duplicated or reordered across the outage, though the server re-sent 30
    got = prices(items)
    assert [(p.seq, p.ts, p.price) for p in got] == expected
    assert strictly_increasing([p.seq for p in got])
    assert feed.dropped == 30
    assert server.sent_total == len(expected) + 30
    assert server.refused == 2

    outage = items[killed_at:]
    flow = [c.status for c in changes(outage)]
    assert flow[0] is FeedStatus.RECONNECTING
    assert flow.count(FeedStatus.STALE) == 1
    assert flow.index(FeedStatus.STALE) < flow.index(FeedStatus.LIVE)
    assert flow[-2:] == [FeedStatus.LIVE, FeedStatus.CLOSED]
    reconnects = changes(outage, FeedStatus.RECONNECTING)
    assert [r.attempt for r in reconnects] == list(range(1, len(reconnects) + 1))
    delays = [r.delay for r in reconnects]
    assert delays == [min(0.4, 0.05 * 2**n) for n in range(len(delays))]
    assert "attempt 3 in 0.20s" in reconnects[2].reason
    assert any("503" in r.reason for r in reconnects)  # the refused handshakes
    stale = changes(outage, FeedStatus.STALE)[0]
    assert "no price for" in stale.reason
    # nothing after STALE is a price until LIVE is announced
    after_stale = outage[outage.index(stale) :]
    first_price = next(i for i, x in enumerate(after_stale) if isinstance(x, PricePoint))
    assert after_stale[first_price - 1].status is FeedStatus.LIVE


@requires_feed
def test_stream_gives_up_when_the_server_rejects_the_stream() -> None:
    async def scenario() -> tuple[list[FeedItem], BaseException | None]:
        async with BinanceWsServer(trade_messages()) as server:
            server.refuse(1, HTTPStatus.NOT_FOUND)
            feed = BinanceTradeStream("BTCUSDT", server.url, backoff=Backoff(initial=0.01))
            items: list[FeedItem] = []
            try:
                async with asyncio.timeout(5), feed:
                    async for item in feed:
                        items.append(item)
            except FeedError as exc:
                return items, exc
            return items, None

    items, error = asyncio.run(scenario())

    assert error is not None and "HTTP 404" in str(error)
    assert statuses(items) == [FeedStatus.CLOSED]


def test_stream_constructs_offline_and_checks_its_arguments() -> None:
    feed = BinanceTradeStream("btcusdt")

    assert feed.url == "wss://fstream.binance.com/stream?streams=btcusdt@trade"
    assert feed.status is None
    with pytest.raises(ParameterError, match="symbol"):
        BinanceTradeStream("BTC/USDT:USDT")
    with pytest.raises(ParameterError, match="url"):
        BinanceTradeStream("BTCUSDT", "https://fstream.binance.com")
    with pytest.raises(ParameterError, match="stale_after"):
        BinanceTradeStream("BTCUSDT", stale_after=0)


# -- ccxt feed on a virtual clock -------------------------------------------------------------


class VirtualClock:
    """Time that only moves when every task is waiting: each ``sleep`` is a wake-up on a heap,
    and the driver (``run``) lets the loop settle, then jumps to the earliest wake-up."""

    def __init__(self) -> None:
        self.now = 0.0
        self._wakeups: list[tuple[float, int, asyncio.Future[None]]] = []
        self._count = 0

    def monotonic(self) -> float:
        return self.now

    def now_ms(self) -> int:
        return 1_700_000_000_000 + round(self.now * 1000)

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._wakeups, (self.now + max(0.0, seconds), self._count, future))
        self._count += 1
        await future

    async def run(self) -> None:
        while True:
            for _ in range(50):
                await asyncio.sleep(0)
            while self._wakeups and self._wakeups[0][2].done():  # cancelled sleepers
                heapq.heappop(self._wakeups)
            if not self._wakeups:
                await asyncio.sleep(0.001)
                continue
            when, _, future = heapq.heappop(self._wakeups)
            self.now = max(self.now, when)
            future.set_result(None)


class FakeExchange:
    """A ccxt-like exchange that plays a script: each call returns (or raises) the next step,
    and blocks once the script is done."""

    id = "fakex"

    def __init__(self, clock: VirtualClock, script: list[Any], has: dict[str, bool]) -> None:
        self.clock = clock
        self.script = list(script)
        self.has = has
        self.calls: list[float] = []
        self.closed = False

    async def _step(self) -> Any:
        self.calls.append(self.clock.now)
        if not self.script:
            await asyncio.get_running_loop().create_future()  # blocks until cancelled
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    async def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        return await self._step()

    async def watch_trades(self, symbol: str) -> list[dict[str, Any]]:
        return await self._step()

    async def close(self) -> None:
        self.closed = True


REST = {"fetchTicker": True, "watchTicker": False, "watchTrades": False}
WS_TRADES = {"fetchTicker": True, "watchTicker": True, "watchTrades": True}


def ticker(ts: int, last: float) -> dict[str, Any]:
    return {"symbol": "BTC/USDT:USDT", "timestamp": ts, "last": last}


def trade(trade_id: str, ts: int, price: float) -> dict[str, Any]:
    return {"id": trade_id, "timestamp": ts, "price": price, "amount": 0.1}


def run_ccxt(
    feed: CcxtFeed, clock: VirtualClock, until: Callable[[list[FeedItem]], bool]
) -> tuple[list[FeedItem], list[float], BaseException | None]:
    """Consume ``feed`` on the virtual clock until ``until(items)``; returns the items, the
    virtual time of each, and the error that ended the iteration (if any)."""

    async def scenario() -> tuple[list[FeedItem], list[float], BaseException | None]:
        items: list[FeedItem] = []
        times: list[float] = []
        driver = asyncio.create_task(clock.run())
        try:
            async with asyncio.timeout(5):
                async for item in feed:
                    items.append(item)
                    times.append(clock.now)
                    if until(items):
                        break
        except FeedError as exc:
            return items, times, exc
        finally:
            await feed.close()
            driver.cancel()
        return items, times, None

    return asyncio.run(scenario())


def test_ccxt_rest_polling_backs_off_goes_stale_and_resumes() -> None:
    clock = VirtualClock()
    net = ccxt.NetworkError("binanceusdm GET https://fapi.binance.com/x?signature=SECRET failed")
    script = [ticker(1000, 100.0), net, net, net, net,
              ticker(2000, 101.0), ticker(2000, 101.0), ticker(3000, 102.0)]  # fmt: skip
    exchange = FakeExchange(clock, script, REST)
    feed = CcxtFeed(
        symbol="BTC/USDT:USDT", exchange=exchange, poll_interval=1.0, stale_after=3.0,
        backoff=Backoff(initial=0.5, factor=2, max=30, jitter=0), clock=clock,
    )  # fmt: skip

    items, times, error = run_ccxt(feed, clock, lambda xs: len(prices(xs)) == 3)

    assert error is None
    kinds = [x.status if isinstance(x, FeedStatusChange) else x.price for x in items]
    S = FeedStatus
    assert kinds == [S.LIVE, 100.0, S.RECONNECTING, S.RECONNECTING, S.RECONNECTING, S.STALE,
                     S.RECONNECTING, S.LIVE, 101.0, 102.0]  # fmt: skip
    reconnects = changes(items, S.RECONNECTING)
    assert [(r.attempt, r.delay) for r in reconnects] == [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)]
    # the delays were really waited: poll, +1 s poll interval, then +0.5, +1, +2, +4 backoff
    assert exchange.calls[:8] == [0.0, 1.0, 1.5, 2.5, 4.5, 8.5, 9.5, 10.5]
    assert times[kinds.index(S.STALE)] == 3.0  # 3 s after the last price
    assert changes(items, S.STALE)[0].ts == clock.now_ms() - round((clock.now - 3.0) * 1000)
    assert [p.seq for p in prices(items)] == [1, 2, 3]
    assert feed.dropped == 1  # the repeated ticker
    assert all("SECRET" not in r.reason for r in reconnects)
    assert "NetworkError" in reconnects[0].reason
    assert feed.mode == "rest"
    assert not exchange.closed  # injected: its owner closes it


def test_ccxt_watch_trades_drops_replayed_and_reordered_trades() -> None:
    clock = VirtualClock()
    script = [
        [trade("11", 1000, 100.0), trade("12", 1000, 100.5), trade("13", 1001, 101.0)],
        ccxt.RequestTimeout("watch timed out"),
        [trade("12", 1000, 100.5), trade("13", 1001, 101.0), trade("14", 1002, 102.0)],
        [trade("16", 1004, 104.0), trade("15", 1003, 103.0)],  # 15 arrives after 16
        [trade("17", 1005, 105.0)],
    ]
    exchange = FakeExchange(clock, script, WS_TRADES)
    feed = CcxtFeed(exchange=exchange, backoff=Backoff(initial=0.25, jitter=0), clock=clock)

    items, _, error = run_ccxt(feed, clock, lambda xs: prices(xs)[-1:] != [] and
                               prices(xs)[-1].seq == 17)  # fmt: skip

    assert error is None
    assert feed.mode == "trades"
    # within a batch trades are sorted by time, so 15 is delivered before 16
    assert [p.seq for p in prices(items)] == [11, 12, 13, 14, 15, 16, 17]
    assert feed.dropped == 2
    assert [(r.attempt, r.delay) for r in changes(items, FeedStatus.RECONNECTING)] == [(1, 0.25)]


def test_ccxt_trades_with_opaque_ids_are_deduplicated_by_time_and_id() -> None:
    clock = VirtualClock()
    script = [
        [trade("a", 1000, 1.0), trade("b", 1000, 2.0)],
        [trade("b", 1000, 2.0), trade("c", 1000, 3.0), trade("z", 999, 9.0), trade("d", 1001, 4.0)],
    ]
    feed = CcxtFeed(exchange=FakeExchange(clock, script, WS_TRADES), clock=clock)

    items, _, _ = run_ccxt(feed, clock, lambda xs: len(prices(xs)) == 4)

    assert [(p.seq, p.price) for p in prices(items)] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]
    assert feed.dropped == 2


def test_ccxt_permanent_errors_close_the_feed() -> None:
    clock = VirtualClock()
    exchange = FakeExchange(clock, [ccxt.BadSymbol("fakex does not have market symbol X")], REST)
    feed = CcxtFeed(symbol="X", exchange=exchange, clock=clock)

    items, _, error = run_ccxt(feed, clock, lambda xs: False)

    assert isinstance(error, FeedError) and isinstance(error.__cause__, ccxt.BadSymbol)
    assert feed.error is error
    assert "not retried" in str(error)
    assert statuses(items) == [FeedStatus.CLOSED]
    assert exchange.calls == [0.0]


def test_ccxt_gives_up_after_max_attempts() -> None:
    clock = VirtualClock()
    exchange = FakeExchange(clock, [ccxt.ExchangeNotAvailable("down")] * 5, REST)
    backoff = Backoff(initial=1, jitter=0, max_attempts=3)
    feed = CcxtFeed(exchange=exchange, backoff=backoff, clock=clock, stale_after=100)

    items, _, error = run_ccxt(feed, clock, lambda xs: False)

    assert isinstance(error, FeedError) and "gave up after 3" in str(error)
    assert statuses(items) == [FeedStatus.RECONNECTING] * 3 + [FeedStatus.CLOSED]
    assert exchange.calls == [0.0, 1.0, 3.0, 7.0]


def test_ccxt_feed_builds_real_exchanges_offline_on_their_testnet() -> None:
    feed = CcxtFeed("binanceusdm", "BTC/USDT:USDT")
    rest = CcxtFeed("binanceusdm", "BTC/USDT:USDT", prefer_rest=True)
    hyper = CcxtFeed("hyperliquid", "BTC/USDC:USDC")

    assert feed.mode == "trades" and rest.mode == "rest"
    assert feed.exchange.isSandboxModeEnabled
    assert "testnet" in hyper.exchange.urls["api"]["public"]
    for each in (feed, rest, hyper):
        asyncio.run(each.close())


def test_ccxt_feed_explains_bad_exchange_choices() -> None:
    with pytest.raises(ParameterError, match="did you mean binanceusdm"):
        CcxtFeed("binanceusdn")
    with pytest.raises(ParameterError, match="no testnet"):
        CcxtFeed("kraken", "BTC/USD")
    with pytest.raises(ParameterError, match="poll_interval"):
        CcxtFeed(exchange=FakeExchange(VirtualClock(), [], REST), poll_interval=0)
