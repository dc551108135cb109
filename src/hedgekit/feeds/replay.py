"""Replay a history file as a feed, at a chosen speed (PAPER mode on recorded data, demos,
crash-recovery tests).

Candles come out as :class:`Bar` items, trades as :class:`PricePoint` items; ``seq`` is the row's
index in the whole file (so it does not depend on ``start``/``end``), which is what
``resume_after_seq`` compares against after a crash.

Pacing follows the data's own timestamps: with ``speed=60`` one minute of data plays in one wall
second. A bar is handed out when it is complete (at its close time, ``ts + timeframe``), a
trade at its time; playback starts at the first item played. ``speed=None`` ("max") plays as
fast as the consumer takes items, yielding to the event loop every ``yield_every`` items. A
consumer that falls behind gets the late items at once (the schedule is absolute, so it does
not drift).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Self

import numpy as np
from loguru import logger

from hedgekit.core.errors import ParameterError
from hedgekit.feeds.base import Bar, Clock, PricePoint, SystemClock
from hedgekit.feeds.errors import DataError
from hedgekit.feeds.history import Candles, TimeLike, Trades, load_candles, load_trades, to_epoch_ms

__all__ = ["ReplayFeed", "parse_speed"]

SourceKind = Literal["auto", "candles", "trades"]

_SPEED_HELP = "use a positive number of data seconds per wall second (e.g. 60, 1.5) or 'max'"


def parse_speed(value: str | float | int | None) -> float | None:
    """``"max"`` (or None) -> None (as fast as possible); ``"60"``, ``"1.5"``, ``"60x"``, 60 ->
    that many seconds of data per wall second. Raises :class:`ParameterError` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ParameterError("speed", value, _SPEED_HELP)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("max", "fastest", "inf"):
            return None
        text = text.removesuffix("x").strip()
        try:
            number = float(text)
        except ValueError:
            raise ParameterError("speed", value, _SPEED_HELP) from None
    elif isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
    else:
        raise ParameterError("speed", value, _SPEED_HELP)
    if not math.isfinite(number) or number <= 0:
        raise ParameterError("speed", value, _SPEED_HELP)
    return number


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _load(source: str | Path, kind: SourceKind) -> Candles | Trades:
    if kind == "candles":
        return load_candles(source)
    if kind == "trades":
        return load_trades(source)
    if kind != "auto":
        raise ParameterError("kind", kind, "must be 'auto', 'candles' or 'trades'")
    try:
        return load_candles(source)
    except DataError as as_candles:
        try:
            return load_trades(source)
        except DataError as as_trades:
            if as_trades.problem == as_candles.problem:  # e.g. no such file: one error is enough
                raise as_candles from None
            raise DataError(
                source,
                f"neither candles ({as_candles.problem}) nor trades ({as_trades.problem})",
                hint="pass kind='candles' or kind='trades' to see the full error for one of them",
            ) from as_trades


class ReplayFeed:
    """An async iterator over a history file's bars or trades, paced by ``speed``.

    ``source`` is a file path (candles or trades, detected unless ``kind`` says which) or an
    already loaded :class:`Candles` / :class:`Trades`. ``start``/``end`` keep rows with
    ``start <= ts < end``; ``resume_after_seq`` skips every row whose seq is at or below it
    (the last seq a crashed run had processed).
    """

    def __init__(
        self,
        source: str | Path | Candles | Trades,
        *,
        speed: float | str | None = None,
        start: TimeLike = None,
        end: TimeLike = None,
        resume_after_seq: int | None = None,
        kind: SourceKind = "auto",
        clock: Clock | None = None,
        yield_every: int = 256,
    ) -> None:
        self.speed = parse_speed(speed)
        if resume_after_seq is not None and (
            isinstance(resume_after_seq, bool) or not isinstance(resume_after_seq, int | np.integer)
        ):
            raise ParameterError("resume_after_seq", resume_after_seq, "must be an integer or None")
        if isinstance(yield_every, bool) or not isinstance(yield_every, int) or yield_every < 1:
            raise ParameterError("yield_every", yield_every, "must be a positive integer")
        self.data = source if isinstance(source, Candles | Trades) else _load(source, kind)
        if kind != "auto" and kind != ("candles" if isinstance(self.data, Candles) else "trades"):
            raise ParameterError("kind", kind, f"the source holds {type(self.data).__name__}")
        self.kind: Literal["candles", "trades"] = (
            "candles" if isinstance(self.data, Candles) else "trades"
        )
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.yield_every = yield_every
        self._ts: np.ndarray = self.data.ts
        lo, hi = self._window(start, end)
        if resume_after_seq is not None:
            lo = max(lo, min(hi, int(resume_after_seq) + 1))
        self.first_seq, self.end_seq = lo, hi  # rows [first_seq, end_seq) are played
        self._next = lo
        self._offset_ms = self.data.timeframe_ms if isinstance(self.data, Candles) else 0
        self._anchor_ms = int(self._ts[lo]) if lo < hi else 0
        self._started_at: float | None = None
        self._closed = False
        if lo >= hi and resume_after_seq is not None:
            logger.info("replay {}: nothing left after seq {}", self.data.path, resume_after_seq)

    def _window(self, start: TimeLike, end: TimeLike) -> tuple[int, int]:
        n = len(self._ts)
        lo_ms = None if start is None else to_epoch_ms(start)
        hi_ms = None if end is None else to_epoch_ms(end)
        if lo_ms is not None and hi_ms is not None and hi_ms <= lo_ms:
            raise ParameterError("end", end, f"must be after start ({_iso(lo_ms)})")
        lo = 0 if lo_ms is None else int(np.searchsorted(self._ts, lo_ms, side="left"))
        hi = n if hi_ms is None else int(np.searchsorted(self._ts, hi_ms, side="left"))
        if (lo_ms is not None or hi_ms is not None) and lo >= hi:
            covers = f"{_iso(int(self._ts[0]))} -> {_iso(int(self._ts[-1]))}" if n else "nothing"
            raise DataError(
                self.data.path,
                f"no rows in [{start}, {end})",
                hint=f"the file covers {covers}",
            )
        return lo, hi

    def __len__(self) -> int:
        """Rows left to play."""
        return max(0, self.end_seq - self._next)

    @property
    def last_seq(self) -> int | None:
        """Seq of the last item handed out (None before the first)."""
        return self._next - 1 if self._next > self.first_seq else None

    def __aiter__(self) -> AsyncIterator[Bar | PricePoint]:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the replay; iteration ends."""
        self._closed = True

    async def __anext__(self) -> Bar | PricePoint:
        i = self._next
        if self._closed or i >= self.end_seq:
            raise StopAsyncIteration
        if self._started_at is None:
            self._started_at = self.clock.monotonic()
        waited = False
        if self.speed is not None:
            due = (int(self._ts[i]) + self._offset_ms - self._anchor_ms) / 1000.0 / self.speed
            delay = self._started_at + due - self.clock.monotonic()
            if delay > 0:
                await self.clock.sleep(delay)
                waited = True
        if not waited and (i - self.first_seq) % self.yield_every == self.yield_every - 1:
            await asyncio.sleep(0)  # let the rest of the program run during a fast replay
        if self._closed:
            raise StopAsyncIteration
        self._next = i + 1
        return self._item(i)

    def _item(self, i: int) -> Bar | PricePoint:
        data = self.data
        if isinstance(data, Candles):
            return Bar(
                int(data.ts[i]), float(data.open[i]), float(data.high[i]), float(data.low[i]),
                float(data.close[i]), i,
            )  # fmt: skip
        return PricePoint(int(data.ts[i]), float(data.price[i]), i)
