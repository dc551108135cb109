"""What every price feed hands the engine, and the machinery the live feeds share.

A feed is an async iterator of :data:`FeedItem` (:class:`PricePoint`, :class:`Bar` or
:class:`FeedStatusChange`) with an ``async close()``; it is also an async context manager that
closes itself on exit.

Status contract of the live feeds (:class:`LiveFeed` subclasses):

* ``LIVE`` is emitted just before the first price, and again before the first price after the
  feed was ``STALE`` or ``RECONNECTING``. Only prices seen while ``LIVE`` are current.
* ``STALE`` is emitted once when no price arrived for ``stale_after`` seconds (counted from the
  start, or from the last price). The engine pauses the strategy on it and resumes on ``LIVE``.
* ``RECONNECTING`` is emitted before each reconnection attempt, with the attempt number and the
  backoff delay (also in the reason). It does not end a ``STALE`` period: only ``LIVE`` does.
* ``CLOSED`` is the last item: after ``close()``, or when the feed gives up on an error it
  cannot retry; in that case iterating raises that error right after the ``CLOSED`` item (and
  ``feed.error`` holds it, for a consumer that stops at ``CLOSED``).

Prices are never duplicated nor reordered: ``seq`` is strictly increasing per feed, and anything
at or below the last delivered ``seq`` (a server replaying recent trades after a reconnect) is
dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, Self, TypeAlias

from loguru import logger

from hedgekit.core.errors import HedgekitError, ParameterError
from hedgekit.logs import redact  # one redaction for every log line and error message

__all__ = [
    "Backoff",
    "Bar",
    "Clock",
    "FeedError",
    "FeedItem",
    "FeedStatus",
    "FeedStatusChange",
    "LiveFeed",
    "PricePoint",
    "SystemClock",
    "redact",
]


# -- items ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PricePoint:
    """One observed price. ``ts`` is the exchange time in epoch ms (UTC); ``seq`` is strictly
    increasing per feed (the trade id for trades, the index in the file for replayed rows);
    ``gap`` is True when the price jumped to this value (e.g. a bar open after the previous
    close) instead of moving through the levels in between."""

    ts: int
    price: float
    seq: int
    gap: bool = False


@dataclass(frozen=True, slots=True)
class Bar:
    """One candle; ``ts`` is the bar *open* time in epoch ms (UTC), ``seq`` its index in the
    file. A replayed bar is handed out only once it is complete (at its close time)."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    seq: int


class FeedStatus(StrEnum):
    LIVE = "LIVE"
    STALE = "STALE"
    RECONNECTING = "RECONNECTING"
    CLOSED = "CLOSED"


@dataclass(frozen=True, slots=True)
class FeedStatusChange:
    """The feed's status changed. ``ts`` is the wall-clock time (epoch ms, UTC) of the change;
    ``attempt`` and ``delay`` (seconds before the attempt) are set for ``RECONNECTING``."""

    ts: int
    status: FeedStatus
    reason: str
    attempt: int | None = None
    delay: float | None = None


FeedItem: TypeAlias = PricePoint | Bar | FeedStatusChange


class FeedError(HedgekitError):
    """A feed stopped for good: an error that retrying cannot fix (bad symbol, bad URL,
    unsupported exchange) or too many failed attempts."""


# -- time and backoff -------------------------------------------------------------------------


class Clock(Protocol):
    """Where a feed reads the time and waits; tests inject a virtual one."""

    def monotonic(self) -> float: ...

    def now_ms(self) -> int: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time`` and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff between reconnection attempts.

    Attempt ``n`` (1-based) waits ``min(max, initial * factor**(n-1))`` seconds, shortened by a
    random fraction of up to ``jitter`` (so the cap is never exceeded and many clients do not
    reconnect in lockstep). ``seed`` makes the jitter reproducible; ``max_attempts`` (None =
    forever) bounds the consecutive failures before the feed gives up with :class:`FeedError`.
    The count restarts once prices flow again.
    """

    initial: float = 0.5
    factor: float = 2.0
    max: float = 30.0
    jitter: float = 0.1
    seed: int | None = None
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        for name in ("initial", "max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ParameterError(f"backoff.{name}", value, "must be a positive number")
        if isinstance(self.factor, bool) or not isinstance(self.factor, int | float):
            raise ParameterError("backoff.factor", self.factor, "must be a number >= 1")
        if not self.factor >= 1:
            raise ParameterError("backoff.factor", self.factor, "must be >= 1")
        if self.max < self.initial:
            raise ParameterError("backoff.max", self.max, f"must be >= initial ({self.initial})")
        if not 0 <= self.jitter < 1:
            raise ParameterError("backoff.jitter", self.jitter, "must be in [0, 1)")
        if self.max_attempts is not None and (
            isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):  # fmt: skip
            raise ParameterError(
                "backoff.max_attempts", self.max_attempts, "must be a positive integer or None"
            )

    def rng(self) -> random.Random:
        """A fresh jitter source (seeded with ``seed``)."""
        return random.Random(self.seed)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``attempt`` (1-based)."""
        if attempt < 1:
            raise ParameterError("attempt", attempt, "must be >= 1")
        base = min(self.max, self.initial * self.factor ** min(attempt - 1, 1000))
        if self.jitter and rng is not None:
            base *= 1.0 - self.jitter * rng.random()
        return base


# -- helpers ----------------------------------------------------------------------------------



def describe(exc: BaseException) -> str:
    """A one-line, redacted description of an exception for logs and status reasons."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return redact(f"{name}: {text}" if text else name)[:300]


class _End:
    """Marks the end of the item stream."""


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


# -- the shared live-feed machinery -----------------------------------------------------------


class LiveFeed:
    """Base of the live feeds: an item queue fed by a producer task (``_run``, written by the
    subclass), a staleness watchdog, the status bookkeeping, dedupe and the backoff loop.

    Nothing happens at construction: the tasks start on the first ``__anext__`` (or
    ``start()``), inside the running event loop.
    """

    def __init__(
        self,
        name: str,
        *,
        stale_after: float = 10.0,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(stale_after, bool) or not isinstance(stale_after, int | float):
            raise ParameterError("stale_after", stale_after, "must be a positive number of seconds")
        if not stale_after > 0:
            raise ParameterError("stale_after", stale_after, "must be a positive number of seconds")
        self.name = name
        self.stale_after = float(stale_after)
        self.backoff = backoff if backoff is not None else Backoff()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._rng = self.backoff.rng()
        self._queue: asyncio.Queue[FeedItem | _End | _Failure] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._closing = False
        self._finished = False  # the consumer has seen the end
        self._status: FeedStatus | None = None
        self._stale = False
        self._last_price_at: float | None = None
        self._started_at = 0.0
        self._attempt = 0
        self.last_seq: int | None = None
        self.dropped = 0  # prices dropped as duplicates or out of order
        self.error: BaseException | None = None  # what closed the feed, when not close()

    # -- consumer side --

    def __aiter__(self) -> AsyncIterator[FeedItem]:
        return self

    async def __anext__(self) -> FeedItem:
        if self._finished:
            raise StopAsyncIteration
        self.start()
        item = await self._queue.get()
        if isinstance(item, _End):
            self._finished = True
            raise StopAsyncIteration
        if isinstance(item, _Failure):
            self._finished = True
            raise item.error
        return item

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def status(self) -> FeedStatus | None:
        """The last status emitted (None before the first one)."""
        return self._status

    def start(self) -> None:
        """Start the producer and the watchdog (done by the first ``__anext__``)."""
        if self._started or self._closing:
            return
        self._started = True
        self._started_at = self.clock.monotonic()
        self._tasks = [
            asyncio.create_task(self._produce(), name=f"{self.name} producer"),
            asyncio.create_task(self._watchdog(), name=f"{self.name} watchdog"),
        ]

    async def close(self) -> None:
        """Stop the feed: the consumer gets ``CLOSED`` and then the end of the iteration."""
        if self._closing:
            return
        self._closing = True
        await self._stop_tasks()
        await self._disconnect()
        self._set_status(FeedStatus.CLOSED, "closed by the owner")
        self._queue.put_nowait(_End())

    # -- subclass side --

    async def _run(self) -> None:
        """Connect, read and call ``_deliver`` / ``_retry`` until cancelled."""
        raise NotImplementedError

    async def _disconnect(self) -> None:
        """Release connections (called once, on close or on a fatal error)."""

    def _deliver(self, point: PricePoint) -> bool:
        """Hand ``point`` to the consumer unless it repeats or precedes the last one."""
        if self.last_seq is not None and point.seq <= self.last_seq:
            self.dropped += 1
            return False
        now = self.clock.monotonic()
        if self._status is not FeedStatus.LIVE:
            if self._last_price_at is None:
                reason = "first price"
            else:
                reason = f"prices resumed after {now - self._last_price_at:.1f}s"
            self._stale = False
            self._set_status(FeedStatus.LIVE, reason)
        self._attempt = 0
        self._last_price_at = now
        self.last_seq = point.seq
        self._queue.put_nowait(point)
        return True

    def _data_flowing(self) -> None:
        """Valid data arrived (even if every price in it was a duplicate): reset the attempt
        count so that the next outage starts from the initial delay."""
        self._attempt = 0

    async def _retry(self, reason: str) -> None:
        """Back off after a failure: emit ``RECONNECTING`` and wait; raise :class:`FeedError`
        when ``backoff.max_attempts`` consecutive attempts failed."""
        self._attempt += 1
        limit = self.backoff.max_attempts
        if limit is not None and self._attempt > limit:
            raise FeedError(f"feed {self.name}: gave up after {limit} failed attempt(s): {reason}")
        delay = self.backoff.delay(self._attempt, self._rng)
        self._set_status(
            FeedStatus.RECONNECTING,
            f"attempt {self._attempt} in {delay:.2f}s after {reason}",
            attempt=self._attempt,
            delay=delay,
        )
        await self.clock.sleep(delay)

    # -- internals --

    def _set_status(
        self,
        status: FeedStatus,
        reason: str,
        *,
        attempt: int | None = None,
        delay: float | None = None,
    ) -> None:
        reason = redact(reason)
        self._status = status
        change = FeedStatusChange(self.clock.now_ms(), status, reason, attempt, delay)
        self._queue.put_nowait(change)
        level = "INFO" if status in (FeedStatus.LIVE, FeedStatus.CLOSED) else "WARNING"
        logger.log(level, "feed {}: {} - {}", self.name, status.value, reason)

    async def _produce(self) -> None:
        try:
            await self._run()
            raise FeedError(f"feed {self.name}: the producer stopped without being closed")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the consumer gets it, after CLOSED: nothing is swallowed
            logger.error("feed {}: stopped on {}", self.name, describe(exc))
            self.error = exc
            self._closing = True
            watchdog = self._tasks[1]
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            await self._disconnect()
            self._set_status(FeedStatus.CLOSED, f"stopped on {describe(exc)}")
            self._queue.put_nowait(_Failure(exc))

    async def _watchdog(self) -> None:
        while True:
            since = self._last_price_at if self._last_price_at is not None else self._started_at
            now = self.clock.monotonic()
            remaining = since + self.stale_after - now
            if remaining <= 0:
                if not self._stale:
                    self._stale = True
                    self._set_status(
                        FeedStatus.STALE,
                        f"no price for {now - since:.1f}s (stale_after={self.stale_after:g}s)",
                    )
                remaining = self.stale_after
            await self.clock.sleep(remaining)

    async def _stop_tasks(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current and not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
