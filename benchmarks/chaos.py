"""The REAL adapter against faulty exchanges (issue 12): venue × fault kind × runs.

Each run drives the long wallet and the hedge wallet (each on an account of its own) through
``WalletRunner`` + ``RealVenue`` (the live engine's ccxt venue, recovering through the engine's
``sync_orders``) on a local stub exchange (Binance USD-M, Hyperliquid) that injects one kind of
fault, and through the simulator (PAPER) on the same price path, and counts:

* lost fills: fills the venue made on our orders that the strategy never heard (or heard
  twice), plus — for faults that do not change when the bot sees a price — orders whose
  filled quantity differs from the fault-free REAL run on the same path (by client id);
* duplicate orders: client ids with more than one order at the venue;
* unprotected seconds: bar time (checked after every bar) during which the venue held a
  position not covered by our reduce-only stops on the closing side;
* unresolved diffs: ``venue.diff(strategy.desired_orders())`` after a last recovery pass.

The bot reacts at each order level the move crosses (the stub stops there), as the walker
delivers PAPER. The fault-free row also shows, for information, how many orders filled on only
one of PAPER (the simulator) and REAL on that path (the issue's first acceptance line, not this
suite's: the fault rows are measured against the fault-free REAL run). PAPER's account holds
what the stub's holds (``STUB_CASH``, 5x the allocation the strategies size by) and fires ties
at one price oldest first, as the stubs do: with the allocation as PAPER's cash, PAPER refused
re-entries for margin that the stub's larger account accepted (fees eat the last cents of four
units sized to the allocation at Hyperliquid's 0.00001 lot), 677 differing orders on
Hyperliquid over 3 runs x 200 bars; the margin rules themselves are not compared here.

Price path: consecutive slices of Binance USD-M BTCUSDT 1m candles (typhonun/DcaTpStrategy,
MIT, ``../shared/data``), each bar walked open -> low -> high -> close (up bar) or open ->
high -> low -> close (down bar), as SPEC §6 walks a candle. Run ``python benchmarks/chaos.py
--runs N --bars M`` (``make chaos``).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "src"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from loguru import logger  # noqa: E402
from tests.venues.stubs import binance_usdm as bn  # noqa: E402
from tests.venues.stubs import hyperliquid as hl  # noqa: E402

from hedgekit.core.commands import Command, Place  # noqa: E402
from hedgekit.core.events import OrderFilled  # noqa: E402
from hedgekit.core.instrument import Instrument  # noqa: E402
from hedgekit.core.orders import PROTECTIVE_KINDS, OrderKind, OrderSpec, Side, make_client_id  # noqa: E402
from hedgekit.core.strategy import Strategy  # noqa: E402
from hedgekit.core.units import UnitMode, UnitSpec  # noqa: E402
from hedgekit.engine.live_real import sync_orders  # noqa: E402
from hedgekit.engine.real import RealVenue  # noqa: E402
from hedgekit.engine.runner import WalletRunner  # noqa: E402
from hedgekit.engine.walker import MarketWalker  # noqa: E402
from hedgekit.strategies.hedge_wallet import HedgeWallet, HedgeWalletParams  # noqa: E402
from hedgekit.strategies.long_wallet import LongWallet, LongWalletParams  # noqa: E402
from hedgekit.venues.ccxt_binance import BinanceUsdmProfile  # noqa: E402
from hedgekit.venues.ccxt_hyperliquid import HyperliquidProfile  # noqa: E402
from hedgekit.venues.ccxt_profile import VenueCredentials  # noqa: E402
from hedgekit.venues.ccxt_venue import CcxtVenue, RetryPolicy  # noqa: E402
from hedgekit.venues.sim import SimConfig, SimExchange  # noqa: E402

DATA = Path(os.environ.get("HEDGEKIT_SHARED_DATA") or ROOT / ".." / "shared" / "data")
CANDLES = DATA / "typhonun_DcaTpStrategy" / "BTC_USDT_USDT-1m-futures.feather"
VENUES = ("binance", "hyperliquid")
FAULTS = ("none", "dropped answer", "5xx after acting", "429", "duplicate fills", "partial fills",
          "down period", "orphan order", "restart", "chaos")  # fmt: skip
# Faults after which the bot sees prices (or fills) at other times than PAPER does: its later
# decisions may differ, so only the venue's own record is the reference.
TIMING_FAULTS = {"partial fills", "down period", "restart"}
BAR_MS = 60_000
STEP_LEVELS = True  # stop the stub at each order level so the bot reacts there (as PAPER)
ALLOCATION = 2_000.0
PROTECTIVE = PROTECTIVE_KINDS | {OrderKind.FLATTEN, OrderKind.PROTECTIVE_CLOSE}
UNIT_USD = 40.0  # small enough that a 100-bar slice crosses several units
STUB_CASH = 10_000.0  # each stub account's margin, and PAPER's cash (see the docstring)


@dataclass
class Cell:
    venue: str
    fault: str
    runs: int = 0
    fills: int = 0  # fills the strategies heard (context: the faults met real trading)
    faults: int = 0  # faults injected: requests failed or answers lost, steps down, restarts...
    lost_fills: int = 0
    duplicate_orders: int = 0
    unprotected_s: int = 0
    unresolved: int = 0
    paper_diff: int | None = None  # fault-free row: orders filled on one of PAPER / REAL only
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost_fills or self.duplicate_orders or self.unprotected_s or self.unresolved)


def price_paths(runs: int, bars: int) -> list[list[float]]:
    """``runs`` consecutive ``bars``-bar slices of the bundled BTCUSDT 1m candles, walked."""
    import pandas as pd

    if not CANDLES.exists():
        raise SystemExit(f"real data not found: {CANDLES} (set HEDGEKIT_SHARED_DATA)")
    frame = pd.read_feather(CANDLES).head(runs * bars)
    rows = list(zip(frame["open"], frame["high"], frame["low"], frame["close"], strict=True))
    out: list[list[float]] = []
    for r in range(runs):
        path: list[float] = []
        for o, h, lo, c in rows[r * bars:(r + 1) * bars]:
            inner = (lo, h) if c > o else (h, lo)
            for px in (o, *inner, c):
                if not path or path[-1] != px:
                    path.append(float(px))
        out.append(path)
    return out


# -- the two stub venues behind one small interface --------------------------------------------
def prepared(profile: Any, exchange: Any, inst: Instrument, symbol: str, wallet: str) -> RealVenue:
    """A wallet's REAL venue on a stub: retries without waiting (the faults are the stub's), 2x."""
    v = RealVenue(profile, exchange, inst, symbol=symbol, sleep=lambda s: None, retry=RetryPolicy(attempts=8),
                  wallet=wallet)  # fmt: skip
    v.prepare(leverage=2)
    return v


class BinanceHarness:
    name = "binance"
    inst = Instrument("BTC/USDT:USDT", tick_size=0.1, lot_size=0.001, min_notional=5.0)
    fees = (bn.MAKER_FEE, bn.TAKER_FEE)  # the stub's, so that PAPER books the same

    def __init__(self, price: float) -> None:
        self.stub = bn.BinanceUsdmStub(price=price, balance=STUB_CASH).start()
        self.armed = 0  # faults injected

    def venue(self, wallet: str) -> RealVenue:
        profile = BinanceUsdmProfile()
        exchange = profile.make_exchange(VenueCredentials(bn.API_KEY, bn.SECRET), network="testnet",
                                         urls=self.stub.urls())  # fmt: skip
        exchange.rateLimit = 1
        return prepared(profile, exchange, self.inst, "BTC/USDT:USDT", wallet)

    def stop(self) -> None:
        self.stub.stop()

    def move_to(self, price: float) -> None:
        self.stub.move_to(price)

    def position(self) -> float:
        return self.stub.position

    def next_level(self, target: float) -> float | None:
        """The first stop level the move to ``target`` crosses before reaching it."""
        s = self.stub
        with s._lock:
            start, up = s.price, target > s.price
            levels = [o.trigger for o in s.algos.values() if o.status == "NEW" and (
                (o.side == "BUY" and start <= o.trigger < target) if up
                else (o.side == "SELL" and target < o.trigger <= start))]  # fmt: skip
        return (min(levels) if up else max(levels)) if levels else None

    def cover(self, closing: Side, placed: dict[str, OrderSpec]) -> float:
        side = "SELL" if closing is Side.SELL else "BUY"
        return sum(o.qty - o.executed for o in self.stub.algos.values()
                   if o.status in ("NEW", "TRIGGERED") and o.side == side and protective(placed.get(o.client_id)))  # fmt: skip

    def orders_per_client_id(self) -> dict[str, int]:
        n: dict[str, int] = defaultdict(int)
        for o in [*self.stub.orders.values(), *self.stub.algos.values()]:
            if o.client_id.startswith("hk-"):
                n[o.client_id] += 1
        return n

    def filled(self, placed: dict[str, OrderSpec]) -> dict[str, float]:
        """Quantity the venue filled per client id of ours."""
        out: dict[str, float] = {}
        for o in [*self.stub.orders.values(), *self.stub.algos.values()]:
            if o.client_id.startswith("hk-") and o.executed:
                out[o.client_id] = round(o.executed, 6)
        return out

    def orphan(self, client_id: str, price: float) -> None:
        self.stub.add_order(client_id, "BUY", 0.002, price=round(price - 500, 1))

    def fault(self, kind: str, rng: random.Random) -> None:
        """Arm ``kind`` for the next request(s); called before every step of the path."""
        s = self.stub
        if s.drop_placed or s._fail or s.partial_next is not None or rng.random() >= 0.3:
            return  # one armed at a time: they wait for the next order, not the next poll
        if kind == "dropped answer":
            s.drop_placed, s.drop_mode = 1, "close"
        elif kind == "5xx after acting":
            s.drop_placed, s.drop_mode = 1, "502"
        elif kind == "429":
            s.fail_next(1, 429)
        elif kind == "partial fills":
            s.partial_next = 0.5
        else:
            return
        self.armed += 1

    def set_chaos(self, seed: int, p: float) -> None:
        self.stub.chaos(seed, p)
        inner = bn.BinanceUsdmStub._chaos_fault

        def counted(path: str) -> int | str | None:
            fault = inner(self.stub, path)
            self.armed += fault is not None
            return fault

        self.stub._chaos_fault = counted  # type: ignore[method-assign]

    def set_duplicates(self, on: bool) -> None:
        self.stub.duplicate_trades = on


class HyperliquidHarness:
    name = "hyperliquid"
    symbol = "BTC/USDC:USDC"
    inst = Instrument(symbol, tick_size=1.0, lot_size=0.00001, min_notional=10.0)
    fees = (float(hl.MAKER_FEE), float(hl.TAKER_FEE))

    def __init__(self, price: float) -> None:
        self.stub = hl.start_stub(price=price, usdc=STUB_CASH)
        self.user = hl.MAIN_ADDRESS.lower()
        self.armed = 0  # faults injected

    def venue(self, wallet: str) -> RealVenue:
        profile = HyperliquidProfile(rate_limit=False)
        creds = VenueCredentials(secret=hl.AGENT_KEY, wallet_address=hl.MAIN_ADDRESS)
        exchange = profile.make_exchange(creds, network="testnet",
                                         urls={"public": self.stub.url, "private": self.stub.url})  # fmt: skip
        self.profile = profile
        return prepared(profile, exchange, self.inst, self.symbol, wallet)

    def stop(self) -> None:
        self.stub.stop()

    def move_to(self, price: float) -> None:
        self.stub.move_to(price)

    def position(self) -> float:
        return float(self.stub.account(self.user).szi)

    def next_level(self, target: float) -> float | None:
        s = self.stub
        with s._lock:
            hit = s._next_crossed(hl.d(target), hl.d(target) >= s.price)
        return None if hit is None or float(hit[1]) == target else float(hit[1])

    def _ours(self) -> list[hl.StubOrder]:
        return [o for o in self.stub.orders.values() if o.user == self.user]

    def cover(self, closing: Side, placed: dict[str, OrderSpec]) -> float:
        buy = closing is Side.BUY
        return sum(float(o.sz) for o in self._ours()
                   if o.status == "open" and o.is_trigger and o.is_buy == buy and protective(placed.get(o.cloid or "")))  # fmt: skip

    def orders_per_client_id(self) -> dict[str, int]:
        n: dict[str, int] = defaultdict(int)
        for o in self._ours():
            if o.cloid:
                n[o.cloid] += 1
        return n

    def filled(self, placed: dict[str, OrderSpec]) -> dict[str, float]:
        # a cloid is a digest of our client id: map back through what the strategy sent
        back = {vcid: spec.client_id for vcid, spec in placed.items()}
        out: dict[str, float] = {}
        for o in self._ours():
            done = float(o.orig_sz - o.sz)
            if o.cloid and done:
                out[back.get(o.cloid, o.cloid)] = round(done, 6)
        return out

    def orphan(self, client_id: str, price: float) -> None:
        self.stub.preload_order(self.user, is_buy=True, sz=0.002, limit_px=round(price - 500),
                                cloid=self.profile.venue_client_id(client_id))  # fmt: skip

    def fault(self, kind: str, rng: random.Random) -> None:
        s = self.stub
        if s._drop or s._http_errors or s._partial_market or s._split_fill or rng.random() >= 0.3:
            return  # one armed at a time: they wait for the next action, not the next poll
        if kind == "dropped answer":
            s.drop_answer("order")
        elif kind == "5xx after acting":
            s.http_error(502, executed=True)
        elif kind == "429":
            s.http_error(429)
        elif kind == "partial fills":
            s.split_next_fill(2) if rng.random() < 0.5 else s.partial_next_market(0.5)
        else:
            return
        self.armed += 1

    def set_chaos(self, seed: int, p: float) -> None:
        self.stub.chaos(seed, p)

    def set_duplicates(self, on: bool) -> None:
        self.stub.duplicate_fills = on

    @property
    def chaos_served(self) -> int:
        return sum(self.stub.chaos_served.values())


def protective(spec: OrderSpec | None) -> bool:
    """A stop that protects a position (SPEC §4a, as tests/strategies/helpers.assert_protected
    counts them): the hedge wallet's full exit is not reduce-only (it is sized to the long)."""
    return spec is not None and spec.kind in PROTECTIVE


Harness = BinanceHarness | HyperliquidHarness


HARNESSES: dict[str, type[BinanceHarness] | type[HyperliquidHarness]] = {
    "binance": BinanceHarness, "hyperliquid": HyperliquidHarness,
}


def make_harness(venue: str, price: float) -> Harness:
    return BinanceHarness(price) if venue == "binance" else HyperliquidHarness(price)


def make_strategy(kind: str, inst: Instrument) -> Strategy:
    unit = UnitSpec(UnitMode.FIXED, UNIT_USD)
    if kind == "long":
        return LongWallet("long", inst, LongWalletParams(allocation=ALLOCATION, leverage=2.0, unit=unit))
    return HedgeWallet("hedge", inst, HedgeWalletParams(allocation=ALLOCATION, leverage=2.0, unit=unit))


class Heard:
    """Records the fills a strategy is handed (client id -> qty)."""

    def __init__(self, strategy: Strategy) -> None:
        self.qty: dict[str, float] = defaultdict(float)
        self.count = 0
        inner = strategy.on_event

        def on_event(ev: Any) -> Any:
            if isinstance(ev, OrderFilled):
                self.qty[ev.client_id] = round(self.qty[ev.client_id] + ev.qty, 6)
                self.count += 1
            return inner(ev)

        strategy.on_event = on_event  # type: ignore[method-assign]


def step_ts(i: int, n_per_bar: int = 4) -> int:
    return BAR_MS * (i // n_per_bar) + (BAR_MS // n_per_bar) * (i % n_per_bar)


def simulate(venue: str, wallet: str, inst: Instrument, path: list[float]) -> dict[str, float]:
    """PAPER on the same path: filled quantity per client id."""
    strategy = make_strategy(wallet, inst)
    heard = Heard(strategy)
    fees = HARNESSES[venue].fees
    sim = SimExchange(inst, SimConfig(initial_cash=STUB_CASH, leverage=2.0, margin_mode="isolated",
                                      maker_fee=fees[0], taker_fee=fees[1], trigger_order="fifo"))  # fmt: skip
    walker = MarketWalker(WalletRunner(strategy, sim), sim)
    walker.start(0, path[0])
    for i, p in enumerate(path[1:], start=1):
        walker.runner.fire_timers(step_ts(i))
        walker.advance(p, step_ts(i))
    return dict(heard.qty)


def recover(venue: RealVenue, runner: WalletRunner, ts: int) -> None:
    """SPEC §7 recovery, the live engine's own (``sync_orders``, what ``reconcile`` does for a
    started wallet): missed fills first, then the desired orders diffed against the venue's:
    missing ones placed, orphans of ours cancelled."""
    sync_orders(runner, venue, ts)


def react(venue: CcxtVenue, runner: WalletRunner, price: float, ts: int) -> None:
    """The bot's turn at ``price``: timers, then the venue's news, fills in the order the move
    reached them, each level's unit step before its fills (as the walker delivers them)."""
    venue.note_price(price)
    runner.fire_timers(ts)
    for ev in venue.poll(ts):
        if isinstance(ev, OrderFilled):
            runner.price_moved(ev.price, ts)
        runner.deliver([ev], ts)
    runner.price_moved(price, ts)


def run_wallet(venue_name: str, fault: str, wallet: str, path: list[float], seed: int, cell: Cell,
               reference: dict[str, float] | None = None) -> dict[str, float]:  # fmt: skip
    """One wallet on one path under ``fault``; returns the filled quantity per client id."""
    rng = random.Random(seed)
    h = make_harness(venue_name, path[0])
    try:
        return _run_wallet(h, fault, wallet, path, rng, seed, cell, reference)
    finally:
        h.stop()


def _run_wallet(h: Harness, fault: str, wallet: str, path: list[float], rng: random.Random, seed: int,
                cell: Cell, reference: dict[str, float] | None) -> dict[str, float]:  # fmt: skip
    inst = h.inst
    strategy = make_strategy(wallet, inst)
    heard = Heard(strategy)
    venue = h.venue(wallet)
    venue.note_price(path[0])
    placed: dict[str, OrderSpec] = {}  # venue client id -> what the strategy sent

    def on_command(ts: int, cmd: Command, s: Strategy) -> None:
        if isinstance(cmd, Place):
            placed[venue.profile.venue_client_id(cmd.order.client_id)] = cmd.order

    runner = WalletRunner(strategy, venue, on_command=on_command)
    if fault == "orphan order":
        # an earlier run's order of this wallet (cycle 0, a grid rung), still working
        h.orphan(make_client_id(wallet, 0, 3, OrderKind.GRID_BUY, 7), path[0])
        recover(venue, runner, 0)  # start-up reconciliation, as a live start does
    if fault == "chaos":
        h.set_chaos(seed, 0.2)
    if fault in ("duplicate fills", "chaos"):
        h.set_duplicates(True)
    runner.start(0, path[0])
    n = len(path)
    down = range(n // 3, n // 3 + max(8, n // 10)) if fault == "down period" else range(0)
    crash_at = n // 2 if fault == "restart" else -1
    lot = inst.lot_size
    for i, p in enumerate(path[1:], start=1):
        ts = step_ts(i)
        h.fault(fault, rng)
        if i in down:
            h.move_to(p)
            continue  # the bot is down: the venue fills, nobody polls
        if STEP_LEVELS and i != down.stop and i != crash_at:
            # a bot fast enough to react at each order's level, as the walker does in PAPER
            for _ in range(100):
                level = h.next_level(p)
                if level is None:
                    break
                h.move_to(level)
                react(venue, runner, level, ts)
            h.move_to(p)
        elif i == down.stop or i == crash_at:
            if i == crash_at:
                state = venue.state()  # what the journal holds at the crash
                journaled = [venue.get_order(s.client_id) for s in strategy.desired_orders()]
                venue = h.venue(wallet)
                venue.restore(state)
                for o in journaled:  # the journal's working orders, as a fresh process reads them
                    if o is not None:
                        venue.adopt(replace(o, fill_ids=set(o.fill_ids)))
                runner.venue = venue
            h.move_to(p)
            venue.note_price(p)
            runner.price_moved(p, ts)
            recover(venue, runner, ts)  # reconnect / restart: reconcile
        else:
            h.move_to(p)
        react(venue, runner, p, ts)
        if i % 4 == 3 or i == n - 1:  # after every bar (a bar is up to 4 path points)
            pos = h.position()
            if abs(pos) >= lot / 2:
                closing = Side.SELL if pos > 0 else Side.BUY
                if h.cover(closing, placed) < abs(pos) - lot / 2:
                    cell.unprotected_s += BAR_MS // 1000
                    cell.notes.append(f"{wallet} step {i}: position {pos:g} cover {h.cover(closing, placed):g}")
    h.set_chaos(0, 0.0)
    cell.faults += h.armed + getattr(h, "chaos_served", 0) + len(down) + (crash_at > 0)
    cell.faults += (fault == "orphan order") + (heard.count if fault in ("duplicate fills", "chaos") else 0)
    ts = step_ts(n)
    recover(venue, runner, ts)
    diff = venue.diff(strategy.desired_orders())
    unresolved = len(diff.missing) + len(diff.unexpected) + len(diff.different)
    cell.unresolved += unresolved
    if unresolved:
        cell.notes.append(f"{wallet}: unresolved {diff}")

    # fills: the venue's record against what the strategy heard
    at_venue = h.filled(placed)
    heard_qty = {k: v for k, v in heard.qty.items() if v}
    lost = _mismatch(at_venue, heard_qty, lot)
    if lost:
        cell.notes.append(f"{wallet}: venue/heard differ {_diff(at_venue, heard_qty, lot)}")
    if reference is not None:
        # the same path without faults: the same orders must have filled, by the same amounts
        extra = _mismatch(reference, heard_qty, lot)
        if extra:
            cell.notes.append(f"{wallet}: against the fault-free run {_diff(reference, heard_qty, lot)}")
        lost += extra
    cell.lost_fills += lost
    cell.fills += heard.count
    cell.duplicate_orders += sum(c - 1 for c in h.orders_per_client_id().values() if c > 1)
    return heard_qty


def _diff(ref: dict[str, float], got: dict[str, float], lot: float) -> dict[str, tuple[float, float]]:
    return {c: (ref.get(c, 0.0), got.get(c, 0.0)) for c in ref.keys() | got.keys()
            if abs(ref.get(c, 0.0) - got.get(c, 0.0)) > lot / 2}  # fmt: skip


def _mismatch(ref: dict[str, float], got: dict[str, float], lot: float) -> int:
    return sum(1 for cid in ref.keys() | got.keys() if abs(ref.get(cid, 0.0) - got.get(cid, 0.0)) > lot / 2)


@contextmanager
def quiet() -> Iterator[None]:
    """The adapter warns about every retried fault: thousands of lines, kept out of the table."""
    logger.remove()
    sink = logger.add(sys.stderr, level="ERROR")
    try:
        yield
    finally:
        logger.remove(sink)
        logger.add(sys.stderr)


def run_suite(runs: int, bars: int, venues: tuple[str, ...] = VENUES, faults: tuple[str, ...] = FAULTS,
              progress: Callable[[str], None] | None = None) -> list[Cell]:  # fmt: skip
    paths = price_paths(runs, bars)
    cells: list[Cell] = []
    clean: dict[tuple[str, str, int], dict[str, float]] = {}  # fault-free fills per venue, wallet, run
    with quiet():
        for v in venues:
            for f in faults:
                cell = Cell(v, f)
                for r, path in enumerate(paths):
                    for wallet in ("long", "hedge"):
                        seed = 1000 * r + FAULTS.index(f)
                        key = (v, wallet, r)
                        if f == "none":
                            clean[key] = run_wallet(v, f, wallet, path, seed, cell)
                            paper = set(simulate(v, wallet, HARNESSES[v].inst, path))
                            cell.paper_diff = (cell.paper_diff or 0) + len(paper ^ set(clean[key]))
                            continue
                        ref = None
                        if f not in TIMING_FAULTS:
                            if key not in clean:
                                clean[key] = run_wallet(v, "none", wallet, path, seed, Cell(v, "none"))
                            ref = clean[key]
                        run_wallet(v, f, wallet, path, seed, cell, ref)
                    cell.runs += 1
                cells.append(cell)
                if progress is not None:
                    progress(f"{v} / {f}")
    return cells


def print_table(cells: list[Cell], title: str, width: int | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("venue", "fault", "runs", "faults", "fills", "lost fills", "duplicate orders",
                "s without stop", "unresolved diffs", "≠ PAPER (info)"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("venue", "fault") else "right")
    for c in cells:
        style = None if c.clean else "bold red"
        table.add_row(c.venue, c.fault, str(c.runs), str(c.faults), str(c.fills), str(c.lost_fills), str(c.duplicate_orders),
                      str(c.unprotected_s), str(c.unresolved),
                      "" if c.paper_diff is None else str(c.paper_diff), style=style)  # fmt: skip
    Console(width=width).print(table)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="price slices per venue and fault (each: both wallets)")
    ap.add_argument("--bars", type=int, default=200, help="1m bars per slice")
    ap.add_argument("--verbose", action="store_true", help="print what each failing cell found")
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs of the REAL CLI run per venue (0: none)")
    ap.add_argument("--kill-bars", type=int, default=150, help="1m bars of the killed run's price path")
    ap.add_argument("--seed", type=int, default=12, help="seed of the kill points")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    cells = run_suite(args.runs, args.bars) if args.runs else []  # --runs 0: the kills only
    if cells:
        print_table(cells, width=150, title=f"REAL adapter under faults: {args.runs} runs × {args.bars} bars of real "
                           f"BTCUSDT 1m (both wallets), {time.monotonic() - t0:.0f} s")  # fmt: skip
    bad: list[Any] = [c for c in cells if not c.clean]
    if args.verbose:
        for c in bad:
            for note in c.notes[:10]:
                print(f"{c.venue} / {c.fault}: {note}")
    if args.kills:
        bad += kill_table(args.kills, args.kill_bars, args.seed, args.verbose)
    return 1 if bad else 0


def kill_table(kills: int, bars: int, seed: int, verbose: bool) -> list[Any]:
    """The real ``hedgekit run --mode real`` CLI SIGKILLed ``kills`` times per venue at seeded
    random points (tests/engine/sigkill.py); the rows that are not all 0 (or missed a kill)."""
    import tempfile

    from tests.engine.sigkill import print_rows, run_kills

    t0 = time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hedgekit-kills-") as tmp:
        for i, v in enumerate(VENUES):
            rows.append(run_kills(v, kills, seed=seed + i, bars=bars, tmp=Path(tmp) / v))
    print_rows(rows, width=150, title=f"SIGKILL at random points of a REAL CLI run on the stubs: {bars} bars walked "
                                      f"in ≤ 20 USD steps (both wallets), seed {seed}, {time.monotonic() - t0:.0f} s")  # fmt: skip
    bad = [r for r in rows if not r.clean or r.kills < kills]
    if verbose:
        for r in bad:
            for note in r.notes[:10]:
                print(f"{r.venue} / SIGKILL: {note}")
    return bad


if __name__ == "__main__":
    raise SystemExit(main())
