"""The fast path and the per-bar reference loop give byte-identical output on real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hedgekit.cli import example_path
from hedgekit.config import load_config
from hedgekit.engine import backtest as engine
from hedgekit.engine.session import LoadedData, build_strategy, load_data, run_backtest, sim_config
from hedgekit.feeds.history import load_candles
from hedgekit.feeds.synthetic import random_walk_candles
from hedgekit.report.results import iso_ms
from hedgekit.venues.sim import SimExchange

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "typhonun_DcaTpStrategy"
FILES = ["BTC_USDT_USDT-1m-futures.feather", "BTC_USDT_USDT-5m-futures.feather",
         "ETH_USDT_USDT-1m-futures.feather", "ETH_USDT_USDT-5m-futures.feather"]


def dual_for(symbol: str):
    cfg = load_config(example_path("dual_wallet.yaml"))
    if symbol.startswith("ETH"):
        inst = cfg.instrument.model_copy(update={"symbol": "ETHUSDT", "tick_size": 0.01, "min_notional": 20})
        funding = cfg.venue.funding.model_copy(update={"file": str(SHARED / "ETH_USDT_USDT-8h-funding_rate.feather")})
        cfg = cfg.model_copy(update={"instrument": inst, "venue": cfg.venue.model_copy(update={"funding": funding})})
    return cfg


def both(cfg, tmp_path: Path, **kw) -> tuple[bytes, bytes, bytes, bytes]:
    fast = run_backtest(cfg, mode="fast", **kw).write(tmp_path / "fast")
    ref = run_backtest(cfg, mode="reference", **kw).write(tmp_path / "ref")
    return ((fast / "fills.csv").read_bytes(), (ref / "fills.csv").read_bytes(),
            (fast / "orders.csv").read_bytes(), (ref / "orders.csv").read_bytes())


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside the repo")
@pytest.mark.parametrize("name", FILES)
def test_fast_equals_reference_on_real_data(name, tmp_path):
    cfg = dual_for(name)
    fills_fast, fills_ref, orders_fast, orders_ref = both(cfg, tmp_path, data=str(SHARED / name))
    assert fills_fast.count(b"\n") > 20, "the run must actually trade for the comparison to mean anything"
    assert fills_fast == fills_ref
    assert orders_fast == orders_ref


def test_fast_equals_reference_on_a_synthetic_quarter(tmp_path):
    """SYNTHETIC data (seeded random walk): 3 months of 1m bars; the full year is in make bench."""
    cfg = load_config(example_path("dual_wallet.yaml"))
    cfg = cfg.model_copy(update={"venue": cfg.venue.model_copy(update={"funding": cfg.venue.funding.model_copy(update={"file": None, "rate": 0.0001})})})
    candles = random_walk_candles(131_400, seed=11)
    step = 8 * 3_600_000
    fts = np.arange((int(candles.ts[0]) // step + 1) * step, int(candles.ts[-1]) + 1, step, dtype=np.int64)
    loaded = LoadedData(candles, engine.Funding(fts, np.full(len(fts), 0.0001)), "constant 0.0001")
    fills_fast, fills_ref, orders_fast, orders_ref = both(cfg, tmp_path, loaded=loaded)
    assert fills_fast.count(b"\n") > 20
    assert fills_fast == fills_ref and orders_fast == orders_ref


def test_fast_equals_reference_for_the_grid_hedge(tmp_path):
    """Timers (rebalance) and limit orders go through the same walk in both loops."""
    cfg = load_config(example_path("grid_hedge.yaml"))
    fills_fast, fills_ref, orders_fast, orders_ref = both(cfg, tmp_path, end="2025-05-12")
    assert fills_fast.count(b"\n") > 5
    assert fills_fast == fills_ref and orders_fast == orders_ref


def atr_config(symbol: str = "BTC", multiple: float = 4.0, period: int = 14):
    cfg = dual_for(symbol)
    wallets = [w.model_copy(update={"unit": w.unit.model_validate({"mode": "atr", "value": multiple, "atr_period": period})})
               for w in cfg.wallets]
    return cfg.model_copy(update={"wallets": wallets})


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside the repo")
@pytest.mark.parametrize("name", ["BTC_USDT_USDT-5m-futures.feather", "ETH_USDT_USDT-1m-futures.feather"])
def test_fast_equals_reference_with_atr_units_on_real_data(name, tmp_path):
    """ATR units: AtrUpdated is delivered lazily (before the strategy's next event), so the
    fast path, which skips quiet bars, lays the same grids as the per-bar loop."""
    cfg = atr_config(name[:3])
    fast = run_backtest(cfg, mode="fast", data=str(SHARED / name))
    ref = run_backtest(cfg, mode="reference", data=str(SHARED / name))
    f_dir, r_dir = fast.write(tmp_path / "fast"), ref.write(tmp_path / "ref")
    fills = (f_dir / "fills.csv").read_bytes()
    assert fills.count(b"\n") > 20
    assert fills == (r_dir / "fills.csv").read_bytes()
    assert (f_dir / "orders.csv").read_bytes() == (r_dir / "orders.csv").read_bytes()
    # U is re-derived at each RESET: the long wallet's first sells (-1, -2) of each cycle are
    # one unit apart, and that unit varies from cycle to cycle.
    o = fast.orders
    sells = o[(o.wallet == "long") & (o.event == "placed") & (o.kind == "stop_loss")].copy()
    sells["cycle"] = sells.order_id.str.split("-").str[2]
    units = {c: g.drop_duplicates("unit").set_index("unit").trigger_price for c, g in sells.groupby("cycle")}
    steps = {round(u["-1"] - u["-2"], 1) for u in units.values() if "-1" in u and "-2" in u}
    assert fast.engine.wallets[0].strategy.resets >= 2 and len(steps) >= 3
    # No look-ahead: the first 14 bars of the file are warm-up, trading starts on the 15th.
    data = load_candles(SHARED / name)
    assert fast.summary["data"]["warmup_bars"] == 14
    assert int(fast.engine.bars.ts[0]) == int(data.ts[14])
    assert fast.fills["timestamp"].iloc[0] == iso_ms([int(data.ts[14])])[0]


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_strategies_book_the_funding_the_venue_books(mode):
    res = run_backtest(load_config(example_path("dual_wallet.yaml")), mode=mode)
    for w in res.engine.wallets:
        assert w.venue.funding_paid != 0
        assert w.strategy.funding == w.venue.funding_paid  # same payments, same order


def with_drawdown(cfg, limits: dict[str, float]):
    wallets = [w.model_copy(update={"risk": w.risk.model_copy(update={"max_drawdown_pct": limits[w.name]})})
               if w.name in limits else w for w in cfg.wallets]
    return cfg.model_copy(update={"wallets": wallets})


@pytest.mark.parametrize("limits", [{"long": 0.05, "hedge": 0.08}, {"hedge": 0.03}])
def test_fast_equals_reference_with_a_drawdown_limit(limits, tmp_path):
    """The guard is checked at every bar close in the reference loop; the fast path finds the
    same first breaching close over the bars it skips."""
    cfg = with_drawdown(load_config(example_path("dual_wallet.yaml")), limits)
    fast = run_backtest(cfg, mode="fast")
    ref = run_backtest(cfg, mode="reference")
    f_dir, r_dir = fast.write(tmp_path / "fast"), ref.write(tmp_path / "ref")
    for name in ("fills.csv", "orders.csv", "equity.csv", "summary.json"):
        if name == "summary.json":
            f, r = (json.loads((d / name).read_text()) for d in (f_dir, r_dir))
            f.pop("engine"), r.pop("engine")
            assert f == r
        else:
            assert (f_dir / name).read_bytes() == (r_dir / name).read_bytes(), name
    stopped = [n for n, w in fast.summary["wallets"].items() if w["stop_reason"] == "max_drawdown"]
    assert stopped == list(limits)  # every guarded wallet tripped, after trading
    assert all(fast.summary["wallets"][n]["fills"] > 2 for n in stopped)
    assert fast.summary["wallets"]["long"]["stop_reason"] == ("max_drawdown" if "long" in limits else None)


def test_fast_equals_reference_under_the_opposite_intrabar_order():
    """The coarse-bar rerun uses the fast path too: same fills as the per-bar loop. (0.1 %
    units on 1m bars, so that the order inside a bar matters at all.)"""
    cfg = load_config(example_path("dual_wallet.yaml"))
    cfg = cfg.model_copy(update={"wallets": [
        w.model_copy(update={"unit": w.unit.model_copy(update={"value": 0.001})}) for w in cfg.wallets]})
    loaded = load_data(cfg, end="2025-05-08")
    c = loaded.candles
    bars = engine.Bars(c.ts, c.open, c.high, c.low, c.close)
    inst = cfg.instrument_model()

    def factories():
        return [(w.name, lambda w=w, i=i: (build_strategy(w, inst, cfg.venue.max_leverage),
                                           SimExchange(inst, sim_config(cfg, w, i, float(c.open[0])))))
                for i, w in enumerate(cfg.wallets)]

    runs = [engine.run(bars, factories(), funding=loaded.funding, mode=m, opposite_intrabar=o)
            for m in ("fast", "reference") for o in (False, True)]
    fills = [[f for w in r.wallets for f in w.venue.fills] for r in runs]
    assert fills[1] == fills[3] and len(fills[1]) > 20
    assert fills[0] == fills[2] and fills[0] != fills[1]
