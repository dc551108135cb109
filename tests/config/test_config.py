"""Bad configs give one clear error naming the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hedgekit.cli import example_path
from hedgekit.config import BacktestConfig, ConfigError, load_config, parse_config

EXAMPLES = ["dual_wallet.yaml", "long_wallet.yaml", "hedge_wallet.yaml"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_load(name):
    cfg = load_config(example_path(name))
    assert cfg.wallets


def write(tmp_path: Path, data) -> Path:
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def dual() -> dict:
    return yaml.safe_load(example_path("dual_wallet.yaml").read_text())


def error_of(tmp_path: Path, data) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, data))
    return str(err.value)


def test_negative_leverage_names_the_field(tmp_path):
    d = dual()
    d["wallets"][0]["leverage"] = -2
    msg = error_of(tmp_path, d)
    assert "bad.yaml" in msg and "wallets[0].long_wallet.leverage" in msg and "-2" in msg


def test_typo_suggests_the_right_key(tmp_path):
    d = dual()
    d["wallets"][1]["alocation"] = d["wallets"][1].pop("allocation")
    msg = error_of(tmp_path, d)
    assert "alocation" in msg and "did you mean `allocation`" in msg


def test_unknown_strategy_lists_the_allowed_ones(tmp_path):
    d = dual()
    d["wallets"][0]["strategy"] = "moon_wallet"
    msg = error_of(tmp_path, d)
    assert "wallets[0]" in msg and "long_wallet" in msg and "hedge_wallet" in msg


def test_leverage_above_the_venue_maximum(tmp_path):
    d = dual()
    d["wallets"][0]["leverage"] = 50
    msg = error_of(tmp_path, d)
    assert "wallets[0].leverage=50" in msg and "max_leverage=20" in msg


def test_unit_smaller_than_tick(tmp_path):
    d = dual()
    d["wallets"][0]["unit"] = {"mode": "fixed", "value": 0.01}
    assert "smaller than the tick" in error_of(tmp_path, d)


def test_duplicate_wallet_names(tmp_path):
    d = dual()
    d["wallets"][1]["name"] = "long"
    assert "repeated: long" in error_of(tmp_path, d)


def test_wallet_name_with_dash_is_refused(tmp_path):
    d = dual()
    d["wallets"][0]["name"] = "my-long"
    assert "wallets[0].long_wallet.name" in error_of(tmp_path, d)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("wallets: [\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config(p)


def test_funding_file_and_rate_together(tmp_path):
    d = dual()
    d["venue"]["funding"] = {"file": "x.feather", "rate": 0.0001}
    assert "either `file` or `rate`" in error_of(tmp_path, d)


@pytest.mark.parametrize(("unit", "field", "words"), [
    ({"mode": "atr", "value": 0}, "unit.value", "greater than 0"),
    ({"mode": "atr", "value": -2}, "unit.value", "greater than 0"),
    ({"mode": "atr", "value": 3, "atr_period": 1}, "unit.atr_period", "greater than or equal to 2"),
    ({"mode": "atr", "value": 3, "atr_period": 2.5}, "unit.atr_period", "valid integer"),
    ({"mode": "atr", "value": 3, "atr_period": "x"}, "unit.atr_period", "valid integer"),
    ({"mode": "percent", "value": 0.01, "atr_period": 14}, "unit", "only with mode: atr"),
    ({"mode": "percent", "value": 1.5}, "unit", "must be < 1"),
])
def test_bad_atr_units_name_the_field(tmp_path, unit, field, words):
    d = dual()
    d["wallets"][1]["unit"] = unit
    msg = error_of(tmp_path, d)
    assert f"wallets[1].hedge_wallet.{field}" in msg and words in msg


def test_atr_units_load_and_need_their_warm_up(tmp_path):
    from hedgekit.engine.session import atr_warmup_bars, run_backtest

    d = dual()
    d["wallets"][0]["unit"] = {"mode": "atr", "value": 3}
    d["wallets"][1]["unit"] = {"mode": "atr", "value": 3, "atr_period": 30}
    cfg = load_config(write(tmp_path, d))
    assert cfg.wallets[0].unit.spec().atr_period == 14
    assert atr_warmup_bars(cfg) == 30  # every wallet waits the longest
    # The journal stores the dumped config and validates it again (status, flatten).
    for c in (cfg, load_config(example_path("dual_wallet.yaml"))):
        assert BacktestConfig.model_validate_json(c.model_dump_json()) == c
    with pytest.raises(ValueError, match=r"unit.atr_period=30 bars of warm-up.*only 20"):
        run_backtest(cfg, end="2025-05-04T15:53:00Z")


@pytest.mark.parametrize(("start", "end", "expected"), [
    ("2025-05-10", "2025-05-11", "2025-05-10T00:00:00Z"),  # YAML: a date
    ("2025-05-10 12:30:00", "2025-05-11 12:30:00", "2025-05-10T12:30:00Z"),  # naive datetime: UTC
    ("2025-05-10T14:30:00+02:00", "2025-05-11T14:30:00+02:00", "2025-05-10T12:30:00Z"),  # aware
    ("1746880200000", "1746966600000", "2025-05-10T12:30:00Z"),  # epoch ms: an int
    ("'2025-05-10T12:30:00Z'", "'2025-05-11T12:30:00Z'", "2025-05-10T12:30:00Z"),  # quoted, as before
])
def test_unquoted_yaml_dates_and_times_are_accepted(tmp_path, start, end, expected):
    from hedgekit.feeds.history import to_epoch_ms

    p = tmp_path / "dates.yaml"
    p.write_text(example_path("dual_wallet.yaml").read_text().replace(
        "data:\n", f"data:\n  start: {start}\n  end: {end}\n"))

    cfg = load_config(p)

    assert to_epoch_ms(cfg.data.start) == to_epoch_ms(expected)
    assert to_epoch_ms(cfg.data.end) == to_epoch_ms(expected) + 86_400_000


def test_grid_settings_are_the_strategys_own_model_validated_once():
    from hedgekit.strategies.grid_hedge import GridSettings, RiskSettings

    cfg = parse_config({"symbol": "BTCUSDT", "grid": {"volatility": 0.02, "num_levels": 4}})
    wallet = cfg.wallets[0]
    params = wallet.params("BTCUSDT")

    assert isinstance(wallet.grid, GridSettings) and isinstance(wallet.risk, RiskSettings)
    assert params.grid is wallet.grid and params.risk is wallet.risk  # handed over, not re-validated
    assert params.grid.num_levels == 4


def test_bad_grid_settings_are_all_listed_each_at_its_field():
    data = {"wallets": [{"strategy": "grid_hedge", "grid": {"num_levels": 0},
                         "risk": {"max_hedge_ratio": 1.5, "take_profit_pct": 2}}]}

    with pytest.raises(ConfigError) as err:
        parse_config(data, "grid.yaml")

    lines = str(err.value).splitlines()
    assert lines[0] == "grid.yaml: invalid configuration (2 problem(s))"
    assert lines[1] == ("  wallets[0].grid_hedge.grid.num_levels: must be a whole number of levels between "
                        "1 and 100 (got 0)")
    assert lines[2] == ("  wallets[0].grid_hedge.risk.take_profit_pct: must be a fraction below 1 "
                        "(0.04 = 4 %) (got 2)")


def test_a_hedge_ratio_above_its_limit_is_reported_at_the_ratio():
    with pytest.raises(ConfigError) as err:
        parse_config({"symbol": "BTCUSDT", "grid": {}, "risk": {"max_hedge_ratio": 1.5}}, "g.yaml")

    assert str(err.value).splitlines()[1].startswith(
        "  risk.max_hedge_ratio: must be <= risk.max_hedge_ratio_limit (1): a hedge larger than the spot"
    )
