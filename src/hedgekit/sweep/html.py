"""``sweep.html``: a self-contained page (plotly.js embedded, opens offline) built from a sweep
or optimize output folder (``results.parquet`` and ``sweep.json``).

Charts (each a ``<div>`` with a stable id, its figure as JSON in ``<id>-data``, like
``report.html``): ``chart-heatmap-return`` and ``chart-heatmap-drawdown`` over two chosen
params (others averaged; a param with many values is binned), ``chart-pareto`` (return against
max drawdown, the Pareto front drawn), and ``chart-windows`` (optimize: in-sample against
out-of-sample return per walk-forward window) or ``chart-datasets`` (sweep: the top settings
on each data set). The table ``#top-table`` lists the top settings with the `hedgekit
backtest` command line that runs each as a full backtest.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hedgekit.core.errors import HedgekitError
from hedgekit.report.page import _PLOTLY_CONFIG, _fig_json, page_head
from hedgekit.sweep.results import backtest_command, read_results

__all__ = ["SWEEP_CHART_IDS", "build_sweep_report", "pareto_mask"]

SWEEP_CHART_IDS = ("chart-heatmap-return", "chart-heatmap-drawdown", "chart-pareto")
TOP = 10
MAX_CELLS = 12  # a param with more distinct values is binned on the heatmap
_FONT = "Inter, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif"
_EXTRA_CSS = """
table.metrics td.cmd{text-align:left;white-space:normal;max-width:760px}
table.metrics td.cmd code{user-select:all;overflow-wrap:anywhere}
button.copy{font-size:11px;margin-left:6px;cursor:pointer}
.headline{font-size:15px;margin:6px 0 0}
"""
_COPY_JS = """
document.querySelectorAll('button.copy').forEach(function (b) {
  b.addEventListener('click', function () {
    var text = b.parentNode.querySelector('code').textContent;
    var done = function () { b.textContent = 'copied'; };
    if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, function () {});
  });
});
"""


def pareto_mask(ret: np.ndarray, dd: np.ndarray) -> np.ndarray:
    """True for the points no other point beats on both return (higher) and drawdown (lower)."""
    ret, dd = np.asarray(ret, float), np.asarray(dd, float)
    keep = np.zeros(ret.size, dtype=bool)
    order = np.lexsort((-ret, dd))  # by drawdown, then by return (best first)
    best = -math.inf
    for i in order:
        if ret[i] > best and np.isfinite(ret[i]) and np.isfinite(dd[i]):
            keep[i] = True
            best = ret[i]
    return keep


def _layout(fig: go.Figure, height: int, x_title: str, y_title: str) -> None:
    fig.update_layout(
        template="plotly_white", height=height, margin={"l": 90, "r": 40, "t": 20, "b": 60},
        font={"family": _FONT, "size": 12, "color": "#1f2937"}, hoverlabel={"namelength": -1},
        xaxis={"title": {"text": x_title}}, yaxis={"title": {"text": y_title}},
        legend={"orientation": "h", "y": -0.2},
    )


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return format(float(v), ".6g")
    return str(v)


def _axis(values: pd.Series) -> tuple[pd.Series, list]:
    """Heatmap labels of one param: its values, or bins when it has many."""
    distinct = pd.unique(values.dropna())
    numeric = pd.api.types.is_numeric_dtype(values)
    if len(distinct) <= MAX_CELLS or not numeric:
        order = sorted(distinct, key=lambda v: (not isinstance(v, int | float | np.number), v))
        labels = [_fmt(v) for v in order]
        return values.map(_fmt), labels
    v = values.astype(float)
    positive = bool((v > 0).all())
    edges = np.geomspace(v.min(), v.max(), 11) if positive and v.max() / v.min() > 20 else np.linspace(v.min(), v.max(), 11)
    mids = [_fmt(float(f"{(a + b) / 2:.3g}")) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    idx = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, 9)
    return pd.Series([mids[i] for i in idx], index=values.index), list(dict.fromkeys(mids))


def heatmap_figure(df: pd.DataFrame, x: str, y: str | None, metric: str, label: str, reverse: bool) -> go.Figure:
    data = df[df[metric].notna()].copy()
    data["_x"], xs = _axis(data[x])
    if y is not None:
        data["_y"], ys = _axis(data[y])
    else:
        data["_y"], ys = "all", ["all"]
    table = data.groupby(["_y", "_x"])[metric].mean().unstack("_x").reindex(index=ys, columns=xs)
    count = data.groupby(["_y", "_x"])[metric].size().unstack("_x").reindex(index=ys, columns=xs)
    z = table.to_numpy(dtype=float)
    text = [[("" if np.isnan(v) else f"{v:.2f}") for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=[[None if np.isnan(v) else float(v) for v in row] for row in z], x=xs, y=ys, text=text, texttemplate="%{text}",
        colorscale="RdYlGn_r" if reverse else "RdYlGn", colorbar={"title": {"text": label}},
        customdata=count.fillna(0).astype(int).to_numpy().tolist(), xgap=1, ygap=1,
        hovertemplate=f"{html.escape(x)}=%{{x}}<br>{html.escape(y or '')}=%{{y}}<br>{label}: %{{z:.2f}}"
                      "<br>mean of %{customdata} row(s)<extra></extra>",
        zmid=0 if not reverse and np.nanmin(z, initial=0) < 0 < np.nanmax(z, initial=0) else None,
    ))
    _layout(fig, 420, x, y or "")
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return fig


def pareto_figure(points: pd.DataFrame, hover: list[str], color_by: str | None = None) -> go.Figure:
    fig = go.Figure()
    ok = points[points["return_pct"].notna() & points["max_drawdown_pct"].notna()]
    text: Any = ok[hover].apply(lambda r: "<br>".join(f"{k}={_fmt(v)}" for k, v in r.items()), axis=1) if len(ok) else []
    groups = [(None, ok)] if color_by is None else list(ok.groupby(color_by))
    for name, g in groups:
        fig.add_trace(go.Scatter(
            x=g["max_drawdown_pct"], y=g["return_pct"], mode="markers",
            name="trials" if name is None else f"{color_by} {str(name)}",
            marker={"size": 9, "opacity": 0.75}, text=list(text[g.index]) if len(g) else [],
            hovertemplate="DD %{x:.2f} %, return %{y:.2f} %<br>%{text}<extra></extra>"))
    mask = pareto_mask(ok["return_pct"].to_numpy(), ok["max_drawdown_pct"].to_numpy()) if len(ok) else np.array([], bool)
    front = ok[mask].sort_values("max_drawdown_pct")
    fig.add_trace(go.Scatter(
        x=front["max_drawdown_pct"], y=front["return_pct"], mode="lines+markers", name="Pareto front",
        line={"color": "#111827", "width": 2, "shape": "hv"}, marker={"size": 10, "symbol": "diamond", "color": "#dc2626"},
        text=list(text[front.index]) if len(front) else [],
        hovertemplate="Pareto: DD %{x:.2f} %, return %{y:.2f} %<br>%{text}<extra></extra>"))
    _layout(fig, 460, "max drawdown % (lower is better)", "return % (higher is better)")
    return fig


def windows_figure(meta: dict) -> go.Figure:
    wins = [w for w in meta.get("windows_result") or [] if "in_sample" in w]
    labels = [f"w{w['window'] + 1}: test {w['test_start'][:10]} → {w['test_end'][:10]}" for w in wins]
    fig = go.Figure()
    for key, name, color in (("in_sample", "in-sample (train)", "#94a3b8"), ("out_of_sample", "out-of-sample (test)", "#2563eb")):
        fig.add_trace(go.Bar(x=labels, y=[w[key].get("return_pct") for w in wins], name=name, marker_color=color,
                             hovertemplate=f"{name}<br>%{{x}}<br>return %{{y:.2f}} %<extra></extra>"))
        fig.add_trace(go.Scatter(x=labels, y=[w[key].get("max_drawdown_pct") for w in wins], mode="markers",
                                 name=f"max DD {name}", marker={"symbol": "line-ew-open", "size": 26, "color": color,
                                                                "line": {"width": 3, "color": color}},
                                 hovertemplate=f"max DD {name}: %{{y:.2f}} %<extra></extra>"))
    _layout(fig, 420, "walk-forward window (selected setting)", "%")
    fig.update_layout(barmode="group")
    return fig


def datasets_figure(by_trial: pd.DataFrame, df: pd.DataFrame, params: list[str]) -> go.Figure:
    top = by_trial.head(TOP)
    fig = go.Figure()
    labels = {t: f"#{t} " + ", ".join(f"{p.split('.')[-1]}={_fmt(r[p])}" for p in params) for t, r in top.iterrows()}
    for ds, g in df[df["trial"].isin(top.index)].groupby("dataset", sort=False):
        g = g.set_index("trial").reindex(top.index)
        fig.add_trace(go.Bar(x=[labels[t] for t in top.index], y=g["return_pct"], name=str(ds),
                             hovertemplate=f"{html.escape(str(ds))}<br>%{{x}}<br>return %{{y:.2f}} %<extra></extra>"))
    _layout(fig, 420, "top settings (by mean return)", "return %")
    fig.update_layout(barmode="group")
    return fig


def _cmd_cell(cmd: str) -> str:
    return f'<td class="cmd"><code>{html.escape(cmd)}</code><button class="copy" type="button">copy</button></td>'


def _num(v: Any, fmt: str = "+.2f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(float(v), fmt)


def _sweep_table(by_trial: pd.DataFrame, meta: dict, params: list[str], n_datasets: int) -> str:
    head = "".join(f"<th>{html.escape(p)}</th>" for p in params)
    extra = "<th>worst data set %</th>" if n_datasets > 1 else ""
    rows = []
    for t, r in by_trial.head(TOP).iterrows():
        point = {p: _plain(r[p]) for p in params}
        cmd = backtest_command(meta, point, 0)
        cells = "".join(f"<td>{html.escape(_fmt(point[p]))}</td>" for p in params)
        worst = f"<td>{_num(r['worst_return_pct'])}</td>" if n_datasets > 1 else ""
        rows.append(f"<tr><th>#{t}</th>{cells}<td>{_num(r['return_pct'])}</td><td>{_num(r['max_drawdown_pct'], '.2f')}</td>"
                    f"{worst}<td>{_num(r['sharpe'], '.2f')}</td><td>{_num(r['fees'], ',.2f')}</td>{_cmd_cell(cmd)}</tr>")
    return (f'<table class="metrics" id="top-table"><thead><tr><th>trial</th>{head}<th>return %</th><th>max DD %</th>'
            f'{extra}<th>Sharpe</th><th>fees</th><th>full backtest (first data set)</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def _windows_table(meta: dict, params: list[str]) -> str:
    head = "".join(f"<th>{html.escape(p)}</th>" for p in params)
    rows = []
    for w in meta.get("windows_result") or []:
        if "in_sample" not in w:
            rows.append(f"<tr><th>w{w['window'] + 1}</th><td colspan='{len(params) + 5}'>no finished trial</td></tr>")
            continue
        cells = "".join(f"<td>{html.escape(_fmt(w['params'].get(p)))}</td>" for p in params)
        cmd = backtest_command(meta, w["params"], 0, w["test_start"], w["test_end"])
        i, o = w["in_sample"], w["out_of_sample"]
        rows.append(f"<tr><th>w{w['window'] + 1} <small>{html.escape(w['test_start'][:10])} → "
                    f"{html.escape(w['test_end'][:10])}</small></th>{cells}<td>{_num(i.get('return_pct'))}</td>"
                    f"<td>{_num(o.get('return_pct'))}</td><td>{_num(i.get('max_drawdown_pct'), '.2f')}</td>"
                    f"<td>{_num(o.get('max_drawdown_pct'), '.2f')}</td><td>{w.get('trials', '')}</td>{_cmd_cell(cmd)}</tr>")
    return (f'<table class="metrics" id="top-table"><thead><tr><th>window</th>{head}<th>return % in</th>'
            f'<th>return % out</th><th>max DD % in</th><th>max DD % out</th><th>trials</th>'
            f'<th>full backtest of the test part</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def build_sweep_report(folder: str | Path, heatmap: tuple[str, str | None] | None = None) -> Path:
    """Write ``folder/sweep.html``; ``heatmap`` picks its two params (default: the first two
    that vary, else the meta's choice)."""
    folder = Path(folder)
    df, meta = read_results(folder)
    params: list[str] = list(meta.get("params") or [])
    if not params:
        raise HedgekitError(f"{folder}/sweep.json names no params")
    optimize = meta.get("kind") == "optimize"
    ok = df[df["error"].isna()] if "error" in df else df
    part = ok[ok["part"] == "train"] if optimize else ok
    if heatmap is None and meta.get("heatmap"):
        heatmap = tuple(meta["heatmap"])
    if heatmap is None:
        varying = [p for p in params if part[p].nunique() > 1] or params
        heatmap = (varying[0], varying[1] if len(varying) > 1 else None)
    hx, hy = heatmap
    for p in (hx, hy):
        if p is not None and p not in params:
            raise HedgekitError(f"--heatmap {p}: not one of the swept params ({', '.join(params)})")
    where = "in-sample (train parts), mean over windows and the other params" if optimize else \
        "mean over the data sets and the other params"
    figs: dict[str, tuple[str, str, go.Figure]] = {
        "chart-heatmap-return": ("Return % by setting", where,
                                 heatmap_figure(part, hx, hy, "return_pct", "return %", reverse=False)),
        "chart-heatmap-drawdown": ("Max drawdown % by setting", where,
                                   heatmap_figure(part, hx, hy, "max_drawdown_pct", "max DD %", reverse=True)),
    }
    n_datasets = int(df["dataset"].nunique()) if len(df) else 0
    metrics = ["return_pct", "max_drawdown_pct", "sharpe", "fees"]
    if optimize:
        pts = part.copy()
        figs["chart-pareto"] = ("Pareto front: return against max drawdown (in-sample trials)",
                                "Every finished trial of every window's train part; the line joins the "
                                "settings no other beats on both.", pareto_figure(pts, params, color_by="window"))
        figs["chart-windows"] = ("In-sample vs out-of-sample, per walk-forward window",
                                 "The selected setting of each window (best first objective on its Pareto front): "
                                 "its figures on the train part and on the unseen test part after it.",
                                 windows_figure(meta))
        table = _windows_table(meta, params)
        by_trial = None
    else:
        grouped = part.groupby("trial")
        by_trial = grouped[params].first().join(grouped[metrics].mean())
        by_trial["worst_return_pct"] = grouped["return_pct"].min()
        by_trial = by_trial.sort_values(["return_pct", "max_drawdown_pct"], ascending=[False, True])
        figs["chart-pareto"] = ("Pareto front: return against max drawdown",
                                "One point per setting (mean over the data sets); the line joins the settings "
                                "no other beats on both.", pareto_figure(by_trial.reset_index(), ["trial", *params]))
        figs["chart-datasets"] = ("Top settings on each data set", "Return of the top settings on every data set "
                                  "(--data): a setting that only works in one regime shows here.",
                                  datasets_figure(by_trial, part, params))
        table = _sweep_table(by_trial, meta, params, n_datasets)
    errors = int(df["error"].notna().sum()) if "error" in df else 0
    title = f"hedgekit {meta.get('kind', 'sweep')} · {Path(str(meta.get('config', ''))).name}"
    headline = ""
    if optimize:
        oos = [w["out_of_sample"].get("return_pct") for w in meta.get("windows_result") or [] if "out_of_sample" in w]
        if oos and all(v is not None for v in oos):
            chained = (np.prod([1 + v / 100 for v in oos]) - 1) * 100
            headline = (f'<p class="headline" id="oos-headline">Out-of-sample return, the windows\' test parts chained: '
                        f'<b>{chained:+.2f} %</b> over {len(oos)} window(s).</p>')
    facts = [
        ("config", meta.get("config")), ("params", ", ".join(params)),
        ("data", "; ".join(f"{d['label']} ({d['bars']:,} bars)" for d in meta.get("datasets") or [])),
        ("trials", f"{meta.get('trials', '')} ({len(df)} rows, {errors} refused or failed)"),
        ("ran on", meta.get("executor")), ("took", f"{meta.get('seconds', 0):.1f} s"),
    ]
    if optimize:
        facts += [("objectives", ", ".join(meta.get("objectives") or [])),
                  ("walk-forward", f"train {meta.get('train')}, test {meta.get('test')}"),
                  ("storage", meta.get("storage")), ("studies", meta.get("study"))]
    facts_html = "".join(f"<div><dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd></div>" for k, v in facts)
    sections = "".join(
        f'<section class="card"><h2>{html.escape(h)}</h2><p class="note">{html.escape(n)}</p>'
        f'<div id="{cid}" class="chart"></div></section>' for cid, (h, n, _f) in figs.items())
    blocks = "".join(f'<script type="application/json" id="{cid}-data" data-chart="{cid}">{_fig_json(f)}</script>\n'
                     for cid, (_h, _n, f) in figs.items())
    top_title = "Selected setting per window" if optimize else f"Top {min(TOP, len(by_trial) if by_trial is not None else 0)} settings"
    page = f"""{page_head(title, _EXTRA_CSS)}
</head>
<body>
<header><h1>{html.escape(title)}</h1><p>{html.escape(str(meta.get('command', '')))}</p>{headline}</header>
<main>
<section class="card" id="run-facts"><h2>Run</h2><dl class="facts">{facts_html}</dl></section>
<section class="card" id="top"><h2>{top_title}</h2><p class="note">Each command line runs the setting as a
full backtest (fills, equity, report.html); copy it into a shell in the folder the sweep ran from.</p>
<div class="tables">{table}</div></section>
{sections}
</main>
<footer>generated by hedgekit from {html.escape(folder.name)}/ · charts by plotly.js (embedded)</footer>
{blocks}<script>
(function () {{
  var config = {json.dumps(_PLOTLY_CONFIG)};
  document.querySelectorAll('script[type="application/json"][data-chart]').forEach(function (el) {{
    var fig = JSON.parse(el.textContent);
    Plotly.newPlot(el.getAttribute('data-chart'), fig.data, fig.layout, config);
  }});
}})();
{_COPY_JS}</script>
</body>
</html>
"""
    path = folder / "sweep.html"
    path.write_text(page, encoding="utf-8")
    return path
