"""SPEC §4a against a venue that cancels a triggered stop: on Hyperliquid a stop-market order is
a market order bounded by its slippage (ccxt sends the trigger less 5 % for a sell), so a gap
past that bound trades nothing and the venue cancels the stop. The wallet must not keep the
position bare: the stop is sent once more, then what it protected is closed at market
(reduce-only) and the wallet stops, saying why."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

from hedgekit.feeds.base import PricePoint
from hedgekit.store.journal import Journal
from tests.engine.test_real import (
    grid_config,
    grid_stub,
    hyperliquid_config,
    hyperliquid_stubs,
    log_lines,
    price_points,
    real_engine,
    stub_feed,
)


def test_a_gap_past_the_stops_slippage_bound_closes_the_position_at_market(tmp_path, monkeypatch):
    from tests.venues.stubs.hyperliquid import MAIN_ADDRESS

    cfg = hyperliquid_config(tmp_path)
    points = price_points(3)
    with hyperliquid_stubs(monkeypatch, points[0].price) as stubs:
        journal = Journal.open(tmp_path / "real.db")
        real = real_engine(cfg, journal)
        accounts = {w: s.account(MAIN_ADDRESS) for w, s in stubs.items()}
        held: dict[str, Decimal] = {}
        gap = round(points[-1].price * 0.9)  # 10 % down: past every sell stop's 5 % bound

        async def feed() -> AsyncIterator[PricePoint]:
            async for pt in stub_feed(points, stubs, real.resume_after):
                yield pt
            for w, stub in stubs.items():  # both wallets long, their sell stops below
                held[w] = accounts[w].szi
                stops = [o.sz for o in stub.orders.values() if o.status == "open" and o.is_trigger and not o.is_buy]
                assert held[w] > 0 and sum(stops) >= held[w], w  # protected before the gap
                stub.move_to(gap, gap=True)
            for k in range(1, 5):  # the inputs after the gap, at its price
                yield PricePoint(points[-1].ts + 60_000 * k, gap, points[-1].seq + k, gap=k == 1)

        with log_lines() as lines:
            asyncio.run(real.run(feed()))
    for w, acct in accounts.items():
        closes = [f for f in acct.fills if f["dir"] == "Close Long"]
        assert acct.szi == 0, w  # closed at market, never left without its stops
        assert all(f["px"] == str(gap) for f in closes) and sum(Decimal(f["sz"]) for f in closes) == held[w], w
        status = next(s for s in journal.wallet_status(real.run_id) if s.wallet == w)
        assert status.position == 0 and status.phase == "STOPPED", w
        said = [line for line in lines if line.startswith(f"{w}: ")]
        assert any("refused (cancelled by the venue); sent once more" in line for line in said), w
        assert any("refused twice (cancelled by the venue); closing" in line for line in said), w


def test_an_entry_stop_the_venue_cancels_after_a_gap_stays_in_the_window_deferred(tmp_path, monkeypatch):
    """The same venue behaviour for an opening stop (SPEC §4a: never silently skipped): the
    long wallet's entry above, cancelled by a gap up past its bound, is re-sent once, then kept
    as a deferred slot at its level; the position keeps its stops."""
    from tests.venues.stubs.hyperliquid import MAIN_ADDRESS

    cfg = hyperliquid_config(tmp_path)
    points = price_points(1)
    start = points[-1]
    down = [start.price - 20.0 * k for k in range(1, 8)]  # 140 USD down: the first stop (one unit) fills
    gap = round(start.price * 1.1)
    with hyperliquid_stubs(monkeypatch, start.price, ("long",)) as stubs:
        journal = Journal.open(tmp_path / "real.db")
        cfg = cfg.model_copy(update={"wallets": [w for w in cfg.wallets if w.name == "long"]})
        real = real_engine(cfg, journal)
        stub = stubs["long"]

        async def feed() -> AsyncIterator[PricePoint]:
            async for pt in stub_feed(points, stubs, real.resume_after):
                yield pt
            seq, ts = start.seq, start.ts
            for k, price in enumerate([*down, gap, gap, gap], start=1):
                stub.move_to(price, gap=price == gap)
                yield PricePoint(ts + 15_000 * k, price, seq + k, gap=price == gap)

        with log_lines() as lines:
            asyncio.run(real.run(feed()))
        szi = stub.account(MAIN_ADDRESS).szi
        stops = sum(o.sz for o in stub.orders.values() if o.status == "open" and o.is_trigger and not o.is_buy)
        cancelled = [o for o in stub.orders.values() if o.is_trigger and o.is_buy and o.status == "canceled"]
    strategy = real.wallets[0].runner.strategy
    deferred = [(o.kind.value, o.unit) for o in strategy.deferred.values()]  # type: ignore[attr-defined]
    assert len(cancelled) == 2  # the entry and its one re-send
    assert ("stop_entry_buy", 0) in deferred
    assert 0 < szi <= stops  # the position still has its stops
    assert any("stop_entry_buy at unit 0 refused (cancelled by the venue); re-sized" in line for line in lines), lines
    assert any("stop_entry_buy at unit 0 refused (cancelled by the venue); deferred" in line for line in lines), lines


def test_the_grid_hedge_closes_its_hedge_at_market_when_a_gap_gets_its_stop_cancelled(tmp_path, monkeypatch):
    """The grid hedge (SPEC §5) on the same venue: short 0.2 BTC with its buy stop above, the
    price gaps 10 % up. On the way the venue fills the four sell rungs left (limits, at their
    levels) and cancels the stop; each stop the grid re-lays for the bigger hedge is past its
    bound at once and cancelled too. The hedge must end closed at market at the gap price, the
    grid stopped saying why, nothing left working at the venue."""
    from tests.venues.stubs.hyperliquid import MAIN_ADDRESS

    cfg = grid_config(tmp_path, "hyperliquid", {"stop_loss_pct": 0.002, "take_profit_pct": 0.003})
    start = price_points(1)[-1]
    with grid_stub("hyperliquid", start.price, "grid", monkeypatch) as stub:
        journal = Journal.open(tmp_path / "real.db")
        real = real_engine(cfg, journal)
        acct = stub.account(MAIN_ADDRESS)
        gap = round(start.price * 1.1)
        held: list[Decimal] = []

        async def feed() -> AsyncIterator[PricePoint]:
            async for pt in stub_feed([start], {"grid": stub}, real.resume_after):
                yield pt
            price, k = start.price, 0
            while acct.szi == 0 or k < 3:  # up 20 USD an input until the first rung fills, then two more inputs
                k += 1
                price += 20.0 if acct.szi == 0 else 0.0
                stub.move_to(price)
                yield PricePoint(start.ts + 15_000 * k, price, start.seq + k)
            stops = [o.sz for o in stub.orders.values() if o.status == "open" and o.is_trigger and o.is_buy]
            assert acct.szi < 0 and sum(stops) >= -acct.szi  # a short hedge under its stop
            stub.move_to(gap, gap=True)
            held.append(-acct.szi)
            for j in range(1, 5):  # the inputs after the gap, at its price
                yield PricePoint(start.ts + 15_000 * (k + j), gap, start.seq + k + j, gap=j == 1)

        with log_lines() as logged:
            asyncio.run(real.run(feed()))
        working = [o for o in stub.orders.values() if o.status == "open"]
    lines = [line.rstrip() for line in logged]
    closes = [f for f in acct.fills if f["dir"] == "Close Short"]
    assert held == [Decimal("1")]  # the four rungs left filled in the gap: the whole 1 BTC hedged
    assert acct.szi == 0 and working == []
    assert all(f["px"] == str(gap) for f in closes) and sum(Decimal(f["sz"]) for f in closes) == held[0]
    status = next(s for s in journal.wallet_status(real.run_id) if s.wallet == "grid")
    assert status.position == 0 and status.phase == "STOPPED"
    said = [line for line in lines if line.startswith("grid: hedge_stop_loss at ")]
    assert said[0].endswith("refused (cancelled by the venue); sent once more"), lines
    assert "refused twice (cancelled by the venue); closing the hedge" in said[1] and len(said) == 2, lines
