"""A REAL grid hedge reads what it hedges and its σ from the exchange (SPEC §5, issue 12 item 6):
``spot_quantity: account`` is the spot wallet's balance of the base asset, and without
``grid.volatility`` σ comes from the venue's recent daily candles, on each stub (no network).

The candles the stubs serve are daily candles of the bundled real Binance USD-M BTCUSDT 1m
history (also for the Hyperliquid stub's BTC, as a stand-in series); the replay starts inside
that history, so the last candle is the day's open one, whose close is the price at the start.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import numpy as np
import pytest
from loguru import logger

from hedgekit.core.errors import HedgekitError, ParameterError
from hedgekit.core.volatility import DAY_MS
from hedgekit.engine.live import LiveEngine
from hedgekit.engine.session import run_backtest
from hedgekit.feeds.history import BUNDLED_BTC_1M, bundled_path, load_candles
from hedgekit.store.journal import Journal
from tests.engine.test_real import (
    grid_config,
    grid_stub,
    paper_feed,
    price_points,
    real_engine,
    stub_feed,
)

START = 21 * 1440 + 600  # 21 days and 10 hours into the 1m history (2025-05-04 → 06-03)
LOOKBACK = 20


def day_candles(before: int) -> list[list[float]]:
    """[open ms, o, h, l, c, volume] of each UTC day of the bundled 1m history before bar
    ``before``; the last day is cut at ``before`` (the open candle)."""
    c = load_candles(bundled_path(BUNDLED_BTC_1M))
    ts = np.asarray(c.ts[:before], dtype=np.int64)
    day = ts // DAY_MS
    out = []
    for d in np.unique(day):
        m = np.flatnonzero(day == d)
        out.append([float(d * DAY_MS), float(c.open[m[0]]), float(np.max(c.high[m])), float(np.min(c.low[m])),
                    float(c.close[m[-1]]), float(np.sum(c.volume[m]))])  # fmt: skip
    return out


def load(stub: object, venue: str, candles: list[list[float]], spot: float) -> None:
    if venue == "binanceusdm":
        stub.klines = candles  # type: ignore[attr-defined]
        stub.spot = {"BTC": spot, "USDT": 1234.5}  # type: ignore[attr-defined]
    else:
        from tests.venues.stubs.hyperliquid import MAIN_ADDRESS

        stub.candles = candles  # type: ignore[attr-defined]
        stub.account(MAIN_ADDRESS).spot = {"USDC": Decimal("20"), "UBTC": Decimal(str(spot))}  # type: ignore[attr-defined]


@pytest.mark.parametrize("venue", ["binanceusdm", "hyperliquid"])
def test_a_real_grid_hedge_hedges_the_spot_balance_with_the_sigma_of_the_venues_daily_candles(
    tmp_path, monkeypatch, venue,
):  # fmt: skip
    cfg = grid_config(tmp_path, venue, spot="account", volatility=None, volatility_lookback_days=LOOKBACK)
    wallet = cfg.wallets[0].name
    points = price_points(3, start=START)
    candles = day_candles(START)
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    try:
        with grid_stub(venue, points[0].price, wallet, monkeypatch) as stub:
            load(stub, venue, candles, 0.5)
            real = real_engine(cfg, Journal.open(tmp_path / "real.db"))
            asyncio.run(real.run(stub_feed(points[:1], {wallet: stub}, real.resume_after)))
            working = sorted((o.price, o.qty) for o in _open_limits(stub, venue))
    finally:
        logger.remove(sink)
    price = points[0].price
    # σ: the daily log returns of the last LOOKBACK + 1 closes, the open day's close being the price now
    closes = [k[4] for k in candles[-(LOOKBACK + 1):-1]] + [price]
    sigma = float(np.std(np.diff(np.log(closes)), ddof=1))
    strategy = real.wallets[0].runner.strategy
    assert strategy.params.spot_quantity == 0.5  # type: ignore[attr-defined]
    assert strategy.volatility == pytest.approx(sigma, rel=1e-9)  # type: ignore[attr-defined]
    tick = cfg.instrument.tick_size
    spacing = round(price * sigma * 0.5 / tick) * tick
    step = round(float(np.floor(min(0.5 / 5, 0.5 * min(0.2, 0.01 / sigma)) / 0.001 + 1e-9)) * 0.001, 3)
    want = [(round(round(price / tick) * tick + i * spacing, 6), step) for i in range(1, 6)]
    assert [(round(p, 6), round(q, 3)) for p, q in working] == want
    text = "\n".join(lines)
    assert "spot_quantity: account -> 0.5 BTC" in text
    first, last = (np.datetime64(int(t), "ms").astype("datetime64[D]") for t in (candles[-(LOOKBACK + 1)][0], points[0].ts))
    assert f"from {LOOKBACK + 1} daily candles" in text and f"{first} to {last}" in text
    assert f"σ {sigma:.6f}" in text


def _open_limits(stub: object, venue: str) -> list:
    class Row:
        def __init__(self, price: float, qty: float) -> None:
            self.price, self.qty = price, qty

    if venue == "binanceusdm":
        return [Row(o.price, o.qty) for o in stub.orders.values() if o.open and o.type == "LIMIT"]  # type: ignore[attr-defined]
    return [Row(float(o.limit_px), float(o.sz)) for o in stub.orders.values()  # type: ignore[attr-defined]
            if o.status == "open" and not o.is_trigger]  # fmt: skip


@pytest.mark.parametrize("venue", ["binanceusdm", "hyperliquid"])
def test_no_spot_on_the_account_is_refused_before_any_order(tmp_path, monkeypatch, venue):
    cfg = grid_config(tmp_path, venue, spot="account")
    wallet = cfg.wallets[0].name
    points = price_points(1, start=START)
    with grid_stub(venue, points[0].price, wallet, monkeypatch) as stub:
        load(stub, venue, day_candles(START), 0.0)
        with pytest.raises(ParameterError, match=r"spot_quantity='account': the .* account of wallet grid holds no BTC"):
            real_engine(cfg, Journal.open(tmp_path / "real.db"))
        assert not _open_limits(stub, venue)


@pytest.mark.parametrize("venue", ["binanceusdm", "hyperliquid"])
def test_too_few_daily_candles_is_an_error_naming_the_fields(tmp_path, monkeypatch, venue):
    cfg = grid_config(tmp_path, venue, volatility=None, volatility_lookback_days=30)
    wallet = cfg.wallets[0].name
    points = price_points(2, start=START)
    with grid_stub(venue, points[0].price, wallet, monkeypatch) as stub:
        candles = day_candles(START)
        assert len(candles) == 23  # days the history has before the start: fewer than 31
        load(stub, venue, candles, 1.0)
        real = real_engine(cfg, Journal.open(tmp_path / "real.db"))
        with pytest.raises(ParameterError, match=r"grid.volatility=None: not set, and .* answered 23 daily "
                                                 r"candle\(s\) .* grid.volatility_lookback_days=30 needs 31"):  # fmt: skip
            asyncio.run(real.run(stub_feed(points, {wallet: stub}, real.resume_after)))
        assert not _open_limits(stub, venue)


def test_spot_quantity_account_in_a_backtest_or_paper_names_the_field_and_asks_for_a_number(tmp_path):
    cfg = grid_config(tmp_path, "binanceusdm", spot="account")
    with pytest.raises(HedgekitError, match=r"spot_quantity='account': reads the spot balance from the exchange.*"
                                            r"give the number of coins held on spot"):  # fmt: skip
        run_backtest(cfg.model_copy(update={"data": cfg.data.model_copy(update={"end": "2025-05-05"})}))
    paper = LiveEngine(cfg, mode="paper", journal=Journal.open(tmp_path / "p.db"), source="replay:x",
                       printer=lambda _l: None)  # fmt: skip
    with pytest.raises(HedgekitError, match=r"spot_quantity='account'.*give the number of coins"):
        paper.open(0)
        asyncio.run(paper.run(paper_feed(price_points(2))))


def test_the_config_takes_account_or_a_positive_number(tmp_path):
    assert grid_config(tmp_path, "binanceusdm", spot="account").wallets[0].spot_quantity == "account"
    assert grid_config(tmp_path, "binanceusdm", spot=0.25).wallets[0].spot_quantity == 0.25
    with pytest.raises(Exception, match="spot_quantity"):
        grid_config(tmp_path, "binanceusdm", spot="acount")




def test_recommendation_with_account_reads_the_spot_balance_and_sends_nothing(tmp_path, monkeypatch):
    from hedgekit.cli import _spot_reader

    cfg = grid_config(tmp_path, "binanceusdm", spot="account")
    points = price_points(20, start=START)
    with grid_stub("binanceusdm", points[0].price, "grid", monkeypatch) as stub:
        load(stub, "binanceusdm", day_candles(START), 0.25)
        printed: list[str] = []
        engine = LiveEngine(cfg, mode="recommendation", journal=Journal.open(tmp_path / "r.db"),
                            source="replay:x", printer=printed.append)  # fmt: skip
        engine.spot_reader = _spot_reader(cfg, mainnet=False)
        engine.open(0)
        asyncio.run(engine.run(paper_feed(points)))
        assert engine.wallets[0].runner.strategy.params.spot_quantity == 0.25  # type: ignore[attr-defined]
        assert [p for m, p, _ in stub.requests if m != "GET"] == []  # read only
        assert ("GET", "/api/v3/account") in {(m, p) for m, p, _ in stub.requests}
        rungs = [line for line in printed if line.startswith("RECOMMEND place grid_sell SELL")]
        assert len(rungs) >= 5 and all(" 0.050 BTC @ " in line for line in rungs), printed[:6]  # 0.25 / 5 levels


def test_a_resumed_real_grid_does_not_read_the_account_again(tmp_path, monkeypatch):
    """The quantity read at the start is in the wallet's checkpoint: a restart resumes with it,
    even when the spot wallet has changed since (the position it hedges is still there)."""
    cfg = grid_config(tmp_path, "binanceusdm", spot="account")
    points = price_points(5, start=START)
    with grid_stub("binanceusdm", points[0].price, "grid", monkeypatch) as stub:
        load(stub, "binanceusdm", day_candles(START), 0.5)
        journal = Journal.open(tmp_path / "real.db")
        first = real_engine(cfg, journal)
        asyncio.run(first.run(stub_feed(points[:3], {"grid": stub}, first.resume_after)))
        stub.spot = {}
        again = real_engine(cfg, journal)
        assert again.run_id == first.run_id and again.resume_after >= 0
        assert again.wallets[0].runner.strategy.params.spot_quantity == 0.5  # type: ignore[attr-defined]
        again.release_lease()


@pytest.mark.parametrize("venue", ["binanceusdm", "hyperliquid"])
def test_a_rung_and_the_stop_crossed_in_one_input_follow_the_venue(tmp_path, monkeypatch, venue):
    """The case PAPER and REAL cannot agree on (see the grid PAPER/REAL test): an input's move
    fills a rung and then the stop laid for the hedge before it. REAL follows the venue: every
    trade journaled once, the journal's position the venue's, and the stop covers it."""
    cfg = grid_config(tmp_path, venue, {"stop_loss_pct": 0.001, "take_profit_pct": 0.0015})
    points = price_points(100)  # the first coincidence comes after ~91 minutes
    with grid_stub(venue, points[0].price, "grid", monkeypatch) as stub:
        journal = Journal.open(tmp_path / "real.db")
        real = real_engine(cfg, journal)
        asyncio.run(real.run(stub_feed(points, {"grid": stub}, real.resume_after)))
        if venue == "binanceusdm":
            position, trades = stub.position, [str(t["id"]) for t in stub.trades]
            stops = [o.qty for o in stub.algos.values() if o.open and o.side == "BUY" and o.reduce_only]
        else:
            from tests.venues.stubs.hyperliquid import MAIN_ADDRESS

            acct = stub.account(MAIN_ADDRESS)
            position, trades = float(acct.szi), [str(f["tid"]) for f in acct.fills]
            stops = [float(o.sz) for o in stub.orders.values()
                     if o.status == "open" and o.is_trigger and o.is_buy and o.reduce_only]  # fmt: skip
    by_input: dict[int, set[str]] = {}
    for f in journal.fills(real.run_id, "grid"):
        by_input.setdefault(f.ts, set()).add(f.kind)
    assert any({"grid_sell", "hedge_stop_loss"} <= kinds for kinds in by_input.values())  # it happened
    assert sorted(f.fill_id for f in journal.fills(real.run_id, "grid")) == sorted(trades)
    status = next(s for s in journal.wallet_status(real.run_id) if s.wallet == "grid")
    assert status.position == pytest.approx(position) and position < 0
    assert sum(stops) >= -position - 1e-9
