"""ReplayFeed: history files played back as feeds, on real data (the bundled Binance BTC 1m
candles and the hftbacktest Binance trade capture)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hedgekit.core.errors import ParameterError
from hedgekit.feeds.base import Bar, PricePoint
from hedgekit.feeds.errors import DataError
from hedgekit.feeds.history import BUNDLED_BTC_1M, load_candles, load_trades
from hedgekit.feeds.replay import ReplayFeed, parse_speed

DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
BTC_TRADES = DATA_DIR / "hftbacktest" / "usdm_btcusdt_20240808.gz"
BASANA_1M = DATA_DIR / "basana" / "bitstamp_btcusd_min_2020_01_01.csv"

requires_shared = pytest.mark.skipif(
    not BTC_TRADES.is_file() or not BASANA_1M.is_file(),
    reason=f"real market data not found under {DATA_DIR} (../shared/data is not checked out)",
)

MINUTE = 60_000


class StepClock:
    """A clock for one consumer: ``sleep`` moves time forward at once and is recorded."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def now_ms(self) -> int:
        return round(self.now * 1000)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def drain(feed: ReplayFeed, timeout: float = 10.0) -> list[Bar | PricePoint]:
    async with asyncio.timeout(timeout), feed:
        return [item async for item in feed]


def collect(feed: ReplayFeed, timeout: float = 10.0) -> list[Bar | PricePoint]:
    return asyncio.run(drain(feed, timeout))


# -- parse_speed ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "speed"),
    [("max", None), ("MAX", None), (None, None), ("60", 60.0), ("1.5", 1.5), (" 600x ", 600.0),
     (60, 60.0), (0.5, 0.5)],
)  # fmt: skip
def test_parse_speed_accepts_numbers_and_max(text: str | float | None, speed: float | None) -> None:
    assert parse_speed(text) == speed


@pytest.mark.parametrize("text", ["fast", "", "0", "-2", "nan", "1e999", True, [60]])
def test_parse_speed_rejects_the_rest_with_a_clear_message(text: object) -> None:
    with pytest.raises(ParameterError, match=r"speed=.*data seconds per wall second.*'max'"):
        parse_speed(text)  # type: ignore[arg-type]


# -- candles ----------------------------------------------------------------------------------


def test_candles_at_max_speed_yield_every_bar_in_order() -> None:
    candles = load_candles(BUNDLED_BTC_1M)
    ticks = 0

    async def scenario() -> list[Bar | PricePoint]:
        nonlocal ticks

        async def ticker() -> None:  # proves the replay lets the loop run
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        side = asyncio.create_task(ticker())
        items = await drain(ReplayFeed(BUNDLED_BTC_1M, speed="max"))
        side.cancel()
        return items

    bars = asyncio.run(scenario())

    assert len(bars) == len(candles) > 40_000
    assert all(isinstance(b, Bar) for b in bars)
    assert [b.seq for b in bars] == list(range(len(candles)))
    assert [b.ts for b in bars] == candles.ts.tolist()
    assert [b.close for b in bars] == candles.close.tolist()
    assert bars[5] == Bar(
        int(candles.ts[5]), float(candles.open[5]), float(candles.high[5]),
        float(candles.low[5]), float(candles.close[5]), 5,
    )  # fmt: skip
    assert ticks > len(bars) // 512


def test_candles_at_speed_600_wait_on_the_real_clock() -> None:
    """Pacing on the system clock: ten minutes of data at 600x take at least a second. Only
    the lower bound is checked (a busy machine is slower, never faster); the exact pacing is
    tested on an injected clock below."""
    start = int(load_candles(BUNDLED_BTC_1M).ts[100])
    feed = ReplayFeed(BUNDLED_BTC_1M, speed=600, start=start, end=start + 10 * MINUTE)

    began = time.monotonic()
    bars = collect(feed)
    took = time.monotonic() - began

    assert [b.seq for b in bars] == list(range(100, 110))
    assert took >= 0.9


def test_bars_are_released_at_their_close_time_on_the_data_clock() -> None:
    clock = StepClock()
    start = int(load_candles(BUNDLED_BTC_1M).ts[0])
    feed = ReplayFeed(BUNDLED_BTC_1M, speed=60, start=start, end=start + 5 * MINUTE, clock=clock)

    bars = collect(feed)

    assert len(bars) == 5
    assert clock.sleeps == pytest.approx([1.0] * 5)  # one 1m bar per wall second, at its close
    assert clock.now == pytest.approx(105.0)


def test_resume_after_seq_skips_what_was_already_processed() -> None:
    start = int(load_candles(BUNDLED_BTC_1M).ts[1000])
    window = {"start": start, "end": start + 50 * MINUTE}

    everything = collect(ReplayFeed(BUNDLED_BTC_1M, **window))
    resumed = collect(ReplayFeed(BUNDLED_BTC_1M, **window, resume_after_seq=1019))
    before = collect(ReplayFeed(BUNDLED_BTC_1M, **window, resume_after_seq=5))
    after = collect(ReplayFeed(BUNDLED_BTC_1M, **window, resume_after_seq=10_000))

    assert [b.seq for b in everything] == list(range(1000, 1050))
    assert resumed == everything[20:]
    assert before == everything  # seqs are file indices, not positions in the window
    assert after == []


def test_resumed_paced_replay_does_not_wait_for_skipped_bars() -> None:
    clock = StepClock()
    start = int(load_candles(BUNDLED_BTC_1M).ts[0])
    feed = ReplayFeed(
        BUNDLED_BTC_1M, speed=60, start=start, end=start + 10 * MINUTE,
        resume_after_seq=7, clock=clock,
    )  # fmt: skip

    bars = collect(feed)

    assert [b.seq for b in bars] == [8, 9]
    assert sum(clock.sleeps) == pytest.approx(2.0)


def test_close_stops_the_replay() -> None:
    async def scenario() -> list[Bar | PricePoint]:
        feed = ReplayFeed(BUNDLED_BTC_1M)
        got = []
        async for item in feed:
            got.append(item)
            if len(got) == 3:
                await feed.close()
        return got

    assert [b.seq for b in asyncio.run(scenario())] == [0, 1, 2]


@requires_shared
def test_a_csv_candle_file_replays_as_bars() -> None:
    bars = collect(ReplayFeed(BASANA_1M, kind="candles"))

    assert len(bars) == 1440 and all(isinstance(b, Bar) for b in bars)
    assert [b.seq for b in bars] == list(range(1440))


def test_bad_windows_and_arguments_are_explained() -> None:
    candles = load_candles(BUNDLED_BTC_1M)
    with pytest.raises(DataError, match="no rows in"):
        ReplayFeed(candles, start="2030-01-01")
    with pytest.raises(ParameterError, match="end=.*must be after start"):
        ReplayFeed(candles, start="2025-05-10", end="2025-05-09")
    with pytest.raises(ParameterError, match="speed"):
        ReplayFeed(candles, speed="warp")
    with pytest.raises(ParameterError, match="kind"):
        ReplayFeed(candles, kind="trades")
    with pytest.raises(ParameterError, match="resume_after_seq"):
        ReplayFeed(candles, resume_after_seq="7")  # type: ignore[arg-type]


# -- trades -----------------------------------------------------------------------------------


@requires_shared
def test_a_trades_file_replays_as_price_points() -> None:
    trades = load_trades(BTC_TRADES)
    start, end = int(trades.ts[0]) + 60_000, int(trades.ts[0]) + 120_000

    points = collect(ReplayFeed(BTC_TRADES, speed="max", start=start, end=end))

    assert points and all(isinstance(p, PricePoint) for p in points)
    first = int(points[0].seq)
    assert [p.seq for p in points] == list(range(first, first + len(points)))
    assert [p.ts for p in points] == trades.ts[first : first + len(points)].tolist()
    assert [p.price for p in points] == trades.price[first : first + len(points)].tolist()
    assert all(start <= p.ts < end for p in points)
    assert not any(p.gap for p in points)


@requires_shared
def test_trades_are_paced_by_their_own_timestamps() -> None:
    trades = load_trades(BTC_TRADES)
    clock = StepClock()
    start = int(trades.ts[0])
    feed = ReplayFeed(trades, speed=10, start=start, end=start + 5_000, clock=clock)

    points = collect(feed)

    assert points[0].ts == start
    span = (points[-1].ts - start) / 1000
    assert clock.now - 100.0 == pytest.approx(span / 10)
