"""REAL restart: orders journaled and placed just before a crash (``RealVenue.recover``) that the
resumed strategy does not issue again at once (SPEC §4a, §7, §8). Binance USD-M stub, the
bundled real BTCUSDT path of tests/engine/test_real.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ccxt
import pytest

from hedgekit.alerts import Alerts
from hedgekit.config import BacktestConfig
from hedgekit.core.orders import (
    OrderKind,
    OrderSpec,
    OrderType,
    Side,
    make_client_id,
    orphan_close_id,
)
from hedgekit.engine.live import LiveEngine
from hedgekit.engine.live_state import LiveWallet
from hedgekit.engine.real import VENUE_URLS_ENV
from hedgekit.feeds.base import PricePoint
from hedgekit.store.journal import Journal
from tests.engine import test_real
from tests.engine.sigkill import BinanceBook, HyperliquidBook
from tests.engine.test_real import (
    WALLETS,
    Crash,
    CrashAt,
    assert_safe,
    busy_config,
    first_inputs,
    hyperliquid_config,
    log_lines,
    market_feed,
    price_points,
    real_engine,
    stub_feed,
)
from tests.venues.stubs import binance_usdm as bn
from tests.venues.stubs import hyperliquid as hl

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


# -- a recovered order nobody issues again that FILLED: its fill is undone (SPEC §4a) ---------------
# On both venues: the stub accounts of tests/engine/sigkill.py (one per wallet), with what these
# tests need besides: an order of ours preloaded as if sent before a SIGKILL, the orders sent.
@dataclass(frozen=True)
class Sent:
    client_id: str  # as the venue has it (Hyperliquid: the cloid digest)
    side: str
    type: str  # market | limit | stop
    qty: float
    reduce_only: bool


class BinanceAcct(BinanceBook):
    def env(self) -> dict[str, str]:
        return {"HEDGEKIT_{W}_API_KEY": bn.API_KEY, "HEDGEKIT_{W}_API_SECRET": bn.SECRET}

    @property
    def price(self) -> float:
        return self.stub.price

    def preload(self, cid: str, side: Side, qty: float, trigger: float, reduce_only: bool) -> None:
        self.stub.add_order(cid, str(side).upper(), qty, trigger=trigger, reduce_only=reduce_only)

    def sent(self) -> list[Sent]:
        return [Sent(p.get("newClientOrderId") or p.get("clientAlgoId", ""), p["side"].lower(),
                     "stop" if "algo" in path.lower() else p["type"].lower(), float(p["quantity"]),
                     p.get("reduceOnly") == "true")
                for m, path, p in list(self.stub.requests) if (m, path) in bn._PLACE]  # fmt: skip

    def drop_next_answer(self) -> None:
        self.stub.drop_placed = 1


class HyperliquidAcct(HyperliquidBook):
    def env(self) -> dict[str, str]:
        return {"HEDGEKIT_{W}_AGENT_KEY": hl.AGENT_KEY, "HEDGEKIT_{W}_WALLET_ADDRESS": hl.MAIN_ADDRESS}

    @property
    def price(self) -> float:
        return float(self.stub.price)

    def preload(self, cid: str, side: Side, qty: float, trigger: float, reduce_only: bool) -> None:
        self.stub.preload_order(self.user, is_buy=side is Side.BUY, sz=qty, cloid=self.venue_id(cid),
                                trigger_px=trigger, reduce_only=reduce_only)  # fmt: skip

    def sent(self) -> list[Sent]:
        out = []
        for rec in list(self.stub.actions):
            if rec.action.get("type") != "order":
                continue
            for o in rec.action["orders"]:
                t = o.get("t", {})
                kind = "stop" if "trigger" in t else ("market" if t.get("limit", {}).get("tif") == "Ioc" else "limit")
                out.append(Sent(str(o.get("c")), "buy" if o["b"] else "sell", kind, float(o["s"]), bool(o.get("r"))))
        return out

    def drop_next_answer(self) -> None:
        self.stub.drop_answer("order")


Acct = BinanceAcct | HyperliquidAcct


@pytest.fixture(params=["binanceusdm", "hyperliquid"])
def accts(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Acct]]:
    """One stub account per wallet on the venue, wired through the environment."""
    make = BinanceAcct if request.param == "binanceusdm" else HyperliquidAcct
    table: dict[str, Acct] = {}
    try:
        for w in WALLETS:
            table[w] = make(price_points(1)[0].price)
        urls = {w: a.stub.urls() if isinstance(a, BinanceAcct) else {"public": a.stub.url, "private": a.stub.url}
                for w, a in table.items()}  # fmt: skip
        monkeypatch.setenv(VENUE_URLS_ENV, json.dumps(urls))
        for w, a in table.items():
            for k, v in a.env().items():
                monkeypatch.setenv(k.replace("{W}", w.upper()), v)
        yield table
    finally:
        for a in table.values():
            a.stop()


def venue_config(tmp_path: Path, accts: dict[str, Acct]) -> BacktestConfig:
    if isinstance(accts["long"], BinanceAcct):
        return busy_config(tmp_path)
    return hyperliquid_config(tmp_path)


class RecordedAlerts(Alerts):
    def __init__(self) -> None:
        super().__init__([])
        self.lines: list[str] = []

    def _put(self, line: str, *, urgent: bool = False) -> None:
        self.lines.append(("URGENT " if urgent else "") + line)


def assert_safe_on(journal: Journal, run_id: int, accts: dict[str, Acct]) -> None:
    """``test_real.assert_safe`` on either venue."""
    for w, a in accts.items():
        assert sorted(f.fill_id for f in journal.fills(run_id, w)) == sorted(a.trade_ids()), w
        ids = a.client_ids()
        assert len(ids) == len(set(ids)), w
        status = next(s for s in journal.wallet_status(run_id) if s.wallet == w)
        assert status.position == pytest.approx(a.position()), w
        if a.position():
            assert a.cover() >= abs(a.position()) - 1e-9, (w, a.position(), a.cover())


@dataclass
class Orphan:
    """The long wallet's order journaled and sent at input 29 just before a SIGKILL, which fired
    while the process was down; the restart (``again``, its reconciliation done) holds its fill."""

    cfg: BacktestConfig
    points: list[PricePoint]
    journal: Journal
    again: LiveEngine
    cid: str
    held: float  # the long wallet's position before the orphan filled
    sent_before: int  # orders sent to the long account so far

    @property
    def later(self) -> int:  # the first input past the orphan's: where the sweep takes it
        return next(i for i, p in enumerate(self.points) if p.ts > self.points[29].ts)

    def wallet(self, engine: LiveEngine | None = None) -> LiveWallet:
        return next(w for w in (engine or self.again).wallets if w.name == "long")


def orphan_filled(tmp_path: Path, accts: dict[str, Acct], kind: OrderKind, *, past_flat: bool = False) -> Orphan:
    """``kind``: a buy entry stop above the market (it adds to the long) or a sell stop below
    it (it reduces the long: reduce-only as a stop loss); of 0.01, or of the long + 0.01 when
    ``past_flat`` (it flips the long to a short of 0.01); fired by a move of 3 past its trigger."""
    cfg = venue_config(tmp_path, accts)
    points = price_points(100)
    journal = Journal.open(tmp_path / "real.db")
    engine = real_engine(cfg, journal)
    asyncio.run(engine.run(stub_feed(points[:30], accts, engine.resume_after)))
    engine.release_lease()
    long = accts["long"]
    held = long.position()
    assert held > 0
    buy = kind is OrderKind.STOP_ENTRY_BUY
    side, unit = (Side.BUY, 9) if buy else (Side.SELL, -9)
    qty = round(held + 0.01, 3) if past_flat else 0.01
    reduce_only = kind is OrderKind.STOP_LOSS
    trigger = float(round(long.price + (2 if buy else -2)))
    cid = make_client_id("long", 0, unit, kind, 99)
    spec = OrderSpec(cid, "long", kind, side, OrderType.STOP, qty, trigger, reduce_only=reduce_only, unit=unit)
    journal.record_intent(engine.run_id, "long", spec, points[29].ts)
    long.preload(cid, side, qty, trigger, reduce_only=reduce_only)  # sent; then SIGKILL
    sent_before = len(long.sent())
    long.move_to(trigger + (3 if buy else -3))  # fired while the process was down
    assert long.position() == pytest.approx(held + side.sign * qty)
    again = real_engine(cfg, journal)  # reconciliation on attach: the fill is found and held
    orphan = Orphan(cfg, points, journal, again, cid, held, sent_before)
    venue = orphan.wallet().real
    assert venue is not None and venue.held_fill(cid) == pytest.approx(qty)
    return orphan


def test_the_fill_of_a_recovered_entry_nobody_issues_again_is_sold_back_at_market_and_the_wallet_goes_on(
    tmp_path, accts,
):
    """The orphan (a buy entry stop) added 0.01 to the long that no stop covers (SPEC §4a): once
    its input is past it is sold back at market, reduce-only, by the engine's own order
    (``orphan_close``, the orphan's id with the kind code ``oc``); the venue's position is the
    strategy's again, so the wallet goes on and says what it closed, at what price."""
    o = orphan_filled(tmp_path, accts, OrderKind.STOP_ENTRY_BUY)
    long = accts["long"]
    o.again.alerts = alerts = RecordedAlerts()
    with log_lines() as lines:
        asyncio.run(o.again.run(stub_feed(o.points[: o.later + 5], accts, o.again.resume_after)))
    close = orphan_close_id(o.cid)
    assert close == "hk-long-0-9-oc-99"
    assert [s for s in long.sent()[o.sent_before:] if s.client_id == long.venue_id(close)] == [
        Sent(long.venue_id(close), "sell", "market", 0.01, True)]
    w = o.wallet()
    assert w.halted is None
    assert w.runner.strategy.position.qty == pytest.approx(long.position())  # the strategy's again
    fills = [f for f in o.journal.fills(o.again.run_id, "long") if f.client_id == close]
    assert [(f.kind, str(f.side), f.qty) for f in fills] == [("orphan_close", "sell", 0.01)]
    note = next(line for line in alerts.lines if close in line)
    assert note.startswith(f"RECONCILED long: order {o.cid} (stop_entry_buy buy 0.01), recovered after a crash")
    assert f"closed it (sell 0.01 at market, reduce-only ({close}), filled 0.01 at {fills[0].price:,.2f})" in note
    assert "is the strategy's again" in note and not [a for a in alerts.lines if a.startswith("URGENT")]
    assert any(close in line and "reconciliation" in line for line in lines)
    assert o.cid not in w.real.recovered and close not in w.real.recovered
    assert_safe_on(o.journal, o.again.run_id, accts)


def test_the_fill_of_a_recovered_stop_that_reduced_the_position_is_not_bought_back_the_wallet_halts_covered(
    tmp_path, accts,
):
    """The orphan (a reduce-only sell stop) took 0.01 off the long: buying it back would open
    a position no stop was placed for, so nothing is sent. The strategy's stops over-cover the
    smaller position (safe), but the strategy no longer knows the venue's position: it halts
    and says so; the halt survives a restart (it trades nothing then), and --adopt lifts it."""
    o = orphan_filled(tmp_path, accts, OrderKind.STOP_LOSS)
    long = accts["long"]
    o.again.alerts = alerts = RecordedAlerts()
    asyncio.run(o.again.run(stub_feed(o.points[: o.later + 5], accts, o.again.resume_after)))
    w = o.wallet()
    assert w.halted is not None and o.cid in w.halted and "so nothing was sent" in w.halted, w.halted
    assert f"The venue's position is {o.held - 0.01:+g}, the strategy's {o.held:+g}" in w.halted
    assert long.sent()[o.sent_before:] == []  # no close (it would open), nothing after the halt
    assert long.position() == pytest.approx(o.held - 0.01) and long.cover() >= o.held - 1e-9
    note = next(line for line in alerts.lines if o.cid in line)
    assert note.startswith("RECONCILED long: HALTED: ") and "the strategy's stops cover all of it" in note
    assert_safe_on(o.journal, o.again.run_id, accts)
    halted = w.halted

    # A restart without --adopt: still halted, says why, sends nothing while the market moves.
    with log_lines() as lines:
        third = real_engine(o.cfg, o.journal)
        assert o.wallet(third).halted == halted
        asyncio.run(third.run(stub_feed(o.points[: o.later + 40], accts, third.resume_after)))
    assert o.wallet(third).halted == halted
    assert long.sent()[o.sent_before:] == []
    assert any(line.startswith(f"long: reconciliation: HALTED (kept from an earlier run): {halted}") for line in lines)
    assert next(s for s in o.journal.wallet_status(third.run_id) if s.wallet == "long").paused
    assert long.cover() >= long.position() - 1e-9  # its stops stay (some fired meanwhile)

    # --adopt lifts it: the orphan's fill is taken as it is (not closed, not bought back).
    before = long.position()
    with log_lines() as lines:
        adopted = real_engine(o.cfg, o.journal, adopt=True)
    w = o.wallet(adopted)
    assert w.halted is None and w.real is not None and o.cid not in w.real.recovered
    assert any(line.startswith(f"long: reconciliation: halt lifted by --adopt: {halted}") for line in lines)
    assert any(line.startswith(f"long: reconciliation: ADOPTED the fill of {o.cid} (0.01,") for line in lines)
    assert [s for s in long.sent()[o.sent_before:] if s.type == "market"] == []
    assert long.position() == pytest.approx(before)
    adopted.release_lease()


def test_the_fill_of_a_recovered_order_that_flipped_the_position_is_closed_to_flat_never_reopened(tmp_path, accts):
    """The orphan (a sell entry stop larger than the long) flipped the long to a short of 0.01:
    that short is bought back, reduce-only, down to flat; re-opening the long would be opening a
    position, so it is not done. The venue is flat, the strategy believes it is long: halt."""
    o = orphan_filled(tmp_path, accts, OrderKind.STOP_ENTRY_SHORT, past_flat=True)
    long = accts["long"]
    assert long.position() == pytest.approx(-0.01)
    o.again.alerts = alerts = RecordedAlerts()
    asyncio.run(o.again.run(stub_feed(o.points[: o.later + 5], accts, o.again.resume_after)))
    close = orphan_close_id(o.cid)
    vcid = long.venue_id(close)
    assert long.sent()[o.sent_before:] == [Sent(vcid, "buy", "market", 0.01, True)]  # and nothing after
    assert long.position() == 0
    w = o.wallet()
    assert w.halted is not None and f"closed buy 0.01 at market, reduce-only ({close})" in w.halted
    assert "back to flat; undoing the rest would open a position" in w.halted
    assert f"The venue's position is +0, the strategy's {o.held:+g}" in w.halted
    assert any(a.startswith("RECONCILED long: HALTED: ") and o.cid in a for a in alerts.lines)
    assert_safe_on(o.journal, o.again.run_id, accts)


def test_a_refused_close_of_an_orphans_fill_halts_the_wallet_loudly_naming_the_bare_quantity(tmp_path, accts):
    """The venue refuses the close (twice: it is re-rounded and sent once more): the 0.01 the
    orphan added has no stop, the wallet halts and an urgent alert names that quantity."""
    o = orphan_filled(tmp_path, accts, OrderKind.STOP_ENTRY_BUY)
    long = accts["long"]
    venue = o.wallet().real
    assert venue is not None
    vcid = venue.profile.venue_client_id(orphan_close_id(o.cid))
    place = venue.exchange.create_order

    def refuse(symbol, type_, side, amount, price=None, params=None):
        if vcid in (params or {}).values():
            raise ccxt.InvalidOrder("ReduceOnly Order is rejected.")
        return place(symbol, type_, side, amount, price, params)

    venue.exchange.create_order = refuse
    o.again.alerts = alerts = RecordedAlerts()
    asyncio.run(o.again.run(stub_feed(o.points[: o.later + 5], accts, o.again.resume_after)))
    w = o.wallet()
    assert w.halted is not None and "was refused" in w.halted and "0.01 of it without a protective stop" in w.halted
    assert long.position() == pytest.approx(o.held + 0.01)
    urgent = [a for a in alerts.lines if a.startswith("URGENT ")]
    assert len(urgent) == 1 and urgent[0].startswith("URGENT ERROR long: 0.01 of the venue's position has no protective stop")
    assert "Close 0.01 by hand (or flatten the wallet), then run again with --adopt" in urgent[0]
    rows = [r for r in o.journal.orders(o.again.run_id, "long") if r.client_id == orphan_close_id(o.cid)]
    assert [str(r.status) for r in rows] == ["rejected"]  # journaled, then its answer


def test_a_crash_between_the_close_of_an_orphans_fill_and_its_answer_never_sends_a_second_close(tmp_path, accts):
    """The venue took the close and its answer was lost (the stub's dropped answer), and the
    process died waiting for it: the intent is journaled, so the restart finds the close at the
    venue by its client id, takes its fill as the close's, and sends no second one."""
    o = orphan_filled(tmp_path, accts, OrderKind.STOP_ENTRY_BUY)
    long = accts["long"]
    venue = o.wallet().real
    assert venue is not None
    close = orphan_close_id(o.cid)
    vcid = venue.profile.venue_client_id(close)
    place = venue.exchange.create_order

    def die_waiting(symbol, type_, side, amount, price=None, params=None):
        if vcid not in (params or {}).values():
            return place(symbol, type_, side, amount, price, params)
        long.drop_next_answer()
        try:
            return place(symbol, type_, side, amount, price, params)
        except ccxt.NetworkError:
            o.again._journal_failed = True  # as a killed process: nothing more is written
            raise Crash from None

    venue.exchange.create_order = die_waiting
    with pytest.raises(Crash):
        asyncio.run(o.again.run(stub_feed(o.points[: o.later + 5], accts, o.again.resume_after)))
    assert long.position() == pytest.approx(o.held)  # the venue did close it
    rows = [r for r in o.journal.orders(o.again.run_id, "long") if r.client_id == close]
    assert [str(r.status) for r in rows] == ["new"]  # the intent, never answered
    again = real_engine(o.cfg, o.journal)
    asyncio.run(again.run(stub_feed(o.points[: o.later + 5], accts, again.resume_after)))
    assert [s for s in long.sent()[o.sent_before:] if s.client_id == vcid] == [Sent(vcid, "sell", "market", 0.01, True)]
    w = o.wallet(again)
    assert w.halted is None and w.runner.strategy.position.qty == pytest.approx(long.position())
    fills = [f for f in o.journal.fills(again.run_id, "long") if f.client_id == close]
    assert [(f.kind, f.qty) for f in fills] == [("orphan_close", 0.01)]
    assert_safe_on(o.journal, again.run_id, accts)
