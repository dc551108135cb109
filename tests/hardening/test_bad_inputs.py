"""Inputs that used to pass validation and then misbehave (issue 15, item 5): each is refused
up front, through the CLI, with one line naming the file and the field (or key and line)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hedgekit.cli import app, example_path
from hedgekit.config import ConfigError, load_config, parse_config, repeated_names
from tests.engine.test_live import slice_csv


def config(tmp_path: Path, edit=None, name: str = "cfg.yaml") -> Path:
    data = yaml.safe_load(example_path("dual_wallet.yaml").read_text())
    data["venue"]["funding"] = {"rate": 0.0001}
    data["data"] = {}
    if edit is not None:
        edit(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def backtest(tmp_path: Path, cfg: Path, data: Path | None = None):
    data = data or slice_csv(tmp_path, 0.5)
    res = CliRunner().invoke(app, ["--log-dir", str(tmp_path / "logs"), "backtest", str(cfg), "--data", str(data),
                                   "--out", str(tmp_path / "out"), "-q", "--no-html"])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res


def refused(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "qty must be > 0" not in res.output
    return res.output


# -- config values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("where", "edit"), [
    ("wallets[0].long_wallet: leverage=true", lambda d: d["wallets"][0].update(leverage=True)),
    ("wallets[1].hedge_wallet.unit: value=true", lambda d: d["wallets"][1]["unit"].update(value=True)),
    ("instrument: tick_size=false", lambda d: d["instrument"].update(tick_size=False)),
    ("(top level): seed=true", lambda d: d.update(seed=True)),
])
def test_a_boolean_is_never_read_as_a_number(tmp_path, where, edit):
    out = refused(backtest(tmp_path, config(tmp_path, edit)))
    assert f"{tmp_path / 'cfg.yaml'}: invalid configuration" in out
    assert f"{where}: expected a number or text, not a boolean" in out


def test_booleans_stay_fine_where_a_boolean_is_meant():
    assert parse_config({"wallets": [{"strategy": "grid_hedge"}]}).wallets[0].grid.volatility is None


def test_a_duplicate_yaml_key_is_refused_naming_the_key_and_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    text = example_path("long_wallet.yaml").read_text()
    path.write_text(text.replace("    leverage: 2\n", "    leverage: 2\n    leverage: 5\n", 1))
    first = text.splitlines().index("    leverage: 2") + 1
    out = refused(backtest(tmp_path, path))
    assert f"{path}: line {first + 1}: duplicate key `leverage` (first given on line {first})" in " ".join(out.split())


def test_yaml_merge_keys_may_still_override_what_they_merge(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text(
        "base: &w {strategy: long_wallet, allocation: 1000, leverage: 1, unit: {mode: percent, value: 0.01}}\n"
        "wallets:\n  - <<: *w\n    name: a\n    leverage: 2\n"
    )
    with pytest.raises(ConfigError, match="base: unknown key"):  # the merge itself is accepted
        load_config(path)


def test_a_config_that_is_not_utf8_names_the_file_and_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    text = config(tmp_path).read_text()
    path.write_bytes(text.replace("name: hedge", "name: hédge").encode("latin-1"))
    line = text.splitlines().index("- name: hedge") + 1
    out = refused(backtest(tmp_path, path))
    assert f"{path}: line {line}: byte 0xe9 is not UTF-8 text; save the config as UTF-8" in " ".join(out.split())


def test_an_absurd_allocation_is_refused(tmp_path):
    out = refused(backtest(tmp_path, config(tmp_path, lambda d: d["wallets"][0].update(allocation=1e300))))
    assert "wallets[0] (long).allocation=1e+300 is above 1e+12" in " ".join(out.split())


def test_an_allocation_too_small_for_one_order_is_refused_at_validation_naming_the_wallet(tmp_path):
    # N = 100 × 2 = 200 USD, split into 4 sells of 50 USD: below the example's min_notional of 100.
    out = " ".join(refused(backtest(tmp_path, config(tmp_path, lambda d: d["wallets"][1].update(allocation=100)))).split())
    assert ("wallets[1] (hedge).allocation=100: N = allocation × leverage = 200 USD is split into 4 orders of "
            "50 USD, below instrument.min_notional=100; use an allocation of at least 200 (at leverage 2)") in out


class _CountingName(str):
    """A wallet name that counts how often it is compared (a timer-free measure of the work)."""

    compares = 0

    def __eq__(self, other: object) -> bool:
        _CountingName.compares += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_the_duplicate_wallet_check_is_linear_in_the_number_of_wallets():
    names = [_CountingName(f"w{i}") for i in range(20_000)] + [_CountingName("w7")]
    _CountingName.compares = 0
    assert repeated_names(names) == ["w7"]
    assert _CountingName.compares < 1_000  # names.count() in a loop made 400 million


def test_twenty_thousand_wallets_validate_and_a_repeat_is_named():
    wallet = {"strategy": "long_wallet", "allocation": 1000, "unit": {"mode": "percent", "value": 0.01}}
    wallets = [{**wallet, "name": f"w{i}"} for i in range(20_000)]
    assert len(parse_config({"wallets": wallets}).wallets) == 20_000
    with pytest.raises(ConfigError, match="wallet names must be unique; repeated: w19999"):
        parse_config({"wallets": [*wallets, {**wallet, "name": "w19999"}]})
