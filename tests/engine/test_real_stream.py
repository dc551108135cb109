"""REAL mode with the user stream on (the default), against the Binance USD-M stub and its
user-data websocket: the same fills as PAPER, each journaled exactly once (the journal's fill
ids are the stub's trade ids), REST asked for trades only as a safety net, a disconnect in the
middle of a run reconciled after the reconnect without losing a fill, and on a live feed a fill
journaled as soon as it is pushed, before any new price.

The feed moves the stub, then waits (upper bound only) until every trade the stub pushed has
reached the wallet's stream, as a venue pushes a fill before its next price tick arrives.
Price path and helpers: tests/engine/test_real.py."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from hedgekit.engine.live import LiveEngine
from hedgekit.engine.real import VENUE_URLS_ENV, RealVenue, make_venue
from hedgekit.feeds.base import PricePoint
from hedgekit.store.journal import Journal
from tests.engine.test_real import (
    WALLETS,
    busy_config,
    fills_of,
    hyperliquid_config,
    hyperliquid_stubs,
    paper_feed,
    price_points,
    real_engine,
)
from tests.venues.stubs import hyperliquid as hl
from tests.venues.stubs.binance_usdm import API_KEY, SECRET, BinanceUsdmStub

WAIT_S = 20.0


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, BinanceUsdmStub]]:
    first = price_points(1)[0].price
    with BinanceUsdmStub(price=first, balance=100_000.0) as a, BinanceUsdmStub(price=first, balance=100_000.0) as b:
        table = {"long": a, "hedge": b}
        monkeypatch.setenv(VENUE_URLS_ENV, json.dumps({w: s.urls(ws=True) for w, s in table.items()}))
        for w in WALLETS:
            monkeypatch.setenv(f"HEDGEKIT_{w.upper()}_API_KEY", API_KEY)
            monkeypatch.setenv(f"HEDGEKIT_{w.upper()}_API_SECRET", SECRET)
        yield table


def venue_of(engine: LiveEngine, wallet: str) -> RealVenue:
    venue = next(w.real for w in engine.wallets if w.name == wallet)
    assert venue is not None
    return venue


async def until(cond, what: str) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + WAIT_S
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


async def pushed_in(engine: LiveEngine, stubs: dict[str, BinanceUsdmStub] | dict[str, hl.HyperliquidStub]) -> None:
    """Until each started stream has every trade its stub pushed, and has reconnected after
    each connection its stub dropped."""
    for w, stub in stubs.items():
        s = venue_of(engine, w).stream
        if s is None or not s.started:
            continue
        await until(lambda: {str(t) for t in stub.ws.sent_tags} <= set(s.received)  # noqa: B023
                    and s.generation > stub.ws.dropped and s.up, f"{w}'s stream")  # noqa: B023


async def stream_feed(points: list[PricePoint], stubs: dict[str, BinanceUsdmStub], engine: LiveEngine,
                      drop_every: int = 0) -> AsyncIterator[PricePoint]:  # fmt: skip
    for pt in points:
        if drop_every and pt.seq and pt.seq % drop_every == 0:
            for stub in stubs.values():
                stub.ws.drop_next = 1  # the next fill is booked, its message lost with the connection
        for stub in stubs.values():
            stub.move_to(pt.price)
        await pushed_in(engine, stubs)
        yield pt


def journal_ids(journal: Journal, run_id: int, wallet: str) -> list[str]:
    return [f.fill_id for f in journal.fills(run_id, wallet)]


def run_paper(cfg, tmp_path, points):  # type: ignore[no-untyped-def]
    pj = Journal.open(tmp_path / "paper.db")
    paper = LiveEngine(cfg, mode="paper", journal=pj, source="replay:stub-path", printer=lambda _l: None)
    paper.open(0)
    asyncio.run(paper.run(paper_feed(points)))
    return fills_of(pj, paper.run_id)


@pytest.mark.parametrize("fault", ["clean", "duplicate+reverse"])
def test_paper_and_real_with_the_user_stream_give_the_same_fills(tmp_path, stubs, fault):
    cfg = busy_config(tmp_path)
    points = price_points(100)
    want = run_paper(cfg, tmp_path, points)
    rj = Journal.open(tmp_path / "real.db")
    real = real_engine(cfg, rj)
    for stub in stubs.values():
        stub.ws.duplicate = stub.ws.reverse = fault != "clean"
    asyncio.run(real.run(stream_feed(points, stubs, real)))
    assert sum(len(v) for v in want.values()) >= 6, want
    assert fills_of(rj, real.run_id) == want
    for w, stub in stubs.items():
        stream = venue_of(real, w).stream
        assert stream is not None and not stream.up  # closed with the run
        assert set(stream.received) >= {str(t) for t in stub.ws.sent_tags} and stream.received
        assert journal_ids(rj, real.run_id, w) == [str(t["id"]) for t in stub.trades]  # each once
        trade_polls = sum(1 for m, p, _ in stub.requests if (m, p) == ("GET", "/fapi/v1/userTrades"))
        # REST for trades: the catch-up after connecting, immediate fills (market orders,
        # cancels) and the safety net; far fewer than the inputs
        assert trade_polls < len(points) / 4, (trade_polls, len(points))


def test_a_stream_dropped_mid_run_is_reconciled_and_loses_no_fill(tmp_path, stubs):
    """Every 150 inputs the next fill's message is lost with the connection: the stream
    reconnects, the wallet is reconciled (its alert says so), REST brings the fill once."""
    cfg = busy_config(tmp_path)
    points = price_points(100)
    want = run_paper(cfg, tmp_path, points)
    rj = Journal.open(tmp_path / "real.db")
    real = real_engine(cfg, rj)
    reconnects: list[str] = []
    real.alerts.reconnect = reconnects.append  # type: ignore[method-assign]
    asyncio.run(real.run(stream_feed(points, stubs, real, drop_every=150)))
    for w, stub in stubs.items():
        stream = venue_of(real, w).stream
        assert stream is not None
        assert stub.ws.dropped >= 2 and stream.generation == stub.ws.dropped + 1
        lost = {str(t["id"]) for t in stub.trades} - {str(t) for t in stub.ws.sent_tags}
        assert lost and lost <= set(journal_ids(rj, real.run_id, w))  # never pushed, journaled
        assert journal_ids(rj, real.run_id, w) == [str(t["id"]) for t in stub.trades]
        assert reconnects.count(f"{w} user stream") == stub.ws.dropped
        status = next(s for s in rj.wallet_status(real.run_id) if s.wallet == w)
        assert stub.position == pytest.approx(status.position)
    assert fills_of(rj, real.run_id) == want


def test_on_a_live_feed_a_pushed_fill_is_journaled_before_the_next_price(tmp_path, stubs, capfd):
    cfg = busy_config(tmp_path)
    points = price_points(30)
    rj = Journal.open(tmp_path / "real.db")
    real = LiveEngine(
        cfg, mode="real", journal=rj, source="ws:stub-path", printer=lambda _l: None,
        venue_factory=lambda wallet: make_venue(cfg, wallet, network="testnet", sleep=lambda _s: None),
    )
    real.open(0)
    seen: dict[str, object] = {}

    async def feed() -> AsyncIterator[PricePoint]:
        async for pt in stream_feed(points, stubs, real):
            yield pt
        # No more prices: the market moves on its own to the long wallet's nearest stop.
        stub = stubs["long"]
        price = stub.price
        trigger = max((o.trigger for o in stub.algos.values() if o.status == "NEW" and o.side == "SELL"),
                      default=None)  # fmt: skip
        assert trigger is not None, "the long wallet has a working sell stop"
        before = len(stub.trades)
        stub.move_to(trigger - 1.0)
        assert len(stub.trades) > before
        tid = str(stub.trades[-1]["id"])
        await until(lambda: tid in journal_ids(rj, real.run_id, "long"), "the pushed fill in the journal")
        seen["tid"], seen["price"] = tid, price

    asyncio.run(real.run(feed()))
    assert seen["tid"] in journal_ids(rj, real.run_id, "long")
    assert journal_ids(rj, real.run_id, "long") == [str(t["id"]) for t in stubs["long"].trades]
    # The run closed its streams: threads ended, no client session left open.
    gc.collect()
    for w in WALLETS:
        stream = venue_of(real, w).stream
        assert stream is not None and stream.generation >= 1 and not stream.started
    assert "nclosed" not in capfd.readouterr().err


# -- Hyperliquid -------------------------------------------------------------------------------
@contextlib.contextmanager
def hl_stubs(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, hl.HyperliquidStub]]:
    """A fresh Hyperliquid stub per wallet (each its own account: the dual-wallet set-up)."""
    with hyperliquid_stubs(monkeypatch, price_points(1)[0].price, stream=True) as table:
        yield table


def test_on_hyperliquid_the_user_stream_gives_the_fills_rest_polling_gives(tmp_path, monkeypatch):
    """The same REAL run on the Hyperliquid stub (USDC perp, whole-dollar prices), once polling
    REST at every input (``venue.user_stream: false``) and once with the stream, whose messages
    come twice and out of order: the same fills, each journaled once. (Against PAPER the
    Hyperliquid stub differs already without a stream: its market orders fill where the stub's
    price went past a stop, not at the stop as PAPER's walker does.)"""
    runs = {}
    for stream in (False, True):
        cfg = hyperliquid_config(tmp_path, user_stream=stream)
        with hl_stubs(monkeypatch) as stubs:
            rj = Journal.open(tmp_path / f"real-{stream}.db")
            real = real_engine(cfg, rj)
            for stub in stubs.values():
                stub.ws.duplicate = stub.ws.reverse = True
            asyncio.run(real.run(stream_feed(price_points(60), stubs, real)))  # type: ignore[arg-type]
            runs[stream] = fills_of(rj, real.run_id)
            for w, stub in stubs.items():
                booked = [str(f["tid"]) for f in stub.account(hl.MAIN_ADDRESS).fills]
                assert journal_ids(rj, real.run_id, w) == booked  # each once
                assert all("builder" not in r.action for r in stub.actions)
                s = venue_of(real, w).stream
                if stream:
                    assert s is not None and stub.ws.sent_tags
                    assert {str(t) for t in stub.ws.sent_tags} <= set(s.received)
                else:
                    assert s is None and stub.ws.connections == 0
    assert sum(len(v) for v in runs[False].values()) >= 6, runs
    assert runs[True] == runs[False]
