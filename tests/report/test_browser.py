"""report.html in a real browser: headless Debian chromium driven by Playwright.

Fails (does not skip) when /usr/bin/chromium is missing: `make test` installs it. Set
HEDGEKIT_SKIP_BROWSER=1 to skip these tests on purpose. Playwright never downloads a browser
here: it launches the system chromium with a fresh profile.
"""

from __future__ import annotations

import io
import os
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hedgekit.report.html import CHART_IDS, CYCLE_CHART_IDS, HEDGE_CHART_IDS, build_report
from tests.report._fixture import write_output

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("HEDGEKIT_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_browser() -> None:
    """Called first in each test body, so that a missing browser is a test failure (not a setup
    error, not a silent skip)."""
    if os.environ.get("HEDGEKIT_SKIP_BROWSER") == "1":
        pytest.skip("HEDGEKIT_SKIP_BROWSER=1")
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: the browser tests need Debian's chromium. Run `make test` "
                    "(it installs it), or `apt-get install -y chromium`; set HEDGEKIT_SKIP_BROWSER=1 "
                    "to skip them on purpose.", pytrace=False)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("the `playwright` package is missing: run `make test` (installs the dev extras) "
                    "or `.venv/bin/pip install playwright`", pytrace=False)


@contextmanager
def chromium(profile: Path):
    """A fresh headless chromium context on its own profile directory."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield ctx
        finally:
            ctx.close()


def load_page(ctx, path: Path):
    """Open a report, collecting console errors and page errors."""
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto(path.as_uri(), wait_until="load")
    return page, errors


def pixels(png: bytes) -> tuple[float, float]:
    """(share of pixels that are not near-white, share that are clearly coloured): axes, text and
    grid are grey, so coloured pixels mean traces were drawn."""
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    ink = float(np.mean(img.min(axis=2) < 235))
    colour = float(np.mean(img.max(axis=2) - img.min(axis=2) > 60))
    return ink, colour


CHART_STATE = """(id) => {
  const gd = document.getElementById(id);
  if (!gd || !gd.data) return null;
  const svg = gd.querySelector('.main-svg');
  return {
    traces: gd.data.length,
    svg: !!svg && svg.getBoundingClientRect().height > 100,
    drawn: gd.querySelectorAll('.scatterlayer .trace, .barlayer .trace, .waterfalllayer .trace').length
           + gd.querySelectorAll('.gl-container canvas').length,
    markers: gd.querySelectorAll('.scatterlayer .trace .points path').length,
    lines: gd.querySelectorAll('.scatterlayer .trace .js-line').length,
  };
}"""


def test_report_renders_in_chromium_without_errors(tmp_path):
    require_browser()
    folder = write_output(tmp_path / "out", bars=20_000, grid=True, fills_per_wallet=150, cycles=6)
    path = build_report(folder)
    n_fills = len(pd.read_csv(folder / "fills.csv"))
    with chromium(tmp_path / "profile") as ctx:
        page, errors = load_page(ctx, path)
        for cid in (*CHART_IDS, *HEDGE_CHART_IDS, *CYCLE_CHART_IDS):
            page.wait_for_selector(f"#{cid} .main-svg", timeout=20_000)
        page.wait_for_timeout(300)

        for cid in (*CHART_IDS, *HEDGE_CHART_IDS, *CYCLE_CHART_IDS):
            state = page.evaluate(CHART_STATE, cid)
            assert state is not None, f"{cid}: no plotly figure"
            assert state["svg"] and state["traces"] > 0 and state["drawn"] > 0, (cid, state)
            ink, colour = pixels(page.locator(f"#{cid}").screenshot())
            assert ink > 0.01 and colour > 0.002, f"{cid} rendered blank ({ink=:.4f}, {colour=:.4f})"
        price = page.evaluate(CHART_STATE, "chart-price")
        assert price["markers"] == n_fills  # one SVG marker per fill
        assert page.evaluate(CHART_STATE, "chart-equity")["lines"] >= 3

        full = page.screenshot(full_page=True)
        (folder / "screenshot.png").write_bytes(full)
        assert pixels(full)[0] > 0.05
        assert page.locator("#metrics-table tbody tr").count() > 20

        # Zooming one chart zooms the others (shared time axis).
        lo, hi = "2025-01-03 00:00", "2025-01-05 00:00"
        page.evaluate("([lo, hi]) => Plotly.relayout('chart-price', {'xaxis.range': [lo, hi]})", [lo, hi])
        page.wait_for_timeout(500)
        for cid in ("chart-equity", "chart-phases", "chart-hedge-ratio"):
            rng = page.evaluate("(id) => document.getElementById(id).layout.xaxis.range", cid)
            assert [str(v)[:16] for v in rng] == [lo, hi], cid
        for cid in CYCLE_CHART_IDS:  # categories, not time: left alone
            rng = page.evaluate("(id) => document.getElementById(id)._fullLayout.xaxis.range", cid)
            assert all(isinstance(v, int | float) and v < 1e6 for v in rng), (cid, rng)
        assert errors == []


def test_large_report_stays_responsive(tmp_path):
    # 200k bars, 11,000 fills: lines downsampled, every fill drawn (the long wallet's two kinds,
    # 3,500 fills each, with WebGL).
    require_browser()
    folder = write_output(tmp_path / "big", bars=200_000, wallets=("long",), grid=True,
                          fills_per_wallet=7000, grid_fills=4000, cycles=40)
    path = build_report(folder)
    with chromium(tmp_path / "profile") as ctx:
        t0 = time.perf_counter()
        page, errors = load_page(ctx, path)
        for cid in CHART_IDS:
            page.wait_for_selector(f"#{cid} .main-svg", timeout=30_000)
        elapsed = time.perf_counter() - t0
        page.wait_for_timeout(300)

        points = page.evaluate("""() => document.getElementById('chart-price')._fullData
            .filter(t => t.meta && t.meta.role === 'fills')
            .reduce((n, t) => n + t.x.length, 0)""")
        assert points == len(pd.read_csv(folder / "fills.csv")) == 7001 + 4001
        assert page.evaluate("() => document.querySelectorAll('#chart-price .gl-container canvas').length") > 0
        ink, colour = pixels(page.locator("#chart-price").screenshot())
        assert ink > 0.01 and colour > 0.002
        assert elapsed < 20, f"page took {elapsed:.1f}s to draw"
        assert errors == []
