"""The same orders on the same REAL price path give the same fills on the simulator (PAPER)
and through the REAL adapter on the Binance stub: the port hides which one it is.

Price path: the first bars of Binance USD-M BTCUSDT 1m candles (typhonun/DcaTpStrategy, MIT,
``../shared/data``), each walked open -> low -> high -> close (up bar) or open -> high -> low ->
close (down bar), as SPEC §6 walks a candle.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hedgekit.core.events import OrderFilled
from hedgekit.core.instrument import Instrument
from hedgekit.core.orders import OrderKind, OrderSpec, OrderType, Side, make_client_id
from hedgekit.venues.base import ExchangePort
from hedgekit.venues.ccxt_binance import BinanceUsdmProfile
from hedgekit.venues.ccxt_profile import VenueCredentials
from hedgekit.venues.ccxt_venue import CcxtVenue, RetryPolicy
from hedgekit.venues.sim import SimConfig, SimExchange
from tests.venues.stubs.binance_usdm import API_KEY, SECRET, BinanceUsdmStub

# ``../shared/data`` from the project root, as the other tests; HEDGEKIT_SHARED_DATA overrides it
# (a git worktree lives elsewhere).
DATA = Path(os.environ.get("HEDGEKIT_SHARED_DATA") or Path(__file__).resolve().parents[2] / ".." / "shared" / "data")
CANDLES = DATA / "typhonun_DcaTpStrategy" / "BTC_USDT_USDT-1m-futures.feather"
INST = Instrument("BTC/USDT:USDT", tick_size=0.1, lot_size=0.001, min_notional=5.0)
STEP = 60.0  # USD between the current price and each stop
QTY = 0.01


def price_path(bars: int) -> list[float]:
    pd = pytest.importorskip("pandas")
    if not CANDLES.exists():
        pytest.skip(f"real data not found: {CANDLES}")
    frame = pd.read_feather(CANDLES).head(bars)
    path: list[float] = []
    for o, h, lo, c in zip(frame["open"], frame["high"], frame["low"], frame["close"], strict=True):
        inner = (lo, h) if c > o else (h, lo)
        for p in (o, *inner, c):
            if not path or path[-1] != p:
                path.append(float(p))
    return path


class Trailer:
    """A small trend follower that trades through any ``ExchangePort``: long 0.01, a stop
    entry ``STEP`` above adds 0.01, a reduce-only stop ``STEP`` below closes everything; after
    a stop-out it buys again at market. Orders are re-placed around the current price."""

    def __init__(self, port: ExchangePort) -> None:
        self.port = port
        self.seq = 0
        self.position = 0.0
        self.stop: str | None = None
        self.entry: str | None = None
        self.fills: list[tuple[str, str, float, float]] = []

    def _spec(self, kind: OrderKind, side: Side, type_: OrderType, qty: float, price: float | None,
              reduce_only: bool = False) -> OrderSpec:  # fmt: skip
        self.seq += 1
        return OrderSpec(make_client_id("trail", 1, None, kind, self.seq), "trail", kind, side, type_,
                         qty, price, reduce_only)  # fmt: skip

    def _handle(self, events: list, price: float, ts: int) -> None:
        refresh = False
        for ev in events:
            if isinstance(ev, OrderFilled):
                spec_kind = ev.client_id.split("-")[-2]
                side = "sell" if spec_kind == "sl" else "buy"
                self.fills.append((spec_kind, side, ev.qty, ev.price))
                self.position = round(self.position + (ev.qty if side == "buy" else -ev.qty), 3)
                refresh = True
        if refresh:
            self.place(price, ts)

    def start(self, price: float, ts: int) -> None:
        self._handle(self.port.submit(self._spec(OrderKind.MARKET_BUY, Side.BUY, OrderType.MARKET, QTY, None), ts),
                     price, ts)  # fmt: skip

    def place(self, price: float, ts: int) -> None:
        for cid in (self.stop, self.entry):
            if cid is not None:
                self._handle(self.port.cancel(cid, ts), price, ts)
        self.stop = self.entry = None
        if self.position <= 0:
            self.start(price, ts)
            return
        stop = self._spec(OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, self.position,
                          INST.floor_price(price - STEP), reduce_only=True)  # fmt: skip
        entry = self._spec(OrderKind.STOP_ENTRY_BUY, Side.BUY, OrderType.STOP, QTY, INST.ceil_price(price + STEP))
        self.stop, self.entry = stop.client_id, entry.client_id
        for s in (stop, entry):
            self._handle(self.port.submit(s, ts), price, ts)

    def on_events(self, events: list, price: float, ts: int) -> None:
        self._handle(events, price, ts)


@pytest.mark.parametrize("chaos", [None, 0.2], ids=["clean", "chaos"])
def test_same_path_same_fills_on_paper_and_on_the_binance_stub(chaos: float | None) -> None:
    """With ``chaos`` a fifth of the private calls fail at random (429, 503, an answer lost
    after the venue acted, every trade reported twice): still the same fills, and never two
    orders for one client id."""
    path = price_path(120)
    sim = SimExchange(INST, SimConfig(initial_cash=10_000.0, leverage=5, margin_mode="isolated"))
    sim.move_to(path[0], 0)
    paper = Trailer(sim)
    paper.start(path[0], 0)

    with BinanceUsdmStub(price=path[0]) as stub:
        profile = BinanceUsdmProfile()
        exchange = profile.make_exchange(VenueCredentials(API_KEY, SECRET), network="testnet", urls=stub.urls())
        exchange.rateLimit = 1
        sleeps: list[float] = []
        venue = CcxtVenue(profile, exchange, INST, symbol="BTC/USDT:USDT", sleep=sleeps.append,
                          retry=RetryPolicy(attempts=8))  # fmt: skip
        venue.prepare(leverage=5)
        if chaos:
            stub.chaos(seed=12, p=chaos)
            stub.duplicate_trades = True
        real = Trailer(venue)
        real.start(path[0], 0)
        for ts, p in enumerate(path[1:], start=1):
            paper.on_events(sim.move_to(p, ts), p, ts)
            stub.move_to(p)
            real.on_events(venue.poll(ts), p, ts)
        stub.chaos(seed=0, p=0.0)
        assert venue.account().position == real.position
        ids = [o.client_id for o in [*stub.orders.values(), *stub.algos.values()] if o.client_id.startswith("hk-")]
        assert len(ids) == len(set(ids))  # one order per client id, whatever was lost
        assert len(ids) == real.seq  # and every order the strategy sent is there
        assert stub.open_client_ids() == [o.client_id for o in venue.open_orders()]
        if chaos:
            assert len(sleeps) > 10  # the faults did happen, and were retried

    assert len(paper.fills) >= 10  # the path does trade: stops on both sides fired
    assert {k for k, *_ in paper.fills} >= {"mb", "sl", "eb"}
    assert real.fills == paper.fills
    assert real.position == paper.position == sim.position.qty
