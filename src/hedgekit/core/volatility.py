"""Volatility and value-at-risk estimates from price history. Pure numpy, no I/O.

Used by the grid hedge (SPEC §5) to size its spacing from the daily volatility and to pick a
stop loss from the historical VaR, and by the engine to estimate ``grid.volatility`` from data
when the user leaves it out.
"""

from __future__ import annotations

import numpy as np

from hedgekit.core.errors import ParameterError

__all__ = ["DAY_MS", "daily_closes", "daily_volatility", "historical_var"]

DAY_MS = 86_400_000  # one UTC day in milliseconds


def daily_closes(ts_ms: np.ndarray, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Resample prices of any timeframe to daily closes on UTC day boundaries.

    Returns ``(ts, close)``: the timestamp and price of the last row of each UTC day that has
    at least one price (the day number is ``ts // DAY_MS``). Days without data are simply absent (no forward fill), so a
    gap yields one return spanning the gap, as a daily-close series of that market would.
    """
    ts = np.asarray(ts_ms)
    px = np.asarray(close, dtype=float)
    if ts.ndim != 1 or px.ndim != 1 or ts.shape != px.shape:
        raise ParameterError(
            "close",
            f"shapes {ts.shape} and {px.shape}",
            "ts_ms and close must be 1-D arrays of the same length",
        )
    if ts.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=float)
    ts = ts.astype(np.int64)
    if np.any(np.diff(ts) < 0):
        bad = int(np.argmax(np.diff(ts) < 0)) + 1
        raise ParameterError(
            "ts_ms",
            int(ts[bad]),
            f"timestamps must be sorted ascending (row {bad} goes back in time)",
        )
    if not np.all(np.isfinite(px)) or np.any(px <= 0):
        bad = int(np.argmax(~np.isfinite(px) | (px <= 0)))
        raise ParameterError(
            "close", float(px[bad]), f"prices must be finite and positive (row {bad})"
        )
    day = ts // DAY_MS  # floor division: correct for pre-1970 timestamps too
    last = np.flatnonzero(np.diff(day) != 0)  # last row of every day but the final one
    last = np.append(last, day.size - 1)
    return ts[last], px[last]


def daily_volatility(ts_ms: np.ndarray, close: np.ndarray, lookback_days: int = 30) -> float:
    """Standard deviation (ddof=1) of daily log returns over the last ``lookback_days`` days.

    ``ts_ms`` are epoch milliseconds (UTC), ``close`` the matching prices of any timeframe
    (trades, minute or daily candles): they are resampled to the last close of each UTC day
    first. The result is a fraction (0.02 = 2 % a day).
    """
    if isinstance(lookback_days, bool) or not isinstance(lookback_days, int) or lookback_days < 2:
        raise ParameterError(
            "lookback_days", lookback_days, "must be an integer >= 2 (a volatility needs 2 returns)"
        )
    close_ts, closes = daily_closes(ts_ms, close)
    closes = closes[-(lookback_days + 1) :]
    returns = np.diff(np.log(closes))
    if returns.size < 2:
        raise ParameterError(
            "close",
            f"{close_ts.size} UTC day(s) of prices",
            "need prices on at least 3 UTC days (2 daily returns) to estimate a daily volatility; "
            "supply more history or set grid.volatility explicitly",
        )
    return float(np.std(returns, ddof=1))


def historical_var(returns: np.ndarray, level: float = 0.95) -> float:
    """Historical value-at-risk of a long position, as a positive fraction of its value.

    ``returns`` are simple period returns (0.01 = +1 %). The result is the loss not exceeded
    with probability ``level`` (the ``1 - level`` quantile of the returns, sign flipped), with
    linear interpolation between observations. A history whose quantile is a gain gives 0.0.
    For a short position pass ``-returns``.
    """
    if not isinstance(level, int | float) or isinstance(level, bool) or not 0.5 <= level < 1:
        raise ParameterError("level", level, "must be a confidence level in [0.5, 1), e.g. 0.95")
    r = np.asarray(returns, dtype=float).ravel()
    if r.size < 2:
        raise ParameterError(
            "returns", f"{r.size} return(s)", "need at least 2 returns for a historical VaR"
        )
    if not np.all(np.isfinite(r)):
        bad = int(np.argmax(~np.isfinite(r)))
        raise ParameterError("returns", float(r[bad]), f"returns must be finite (row {bad})")
    if np.any(r <= -1):
        bad = int(np.argmax(r <= -1))
        raise ParameterError("returns", float(r[bad]), f"a simple return must be > -1 (row {bad})")
    loss = -float(np.quantile(r, 1.0 - level))
    return max(loss, 0.0)
