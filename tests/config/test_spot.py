"""instrument.contract: spot (SPEC §6): no funding, no leverage above 1, no shorts — refused
at config validation, naming the wallet and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hedgekit.cli import example_path
from hedgekit.config import ConfigError, load_config
from hedgekit.core.instrument import ContractType
from hedgekit.engine.session import run_backtest


def spot(name: str, tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load(example_path(name).read_text())
    data.setdefault("instrument", {})["contract"] = "spot"
    for key, value in changes.items():
        target = data["wallets"][0] if "wallets" in data else data
        target[key] = value
    p = tmp_path / f"spot_{name}"
    p.write_text(yaml.safe_dump(data))
    return p


def test_leverage_above_one_on_spot_names_the_wallet_and_field(tmp_path):
    with pytest.raises(ConfigError, match=r"wallets\[0\] \(long\)\.leverage=2: instrument\.contract is spot"):
        load_config(spot("long_wallet.yaml", tmp_path))


def test_the_hedge_wallet_is_refused_on_spot(tmp_path):
    path = spot("dual_wallet.yaml", tmp_path)
    data = yaml.safe_load(path.read_text())
    for w in data["wallets"]:
        w["leverage"] = 1
    path.write_text(yaml.safe_dump(data))

    with pytest.raises(ConfigError, match=r"wallets\[1\] \(hedge\)\.strategy=hedge_wallet sells short"):
        load_config(path)


@pytest.mark.parametrize("direction", ["SHORT", "BOTH"])
def test_a_grid_that_would_short_spot_is_refused(tmp_path, direction):
    path = spot("grid_hedge.yaml", tmp_path, leverage=1)
    data = yaml.safe_load(path.read_text())
    data["grid"]["direction"] = direction
    path.write_text(yaml.safe_dump(data))

    with pytest.raises(ConfigError, match=rf"\(grid\)\.grid\.direction={direction} sells short"):
        load_config(path)


def test_a_long_grid_on_spot_is_accepted(tmp_path):
    path = spot("grid_hedge.yaml", tmp_path, leverage=1)
    data = yaml.safe_load(path.read_text())
    data["grid"]["direction"] = "LONG"
    path.write_text(yaml.safe_dump(data))

    assert load_config(path).instrument_model().contract is ContractType.SPOT


def test_a_spot_long_wallet_pays_no_funding_even_with_a_funding_file(tmp_path):
    cfg = load_config(spot("long_wallet.yaml", tmp_path, leverage=1))
    assert cfg.venue.funding.file is not None  # the example names one: it must be ignored

    res = run_backtest(cfg, end="2025-05-12")

    (w,) = res.engine.wallets
    assert w.venue.instrument.contract is ContractType.SPOT
    assert len(w.venue.fills) > 3 and w.venue.funding_paid == 0.0
    assert res.summary["data"]["funding"] == "none (spot: no funding; venue.funding ignored)"
    assert res.summary["wallets"]["long"]["funding"] == 0.0
    assert (res.fills.position >= 0).all()  # never short
