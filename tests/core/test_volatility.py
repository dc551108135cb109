"""Daily volatility and historical VaR (hedgekit.core.volatility)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from hedgekit.core import ParameterError
from hedgekit.core.volatility import DAY_MS, daily_closes, daily_volatility, historical_var

DAY0 = 19_700 * DAY_MS  # a UTC midnight


def hourly(closes_by_day: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """24 hourly prices a day; the day's last price is its close, the others are noise."""
    ts, px = [], []
    for d, close in enumerate(closes_by_day):
        for h in range(24):
            ts.append(DAY0 + d * DAY_MS + h * 3_600_000)
            px.append(close if h == 23 else close * (1.5 if h % 2 else 0.7))
    return np.array(ts), np.array(px)


def test_resamples_to_the_last_close_of_each_utc_day() -> None:
    ts, px = hourly([100.0, 110.0, 99.0, 102.0])

    close_ts, closes = daily_closes(ts, px)

    assert closes.tolist() == [100.0, 110.0, 99.0, 102.0]
    assert (close_ts // DAY_MS).tolist() == [19_700, 19_701, 19_702, 19_703]


def test_daily_volatility_is_the_sample_std_of_daily_log_returns() -> None:
    ts, px = hourly([100.0, 110.0, 99.0, 102.0])

    sigma = daily_volatility(ts, px)

    expected = statistics.stdev([math.log(110 / 100), math.log(99 / 110), math.log(102 / 99)])
    assert sigma == pytest.approx(expected, rel=1e-12)


def test_lookback_keeps_only_the_last_days() -> None:
    ts, px = hourly([50.0, 200.0, 100.0, 110.0, 99.0])

    sigma = daily_volatility(ts, px, lookback_days=2)

    assert sigma == pytest.approx(statistics.stdev([math.log(110 / 100), math.log(99 / 110)]))


def test_fewer_than_two_daily_returns_is_a_clear_error() -> None:
    ts, px = hourly([100.0, 101.0])

    with pytest.raises(ParameterError, match="at least 3 UTC days"):
        daily_volatility(ts, px)


def test_unsorted_timestamps_are_refused() -> None:
    with pytest.raises(ParameterError, match="sorted"):
        daily_volatility(np.array([DAY0 + DAY_MS, DAY0]), np.array([1.0, 2.0]))


def test_historical_var_is_the_loss_quantile() -> None:
    returns = np.array([-0.10, -0.05, 0.0, 0.05, 0.10])

    # 5 % quantile, linear: -0.10 + 0.2 × 0.05 = -0.09
    assert historical_var(returns, 0.95) == pytest.approx(0.09)
    assert historical_var(-returns, 0.95) == pytest.approx(0.09)


def test_historical_var_without_losses_is_zero() -> None:
    assert historical_var(np.array([0.01, 0.02, 0.03])) == 0.0


def test_historical_var_needs_two_returns() -> None:
    with pytest.raises(ParameterError):
        historical_var(np.array([0.01]))
