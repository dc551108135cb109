"""Start checks (SPEC §4a): bars too coarse for the unit, units smaller than their fees, and
the opposite intrabar order."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from hedgekit.cli import app, example_path
from hedgekit.config import load_config, parse_config
from hedgekit.core import Instrument, UnitMode, UnitSpec
from hedgekit.engine import backtest as engine
from hedgekit.engine.checks import coarse_bars, start_unit, unit_vs_fee
from hedgekit.engine.session import run_backtest
from hedgekit.strategies.long_wallet import LongWallet, LongWalletParams
from hedgekit.venues.sim import SimConfig, SimExchange

TA4J = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ta4j"
BTC_4H = TA4J / "Coinbase-BTC-USD-PT4H-20160518_20251028.json"
START, END = "2023-01-01", "2023-05-01"


def test_unit_vs_fee_on_both_sides_of_4_taker_fees():
    # 4 x 0.05 % of 100,000 = 200 USD
    assert not unit_vs_fee("long", 199.9, 100_000.0, 0.0005).ok
    assert unit_vs_fee("long", 200.0, 100_000.0, 0.0005).ok
    low = unit_vs_fee("long", 150.0, 100_000.0, 0.0005)
    assert low.message == ("long: one unit (150.00) is smaller than 4 x the taker fee 0.0500% on its price "
                           "100,000.00 (200.00): a unit round trip cannot pay its fees; use a larger unit "
                           "or a lower-fee tier")


def test_coarse_when_the_median_range_reaches_one_unit():
    high, low = np.array([110.0, 105.0, 103.0]), np.array([100.0, 100.0, 100.0])  # ranges 10, 5, 3
    assert coarse_bars("w", high, low, 5.0).coarse and coarse_bars("w", high, low, 5.0).ratio == 1.0
    assert not coarse_bars("w", high, low, 5.01).coarse


def test_start_unit_of_each_mode():
    inst = Instrument("X", tick_size=0.1)
    assert start_unit(UnitSpec(UnitMode.FIXED, 150.0), 50_000.0, inst, None) == 150.0
    assert start_unit(UnitSpec(UnitMode.PERCENT, 0.01), 50_000.0, inst, None) == 500.0
    assert start_unit(UnitSpec(UnitMode.GEOMETRIC, 0.01), 50_000.0, inst, None) == 500.0
    assert start_unit(UnitSpec(UnitMode.ATR, 2.0), 50_000.0, inst, 123.44) == 246.9  # to the tick


def fixed_unit_config(value: float):
    cfg = load_config(example_path("dual_wallet.yaml"))
    wallets = [w.model_copy(update={"unit": w.unit.model_validate({"mode": "fixed", "value": value})})
               for w in cfg.wallets]
    return cfg.model_copy(update={"wallets": wallets})


@pytest.mark.parametrize(("unit", "ok"), [(191.0, False), (191.1, True)])
def test_unit_vs_fee_in_the_summary(unit, ok):
    # The bundled data opens at 95,505.4: 4 x 0.05 % of it is 191.0108 USD.
    res = run_backtest(fixed_unit_config(unit), end="2025-05-05")
    dq = res.summary["data_quality"]
    assert {w: f["ok"] for w, f in dq["unit_vs_fee"].items()} == {"long": ok, "hedge": ok}
    assert dq["unit_vs_fee"]["long"]["min_unit"] == pytest.approx(191.0108)
    assert any("cannot pay its fees" in m for m in dq["warnings"]) is not ok


def cli(tmp_path: Path, *args: str):
    res = CliRunner().invoke(app, ["--log-dir", str(tmp_path / "logs"), "backtest", *args])
    assert res.exit_code == 0, res.output
    return res.output


def test_cli_warns_about_a_unit_smaller_than_its_fees(tmp_path):
    cfg = tmp_path / "small.yaml"
    data = yaml.safe_load(example_path("dual_wallet.yaml").read_text())
    data["data"] = {"candles": "bundled:BTC_USDT_USDT-1m-futures.feather", "end": "2025-05-05"}
    data["venue"]["funding"] = {"rate": 0.0001}
    data["wallets"] = [{**data["wallets"][0], "unit": {"mode": "percent", "value": 0.0015}}]
    cfg.write_text(yaml.safe_dump(data))
    text = cli(tmp_path, str(cfg), "--out", str(tmp_path / "out"), "--no-html")
    assert "UNIT SMALLER THAN ITS FEES" in text and "cannot pay its fees" in text
    assert "TOO COARSE" not in text


def raw_median_range(path: Path, start: str, end: str) -> tuple[float, float]:
    """Median high - low and the first open of the file's bars in [start, end), read straight
    from the JSON (not through the loader)."""
    t0, t1 = (datetime.fromisoformat(t).replace(tzinfo=UTC).timestamp() for t in (start, end))
    rows = sorted((int(c["start"]), float(c["open"]), float(c["high"]), float(c["low"]))
                  for c in json.loads(path.read_text())["candles"] if t0 <= int(c["start"]) < t1)
    return float(np.median([h - lo for _, _, h, lo in rows])), rows[0][1]


@pytest.mark.skipif(not BTC_4H.is_file(), reason="../shared/data is not beside the repo")
def test_4h_bars_with_a_half_percent_unit_are_too_coarse(tmp_path):
    data = yaml.safe_load(example_path("dual_wallet.yaml").read_text())
    for w in data["wallets"]:
        w["unit"] = {"mode": "percent", "value": 0.005}
    data["instrument"] = {"symbol": "BTCUSD", "tick_size": 0.01, "lot_size": 0.001, "min_notional": 10}
    data["venue"]["funding"] = {"rate": 0.0001}  # the bundled funding file is for May 2025
    data["data"] = {"candles": str(BTC_4H.resolve()), "start": START, "end": END}
    cfg = tmp_path / "coarse.yaml"
    cfg.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    text = cli(tmp_path, str(cfg), "--out", str(out))

    median, p0 = raw_median_range(BTC_4H, START, END)
    unit = 0.005 * p0
    assert median / unit > 3  # ~294 USD bars against an ~83 USD unit
    assert "BARS TOO COARSE FOR THE UNIT" in text and "both intrabar orders" in text
    summary = json.loads((out / "summary.json").read_text())
    dq = summary["data_quality"]
    for name in ("long", "hedge"):
        c = dq["coarse_bars"][name]
        assert c["coarse"] and c["median_range"] == pytest.approx(median) and c["unit"] == pytest.approx(unit)
        assert c["ratio"] == pytest.approx(median / unit, abs=1e-4)
        assert "too coarse" in c["message"] and "optimistic" in c["message"]
    opp = dq["opposite_intrabar"]
    assert set(opp["wallets"]) == {"long", "hedge"}
    for name, w in opp["wallets"].items():
        assert set(w) == {"return_pct", "max_drawdown_pct", "fills"} and w["fills"] > 0
        # Both results are printed: the main one and the opposite one, side by side.
        assert f"{summary['wallets'][name]['return_pct']:+.2f}" in text and f"{w['return_pct']:+.2f}" in text
    # The opposite order really walks the bars the other way: a different result.
    assert opp["wallets"]["long"] != {k: summary["wallets"]["long"][k] for k in opp["wallets"]["long"]}
    page = (out / "report.html").read_text()
    assert 'id="coarse-bars"' in page and "Bars too coarse for the unit" in page
    # In memory only: one output folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coarse.yaml", "logs", "out"]


def test_bundled_1m_with_a_one_percent_unit_is_fine(tmp_path):
    text = cli(tmp_path, "--out", str(tmp_path / "out"), "--no-html")
    assert "TOO COARSE" not in text and "SMALLER THAN ITS FEES" not in text
    dq = json.loads((tmp_path / "out" / "summary.json").read_text())["data_quality"]
    assert [c["coarse"] for c in dq["coarse_bars"].values()] == [False, False]
    assert all(c["ratio"] < 0.1 for c in dq["coarse_bars"].values())  # ~48 USD bars, ~955 USD unit
    assert dq["opposite_intrabar"] is None and dq["warnings"] == []


def test_atr_unit_is_the_multiple_of_the_atr_the_strategy_anchors_with():
    cfg = load_config(example_path("dual_wallet.yaml"))
    wallets = [w.model_copy(update={"unit": w.unit.model_validate({"mode": "atr", "value": 4.0})})
               for w in cfg.wallets]
    res = run_backtest(cfg.model_copy(update={"wallets": wallets}), end="2025-05-06")
    o = res.orders
    first = o[(o.wallet == "long") & (o.event == "placed") & (o.kind == "stop_loss")].iloc[0]
    entry = res.fills[res.fills.wallet == "long"].price.iloc[0]
    unit = res.summary["data_quality"]["coarse_bars"]["long"]["unit"]
    assert first.unit == "-1" and first.trigger_price == pytest.approx(entry - unit)


# SYNTHETIC bar (hand-made): closes up, low 9850, high 10150, around a 100 USD unit at 10000.
def test_opposite_intrabar_order_walks_high_first_on_an_up_bar():
    inst = Instrument("BTCUSD", tick_size=0.1, lot_size=0.001, min_notional=5.0)
    bars = engine.Bars(np.array([0, 60_000]), np.array([10000.0, 10000.0]), np.array([10000.0, 10150.0]),
                       np.array([10000.0, 9850.0]), np.array([10000.0, 10100.0]))

    def make():
        params = LongWalletParams(1000.0, 1.0, UnitSpec(UnitMode.FIXED, 100.0))
        return LongWallet("long", inst, params), SimExchange(inst, SimConfig(1000.0, trigger_order="fifo"))

    def sells(opposite: bool) -> list[float]:
        run = engine.run(bars, [("long", make)], opposite_intrabar=opposite)
        return [f.price for f in run.wallets[0].venue.fills if f.kind == "stop_loss"]

    assert sells(False)[0] == 9900.0  # open -> low first: the stop one unit below fires
    assert sells(True)[0] == 10000.0  # open -> high first: the stops slid up a unit, then fired


def test_config_without_unit_wallets_has_no_unit_checks():
    cfg = parse_config({"symbol": "BTCUSDT", "grid": {"volatility": 0.02}, "allocation": 50000})
    dq = run_backtest(cfg, end="2025-05-05").summary["data_quality"]
    assert dq["coarse_bars"] == {} and dq["opposite_intrabar"] is None


def test_a_unit_that_rounds_to_zero_is_infinitely_coarse_not_a_crash():
    from hedgekit.engine.checks import coarse_bars

    c = coarse_bars("hedge", np.array([101.0, 102.0]), np.array([100.0, 100.0]), 0.0)
    assert c.coarse and c.ratio == float("inf") and "inf units" in c.message
