"""REAL mode through the ccxt adapter, against the local Binance USD-M stub (no network).

Price path: the first bars of the bundled real Binance USD-M BTCUSDT 1m history, each walked
open -> low -> high -> close (up bar) or open -> high -> low -> close (down bar) in steps of at
most ``STEP`` USD; the same price points go to PAPER (the simulator) and to REAL (the stub is
moved to each point before the engine sees it, as the exchange moves before its feed reports).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml

from hedgekit.cli import example_path
from hedgekit.config import BacktestConfig, load_config
from hedgekit.core.errors import HedgekitError
from hedgekit.engine.live import LiveEngine
from hedgekit.engine.real import (
    VENUE_URLS_ENV,
    MainnetRefused,
    check_network,
    credentials,
    make_venue,
)
from hedgekit.feeds.base import PricePoint
from hedgekit.feeds.history import BUNDLED_BTC_1M, bundled_path, load_candles
from hedgekit.store.journal import Journal
from tests.venues.stubs.binance_usdm import API_KEY, SECRET, BinanceUsdmStub

WALLETS = ("long", "hedge")
STEP = 20.0  # USD: well under a unit (0.1 % ≈ 95 USD), so one input crosses at most one level


def busy_config(tmp_path: Path, **venue: object) -> BacktestConfig:
    data = yaml.safe_load(example_path("dual_wallet.yaml").read_text())
    for w in data["wallets"]:
        w["unit"] = {"mode": "percent", "value": 0.001}
        w["allocation"] = 2000
    data["venue"].pop("funding", None)
    data["venue"]["margin_mode"] = "isolated"
    data["venue"]["trigger_order"] = "fifo"  # the stub fires stops at one level in submission order
    data["venue"].update(venue)
    data["instrument"]["min_notional"] = 5
    data["data"] = {}
    path = tmp_path / "busy.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def price_points(bars: int) -> list[PricePoint]:
    c = load_candles(bundled_path(BUNDLED_BTC_1M))
    path: list[tuple[int, float]] = []
    for i in range(bars):
        o, h, lo, cl = (float(x[i]) for x in (c.open, c.high, c.low, c.close))
        inner = (lo, h) if cl > o else (h, lo)
        for target in (o, *inner, cl):
            last = path[-1][1] if path else target
            n = max(1, int(abs(target - last) // STEP) + 1)
            for k in range(1, n + 1):
                p = round(last + (target - last) * k / n, 1)
                if not path or path[-1][1] != p:
                    path.append((int(c.ts[i]), p))
    return [PricePoint(ts, p, seq) for seq, (ts, p) in enumerate(path)]


async def stub_feed(points: list[PricePoint], stubs: dict[str, BinanceUsdmStub], after: int,
                    stop_at: int | None = None) -> AsyncIterator[PricePoint]:  # fmt: skip
    for pt in points:
        if pt.seq <= after:
            continue
        if stop_at is not None and pt.seq >= stop_at:
            return
        for stub in stubs.values():
            stub.move_to(pt.price)
        yield pt


async def paper_feed(points: list[PricePoint]) -> AsyncIterator[PricePoint]:
    for pt in points:
        yield pt


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, BinanceUsdmStub]]:
    first = price_points(1)[0].price
    with BinanceUsdmStub(price=first, balance=100_000.0) as a, BinanceUsdmStub(price=first, balance=100_000.0) as b:
        table = {"long": a, "hedge": b}
        monkeypatch.setenv(VENUE_URLS_ENV, json.dumps({w: s.urls() for w, s in table.items()}))
        for w in WALLETS:
            monkeypatch.setenv(f"HEDGEKIT_{w.upper()}_API_KEY", API_KEY)
            monkeypatch.setenv(f"HEDGEKIT_{w.upper()}_API_SECRET", SECRET)
        yield table


def real_engine(cfg: BacktestConfig, journal: Journal, *, adopt: bool = False) -> LiveEngine:
    engine = LiveEngine(
        cfg, mode="real", journal=journal, source="replay:stub-path", printer=lambda _l: None, adopt=adopt,
        venue_factory=lambda wallet: make_venue(cfg, wallet, network="testnet", sleep=lambda _s: None),
    )
    engine.open(0)
    return engine


def fills_of(journal: Journal, run_id: int) -> dict[str, list[tuple[str, str, float, int | None]]]:
    """Per wallet: (kind, side, qty, unit level) of every fill, in order."""
    out = {}
    for w in WALLETS:
        orders = {o.client_id: o for o in journal.orders(run_id, w)}
        out[w] = [(f.kind, str(f.side), f.qty, orders[f.client_id].unit) for f in journal.fills(run_id, w)]
    return out


def test_paper_and_real_on_the_binance_stub_give_the_same_fills(tmp_path, stubs):
    cfg = busy_config(tmp_path)
    points = price_points(100)
    pj = Journal.open(tmp_path / "paper.db")
    paper = LiveEngine(cfg, mode="paper", journal=pj, source="replay:stub-path", printer=lambda _l: None)
    paper.open(0)
    asyncio.run(paper.run(paper_feed(points)))
    rj = Journal.open(tmp_path / "real.db")
    real = real_engine(cfg, rj)
    asyncio.run(real.run(stub_feed(points, stubs, real.resume_after)))
    want, got = fills_of(pj, paper.run_id), fills_of(rj, real.run_id)
    assert sum(len(v) for v in want.values()) >= 6, want  # the path does trade both wallets
    assert got == want
    for w, stub in stubs.items():
        status = next(s for s in rj.wallet_status(real.run_id) if s.wallet == w)
        assert stub.position == pytest.approx(status.position)
        ids = [o.client_id for o in [*stub.orders.values(), *stub.algos.values()]]
        assert len(ids) == len(set(ids))  # never two orders for one client id


# -- the mainnet switches and the credentials ------------------------------------------------------
def _ask(answer: str) -> tuple[list[str], object]:
    asked: list[str] = []

    def ask(q: str) -> str:
        asked.append(q)
        return answer

    return asked, ask


def test_testnet_is_the_default_and_mainnet_needs_every_switch(tmp_path):
    test_cfg = busy_config(tmp_path)
    main_cfg = busy_config(tmp_path, network="mainnet")
    asked, ask = _ask("MAINNET")
    assert check_network(test_cfg, "c.yaml", mainnet_flag=False, yes_mainnet=False, stdin_tty=True, ask=ask) == "testnet"
    with pytest.raises(MainnetRefused, match="--mainnet was given but c.yaml has venue.network: testnet"):
        check_network(test_cfg, "c.yaml", mainnet_flag=True, yes_mainnet=True, stdin_tty=False, ask=ask)
    with pytest.raises(MainnetRefused, match="pass --mainnet on the command line as well"):
        check_network(main_cfg, "c.yaml", mainnet_flag=False, yes_mainnet=True, stdin_tty=False, ask=ask)
    with pytest.raises(MainnetRefused, match="stdin is not a terminal: pass --yes-mainnet"):
        check_network(main_cfg, "c.yaml", mainnet_flag=True, yes_mainnet=False, stdin_tty=False, ask=ask)
    assert asked == []
    _, wrong = _ask("yes")
    with pytest.raises(MainnetRefused, match="mainnet not confirmed .*'yes'"):
        check_network(main_cfg, "c.yaml", mainnet_flag=True, yes_mainnet=True, stdin_tty=True, ask=wrong)
    assert check_network(main_cfg, "c.yaml", mainnet_flag=True, yes_mainnet=False, stdin_tty=True, ask=ask) == "mainnet"
    assert len(asked) == 1 and "REAL MONEY" in asked[0]
    assert check_network(main_cfg, "c.yaml", mainnet_flag=True, yes_mainnet=True, stdin_tty=False, ask=ask) == "mainnet"


def test_credentials_come_from_the_environment_per_wallet():
    env = {"HEDGEKIT_LONG_API_KEY": "k" * 20}
    with pytest.raises(HedgekitError, match="set HEDGEKIT_LONG_API_SECRET in the environment"):
        credentials("long", "binanceusdm", env)
    with pytest.raises(HedgekitError, match="HEDGEKIT_HEDGE_AGENT_KEY and HEDGEKIT_HEDGE_WALLET_ADDRESS"):
        credentials("hedge", "hyperliquid", env)
    creds = credentials("long", "binanceusdm", env | {"HEDGEKIT_LONG_API_SECRET": "s" * 20})
    assert creds.api_key == "k" * 20 and "k" * 20 not in repr(creds)
