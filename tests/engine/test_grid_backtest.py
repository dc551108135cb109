"""Grid hedge through the backtest: spot + futures figures, and config errors by field."""

from __future__ import annotations

import json

import pytest
import yaml

from hedgekit.cli import example_path
from hedgekit.config import ConfigError, load_config, parse_config
from hedgekit.engine.session import run_backtest


def test_grid_example_reports_hedged_vs_unhedged(tmp_path):
    result = run_backtest(load_config(example_path("grid_hedge.yaml")))
    out = result.write(tmp_path)
    w = json.loads((out / "summary.json").read_text())["wallets"]["grid"]
    h = w["hedge"]
    for key in ("hedged_daily_volatility_pct", "unhedged_daily_volatility_pct", "hedged_max_drawdown_pct",
                "unhedged_max_drawdown_pct", "hedge_ratio_min", "hedge_ratio_mean", "hedge_ratio_max",
                "stop_loss_events", "take_profit_events", "spot_pnl", "futures_pnl"):
        assert key in h
    assert 0.0 <= h["hedge_ratio_min"] <= h["hedge_ratio_mean"] <= h["hedge_ratio_max"] <= 1.0 + 1e-9
    # hedged = unhedged + what the futures did (same spot, same starting cash)
    assert h["hedged_end_equity"] == pytest.approx(h["unhedged_end_equity"] + h["futures_pnl"], abs=0.02)
    first, last = result.summary["data"]["first_price"], result.summary["data"]["last_price"]
    assert h["spot_pnl"] == pytest.approx(last - first, abs=0.01)  # 1 BTC of spot
    header = (out / "equity.csv").read_text().splitlines()[0]
    assert header == "timestamp,wallet,equity,position,price,spot_equity,hedged_equity,unhedged_equity,hedge_ratio"
    assert w["fills"] > 0 and not w["liquidated"]


def test_grid_start_line_is_logged(caplog):
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO")
    try:
        cfg = parse_config({"symbol": "BTCUSDT", "grid": {"volatility": 0.02}, "allocation": 50000, "leverage": 2})
        run_backtest(cfg, end="2025-05-05")
    finally:
        logger.remove(sink)
    assert any("Creating hedge grid for BTCUSDT - Spot: 1.0, Price: 95505.4, Grid Spacing: 955.1, "
               "Position Step: 0.2, Stop Loss: 4.00%, Take Profit: 6.00%" in line for line in lines)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"grid": {"num_levels": 0}}, "grid.num_levels"),
        ({"grid": {"volatility": -0.02}}, "grid.volatility"),
        ({"risk": {"take_profit_pct": -0.01}}, "risk.take_profit_pct"),
        ({"risk": {"max_hedge_ratio": 1.5}}, "risk.max_hedge_ratio"),
        ({"grid": {"direction": "SIDEWAYS"}}, "grid.direction"),
    ],
)
def test_bad_grid_settings_name_the_field(tmp_path, patch, field):
    data = yaml.safe_load(example_path("grid_hedge.yaml").read_text())
    for section, values in patch.items():
        data[section] = {**data.get(section, {}), **values}
    p = tmp_path / "grid.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert "grid.yaml" in msg and field in msg
    assert msg.count("\n") == 1, f"one clear error expected, got:\n{msg}"


def test_grid_volatility_estimated_from_warmup_when_omitted():
    cfg = parse_config({"symbol": "BTCUSDT", "allocation": 50000, "leverage": 2,
                        "grid": {"volatility_lookback_days": 5}})
    result = run_backtest(cfg)
    assert result.summary["data"]["warmup_bars"] == 5 * 1440
    assert result.summary["data"]["bars"] == 43_199 - 5 * 1440


def test_funding_aware_rung_sizing_uses_the_rates_of_the_funding_data():
    """risk.funding_threshold works from the data: rungs placed after a funding time whose
    rate is beyond the threshold are scaled by funding_size_factor (before it, full size)."""
    base = {"symbol": "BTCUSDT", "grid": {"volatility": 0.02}, "allocation": 50000, "leverage": 2,
            "venue": {"funding": {"rate": 0.0002}}}
    plain = run_backtest(parse_config(base), end="2025-05-08")
    scaled = run_backtest(parse_config({**base, "risk": {"funding_threshold": 0.0001, "funding_size_factor": 0.5}}),
                          end="2025-05-08")

    def placed_qty(result) -> list[tuple[str, float]]:
        o = result.orders
        rungs = o[(o.event == "placed") & o.kind.isin(["grid_sell", "grid_buy"])]
        return list(zip(rungs.timestamp, rungs.qty, strict=True))

    # The data starts 2025-05-04 15:33 UTC; a constant rate is paid every 8 h from 00:00 UTC.
    first_funding = "2025-05-04T16:00:00.000Z"  # ISO-8601 UTC strings sort by time
    before = [q for t, q in placed_qty(scaled) if t < first_funding]
    after = [q for t, q in placed_qty(scaled) if t > first_funding]
    assert before and after
    assert set(before) == {0.2}  # the SPEC §5 step until a rate is known
    assert set(after) == {0.1}
    assert {q for _, q in placed_qty(plain)} == {0.2}  # no threshold: never scaled
