"""The in-memory series the loaders hand out (:class:`Candles`, :class:`FundingSeries`,
:class:`Trades`) and the time helpers they share. No file I/O here: reading and checking files
is in :mod:`hedgekit.feeds.formats` and :mod:`hedgekit.feeds.validation`, the loaders are in
:mod:`hedgekit.feeds.history` (which re-exports these names).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hedgekit.core.errors import ParameterError

__all__ = ["Candles", "FundingSeries", "Gap", "SpikeFix", "TimeLike", "Trades", "to_epoch_ms"]

TimeLike = datetime | date | pd.Timestamp | str | int | np.integer | None
Gap = tuple[int, int]
_OHLCV_KEYS = ("timestamp", "open", "high", "low", "close", "volume")

_MINUTE_MS = 60_000
_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000

# -- times ------------------------------------------------------------------------------------


def to_epoch_ms(value: datetime | date | pd.Timestamp | str | int | np.integer) -> int:
    """Milliseconds since the epoch (UTC) for a datetime, date, ISO-8601 string or ms integer.

    Naive datetimes and zone-less strings are taken as UTC; a ``date`` means its midnight UTC.
    """
    if isinstance(value, bool):
        raise ParameterError("time", value, "expected a datetime, ISO-8601 string or epoch ms")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, str | datetime):
        raise ParameterError("time", value, "expected a datetime, ISO-8601 string or epoch ms")
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ParameterError(
            "time", value, f"cannot parse it ({exc}); use ISO-8601 like 2025-05-10T00:00:00Z"
        ) from exc
    if stamp is pd.NaT:
        raise ParameterError("time", value, "is not a time")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int((stamp - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1))


def _iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    frac = f".{ms % 1000:03d}" if ms % 1000 else ""
    return f"{moment:%Y-%m-%dT%H:%M:%S}{frac}Z"


def _fmt_tf(ms: int) -> str:
    for unit, size in (("d", _DAY_MS), ("h", _HOUR_MS), ("m", _MINUTE_MS), ("s", 1000)):
        if ms > 0 and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _bounds(start: TimeLike, end: TimeLike) -> tuple[int | None, int | None]:
    lo = None if start is None else to_epoch_ms(start)
    hi = None if end is None else to_epoch_ms(end)
    if lo is not None and hi is not None and hi <= lo:
        raise ParameterError("end", end, f"must be after start ({_iso(lo)})")
    return lo, hi


def _index_range(ts: np.ndarray, start: TimeLike, end: TimeLike) -> slice:
    lo, hi = _bounds(start, end)
    i = 0 if lo is None else int(np.searchsorted(ts, lo, side="left"))
    j = len(ts) if hi is None else int(np.searchsorted(ts, hi, side="left"))
    return slice(i, max(i, j))


# -- result types -----------------------------------------------------------------------------


def _frozen(values: Any, dtype: type[np.generic], name: str) -> np.ndarray:
    """A C-contiguous, read-only 1-D array of ``dtype`` (no copy if it already is one)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ParameterError(name, f"<{arr.ndim}-d array>", "must be a 1-D array")
    if arr.dtype == dtype and arr.flags.c_contiguous and not arr.flags.writeable:
        return arr
    out = np.array(arr, dtype=dtype, order="C", copy=True)
    out.setflags(write=False)
    return out


def _check_lengths(owner: str, arrays: dict[str, np.ndarray]) -> None:
    sizes = {name: len(a) for name, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ParameterError(owner, sizes, "all arrays must have the same length")


def _modal_step(ts: np.ndarray) -> int:
    if len(ts) < 2:
        return 0
    steps, counts = np.unique(np.diff(ts), return_counts=True)
    return int(steps[int(np.argmax(counts))])


def _find_gaps(ts: np.ndarray, timeframe_ms: int) -> tuple[Gap, ...]:
    """(ts of the bar before the hole, number of missing bars) for every step over one bar."""
    if len(ts) < 2 or timeframe_ms <= 0:
        return ()
    steps = np.diff(ts)
    missing = np.rint(steps / timeframe_ms).astype(np.int64) - 1
    idx = np.flatnonzero(missing >= 1)
    return tuple((int(ts[i]), int(missing[i])) for i in idx)


@dataclass(frozen=True, slots=True)
class SpikeFix:
    """One bad print the loader dropped or clipped (``data.on_spike``): where it was in the
    file, the bar as read and, for ``clip``, as used."""

    row: int  # 1-based data row in the file
    where: str  # "data row 1996 (line 1998)", "candle 1996", ...
    ts: int
    action: str  # "dropped" or "clipped"
    ohlc: tuple[float, float, float, float]
    used: tuple[float, float, float, float] | None  # clipped values; None when dropped

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "where": self.where, "time": _iso(self.ts), "action": self.action,
                "open_high_low_close": list(self.ohlc),
                "used": None if self.used is None else list(self.used)}


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Candles:
    """OHLCV bars in time order; ``ts`` is the bar open in epoch ms (UTC).

    The arrays are contiguous and read-only. ``timeframe_ms`` is the most common step between
    bars (computed when left at 0); ``gaps`` lists ``(ts of the bar before the hole, missing
    bars)`` and is always derived from ``ts`` and ``timeframe_ms``. ``sha256`` is the hash of the
    file the bars came from ("" when built in memory).
    """

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    path: Path | None = None
    timeframe_ms: int = 0
    sha256: str = ""
    spike_fixes: tuple[SpikeFix, ...] = ()  # bad prints dropped or clipped by the loader
    gaps: tuple[Gap, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts", _frozen(self.ts, np.int64, "ts"))
        for name in ("open", "high", "low", "close", "volume"):
            object.__setattr__(self, name, _frozen(getattr(self, name), np.float64, name))
        _check_lengths("Candles", {n: getattr(self, n) for n in ("ts", *_OHLCV_KEYS[1:])})
        if self.path is not None and not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))
        if self.timeframe_ms == 0:
            object.__setattr__(self, "timeframe_ms", _modal_step(self.ts))
        elif self.timeframe_ms < 0:
            raise ParameterError("timeframe_ms", self.timeframe_ms, "must be >= 0")
        object.__setattr__(self, "gaps", _find_gaps(self.ts, self.timeframe_ms))

    def __len__(self) -> int:
        return len(self.ts)

    def __repr__(self) -> str:
        span = f"{_iso(int(self.ts[0]))} -> {_iso(int(self.ts[-1]))}" if len(self) else "empty"
        return (
            f"Candles({len(self)} x {_fmt_tf(self.timeframe_ms)}, {span}, "
            f"gaps={len(self.gaps)}, path={self.path})"
        )

    @property
    def missing_bars(self) -> int:
        """Total number of bars missing inside the gaps."""
        return sum(n for _, n in self.gaps)

    def slice(self, start: TimeLike = None, end: TimeLike = None) -> Candles:
        """Bars with ``start <= ts < end`` (either bound optional); shares memory, keeps the
        file's timeframe and hash, recomputes the gaps."""
        part = _index_range(self.ts, start, end)
        return Candles(
            self.ts[part], self.open[part], self.high[part], self.low[part],
            self.close[part], self.volume[part],
            path=self.path, timeframe_ms=self.timeframe_ms, sha256=self.sha256,
            spike_fixes=self.spike_fixes,
        )  # fmt: skip

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame indexed by UTC bar-open time, with columns open, high, low, close,
        volume."""
        index = pd.DatetimeIndex(pd.to_datetime(self.ts, unit="ms", utc=True), name="timestamp")
        return pd.DataFrame({n: getattr(self, n) for n in _OHLCV_KEYS[1:]}, index=index)


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class FundingSeries:
    """Funding rates per funding time (epoch ms, UTC), as the venue publishes them: a positive
    rate means longs pay shorts."""

    ts: np.ndarray
    rate: np.ndarray
    path: Path | None = None
    sha256: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts", _frozen(self.ts, np.int64, "ts"))
        object.__setattr__(self, "rate", _frozen(self.rate, np.float64, "rate"))
        _check_lengths("FundingSeries", {"ts": self.ts, "rate": self.rate})
        if self.path is not None and not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))

    def __len__(self) -> int:
        return len(self.ts)

    def __repr__(self) -> str:
        span = f"{_iso(int(self.ts[0]))} -> {_iso(int(self.ts[-1]))}" if len(self) else "empty"
        return f"FundingSeries({len(self)} every {_fmt_tf(self.interval_ms)}, {span})"

    @property
    def interval_ms(self) -> int:
        """The most common step between funding times, rounded to the second (venues stamp
        funding a few ms late)."""
        step = _modal_step(self.ts // 1000 * 1000)
        return step

    def slice(self, start: TimeLike = None, end: TimeLike = None) -> FundingSeries:
        part = _index_range(self.ts, start, end)
        return FundingSeries(self.ts[part], self.rate[part], path=self.path, sha256=self.sha256)

    def to_frame(self) -> pd.DataFrame:
        index = pd.DatetimeIndex(pd.to_datetime(self.ts, unit="ms", utc=True), name="timestamp")
        return pd.DataFrame({"rate": self.rate}, index=index)


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Trades:
    """Trades in time order (equal timestamps allowed). ``side`` is the taker's side:
    +1 buy, -1 sell, 0 unknown."""

    ts: np.ndarray
    price: np.ndarray
    size: np.ndarray
    side: np.ndarray | None = None
    path: Path | None = None
    sha256: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts", _frozen(self.ts, np.int64, "ts"))
        object.__setattr__(self, "price", _frozen(self.price, np.float64, "price"))
        object.__setattr__(self, "size", _frozen(self.size, np.float64, "size"))
        side = np.zeros(len(self.ts), dtype=np.int8) if self.side is None else self.side
        side = _frozen(side, np.int8, "side")
        object.__setattr__(self, "side", side)
        arrays = {"ts": self.ts, "price": self.price, "size": self.size, "side": side}
        _check_lengths("Trades", arrays)
        if self.path is not None and not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))

    @property
    def sides(self) -> np.ndarray:
        """``side`` after construction: never None (0 where the file has no side)."""
        assert self.side is not None  # set in __post_init__
        return self.side

    def __len__(self) -> int:
        return len(self.ts)

    def __repr__(self) -> str:
        span = f"{_iso(int(self.ts[0]))} -> {_iso(int(self.ts[-1]))}" if len(self) else "empty"
        return f"Trades({len(self)}, {span}, path={self.path})"

    def slice(self, start: TimeLike = None, end: TimeLike = None) -> Trades:
        part = _index_range(self.ts, start, end)
        return Trades(
            self.ts[part], self.price[part], self.size[part], self.sides[part],
            path=self.path, sha256=self.sha256,
        )  # fmt: skip

    def to_frame(self) -> pd.DataFrame:
        index = pd.DatetimeIndex(pd.to_datetime(self.ts, unit="ms", utc=True), name="timestamp")
        return pd.DataFrame(
            {"price": self.price, "size": self.size, "side": self.side}, index=index
        )
