"""Static PNG charts for sharing."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np

from hedgekit.report.html import build_report, load_output
from hedgekit.report.png import write_pngs
from tests.report._fixture import write_output

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_png(path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    img = mpimg.imread(path)
    assert img.shape[0] > 300 and img.shape[1] > 1000
    rgb = img[..., :3]
    assert float(np.mean(rgb.min(axis=2) < 0.9)) > 0.01, f"{path.name} looks blank"


def test_pngs_are_written_for_each_chart(tmp_path):
    folder = write_output(tmp_path / "out", bars=2000)

    paths = write_pngs(folder)

    assert [p.name for p in paths] == ["price.png", "equity.png", "drawdown.png", "phases.png"]
    for p in paths:
        assert p.parent == folder
        check_png(p)


def test_hedge_png_when_a_grid_hedge_wrote_its_columns(tmp_path):
    folder = write_output(tmp_path / "out", bars=1000, wallets=("long",), grid=True)

    paths = write_pngs(folder)

    assert paths[-1].name == "hedge.png"
    check_png(paths[-1])


def test_pngs_leave_pyplot_alone(tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    write_pngs(write_output(tmp_path / "out", bars=300))

    assert plt.get_fignums() == before


def test_page_and_pngs_from_one_read_of_the_folder_are_those_of_two_reads(tmp_path):
    # `hedgekit backtest --png` reads the folder once for both: the page must not change what
    # the PNGs are drawn from.
    folder = write_output(tmp_path / "out", bars=1000, grid=True)
    page = build_report(folder).read_bytes()
    pngs = {p.name: p.read_bytes() for p in write_pngs(folder)}

    run = load_output(folder)
    assert build_report(folder, run).read_bytes() == page
    assert {p.name: p.read_bytes() for p in write_pngs(folder, run)} == pngs
