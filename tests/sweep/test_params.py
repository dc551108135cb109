"""--param PATH=VALUES: syntax, paths, validation through the config's own models."""

from __future__ import annotations

import numpy as np
import pytest

from hedgekit.cli import example_path
from hedgekit.config import load_config
from hedgekit.sweep.params import (
    ParamError,
    apply_params,
    check_points,
    grid_points,
    parse_param,
    parse_params,
    random_points,
)


@pytest.fixture(scope="module")
def dual():
    return load_config(example_path("dual_wallet.yaml"))


def test_lists_are_read_like_yaml():
    assert parse_param("wallets.hedge.unit.value=0.005,0.01,0.02").points() == (0.005, 0.01, 0.02)
    assert parse_param("wallets.*.leverage=1,2").points() == (1, 2)
    assert parse_param("venue.trigger_order=fifo,random").points() == ("fifo", "random")


def test_ranges_linear_log_and_int():
    assert parse_param("x=0.01:0.05:5").points() == (0.01, 0.02, 0.03, 0.04, 0.05)
    assert parse_param("x=1:4:4").points() == (1, 2, 3, 4)
    assert parse_param("x=log:0.001:0.1:3").points() == pytest.approx((0.001, 0.01, 0.1))
    interval = parse_param("x=log:0.001:0.1")
    assert interval.continuous and interval.log
    rng = np.random.default_rng(1)
    assert all(0.001 <= interval.sample(rng) <= 0.1 for _ in range(50))


@pytest.mark.parametrize(("text", "says"), [
    ("wallets.hedge.unit.value", "expected PATH=VALUES"),
    ("x=0.05:0.01:3", "A < B"),
    ("x=1:2:0", "whole number >= 1"),
    ("x=1:2:2.5", "whole number >= 1"),
    ("x=log:0:1:3", "A > 0"),
    ("x=a:b:3", "is not a number"),
    ("x=1:2:3:4", "a range is A:B:N"),
    ("x=1,1", "repeated"),
    ("x=", "empty value"),
])
def test_bad_values_are_refused_naming_the_param(text, says):
    with pytest.raises(ParamError, match=says) as err:
        parse_param(text).points()
    assert text.split("=")[0] in str(err.value)


def test_a_range_without_count_needs_samples():
    with pytest.raises(ParamError, match="a sweep needs a count"):
        parse_param("x=0.01:0.05").points()


def test_same_path_twice_is_refused():
    with pytest.raises(ParamError, match="given twice"):
        parse_params(["x=1,2", "x=3"])


@pytest.mark.parametrize(("path", "says"), [
    ("wallets.hedge.unit.valu", "unknown field `valu` in wallets.hedge.unit; did you mean `value`?"),
    ("wallets.hedg.leverage", "no wallet named `hedg`.*did you mean `hedge`"),
    ("venue.taker_fees", "did you mean `taker_fee`"),
    ("wallets.*.nothing", "no wallet has the field `nothing`"),
    ("venue.taker_fee.x", "is a value"),
])
def test_unknown_paths_are_named(dual, path, says):
    with pytest.raises(ParamError, match=says) as err:
        check_points(dual, [parse_param(f"{path}=1")], [{path: 1}])
    assert f"--param {path}" in str(err.value)


def test_a_value_the_config_refuses_names_the_param_and_field(dual):
    with pytest.raises(ParamError) as err:
        apply_params(dual, {"wallets.*.leverage": 50})
    text = str(err.value)
    assert "--param wallets.*.leverage=50" in text and "above venue.max_leverage" in text
    with pytest.raises(ParamError, match=r"wallets\.hedge\.unit\.value: Input should be greater than 0"):
        apply_params(dual, {"wallets.hedge.unit.value": -0.01})


def test_apply_sets_named_and_wildcard_fields(dual):
    cfg = apply_params(dual, {"wallets.*.leverage": 3, "wallets.hedge.unit.value": 0.02})
    assert [w.leverage for w in cfg.wallets] == [3.0, 3.0]
    by = {w.name: w for w in cfg.wallets}
    assert by["hedge"].unit.value == 0.02 and by["long"].unit.value == dual.wallets[0].unit.value
    assert cfg.data == dual.data  # untouched fields, resolved paths included


def test_grid_is_the_cartesian_product_and_samples_stay_in_range():
    specs = parse_params(["a=1,2,3", "b=0.1:0.2:2"])
    pts = grid_points(specs)
    assert len(pts) == 6 and pts[0] == {"a": 1, "b": 0.1} and pts[-1] == {"a": 3, "b": 0.2}
    rnd = random_points(parse_params(["a=1,2", "b=log:0.01:1"]), 30, seed=3)
    assert len(rnd) == 30 and {p["a"] for p in rnd} <= {1, 2} and all(0.01 <= p["b"] <= 1 for p in rnd)
    assert rnd == random_points(parse_params(["a=1,2", "b=log:0.01:1"]), 30, seed=3)
