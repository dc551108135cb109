"""An output folder read for the report: equity.csv a chunk of rows at a time, the same frames,
metrics and page as read whole; errors in a later chunk still name their row and line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hedgekit.report import html
from hedgekit.report.html import ReportError, _check_utf8, build_report, load_output
from tests.report._fixture import STEP_MS, T0_MS, write_output

WHOLE = 1 << 30  # rows: equity.csv in one chunk


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    # Long, hedge and grid wallets: the hedge columns are blank on two rows of three.
    return write_output(tmp_path_factory.mktemp("reading") / "out", bars=1500, grid=True)


def read(folder, monkeypatch, chunk_rows: int):
    monkeypatch.setattr(html, "EQUITY_CHUNK_ROWS", chunk_rows)
    return load_output(folder)


def test_equity_read_in_chunks_is_the_same_run(folder, monkeypatch):
    whole = read(folder, monkeypatch, WHOLE)
    chunked = read(folder, monkeypatch, 7)  # 4500 rows: 643 chunks, the last of six rows

    pd.testing.assert_frame_equal(chunked.equity, whole.equity, check_exact=True)
    pd.testing.assert_frame_equal(chunked.eq_wide, whole.eq_wide, check_exact=True)
    assert chunked.price.tobytes() == whole.price.tobytes()
    assert chunked.metrics == whole.metrics
    assert chunked.hedge_wallets == whole.hedge_wallets == ["grid"]


def test_report_of_equity_read_in_chunks_is_the_same_page(folder, monkeypatch):
    monkeypatch.setattr(html, "EQUITY_CHUNK_ROWS", WHOLE)
    whole = build_report(folder).read_bytes()
    monkeypatch.setattr(html, "EQUITY_CHUNK_ROWS", 7)

    assert build_report(folder).read_bytes() == whole


def test_equity_keeps_the_times_as_epoch_ms_only(folder, monkeypatch):
    run = read(folder, monkeypatch, 7)

    assert "timestamp" not in run.equity
    assert run.equity["ts"].tolist() == np.repeat(T0_MS + np.arange(1500) * STEP_MS, 3).tolist()


def edit_line(folder, tmp_path, line_no: int, column: int, value: str):
    out = tmp_path / "edited"
    out.mkdir()
    for f in folder.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    lines = (out / "equity.csv").read_text().split("\n")
    cells = lines[line_no - 1].split(",")
    cells[column] = value
    lines[line_no - 1] = ",".join(cells)
    (out / "equity.csv").write_text("\n".join(lines))
    return out


@pytest.mark.parametrize(("column", "value", "problem"), [
    (2, "12.5x", "column equity: '12.5x' is not a number"),
    (0, "yesterday", "column timestamp: 'yesterday' is not an ISO-8601 time"),
    (6, "12.5x", "column hedged_equity: '12.5x' is not a number"),
])
def test_a_bad_cell_in_a_later_chunk_names_its_row_and_line(folder, tmp_path, monkeypatch, column, value, problem):
    edited = edit_line(folder, tmp_path, 1000, column, value)  # data row 999: chunk 143 of 7 rows

    with pytest.raises(ReportError) as err:
        read(edited, monkeypatch, 7)

    assert f"{edited / 'equity.csv'}: data row 999 (line 1000), {problem}" in str(err.value)


def test_utf8_read_a_block_at_a_time(tmp_path):
    path = tmp_path / "equity.csv"
    text = "timestamp,wallet\n" + "".join(f"2025-01-01T00:00:00.000Z,h\u00e9dge-{i}\n" for i in range(50))
    path.write_bytes(text.encode("utf-8"))
    _check_utf8(path, block=5)  # "é" (2 bytes) split across blocks is read as one character

    path.write_bytes(text.encode("utf-8") + b"2025-01-01T00:00:00.000Z,\xe9\n")
    with pytest.raises(ReportError, match=r"line 52: byte 0xe9 is not UTF-8 text"):
        _check_utf8(path, block=5)

    path.write_bytes(b"a,b\n12345\xe3A\n")  # the bad character starts in one block, ends in the next
    with pytest.raises(ReportError, match=r"line 2: byte 0xe3 is not UTF-8 text"):
        _check_utf8(path, block=5)
