"""``report.html``: a self-contained, interactive page built from a backtest output folder.

It reads only the folder's files (summary.json, fills.csv, equity.csv, orders.csv when present)
and embeds plotly.js, so the page opens offline. Price and equity lines are downsampled to at
most ``MAX_LINE_POINTS`` points each (the minimum and the maximum of every bucket are kept, so
peaks and troughs survive); fills are never dropped.

Each chart is a ``<div>`` with a stable id (``chart-price``, ``chart-equity``,
``chart-drawdown``, ``chart-phases`` and, for grid-hedge wallets, ``chart-hedge-ratio`` and
``chart-hedge-equity``); its figure is stored as JSON in ``<script type="application/json"
id="<chart id>-data">`` and drawn by a few lines of script at the end of the page.
"""

from __future__ import annotations

import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import yaml

from hedgekit.core.errors import HedgekitError
from hedgekit.report.cycles import CYCLE_COLUMNS, cycle_totals, run_cycles
from hedgekit.report.metrics import (
    buy_and_hold_costs,
    buy_and_hold_curve,
    compute_run_metrics,
    drawdown_series,
    phase_segments,
    to_epoch_ms,
)

__all__ = [
    "CHART_IDS",
    "CYCLE_CHART_IDS",
    "KIND_STYLES",
    "MAX_LINE_POINTS",
    "ReportError",
    "RunOutput",
    "build_report",
    "downsample_minmax",
    "fill_kinds",
    "kind_style",
    "load_output",
    "phase_color",
    "phase_order",
    "unit_levels",
    "wallet_colors",
]

MAX_LINE_POINTS = 5000
GL_MARKERS_ABOVE = 3000  # a fill trace with more points is drawn with WebGL
CHART_IDS = ("chart-price", "chart-equity", "chart-drawdown", "chart-phases")
HEDGE_CHART_IDS = ("chart-hedge-ratio", "chart-hedge-equity")
# "Where the money went": not on the shared time axis (categories and cycle numbers).
CYCLE_CHART_IDS = ("chart-money", "chart-cycles")
HEDGE_COLUMNS = ("spot_equity", "hedged_equity", "unhedged_equity", "hedge_ratio")


class ReportError(HedgekitError):
    """The output folder cannot be turned into a report (missing or malformed file)."""


# --------------------------------------------------------------------------- styles

WALLET_PALETTE = ("#2563eb", "#ea580c", "#059669", "#9333ea", "#db2777", "#0891b2", "#ca8a04", "#4b5563")
TOTAL_COLOR = "#111827"
PRICE_COLOR = "#64748b"
BH_COLOR = "#94a3b8"


@dataclass(frozen=True, slots=True)
class KindStyle:
    label: str
    color: str
    symbol: str  # plotly marker symbol
    mpl_marker: str  # matplotlib marker


KIND_STYLES: dict[str, KindStyle] = {
    "market_buy": KindStyle("market buy (entry)", "#15803d", "star", "*"),
    "market_buy_full": KindStyle("market buy full (re-entry)", "#0f766e", "star-diamond", "D"),
    "stop_entry_buy": KindStyle("stop entry buy", "#22c55e", "triangle-up", "^"),
    "stop_loss": KindStyle("stop loss (sell)", "#dc2626", "triangle-down", "v"),
    "stop_loss_full": KindStyle("stop loss full (exit long)", "#7f1d1d", "x", "X"),
    "stop_entry_short": KindStyle("stop entry short", "#f97316", "triangle-down-open", "1"),
    "stop_loss_cover": KindStyle("stop loss cover (buy)", "#0284c7", "triangle-up-open", "2"),
    "grid_sell": KindStyle("grid sell", "#c026d3", "triangle-left", "<"),
    "grid_buy": KindStyle("grid buy", "#0d9488", "triangle-right", ">"),
    "hedge_stop_loss": KindStyle("hedge stop loss", "#000000", "x-thin-open", "x"),
    "hedge_take_profit": KindStyle("hedge take profit", "#eab308", "circle", "o"),
    "flatten": KindStyle("flatten", "#6b7280", "square", "s"),
    "protective_close": KindStyle("protective close (stop refused)", "#991b1b", "square-x", "s"),
    "liquidation": KindStyle("liquidation", "#000000", "hexagram", "h"),
}
_EXTRA_KIND_COLORS = ("#7c3aed", "#be123c", "#65a30d", "#0e7490", "#a16207")

PHASE_COLORS = {
    "STARTING": "#cbd5e1",
    "ADVANCE": "#16a34a",
    "RETRACEMENT": "#f59e0b",
    "DECLINE": "#dc2626",
    "RECOVER": "#3b82f6",
    "RECOVERY": "#3b82f6",
    "RESET": "#7c3aed",
    "ACTIVE": "#0d9488",
    "STOPPED": "#475569",
}
_PHASE_ORDER = list(PHASE_COLORS)


def kind_style(kind: str) -> KindStyle:
    """Marker style of an order kind; unknown kinds get a stable colour from a spare palette."""
    if kind in KIND_STYLES:
        return KIND_STYLES[kind]
    color = _EXTRA_KIND_COLORS[sum(map(ord, kind)) % len(_EXTRA_KIND_COLORS)]
    return KindStyle(kind.replace("_", " "), color, "circle-open", "o")


def phase_color(phase: str) -> str:
    return PHASE_COLORS.get(phase, "#e5e7eb")


def phase_order(phases) -> list[str]:
    """Distinct phases in lifecycle order (known ones first), for legends and tables."""
    return sorted(dict.fromkeys(phases),
                  key=lambda p: _PHASE_ORDER.index(p) if p in _PHASE_ORDER else len(_PHASE_ORDER))


def wallet_colors(names: list[str]) -> dict[str, str]:
    """One colour per wallet, in config order, the same in every chart and in the PNGs."""
    return {n: WALLET_PALETTE[i % len(WALLET_PALETTE)] for i, n in enumerate(names)}


# --------------------------------------------------------------------------- loading


@dataclass(slots=True)
class RunOutput:
    """An output folder, parsed: frames carry a ``ts`` column (epoch ms, UTC)."""

    folder: Path
    summary: dict
    fills: pd.DataFrame
    orders: pd.DataFrame | None
    equity: pd.DataFrame
    wallets: list[str]
    times: np.ndarray  # sorted unique equity timestamps (ms)
    price: np.ndarray  # close at each of ``times``
    eq_wide: pd.DataFrame  # equity per wallet, indexed by ``times``
    end_ms: int  # end of the last bar
    metrics: dict = field(default_factory=dict)
    cycles: pd.DataFrame | None = None  # cycles.csv (or recomputed from fills.csv)
    cycles_source: str = ""  # "cycles.csv", or "fills.csv" when the folder has no cycles.csv

    @property
    def symbol(self) -> str:
        return str(((self.summary.get("config") or {}).get("instrument") or {}).get("symbol") or "price")

    @property
    def hedge_wallets(self) -> list[str]:
        if "hedge_ratio" not in self.equity:
            return []
        has = set(self.equity.loc[self.equity["hedge_ratio"].notna(), "wallet"].astype(str).unique())
        return [w for w in self.wallets if w in has]


# Columns that must hold numbers (blank allowed): a hand-edited file is checked cell by cell, so
# the error names the row and column instead of failing deep inside pandas.
_NUMERIC = {
    "fills.csv": ("qty", "price", "fee", "position", "realized_pnl"),
    "equity.csv": ("equity", "position", "price", "hedge_ratio", "spot_value", "hedged_value"),
    "orders.csv": ("qty", "trigger_price"),
    "cycles.csv": ("cycle", "start_price", "end_price", "fills", "long_legs", "short_legs", "reentry_gap",
                   "realized_pnl", "fees", "funding", "net_pnl"),
}


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ReportError(f"{path}: cannot read it ({err.strerror or err})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ReportError(f"{path}: line {line}: byte 0x{raw[err.start]:02x} is not UTF-8 text; the file was "
                          "edited or saved in another encoding: save it as UTF-8 or rewrite the folder "
                          f"with `hedgekit backtest --out {path.parent}`") from None


def _read_csv(path: Path, required: tuple[str, ...], dtype: dict[str, type] | None = None) -> pd.DataFrame:
    if not path.is_file():
        raise ReportError(f"{path}: file not found; write the folder first with "
                          f"`hedgekit backtest --out {path.parent}`")
    text = _read_text(path)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=dtype or {"wallet": str, "order_id": str, "kind": str, "phase": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise ReportError(f"{path}: not a readable CSV ({reason})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ReportError(f"{path}: missing column(s) {', '.join(missing)}; "
                          f"found {', '.join(map(str, df.columns))}")
    for col in _NUMERIC.get(path.name, ()):
        if col in df.columns and df[col].dtype.kind not in "iuf":
            values = pd.to_numeric(df[col], errors="coerce")
            _first_bad(path, df, col, values.isna() & df[col].notna(), "is not a number")
            df[col] = values
    if "timestamp" in df.columns:
        df["ts"] = _timestamps(path, df)
    return df


def _first_bad(path: Path, df: pd.DataFrame, col: str, bad: pd.Series, problem: str) -> None:
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise ReportError(f"{path}: data row {i + 1} (line {i + 2}), column {col}: {str(df[col].iloc[i])[:40]!r} "
                          f"{problem}; fix the cell or rewrite the folder with `hedgekit backtest --out {path.parent}`")


def _timestamps(path: Path, df: pd.DataFrame) -> np.ndarray:
    if not len(df):
        return np.empty(0, dtype=np.int64)
    try:
        return to_epoch_ms(df["timestamp"])
    except (ValueError, TypeError, OverflowError):
        parsed = pd.to_datetime(df["timestamp"].astype(str), utc=True, format="ISO8601", errors="coerce")
        _first_bad(path, df, "timestamp", pd.Series(parsed.isna().to_numpy()), "is not an ISO-8601 time")
        raise ReportError(f"{path}: column timestamp: cannot read the times as ISO-8601") from None


def load_output(out_dir: str | Path) -> RunOutput:
    """Read a backtest output folder (summary.json, fills.csv, equity.csv, orders.csv if any)."""
    folder = Path(out_dir)
    spath = folder / "summary.json"
    if not spath.is_file():
        raise ReportError(f"{spath}: file not found; write the folder first with "
                          f"`hedgekit backtest --out {folder}`")
    try:
        summary = json.loads(_read_text(spath))
    except json.JSONDecodeError as err:
        raise ReportError(f"{spath}: not valid JSON ({err})") from None
    if not isinstance(summary, dict):
        raise ReportError(f"{spath}: expected a JSON object of the run's summary, found {type(summary).__name__}")
    fills = _read_csv(folder / "fills.csv", ("timestamp", "wallet", "kind", "side", "qty", "price",
                                             "fee", "unit", "phase", "position", "realized_pnl"))
    equity = _read_csv(folder / "equity.csv", ("timestamp", "wallet", "equity", "position", "price"))
    if len(equity) == 0:
        raise ReportError(f"{folder / 'equity.csv'}: no rows; nothing to report")
    opath = folder / "orders.csv"
    orders = _read_csv(opath, ("timestamp", "wallet", "event", "kind", "trigger_price", "unit")) \
        if opath.is_file() else None
    fills = fills.sort_values("ts", kind="stable").reset_index(drop=True)
    equity = equity.sort_values("ts", kind="stable").reset_index(drop=True)

    names = list(summary.get("wallets") or {})
    names += [w for w in pd.unique(equity["wallet"].astype(str)) if w not in names]
    names = [w for w in names if (equity["wallet"] == w).any()]
    times = np.sort(equity["ts"].unique())
    eq_wide = (equity.pivot_table(index="ts", columns="wallet", values="equity", aggfunc="last")
               .reindex(times).ffill())
    price = equity.groupby("ts")["price"].last().reindex(times).ffill().to_numpy(dtype=float)
    step = int(np.median(np.diff(times))) if times.size > 1 else 60_000
    run = RunOutput(folder, summary, fills, orders, equity, names, times, price,
                    eq_wide[names], int(times[-1]) + step)
    run.metrics = compute_run_metrics(equity, fills, summary)
    run.cycles, run.cycles_source = _load_cycles(folder, fills, summary)
    return run


def _load_cycles(folder: Path, fills: pd.DataFrame, summary: dict) -> tuple[pd.DataFrame, str]:
    """cycles.csv as written by the backtest; a folder without it (written before it existed)
    gets the same table recomputed from fills.csv, with the funding per cycle unknown (NaN)."""
    path = folder / "cycles.csv"
    if path.is_file():
        df = _read_csv(path, tuple(CYCLE_COLUMNS),
                       {"wallet": str, "strategy": str, "phases": str, "ended_by": str})
        return df, "cycles.csv"
    return run_cycles(fills, None, summary), "fills.csv"


# --------------------------------------------------------------------------- data helpers


def downsample_minmax(x: np.ndarray, y: np.ndarray, max_points: int = MAX_LINE_POINTS
                      ) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points of a line: the first and last points plus the minimum and
    the maximum of each of ``(max_points - 2) // 2`` equal buckets, in time order. NaN points
    are dropped."""
    x, y = np.asarray(x), np.asarray(y, dtype=float)
    finite = np.isfinite(y)
    if not finite.all():
        x, y = x[finite], y[finite]
    n = y.size
    if n <= max_points:
        return x, y
    buckets = max((max_points - 2) // 2, 1)
    size = math.ceil(n / buckets)
    nb = math.ceil(n / size)
    padded = np.concatenate([y, np.full(nb * size - n, y[-1])]).reshape(nb, size)
    base = np.arange(nb) * size
    lo = np.minimum(base + padded.argmin(axis=1), n - 1)
    hi = np.minimum(base + padded.argmax(axis=1), n - 1)
    idx = np.unique(np.concatenate([[0, n - 1], lo, hi]))
    return x[idx], y[idx]


def unit_levels(run: RunOutput) -> pd.DataFrame:
    """Unit levels in force, as horizontal segments: wallet, unit, price, start_ms, end_ms.

    Taken from the trigger prices of placed orders (orders.csv), which are the exact rounded
    levels; without orders.csv, from the fill prices (approximate: gaps fill beyond a level).
    A grid lasts until an order puts a known unit at a new price (a RESET or a re-centring);
    each unit seen in a grid's lifetime is drawn across that whole lifetime.
    """
    if run.orders is not None and len(run.orders):
        src = run.orders[run.orders["event"].astype(str) == "placed"]
        src = src.assign(level=pd.to_numeric(src["trigger_price"], errors="coerce"))
    else:
        src = run.fills.assign(level=pd.to_numeric(run.fills["price"], errors="coerce"))
    src = src.assign(u=pd.to_numeric(src["unit"], errors="coerce")).dropna(subset=["u", "level"])
    rows: list[tuple] = []
    for wallet, g in src.groupby(src["wallet"].astype(str), sort=False):
        ts = g["ts"].to_numpy(dtype=np.int64)
        units = g["u"].to_numpy(dtype=float).astype(int)
        levels = g["level"].to_numpy(dtype=float)
        current: dict[int, float] = {}
        start = int(ts[0]) if ts.size else 0
        for t, u, px in zip(ts, units, levels, strict=True):
            known = current.get(int(u))
            if known is not None and abs(known - px) > 1e-9 * max(abs(px), 1.0):
                rows.extend((wallet, k, v, start, int(t)) for k, v in sorted(current.items()))
                current, start = {}, int(t)
            current.setdefault(int(u), float(px))
        rows.extend((wallet, k, v, start, run.end_ms) for k, v in sorted(current.items()))
    return pd.DataFrame(rows, columns=["wallet", "unit", "price", "start_ms", "end_ms"])


def _dates(ms) -> np.ndarray:
    return np.asarray(ms, dtype=np.int64).astype("datetime64[ms]")


def _minutes(ms) -> np.ndarray:
    """'2025-05-08 00:57' strings."""
    return np.char.replace(np.datetime_as_string(_dates(ms), unit="m"), "T", " ")


# --------------------------------------------------------------------------- figures

_FONT = "Inter, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


def _layout(fig: go.Figure, title: str, y_title: str, height: int) -> None:
    """Common look. Margins are fixed (legend in the right margin), so the time axes of all
    charts line up one above the other. ``title`` goes into the figure's metadata only: on the
    page the card's heading names the chart."""
    fig.update_layout(
        template="plotly_white",
        meta={"title": title},
        height=height,
        margin={"l": 90, "r": 260, "t": 20, "b": 50, "autoexpand": False},
        font={"family": _FONT, "size": 12, "color": "#1f2937"},
        legend={"orientation": "v", "yanchor": "top", "y": 1.0, "x": 1.02, "xanchor": "left",
                "font": {"size": 11}, "tracegroupgap": 2},
        hoverlabel={"namelength": -1},
        xaxis={"type": "date", "title": {"text": "time (UTC)"}, "showspikes": True,
               "spikemode": "across", "spikethickness": 1, "spikecolor": "#9ca3af"},
        yaxis={"title": {"text": y_title}, "tickformat": ",", "zeroline": False},
    )


def _line(x, y, name: str, color: str, *, width: float = 1.6, dash: str | None = None,
          group: str | None = None, hover_fmt: str = ",.2f", fill: str | None = None,
          fillcolor: str | None = None) -> go.Scatter:
    xs, ys = downsample_minmax(np.asarray(x), np.asarray(y, dtype=float))
    return go.Scatter(
        x=xs.astype(float), y=ys, name=name, mode="lines", legendgroup=group,
        line={"color": color, "width": width, "dash": dash}, fill=fill, fillcolor=fillcolor,
        hovertemplate=f"%{{x|%Y-%m-%d %H:%M}}<br>{html.escape(name)}: %{{y:{hover_fmt}}}<extra></extra>",
        meta={"role": "line", "points": int(np.asarray(y).size)},
    )


def price_figure(run: RunOutput, colors: dict[str, str]) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(_line(run.times, run.price, f"{run.symbol} close", PRICE_COLOR, width=1.2))
    levels = unit_levels(run)
    for wallet in run.wallets:
        lv = levels[levels["wallet"] == wallet]
        if not len(lv):
            continue
        n = len(lv)
        xs = np.empty(3 * n)
        ys = np.empty(3 * n)
        xs[0::3], xs[1::3], xs[2::3] = lv["start_ms"], lv["end_ms"], np.nan
        ys[0::3] = ys[1::3] = lv["price"]
        ys[2::3] = np.nan
        text = np.repeat([f"{wallet}: unit {u:+d} @ {p:,.2f}" for u, p in zip(lv["unit"], lv["price"], strict=True)], 3)
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", name=f"{wallet} unit levels", legendgroup=f"levels-{wallet}",
            line={"color": colors[wallet], "width": 0.8, "dash": "dot"}, opacity=0.55,
            text=text, hovertemplate="%{text}<extra></extra>", connectgaps=False,
            meta={"role": "levels", "wallet": wallet, "segments": n},
        ))
    for kind in fill_kinds(run.fills):
        st = kind_style(kind)
        of_kind = run.fills[run.fills["kind"].astype(str) == kind]
        first = True
        for wallet, g in of_kind.groupby(of_kind["wallet"].astype(str), sort=False):
            trace_cls = go.Scattergl if len(g) > GL_MARKERS_ABOVE else go.Scatter
            custom, text = _fill_hover(g)
            fig.add_trace(trace_cls(
                x=g["ts"].to_numpy(dtype=float), y=g["price"].to_numpy(dtype=float), mode="markers",
                name=f"{st.label} ({len(of_kind)})", legendgroup=f"fills-{kind}", showlegend=first,
                marker={"symbol": st.symbol, "color": st.color, "size": 10, "opacity": 0.95,
                        "line": {"color": colors.get(wallet, TOTAL_COLOR), "width": 1.5}},
                customdata=custom, text=text,
                hovertemplate=_FILL_HOVER.format(kind=html.escape(kind), wallet=html.escape(wallet)),
                meta={"role": "fills", "kind": kind, "wallet": wallet},
            ))
            first = False
    _layout(fig, f"{run.symbol} close with unit levels and every fill", f"{run.symbol} price", 620)
    fig.update_layout(hovermode="closest")
    return fig


def _bh_groups(run: RunOutput) -> dict[tuple[float, float], list[str]]:
    groups: dict[tuple[float, float], list[str]] = {}
    for w in run.wallets:
        m = run.metrics["wallets"].get(w, {})
        groups.setdefault((m.get("start_equity") or 0.0, m.get("leverage") or 1.0), []).append(w)
    return groups


def fill_kinds(fills: pd.DataFrame) -> list[str]:
    """Distinct order kinds of the fills, known kinds first in a fixed order."""
    kinds = list(dict.fromkeys(fills["kind"].astype(str)))
    return sorted(kinds, key=lambda k: list(KIND_STYLES).index(k) if k in KIND_STYLES else len(KIND_STYLES))


def _fill_hover(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(customdata: qty, position, fee, realized PnL as floats; text: side · unit · phase)."""
    unit = pd.to_numeric(g["unit"], errors="coerce")
    unit_s = pd.Series(np.where(unit.isna(), "", "unit " + unit.fillna(0).astype(int).map("{:+d}".format) + " · "),
                       index=g.index)
    text = (g["side"].astype(str) + " · " + unit_s.astype(str) + "phase after: "
            + g["phase"].fillna("").astype(str).map(html.escape))
    custom = g[["qty", "position", "fee", "realized_pnl"]].to_numpy(dtype=float)
    return custom, text.to_numpy(dtype=str)


_FILL_HOVER = (
    "<b>{kind}</b> · {wallet}<br>%{{x|%Y-%m-%d %H:%M:%S}}<br>%{{customdata[0]:~g}} @ %{{y:,.2f}} · "
    "%{{text}}<br>position after %{{customdata[1]:~g}} · fee %{{customdata[2]:,.2f}}"
    "<br>realized PnL (cum.) %{{customdata[3]:,.2f}}<extra></extra>"
)


def _first_price(run: RunOutput) -> float:
    return float((run.summary.get("data") or {}).get("first_price") or run.price[0])


def equity_figure(run: RunOutput, colors: dict[str, str]) -> go.Figure:
    fig = go.Figure()
    mw = run.metrics["wallets"]
    p0 = _first_price(run)
    for w in run.wallets:
        fig.add_trace(_line(run.times, run.eq_wide[w].to_numpy(), f"{w} ({mw[w].get('strategy') or 'wallet'})",
                            colors[w], group=w))
    groups = _bh_groups(run)
    if len(run.wallets) > 1:
        fig.add_trace(_line(run.times, run.eq_wide.sum(axis=1).to_numpy(), "total", TOTAL_COLOR,
                            width=2.4, group="total"))
        total_start = sum(run.metrics["wallets"][w]["start_equity"] for w in run.wallets)
        bh_total = sum(buy_and_hold_curve(run.price, s, lev, p0, **buy_and_hold_costs(run.summary)) * len(ws) for (s, lev), ws in groups.items())
        fig.add_trace(_line(run.times, bh_total, f"buy & hold, total ({total_start:,.0f})",
                            TOTAL_COLOR, width=1.4, dash="dash", group="total"))
    for (start, lev), ws in groups.items():
        color = colors[ws[0]] if len(groups) > 1 else BH_COLOR
        fig.add_trace(_line(run.times, buy_and_hold_curve(run.price, start, lev, p0, **buy_and_hold_costs(run.summary)),
                            f"buy & hold {lev:g}× ({start:,.0f}: {', '.join(ws)})", color,
                            width=1.3, dash="dot"))
    _layout(fig, "Equity per wallet and total vs buy & hold (same capital and leverage)",
            "equity (USD)", 460)
    fig.update_layout(hovermode="x unified")
    return fig


def drawdown_figure(run: RunOutput, colors: dict[str, str]) -> go.Figure:
    fig = go.Figure()
    mw = run.metrics["wallets"]

    def dd(curve: np.ndarray, start: float) -> np.ndarray:
        return -drawdown_series(np.concatenate([[start], curve]))[1:] * 100.0

    for w in run.wallets:
        fig.add_trace(_line(run.times, dd(run.eq_wide[w].to_numpy(), mw[w]["start_equity"]),
                            f"{w} (max {mw[w]['max_drawdown_pct']:.2f} %)", colors[w],
                            group=w, hover_fmt=".2f"))
    if len(run.wallets) > 1:
        t = run.metrics["total"]
        fig.add_trace(_line(run.times, dd(run.eq_wide.sum(axis=1).to_numpy(), t["start_equity"]),
                            f"total (max {t['max_drawdown_pct']:.2f} %)", TOTAL_COLOR, width=2.2,
                            group="total", hover_fmt=".2f", fill="tozeroy",
                            fillcolor="rgba(17,24,39,0.07)"))
    p0 = _first_price(run)
    for (start, lev), ws in _bh_groups(run).items():
        bh = buy_and_hold_curve(run.price, start, lev, p0, **buy_and_hold_costs(run.summary))
        fig.add_trace(_line(run.times, dd(bh, start), f"buy & hold {lev:g}× ({', '.join(ws)})",
                            BH_COLOR, width=1.2, dash="dot", hover_fmt=".2f"))
    _layout(fig, "Drawdown from the running peak", "drawdown (%)", 360)
    fig.update_layout(hovermode="x unified", yaxis={"tickformat": ".1f", "ticksuffix": " %"})
    return fig


def phase_figure(run: RunOutput) -> go.Figure:
    fig = go.Figure()
    segs = phase_segments(run.fills, run.end_ms, int(run.times[0]))
    segs = segs[segs["wallet"].isin(run.wallets)]
    phases = phase_order(segs["phase"])
    for ph in phases:
        g = segs[segs["phase"] == ph]
        dur = (g["end_ms"] - g["start_ms"]).to_numpy(dtype=float)
        hours = dur / 3_600_000
        fig.add_trace(go.Bar(
            y=g["wallet"], x=dur, base=g["start_ms"].to_numpy(dtype=float), orientation="h", name=ph,
            marker={"color": phase_color(ph), "line": {"width": 0}}, width=0.6,
            customdata=np.column_stack([_minutes(g["start_ms"]), _minutes(g["end_ms"]), hours]),
            hovertemplate=(f"<b>{html.escape(ph)}</b> · %{{y}}<br>%{{customdata[0]}} → %{{customdata[1]}}"
                           "<br>%{customdata[2]:.2f} h<extra></extra>"),
            meta={"role": "phases", "phase": ph},
        ))
    _layout(fig, "Phase timeline (phase after each fill, until the next fill)", "wallet",
            150 + 55 * max(len(run.wallets), 1))
    fig.update_layout(barmode="overlay", bargap=0.3, hovermode="closest",
                      yaxis={"categoryorder": "array", "categoryarray": run.wallets[::-1],
                             "tickformat": None, "title": {"text": ""}})
    return fig


def hedge_figures(run: RunOutput, colors: dict[str, str]) -> dict[str, go.Figure]:
    wallets = run.hedge_wallets
    if not wallets:
        return {}
    eq = run.equity
    ratio = go.Figure()
    parts = go.Figure()
    for w in wallets:
        g = eq[(eq["wallet"] == w)]
        ratio.add_trace(_line(g["ts"], g["hedge_ratio"], f"{w} hedge ratio", colors[w],
                              hover_fmt=".3f", group=w))
        for col, dash, width in (("hedged_equity", None, 2.2), ("unhedged_equity", "dot", 1.4),
                                 ("spot_equity", "dash", 1.2)):
            if col in g and g[col].notna().any():
                parts.add_trace(_line(g["ts"], g[col], f"{w} {col.replace('_', ' ')}", colors[w],
                                      dash=dash, width=width, group=w))
    _layout(ratio, "Hedge ratio |futures| / spot", "hedge ratio", 340)
    ratio.update_layout(hovermode="x unified", yaxis={"tickformat": ".2f", "rangemode": "tozero"})
    _layout(parts, "Hedged (spot + futures) vs unhedged spot equity", "equity (USD)", 420)
    parts.update_layout(hovermode="x unified")
    return {"chart-hedge-ratio": ratio, "chart-hedge-equity": parts}


# --------------------------------------------------------------------------- tables


def _num(v, fmt: str = ",.2f", suffix: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    return f"{v:{fmt}}{suffix}"


def _hours(h) -> str:
    if h is None:
        return "–"
    if float(h) < 1.0:
        return f"{float(h) * 60:.1f} min"
    days, rem = divmod(float(h), 24.0)
    return f"{int(days)}d {rem:.1f}h" if days else f"{rem:.1f}h"


def _signed(v, suffix: str = " %") -> str:
    if v is None:
        return "–"
    cls = "pos" if v > 0 else "neg" if v < 0 else ""
    return f'<span class="{cls}">{v:+,.2f}{suffix}</span>'


_ROWS: list[tuple[str, str, object]] = [
    ("strategy", "strategy", lambda v: html.escape(str(v)) if v else "–"),
    ("leverage", "leverage", lambda v: _num(v, "g", "×")),
    ("start_equity", "start equity", _num),
    ("end_equity", "end equity", _num),
    ("return_pct", "return", _signed),
    ("buy_and_hold_return_pct", "buy & hold (same leverage)", _signed),
    ("buy_and_hold_1x_return_pct", "buy & hold 1×", _signed),
    ("excess_return_pct", "return − buy & hold", _signed),
    ("cagr_pct", "CAGR", _signed),
    ("max_drawdown_pct", "max drawdown", lambda v: _num(v, ".2f", " %")),
    ("max_drawdown_duration_hours", "max drawdown duration", _hours),
    ("buy_and_hold_max_drawdown_pct", "buy & hold max drawdown", lambda v: _num(v, ".2f", " %")),
    ("sharpe", "Sharpe (annualised)", lambda v: _num(v, ".2f")),
    ("sortino", "Sortino (annualised)", lambda v: _num(v, ".2f")),
    ("calmar", "Calmar", lambda v: _num(v, ".2f")),
    ("volatility_ann_pct", "volatility (annualised)", lambda v: _num(v, ".1f", " %")),
    ("round_trips", "round trips (closed)", lambda v: _num(v, "d")),
    ("win_rate_pct", "win rate (net of fees)", lambda v: _num(v, ".1f", " %")),
    ("profit_factor", "profit factor", lambda v: _num(v, ".2f")),
    ("avg_trip_pnl", "average round trip", _num),
    ("exposure_pct", "exposure (time in market)", lambda v: _num(v, ".1f", " %")),
    ("realized_pnl", "realized PnL (before fees)", _num),
    ("fees", "fees", _num),
    ("funding", "funding (+ received, − paid)", _num),
    ("fills", "fills", lambda v: _num(v, ",d")),
    ("resets", "RESET cycles", lambda v: _num(v, "d")),
    ("final_phase", "final phase", lambda v: html.escape(str(v)) if v else "–"),
]


# --------------------------------------------------------------------------- where the money went

MONEY_STEPS = (("long_legs", "long legs"), ("short_legs", "short legs"), ("reentry_gap", "re-entry gap"),
               ("fees", "fees"), ("funding", "funding"))
MONEY_COLORS = {"long_legs": "#16a34a", "short_legs": "#f97316", "reentry_gap": "#7c3aed",
                "fees": "#64748b", "funding": "#0891b2"}


def money_totals(run: RunOutput) -> pd.DataFrame:
    """Per wallet (report order): cycles and the sums of cycles.csv's money columns (without the
    funding per cycle, from a folder with no cycles.csv, the wallet's funding is summary.json's),
    then the open position's unrealized PnL and the equity change from summary.json (NaN when
    it has no equity figures)."""
    cyc = run.cycles if run.cycles is not None else pd.DataFrame(columns=CYCLE_COLUMNS)
    tot = cycle_totals(cyc).set_index("wallet")
    sw = run.summary.get("wallets") or {}
    rows = []
    for w in run.wallets:
        if w not in tot.index:
            continue
        r = tot.loc[w].to_dict()
        if not np.isfinite(float(r["funding"])):
            r["funding"] = float((sw.get(w) or {}).get("funding") or 0.0)
            r["net_pnl"] = float(r["realized_pnl"]) - float(r["fees"]) + r["funding"]
        # The rest of the equity change is the open position's unrealized PnL at the end
        # (equity = cash + unrealized, cash = allocation + realized − fees + funding).
        s = sw.get(w) or {}
        change = math.nan
        if s.get("end_equity") is not None and s.get("start_equity") is not None:
            change = float(s["end_equity"]) - float(s["start_equity"])
        r["unrealized"] = change - float(r["net_pnl"])
        r["equity_change"] = change
        rows.append({"wallet": w, **r})
    return pd.DataFrame(rows, columns=["wallet", "cycles", "long_legs", "short_legs", "reentry_gap",
                                       "realized_pnl", "fees", "funding", "net_pnl", "unrealized",
                                       "equity_change"])


def money_figure(run: RunOutput, colors: dict[str, str]) -> go.Figure:
    """One waterfall per wallet, side by side: long legs, short legs, re-entry gap, −fees,
    funding, the realized net they add up to, then the open position's unrealized PnL and the
    equity change (start to end) they make together."""
    from plotly.subplots import make_subplots

    tot = money_totals(run)
    n = max(len(tot), 1)
    titles = [f"{r['wallet']} ({int(r['cycles'])} cycle{'s' if int(r['cycles']) != 1 else ''})"
              for _, r in tot.iterrows()]
    fig = make_subplots(rows=1, cols=n, shared_yaxes=True, subplot_titles=titles or None,
                        horizontal_spacing=0.06)
    for i, (_, r) in enumerate(tot.iterrows(), start=1):
        w = str(r["wallet"])
        steps = [float(r["long_legs"]), float(r["short_legs"]), float(r["reentry_gap"]),
                 -float(r["fees"]), float(r["funding"])]
        # Plotly sums the steps itself for a "total"; the values given there are for reading.
        labels = [label for _, label in MONEY_STEPS] + ["net realized"]
        values = [*steps, float(r["net_pnl"])]
        measure = ["relative"] * len(steps) + ["total"]
        if np.isfinite(float(r["equity_change"])):
            labels += ["open position", "equity change"]
            values += [float(r["unrealized"]), float(r["equity_change"])]
            measure += ["relative", "total"]
        fig.add_trace(go.Waterfall(
            name=w, x=labels, y=values, measure=measure, showlegend=False,
            text=[f"{v:+,.2f}" for v in values], textposition="outside", cliponaxis=False,
            increasing={"marker": {"color": "#16a34a"}}, decreasing={"marker": {"color": "#dc2626"}},
            totals={"marker": {"color": colors.get(w, TOTAL_COLOR)}},
            connector={"line": {"color": "#9ca3af", "width": 1, "dash": "dot"}},
            hovertemplate=f"<b>{html.escape(w)}</b> · %{{x}}: %{{y:+,.2f}}<extra></extra>",
            meta={"role": "money", "wallet": w},
        ), row=1, col=i)
        fig.update_xaxes(type="category", row=1, col=i)
    fig.update_yaxes(title={"text": "USD"}, tickformat=",", row=1, col=1)
    fig.update_layout(
        template="plotly_white", meta={"title": "Realized PnL, fees and funding per wallet over the whole run"},
        height=470, hovermode="closest", showlegend=False,
        margin={"l": 90, "r": 60, "t": 50, "b": 90, "autoexpand": False},
        font={"family": _FONT, "size": 12, "color": "#1f2937"},
    )
    return fig


def cycles_figure(run: RunOutput) -> go.Figure:
    """Per wallet (one panel each): the decomposition of every cycle as stacked bars (fees
    negative), the cycle's net as a marker."""
    from plotly.subplots import make_subplots

    cyc = run.cycles if run.cycles is not None else pd.DataFrame(columns=CYCLE_COLUMNS)
    wallets = [w for w in run.wallets if (cyc["wallet"].astype(str) == w).any()]
    rows = max(len(wallets), 1)
    fig = make_subplots(rows=rows, cols=1, subplot_titles=wallets or None, vertical_spacing=0.3 / rows)
    for i, w in enumerate(wallets, start=1):
        g = cyc[cyc["wallet"].astype(str) == w]
        x = g["cycle"].astype(int).astype(str).to_numpy()
        custom = np.column_stack([g["start_time"].map(_short_ts), g["end_time"].map(_short_ts),
                                  g["phases"].fillna("").astype(str).map(html.escape), g["fills"].astype(int)])
        for key, label in MONEY_STEPS:
            y = g[key].astype(float).to_numpy()
            if key == "fees":
                y = -y
            if not np.isfinite(y).any():
                continue  # funding per cycle unknown (no cycles.csv)
            fig.add_trace(go.Bar(
                x=x, y=y, name=label, legendgroup=key, showlegend=i == 1,
                marker={"color": MONEY_COLORS[key], "line": {"width": 0}}, customdata=custom,
                hovertemplate=(f"<b>{html.escape(w)}</b> · cycle %{{x}} · {label}: %{{y:+,.2f}}<br>"
                               "%{customdata[0]} → %{customdata[1]} · %{customdata[3]} fills"
                               "<br>%{customdata[2]}<extra></extra>"),
                meta={"role": "cycle-part", "wallet": w, "part": key},
            ), row=i, col=1)
        fig.add_trace(go.Scatter(
            x=x, y=g["net_pnl"].astype(float).to_numpy(), mode="markers", name="net",
            legendgroup="net", showlegend=i == 1,
            marker={"color": TOTAL_COLOR, "symbol": "diamond", "size": 7},
            hovertemplate=f"<b>{html.escape(w)}</b> · cycle %{{x}} · net %{{y:+,.2f}}<extra></extra>",
            meta={"role": "cycle-net", "wallet": w},
        ), row=i, col=1)
        fig.update_xaxes(type="category", title={"text": "cycle"}, row=i, col=1)
        fig.update_yaxes(title={"text": "USD"}, tickformat=",", row=i, col=1)
    fig.update_layout(
        template="plotly_white", meta={"title": "Each cycle's realized PnL, fees and funding"},
        height=120 + 320 * rows, barmode="relative", hovermode="closest",
        margin={"l": 90, "r": 260, "t": 40, "b": 50, "autoexpand": False},
        font={"family": _FONT, "size": 12, "color": "#1f2937"},
        legend={"orientation": "v", "yanchor": "top", "y": 1.0, "x": 1.02, "xanchor": "left"},
    )
    return fig


_MONEY_NOTE = (
    "Each wallet's realized PnL split by RESET cycle (cycles.csv): long legs are what the long "
    "made as if held through every exit and re-entry, short legs what the shorts realized, and "
    "the re-entry gap what buying back at a different price than the exit cost (negative) or "
    "gained: coins re-bought × (exit price − re-entry price). Long legs + short legs + re-entry "
    "gap = realized PnL; minus fees, plus funding = net realized; with the open position's "
    "unrealized PnL at the end, the equity change. Figures in brackets: summary.json.")


def _money_section(run: RunOutput, money: dict[str, tuple[str, go.Figure]]) -> str:
    notes = [_MONEY_NOTE]
    if run.cycles_source == "fills.csv":
        notes.append("This folder has no cycles.csv (written by an older hedgekit): the cycles were "
                     "recomputed from fills.csv and the funding is summary.json's per wallet (per "
                     "cycle it is not known).")
    grids = [w for w in run.wallets if str(((run.summary.get("wallets") or {}).get(w) or {}).get("strategy"))
             == "grid_hedge"]
    if grids:
        notes.append(f"{', '.join(grids)}: a grid hedge has no RESET cycles; it is one row for the "
                     "whole run, split into long and short legs, with no re-entry gap.")
    charts = "".join(
        f'<h2 style="font-size:14px;margin:14px 0 4px">{html.escape(heading)}</h2>'
        f'<div id="{cid}" class="chart"></div>' for cid, (heading, _fig) in money.items())
    note = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    return (f'<section class="card" id="where-the-money-went"><h2>Where the money went</h2>{note}'
            f'<div class="tables">{_money_table(run)}</div>{charts}</section>')


def _money_table(run: RunOutput) -> str:
    tot = money_totals(run)
    if not len(tot):
        return ""
    sw = run.summary.get("wallets") or {}
    head = "".join(f"<th>{html.escape(str(w))}</th>" for w in tot["wallet"])
    lines = [("cycles", "cycles", None), *[(k, lbl, None) for k, lbl in MONEY_STEPS[:3]],
             ("realized_pnl", "realized PnL", "realized_pnl"), ("fees", "fees", "fees"),
             ("funding", "funding", "funding"), ("net_pnl", "net realized", None),
             ("unrealized", "open position (unrealized)", None), ("equity_change", "equity change", None)]
    body = []
    for key, label, check in lines:
        cells = []
        for _, r in tot.iterrows():
            v = r[key]
            if key == "cycles":
                cell = f"{int(v):,d}"
            elif not np.isfinite(float(v)):
                cell = "–"
            else:  # fees are shown as the cost they are
                cell = _signed_money(-float(v) if key == "fees" else float(v))
            ref = (sw.get(str(r["wallet"])) or {}).get(check) if check else None
            if ref is not None:
                paid = " paid" if key == "fees" else ""
                cell += f' <small title="summary.json">({float(ref):,.2f}{paid})</small>'
            cells.append(f"<td>{cell}</td>")
        dot = (f'<span class="dot" style="background:{MONEY_COLORS[key]}"></span>'
               if key in MONEY_COLORS else "")
        body.append(f"<tr><th>{dot}{html.escape(label)}</th>{''.join(cells)}</tr>")
    return (f'<table class="metrics" id="money-table"><thead><tr><th>USD</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _signed_money(v: float) -> str:
    cls = "pos" if v > 0 else "neg" if v < 0 else ""
    return f'<span class="{cls}">{v:+,.2f}</span>'


def _metrics_table(run: RunOutput, colors: dict[str, str]) -> str:
    cols = [(w, run.metrics["wallets"][w]) for w in run.wallets]
    if len(cols) > 1:
        cols.append(("total", run.metrics["total"]))
    head = "".join(
        f'<th><span class="dot" style="background:{colors.get(n, TOTAL_COLOR)}"></span>{html.escape(n)}</th>'
        for n, _ in cols)
    body = []
    for key, label, fmt in _ROWS:
        cells = "".join(f"<td>{fmt(m.get(key))}</td>" for _, m in cols)  # type: ignore[operator]
        body.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
    return (f'<table class="metrics" id="metrics-table"><thead><tr><th>metric</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _phase_table(run: RunOutput) -> str:
    sw = run.summary.get("wallets") or {}
    per: dict[str, tuple[dict, dict]] = {}
    for w in run.wallets:
        s = sw.get(w, {})
        if s.get("time_in_phase_hours"):  # the engine's own log: exact, also between fills
            per[w] = (s["time_in_phase_hours"], s.get("time_in_phase_pct") or {})
        else:
            m = run.metrics["wallets"][w]
            per[w] = (m["time_in_phase_hours"], m["time_in_phase_pct"])
    phases = phase_order(p for h, _ in per.values() for p in h)
    head = "".join(f"<th>{html.escape(w)}</th>" for w in run.wallets)
    rows = []
    for ph in phases:
        cells = "".join(
            f"<td>{_hours(per[w][0].get(ph)) if ph in per[w][0] else '–'}"
            f"{' <small>(' + _num(per[w][1].get(ph), '.1f', ' %') + ')</small>' if ph in per[w][1] else ''}</td>"
            for w in run.wallets)
        rows.append(f'<tr><th><span class="dot" style="background:{phase_color(ph)}"></span>'
                    f"{html.escape(ph)}</th>{cells}</tr>")
    return (f'<table class="metrics" id="phase-table"><thead><tr><th>phase</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _hedge_table(run: RunOutput) -> str:
    sw = run.summary.get("wallets") or {}
    blocks = []
    for w in run.wallets:
        h = (sw.get(w) or {}).get("hedge")
        if not isinstance(h, dict) or not h:
            continue
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt_any(v))}</td></tr>"
                       for k, v in h.items())
        blocks.append(f'<table class="metrics kv"><thead><tr><th colspan="2">{html.escape(w)}: hedge'
                      f"</th></tr></thead><tbody>{rows}</tbody></table>")
    return "".join(blocks)


def _fmt_any(v) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.2f}"
    if isinstance(v, dict | list):
        return json.dumps(v, default=str)
    return str(v)


def _short_ts(value) -> str:
    """'2025-05-04T15:33:00.000Z' -> '2025-05-04 15:33:00' (escaped)."""
    return html.escape(str(value).replace("T", " ").replace(".000Z", "").rstrip("Z"))


def _facts(run: RunOutput) -> str:
    d = run.summary.get("data") or {}
    e = run.summary.get("engine") or {}
    cfg = run.summary.get("config") or {}
    start, end = d.get("start", "?"), d.get("end", "?")
    span_days = (run.end_ms - int(run.times[0])) / 86_400_000
    step_s = (np.median(np.diff(run.times)) / 1000) if run.times.size > 1 else 0
    items = [
        ("data file", f'<span title="{html.escape(str(d.get("file", "")))}">'
                      f'{html.escape(Path(str(d.get("file", "?"))).name)}</span>'),
        ("sha256", f'<code>{html.escape(str(d.get("sha256", "?")))}</code>'),
        ("span", f"{_short_ts(start)} → {_short_ts(end)} UTC ({span_days:,.1f} days)"),
        ("bars", f"{int(d.get('bars', len(run.times))):,} (equity sampled every {step_s:g} s: "
                 f"{len(run.times):,} points)"),
        ("price", f"{_num(d.get('first_price'))} → {_num(d.get('last_price'))}"),
        ("instrument", html.escape(run.symbol + " · " + str((cfg.get("instrument") or {}).get("contract", "")))),
        ("funding", html.escape(Path(str(d.get("funding", "–"))).name)),
        ("fills", f"{len(run.fills):,}"),
    ]
    if e:
        items.append(("engine", html.escape(", ".join(f"{k.replace('_', ' ')} {v:,}" if isinstance(v, int)
                                                       else f"{k} {v}" for k, v in e.items()))))
    return "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in items)


def _warnings(run: RunOutput) -> str:
    items = []
    for w, s in (run.summary.get("wallets") or {}).items():
        for msg in s.get("warnings") or []:
            items.append(f"<li><b>{html.escape(w)}</b>: {html.escape(str(msg))}</li>")
        if s.get("liquidated"):
            items.append(f"<li><b>{html.escape(w)}</b>: <b>liquidated</b></li>")
    if not items:
        return ""
    return f'<section class="card warn"><h2>Warnings</h2><ul>{"".join(items)}</ul></section>'


def _data_quality(run: RunOutput) -> str:
    """Banner for the start checks (SPEC §4a): bars too coarse for the unit, with both intrabar
    orders' results side by side; units smaller than their fees."""
    dq = run.summary.get("data_quality") or {}
    parts = []
    coarse = [c for c in (dq.get("coarse_bars") or {}).values() if c.get("coarse")]
    if coarse:
        other = dq.get("opposite_intrabar") or {}
        rows = [(w, (run.summary.get("wallets") or {}).get(w) or {}, (other.get("wallets") or {}).get(w) or {})
                for w in run.wallets]
        if len(rows) > 1:
            rows.append(("total", run.summary.get("total") or {}, other.get("total") or {}))
        body = "".join(
            f"<tr><th>{html.escape(name)}</th><td>{_signed(m.get('return_pct'))}</td><td>{_signed(o.get('return_pct'))}</td>"
            f"<td>{_num(m.get('max_drawdown_pct'), '.2f', ' %')}</td><td>{_num(o.get('max_drawdown_pct'), '.2f', ' %')}</td>"
            f"<td>{_num(m.get('fills'), ',d')}</td><td>{_num(o.get('fills'), ',d')}</td></tr>"
            for name, m, o in rows)
        items = "".join(f"<li>{html.escape(str(c.get('message', '')))}</li>" for c in coarse)
        parts.append(
            '<section class="card danger" id="coarse-bars"><h2>Bars too coarse for the unit: results are optimistic</h2>'
            f"<ul>{items}</ul><p class=\"note\">The same backtest with the opposite intrabar order "
            f"({html.escape(str(other.get('path', '')))}):</p>"
            '<table class="metrics"><thead><tr><th>wallet</th><th>return</th><th>opposite order</th>'
            "<th>max drawdown</th><th>opposite order</th><th>fills</th><th>opposite order</th></tr></thead>"
            f"<tbody>{body}</tbody></table></section>")
    fees = [f for f in (dq.get("unit_vs_fee") or {}).values() if not f.get("ok", True)]
    if fees:
        items = "".join(f"<li>{html.escape(str(f.get('message', '')))}</li>" for f in fees)
        parts.append(f'<section class="card warn" id="unit-vs-fee"><h2>Unit smaller than its fees</h2><ul>{items}</ul></section>')
    return "".join(parts)


# --------------------------------------------------------------------------- page

_CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--card:#fff}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 Inter,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}
header{background:#0f172a;color:#f8fafc;padding:22px 32px}
header h1{margin:0 0 4px;font-size:22px;font-weight:650}
header p{margin:0;color:#cbd5e1}
main{max-width:1440px;margin:0 auto;padding:20px 32px 48px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 20px;margin:0 0 18px;box-shadow:0 1px 2px rgba(0,0,0,.04)}
.card h2{margin:0 0 4px;font-size:16px}
.card p.note{margin:0 0 8px;color:var(--muted);font-size:12.5px}
dl.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:6px 24px;margin:8px 0 0}
dl.facts div{display:flex;gap:10px;min-width:0}
dl.facts dt{color:var(--muted);min-width:78px}
dl.facts dd{margin:0;overflow-wrap:anywhere}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.tables{display:flex;gap:18px;flex-wrap:wrap;align-items:flex-start}
table.metrics{border-collapse:collapse;font-variant-numeric:tabular-nums}
table.metrics th,table.metrics td{padding:4px 14px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
table.metrics th:first-child{text-align:left;font-weight:500;color:#374151}
table.metrics thead th{font-weight:650;border-bottom:2px solid #cbd5e1;color:var(--fg)}
table.metrics tbody tr:nth-child(even){background:#f9fafb}
table.metrics small{color:var(--muted)}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px;vertical-align:baseline}
.pos{color:#15803d}.neg{color:#b91c1c}
.chart{width:100%;min-height:200px}
.warn{border-color:#fbbf24;background:#fffbeb}
.warn ul{margin:6px 0 0;padding-left:20px}
.danger{border:2px solid #dc2626;background:#fef2f2}
.danger h2{color:#b91c1c;font-size:18px}
.danger ul{margin:6px 0 10px;padding-left:20px;color:#7f1d1d}
pre{background:#0f172a;color:#e2e8f0;padding:14px 16px;border-radius:8px;overflow:auto;font:12px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;max-height:520px}
footer{color:var(--muted);font-size:12px;text-align:center;padding:0 0 24px}
"""

_PLOTLY_CONFIG = {"responsive": True, "displaylogo": False,
                  "toImageButtonOptions": {"format": "png", "scale": 2},
                  "modeBarButtonsToRemove": ["lasso2d", "select2d"]}

_DRAW = """
(function () {
  var config = %s;
  var ids = [];
  document.querySelectorAll('script[type="application/json"][data-chart]').forEach(function (el) {
    var fig = JSON.parse(el.textContent);
    var id = el.getAttribute('data-chart');
    Plotly.newPlot(id, fig.data, fig.layout, config);
    if ((fig.layout.xaxis || {}).type === 'date') ids.push(id);
  });
  // Every time chart shares the time axis: zooming or panning one moves the others.
  var syncing = false;
  ids.forEach(function (id) {
    document.getElementById(id).on('plotly_relayout', function (ev) {
      if (syncing) return;
      var upd = null;
      if (ev['xaxis.range[0]'] !== undefined) upd = {'xaxis.range': [ev['xaxis.range[0]'], ev['xaxis.range[1]']]};
      else if (ev['xaxis.range'] !== undefined) upd = {'xaxis.range': ev['xaxis.range']};
      else if (ev['xaxis.autorange']) upd = {'xaxis.autorange': true};
      if (!upd) return;
      syncing = true;
      Promise.all(ids.filter(function (o) { return o !== id; })
                     .map(function (o) { return Plotly.relayout(o, upd); }))
        .finally(function () { syncing = false; });
    });
  });
})();
"""

_NOTES = {
    "chart-price": "Close price (downsampled: min and max of each bucket kept). Dotted lines: the unit "
                   "levels of each wallet's grid while it was in force (from the placed orders' trigger "
                   "prices). Every fill is marked — symbol and colour by order kind, outline colour by "
                   "wallet; hover for size, unit, phase and position.",
    "chart-equity": "Mark-to-market equity of each wallet (and their total) against holding the same "
                    "capital at the same leverage from the first bar's open (no fees, no funding).",
    "chart-drawdown": "Fall from the running peak of equity, in percent. Zooming or panning any chart "
                      "moves all of them (double-click resets).",
    "chart-phases": "Each wallet's phase after each fill, held until the wallet's next fill.",
    "chart-hedge-ratio": "Size of the futures hedge relative to the spot holding.",
    "chart-hedge-equity": "What the hedge did: spot + futures (hedged) against the spot alone (unhedged).",
}


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _fig_json(fig: go.Figure) -> str:
    # "<" escaped so no "</script>" can end the block early; still valid JSON.
    return fig.to_json(validate=False, pretty=False).replace("<", "\\u003c")


def page_head(title: str, extra_css: str = "") -> str:
    """A self-contained report page's opening, up to ``</head>``'s contents: plotly inlined."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}{extra_css}</style>
<script>{_plotly_js()}</script>"""


def build_report(out_dir: str | Path) -> Path:
    """Write ``out_dir/report.html`` from the files of a backtest output folder; returns its path."""
    run = load_output(out_dir)
    colors = wallet_colors(run.wallets)
    figs: dict[str, tuple[str, go.Figure]] = {
        "chart-price": ("Price, unit levels and fills", price_figure(run, colors)),
        "chart-equity": ("Equity vs buy & hold", equity_figure(run, colors)),
        "chart-drawdown": ("Drawdown", drawdown_figure(run, colors)),
        "chart-phases": ("Phase timeline", phase_figure(run)),
    }
    titles = {"chart-hedge-ratio": "Hedge ratio", "chart-hedge-equity": "Hedged vs unhedged equity"}
    for cid, fig in hedge_figures(run, colors).items():
        figs[cid] = (titles[cid], fig)
    pad = (run.end_ms - int(run.times[0])) // 200  # room for the first and last markers
    span = [str(d).replace("T", " ") for d in _dates([int(run.times[0]) - pad, run.end_ms + pad])]
    for _heading, fig in figs.values():  # one time span everywhere: the charts line up
        fig.update_xaxes(range=span)
    money = {"chart-money": ("Per wallet, whole run", money_figure(run, colors)),
             "chart-cycles": ("Per cycle", cycles_figure(run))}

    d = run.summary.get("data") or {}
    title = f"hedgekit backtest · {run.symbol} · {str(d.get('start', ''))[:10]} → {str(d.get('end', ''))[:10]}"
    wallets_line = ", ".join(
        f"{w} ({run.metrics['wallets'][w].get('strategy') or '?'}, {run.metrics['wallets'][w]['leverage']:g}×)"
        for w in run.wallets)
    sections = []
    for cid, (heading, _fig) in figs.items():
        sections.append(
            f'<section class="card"><h2>{html.escape(heading)}</h2><p class="note">'
            f'{html.escape(_NOTES.get(cid, ""))}</p><div id="{cid}" class="chart"></div></section>')
    data_blocks = "".join(
        f'<script type="application/json" id="{cid}-data" data-chart="{cid}">{_fig_json(fig)}</script>\n'
        for cid, (_h, fig) in {**figs, **money}.items())
    config_yaml = yaml.safe_dump(run.summary.get("config") or {}, sort_keys=False, allow_unicode=True,
                                 default_flow_style=False)
    hedge_tables = _hedge_table(run)
    page = f"""{page_head(title)}
</head>
<body>
<header><h1>{html.escape(title)}</h1><p>wallets: {html.escape(wallets_line)}</p></header>
<main>
{_data_quality(run)}
<section class="card" id="run-facts"><h2>Run</h2><dl class="facts">{_facts(run)}</dl></section>
{_warnings(run)}
<section class="card" id="metrics"><h2>Results</h2>
<p class="note">Returns against the allocation; Sharpe, Sortino and volatility annualised from the bar
spacing (365.25 days a year, risk-free rate 0); a round trip runs from flat to flat (or to a flip).</p>
<div class="tables">{_metrics_table(run, colors)}<div><h2 style="font-size:14px;margin:0 0 4px">Time in phase</h2>
{_phase_table(run)}</div>{hedge_tables}</div></section>
{''.join(sections)}
{_money_section(run, money)}
<section class="card" id="config"><h2>Configuration</h2><pre>{html.escape(config_yaml)}</pre></section>
</main>
<footer>generated by hedgekit from {html.escape(run.folder.name or str(run.folder))}/ · charts by plotly.js (embedded)</footer>
{data_blocks}<script>{_DRAW % json.dumps(_PLOTLY_CONFIG)}</script>
</body>
</html>
"""
    path = Path(out_dir) / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
