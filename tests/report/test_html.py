"""report.html: self-contained, every fill present, lines downsampled, hedge charts optional."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from hedgekit.report.html import (
    CHART_IDS,
    CYCLE_CHART_IDS,
    HEDGE_CHART_IDS,
    MAX_LINE_POINTS,
    ReportError,
    build_report,
    downsample_minmax,
    load_output,
    unit_levels,
)
from hedgekit.report.metrics import to_epoch_ms
from tests.report._fixture import figures, fill_points, write_output


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    folder = write_output(tmp_path_factory.mktemp("small") / "out", bars=3000, fills_per_wallet=60)
    return folder, build_report(folder)


def expected_points(folder) -> dict[str, Counter]:
    fills = pd.read_csv(folder / "fills.csv")
    xs = to_epoch_ms(fills["timestamp"]).astype(float)
    out: dict[str, Counter] = {}
    for kind, x, y in zip(fills["kind"], xs, fills["price"].astype(float), strict=True):
        out.setdefault(kind, Counter())[(x, y)] += 1
    return out


def test_report_is_written_next_to_the_data(small_report):
    folder, path = small_report

    assert path == folder / "report.html"
    assert path.stat().st_size > 1_000_000  # plotly.js is inside


def test_report_is_self_contained(small_report):
    text = small_report[1].read_text()

    assert "plotly.js v" in text  # the library itself is embedded
    head, rest = text.split("<script>", 1)
    page = head + rest.split("</script>", 1)[1]  # the page without the library's source
    assert "<script src=" not in page and "<link" not in page
    assert "http://" not in page and "https://" not in page


def test_every_chart_has_a_stable_div_and_a_figure(small_report):
    text = small_report[1].read_text()
    figs = figures(text)

    for cid in CHART_IDS:
        assert f'<div id="{cid}" class="chart">' in text
        assert figs[cid]["data"], cid
    for cid in HEDGE_CHART_IDS:  # no grid-hedge columns in this folder
        assert cid not in figs and f'id="{cid}"' not in text


def test_every_fill_is_marked_with_its_kind(small_report):
    folder, path = small_report
    got = fill_points(figures(path.read_text())["chart-price"])
    want = expected_points(folder)

    assert set(got) == set(want)
    for kind, pts in want.items():
        assert Counter(got[kind]) == pts, kind


def test_fill_kinds_have_distinct_markers(small_report):
    fig = figures(small_report[1].read_text())["chart-price"]
    styles: dict[str, set] = {}
    outlines: dict[str, set] = {}
    for tr in fig["data"]:
        meta = tr.get("meta") or {}
        if meta.get("role") == "fills":
            styles.setdefault(meta["kind"], set()).add((tr["marker"]["symbol"], tr["marker"]["color"]))
            outlines.setdefault(meta["wallet"], set()).add(tr["marker"]["line"]["color"])

    assert all(len(v) == 1 for v in styles.values())  # one look per kind, whatever the wallet
    assert len({next(iter(v)) for v in styles.values()}) == len(styles) >= 5
    assert all(len(v) == 1 for v in outlines.values())  # outline colour = the wallet's colour
    assert len({next(iter(v)) for v in outlines.values()}) == len(outlines) == 2


def test_metrics_table_and_config_are_on_the_page(small_report):
    text = small_report[1].read_text()

    assert 'id="metrics-table"' in text and "Sharpe" in text and "buy &amp; hold" in text
    assert 'id="phase-table"' in text
    assert "tick_size: 0.1" in text  # the config, as YAML
    assert "ab" * 32 in text  # data sha256
    for wallet in ("long", "hedge", "total"):
        assert f"</span>{wallet}</th>" in text


def test_where_the_money_went_is_on_the_page(small_report):
    # This folder has no cycles.csv: the cycles are recomputed from fills.csv.
    text = small_report[1].read_text()
    figs = figures(text)

    assert 'id="where-the-money-went"' in text and 'id="money-table"' in text
    assert "recomputed from fills.csv" in text
    for cid in CYCLE_CHART_IDS:
        assert f'<div id="{cid}" class="chart">' in text
        assert figs[cid]["data"], cid
        assert all(ax.get("type") != "date" for k, ax in figs[cid]["layout"].items() if k.startswith("xaxis"))
    assert {tr["meta"]["wallet"] for tr in figs["chart-money"]["data"]} == {"long", "hedge"}


def test_grid_hedge_money_is_one_row_and_says_so(tmp_path):
    folder = write_output(tmp_path / "out", bars=600, grid=True, fills_per_wallet=20)

    run = load_output(folder)
    text = build_report(folder).read_text()

    assert (run.cycles["wallet"] == "grid").sum() == 1
    assert "grid: a grid hedge has no RESET cycles" in text


def test_malformed_cycles_csv_is_reported(tmp_path):
    folder = write_output(tmp_path / "out", bars=100)
    pd.DataFrame({"wallet": ["long"], "cycle": [0]}).to_csv(folder / "cycles.csv", index=False)

    with pytest.raises(ReportError, match=r"cycles\.csv: missing column\(s\) strategy"):
        build_report(folder)


def test_unit_levels_follow_each_grid(small_report):
    folder, _ = small_report
    run = load_output(folder)

    lv = unit_levels(run)

    # 3 grids per wallet, levels -4..-1 and 1..4 each, ending where the next grid starts.
    for _wallet, g in lv.groupby("wallet"):
        assert len(g) == 3 * 8
        spans = sorted(set(zip(g["start_ms"], g["end_ms"], strict=True)))
        assert len(spans) == 3
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
        assert spans[-1][1] == run.end_ms


def test_hedge_charts_appear_with_the_hedge_columns(tmp_path):
    folder = write_output(tmp_path / "out", bars=1500, grid=True, fills_per_wallet=30)

    text = build_report(folder).read_text()
    figs = figures(text)

    for cid in HEDGE_CHART_IDS:
        assert f'<div id="{cid}" class="chart">' in text
        assert figs[cid]["data"]
    names = {tr["name"] for tr in figs["chart-hedge-equity"]["data"]}
    assert {"grid hedged equity", "grid unhedged equity"} <= names
    assert "avg_hedge_ratio" in text  # summary's hedge block


def test_large_run_is_downsampled_but_keeps_every_fill(tmp_path):
    bars = 200_000
    folder = write_output(tmp_path / "big", bars=bars, wallets=("long",), grid=True, fills_per_wallet=4000,
                          cycles=40)
    eq = pd.read_csv(folder / "equity.csv")
    price = eq.groupby("timestamp")["price"].last()

    text = build_report(folder).read_text()
    figs = figures(text)

    got = fill_points(figs["chart-price"])
    want = expected_points(folder)
    assert {k: Counter(v) for k, v in got.items()} == want
    assert sum(len(v) for v in got.values()) == 2 * 4001
    for cid, fig in figs.items():
        for tr in fig["data"]:
            if (tr.get("meta") or {}).get("role") == "line":
                assert len(tr["y"]) <= MAX_LINE_POINTS, (cid, tr["name"])
    line = next(tr for tr in figs["chart-price"]["data"] if tr["meta"]["role"] == "line")
    assert line["meta"]["points"] == bars
    assert np.max(line["y"]) == price.max() and np.min(line["y"]) == price.min()
    assert len(text) < 12_000_000


def test_downsample_keeps_extremes_ends_and_order():
    rng = np.random.default_rng(1)
    y = rng.normal(size=100_003).cumsum()
    x = np.arange(y.size)

    xs, ys = downsample_minmax(x, y, 1000)

    assert len(xs) <= 1000
    assert xs[0] == 0 and xs[-1] == y.size - 1
    assert np.all(np.diff(xs) > 0)
    assert ys.max() == y.max() and ys.min() == y.min()
    assert np.array_equal(ys, y[xs])


def test_downsample_leaves_short_lines_alone_and_drops_nan():
    x = np.arange(5)
    assert downsample_minmax(x, np.arange(5.0))[1].tolist() == [0, 1, 2, 3, 4]
    assert downsample_minmax(x, np.array([1.0, np.nan, 3.0, 4.0, 5.0]))[0].tolist() == [0, 2, 3, 4]


def test_missing_file_names_the_path_and_the_fix(tmp_path):
    folder = write_output(tmp_path / "out", bars=100)
    (folder / "fills.csv").unlink()

    with pytest.raises(ReportError, match=r"fills\.csv: file not found.*hedgekit backtest --out"):
        build_report(folder)


def test_missing_column_is_reported(tmp_path):
    folder = write_output(tmp_path / "out", bars=100)
    eq = pd.read_csv(folder / "equity.csv").drop(columns="price")
    eq.to_csv(folder / "equity.csv", index=False)

    with pytest.raises(ReportError, match=r"equity\.csv: missing column\(s\) price"):
        build_report(folder)


def test_text_from_the_folder_cannot_break_out_of_the_page(tmp_path):
    folder = write_output(tmp_path / "out", bars=200)
    summary = json.loads((folder / "summary.json").read_text())
    summary["data"]["file"] = "/tmp/</script><script>alert(1)</script>.csv"
    summary["config"]["note"] = "</script><b>x</b>"
    (folder / "summary.json").write_text(json.dumps(summary))

    text = build_report(folder).read_text()

    assert "<script>alert(1)" not in text and "<b>x</b>" not in text
    assert set(figures(text)) >= set(CHART_IDS)


def test_orders_csv_is_optional(tmp_path):
    folder = write_output(tmp_path / "out", bars=300)
    (folder / "orders.csv").unlink()

    figs = figures(build_report(folder).read_text())

    assert any((tr.get("meta") or {}).get("role") == "levels" for tr in figs["chart-price"]["data"])
