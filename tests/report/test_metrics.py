"""Metrics against values worked out by hand on tiny series."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hedgekit.report.metrics import (
    MS_PER_YEAR,
    WalletSeries,
    buy_and_hold_curve,
    cagr,
    compute_metrics,
    compute_run_metrics,
    count_resets,
    drawdown_durations,
    drawdown_series,
    exposure,
    max_drawdown,
    periods_per_year,
    phase_segments,
    round_trips,
    run_metrics,
    sharpe_ratio,
    simple_returns,
    sortino_ratio,
    time_in_phase,
    wide_curves,
)
from tests.report._fixture import write_output

DAY_MS = 86_400_000


def daily(values, start="2025-01-01") -> pd.Series:
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="D", tz="UTC"), dtype=float)


def fills_frame(rows) -> pd.DataFrame:
    cols = ["timestamp", "wallet", "kind", "side", "qty", "price", "fee", "unit", "phase", "position", "realized_pnl"]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- drawdown


def test_max_drawdown_of_100_110_99_120_is_ten_percent():
    eq = [100.0, 110.0, 99.0, 120.0]

    assert max_drawdown(eq) == pytest.approx(0.10)  # 110 -> 99 is 11/110
    assert drawdown_series(eq) == pytest.approx([0.0, 0.0, 0.10, 0.0])


def test_drawdown_duration_runs_from_peak_to_recovery():
    # Peak 110 at bar 1, underwater at bar 2, back above at bar 3: 2 bars.
    d = drawdown_durations([100.0, 110.0, 99.0, 120.0])

    assert d["max_dd_duration_bars"] == 2
    assert d["recovered"] is True


def test_deepest_and_longest_drawdowns_can_differ():
    # Deepest: 100 -> 80 (20 %), recovered at bar 2 (2 bars). Longest: peak 110 at bar 3,
    # recovered at bar 8 (5 bars, only 7.3 % deep).
    eq = [100, 80, 100, 110, 105, 104, 103, 102, 111]
    times = np.arange(len(eq)) * 3_600_000  # hourly

    d = drawdown_durations(eq, times)

    assert max_drawdown(eq) == pytest.approx(0.20)
    assert d["max_dd_duration_bars"] == 2 and d["max_dd_duration"] == 2 * 3_600_000
    assert d["longest_duration_bars"] == 5 and d["longest_duration"] == 5 * 3_600_000


def test_unrecovered_drawdown_lasts_until_the_end():
    d = drawdown_durations([100.0, 120.0, 90.0, 95.0, 100.0])

    assert d["max_dd_duration_bars"] == 3  # peak at bar 1 .. last bar 4
    assert d["recovered"] is False


def test_flat_curve_has_no_drawdown():
    assert max_drawdown([5.0, 5.0, 5.0]) == 0.0
    assert drawdown_durations([5.0, 5.0])["max_dd_duration_bars"] == 0


# --------------------------------------------------------------------------- returns


RETURNS = [0.01, -0.02, 0.03, 0.0, 0.015]


def test_sharpe_by_hand_on_five_returns():
    # mean = 0.035 / 5 = 0.007
    # deviations 0.003, -0.027, 0.023, -0.007, 0.008; squares sum to 0.00138
    # sample variance 0.00138 / 4 = 0.000345, std = 0.0185742
    # per-period Sharpe 0.007 / 0.0185742 = 0.376866; x sqrt(252) = 5.98258
    assert sharpe_ratio(RETURNS) == pytest.approx(0.007 / math.sqrt(0.000345))
    assert sharpe_ratio(RETURNS, 252) == pytest.approx(5.98258, rel=1e-5)


def test_sortino_by_hand_on_five_returns():
    # downside deviation = sqrt((0.02^2) / 5) = sqrt(0.00008) = 0.00894427
    # 0.007 / 0.00894427 = 0.782624; x sqrt(252) = 12.4237
    assert sortino_ratio(RETURNS) == pytest.approx(0.782624, rel=1e-5)
    assert sortino_ratio(RETURNS, 252) == pytest.approx(12.4237, rel=1e-4)


def test_ratios_are_none_when_undefined():
    assert sharpe_ratio([0.01, 0.01, 0.01]) is None  # no dispersion
    assert sortino_ratio([0.01, 0.02]) is None  # no down step
    assert sharpe_ratio([0.01]) is None


def test_simple_returns_from_equity():
    eq = np.cumprod([100.0] + [1 + r for r in RETURNS])

    assert simple_returns(eq) == pytest.approx(RETURNS)
    assert simple_returns([0.0, 5.0]) == pytest.approx([0.0])  # no return from nothing


def test_periods_per_year_from_bar_spacing():
    minute = np.arange(10) * 60_000
    with_gap = np.array([0, 60_000, 120_000, 10 * 60_000, 11 * 60_000])  # median step still 1 min

    assert periods_per_year(minute) == pytest.approx(525_960)  # 365.25 * 1440
    assert periods_per_year(with_gap) == pytest.approx(525_960)
    assert periods_per_year(np.arange(3) * DAY_MS) == pytest.approx(365.25)
    assert periods_per_year(np.array([0])) is None


def test_cagr_by_hand():
    assert cagr(100.0, 121.0, 2.0) == pytest.approx(0.10)  # 1.1^2 = 1.21
    assert cagr(100.0, 0.0, 1.0) == -1.0
    assert cagr(100.0, 110.0, 0.0) is None


def test_buy_and_hold_curve_with_leverage_is_floored_at_zero():
    assert buy_and_hold_curve([100.0, 110.0, 90.0], 1000.0, 2.0) == pytest.approx([1000, 1200, 800])
    assert buy_and_hold_curve([100.0, 40.0], 1000.0, 2.0)[-1] == 0.0  # -60 % at 2x is a wipe-out


def test_compute_metrics_on_a_tiny_daily_curve():
    eq = daily([100.0, 110.0, 99.0, 120.0])
    prices = [50.0, 55.0, 45.0, 60.0]

    m = compute_metrics(eq, None, prices=prices, positions=[1, 1, 0, 1])

    years = 3 / 365.25
    rets = np.array([0.10, -0.10, 120 / 99 - 1])
    assert m["return_pct"] == pytest.approx(20.0)
    assert m["max_drawdown_pct"] == pytest.approx(10.0)
    assert m["max_drawdown_duration_hours"] == pytest.approx(48.0)
    assert m["cagr_pct"] == pytest.approx((1.2 ** (1 / years) - 1) * 100)
    assert m["calmar"] == pytest.approx((1.2 ** (1 / years) - 1) / 0.10)
    assert m["sharpe"] == pytest.approx(rets.mean() / rets.std(ddof=1) * math.sqrt(365.25))
    assert m["periods_per_year"] == pytest.approx(365.25)
    assert m["exposure_pct"] == pytest.approx(75.0)
    assert m["buy_and_hold_return_pct"] == pytest.approx(20.0)  # 50 -> 60 at 1x
    assert m["excess_return_pct"] == pytest.approx(0.0)
    assert m["buy_and_hold_max_drawdown_pct"] == pytest.approx(100 * (1 - 45 / 55))


def test_start_equity_is_put_in_front_of_the_curve():
    # The allocation was 100 but the first bar closed at 95 (entry fee, slippage): that fall counts.
    eq = daily([95.0, 100.0, 110.0])

    m = compute_metrics(eq, None, start_equity=100.0, prices=[10.0, 10.0, 11.0], leverage=2.0, first_price=10.0)

    assert m["start_equity"] == 100.0
    assert m["return_pct"] == pytest.approx(10.0)
    assert m["max_drawdown_pct"] == pytest.approx(5.0)
    assert m["years"] == pytest.approx(3 / 365.25)
    assert m["buy_and_hold_return_pct"] == pytest.approx(20.0)  # +10 % at 2x
    assert m["buy_and_hold_1x_return_pct"] == pytest.approx(10.0)


# --------------------------------------------------------------------------- fills


def trip_fills() -> pd.DataFrame:
    t = "2025-01-0{}T00:00:00.000Z"
    return fills_frame([
        # long trip: open 1 (fee 1), sell half (+5), sell rest (cum 12): gross 12, fees 2 -> net 10
        (t.format(1), "w", "market_buy", "buy", 1.0, 100, 1.0, "", "ADVANCE", 1.0, 0.0),
        (t.format(2), "w", "stop_loss", "sell", 0.5, 110, 0.5, "-1", "RETRACEMENT", 0.5, 5.0),
        (t.format(3), "w", "stop_loss", "sell", 0.5, 114, 0.5, "-2", "DECLINE", 0.0, 12.0),
        # short trip: open -1 (fee 1), flip to +1 (cum 4: -8, fee 2 split 1/1): gross -8, fees 2 -> -10
        (t.format(4), "w", "stop_entry_short", "sell", 1.0, 100, 1.0, "-1", "RETRACEMENT", -1.0, 12.0),
        (t.format(5), "w", "market_buy_full", "buy", 2.0, 108, 2.0, "", "ADVANCE", 1.0, 4.0),
        # long trip from the flip (fee 1), closed with +6 (fee 1): gross 6, fees 2 -> net 4
        (t.format(6), "w", "stop_loss_full", "sell", 1.0, 114, 1.0, "-1", "RETRACEMENT", 0.0, 10.0),
        # an open trip at the end is not counted
        (t.format(7), "w", "market_buy", "buy", 2.0, 100, 1.0, "", "ADVANCE", 2.0, 10.0),
    ])


def test_round_trips_from_realized_pnl_increments():
    trips = round_trips(trip_fills())

    assert [round(t.pnl, 9) for t in trips] == [10.0, -10.0, 4.0]
    assert [t.side for t in trips] == [1, -1, 1]
    assert [round(t.fees, 9) for t in trips] == [2.0, 2.0, 2.0]
    assert [t.fills for t in trips] == [3, 2, 2]


def test_win_rate_and_profit_factor_per_round_trip():
    eq = daily([100.0] * 7)

    m = compute_metrics(eq, trip_fills())

    assert m["round_trips"] == 3
    assert m["win_rate_pct"] == pytest.approx(200 / 3)
    assert m["profit_factor"] == pytest.approx(14 / 10)
    assert m["avg_trip_pnl"] == pytest.approx(4 / 3)
    assert m["fees"] == pytest.approx(7.0)
    assert m["fills"] == 7
    assert m["fills_by_kind"]["stop_loss"] == 2


def test_profit_factor_without_losses_is_infinite_and_without_trips_none():
    only_win = trip_fills().iloc[:3]
    assert compute_metrics(daily([1.0, 2.0]), only_win)["profit_factor"] == math.inf
    assert compute_metrics(daily([1.0, 2.0]), None)["profit_factor"] is None


def test_round_trips_are_per_wallet():
    a = trip_fills().iloc[:3]
    b = trip_fills().iloc[:3].assign(wallet="v")
    both = pd.concat([a, b]).sort_values("timestamp", kind="stable")

    assert len(round_trips(both)) == 2


def test_resets_counted_from_phase_returning_to_advance():
    phases = ["ADVANCE", "RETRACEMENT", "DECLINE", "RECOVER", "ADVANCE", "ADVANCE", "RETRACEMENT",
              "RESET", "ADVANCE"]
    f = fills_frame([(f"2025-01-01T00:0{i}:00.000Z", "w", "k", "buy", 1, 1, 0, "", p, 1, 0)
                     for i, p in enumerate(phases)])

    assert count_resets(f) == 2


def test_phase_segments_and_time_in_phase():
    f = fills_frame([
        ("2025-01-01T01:00:00.000Z", "w", "k", "buy", 1, 1, 0, "", "ADVANCE", 1, 0),
        ("2025-01-01T02:00:00.000Z", "w", "k", "buy", 1, 1, 0, "", "ADVANCE", 1, 0),
        ("2025-01-01T04:00:00.000Z", "w", "k", "buy", 1, 1, 0, "", "DECLINE", 1, 0),
    ])
    start = pd.Timestamp("2025-01-01", tz="UTC").value // 1_000_000
    end = start + 10 * 3_600_000

    segs = phase_segments(f, end, start)
    hours, pct = time_in_phase(segs)

    assert list(segs["phase"]) == ["before first fill", "ADVANCE", "DECLINE"]
    assert hours == {"before first fill": 1.0, "ADVANCE": 3.0, "DECLINE": 6.0}
    assert pct["DECLINE"] == pytest.approx(60.0)


def test_time_in_phase_from_a_phase_log_sums_each_phase_until_the_next_change():
    """The engine's phase log (summary.json) and the fills (the report) go through one rule."""
    h = 3_600_000
    eq = np.full(10, 1000.0)
    times = np.arange(10, dtype=np.int64) * h
    log = (np.array([0, 2 * h, 3 * h, 3 * h, 7 * h]), np.array(["ADVANCE", "DECLINE", "DECLINE", "ADVANCE", "RESET"]))

    m = compute_metrics(eq, None, times_ms=times, end_ms=10 * h, phase_changes=log, full=False)

    assert m["time_in_phase_hours"] == {"ADVANCE": 6.0, "DECLINE": 1.0, "RESET": 3.0}
    assert m["time_in_phase_pct"] == {"ADVANCE": 60.0, "DECLINE": 10.0, "RESET": 30.0}


def test_the_headline_is_the_full_set_cut_down_not_another_computation():
    rng = np.random.default_rng(5)
    times = np.arange(2000, dtype=np.int64) * 60_000
    prices = 100.0 + np.cumsum(rng.normal(0, 0.5, 2000))
    wallets = [WalletSeries(name, 1000.0 + np.cumsum(rng.normal(0, 2, 2000)), rng.normal(0, 1, 2000),
                            start_equity=1000.0, leverage=lev)
               for name, lev in (("a", 1.0), ("b", 3.0))]

    full = run_metrics(times, prices, wallets, first_price=100.0, end_ms=2000 * 60_000)
    headline = run_metrics(times, prices, wallets, first_price=100.0, end_ms=2000 * 60_000, full=False)

    for name in ("a", "b"):
        cut = headline["wallets"][name]
        assert set(cut) < set(full["wallets"][name])
        assert cut == {k: full["wallets"][name][k] for k in cut}
    assert headline["total"]["max_drawdown_pct"] == full["total"]["max_drawdown_pct"]
    assert headline["total"]["return_pct"] == full["total"]["return_pct"]


def test_exposure_is_the_share_of_bars_in_a_position():
    assert exposure([0.0, 0.5, -1.0, 0.0]) == 0.5
    assert exposure([]) == 0.0


# --------------------------------------------------------------------------- a whole folder


def test_run_metrics_of_a_folder_sum_the_wallets(tmp_path):
    folder = write_output(tmp_path / "out", bars=500)
    eq = pd.read_csv(folder / "equity.csv")
    fills = pd.read_csv(folder / "fills.csv")
    import json

    summary = json.loads((folder / "summary.json").read_text())

    m = compute_run_metrics(eq, fills, summary)

    assert list(m["wallets"]) == ["long", "hedge"]
    ends = eq.groupby("wallet")["equity"].last()
    assert m["total"]["end_equity"] == pytest.approx(ends.sum())
    assert m["total"]["start_equity"] == 20_000.0
    assert m["total"]["fills"] == len(fills)
    assert m["total"]["funding"] == pytest.approx(sum(w["funding"] for w in summary["wallets"].values()))
    assert m["wallets"]["long"]["periods_per_year"] == pytest.approx(MS_PER_YEAR / 60_000)
    assert m["wallets"]["long"]["leverage"] == 2.0


def test_wide_curves_are_pandas_last_value_per_time_carried_forward():
    # Rows out of time order, two rows of a wallet at one time (the last not NaN wins), NaN
    # cells, a wallet missing at some times, one with no position at all, a row without wallet.
    rng = np.random.default_rng(5)
    n = 400
    eq = pd.DataFrame({
        "ts": rng.integers(0, 60, n) * 60_000,
        "wallet": rng.choice(np.array(["long", "hedge", "grid", None], dtype=object), n, p=[0.4, 0.3, 0.25, 0.05]),
        "equity": np.where(rng.random(n) < 0.15, np.nan, rng.normal(1000, 50, n)),
        "position": np.where(rng.random(n) < 0.15, np.nan, rng.normal(0, 1, n)),
        "price": np.where(rng.random(n) < 0.1, np.nan, rng.normal(100, 5, n)),
    })
    eq.loc[eq["wallet"] == "grid", "position"] = np.nan
    eq.loc[3, "equity"] = np.inf
    times = np.sort(eq["ts"].unique())

    got = wide_curves(eq)

    def pivot(col):
        return eq.pivot_table(index="ts", columns="wallet", values=col, aggfunc="last").reindex(times).ffill()

    assert got.times.tolist() == times.tolist()
    pd.testing.assert_frame_equal(got.equity, pivot("equity"), check_exact=True, check_names=False,
                                  check_column_type=False)
    pd.testing.assert_frame_equal(got.position, pivot("position"), check_exact=True, check_names=False,
                                  check_column_type=False)
    assert "grid" in got.equity and "grid" not in got.position
    want_price = eq.groupby("ts")["price"].last().reindex(times).ffill().to_numpy()
    np.testing.assert_array_equal(got.price, want_price)
