"""The report of a real backtest (bundled dual-wallet example, 43k one-minute bars)."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from hedgekit.report.html import build_report
from hedgekit.report.metrics import compute_run_metrics, to_epoch_ms
from tests.report._fixture import figures, fill_points

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_out(tmp_path_factory):
    from hedgekit.cli import DEFAULT_EXAMPLE, example_path
    from hedgekit.config import load_config
    from hedgekit.engine.session import load_data, run_backtest

    cfg = load_config(example_path(DEFAULT_EXAMPLE))
    result = run_backtest(cfg, loaded=load_data(cfg, None, None, None))
    return result.write(tmp_path_factory.mktemp("real") / "out")


def test_metrics_agree_with_the_engine_summary(real_out):
    summary = json.loads((real_out / "summary.json").read_text())
    m = compute_run_metrics(pd.read_csv(real_out / "equity.csv"), pd.read_csv(real_out / "fills.csv"), summary)

    for name, s in summary["wallets"].items():
        w = m["wallets"][name]
        assert w["return_pct"] == pytest.approx(s["return_pct"], abs=1e-3), name
        assert w["max_drawdown_pct"] == pytest.approx(s["max_drawdown_pct"], abs=1e-3), name
        assert w["fees"] == pytest.approx(s["fees"], abs=0.01), name
        assert w["realized_pnl"] == pytest.approx(s["realized_pnl"], abs=0.01), name
        assert w["fills"] == s["fills"], name
        assert w["resets"] == s["resets"], name
        assert w["buy_and_hold_return_pct"] == pytest.approx(s["buy_and_hold_return_pct"], abs=1e-3), name
        assert w["final_phase"] == s["final_phase"], name
        for phase, hours in s["time_in_phase_hours"].items():
            assert w["time_in_phase_hours"].get(phase, 0.0) == pytest.approx(hours, abs=0.02), (name, phase)
    assert m["total"]["return_pct"] == pytest.approx(summary["total"]["return_pct"], abs=1e-3)
    assert m["total"]["max_drawdown_pct"] == pytest.approx(summary["total"]["max_drawdown_pct"], abs=1e-3)


def test_report_of_the_real_run_marks_every_fill(real_out):
    text = build_report(real_out).read_text()
    fills = pd.read_csv(real_out / "fills.csv")

    got = fill_points(figures(text)["chart-price"])

    want: dict[str, Counter] = {}
    for kind, x, y in zip(fills["kind"], to_epoch_ms(fills["timestamp"]).astype(float), fills["price"], strict=True):
        want.setdefault(kind, Counter())[(x, float(y))] += 1
    assert {k: Counter(v) for k, v in got.items()} == want
