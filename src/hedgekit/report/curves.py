"""Statistics of equity curves (drawdown, returns, ratios, buy and hold, the grid hedge's
hedged/unhedged figures): pure numpy functions, conventions as in ``report.metrics``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "MS_PER_YEAR",
    "buy_and_hold_costs",
    "buy_and_hold_curve",
    "buy_and_hold_end",
    "cagr",
    "daily_volatility_of",
    "drawdown_durations",
    "drawdown_series",
    "hedge_curves",
    "hedge_metrics",
    "max_drawdown",
    "periods_per_year",
    "sharpe_ratio",
    "simple_returns",
    "sortino_ratio",
    "to_epoch_ms",
]

MS_PER_YEAR = 365.25 * 86_400_000


# --------------------------------------------------------------------------- drawdown


def drawdown_series(equity: np.ndarray) -> np.ndarray:
    """Fractional drawdown from the running peak at each point (0 = at a peak, 0.2 = 20 % below)."""
    eq = np.asarray(equity, dtype=float)
    if eq.size == 0:
        return eq
    peak = np.maximum.accumulate(eq)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, 1.0 - eq / peak, 0.0)
    return dd


def max_drawdown(equity: np.ndarray) -> float:
    """Largest peak-to-trough fall as a fraction of the peak."""
    eq = np.asarray(equity, dtype=float)
    if eq.size == 0:
        return 0.0
    peak = np.maximum.accumulate(eq)
    if not (peak[0] > 0 and peak[-1] == peak[-1]):  # a peak <= 0 or a NaN: the general way
        return float(drawdown_series(eq).max())
    # Every peak > 0: max(1 - eq/peak) is 1 - min(eq/peak) bit for bit (rounding is monotone),
    # without drawdown_series' mask and second array (a trial takes several on a year of bars).
    with np.errstate(invalid="ignore"):  # inf / inf
        np.divide(eq, peak, out=peak)
    return float(1.0 - peak.min())


def drawdown_durations(equity: np.ndarray, times: np.ndarray | None = None) -> dict[str, float]:
    """Durations of the deepest drawdown and of the longest one.

    A drawdown lasts from its peak to the first point back at (or above) that peak, or to the
    last point when it never recovered. ``times`` (epoch ms or any increasing numbers) default
    to the point index, so durations are then in bars. Returns ``max_dd_duration`` (the episode
    holding the deepest trough), ``max_dd_duration_bars``, ``longest_duration``,
    ``longest_duration_bars`` and ``recovered`` (whether the deepest one recovered).
    """
    eq = np.asarray(equity, dtype=float)
    n = eq.size
    t = np.arange(n, dtype=float) if times is None else np.asarray(times, dtype=float)
    out: dict[str, Any] = {"max_dd_duration": 0.0, "max_dd_duration_bars": 0, "longest_duration": 0.0,
           "longest_duration_bars": 0, "recovered": True}
    if n < 2:
        return out
    dd = drawdown_series(eq)
    under = dd > 0
    if not under.any():
        return out
    # Episodes: maximal runs of underwater points; each starts one point after its peak.
    edges = np.diff(np.concatenate([[0], under.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # first point after the run (== n if never recovered)
    deepest = int(np.argmax(dd))
    for s, e in zip(starts, ends, strict=True):
        peak_i = int(s) - 1
        end_i = min(int(e), n - 1)
        dur, bars = float(t[end_i] - t[peak_i]), int(end_i - peak_i)
        if dur > out["longest_duration"]:
            out["longest_duration"], out["longest_duration_bars"] = dur, bars
        if s <= deepest < e:
            out["max_dd_duration"], out["max_dd_duration_bars"] = dur, bars
            out["recovered"] = bool(e < n)
    return out


# --------------------------------------------------------------------------- returns


def to_epoch_ms(values) -> np.ndarray:
    """ISO-8601 strings, datetimes or a DatetimeIndex -> int64 epoch milliseconds (UTC)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return values.astype(np.int64)
    ser = pd.Series(values) if not isinstance(values, pd.Series) else values
    if ser.dtype.kind in "iu":
        return ser.to_numpy(dtype=np.int64)
    # Parse each distinct stamp once (wallets share their bars' stamps).
    codes, uniques = pd.factorize(ser)
    dt = pd.to_datetime(pd.Series(uniques), utc=True, format="ISO8601")
    ms = dt.dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64)
    return ms[codes] if ms.size else np.empty(len(ser), dtype=np.int64)


def periods_per_year(times_ms: np.ndarray) -> float | None:
    """365.25 days divided by the median positive step between timestamps (epoch ms)."""
    t = np.asarray(times_ms, dtype=float)
    if t.size < 2:
        return None
    steps = np.diff(t)
    steps = steps[steps > 0]
    if steps.size == 0:
        return None
    return MS_PER_YEAR / float(np.median(steps))


def simple_returns(equity: np.ndarray) -> np.ndarray:
    """Per-step simple returns ``e[i]/e[i-1] - 1``; a step from a non-positive equity counts 0."""
    eq = np.asarray(equity, dtype=float)
    if eq.size < 2:
        return np.empty(0)
    prev, cur = eq[:-1], eq[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(prev > 0, cur / prev - 1.0, 0.0)
    return np.where(np.isfinite(r), r, 0.0)


def sharpe_ratio(returns: np.ndarray, periods: float | None = None) -> float | None:
    """``mean / std(ddof=1)``, times ``sqrt(periods)`` when given; None if undefined."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return None
    sd = float(np.std(r, ddof=1))
    if not sd > 0:
        return None
    return float(np.mean(r)) / sd * (math.sqrt(periods) if periods else 1.0)


def sortino_ratio(returns: np.ndarray, periods: float | None = None) -> float | None:
    """``mean / sqrt(mean(min(r, 0)²))``, times ``sqrt(periods)``; None without a down step."""
    r = np.asarray(returns, dtype=float)
    if r.size < 1:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if not downside > 0:
        return None
    return float(np.mean(r)) / downside * (math.sqrt(periods) if periods else 1.0)


def cagr(start: float, end: float, years: float) -> float | None:
    """Compound annual growth rate as a fraction; -1 when the equity is wiped out."""
    if not years > 0 or not start > 0:
        return None
    if end <= 0:
        return -1.0
    with np.errstate(over="ignore"):
        g = float(np.power(end / start, 1.0 / years)) - 1.0
    return g if math.isfinite(g) else None


def buy_and_hold_curve(prices: np.ndarray, start_equity: float, leverage: float = 1.0,
                       first_price: float | None = None, *, maintenance_margin_rate: float = 0.0,
                       taker_fee: float = 0.0) -> np.ndarray:
    """Equity of a long of ``start_equity × leverage`` bought at ``first_price`` and held (no
    fees, no rebalancing), liquidated as the simulated exchange does (cross margin): at the
    first price where equity <= notional × ``maintenance_margin_rate``, the position is closed
    there, the taker fee is taken from what is left, and the equity stays at that (never below
    0: -100 % at worst, and no recovery afterwards). Prices are the bars' closes, so a wick
    that touches the liquidation price and closes back above it does not liquidate here."""
    p = np.asarray(prices, dtype=float)
    if p.size == 0:
        return p
    p0 = float(first_price) if first_price else float(p[0])
    qty = start_equity * leverage / p0
    eq = start_equity + qty * (p - p0)
    hit = np.flatnonzero(eq <= maintenance_margin_rate * qty * p) if leverage > 1 else np.empty(0, dtype=np.int64)
    if len(hit):
        i = int(hit[0])
        left = max(float(eq[i]), 0.0)
        eq[i:] = max(left - taker_fee * qty * p[i], 0.0)
    return np.maximum(eq, 0.0)


def buy_and_hold_end(prices: np.ndarray, start_equity: float, leverage: float = 1.0,
                     first_price: float | None = None, *, maintenance_margin_rate: float = 0.0,
                     taker_fee: float = 0.0) -> float:
    """``buy_and_hold_curve(...)[-1]`` (same arithmetic, bit for bit) without building the
    curve: at leverage 1 one price, else one pass for the liquidation (summary.json needs only
    the end; a sweep asks it for every trial)."""
    p = np.asarray(prices, dtype=float)
    if p.size == 0:
        raise ValueError("buy_and_hold_end: no prices")
    p0 = float(first_price) if first_price else float(p[0])
    qty = start_equity * leverage / p0
    if leverage > 1:
        eq = start_equity + qty * (p - p0)
        hit = eq <= maintenance_margin_rate * qty * p
        if hit.any():
            i = int(hit.argmax())
            left = max(float(eq[i]), 0.0)
            return max(max(left - taker_fee * qty * float(p[i]), 0.0), 0.0)
    return max(float(start_equity + qty * (p[-1] - p0)), 0.0)


def buy_and_hold_costs(summary: dict | None) -> dict[str, float]:
    """``buy_and_hold_curve``'s liquidation terms from a summary.json's venue config (zero when
    absent: liquidation at the bankruptcy price, no fee)."""
    venue = ((summary or {}).get("config") or {}).get("venue") or {}
    return {"maintenance_margin_rate": float(venue.get("maintenance_margin_rate") or 0.0),
            "taker_fee": float(venue.get("taker_fee") or 0.0)}


# --------------------------------------------------------------------------- grid hedge


def hedge_curves(spot_quantity: float, close: np.ndarray, equity: np.ndarray, position: np.ndarray,
                 start_cash: float) -> dict[str, np.ndarray]:
    """A hedge of ``spot_quantity`` coins: the spot holding's value, futures + spot (hedged), the
    same capital without the futures trading (unhedged), and |futures| / spot."""
    spot = spot_quantity * close
    return {
        "spot_equity": spot,
        "hedged_equity": equity + spot,
        "unhedged_equity": start_cash + spot,
        "hedge_ratio": np.abs(position) / spot_quantity,
    }


def daily_volatility_of(curve: np.ndarray, bar_ms: int) -> float:
    """Volatility of an equity curve's returns, scaled to one day."""
    if len(curve) < 3 or bar_ms <= 0:
        return 0.0
    r = np.diff(curve) / curve[:-1]
    return float(np.std(r, ddof=1) * np.sqrt(86_400_000 / bar_ms))


def hedge_metrics(spot_quantity: float, first_open: float, close: np.ndarray, equity: np.ndarray,
                  position: np.ndarray, start_cash: float, fill_kinds: list[str], bar_ms: int) -> dict:
    """Hedged against unhedged (summary.json's ``hedge`` block): ``equity`` and ``position`` are
    the futures account's at each bar close, ``fill_kinds`` its fills' order kinds."""
    sp = hedge_curves(spot_quantity, close, equity, position, start_cash)
    spot_start = spot_quantity * first_open
    hedged, unhedged = sp["hedged_equity"], sp["unhedged_equity"]
    start = start_cash + spot_start
    ratio = sp["hedge_ratio"]
    return {
        "spot_quantity": spot_quantity,
        "spot_pnl": round(float(sp["spot_equity"][-1]) - spot_start, 2),
        "futures_pnl": round(float(equity[-1]) - start_cash, 2),
        "hedged_end_equity": round(float(hedged[-1]), 2),
        "unhedged_end_equity": round(float(unhedged[-1]), 2),
        "hedged_return_pct": round((float(hedged[-1]) / start - 1) * 100, 4),
        "unhedged_return_pct": round((float(unhedged[-1]) / start - 1) * 100, 4),
        "hedged_daily_volatility_pct": round(daily_volatility_of(hedged, bar_ms) * 100, 4),
        "unhedged_daily_volatility_pct": round(daily_volatility_of(unhedged, bar_ms) * 100, 4),
        "hedged_max_drawdown_pct": round(max_drawdown(np.concatenate([[start], hedged])) * 100, 4),
        "unhedged_max_drawdown_pct": round(max_drawdown(np.concatenate([[start], unhedged])) * 100, 4),
        "hedge_ratio_min": round(float(ratio.min()), 4),
        "hedge_ratio_mean": round(float(ratio.mean()), 4),
        "hedge_ratio_max": round(float(ratio.max()), 4),
        "stop_loss_events": sum(1 for k in fill_kinds if k == "hedge_stop_loss"),
        "take_profit_events": sum(1 for k in fill_kinds if k == "hedge_take_profit"),
    }
