"""REAL restart: orders journaled and placed just before a crash (``RealVenue.recover``) that the
resumed strategy does not issue again at once (SPEC §4a, §7, §8). Binance USD-M stub, the
bundled real BTCUSDT path of tests/engine/test_real.py."""

from __future__ import annotations

import asyncio

import pytest

from hedgekit.core.orders import OrderKind, OrderSpec, OrderType, Side, make_client_id
from hedgekit.store.journal import Journal
from tests.engine import test_real
from tests.engine.test_real import (
    Crash,
    CrashAt,
    assert_safe,
    busy_config,
    first_inputs,
    market_feed,
    price_points,
    real_engine,
    stub_feed,
)

stubs = test_real.stubs  # the fixture: one Binance USD-M stub per wallet


def test_a_recovered_order_the_resumed_strategy_never_issues_again_is_cancelled_once_its_input_is_past(
    tmp_path, stubs,
):
    """A stop of ours journaled and placed at the last input before the crash, which the
    resumed strategy never issues (its inputs after the restart differ): once the wallet has
    processed an input later than the intent's, nobody will claim it, so it is an orphan."""
    cfg, points, journal, engine = first_inputs(tmp_path, stubs)
    engine.release_lease()
    long = stubs["long"]
    cid = make_client_id("long", 0, -9, OrderKind.STOP_LOSS, 99)
    spec = OrderSpec(cid, "long", OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, 0.01,
                     round(long.price - 2000, 1), reduce_only=True, unit=-9)  # fmt: skip
    journal.record_intent(engine.run_id, "long", spec, points[29].ts)
    long.add_order(cid, "SELL", 0.01, trigger=spec.price, reduce_only=True)  # sent; then SIGKILL
    again = real_engine(cfg, journal)
    venue = next(w for w in again.wallets if w.name == "long").real
    assert venue is not None and cid in venue.recovered  # kept for a replay of its input
    later = next(i for i, p in enumerate(points) if p.ts > points[29].ts)
    asyncio.run(again.run(stub_feed(points[: later + 5], stubs, again.resume_after)))
    assert [o.client_id for o in long.orders_with(cid) if o.open] == []  # cancelled: not left at the venue
    assert cid not in venue.recovered
    assert_safe(journal, again.run_id, stubs)


def test_a_recovered_order_that_fills_before_the_strategy_issues_it_again_reaches_the_strategy_then(
    tmp_path, stubs,
):
    """The crash came after a stop's intent was journaled; the venue had the stop (it was
    sent) and it fired while the process was down. The restart finds it and its fill before
    the replay of its input issues it again: the fill waits for that, then is the strategy's."""
    cfg = busy_config(tmp_path)
    points = price_points(100)
    journal = Journal.open(tmp_path / "real.db")
    moved = [-1]
    engine = real_engine(cfg, journal)
    engine.hooks = CrashAt(engine, intent=12)
    try:
        asyncio.run(engine.run(market_feed(points, stubs, engine.resume_after, moved)))
    except Crash:
        pass
    else:
        raise AssertionError("the run was meant to die at its 12th intent")
    pending = [(w, o) for w in ("long", "hedge") for o in journal.orders(engine.run_id, w, working_only=True)
               if str(o.status) == "new"]  # fmt: skip
    assert len(pending) == 1, pending
    wallet, order = pending[0]
    assert order.order_type is OrderType.STOP, order  # the intent this test is about: a stop
    stub = stubs[wallet]
    # It reached the venue before the crash, then the market went through its trigger.
    stub.add_order(order.client_id, str(order.side).upper(), order.qty, trigger=order.trigger, reduce_only=order.reduce_only)
    stub.move_to(order.trigger + (-5 if order.side is Side.SELL else 5))
    assert [o.client_id for o in stub.orders_with(order.client_id) if o.open] == []  # filled while down
    again = real_engine(cfg, journal)
    asyncio.run(again.run(market_feed(points, stubs, again.resume_after, moved)))
    assert_safe(journal, again.run_id, stubs)
    fills = [f for f in journal.fills(again.run_id, wallet) if f.client_id == order.client_id]
    assert len(fills) == 1 and fills[0].qty == order.qty


def test_a_recovered_order_nobody_issues_again_that_filled_halts_the_wallet_with_the_diff(tmp_path, stubs):
    """As the first test, but the recovered order (a buy stop above the market) fired while the
    process was down, so its fill is there at the restart, before any input: it was handed to
    the strategy, which never issued that order ("fill for unknown order"). Now it is held;
    once the input is past and nobody claimed it, the position the strategy does not know
    halts the wallet with the diff (SPEC §7), the fill journaled once."""
    cfg, points, journal, engine = first_inputs(tmp_path, stubs)
    engine.release_lease()
    long = stubs["long"]
    cid = make_client_id("long", 0, 9, OrderKind.STOP_ENTRY_BUY, 99)
    spec = OrderSpec(cid, "long", OrderKind.STOP_ENTRY_BUY, Side.BUY, OrderType.STOP, 0.01,
                     round(long.price + 5, 1), unit=9)  # fmt: skip
    journal.record_intent(engine.run_id, "long", spec, points[29].ts)
    long.add_order(cid, "BUY", 0.01, trigger=spec.price)  # sent; then SIGKILL
    held = long.position
    long.move_to(spec.price + 1)  # fired while the process was down
    assert long.position == pytest.approx(held + 0.01)
    again = real_engine(cfg, journal)  # reconciliation on attach: the fill is found now
    venue = next(w for w in again.wallets if w.name == "long").real
    assert venue is not None and venue.held_fill(cid) == 0.01
    later = next(i for i, p in enumerate(points) if p.ts > points[29].ts)
    asyncio.run(again.run(stub_feed(points[: later + 5], stubs, again.resume_after)))
    halted = next(w for w in again.wallets if w.name == "long").halted or ""
    assert cid in halted and "filled 0.01" in halted, halted
    assert sorted(f.fill_id for f in journal.fills(again.run_id, "long")) == sorted(str(t["id"]) for t in long.trades)
    hedge = next(w for w in again.wallets if w.name == "hedge")
    assert hedge.halted is None


def test_the_sweep_never_cancels_a_recovered_stop_the_strategy_counts_as_working(tmp_path, stubs):
    """A recovered client id the resumed strategy already holds as working (its checkpoint has
    it) is the strategy's: claimed by the sweep, not cancelled (SPEC §4a: its protective stop)."""
    cfg, points, journal, engine = first_inputs(tmp_path, stubs)
    engine.release_lease()
    again = real_engine(cfg, journal)
    w = next(w for w in again.wallets if w.name == "long")
    assert w.real is not None
    stops = [s for s in w.runner.strategy.working.values() if s.kind is OrderKind.STOP_LOSS]
    lowest = min(stops, key=lambda s: s.price or 0.0)  # the farthest: not reached by the next inputs
    w.real.recovered[lowest.client_id] = lowest
    w.real.recovered_ts[lowest.client_id] = points[29].ts
    later = next(i for i, p in enumerate(points) if p.ts > points[29].ts)
    asyncio.run(again.run(stub_feed(points[: later + 5], stubs, again.resume_after)))
    assert lowest.client_id not in w.real.recovered
    assert [o.client_id for o in stubs["long"].orders_with(lowest.client_id) if o.open] == [lowest.client_id]
    assert_safe(journal, again.run_id, stubs)
