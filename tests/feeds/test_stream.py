"""`--feed stdin`: bars piped in line by line; a bad line is refused naming it."""

from __future__ import annotations

import asyncio
import io

import pytest

from hedgekit.feeds.errors import DataError
from hedgekit.feeds.stream import StreamFeed


def _read(text: str, resume_after_seq: int = -1):
    async def go():
        return [b async for b in StreamFeed(io.StringIO(text), resume_after_seq=resume_after_seq)]

    return asyncio.run(go())


def test_bars_are_read_in_order_after_the_header_and_a_restart_skips_what_was_done():
    text = ("timestamp,open,high,low,close,volume\n"
            "1748736000000,100,101,99,100.5,3\n"
            "2025-06-01T00:01:00Z,100.5,102,100,101,1\n\n"
            "1748736120000,101,101,98,99,2\n")
    bars = _read(text)
    assert [(b.ts, b.open, b.high, b.low, b.close, b.seq) for b in bars] == [
        (1748736000000, 100.0, 101.0, 99.0, 100.5, 0),
        (1748736060000, 100.5, 102.0, 100.0, 101.0, 1),
        (1748736120000, 101.0, 101.0, 98.0, 99.0, 2),
    ]
    assert [b.seq for b in _read(text, resume_after_seq=1)] == [2]


@pytest.mark.parametrize(("line", "message"), [
    ("1748736060000,100,101,99", "line 3: expected timestamp,open,high,low,close"),
    ("yesterday,100,101,99,100", "line 3: timestamp 'yesterday'"),
    ("1748736060000,100,abc,99,100", "line 3: high='abc' is not a number"),
    ("1748736060000,100,101,-1,100", "line 3: low=-1 must be a positive finite price"),
    ("1748736060000,100,99,98,100", "line 3: inconsistent bar"),
    ("1748736000000,100,101,99,100", "line 3: timestamp 1748736000000 is not after the previous"),
])
def test_a_bad_line_is_refused_naming_it(line, message):
    text = f"ts,open,high,low,close\n1748736000000,100,101,99,100\n{line}\n"
    with pytest.raises(DataError, match=message):
        _read(text)
