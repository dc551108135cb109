"""Performance statistics: pure functions of equity curves and fills (numpy / pandas).

Nothing here reads files or the clock. Conventions:

- money in quote currency (USD), percentages as percent (``12.5`` = 12.5 %), ratios as plain
  floats; a statistic that is undefined for the input (a Sharpe of a flat curve, a profit factor
  without a losing trip) is ``None``, and a profit factor without losses but with wins is ``inf``.
- annualisation uses the data's own bar spacing: ``periods per year = 365.25 days / median
  step`` (crypto trades every day of the year), risk-free rate 0.
- returns are simple per-bar returns of the equity curve; Sharpe uses the sample standard
  deviation (ddof = 1), Sortino the downside deviation ``sqrt(mean(min(r, 0)²))`` over all bars.
- a *round trip* is a wallet's position going from flat to flat, or to a flip of sign (a flip
  closes one trip and opens the next). Its PnL is the sum of the fills' realized-PnL increments
  minus the fees of its fills (a flipping fill's fee is split by the quantity on each side).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hedgekit.report.curves import (
    MS_PER_YEAR,
    buy_and_hold_costs,
    buy_and_hold_curve,
    buy_and_hold_end,
    cagr,
    daily_volatility_of,
    drawdown_durations,
    drawdown_series,
    hedge_curves,
    hedge_metrics,
    max_drawdown,
    periods_per_year,
    sharpe_ratio,
    simple_returns,
    sortino_ratio,
    to_epoch_ms,
)

__all__ = [
    "MS_PER_YEAR",
    "RoundTrip",
    "buy_and_hold_costs",
    "buy_and_hold_curve",
    "cagr",
    "change_segments",
    "compute_metrics",
    "compute_run_metrics",
    "count_resets",
    "daily_volatility_of",
    "drawdown_durations",
    "drawdown_series",
    "exposure",
    "hedge_curves",
    "hedge_metrics",
    "max_drawdown",
    "periods_per_year",
    "phase_segments",
    "round_trips",
    "run_metrics",
    "sharpe_ratio",
    "simple_returns",
    "sortino_ratio",
    "time_in_phase",
    "time_ordered",
    "to_epoch_ms",
    "WalletSeries",
    "WideCurves",
    "wide_curves",
]

_FLAT = 1e-9  # |position| below this is flat (CSV positions are rounded well above it)
_PURE_START = {"", "STARTING", "nan"}


# --------------------------------------------------------------------------- fills


@dataclass(frozen=True, slots=True)
class RoundTrip:
    wallet: str
    open_ms: int
    close_ms: int
    side: int  # +1 long, -1 short
    gross_pnl: float
    fees: float
    fills: int

    @property
    def pnl(self) -> float:
        """Net of fees."""
        return self.gross_pnl - self.fees


def _wallet_fills(fills: pd.DataFrame) -> pd.DataFrame:
    """Fills sorted by time (stable: keeps the file's order within a timestamp)."""
    if fills is None or len(fills) == 0:
        return pd.DataFrame(columns=["ts", "wallet", "kind", "fee", "phase", "position",
                                     "realized_pnl", "qty", "price"])
    df = fills.copy()
    if "ts" not in df:
        df["ts"] = to_epoch_ms(df["timestamp"])
    if "wallet" not in df:
        df["wallet"] = ""
    return df.sort_values("ts", kind="stable").reset_index(drop=True)


def round_trips(fills: pd.DataFrame) -> list[RoundTrip]:
    """Closed round trips of every wallet in ``fills`` (see the module doc); an open one at the
    end is not returned. Needs columns timestamp, wallet, position, realized_pnl, fee."""
    df = _wallet_fills(fills)
    trips: list[RoundTrip] = []
    for wallet, g in df.groupby("wallet", sort=False):
        pos_after = g["position"].to_numpy(dtype=float)
        realized = g["realized_pnl"].to_numpy(dtype=float)
        fee = g["fee"].to_numpy(dtype=float)
        ts = g["ts"].to_numpy(dtype=np.int64)
        prev_pos, prev_real = 0.0, 0.0
        open_ms, side, gross, fees, count = 0, 0, 0.0, 0.0, 0
        for i in range(len(g)):
            before, after = prev_pos, pos_after[i]
            inc = realized[i] - prev_real
            prev_pos, prev_real = after, realized[i]
            flat_before, flat_after = abs(before) < _FLAT, abs(after) < _FLAT
            if flat_before and flat_after:
                continue
            if flat_before:  # opens a trip
                open_ms, side, gross, fees, count = int(ts[i]), (1 if after > 0 else -1), 0.0, 0.0, 0
            flip = not flat_before and not flat_after and (before > 0) != (after > 0)
            if flip:
                close_share = abs(before) / (abs(before) + abs(after))
                trips.append(RoundTrip(str(wallet), open_ms, int(ts[i]), side, gross + inc,
                                       fees + fee[i] * close_share, count + 1))
                open_ms, side = int(ts[i]), (1 if after > 0 else -1)
                gross, fees, count = 0.0, fee[i] * (1.0 - close_share), 1
                continue
            gross += inc
            fees += fee[i]
            count += 1
            if flat_after:
                trips.append(RoundTrip(str(wallet), open_ms, int(ts[i]), side, gross, fees, count))
    return trips


def count_resets(fills: pd.DataFrame) -> int:
    """RESET cycles seen in the fills: a wallet's phase returning to ADVANCE from a phase other
    than ADVANCE/STARTING (the long wallet's last buy, the hedge wallet's re-entry)."""
    df = _wallet_fills(fills)
    total = 0
    for _, g in df.groupby("wallet", sort=False):
        ph = g["phase"].astype(str).to_numpy()
        if ph.size < 2:
            continue
        prev, cur = ph[:-1], ph[1:]
        total += int(np.sum((cur == "ADVANCE") & (prev != "ADVANCE") & ~np.isin(prev, list(_PURE_START))))
    return total


def phase_segments(fills: pd.DataFrame, end_ms: int, start_ms: int | None = None,
                   before_label: str = "before first fill") -> pd.DataFrame:
    """Phase timeline from the fills' ``phase`` column (the phase after each fill holds until the
    wallet's next fill; the last one until ``end_ms``). Consecutive equal phases are merged.
    Columns: wallet, phase, start_ms, end_ms. When ``start_ms`` is before a wallet's first fill,
    that stretch is labelled ``before_label``."""
    df = _wallet_fills(fills)
    rows: list[tuple[str, str, int, int]] = []
    for wallet, g in df.groupby("wallet", sort=False):
        ts = g["ts"].to_numpy(dtype=np.int64)
        ph = g["phase"].fillna("").astype(str).to_numpy()
        rows += _segments(str(wallet), ts, ph, end_ms, start_ms, before_label)
    return pd.DataFrame(rows, columns=["wallet", "phase", "start_ms", "end_ms"])


def change_segments(wallet: str, ts: np.ndarray, phases: np.ndarray, end_ms: int) -> pd.DataFrame:
    """Phase timeline from a log of phase changes (time, phase after it), as ``phase_segments``
    gives it from fills: each phase holds until the next change, the last until ``end_ms``."""
    rows = _segments(wallet, np.asarray(ts, dtype=np.int64), np.asarray(phases, dtype=str), end_ms)
    return pd.DataFrame(rows, columns=["wallet", "phase", "start_ms", "end_ms"])


def _segments(wallet: str, ts: np.ndarray, ph: np.ndarray, end_ms: int, start_ms: int | None = None,
              before_label: str = "") -> list[tuple[str, str, int, int]]:
    rows: list[tuple[str, str, int, int]] = []
    if start_ms is not None and ts.size and ts[0] > start_ms:
        rows.append((wallet, before_label, int(start_ms), int(ts[0])))
    if not ts.size:
        return rows
    keep = np.ones(ts.size, dtype=bool)
    keep[1:] = ph[1:] != ph[:-1]
    starts, phases = ts[keep], ph[keep]
    ends = np.append(starts[1:], max(int(end_ms), int(ts[-1])))
    rows.extend((wallet, str(p), int(s), int(e)) for p, s, e in zip(phases, starts, ends, strict=True))
    return rows


def time_in_phase(segments: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """(hours, percent of the timeline) per phase, from ``phase_segments`` of one wallet."""
    if len(segments) == 0:
        return {}, {}
    return _phase_time(zip(segments["phase"], segments["start_ms"], segments["end_ms"], strict=True))


def _phase_time(rows) -> tuple[dict[str, float], dict[str, float]]:
    """``time_in_phase`` of (phase, start_ms, end_ms) rows; phases in order of appearance."""
    by: dict[str, int] = {}
    for phase, start, end in rows:
        by[str(phase)] = by.get(str(phase), 0) + max(int(end) - int(start), 0)
    span = float(sum(by.values())) or 1.0
    hours = {k: round(float(v) / 3_600_000, 3) for k, v in by.items()}
    pct = {k: round(float(v) / span * 100.0, 3) for k, v in by.items()}
    return hours, pct


def _change_time(ts: np.ndarray, ph: np.ndarray, end_ms: int) -> tuple[dict[str, float], dict[str, float]]:
    """``_phase_time`` of ``_segments`` of a phase log, in numpy (the log of a year holds
    thousands of changes; the integer sums are the same)."""
    if not ts.size:
        return _phase_time(())
    keep = np.ones(ts.size, dtype=bool)
    keep[1:] = ph[1:] != ph[:-1]
    starts, phases = ts[keep], ph[keep]
    ends = np.append(starts[1:], max(int(end_ms), int(ts[-1])))
    names, first, inverse = np.unique(phases, return_index=True, return_inverse=True)
    sums = np.zeros(len(names), dtype=np.int64)
    np.add.at(sums, inverse.ravel(), np.maximum(ends - starts, 0))
    order = np.argsort(first, kind="stable")  # phases in order of appearance
    return _phase_time((names[i], 0, int(sums[i])) for i in order)


def exposure(positions: np.ndarray) -> float:
    """Fraction of points with a non-zero position."""
    p = np.asarray(positions, dtype=float)
    return float(np.mean(np.abs(p) >= _FLAT)) if p.size else 0.0


# --------------------------------------------------------------------------- metrics


def _trip_stats(trips: list[RoundTrip]) -> dict:
    pnl = np.array([t.pnl for t in trips], dtype=float)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    if losses.size:
        pf: float | None = float(wins.sum() / -losses.sum())
    else:
        pf = math.inf if wins.size else None
    return {
        "round_trips": int(pnl.size),
        "wins": int(wins.size),
        "losses": int(losses.size),
        "win_rate_pct": float(wins.size / pnl.size * 100.0) if pnl.size else None,
        "profit_factor": pf,
        "avg_trip_pnl": float(pnl.mean()) if pnl.size else None,
        "best_trip_pnl": float(pnl.max()) if pnl.size else None,
        "worst_trip_pnl": float(pnl.min()) if pnl.size else None,
    }


def _pct(x: float | None) -> float | None:
    return None if x is None else x * 100.0


def compute_metrics(
    equity: pd.Series | np.ndarray,
    fills: pd.DataFrame | None = None,
    *,
    start_equity: float | None = None,
    positions: pd.Series | np.ndarray | None = None,
    prices: pd.Series | np.ndarray | None = None,
    leverage: float = 1.0,
    first_price: float | None = None,
    bh_costs: dict[str, float] | None = None,
    funding: float | None = None,
    end_ms: int | None = None,
    periods: float | None = None,
    times_ms: np.ndarray | None = None,
    phase_changes: tuple[np.ndarray, np.ndarray] | None = None,
    full: bool = True,
) -> dict:
    """Statistics of one wallet (or of a sum of wallets).

    ``equity`` is indexed by time (DatetimeIndex, ISO strings or epoch ms); ``fills`` holds the
    wallet's rows of fills.csv. When ``start_equity`` is given (the allocation) it is put in
    front of the curve, one median step before its first point, so the first bar's costs count.
    ``prices`` (aligned with ``equity``) give the buy-and-hold comparison at ``leverage`` from
    ``first_price`` (default: the first price); ``positions`` give the exposure. ``periods``
    overrides the periods per year taken from the index spacing; ``times_ms`` (epoch ms of each
    point) the index. The time in phase is taken from ``phase_changes`` (times, phase after each
    change: the engine's phase log) when given, else from the fills' ``phase`` column.
    ``full=False``: the headline only (return, max drawdown, time in phase, buy and hold), what
    summary.json keeps, without the ratios and round trips that cost time on a year of bars.
    """
    eq = np.asarray(equity, dtype=float)
    if times_ms is not None:
        times = np.asarray(times_ms, dtype=np.int64)
    else:
        times = to_epoch_ms(equity.index) if isinstance(equity, pd.Series) else np.arange(eq.size)
    ppy = None
    if full or end_ms is None:
        ppy = periods if periods is not None else periods_per_year(times)
    step = MS_PER_YEAR / ppy if ppy else 0.0
    if start_equity is not None and eq.size:
        curve = np.concatenate([[float(start_equity)], eq])
    else:
        curve = eq
    start = float(curve[0]) if curve.size else float("nan")
    end = float(curve[-1]) if curve.size else float("nan")
    mdd = max_drawdown(curve)
    # The fills are read for the full set, and for the time in phase when there is no phase log.
    need_fills = full or phase_changes is None
    f = _wallet_fills(fills if fills is not None else pd.DataFrame()) if need_fills else None

    out: dict = {
        "start_equity": start,
        "end_equity": end,
        "return_pct": (end / start - 1.0) * 100.0 if start > 0 else None,
    }
    if full:
        ctimes = (np.concatenate([[times[0] - step], times]) if curve.size > eq.size else times).astype(float)
        years = (ctimes[-1] - ctimes[0]) / MS_PER_YEAR if curve.size > 1 else 0.0
        rets = simple_returns(curve)
        durs = drawdown_durations(curve, ctimes)
        g = cagr(start, end, years)
        out["cagr_pct"] = _pct(g)
    out["max_drawdown_pct"] = mdd * 100.0
    if full and f is not None:
        out.update({
            "max_drawdown_duration_hours": durs["max_dd_duration"] / 3_600_000 if ppy else None,
            "max_drawdown_duration_bars": durs["max_dd_duration_bars"],
            "max_drawdown_recovered": durs["recovered"],
            "longest_drawdown_hours": durs["longest_duration"] / 3_600_000 if ppy else None,
            "sharpe": sharpe_ratio(rets, ppy),
            "sortino": sortino_ratio(rets, ppy),
            "calmar": (g / mdd) if (g is not None and mdd > 0) else None,
            "volatility_ann_pct": (float(np.std(rets, ddof=1)) * math.sqrt(ppy) * 100.0
                                   if ppy and rets.size > 1 else None),
            "periods_per_year": ppy,
            "bars": int(eq.size),
            "years": years,
        })
        out.update(_trip_stats(round_trips(f)))
        pos = None if positions is None else np.asarray(positions, dtype=float)
        out["exposure_pct"] = exposure(pos) * 100.0 if pos is not None else None
        out["fills"] = int(len(f))
        out["fills_by_kind"] = {str(k): int(v) for k, v in f["kind"].value_counts(sort=False).items()} if len(f) else {}
        out["fees"] = float(f["fee"].astype(float).sum()) if len(f) else 0.0
        out["realized_pnl"] = float(f.groupby("wallet")["realized_pnl"].last().astype(float).sum()) if len(f) else 0.0
        out["funding"] = funding
        out["resets"] = count_resets(f)
    last_ms = int(end_ms) if end_ms is not None else (int(times[-1] + step) if eq.size else 0)
    first_ms = int(times[0]) if eq.size else None
    if phase_changes is not None:
        hours, pct = _change_time(np.asarray(phase_changes[0], dtype=np.int64),
                                  np.asarray(phase_changes[1], dtype=str), last_ms)
    else:
        hours, pct = time_in_phase(phase_segments(f if f is not None else _wallet_fills(pd.DataFrame()),
                                                  last_ms, first_ms))
    out["time_in_phase_hours"], out["time_in_phase_pct"] = hours, pct
    if f is not None and full:
        out["final_phase"] = str(f["phase"].iloc[-1]) if len(f) else None
    if prices is not None and eq.size:
        p = np.asarray(prices, dtype=float)
        p0 = first_price if first_price else float(p[0])
        held = np.concatenate([[p0], p]) if start_equity is not None else p
        if full:
            bh = buy_and_hold_curve(held, start, leverage, p0, **(bh_costs or {}))
            bh_end = float(bh[-1])
        else:  # the end only (a year of bars, each trial of a sweep)
            bh_end = buy_and_hold_end(held, start, leverage, p0, **(bh_costs or {}))
        out["buy_and_hold_return_pct"] = (bh_end / start - 1.0) * 100.0 if start > 0 else None
        out["buy_and_hold_1x_return_pct"] = (p[-1] / p0 - 1.0) * 100.0
        if full:
            out["buy_and_hold_max_drawdown_pct"] = max_drawdown(bh) * 100.0
            out["excess_return_pct"] = (None if out["return_pct"] is None
                                        else out["return_pct"] - out["buy_and_hold_return_pct"])
    else:
        for k in ("buy_and_hold_return_pct", "buy_and_hold_1x_return_pct",
                  "buy_and_hold_max_drawdown_pct", "excess_return_pct")[: 4 if full else 2]:
            out[k] = None
    return out


@dataclass(frozen=True, slots=True)
class WalletSeries:
    """One wallet's inputs to ``run_metrics``, aligned with the run's times."""

    name: str
    equity: np.ndarray
    positions: np.ndarray
    start_equity: float | None = None  # the allocation, put in front of the curve
    leverage: float = 1.0
    fills: pd.DataFrame | None = None  # the wallet's rows of fills.csv
    funding: float | None = None
    strategy: str | None = None
    phase_changes: tuple[np.ndarray, np.ndarray] | None = None  # the engine's phase log, if known


def run_metrics(times_ms: np.ndarray, prices: np.ndarray | None, wallets: list[WalletSeries], *,
                first_price: float | None = None, bh_costs: dict[str, float] | None = None,
                end_ms: int | None = None, full: bool = True) -> dict[str, dict]:
    """The statistics of a run: ``{"wallets": {name: metrics}, "total": metrics}``, the total
    being the sum of the wallets' equity. The one function behind summary.json (fed the engine's
    curves, ``full=False``), report.html and the PNGs (fed the output folder's files)."""
    out: dict[str, dict] = {}
    for w in wallets:
        m = compute_metrics(
            w.equity, w.fills, start_equity=w.start_equity, positions=w.positions, prices=prices,
            leverage=w.leverage, first_price=first_price, bh_costs=bh_costs, funding=w.funding, end_ms=end_ms,
            times_ms=times_ms, phase_changes=w.phase_changes, full=full,
        )
        m["strategy"] = w.strategy
        m["leverage"] = w.leverage
        out[w.name] = m
    if not out:
        return {"wallets": {}, "total": {}}
    # Total: the wallets' equity summed; buy and hold = each wallet's own buy and hold summed.
    # NaN (before a wallet's first point) counts 0; wallets are added in order, as pandas does.
    equity = np.zeros(len(times_ms))
    for w in wallets:
        equity += np.nan_to_num(np.asarray(w.equity, dtype=float), nan=0.0, posinf=np.inf, neginf=-np.inf)
    fills = [w.fills for w in wallets if w.fills is not None and len(w.fills)]
    total_start = sum(out[w.name]["start_equity"] for w in wallets)
    t = compute_metrics(
        equity, pd.concat(fills).sort_index() if fills else None,
        start_equity=total_start, end_ms=end_ms, phase_changes=(np.empty(0, np.int64), np.empty(0, str)),
        positions=np.nansum(np.abs(np.vstack([np.asarray(w.positions, dtype=float) for w in wallets])), axis=0)
        if full else None,
        times_ms=times_ms, full=full,
    )
    p = np.asarray(prices, dtype=float) if prices is not None else np.empty(0)
    if p.size:
        p0 = first_price or float(p[0])
        if full:  # (summary.json weighs the wallets' own figures instead)
            held = np.concatenate([[p0], p])
            costs = bh_costs or {}
            bh = np.sum([buy_and_hold_curve(held, out[w.name]["start_equity"], w.leverage, p0, **costs)
                         for w in wallets], axis=0)
            t["buy_and_hold_return_pct"] = (float(bh[-1]) / total_start - 1.0) * 100.0
        t["buy_and_hold_1x_return_pct"] = (p[-1] / p0 - 1.0) * 100.0
        if full:
            t["buy_and_hold_max_drawdown_pct"] = max_drawdown(bh) * 100.0
            t["excess_return_pct"] = t["return_pct"] - t["buy_and_hold_return_pct"]
    fund = [w.funding for w in wallets if w.funding is not None]
    t["funding"] = float(sum(fund)) if fund else None
    t["time_in_phase_hours"], t["time_in_phase_pct"], t["final_phase"] = {}, {}, None
    t["strategy"], t["leverage"] = None, None
    return {"wallets": out, "total": t}


def time_ordered(ts: np.ndarray) -> bool:
    """True when the times never go back (a file the backtest wrote): no sort, no copy."""
    return ts.size < 2 or bool((ts[1:] >= ts[:-1]).all())


@dataclass(frozen=True, slots=True)
class WideCurves:
    """equity.csv's curves one column per wallet, on the run's distinct times."""

    times: np.ndarray  # the distinct times, sorted (epoch ms)
    equity: pd.DataFrame  # indexed by ``times``, a column per wallet (see ``wide_curves``)
    position: pd.DataFrame
    price: np.ndarray  # at each of ``times``


def wide_curves(equity: pd.DataFrame) -> WideCurves:
    """The curves of equity.csv's rows (columns ts, wallet, equity, position, price) one column
    per wallet: at each distinct time a wallet's last value there that is not NaN, carried
    forward (NaN before its first); a wallet without any value has no column. The price is
    the last at each time, of any wallet. The same as pandas'
    ``pivot_table(index="ts", columns="wallet", values=..., aggfunc="last").reindex(times).ffill()``
    (and ``groupby("ts")["price"].last()``), without their group-by temporaries of every row
    (~1M rows on a year of 1m bars)."""
    ts = equity["ts"].to_numpy(dtype=np.int64)
    order = None if time_ordered(ts) else np.argsort(ts, kind="stable")
    if order is not None:
        ts = ts[order]
    times = np.unique(ts)

    def column(name: str) -> np.ndarray:
        values = equity[name].to_numpy()
        return values if order is None else values[order]

    def last_at_times(rows: np.ndarray | None, values: np.ndarray) -> np.ndarray | None:
        keep = ~np.isnan(values) if rows is None else rows & ~np.isnan(values)
        t, v = ts[keep], values[keep]
        if not t.size:
            return None
        last = np.ones(t.size, dtype=bool)
        last[:-1] = t[1:] != t[:-1]
        out = np.full(times.size, np.nan)
        out[np.searchsorted(times, t[last])] = v[last]
        carried = np.where(np.isnan(out), 0, np.arange(out.size))
        np.maximum.accumulate(carried, out=carried)
        return out[carried]

    codes, wallets = pd.factorize(equity["wallet"], sort=True)  # (not as ~1M Python strings)
    if order is not None:
        codes = codes[order]
    wide = {}
    for name in ("equity", "position"):
        values = column(name).astype(float, copy=False)
        curves = {str(w): last_at_times(codes == i, values) for i, w in enumerate(wallets)}
        wide[name] = pd.DataFrame({w: c for w, c in curves.items() if c is not None},
                                  index=pd.Index(times, name="ts"))
    price = last_at_times(None, column("price").astype(float, copy=False))
    return WideCurves(times, wide["equity"], wide["position"],
                      np.full(times.size, np.nan) if price is None else price)


def compute_run_metrics(equity: pd.DataFrame, fills: pd.DataFrame,
                        summary: dict | None = None, curves: WideCurves | None = None) -> dict[str, dict]:
    """``run_metrics`` of an output folder's frames (empty when there is no equity).

    ``equity`` has the columns of equity.csv (timestamp, wallet, equity, position, price),
    ``fills`` those of fills.csv; ``summary`` (summary.json) supplies each wallet's allocation,
    leverage, funding and the first price, when present. Wallets are reported in the summary's
    order, then in order of appearance. ``curves``: ``wide_curves(equity)``, when the caller
    has them already.
    """
    summary = summary or {}
    s_wallets = summary.get("wallets", {}) or {}
    cfg_wallets = {w.get("name"): w for w in (summary.get("config", {}) or {}).get("wallets", []) or []}
    first_price = (summary.get("data") or {}).get("first_price")
    # epoch ms, unless the caller has parsed the stamps already (no copy of a year of rows then)
    eq = equity if "ts" in equity else equity.assign(ts=to_epoch_ms(equity["timestamp"]))
    names = list(s_wallets) + [w for w in pd.unique(eq["wallet"].astype(str)) if w not in s_wallets]
    fills = fills if fills is not None else pd.DataFrame(columns=["timestamp", "wallet"])
    fw = fills["wallet"].astype(str) if len(fills) else pd.Series([], dtype=str)
    curves = curves if curves is not None else wide_curves(eq)
    idx = curves.times
    eq_wide, pos_wide = curves.equity, curves.position
    end_ms = None
    step = float(np.median(np.diff(idx))) if len(idx) > 1 else 0.0
    if len(idx):
        end_ms = int(idx[-1] + step)
    wallets = []
    for name in names:
        if name not in eq_wide:
            continue
        sw = s_wallets.get(name, {})
        cw = cfg_wallets.get(name, {}) or {}
        wallets.append(WalletSeries(
            name, eq_wide[name].to_numpy(), pos_wide[name].fillna(0.0).to_numpy(),
            start_equity=sw.get("start_equity") or cw.get("allocation"), leverage=float(cw.get("leverage") or 1.0),
            fills=fills[fw == name] if len(fills) else None, funding=sw.get("funding"),
            strategy=sw.get("strategy") or cw.get("strategy"),
        ))
    return run_metrics(idx, curves.price, wallets, first_price=first_price,
                       bh_costs=buy_and_hold_costs(summary), end_ms=end_ms)
