"""report.html's page: the tables of figures, the notes and the HTML around the charts."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
import yaml

from hedgekit.report.figures import MONEY_COLORS, MONEY_STEPS, _short_ts, money_totals
from hedgekit.report.style import TOTAL_COLOR, phase_color, phase_order

if TYPE_CHECKING:
    from hedgekit.report.html import RunOutput

__all__ = ["page_head", "render_page"]


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


def render_page(run: RunOutput, figs: dict[str, tuple[str, go.Figure]],
                money: dict[str, tuple[str, go.Figure]], colors: dict[str, str]) -> str:
    """The whole of report.html: ``figs`` are the time charts, ``money`` "where the money went"."""
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
    return f"""{page_head(title)}
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
