"""Paths the user gets wrong (issue 15, item 4): an unwritable or mistaken --out, --log-dir or
journal, and `report` on hand-edited files. Each gives one line naming the path (and the row
and column where known), a non-zero exit and no traceback; an output path is checked before
the backtest runs, not after.

Tests run as root in CI, where chmod does not stop a write: a path under a regular FILE
(`afile/out`) is unwritable for everyone and stands in for a read-only folder; the chmod
variant runs only as a normal user."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from loguru import logger
from typer.testing import CliRunner

from hedgekit.cli import app
from tests.engine.test_live import busy_config, slice_csv

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(autouse=True)
def _quiet_logs():
    """The CLI points loguru at the runner's stderr, closed after each invoke."""
    yield
    logger.remove()


def invoke(tmp_path: Path, *args: str, log_dir: Path | None = None):
    res = CliRunner().invoke(app, ["--log-dir", str(log_dir or tmp_path / "logs"), *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res


def one_error(res) -> str:
    """The output is one `error:` line, no traceback; returns it."""
    assert res.exit_code != 0, res.output
    assert "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.output
    return errors[0]


@pytest.fixture
def case(tmp_path):
    """A small backtest: config, half a day of real BTC 1m bars, and a regular file."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    return busy_config(tmp_path), slice_csv(tmp_path, 0.5), afile


@pytest.fixture
def no_backtest(monkeypatch):
    """Makes running a backtest fail the test: the path checks must come first."""
    import hedgekit.engine.session as session

    def refuse(*_a, **_k):
        raise AssertionError("the backtest ran before the output path was checked")

    monkeypatch.setattr(session, "run_backtest", refuse)


def test_out_naming_an_existing_file_fails_before_the_backtest(tmp_path, case, no_backtest):
    cfg, data, afile = case
    line = one_error(invoke(tmp_path, "backtest", str(cfg), "--data", str(data), "--out", str(afile), "-q"))
    assert f"--out {afile}: is an existing file, not a folder" in line
    assert afile.read_text() == "not a folder\n"


def test_out_under_a_file_is_an_unwritable_folder(tmp_path, case, no_backtest):
    cfg, data, afile = case
    line = one_error(invoke(tmp_path, "backtest", str(cfg), "--data", str(data), "--out", str(afile / "out"), "-q"))
    assert f"--out {afile / 'out'}: cannot write there ({afile} is a file, not a folder)" in line


@pytest.mark.skipif(AS_ROOT, reason="root writes into a chmod 0o500 folder; the path-under-a-file tests cover it")
def test_out_in_a_read_only_folder(tmp_path, case, no_backtest):
    cfg, data, _ = case
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    line = one_error(invoke(tmp_path, "backtest", str(cfg), "--data", str(data), "--out", str(ro / "out"), "-q"))
    assert f"--out {ro / 'out'}: cannot write there (Permission denied)" in line


def test_log_dir_that_cannot_be_written(tmp_path, case):
    cfg, data, afile = case
    res = invoke(tmp_path, "backtest", str(cfg), "--data", str(data), "-q", log_dir=afile / "logs")
    line = one_error(res)
    assert f"--log-dir {afile / 'logs'}: cannot write log files there ({afile} is a file, not a folder)" in line


@pytest.mark.skipif(AS_ROOT, reason="root writes into a chmod 0o500 folder; the path-under-a-file test covers it")
def test_log_dir_read_only(tmp_path, case):
    cfg, data, _ = case
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    line = one_error(invoke(tmp_path, "backtest", str(cfg), "--data", str(data), "-q", log_dir=ro))
    assert f"--log-dir {ro}: cannot write log files there (Permission denied)" in line


def test_a_new_journal_where_no_file_can_be_created(tmp_path, case):
    cfg, data, afile = case
    db = afile / "j.db"
    line = one_error(invoke(tmp_path, "run", str(cfg), "--mode", "paper", "--feed", f"replay:{data}", "--db", str(db)))
    assert f"journal {db}: cannot open or create it ({afile} is a file, not a folder)" in line


def test_a_new_journal_on_a_read_only_filesystem(tmp_path, case, monkeypatch):
    """EROFS (a read-only mount) cannot be set up without privileges: the journal's file
    creation fails as it would there."""
    import hedgekit.store.backends as backends

    def read_only_fs(path):
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(backends, "_create_sqlite_file", read_only_fs)
    cfg, data, _ = case
    db = tmp_path / "ro" / "j.db"
    line = one_error(invoke(tmp_path, "run", str(cfg), "--mode", "paper", "--feed", f"replay:{data}", "--db", str(db)))
    assert f"journal {db}: cannot open or create it (Read-only file system)" in line


def test_run_out_naming_a_file_fails_before_the_run(tmp_path, case):
    cfg, data, afile = case
    db = tmp_path / "j.db"
    line = one_error(invoke(tmp_path, "run", str(cfg), "--mode", "paper", "--feed", f"replay:{data}",
                            "--db", str(db), "--out", str(afile)))
    assert f"--out {afile}: is an existing file" in line
    assert not db.exists(), "the run must not start"


# -- report on edited files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    folder = tmp / "out"
    res = CliRunner().invoke(app, ["--log-dir", str(tmp / "logs"), "backtest", str(busy_config(tmp)),
                                   "--data", str(slice_csv(tmp, 0.5)), "--out", str(folder), "-q", "--no-html"])
    assert res.exit_code == 0, res.output
    return folder


def edited(written: Path, tmp_path: Path, name: str, line_no: int, edit) -> Path:
    folder = tmp_path / "edited"
    shutil.copytree(written, folder)
    path = folder / name
    lines = path.read_bytes().split(b"\n")
    lines[line_no - 1] = edit(lines[line_no - 1])
    path.write_bytes(b"\n".join(lines))
    return folder


def cell(index: int, value: bytes):
    def edit(line: bytes) -> bytes:
        cells = line.split(b",")
        cells[index] = value
        return b",".join(cells)

    return edit


@pytest.mark.parametrize(("name", "column", "index"), [
    ("fills.csv", "price", 6), ("equity.csv", "equity", 2), ("orders.csv", "trigger_price", 7),
    ("cycles.csv", "net_pnl", -1),
])
def test_report_names_the_row_and_column_of_a_cell_that_is_not_a_number(written, tmp_path, name, column, index):
    folder = edited(written, tmp_path, name, 4, cell(index, b"12.5x"))
    line = one_error(invoke(tmp_path, "report", str(folder)))
    assert f"{folder / name}: data row 3 (line 4), column {column}:" in line and "is not a number" in line


def test_report_names_the_row_of_a_time_that_is_not_one(written, tmp_path):
    folder = edited(written, tmp_path, "fills.csv", 3, cell(0, b"yesterday"))
    line = one_error(invoke(tmp_path, "report", str(folder)))
    assert f"{folder / 'fills.csv'}: data row 2 (line 3), column timestamp: 'yesterday' is not an ISO-8601 time" in line


@pytest.mark.parametrize("name", ["fills.csv", "equity.csv", "orders.csv", "cycles.csv", "summary.json"])
def test_report_names_the_file_and_line_of_bytes_that_are_not_utf8(written, tmp_path, name):
    folder = edited(written, tmp_path, name, 2, lambda line: line + b"\xff\xfe")
    line = one_error(invoke(tmp_path, "report", str(folder)))
    assert f"{folder / name}: line 2: byte 0xff is not UTF-8 text" in line


def test_report_on_a_csv_pandas_cannot_parse(written, tmp_path):
    folder = edited(written, tmp_path, "equity.csv", 3, lambda line: b'"' + line)
    line = one_error(invoke(tmp_path, "report", str(folder)))
    assert f"{folder / 'equity.csv'}: not a readable CSV (" in line and "row 2" in line


# -- RECOMMENDATION on a replay ------------------------------------------------------------------


def test_recommendation_on_a_replay_never_contacts_the_exchange(tmp_path, case, monkeypatch):
    """API keys set, and a ccxt whose every exchange fails when built: a replay runs offline."""
    import ccxt.async_support as ccxt_async

    class Unreachable:
        def __init__(self, *_a, **_k) -> None:
            raise AssertionError("RECOMMENDATION on a replay contacted the exchange")

    monkeypatch.setattr(ccxt_async, "binanceusdm", Unreachable)
    for wallet in ("LONG", "HEDGE"):
        monkeypatch.setenv(f"HEDGEKIT_{wallet}_API_KEY", "fake-key")
        monkeypatch.setenv(f"HEDGEKIT_{wallet}_API_SECRET", "fake-secret")
    cfg, data, _ = case
    res = invoke(tmp_path, "run", str(cfg), "--mode", "recommendation", "--feed", f"replay:{data}",
                 "--db", str(tmp_path / "j.db"))
    assert res.exit_code == 0, res.output
    assert "ACCOUNT" not in res.output and "run 1" in res.output


def test_a_refused_backtest_leaves_no_empty_output_folder_behind(tmp_path, case):
    cfg, _, _ = case
    zeros = tmp_path / "zeros.csv"
    zeros.write_bytes(bytes(1000))
    out = tmp_path / "new" / "out"
    one_error(invoke(tmp_path, "backtest", str(cfg), "--data", str(zeros), "--out", str(out), "-q"))
    assert not out.exists() and not out.parent.exists()


def test_download_into_an_unwritable_folder_fails_before_any_request(tmp_path, case, monkeypatch):
    import hedgekit.feeds.download as download

    def no_request(*_a, **_k):
        raise AssertionError("the download started before its folder was checked")

    monkeypatch.setattr(download, "Downloader", no_request)
    _, _, afile = case
    line = one_error(invoke(tmp_path, "download", "--exchange", "binanceusdm", "--symbol", "BTC/USDT:USDT",
                            "--dir", str(afile / "data"), "-q"))
    assert f"--dir {afile / 'data'}: cannot write there ({afile} is a file, not a folder)" in line
