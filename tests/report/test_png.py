"""Static PNG charts for sharing."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np

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
