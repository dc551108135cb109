"""REAL books the funding the venue settled: read back once per hour and at every
reconciliation, each payment once (also across a restart), into cash, equity and the status
row's funding total, and told to the strategy.

Price path: the first 100 bars of the bundled real Binance USD-M BTCUSDT 1m history
(``tests/engine/test_real.py`` ``price_points``: 362 inputs, starting at minute 33 of an hour;
the next hours start at inputs 81 and 326). The stubs settle funding when the test says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from hedgekit.core.events import FundingSettled
from hedgekit.engine.real import make_venue
from hedgekit.feeds.base import PricePoint
from hedgekit.store.journal import Journal
from tests.engine import test_real
from tests.engine.test_real import (
    WALLETS,
    assert_safe,
    busy_config,
    hyperliquid_config,
    hyperliquid_stubs,
    price_points,
    real_engine,
    stub_feed,
)

binance = test_real.stubs  # the fixture: one Binance USD-M stub per wallet

RATE = 0.0005  # a high funding rate, so the amounts are far above rounding


def funded_feed(points: list[PricePoint], venues: dict, after: int, settle_at: set[int],
                settled: list[float], stop_at: int | None = None) -> AsyncIterator[PricePoint]:  # fmt: skip
    async def feed() -> AsyncIterator[PricePoint]:
        async for pt in stub_feed(points, venues, after, stop_at):
            if pt.seq in settle_at:
                for stub in venues.values():
                    amount = stub.settle_funding(RATE)
                    settled.append(float(amount if not isinstance(amount, dict) else sum(amount.values())))
            yield pt
    return feed()


def status_of(journal: Journal, run_id: int, wallet: str):
    return next(s for s in journal.wallet_status(run_id) if s.wallet == wallet)


def test_funding_settled_by_binance_is_booked_once_per_payment_into_cash_and_the_status(tmp_path, binance):
    cfg = busy_config(tmp_path)
    points = price_points(100)
    journal = Journal.open(tmp_path / "real.db")
    engine = real_engine(cfg, journal)
    settled: list[float] = []
    # Payments at inputs 20 and 60 (hour 1) and 200 (hour 2): read at inputs 81 and 326.
    asyncio.run(engine.run(funded_feed(points, binance, engine.resume_after, {20, 60, 200}, settled)))
    assert any(settled), "the wallets never held a position at a funding time: the test proves nothing"
    for w, stub in binance.items():
        venue_total = sum(float(r["income"]) for r in stub.incomes)
        status = status_of(journal, engine.run_id, w)
        assert status.funding == pytest.approx(venue_total, abs=1e-9), w
        venue = next(x for x in engine.wallets if x.name == w).real
        assert venue is not None and venue.funding_paid == pytest.approx(venue_total, abs=1e-9), w
        # Cash is what the venue holds: start balance + realized - fees + funding.
        assert venue.cash == pytest.approx(stub.balance, abs=1e-6), w
    assert_safe(journal, engine.run_id, binance)
    # The funding requests are few: once per hour of data, plus reconciliations.
    calls = [r for r in binance["long"].requests if r[1] == "/fapi/v1/income"]
    assert 2 <= len(calls) <= 4, calls


def test_a_payment_made_while_the_bot_was_down_is_booked_at_the_restart_and_never_twice(tmp_path, binance):
    cfg = busy_config(tmp_path)
    points = price_points(100)
    journal = Journal.open(tmp_path / "real.db")
    settled: list[float] = []
    first = real_engine(cfg, journal)
    asyncio.run(first.run(funded_feed(points, binance, first.resume_after, {30}, settled, stop_at=150)))
    for stub in binance.values():
        stub.settle_funding(RATE)  # while nothing runs
    second = real_engine(cfg, journal)
    asyncio.run(second.run(funded_feed(points, binance, second.resume_after, {300}, settled)))
    assert second.run_id == first.run_id
    paid = 0
    for w, stub in binance.items():
        venue_total = sum(float(r["income"]) for r in stub.incomes)
        paid += len(stub.incomes)
        assert status_of(journal, second.run_id, w).funding == pytest.approx(venue_total, abs=1e-9), w
    assert paid >= 3, "too few payments to prove anything"
    assert_safe(journal, second.run_id, binance)


def test_the_strategy_is_told_each_payment(tmp_path, binance, monkeypatch):
    cfg = busy_config(tmp_path)
    points = price_points(100)
    journal = Journal.open(tmp_path / "real.db")
    engine = real_engine(cfg, journal)
    told: dict[str, list[FundingSettled]] = {w: [] for w in WALLETS}
    names = {id(x.runner.strategy): x.name for x in engine.wallets}
    for cls in {type(x.runner.strategy) for x in engine.wallets}:  # the class: instances are snapshotted
        def spy(self, event, _on: Callable = cls.on_event):
            if isinstance(event, FundingSettled):
                told[names[id(self)]].append(event)
            return _on(self, event)

        monkeypatch.setattr(cls, "on_event", spy)
    settled: list[float] = []
    asyncio.run(engine.run(funded_feed(points, binance, engine.resume_after, {60}, settled)))
    for w, stub in binance.items():
        want = [pytest.approx(float(r["income"]), abs=1e-9) for r in stub.incomes]
        assert [e.amount for e in told[w]] == want, w
        assert [e.rate for e in told[w]] == [RATE] * len(want), w  # looked up: Binance's rows lack it


def test_funding_settled_by_hyperliquid_is_booked_once_per_payment(tmp_path, monkeypatch):
    hl = pytest.importorskip("tests.venues.stubs.hyperliquid")
    cfg = hyperliquid_config(tmp_path)
    points = price_points(100)
    with hyperliquid_stubs(monkeypatch, points[0].price) as venues:
        journal = Journal.open(tmp_path / "real.db")
        engine = real_engine(cfg, journal)
        settled: list[float] = []
        asyncio.run(engine.run(funded_feed(points, venues, engine.resume_after, {20, 60, 200}, settled)))
        assert any(settled)
        for w, stub in venues.items():
            rows = stub.accounts[hl.MAIN_ADDRESS.lower()].funding
            venue_total = sum(float(r["delta"]["usdc"]) for r in rows)
            assert status_of(journal, engine.run_id, w).funding == pytest.approx(venue_total, abs=1e-6), w


@pytest.mark.parametrize("held", [0.0, 0.05], ids=["flat", "long"])
def test_every_settlement_reaches_the_strategy_with_its_rate_and_only_payments_are_booked(tmp_path, binance, held):
    """As the simulated market does: a settlement while flat is told with amount 0 and the
    rate (a grid sizes its rungs by it); a settlement on a position is a payment, booked once."""
    cfg = busy_config(tmp_path)
    stub = binance["long"]
    venue = make_venue(cfg, "long", network="testnet", sleep=lambda _s: None)
    venue.prepare(leverage=1)
    venue.note_price(stub.price)
    if held:
        stub.set_position(held, stub.price)
    amount = stub.settle_funding(RATE)
    events = venue.poll_funding(0, now=True)
    assert [(e.amount, e.rate) for e in events] == [(pytest.approx(amount, abs=1e-9), pytest.approx(RATE))]
    assert (amount != 0) == bool(held)
    assert venue.funding_paid == pytest.approx(amount, abs=1e-9)
    assert len(venue.funding_log) == (1 if held else 0)
    if held:
        paid = venue.funding_log[0]
        assert paid.mark_price == pytest.approx(stub.price) and paid.rate == pytest.approx(RATE)
    assert venue.poll_funding(0, now=True) == []  # each settlement once
