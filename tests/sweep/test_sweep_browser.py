"""sweep.html in headless chromium (like report.html): every chart drawn, no page errors, the top
settings table with its command lines."""

from __future__ import annotations

import pytest

from hedgekit.sweep.html import SWEEP_CHART_IDS
from tests.report.test_browser import chromium, load_page, pixels, require_browser
from tests.sweep._helpers import ACCEPTANCE, HEDGE, cli

pytestmark = pytest.mark.browser

STATE = """(id) => {
  const gd = document.getElementById(id);
  if (!gd || !gd.data) return null;
  const svg = gd.querySelector('.main-svg');
  return {
    traces: gd.data.length,
    svg: !!svg && svg.getBoundingClientRect().height > 100,
    heatmap: gd.querySelectorAll('.heatmaplayer image, .hm image').length,
    points: gd.querySelectorAll('.scatterlayer .trace .points path').length,
    bars: gd.querySelectorAll('.barlayer .point').length,
  };
}"""


def _check(page, ids) -> dict:
    states = {}
    for cid in ids:
        page.wait_for_selector(f"#{cid} .main-svg", timeout=20_000)
    page.wait_for_timeout(300)
    for cid in ids:
        st = page.evaluate(STATE, cid)
        assert st is not None and st["svg"] and st["traces"] > 0, (cid, st)
        ink, colour = pixels(page.locator(f"#{cid}").screenshot())
        # A scatter of a few markers inks little of its area; a heatmap or bars much more.
        least = 0.003 if cid == "chart-pareto" else 0.01
        assert ink > least and colour > 0.0005, f"{cid} rendered blank ({ink=:.4f}, {colour=:.4f})"
        states[cid] = st
    return states


def test_sweep_page_renders(tmp_path):
    require_browser()
    out = tmp_path / "sweep"
    cli(tmp_path, "sweep", str(HEDGE), *ACCEPTANCE, "--no-ray", "--quiet", "--out", str(out))
    with chromium(tmp_path / "profile") as ctx:
        page, errors = load_page(ctx, out / "sweep.html")
        st = _check(page, (*SWEEP_CHART_IDS, "chart-datasets"))
        assert st["chart-heatmap-return"]["heatmap"] >= 1 and st["chart-heatmap-drawdown"]["heatmap"] >= 1
        cells = page.evaluate("() => document.getElementById('chart-heatmap-return').data[0].z")
        assert len(cells) == 2 and len(cells[0]) == 4  # leverage (y) × unit (x)
        assert st["chart-pareto"]["points"] >= 8
        assert st["chart-datasets"]["bars"] == 8
        rows = page.locator("#top-table tbody tr")
        assert rows.count() == 8
        first = rows.nth(0).locator("code").inner_text()
        assert first.startswith("hedgekit backtest ") and "--param wallets.hedge.unit.value=0.05" in first
        assert errors == []


def test_optimize_page_renders(tmp_path):
    require_browser()
    out = tmp_path / "opt"
    cli(tmp_path, "optimize", str(HEDGE), "--param", "wallets.hedge.unit.value=log:0.003:0.06",
        "--param", "wallets.hedge.leverage=1:3", "--train", "14d", "--test", "7d", "--trials", "12",
        "--no-ray", "--quiet", "--out", str(out))
    with chromium(tmp_path / "profile") as ctx:
        page, errors = load_page(ctx, out / "sweep.html")
        st = _check(page, (*SWEEP_CHART_IDS, "chart-windows"))
        assert st["chart-windows"]["bars"] == 4  # in- and out-of-sample for 2 windows
        assert st["chart-pareto"]["points"] >= 24
        assert page.locator("#top-table tbody tr").count() == 2
        assert "--from" in page.locator("#top-table code").first.inner_text()
        assert "Out-of-sample return" in page.locator("#oos-headline").inner_text()
        assert errors == []
