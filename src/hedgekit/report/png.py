"""Static PNG charts of a backtest output folder, for sharing (matplotlib, Agg canvas).

Same data, colours and markers as ``report.html``: ``price.png`` (close, unit levels, every
fill), ``equity.png`` (wallets and total vs buy & hold), ``drawdown.png``, ``phases.png`` and,
when a grid-hedge wallet wrote hedge columns, ``hedge.png``. Figures are drawn on their own Agg
canvas, so pyplot's global state and the user's backend are left alone.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from hedgekit.report.figures import downsample_minmax, fill_kinds, unit_levels
from hedgekit.report.html import RunOutput, load_output
from hedgekit.report.metrics import (
    buy_and_hold_costs,
    buy_and_hold_curve,
    drawdown_series,
    phase_segments,
)
from hedgekit.report.style import (
    BH_COLOR,
    PRICE_COLOR,
    TOTAL_COLOR,
    kind_style,
    phase_color,
    phase_order,
    wallet_colors,
)

__all__ = ["write_pngs"]

DPI = 120
_MAX_POINTS = 4000


def _t(ms) -> np.ndarray:
    return np.asarray(ms, dtype=np.int64).astype("datetime64[ms]")


def _new(width: float = 13.0, height: float = 5.5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style(ax, title: str, ylabel: str) -> None:
    ax.set_title(title, loc="left", fontsize=12, fontweight="bold")
    ax.set_ylabel(ylabel)
    ax.set_xlabel("time (UTC)")
    ax.grid(True, color="#e5e7eb", linewidth=0.7)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    loc = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))


def _plot_line(ax, x, y, **kw) -> None:
    xs, ys = downsample_minmax(np.asarray(x), np.asarray(y, dtype=float), _MAX_POINTS)
    ax.plot(_t(xs), ys, **kw)


def _price(run: RunOutput, colors: dict[str, str], path: Path) -> Path:
    fig = _new(13.0, 6.5)
    ax = fig.add_subplot()
    _plot_line(ax, run.times, run.price, color=PRICE_COLOR, linewidth=0.8, label=f"{run.symbol} close")
    levels = unit_levels(run)
    for wallet in run.wallets:
        lv = levels[levels["wallet"] == wallet]
        if len(lv):
            ax.hlines(lv["price"], _t(lv["start_ms"]), _t(lv["end_ms"]), colors=colors[wallet],
                      linestyles=":", linewidth=0.7, alpha=0.6, label=f"{wallet} unit levels")
    f = run.fills
    for kind in fill_kinds(f):
        g = f[f["kind"].astype(str) == kind]
        st = kind_style(kind)
        edge = [colors.get(w, TOTAL_COLOR) for w in g["wallet"].astype(str)]
        filled = st.mpl_marker not in ("1", "2", "x")
        ax.scatter(_t(g["ts"]), g["price"].astype(float), marker=st.mpl_marker, s=46, zorder=5,
                   c=st.color, edgecolors=edge if filled else None, linewidths=0.9 if filled else 1.6,
                   label=f"{st.label} ({len(g)})")
    _style(ax, f"{run.symbol}: close, unit levels and every fill ({len(f):,} fills)", f"{run.symbol} price")
    ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:,.0f}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.savefig(path)
    return path


def _equity(run: RunOutput, colors: dict[str, str], path: Path) -> Path:
    fig = _new()
    ax = fig.add_subplot()
    mw = run.metrics["wallets"]
    p0 = float((run.summary.get("data") or {}).get("first_price") or run.price[0])
    for w in run.wallets:
        _plot_line(ax, run.times, run.eq_wide[w], color=colors[w], linewidth=1.2,
                   label=f"{w} ({mw[w]['return_pct']:+.2f} %)")
    groups: dict[tuple[float, float], list[str]] = {}
    for w in run.wallets:
        groups.setdefault((mw[w]["start_equity"], mw[w]["leverage"]), []).append(w)
    if len(run.wallets) > 1:
        t = run.metrics["total"]
        _plot_line(ax, run.times, run.eq_wide.sum(axis=1), color=TOTAL_COLOR, linewidth=2.0,
                   label=f"total ({t['return_pct']:+.2f} %)")
        bh = sum(buy_and_hold_curve(run.price, s, lev, p0, **buy_and_hold_costs(run.summary)) * len(ws) for (s, lev), ws in groups.items())
        _plot_line(ax, run.times, bh, color=TOTAL_COLOR, linewidth=1.0, linestyle="--",
                   label=f"buy & hold, total ({t['buy_and_hold_return_pct']:+.2f} %)")
    for (start, lev), ws in groups.items():
        _plot_line(ax, run.times, buy_and_hold_curve(run.price, start, lev, p0, **buy_and_hold_costs(run.summary)),
                   color=colors[ws[0]] if len(groups) > 1 else BH_COLOR, linewidth=1.0, linestyle=":",
                   label=f"buy & hold {lev:g}× ({', '.join(ws)})")
    _style(ax, "Equity vs buy & hold (same capital and leverage)", "equity (USD)")
    ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:,.0f}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.savefig(path)
    return path


def _drawdown(run: RunOutput, colors: dict[str, str], path: Path) -> Path:
    fig = _new(13.0, 4.5)
    ax = fig.add_subplot()
    mw = run.metrics["wallets"]

    def dd(curve, start: float) -> np.ndarray:
        return -drawdown_series(np.concatenate([[start], np.asarray(curve, dtype=float)]))[1:] * 100.0

    for w in run.wallets:
        _plot_line(ax, run.times, dd(run.eq_wide[w], mw[w]["start_equity"]), color=colors[w],
                   linewidth=1.1, label=f"{w} (max {mw[w]['max_drawdown_pct']:.2f} %)")
    if len(run.wallets) > 1:
        t = run.metrics["total"]
        total = dd(run.eq_wide.sum(axis=1), t["start_equity"])
        xs, ys = downsample_minmax(run.times, total, _MAX_POINTS)
        ax.fill_between(_t(xs), ys, 0, color=TOTAL_COLOR, alpha=0.07, linewidth=0)
        ax.plot(_t(xs), ys, color=TOTAL_COLOR, linewidth=1.6, label=f"total (max {t['max_drawdown_pct']:.2f} %)")
    _style(ax, "Drawdown from the running peak", "drawdown (%)")
    ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:.0f} %")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.savefig(path)
    return path


def _phases(run: RunOutput, path: Path) -> Path:
    fig = _new(13.0, 1.6 + 0.6 * len(run.wallets))
    ax = fig.add_subplot()
    segs = phase_segments(run.fills, run.end_ms, int(run.times[0]))
    seen: dict[str, str] = {}
    for row, w in enumerate(run.wallets[::-1]):
        g = segs[segs["wallet"] == w]
        if not len(g):
            continue
        start = mdates.date2num(_t(g["start_ms"]))
        width = mdates.date2num(_t(g["end_ms"])) - start
        cols = [phase_color(p) for p in g["phase"]]
        ax.broken_barh(list(zip(start, width, strict=True)), (row - 0.3, 0.6), facecolors=cols, linewidth=0)
        seen.update({p: phase_color(p) for p in g["phase"]})
    ax.set_yticks(range(len(run.wallets)), run.wallets[::-1])
    ax.set_ylim(-0.6, len(run.wallets) - 0.4)
    ax.xaxis_date()
    _style(ax, "Phase timeline (phase after each fill, until the next fill)", "")
    ax.grid(False, axis="y")
    ax.legend(handles=[Patch(color=seen[p], label=p) for p in phase_order(seen)], loc="upper left",
              bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.savefig(path)
    return path


def _hedge(run: RunOutput, colors: dict[str, str], path: Path) -> Path | None:
    wallets = run.hedge_wallets
    if not wallets:
        return None
    fig = _new(13.0, 8.0)
    top, bottom = fig.subplots(2, 1, sharex=True)
    eq = run.equity
    handles = []
    for w in wallets:
        g = eq[eq["wallet"] == w]
        _plot_line(top, g["ts"], g["hedge_ratio"], color=colors[w], linewidth=1.2, label=f"{w} hedge ratio")
        for col, ls, lw in (("hedged_equity", "-", 1.8), ("unhedged_equity", ":", 1.2), ("spot_equity", "--", 1.0)):
            if col in g and g[col].notna().any():
                _plot_line(bottom, g["ts"], g[col], color=colors[w], linestyle=ls, linewidth=lw,
                           label=f"{w} {col.replace('_', ' ')}")
        handles.append(Line2D([], [], color=colors[w], label=w))
    _style(top, "Hedge ratio |futures| / spot", "hedge ratio")
    _style(bottom, "Hedged (spot + futures) vs unhedged spot equity", "equity (USD)")
    bottom.yaxis.set_major_formatter(lambda v, _pos: f"{v:,.0f}")
    for ax in (top, bottom):
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.savefig(path)
    return path


def write_pngs(out_dir: str | Path, run: RunOutput | None = None) -> list[Path]:
    """Write the static charts of an output folder into it (``run``: the folder as
    ``load_output`` read it, when the caller has it); returns the files written."""
    run = run if run is not None else load_output(out_dir)
    folder = Path(out_dir)
    colors = wallet_colors(run.wallets)
    paths = [
        _price(run, colors, folder / "price.png"),
        _equity(run, colors, folder / "equity.png"),
        _drawdown(run, colors, folder / "drawdown.png"),
        _phases(run, folder / "phases.png"),
    ]
    hedge = _hedge(run, colors, folder / "hedge.png")
    if hedge is not None:
        paths.append(hedge)
    return paths
