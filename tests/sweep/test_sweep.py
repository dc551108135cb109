"""hedgekit sweep end to end: the acceptance sweep on a local Ray with 2 CPUs, every row equal to a
separate `hedgekit backtest`; clear errors; several data sets."""

from __future__ import annotations

import html
import json
import shlex

import pandas as pd
import pytest

from hedgekit.sweep.results import backtest_command, read_results
from tests.sweep._helpers import ACCEPTANCE, HEDGE, cli, ray_env

COMPARED = ("return_pct", "max_drawdown_pct", "fees", "funding", "fills", "resets", "end_equity")


def test_acceptance_sweep_on_local_ray_rows_equal_separate_backtests(tmp_path, monkeypatch):
    for k, v in ray_env().items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "sweep"
    res = cli(tmp_path, "sweep", str(HEDGE), *ACCEPTANCE, "--cpus", "2", "--out", str(out))
    assert "8 setting(s)" in res.output
    df, meta = read_results(out)
    assert meta["executor"] == "local Ray, 2 worker(s), data shared zero-copy"
    assert (out / "results.csv").is_file() and (out / "sweep.html").stat().st_size > 1_000_000
    assert len(df) == 8 and df["error"].isna().all()
    assert sorted(zip(df["wallets.hedge.unit.value"], df["wallets.hedge.leverage"], strict=True)) == [
        (u, lev) for u in (0.005, 0.01, 0.02, 0.05) for lev in (1, 2)]
    assert pd.read_csv(out / "results.csv")["return_pct"].tolist() == df["return_pct"].tolist()
    # Two rows, each against its own `hedgekit backtest` run (the command line sweep.html shows).
    for unit, lev in ((0.005, 2), (0.05, 1)):
        row = df[(df["wallets.hedge.unit.value"] == unit) & (df["wallets.hedge.leverage"] == lev)].iloc[0]
        cmd = backtest_command(meta, {"wallets.hedge.unit.value": unit, "wallets.hedge.leverage": lev})
        assert html.escape(cmd) in (out / "sweep.html").read_text()  # the top 10: all 8 settings
        args = shlex.split(cmd)[2:]
        folder = tmp_path / f"bt-{unit}-{lev}"
        cli(tmp_path, "backtest", *args, "--out", str(folder), "--quiet", "--no-html")
        total = json.loads((folder / "summary.json").read_text())["total"]
        for key in COMPARED:
            assert row[key] == pytest.approx(total[key], abs=0, rel=1e-12), (unit, lev, key)


def test_param_errors_are_clear_and_name_the_param(tmp_path):
    cases = [
        (["--param", "wallets.hedge.unit.valu=0.01,0.02"], "did you mean `value`?"),
        (["--param", "wallets.hedge.unit.value=0.05:0.01:3"], "needs A < B"),
        (["--param", "wallets.hedge.leverage=1,50"], "wallets.hedge.leverage=50 is above venue.max_leverage=20"),
        (["--param", "wallets.hedge.unit.value=0.01:0.05"], "a sweep needs a count"),
    ]
    for args, says in cases:
        res = cli(tmp_path, "sweep", str(HEDGE), *args, "--no-ray", "--out", str(tmp_path / "x"), ok=False)
        assert res.exit_code == 2, res.output
        text = " ".join(res.output.split())
        assert "error:" in text and says in text, text
        assert "--param wallets.hedge" in text


def test_backtest_param_takes_one_value(tmp_path):
    res = cli(tmp_path, "backtest", str(HEDGE), "--param", "wallets.hedge.leverage=1,2", "--quiet",
              "--out", str(tmp_path / "bt"), ok=False)
    assert res.exit_code == 2 and "one value per param" in " ".join(res.output.split())


def test_samples_over_two_data_sets(tmp_path):
    out = tmp_path / "s"
    cli(tmp_path, "sweep", str(HEDGE), "--param", "wallets.hedge.unit.value=log:0.01:0.05",
        "--param", "wallets.hedge.leverage=1,2", "--samples", "3", "--seed", "5",
        "--data", "bundled:BTC_USDT_USDT-1m-futures.feather", "--data", "bundled:BTC_USDT_USDT-1m-futures.feather",
        "--from", "2025-05-10", "--to", "2025-05-17", "--no-ray", "--quiet", "--out", str(out))
    df, meta = read_results(out)
    assert len(df) == 6 and df["dataset"].nunique() == 2 and len(meta["datasets"]) == 2
    assert df["start"].str.startswith("2025-05-10").all() and df["end"].str.startswith("2025-05-16T23:59").all()
    assert df["wallets.hedge.unit.value"].between(0.01, 0.05).all()
    # The same setting on the same bars gives the same figures on both data sets.
    a, b = (g.sort_values("trial")["return_pct"].to_numpy() for _, g in df.groupby("dataset"))
    assert (a == b).all()


def test_a_setting_the_backtest_refuses_is_a_row_with_its_error(tmp_path):
    out = tmp_path / "e"
    res = cli(tmp_path, "sweep", str(HEDGE), "--param", "wallets.hedge.unit.mode=percent,atr",
              "--param", "wallets.hedge.unit.value=0.001", "--from", "2025-05-10", "--to", "2025-05-11",
              "--no-ray", "--out", str(out))
    assert "1 backtest(s) refused their setting" in " ".join(res.output.split())
    df, _ = read_results(out)
    bad = df[df["wallets.hedge.unit.mode"] == "atr"].iloc[0]
    assert bad["error"].startswith("ParameterError: unit_size=0.001") and pd.isna(bad["return_pct"])
    assert df[df["wallets.hedge.unit.mode"] == "percent"]["error"].isna().all()
    assert (out / "sweep.html").is_file()
