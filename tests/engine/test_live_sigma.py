"""PAPER and RECOMMENDATION on a live feed: a grid hedge without ``grid.volatility`` takes its σ
from the live feed's exchange's public daily candles (no key), as REAL takes it from its venue's
(SPEC §5, issue 12 item 6); a replay keeps estimating it from the file's first days.

The exchanges are the local stubs (no network), serving daily candles of the bundled real
Binance USD-M BTCUSDT 1m history (the Hyperliquid stub's BTC too, as a stand-in series).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from loguru import logger
from typer.testing import CliRunner

import hedgekit.cli
from hedgekit.cli import app
from hedgekit.core.errors import ParameterError
from hedgekit.engine.live import LiveEngine
from hedgekit.feeds import daily
from hedgekit.store.journal import Journal
from tests.engine.test_real import grid_config, grid_stub, paper_feed, price_points
from tests.engine.test_real_grid import START, day_candles, load

LOOKBACK = 20
VENUES = ["binanceusdm", "hyperliquid"]


def expected_sigma(candles: list[list[float]]) -> float:
    closes = [k[4] for k in candles[-(LOOKBACK + 1):]]
    return float(np.std(np.diff(np.log(closes)), ddof=1))


def live_engine(cfg, tmp_path, mode: str = "paper") -> LiveEngine:
    engine = LiveEngine(cfg, mode=mode, journal=Journal.open(tmp_path / f"{mode}.db"),  # type: ignore[arg-type]
                        source=f"live:{cfg.venue.name}:{cfg.instrument.symbol}", printer=lambda _l: None)  # fmt: skip
    engine.open(0)
    return engine


def requests_seen(stub: object, venue: str) -> tuple[list[str], bool]:
    """What the stub was asked (paths, or /info types) and whether anything was signed."""
    if venue == "binanceusdm":
        asked = [p for _m, p, _q in stub.requests]  # type: ignore[attr-defined]
        signed = any("signature" in q for _m, _p, q in stub.requests)  # type: ignore[attr-defined]
        return asked, signed
    return [str(r.get("type")) for r in stub.info_requests], bool(stub.actions)  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["paper", "recommendation"])
@pytest.mark.parametrize("venue", VENUES)
def test_a_live_feed_takes_sigma_from_the_exchanges_public_daily_candles(tmp_path, monkeypatch, venue, mode):
    cfg = grid_config(tmp_path, venue, volatility=None, volatility_lookback_days=LOOKBACK)
    points = price_points(3, start=START)
    candles = day_candles(START)
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    try:
        with grid_stub(venue, points[0].price, "grid", monkeypatch) as stub:
            load(stub, venue, candles, 0.0)
            engine = live_engine(cfg, tmp_path, mode)
            asyncio.run(engine.run(paper_feed(points)))
            asked, signed = requests_seen(stub, venue)
    finally:
        logger.remove(sink)
    sigma = expected_sigma(candles)
    strategy = engine.wallets[0].runner.strategy
    assert engine.wallets[0].started  # at once: no warm-up days to wait on a live feed
    assert strategy.volatility == pytest.approx(sigma, rel=1e-9)  # type: ignore[attr-defined]
    assert ("/fapi/v1/klines" if venue == "binanceusdm" else "candleSnapshot") in asked
    assert not signed  # public candles: no key, nothing signed, nothing placed
    text = "\n".join(lines)
    assert f"grid: σ {sigma:.6f} (daily) from {LOOKBACK + 1} daily candles of" in text


@pytest.mark.parametrize("venue", VENUES)
def test_too_few_daily_candles_on_a_live_feed_names_the_fields(tmp_path, monkeypatch, venue):
    cfg = grid_config(tmp_path, venue, volatility=None, volatility_lookback_days=30)
    points = price_points(2, start=START)
    with grid_stub(venue, points[0].price, "grid", monkeypatch) as stub:
        load(stub, venue, day_candles(START), 0.0)  # 23 days before the start
        engine = live_engine(cfg, tmp_path)
        with pytest.raises(ParameterError, match=r"wallets \(grid\).grid.volatility=None: not set, and .* answered 23 "
                                                 r"daily candle\(s\) .* grid.volatility_lookback_days=30 needs 31"):  # fmt: skip
            asyncio.run(engine.run(paper_feed(points)))
    assert not engine.wallets[0].started


@pytest.mark.parametrize("venue", VENUES)
def test_a_failed_candle_fetch_on_a_live_feed_names_the_field_and_the_cause(tmp_path, monkeypatch, venue):
    """The exchange answers 503 three times (a temporary error, tried three times): the run
    stops before the wallet trades, with the field, the exchange and the cause."""
    monkeypatch.setattr(daily, "RETRY_DELAYS_S", (0.0, 0.0))
    cfg = grid_config(tmp_path, venue, volatility=None, volatility_lookback_days=LOOKBACK)
    points = price_points(2, start=START)
    with grid_stub(venue, points[0].price, "grid", monkeypatch) as stub:
        load(stub, venue, day_candles(START), 0.0)
        if venue == "binanceusdm":
            stub.fail_next(3, 503, path="/fapi/v1/klines")
        else:
            stub.http_error(503, path="/info", info_type="candleSnapshot", times=3)
        engine = live_engine(cfg, tmp_path)
        with pytest.raises(ParameterError, match=rf"wallets \(grid\).grid.volatility=None: not set, and its σ history "
                                                 rf"could not be read: {venue}: fetching the daily candles of "
                                                 r"BTC/\w+:\w+ failed 3 times: ExchangeNotAvailable"):  # fmt: skip
            asyncio.run(engine.run(paper_feed(points)))
        armed = stub._fail if venue == "binanceusdm" else stub._http_errors  # type: ignore[attr-defined]
    # exactly three attempts: all three 503s were met, and a fourth attempt would have succeeded
    assert armed == []
    assert not engine.wallets[0].started


def test_hedgekit_run_paper_on_a_live_feed_reads_sigma_from_the_exchange(tmp_path, monkeypatch):
    """The command line: ``run --mode paper --feed live`` with a grid without grid.volatility
    starts (it was refused before), σ read from the feed's exchange (here the stub)."""
    grid_config(tmp_path, "binanceusdm", volatility=None, volatility_lookback_days=LOOKBACK)  # writes grid.yaml
    points = price_points(2, start=START)
    candles = day_candles(START)
    monkeypatch.setattr(hedgekit.cli, "_make_feed", lambda *_a, **_k: paper_feed(points))
    with grid_stub("binanceusdm", points[0].price, "grid", monkeypatch) as stub:
        load(stub, "binanceusdm", candles, 0.0)
        res = CliRunner().invoke(app, ["run", str(tmp_path / "grid.yaml"), "--mode", "paper", "--feed", "live",
                                       "--db", str(tmp_path / "j.db")])  # fmt: skip
        asked, signed = requests_seen(stub, "binanceusdm")
    assert res.exit_code == 0, res.output
    assert "/fapi/v1/klines" in asked and not signed
    (run,) = Journal.open(tmp_path / "j.db").runs()
    assert run.mode == "paper"
    assert f"σ {expected_sigma(candles):.6f} (daily) from {LOOKBACK + 1} daily candles" in res.output
