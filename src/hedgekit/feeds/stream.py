"""Bars from a text stream (``hedgekit run --feed stdin``): prices piped in by another program.

One bar per line, ``timestamp,open,high,low,close[,volume]`` (a header line is skipped;
``timestamp`` in epoch ms or ISO-8601). A bar is traded when its line arrives; the feed ends
when the stream closes. The stream sets the pace, so nothing here reads a clock: a program (or
a test) can hand the engine prices one at a time and know the engine waits for the next.

``seq`` is the line's index among the bars. After a restart, pipe the same stream again from
its start: bars at or below ``resume_after_seq`` are skipped, as a replay does.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator
from typing import TextIO

from hedgekit.feeds.base import Bar
from hedgekit.feeds.errors import DataError
from hedgekit.feeds.history import to_epoch_ms

_EOF = object()


def parse_bar_line(line: str, seq: int, lineno: int, prev_ts: int | None) -> Bar:
    """One CSV line as a Bar; a DataError names the line and the field."""
    where = f"line {lineno}"
    parts = [p.strip() for p in line.split(",")]
    if len(parts) < 5:
        raise DataError("<stdin>", where=where, problem=f"expected timestamp,open,high,low,close[,volume], got {line.strip()!r}")
    try:
        ts = to_epoch_ms(int(parts[0]) if parts[0].lstrip("-").isdigit() else parts[0])
    except (ValueError, TypeError):
        raise DataError("<stdin>", where=where, problem=f"timestamp {parts[0]!r} is neither epoch ms nor ISO-8601") from None
    values = []
    for name, raw in zip(("open", "high", "low", "close"), parts[1:5], strict=True):
        try:
            v = float(raw)
        except ValueError:
            raise DataError("<stdin>", where=where, problem=f"{name}={raw!r} is not a number") from None
        if not (math.isfinite(v) and v > 0):
            raise DataError("<stdin>", where=where, problem=f"{name}={raw} must be a positive finite price")
        values.append(v)
    o, h, lo, c = values
    if h < max(o, c, lo) or lo > min(o, c):
        raise DataError("<stdin>", where=where, problem=f"inconsistent bar: open={o} high={h} low={lo} close={c}")
    if prev_ts is not None and ts <= prev_ts:
        raise DataError("<stdin>", where=where, problem=f"timestamp {parts[0]} is not after the previous bar's")
    return Bar(ts, o, h, lo, c, seq)


class StreamFeed:
    """An async iterator of Bars read from ``stream`` (default: the process's stdin)."""

    def __init__(self, stream: TextIO, *, resume_after_seq: int = -1) -> None:
        self.stream = stream
        self.resume_after_seq = resume_after_seq
        self._queue: asyncio.Queue[object] | None = None
        self._closed = False
        self._seq = -1
        self._lineno = 0
        self._prev_ts: int | None = None

    def _start(self) -> asyncio.Queue[object]:
        queue: asyncio.Queue[object] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def pump() -> None:  # a daemon thread: a blocked read never holds the process open
            try:
                for line in self.stream:
                    if self._closed:
                        return
                    loop.call_soon_threadsafe(queue.put_nowait, line)
                loop.call_soon_threadsafe(queue.put_nowait, _EOF)
            except RuntimeError:
                return  # the engine is gone (its event loop closed): nobody reads any more

        threading.Thread(target=pump, name="hedgekit-stdin", daemon=True).start()
        return queue

    def __aiter__(self) -> AsyncIterator[Bar]:
        return self

    async def close(self) -> None:
        self._closed = True

    async def __anext__(self) -> Bar:
        if self._queue is None:
            self._queue = self._start()
        while not self._closed:
            line = await self._queue.get()
            if line is _EOF:
                break
            assert isinstance(line, str)
            self._lineno += 1
            if not line.strip() or (self._lineno == 1 and line.lower().startswith(("timestamp", "ts,", "date", "time"))):
                continue
            self._seq += 1
            bar = parse_bar_line(line, self._seq, self._lineno, self._prev_ts)
            self._prev_ts = bar.ts
            if bar.seq > self.resume_after_seq:
                return bar
        raise StopAsyncIteration
