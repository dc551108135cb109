"""Inputs that used to pass validation and then misbehave (issue 15, item 5): each is refused
up front, through the CLI, with one line naming the file and the field (or key and line)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from loguru import logger
from typer.testing import CliRunner

from hedgekit.cli import app, example_path
from hedgekit.config import ConfigError, load_config, parse_config, repeated_names
from tests.engine.test_live import slice_csv


@pytest.fixture(autouse=True)
def _quiet_logs():
    """The CLI points loguru at the runner's stderr, closed after each invoke."""
    yield
    logger.remove()


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


# -- the config against its data (hedgekit.preflight) ----------------------------------------------


def unit(mode: str, value: float):
    def edit(d):
        for w in d["wallets"]:
            w["unit"] = {"mode": mode, "value": value}

    return edit


def test_a_fixed_unit_above_the_price_is_refused(tmp_path):
    out = " ".join(refused(backtest(tmp_path, config(tmp_path, unit("fixed", 1e12)))).split())
    assert ("wallets[0] (long).unit (fixed, 1e+12) is not below the price at the start of the data (95,505): "
            "one step down would reach zero") in out


@pytest.mark.parametrize(("mode", "value", "ticks"), [("fixed", 0.1, "1"), ("percent", 1e-6, "0.955")])
def test_a_unit_at_one_tick_is_refused(tmp_path, mode, value, ticks):
    out = " ".join(refused(backtest(tmp_path, config(tmp_path, unit(mode, value)))).split())
    assert f"wallets[0] (long).unit ({mode}, {value:g}" in out
    assert f"is {ticks} tick(s) of 0.1: levels are rounded to the tick" in out and "use at least 2 ticks (0.2)" in out


def test_a_unit_implying_too_many_steps_is_refused_with_the_count_and_the_limit(tmp_path, monkeypatch):
    # 0.3 USD (3 ticks) over half a day of BTC 1m: about 100,000 unit steps; the limit is lowered.
    monkeypatch.setenv("HEDGEKIT_MAX_UNIT_STEPS", "50000")  # default 100,000
    out = " ".join(refused(backtest(tmp_path, config(tmp_path, unit("fixed", 0.3)))).split())
    assert "wallets[0] (long).unit (fixed, 0.3) implies about 101,496 unit steps over the 720 bars" in out
    assert "above the limit of 50,000" in out and "use a unit of at least 0.609" in out


def test_millions_of_unit_steps_are_refused_by_default(tmp_path):
    from hedgekit.engine.session import load_data
    from hedgekit.preflight import MAX_UNIT_STEPS, check_inputs

    cfg = load_config(config(tmp_path, unit("fixed", 0.3)))
    candles = load_data(cfg).candles  # the bundled month of BTC 1m
    with pytest.raises(ConfigError, match=rf"about 8,808,636 unit steps over the 43,199 bars.*limit of {MAX_UNIT_STEPS:,}"):
        check_inputs(cfg, candles)


def test_a_bar_wider_than_the_per_move_limit_is_refused():
    """SYNTHETIC bars: one of them spans 3,000 USD, 15,000 levels of a 0.2 unit."""
    import numpy as np

    from hedgekit.feeds.history import Candles
    from hedgekit.preflight import check_inputs

    ts = np.arange(3) * 60_000
    close = np.array([100_000.0, 100_000.0, 100_000.0])
    candles = Candles(ts, close, close + [0, 3_000, 0], close, close, np.ones(3))
    cfg = parse_config({"wallets": [{"name": "w", "strategy": "long_wallet", "allocation": 10_000,
                                     "unit": {"mode": "fixed", "value": 0.2}}]})
    with pytest.raises(ConfigError, match="alone crosses 15,000 unit levels, above the limit of 10,000 per move"):
        check_inputs(cfg, candles)


def test_an_allocation_that_cannot_split_into_four_lots_is_refused_before_the_engine(tmp_path):
    # min_notional 5: N = 200 USD passes it, but buys 0.0021 BTC, not 4 lots of 0.001.
    def edit(d):
        d["instrument"]["min_notional"] = 5
        d["wallets"][0]["allocation"] = 100

    out = " ".join(refused(backtest(tmp_path, config(tmp_path, edit))).split())
    assert ("wallets[0] (long).allocation=100: N = allocation × leverage = 200 USD buys 0.00209412 at the first "
            "price 95,505, which cannot be split into the 4 sells of at least one lot (0.001) each; use an "
            "allocation of at least 192 (at leverage 2)") in out


def test_a_file_named_for_another_pair_than_the_config_symbol_is_refused(tmp_path):
    """The bars are BTC's; the freqtrade name says ETH: the name is what the user meant to give."""
    import pandas as pd

    frame = pd.read_csv(slice_csv(tmp_path, 0.5))
    frame["date"] = pd.to_datetime(frame.pop("timestamp"), unit="ms", utc=True)
    path = tmp_path / "ETH_USDT_USDT-1m-futures.feather"
    frame[["date", "open", "high", "low", "close", "volume"]].to_feather(path)
    out = " ".join(refused(backtest(tmp_path, config(tmp_path), data=path)).split())
    assert f"{path}: the file holds ETH/USDT:USDT (its name says so), but instrument.symbol is BTCUSDT" in out


@pytest.mark.parametrize("symbol", ["BTCUSDT", "BTC/USDT:USDT", "btc_usdt"])
def test_the_symbol_check_accepts_every_spelling_of_the_same_pair(symbol):
    from hedgekit.feeds.datadir import check_symbol

    check_symbol(symbol, "data/binance/futures/BTC_USDT_USDT-1m-futures.feather")
    check_symbol(symbol, "data/binance/BTC_USDT-1m.feather")
    check_symbol(symbol, "my_history.csv")  # the name says nothing: nothing to compare


@pytest.mark.parametrize("example", ["long_wallet", "hedge_wallet", "dual_wallet", "grid_hedge"])
def test_the_bundled_examples_pass_the_checks_on_their_data(example):
    from hedgekit.engine.session import load_data
    from hedgekit.preflight import check_inputs

    cfg = load_config(example_path(f"{example}.yaml"))
    check_inputs(cfg, load_data(cfg).candles)


GOLDEN_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "typhonun_DcaTpStrategy"


@pytest.mark.skipif(not GOLDEN_DATA.is_dir(), reason="../shared/data is not beside the repo")
def test_the_golden_cases_pass_the_checks():
    from hedgekit.preflight import check_inputs
    from tests.engine.test_golden import CASES, _config, _loaded

    for example, data in CASES:
        cfg = _config(example, data)
        loaded = _loaded(cfg, data)
        check_inputs(cfg, loaded.candles)


# -- size-bounded loading --------------------------------------------------------------------------


def test_zero_bytes_are_refused_from_the_first_block_without_reading_the_file(tmp_path):
    import tracemalloc

    from hedgekit.feeds.history import DataError, load_candles

    zeros = tmp_path / "zeros.csv"
    zeros.write_bytes(bytes(8_000_000))  # stands in for the 1 GB
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as err:
            load_candles(zeros)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"{zeros}: binary data in a text file (a NUL byte at offset 0, in the first 65,536 bytes)" in str(err.value)
    assert peak < 1_000_000, f"read {peak:,} bytes to refuse it"


def test_zero_bytes_through_the_cli_are_one_line(tmp_path):
    zeros = tmp_path / "zeros.csv"
    zeros.write_bytes(bytes(100_000))
    out = " ".join(refused(backtest(tmp_path, config(tmp_path), data=zeros)).split())
    assert "binary data in a text file" in out and "no data rows" not in out


def test_a_file_above_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    data = slice_csv(tmp_path, 0.5)
    monkeypatch.setenv("HEDGEKIT_MAX_DATA_MB", "0.01")  # 10 kB: the half-day CSV is ~50 kB
    size = data.stat().st_size / 1e3
    out = " ".join(refused(backtest(tmp_path, config(tmp_path), data=data)).split())
    assert f"{data}: the file is {size:,.1f} kB, above the 10.0 kB limit for a data file" in out
    assert "HEDGEKIT_MAX_DATA_MB" in out


def test_a_gzip_that_unzips_beyond_the_limit_is_refused_without_unzipping_it_all(tmp_path, monkeypatch):
    import gzip

    from hedgekit.feeds.history import DataError, load_candles

    monkeypatch.setenv("HEDGEKIT_MAX_DATA_MB", "1")
    bomb = tmp_path / "bars.csv.gz"
    bomb.write_bytes(gzip.compress(b"timestamp,open,high,low,close,volume\n" + b"1,1,1,1,1,1\n" * 1_000_000))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(DataError, match=r"unzipped, the file is more than 1\.0 MB, above the 1\.0 MB limit"):
        load_candles(bomb)
