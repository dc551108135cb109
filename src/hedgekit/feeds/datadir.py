"""Where downloaded history lives: freqtrade's folder and file names, the venue-quirk table,
and ``exchange/symbol/timeframe`` references to those files in configs.

freqtrade's layout, so that a freqtrade ``user_data/data`` folder and a hedgekit download
folder are interchangeable::

    DIR/binance/futures/BTC_USDT_USDT-1m-futures.feather       candles of a perpetual
    DIR/binance/futures/BTC_USDT_USDT-8h-funding_rate.feather  funding (the rate in ``open``)
    DIR/binance/futures/BTC_USDT_USDT-8h-mark.feather          mark-price candles
    DIR/binance/BTC_USDT-1m.feather                            spot candles

Nothing here touches the network (the fetching is :mod:`hedgekit.feeds.download`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from hedgekit.core.errors import HedgekitError
from hedgekit.feeds.errors import DataError
from hedgekit.feeds.history import Candles, to_epoch_ms

__all__ = [
    "DEFAULT_DOWNLOAD_DIR",
    "VENUES",
    "DownloadError",
    "MarketRef",
    "SeriesKind",
    "VenueQuirks",
    "check_symbol",
    "data_file",
    "is_contract",
    "iso",
    "missing_span",
    "pair_of_file",
    "parse_market_ref",
    "quirks_for",
    "resolve_market_ref",
    "timeframe_ms",
]

SeriesKind = Literal["candles", "funding", "mark"]
DEFAULT_DOWNLOAD_DIR = "data"


class DownloadError(HedgekitError):
    """A download cannot go on; the message names the exchange, symbol, series and time."""


# -- venue quirks -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VenueQuirks:
    """What differs between venues, as data (not branches in the code).

    ``candle_limit``/``funding_limit``: rows per request (what ccxt lets through, at most the
    API's maximum); ``funding_timeframe``/``mark_timeframe`` name the files as freqtrade does
    (None: the venue has no such series); ``folder``: freqtrade's name for the exchange's data
    folder; ``spot_markets``/``swap_markets``: the only market kinds ccxt needs to load for a
    spot / contract symbol (ccxt's ``fetchMarkets.types``), which spares requests.
    """

    candle_limit: int = 500
    funding_limit: int = 100
    funding_timeframe: str | None = "8h"
    mark_timeframe: str | None = "8h"
    folder: str | None = None
    spot_markets: tuple[str, ...] = ()
    swap_markets: tuple[str, ...] = ()
    # Asked with `since` alone, the venue answers with the first rows after it: an empty
    # window (before the listing, an outage) is then skipped in one request, not walked.
    skips_empty: bool = False
    note: str = ""


VENUES: dict[str, VenueQuirks] = {
    # The USD-M API takes 1500 klines per request; ccxt caps fetch_ohlcv at 1000.
    "binanceusdm": VenueQuirks(
        candle_limit=1000, funding_limit=1000, folder="binance",
        swap_markets=("linear",), skips_empty=True,
    ),
    "binance": VenueQuirks(
        candle_limit=1000, funding_limit=1000, folder="binance",
        spot_markets=("spot",), swap_markets=("linear",), skips_empty=True,
    ),
    # v5 pages are newest first; mark klines have no 8h interval (freqtrade uses 4h).
    "bybit": VenueQuirks(
        candle_limit=1000, funding_limit=200, mark_timeframe="4h",
        spot_markets=("spot",), swap_markets=("linear",),
    ),
    # Funding every hour; no mark-price candles; the API keeps only the latest 5000 candles.
    "hyperliquid": VenueQuirks(
        candle_limit=5000, funding_limit=500, funding_timeframe="1h", mark_timeframe=None,
        spot_markets=("spot",), swap_markets=("swap",),
        note="keeps only the most recent 5000 candles of each timeframe",
    ),
}


def quirks_for(exchange_id: str) -> VenueQuirks:
    """The venue's quirks; any other ccxt exchange gets conservative defaults."""
    return VENUES.get(exchange_id, VenueQuirks())


# -- names and references ---------------------------------------------------------------------

_TF = re.compile(r"^(\d+)([smhdwM])$")
_TF_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000,
          "M": 2_592_000_000}  # fmt: skip


def timeframe_ms(timeframe: str) -> int:
    match = _TF.match(timeframe)
    if not match:
        raise DownloadError(f"timeframe {timeframe!r}: expected like 1m, 5m, 1h, 8h, 1d")
    return int(match.group(1)) * _TF_MS[match.group(2)]


def _pair_filename(symbol: str) -> str:
    # freqtrade's pair_to_filename: BTC/USDT:USDT -> BTC_USDT_USDT
    return re.sub(r"[/ .@$+:]", "_", symbol)


def is_contract(symbol: str) -> bool:
    """A ccxt symbol with a settle currency (``BTC/USDT:USDT``) is a contract, else spot."""
    return ":" in symbol


def data_file(root: str | Path, exchange_id: str, symbol: str, timeframe: str,
              kind: SeriesKind = "candles") -> Path:  # fmt: skip
    """Where freqtrade keeps this series under a data folder ``root`` (``user_data/data``)."""
    folder = Path(root) / (quirks_for(exchange_id).folder or exchange_id)
    pair = _pair_filename(symbol)
    if not is_contract(symbol):
        if kind != "candles":
            raise DownloadError(f"{symbol} is a spot market: it has no {kind} series")
        return folder / f"{pair}-{timeframe}.feather"
    suffix = {"candles": "futures", "funding": "funding_rate", "mark": "mark"}[kind]
    return folder / "futures" / f"{pair}-{timeframe}-{suffix}.feather"


@dataclass(frozen=True, slots=True)
class MarketRef:
    """``exchange/symbol/timeframe`` (e.g. ``binanceusdm/BTC/USDT:USDT/1m``) in a config or on
    the command line, instead of a file path. ``timeframe`` may be ``funding`` or ``mark`` to
    name those series at the venue's own interval."""

    exchange: str
    symbol: str
    timeframe: str

    @property
    def kind(self) -> SeriesKind:
        return self.timeframe if self.timeframe in ("funding", "mark") else "candles"  # type: ignore[return-value]

    def path(self, root: str | Path) -> Path:
        q = quirks_for(self.exchange)
        tf = {"funding": q.funding_timeframe, "mark": q.mark_timeframe}.get(
            self.timeframe, self.timeframe
        )
        if tf is None:
            raise DownloadError(f"{self.exchange} has no {self.timeframe} series")
        return data_file(root, self.exchange, self.symbol, tf, self.kind)

    def command(self, root: str | Path, start: str | None = None, end: str | None = None) -> str:
        """The `hedgekit download` command that fetches this series (with 1m candles when
        the reference names funding or mark prices)."""
        tf = f" --timeframe {self.timeframe}" if self.kind == "candles" else ""
        until = f" --to {end}" if end else ""
        return (f"hedgekit download --exchange {self.exchange} --symbol {self.symbol}{tf} "
                f"--from {start or '2024-01-01'}{until} --dir {root}")  # fmt: skip


_REF = re.compile(
    r"^(?P<exchange>[a-z][a-z0-9]*)/(?P<symbol>[A-Za-z0-9._-]+/[A-Za-z0-9._:-]+)/"
    r"(?P<tf>\d+[smhdwM]|funding|mark)$"
)


def parse_market_ref(value: str) -> MarketRef | None:
    """The reference named by ``value``, or None if it is not one (then it is a file path)."""
    match = _REF.match(value.strip())
    if match is None:
        return None
    return MarketRef(match["exchange"], match["symbol"], match["tf"])


def resolve_market_ref(value: str, root: str | Path, start: Any = None,
                       end: Any = None) -> Path | None:  # fmt: skip
    """The file a reference names under the download folder ``root``; None if ``value`` is a
    path. A missing file is an error that gives the `hedgekit download` command to run (for
    the ``start``/``end`` wanted, when known)."""
    ref = parse_market_ref(value)
    if ref is None or Path(value).exists():
        return None
    path = ref.path(root)
    if not path.is_file():
        since = None if start is None else iso(to_epoch_ms(start))
        until = None if end is None else iso(to_epoch_ms(end))
        raise DataError(
            path, f"no downloaded data for {value}",
            hint=f"fetch it with: {ref.command(root, since, until)}",
        )  # fmt: skip
    return path


def missing_span(value: str, root: str | Path, start: Any, end: Any,
                 candles: Candles) -> str | None:  # fmt: skip
    """For candles named by a reference: what the wanted ``[start, end)`` has that the
    downloaded file does not, with the command that fetches it; None if nothing is missing."""
    ref = parse_market_ref(value)
    if ref is None or not len(candles) or (start is None and end is None):
        return None
    first, after = int(candles.ts[0]), int(candles.ts[-1]) + candles.timeframe_ms
    spans = []
    if start is not None and to_epoch_ms(start) < first:
        spans.append((to_epoch_ms(start), first))
    if end is not None and to_epoch_ms(end) > after:
        spans.append((after, to_epoch_ms(end)))
    if not spans:
        return None
    text = " and ".join(f"{iso(a)} -> {iso(b)}" for a, b in spans)
    command = ref.command(root, iso(spans[0][0]), iso(spans[-1][1]))
    return f"{value} has no bars for {text}; fetch them with: {command}"


def iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


# freqtrade names a pair's files BASE_QUOTE[_SETTLE]-TIMEFRAME[-KIND].EXT (BTC_USDT_USDT-1m-futures.feather).
_PAIR_FILE = re.compile(
    r"^(?P<base>[A-Za-z0-9]+)_(?P<quote>[A-Za-z0-9]+)(?:_(?P<settle>[A-Za-z0-9]+))?"
    r"-\d+[smhdwM](?:-(?:futures|spot|mark|funding_rate|index|premiumIndex|trades))?"
    r"\.(?:feather|parquet|json|jsongz|json\.gz|csv|csv\.gz)$"
)


def pair_of_file(path: str | Path) -> str | None:
    """The ccxt pair a freqtrade-named data file holds (``BTC/USDT:USDT``), or None when the
    name does not say."""
    match = _PAIR_FILE.match(Path(path).name)
    if match is None:
        return None
    pair = f"{match['base']}/{match['quote']}"
    return f"{pair}:{match['settle']}" if match["settle"] else pair


def _base_quote(symbol: str) -> str:
    """BTC/USDT:USDT, BTC_USDT, btcusdt -> BTCUSDT (the settle currency is not part of the pair)."""
    return re.sub(r"[^A-Z0-9]", "", symbol.split(":")[0].upper())


def check_symbol(symbol: str, path: str | Path) -> None:
    """A DataError naming both when ``path``'s freqtrade name says it holds another pair than
    the config's ``instrument.symbol`` (an ETH file under a BTC config runs, with BTC's tick,
    lot and fees, and means nothing)."""
    pair = pair_of_file(path)
    if pair is not None and _base_quote(pair) != _base_quote(symbol):
        raise DataError(
            Path(path), f"the file holds {pair} (its name says so), but instrument.symbol is {symbol}",
            hint=f"set instrument.symbol: {_base_quote(pair)} (and its tick_size, lot_size, min_notional) "
            "or give the file of " + symbol,
        )
