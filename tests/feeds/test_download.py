"""`hedgekit download` against a local stub of each venue's REST API serving REAL files.

The stub (``venue_stub.py``) pages like the real APIs and misbehaves on request; ccxt is pointed
at it by its URL settings, so the whole path (ccxt's requests and parsing, our paging, merging,
checks and files) runs without a network. Cost: the full month once on Binance USD-M (with the
backtest comparison), a week on each other venue, a few days for the fault tests.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hedgekit.feeds.base import Backoff
from hedgekit.feeds.datadir import data_file
from hedgekit.feeds.download import Downloader, DownloadError, make_exchange
from tests.feeds.venue_stub import (
    CANDLES_1M,
    FUNDING_8H,
    MARK_8H,
    MINUTE,
    RETRY_AFTER_S,
    Series,
    VenueStub,
    read_rows,
)

pytestmark = pytest.mark.skipif(not CANDLES_1M.is_file(), reason="../shared/data is not beside the repo")

PERP = "BTC/USDT:USDT"
SYMBOLS = {"binanceusdm": PERP, "binance": "BTC/USDT", "bybit": PERP, "hyperliquid": "BTC/USDC:USDC"}
FIRST, END = "2025-05-04T15:33:00Z", "2025-06-03T15:32:00Z"  # the whole real file
DAYS = ("2025-05-20", "2025-05-23")


@pytest.fixture(scope="module")
def server():
    with VenueStub() as stub:
        yield stub


@pytest.fixture
def stub(server: VenueStub):
    server.faults, server.die_after, server.on_request = {}, None, None
    server.retry_after = RETRY_AFTER_S
    server.data_requests, server.log = 0, []
    real = server.candles
    yield server
    server.candles = real


def downloader(stub: VenueStub, root: Path, exchange: str = "binanceusdm", *,
               sleeps: list[float] | None = None, attempts: int = 6, **kw) -> Downloader:  # fmt: skip
    symbol = SYMBOLS[exchange]
    ccxt_exchange = stub.point(make_exchange(exchange, symbol))
    return Downloader(
        exchange, symbol, root, exchange=ccxt_exchange,
        backoff=Backoff(initial=1.0, max=8.0, jitter=0.0, max_attempts=attempts),
        sleep=(sleeps.append if sleeps is not None else _no_sleep), **kw,
    )  # fmt: skip


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected backoff sleep of {seconds}s")


def original(path: Path, start: str, end: str) -> pd.DataFrame:
    frame = pd.read_feather(path)
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    lo = lo.tz_localize("UTC") if lo.tzinfo is None else lo
    hi = hi.tz_localize("UTC") if hi.tzinfo is None else hi
    return frame[(frame["date"] >= lo) & (frame["date"] < hi)].reset_index(drop=True)


def assert_same_rows(got: Path, source: Path, start: str, end: str) -> None:
    want = original(source, start, end)
    have = pd.read_feather(got)
    assert len(have) == len(want) > 0
    pd.testing.assert_frame_equal(have, want, check_exact=True)


# -- the acceptance: each venue, same rows, same fills --------------------------------------------


# Where each venue's files land (freqtrade's folder and file names).
FILES = {
    "binanceusdm": {"candles": "binance/futures/BTC_USDT_USDT-1m-futures.feather",
                    "funding": "binance/futures/BTC_USDT_USDT-8h-funding_rate.feather",
                    "mark": "binance/futures/BTC_USDT_USDT-8h-mark.feather"},
    "binance": {"candles": "binance/BTC_USDT-1m.feather"},
    "bybit": {"candles": "bybit/futures/BTC_USDT_USDT-1m-futures.feather",
              "funding": "bybit/futures/BTC_USDT_USDT-8h-funding_rate.feather"},
    "hyperliquid": {"candles": "hyperliquid/futures/BTC_USDC_USDC-1m-futures.feather",
                    "funding": "hyperliquid/futures/BTC_USDC_USDC-1h-funding_rate.feather"},
}  # fmt: skip
SOURCES = {"candles": CANDLES_1M, "funding": FUNDING_8H, "mark": MARK_8H}


def backtest_outputs(candles: Path, funding: Path, out: Path) -> list[bytes]:
    from hedgekit.cli import example_path
    from hedgekit.config import load_config
    from hedgekit.engine.session import run_backtest

    cfg = load_config(example_path("dual_wallet.yaml"))
    fc = cfg.venue.funding.model_copy(update={"file": str(funding)})
    cfg = cfg.model_copy(update={"venue": cfg.venue.model_copy(update={"funding": fc})})
    folder = run_backtest(cfg, data=str(candles)).write(out)
    return [(folder / name).read_bytes() for name in ("fills.csv", "orders.csv")]


@pytest.fixture(scope="module")
def original_backtest(tmp_path_factory) -> list[bytes]:
    outputs = backtest_outputs(CANDLES_1M, FUNDING_8H, tmp_path_factory.mktemp("original"))
    assert outputs[0].count(b"\n") > 20, "the backtest must trade for the comparison to mean anything"
    return outputs


@pytest.mark.parametrize("exchange", list(FILES))
def test_the_month_from_each_venue_is_the_served_file_row_for_row_and_backtests_the_same(
    stub, tmp_path, exchange, original_backtest
):
    seen: list[tuple[str, int, int]] = []

    result = downloader(stub, tmp_path, exchange).download(
        "1m", FIRST, END, mark=exchange != "bybit", progress=lambda *a: seen.append(a)
    )

    by_kind = {s.kind: s for s in result.series}
    assert {k: str(s.path.relative_to(tmp_path)) for k, s in by_kind.items() if not s.skipped} == FILES[exchange]
    for kind in FILES[exchange]:
        assert_same_rows(by_kind[kind].path, SOURCES[kind], FIRST, END)
    assert by_kind["candles"].gaps == ()
    candle_steps = [(done, total) for kind, done, total in seen if kind == "candles"]
    assert candle_steps[-1] == (43_199, 43_199)
    assert all(a[0] <= b[0] for a, b in zip(candle_steps, candle_steps[1:], strict=False))
    funding = by_kind["funding"].path if "funding" in FILES[exchange] else FUNDING_8H
    assert backtest_outputs(by_kind["candles"].path, funding, tmp_path / "bt") == original_backtest


def test_bybit_mark_prices_are_asked_at_its_4h_interval(stub, tmp_path):
    # The real file is 8h mark candles: the stub refuses Bybit's 4h (freqtrade's choice there).
    with pytest.raises(DownloadError, match=r"bybit BTC/USDT:USDT mark at 2025-05-20.*Invalid interval"):
        downloader(stub, tmp_path, "bybit").download("1m", *DAYS, funding=False)
    assert [p["interval"] for name, p in stub.log if name == "bybit_mark_klines"] == ["240"]


# -- incremental ----------------------------------------------------------------------------------


def test_a_second_run_fetches_only_what_lies_before_and_after_the_file(stub, tmp_path):
    dl = downloader(stub, tmp_path)
    dl.download("1m", "2025-05-11", "2025-05-12", mark=False)
    files = {"binance_klines": data_file(tmp_path, "binanceusdm", PERP, "1m"),
             "binance_funding": data_file(tmp_path, "binanceusdm", PERP, "8h", "funding")}  # fmt: skip
    held = {name: read_rows(path)[[0, -1], 0] for name, path in files.items()}
    stub.log.clear()

    dl.download("1m", "2025-05-10", "2025-05-13", mark=False)

    assert_same_rows(files["binance_klines"], CANDLES_1M, "2025-05-10", "2025-05-13")
    assert_same_rows(files["binance_funding"], FUNDING_8H, "2025-05-10", "2025-05-13")
    assert {name for name, _ in stub.log} == set(files)
    for name, params in stub.log:
        first, last = held[name]
        since, until = int(params["startTime"]), int(params["endTime"])
        assert until < first or since > last, f"asked again for what the file holds: {params}"


@pytest.mark.parametrize("exchange", ["binanceusdm", "bybit"])
def test_a_start_long_before_the_history_begins_is_skipped_cheaply_where_the_venue_allows(stub, tmp_path, exchange):
    start, end = "2025-04-01", "2025-05-06"  # the served history begins 2025-05-04 15:33

    result = downloader(stub, tmp_path, exchange).download("1m", start, end, funding=False, mark=False)

    assert_same_rows(result.series[0].path, CANDLES_1M, start, end)
    empty_windows = (pd.Timestamp("2025-05-04T15:33") - pd.Timestamp(start)) // pd.Timedelta("1000min")
    if exchange == "binanceusdm":  # one empty window, one look ahead, then the ~2 days
        assert result.requests <= 7
    else:  # Bybit is not relied on to answer a bare `start` with what follows: every window
        assert result.requests > empty_windows


def test_a_rerun_with_an_earlier_start_does_not_walk_the_empty_years_again(stub, tmp_path):
    dl = downloader(stub, tmp_path, "bybit")  # Bybit: empty windows are walked, not skipped
    dl.download("1m", "2025-05-01", "2025-05-06", funding=False, mark=False)
    before = stub.data_requests

    again = dl.download("1m", "2024-01-01", "2025-05-06", funding=False, mark=False)

    assert stub.data_requests - before == again.requests == 1, "one look at the page before the file"
    assert_same_rows(again.series[0].path, CANDLES_1M, "2025-05-01", "2025-05-06")


# -- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("exchange", ["binanceusdm", "bybit"])
@pytest.mark.parametrize("fault", ["429", "500", "drop", "short", "overlap", "shuffle"])
def test_faults_still_give_the_served_rows(stub, tmp_path, exchange, fault):
    stub.faults = {2: fault}
    sleeps: list[float] = []

    result = downloader(stub, tmp_path, exchange, sleeps=sleeps).download(
        "1m", *DAYS, funding=False, mark=False
    )

    assert_same_rows(result.series[0].path, CANDLES_1M, *DAYS)
    waits = {"429": [float(RETRY_AFTER_S)] if exchange == "binanceusdm" else [1.0], "500": [1.0],
             "drop": [1.0]}  # Binance's 429 says how long to wait (Retry-After)  # fmt: skip
    assert sleeps == waits.get(fault, []), "backoff only on errors"


def test_a_rate_limit_ban_stops_the_download_instead_of_hanging(stub, tmp_path):
    stub.faults, stub.retry_after = {1: "429"}, 3600
    with pytest.raises(DownloadError, match=r"the venue asks to wait 3600 s \(a rate-limit ban\)"):
        downloader(stub, tmp_path, sleeps=[]).download("1m", *DAYS)


def test_a_venue_that_stays_down_is_given_up_on_with_a_clear_error(stub, tmp_path):
    stub.die_after = 0
    sleeps: list[float] = []
    with pytest.raises(DownloadError, match=r"binanceusdm BTC/USDT:USDT candles at 2025-05-20.*gave up after 4 attempts.*again to resume"):
        downloader(stub, tmp_path, sleeps=sleeps, attempts=4).download("1m", *DAYS)
    assert sleeps == [1.0, 2.0, 4.0], "exponential backoff between attempts"
    assert not list(tmp_path.rglob("*.feather")) and not list(tmp_path.rglob("*.part"))


def test_a_download_killed_at_a_random_page_resumes_to_the_same_file_then_fetches_nothing(stub, tmp_path):
    start, end = "2025-05-27", "2025-06-03"  # funding is complete to the end: nothing left to ask
    kill_at = random.Random(14).randint(2, 8)
    stub.die_after = kill_at
    with pytest.raises(DownloadError):
        downloader(stub, tmp_path, sleeps=[], attempts=2, checkpoint_pages=2).download("1m", start, end)
    path = data_file(tmp_path, "binanceusdm", PERP, "1m")
    partial = pd.read_feather(path)  # a complete, valid, contiguous prefix
    assert 0 < len(partial) < len(original(CANDLES_1M, start, end))
    pd.testing.assert_frame_equal(partial, original(CANDLES_1M, start, end).iloc[: len(partial)])

    stub.die_after = None
    downloader(stub, tmp_path).download("1m", start, end)
    for kind, tf, source in (("candles", "1m", CANDLES_1M), ("funding", "8h", FUNDING_8H),
                             ("mark", "8h", MARK_8H)):  # fmt: skip
        assert_same_rows(data_file(tmp_path, "binanceusdm", PERP, tf, kind), source, start, end)

    before = stub.data_requests
    result = downloader(stub, tmp_path).download("1m", start, end)
    assert stub.data_requests == before and result.requests == 0
    assert not list(tmp_path.rglob("*.part"))


def test_a_process_killed_mid_download_leaves_a_valid_file_and_the_rerun_completes(stub, tmp_path):
    """A real SIGKILL of a downloading process, sent when the stub receives its N-th request."""
    import os
    import signal
    import subprocess
    import sys

    start, end = "2025-05-25", "2025-05-29"
    kill_at = random.Random(7).randint(2, 5)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from tests.feeds.venue_stub import point_at\n"
        "from hedgekit.feeds.download import Downloader, make_exchange\n"
        "ex = point_at(make_exchange('binanceusdm', 'BTC/USDT:USDT'), sys.argv[2])\n"
        "Downloader('binanceusdm', 'BTC/USDT:USDT', sys.argv[3], exchange=ex, checkpoint_pages=1)"
        f".download('1m', '{start}', '{end}', funding=False, mark=False)\n"
    )
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen([sys.executable, "-c", script, str(root), stub.url, str(tmp_path)])
    stub.on_request = lambda n: os.kill(child.pid, signal.SIGKILL) if n == kill_at else None
    assert child.wait(timeout=120) == -signal.SIGKILL
    stub.on_request = None

    path = data_file(tmp_path, "binanceusdm", PERP, "1m")
    if path.exists():  # whatever is there is a complete checkpoint
        partial = pd.read_feather(path)
        pd.testing.assert_frame_equal(partial, original(CANDLES_1M, start, end).iloc[: len(partial)])
    downloader(stub, tmp_path).download("1m", start, end, funding=False, mark=False)
    assert_same_rows(path, CANDLES_1M, start, end)
    assert not list(tmp_path.rglob("*.part"))


def test_a_span_the_venue_has_nothing_for_is_an_error_for_candles_and_a_note_for_funding(stub, tmp_path):
    with pytest.raises(DownloadError, match=r"binanceusdm BTC/USDT:USDT: the venue returned no candles between 2025-07-01"):
        downloader(stub, tmp_path).download("1m", "2025-07-01", "2025-07-02")

    result = downloader(stub, tmp_path).download("1m", "2025-06-03T08:00", "2025-06-03T09:00", mark=False)
    funding = {s.kind: s for s in result.series}["funding"]
    assert funding.rows == 0 and "no funding" in funding.skipped


# -- validation -----------------------------------------------------------------------------------


def test_gaps_in_the_venues_history_are_reported_with_their_spans(stub, tmp_path):
    rows = stub.candles.rows
    hole = pd.Timestamp("2025-05-21T10:00", tz="UTC").value // 10**6
    stub.candles = Series(rows[(rows[:, 0] < hole) | (rows[:, 0] >= hole + 90 * MINUTE)], MINUTE)

    result = downloader(stub, tmp_path).download("1m", *DAYS, funding=False, mark=False)

    assert result.series[0].gaps == ((hole - MINUTE, 90),)


def test_the_gaps_are_logged_once_for_the_finished_file_not_for_its_temporary_copy(stub, tmp_path):
    """The loader warns from its own modules (history, formats, validation): the check of the
    temporary file before the rename is silent, the finished file is reported once."""
    from loguru import logger

    rows = stub.candles.rows
    hole = pd.Timestamp("2025-05-21T10:00", tz="UTC").value // 10**6
    stub.candles = Series(rows[(rows[:, 0] < hole) | (rows[:, 0] >= hole + 90 * MINUTE)], MINUTE)
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{name}: {message}")
    try:
        result = downloader(stub, tmp_path).download("1m", *DAYS, funding=False, mark=False)
    finally:
        logger.remove(sink)

    assert result.series[0].gaps == ((hole - MINUTE, 90),)
    gap_notes = [line for line in lines if "gap(s)" in line]
    path = data_file(tmp_path, "binanceusdm", PERP, "1m")
    assert len(gap_notes) == 1 and f"{path}: 1 gap(s), 90 missing 1m bar(s)" in gap_notes[0], lines


def test_bad_data_from_the_venue_is_refused_and_the_file_left_as_it_was(stub, tmp_path):
    dl = downloader(stub, tmp_path)
    dl.download("1m", "2025-05-20", "2025-05-21", funding=False, mark=False)
    path = data_file(tmp_path, "binanceusdm", PERP, "1m")
    before = path.read_bytes()
    rows = stub.candles.rows.copy()
    bad = int(np.searchsorted(rows[:, 0], pd.Timestamp("2025-05-21T06:00", tz="UTC").value // 10**6))
    rows[bad, 3] = rows[bad, 2] + 50.0  # low above high
    stub.candles = Series(rows, MINUTE)

    with pytest.raises(DownloadError, match=r"fails the checks.*row 1801.*low"):
        dl.download("1m", "2025-05-20", "2025-05-22", funding=False, mark=False)
    assert path.read_bytes() == before


class _PagesOutOfOrder:
    """A ccxt-like exchange whose pages overlap, come unsorted and repeat a bar with a newer
    value: what the merge must survive even when ccxt does not normalise a venue's answer."""

    timeframes = {"1m": "1m"}

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def fetch_ohlcv(self, symbol, timeframe, since, limit, params):
        page = self.rows[(self.rows[:, 0] >= since - 5 * MINUTE) & (self.rows[:, 0] <= params["until"])][: limit + 5]
        return [list(r) for r in page[::-1]]


def test_overlapping_unsorted_pages_merge_into_one_ordered_series(tmp_path):
    real = read_rows(CANDLES_1M)[:3000]
    dl = Downloader("binanceusdm", PERP, tmp_path, exchange=_PagesOutOfOrder(real), now_ms=lambda: 2**62)
    start = pd.Timestamp(int(real[0, 0]), unit="ms", tz="UTC")
    end = pd.Timestamp(int(real[-1, 0]) + MINUTE, unit="ms", tz="UTC")

    result = dl.download("1m", start, end, funding=False, mark=False)

    assert_same_rows(result.series[0].path, CANDLES_1M, str(start), str(end))


# -- references in configs ------------------------------------------------------------------------


def test_a_config_names_exchange_symbol_timeframe_and_gets_the_downloaded_file(stub, tmp_path):
    from hedgekit.config import parse_config
    from hedgekit.engine.session import load_data

    downloader(stub, tmp_path).download("1m", *DAYS, mark=False)
    cfg = parse_config({
        "wallets": [{"name": "long", "strategy": "long_wallet", "allocation": 1000,
                     "unit": {"mode": "percent", "value": 0.01}}],
        "venue": {"funding": {"file": "binanceusdm/BTC/USDT:USDT/funding"}},
        "data": {"candles": "binanceusdm/BTC/USDT:USDT/1m", "download_dir": str(tmp_path)},
    })  # fmt: skip

    loaded = load_data(cfg)

    assert loaded.candles.path == data_file(tmp_path, "binanceusdm", PERP, "1m")
    assert loaded.funding_source == str(data_file(tmp_path, "binanceusdm", PERP, "8h", "funding"))
    assert len(loaded.candles) == 3 * 1440


def test_a_config_wanting_more_than_was_downloaded_is_told_the_command_for_the_rest(stub, tmp_path):
    from loguru import logger

    from hedgekit.config import parse_config
    from hedgekit.engine.session import load_data

    downloader(stub, tmp_path).download("1m", *DAYS, funding=False, mark=False)
    cfg = parse_config({
        "wallets": [{"name": "long", "strategy": "long_wallet", "allocation": 1000,
                     "unit": {"mode": "percent", "value": 0.01}}],
        "data": {"candles": "binanceusdm/BTC/USDT:USDT/1m", "download_dir": str(tmp_path),
                 "start": "2025-05-18", "end": "2025-05-22"},
    })  # fmt: skip
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        loaded = load_data(cfg)
    finally:
        logger.remove(sink)

    assert len(loaded.candles) == 2 * 1440
    assert any(
        "binanceusdm/BTC/USDT:USDT/1m has no bars for 2025-05-18T00:00:00Z -> 2025-05-20T00:00:00Z; "
        "fetch them with: hedgekit download --exchange binanceusdm --symbol BTC/USDT:USDT "
        f"--timeframe 1m --from 2025-05-18T00:00:00Z --to 2025-05-20T00:00:00Z --dir {tmp_path}"
        in line for line in lines
    ), lines


# -- the command ----------------------------------------------------------------------------------


def test_cli_downloads_and_lists_timeframes(stub, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import hedgekit.feeds.download as download_module
    from hedgekit.cli import app

    real_make = download_module.make_exchange
    monkeypatch.setattr(download_module, "make_exchange",
                        lambda ex, sym=None: stub.point(real_make(ex, sym)))  # fmt: skip
    runner = CliRunner()

    listed = runner.invoke(app, ["download", "--list-timeframes", "bybit"])
    assert listed.exit_code == 0 and "1m 3m 5m" in listed.output and "mark 4h" in listed.output

    args = ["download", "--exchange", "binanceusdm", "--symbol", PERP, "--from", DAYS[0],
            "--to", DAYS[1], "--dir", str(tmp_path)]  # fmt: skip
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "4,320 rows" in first.output and "4,320 new" in first.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "0 new, 0 request(s)" in again.output
    update = runner.invoke(app, [*args[:5], "--to", "2025-05-24", "--dir", str(tmp_path), "--no-mark"])
    assert update.exit_code == 0 and "5,760 rows 2025-05-20 00:00 → 2025-05-23 23:59 UTC, 1,440 new" in update.output
    fresh = runner.invoke(app, [*args[:5], "--dir", str(tmp_path / "empty")])
    assert fresh.exit_code == 2 and "give --from" in fresh.output

    bad = runner.invoke(app, [*args, "--timeframe", "7m"])
    assert bad.exit_code == 2 and "binanceusdm has no 7m candles" in bad.output
    not_unified = runner.invoke(app, [*args[:4], "BTCUSDT", *args[5:]])
    assert not_unified.exit_code == 2 and "use ccxt's unified symbol" in not_unified.output


def test_backtest_data_accepts_a_reference_and_names_the_command_when_it_is_missing(stub, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from hedgekit.cli import app

    monkeypatch.chdir(tmp_path)  # the default download folder is ./data
    runner = CliRunner()
    ref = "binanceusdm/BTC/USDT:USDT/1m"
    missing = runner.invoke(app, ["backtest", "--data", ref, "--quiet", "--no-html"])
    assert missing.exit_code == 2
    assert "hedgekit download --exchange binanceusdm --symbol BTC/USDT:USDT --timeframe 1m" in missing.output

    downloader(stub, tmp_path / "data").download("1m", *DAYS, funding=False, mark=False)
    ran = runner.invoke(app, ["backtest", "--data", ref, "--quiet", "--no-html", "--out", "out"])
    assert ran.exit_code == 0, ran.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["data"]["bars"] == 3 * 1440
