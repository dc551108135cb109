"""report.html's charts (plotly figures) built from a parsed output folder (``RunOutput``)."""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hedgekit.report.cycles import CYCLE_COLUMNS, cycle_totals
from hedgekit.report.metrics import (
    buy_and_hold_costs,
    buy_and_hold_curve,
    drawdown_series,
    phase_segments,
)
from hedgekit.report.style import (
    BH_COLOR,
    KIND_STYLES,
    PRICE_COLOR,
    TOTAL_COLOR,
    kind_style,
    phase_color,
    phase_order,
)

if TYPE_CHECKING:
    from hedgekit.report.html import RunOutput

__all__ = [
    "CHART_IDS",
    "CYCLE_CHART_IDS",
    "HEDGE_CHART_IDS",
    "MAX_LINE_POINTS",
    "cycles_figure",
    "downsample_minmax",
    "drawdown_figure",
    "equity_figure",
    "fill_kinds",
    "hedge_figures",
    "money_figure",
    "money_totals",
    "phase_figure",
    "price_figure",
    "report_figures",
    "unit_levels",
]

MAX_LINE_POINTS = 5000
GL_MARKERS_ABOVE = 3000  # a fill trace with more points is drawn with WebGL
CHART_IDS = ("chart-price", "chart-equity", "chart-drawdown", "chart-phases")
HEDGE_CHART_IDS = ("chart-hedge-ratio", "chart-hedge-equity")
# "Where the money went": not on the shared time axis (categories and cycle numbers).
CYCLE_CHART_IDS = ("chart-money", "chart-cycles")
HEDGE_COLUMNS = ("spot_equity", "hedged_equity", "unhedged_equity", "hedge_ratio")


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


def report_figures(run: RunOutput, colors: dict[str, str]
                   ) -> tuple[dict[str, tuple[str, go.Figure]], dict[str, tuple[str, go.Figure]]]:
    """(heading, figure) by chart id: the time charts, on one shared time span, and the charts of
    "where the money went"."""
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
    return figs, money


def _short_ts(value) -> str:
    """'2025-05-04T15:33:00.000Z' -> '2025-05-04 15:33:00' (escaped)."""
    return html.escape(str(value).replace("T", " ").replace(".000Z", "").rstrip("Z"))
