"""Does a funding-rate file cover the candles it is used with? (SPEC §10)

A run that names a funding file as its source must not pay a silent zero where the file has
no rate: the spans without funding are found here, logged and written to ``summary.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

__all__ = ["FundingGap", "funding_gaps"]

_SLACK_MS = 1_000  # venues stamp funding a few ms late; a second of slack absorbs it


@dataclass(frozen=True, slots=True)
class FundingGap:
    """No rate in the file between ``start`` and ``end`` (epoch ms): ``payments`` funding
    times fall there and are paid as zero."""

    start: int
    end: int
    payments: int

    def as_dict(self) -> dict[str, object]:
        return {"from": _iso(self.start), "to": _iso(self.end), "payments": self.payments}

    def __str__(self) -> str:
        return f"{_iso(self.start)} -> {_iso(self.end)} ({self.payments} payment(s))"


def _iso(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%dT%H:%M:%SZ}"


def funding_gaps(funding_ts: np.ndarray, start: int, end: int, interval_ms: int) -> list[FundingGap]:
    """Spans of ``(start, end]`` (the payments a backtest from the bar at ``start`` to the bar
    at ``end`` makes) where a funding time is due every ``interval_ms`` and the file has none:
    before its first rate, after its last, and holes of one missing payment or more."""
    if interval_ms <= 0 or end <= start:
        return []
    ts = np.asarray(funding_ts, dtype=np.int64)
    ts = ts[(ts > start) & (ts <= end)]
    if not len(ts):
        return [FundingGap(start, end, max((end - start + _SLACK_MS) // interval_ms, 1))]
    gaps: list[FundingGap] = []
    head = (int(ts[0]) - start - _SLACK_MS) // interval_ms
    if head > 0:
        gaps.append(FundingGap(start, int(ts[0]), int(head)))
    steps = np.diff(ts)
    missing = np.rint(steps / interval_ms).astype(np.int64) - 1
    for i in np.flatnonzero(missing >= 1):
        gaps.append(FundingGap(int(ts[i]), int(ts[i + 1]), int(missing[i])))
    tail = (end - int(ts[-1]) + _SLACK_MS) // interval_ms
    if tail > 0:
        gaps.append(FundingGap(int(ts[-1]), end, int(tail)))
    return gaps
