"""Live price feeds: Binance USD-M trade stream (own websocket client) and any ccxt exchange.

Both follow the contract in :mod:`hedgekit.feeds.base`: an async iterator of
:class:`PricePoint` and :class:`FeedStatusChange` items with ``async close()``; automatic
reconnection with exponential :class:`Backoff`; ``STALE`` after ``stale_after`` seconds without
a price and ``LIVE`` again on the next one; no duplicated or reordered prices.

Nothing touches the network at construction; the connection opens on the first ``__anext__``::

    async with BinanceTradeStream("BTCUSDT", stale_after=10) as feed:
        async for item in feed:
            ...
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support
import ccxt.pro
from loguru import logger
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException

from hedgekit.core.errors import ParameterError
from hedgekit.feeds.base import (
    Backoff,
    Bar,
    Clock,
    FeedError,
    FeedItem,
    FeedStatus,
    FeedStatusChange,
    LiveFeed,
    PricePoint,
    SystemClock,
    describe,
    redact,
)

__all__ = [
    "BINANCE_USDM_WS",
    "Backoff",
    "Bar",
    "BinanceTradeStream",
    "CcxtFeed",
    "Clock",
    "FeedError",
    "FeedItem",
    "FeedStatus",
    "FeedStatusChange",
    "PricePoint",
    "SystemClock",
    "parse_binance_trade",
]

BINANCE_USDM_WS = "wss://fstream.binance.com"

# -- Binance ----------------------------------------------------------------------------------


def parse_binance_trade(
    raw: str | bytes | Mapping[str, Any], symbol: str | None = None
) -> PricePoint | None:
    """The price in one Binance ``<symbol>@trade`` message, raw (``{"e": "trade", ...}``) or
    combined-stream (``{"stream": ..., "data": {...}}``).

    Returns None for anything that is not a MARKET trade of ``symbol`` (other streams,
    subscription answers, insurance-fund and ADL prints). ``ts`` is the trade time ``T``,
    ``seq`` the trade id ``t``. Raises ``ValueError`` for a message that claims to be a trade
    but cannot be read.
    """
    msg = json.loads(raw) if isinstance(raw, str | bytes) else raw
    if not isinstance(msg, Mapping):
        raise ValueError(f"expected a JSON object, got {type(msg).__name__}")
    data = msg["data"] if isinstance(msg.get("data"), Mapping) else msg
    if data.get("e") != "trade":
        return None
    if data.get("X", "MARKET") != "MARKET":
        return None
    if symbol is not None and data.get("s", symbol) != symbol:
        return None
    try:
        ts, seq, price = int(data["T"]), int(data["t"]), float(data["p"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"broken trade message ({exc!r})") from exc
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"broken trade message (price {data['p']!r})")
    return PricePoint(ts, price, seq)


_BINANCE_SYMBOL = re.compile(r"^[A-Z0-9]{2,30}$")
# HTTP answers to the handshake that retrying will not fix (408 timeout, 418/429 rate limits
# are temporary).
_RETRYABLE_4XX = {HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.IM_A_TEAPOT, HTTPStatus.TOO_MANY_REQUESTS}


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


class BinanceTradeStream(LiveFeed):
    """Prices from the Binance USD-M ``<symbol>@trade`` websocket stream.

    ``url`` defaults to the combined-stream endpoint for ``symbol``; raw endpoints
    (``/ws/<symbol>@trade``) work too. Every disconnect or error is followed by a reconnection
    after the next backoff delay; trades the server sends again after a reconnect (id at or
    below the last delivered one) are dropped and counted in :attr:`dropped`.
    """

    def __init__(
        self,
        symbol: str = "BTCUSDT",
        url: str | None = None,
        *,
        stale_after: float = 10.0,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        clean = symbol.strip().upper() if isinstance(symbol, str) else ""
        if not _BINANCE_SYMBOL.match(clean):
            raise ParameterError(
                "symbol", symbol, "use Binance's own id such as BTCUSDT (not BTC/USDT:USDT)"
            )
        if url is None:
            url = f"{BINANCE_USDM_WS}/stream?streams={clean.lower()}@trade"
        if not isinstance(url, str) or urlsplit(url).scheme not in ("ws", "wss"):
            raise ParameterError("url", url, "must be a ws:// or wss:// URL")
        if not open_timeout > 0:
            raise ParameterError("open_timeout", open_timeout, "must be a positive number")
        super().__init__(f"binance:{clean}", stale_after=stale_after, backoff=backoff, clock=clock)
        self.symbol = clean
        self.url = url
        self.open_timeout = float(open_timeout)
        self.connections = 0  # successful handshakes
        self.malformed = 0  # trade messages that could not be read (skipped, logged)

    async def _run(self) -> None:
        while True:
            reason = await self._session()
            await self._retry(reason)

    async def _session(self) -> str:
        """One connection, read until it ends; returns why it ended."""
        try:
            async with connect(
                self.url, open_timeout=self.open_timeout, close_timeout=1.0, max_size=2**20
            ) as ws:
                self.connections += 1
                logger.info(
                    "feed {}: connected to {} (connection {})",
                    self.name, _safe_url(self.url), self.connections,
                )  # fmt: skip
                async for raw in ws:
                    self._on_message(raw)
            return "the server closed the connection"
        except InvalidURI as exc:
            raise FeedError(f"feed {self.name}: bad websocket URL ({describe(exc)})") from exc
        except InvalidStatus as exc:
            code = exc.response.status_code
            if 400 <= code < 500 and code not in _RETRYABLE_4XX:
                raise FeedError(
                    f"feed {self.name}: the server refused the stream with HTTP {code}; "
                    "check the symbol and the URL"
                ) from exc
            return describe(exc)
        except (OSError, TimeoutError, WebSocketException) as exc:
            return describe(exc)

    def _on_message(self, raw: str | bytes) -> None:
        try:
            point = parse_binance_trade(raw, self.symbol)
        except ValueError as exc:
            self.malformed += 1
            if self.malformed <= 5 or self.malformed % 1000 == 0:
                logger.warning(
                    "feed {}: skipped unreadable message #{} ({}): {!r}",
                    self.name, self.malformed, exc, raw[:200],
                )  # fmt: skip
            return
        if point is not None:
            self._data_flowing()
            self._deliver(point)


# -- ccxt -------------------------------------------------------------------------------------

FeedMode = Literal["trades", "ticker", "rest"]


def _exchange_class(exchange_id: str, sync: bool = False) -> type[Any]:
    if sync and exchange_id in ccxt.exchanges:
        return getattr(ccxt, exchange_id)
    if not sync and exchange_id in ccxt.pro.exchanges:
        return getattr(ccxt.pro, exchange_id)
    if not sync and exchange_id in ccxt.async_support.exchanges:
        return getattr(ccxt.async_support, exchange_id)
    close = difflib.get_close_matches(str(exchange_id), ccxt.async_support.exchanges, n=3)
    hint = f"did you mean {' or '.join(close)}?" if close else "see ccxt.exchanges for the ids"
    raise ParameterError("exchange_id", exchange_id, f"not an exchange ccxt knows; {hint}")


def make_exchange(exchange_id: str, sandbox: bool, config: Mapping[str, Any] | None, *, sync: bool = False) -> Any:
    """A keyless ccxt client of ``exchange_id`` (ccxt.pro / async, or plain ``sync`` ccxt),
    on its testnet when ``sandbox``."""
    exchange = _exchange_class(exchange_id, sync)(dict(config or {}))
    if sandbox:
        if not exchange.urls.get("test"):
            raise ParameterError(
                "sandbox", True,
                f"{exchange_id} has no testnet in ccxt; pass sandbox=False to read mainnet prices",
            )  # fmt: skip
        exchange.set_sandbox_mode(True)
    return exchange


def _numeric_id(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class CcxtFeed(LiveFeed):
    """Prices of ``symbol`` on any exchange ccxt supports (unified symbols, e.g.
    ``BTC/USDT:USDT``).

    Mode (:attr:`mode`): ccxt.pro ``watch_trades`` when the exchange has it, else
    ``watch_ticker``, else REST polling of ``fetch_ticker`` every ``poll_interval`` seconds;
    ``prefer_rest=True`` forces polling. ``sandbox=True`` (default) switches the exchange to its
    testnet, so prices match where a testnet wallet's orders trigger.

    Temporary errors (ccxt ``NetworkError``, ``BadResponse``... any ``OperationFailed``) are
    retried with backoff; anything else (``BadSymbol``, ``NotSupported``, ``AuthenticationError``)
    closes the feed with :class:`FeedError`.

    ``exchange`` injects a ready ccxt-like object (tests, or a shared instance): it is then
    used as is (no sandbox switch) and not closed by :meth:`close`.

    Dedupe: trades with numeric ids are delivered with ``seq = id`` and dropped when the id is
    not above the last one; trades with other ids, and tickers, get ``seq`` from a counter and
    are dropped when their timestamp goes back (tickers: when it does not advance).
    """

    def __init__(
        self,
        exchange_id: str = "binanceusdm",
        symbol: str = "BTC/USDT:USDT",
        *,
        sandbox: bool = True,
        prefer_rest: bool = False,
        poll_interval: float = 2.0,
        stale_after: float = 10.0,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
        exchange: Any | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float):
            raise ParameterError("poll_interval", poll_interval, "must be a positive number")
        if not poll_interval > 0:
            raise ParameterError("poll_interval", poll_interval, "must be a positive number")
        if not isinstance(symbol, str) or not symbol.strip():
            raise ParameterError("symbol", symbol, "use ccxt's unified symbol, e.g. BTC/USDT:USDT")
        if exchange is None:
            self.exchange = make_exchange(exchange_id, sandbox, config)
            self._owns_exchange = True
        else:
            self.exchange = exchange
            self._owns_exchange = False
            exchange_id = str(getattr(exchange, "id", exchange_id))
        super().__init__(
            f"{exchange_id}:{symbol}", stale_after=stale_after, backoff=backoff, clock=clock
        )
        self.exchange_id = exchange_id
        self.symbol = symbol
        self.poll_interval = float(poll_interval)
        self.mode: FeedMode = self._pick_mode(prefer_rest)
        self._last_ts: int | None = None
        self._ids_at_last_ts: set[str] = set()
        self._opaque_ids = False
        self._disconnected = False

    def _pick_mode(self, prefer_rest: bool) -> FeedMode:
        has = getattr(self.exchange, "has", {}) or {}
        if not prefer_rest and has.get("watchTrades"):
            return "trades"
        if not prefer_rest and has.get("watchTicker"):
            return "ticker"
        if has.get("fetchTicker"):
            return "rest"
        raise ParameterError(
            "exchange_id", self.exchange_id,
            "ccxt offers neither watchTrades, watchTicker nor fetchTicker for it",
        )  # fmt: skip

    async def _run(self) -> None:
        loops = {"trades": self._watch_trades, "ticker": self._watch_ticker, "rest": self._poll}
        logger.info("feed {}: reading prices by {}", self.name, self.mode)
        while True:
            try:
                await loops[self.mode]()
            except ccxt.OperationFailed as exc:  # NetworkError and friends: temporary
                await self._retry(describe(exc))
            except ccxt.BaseError as exc:
                raise FeedError(f"feed {self.name}: {describe(exc)} (not retried)") from exc

    async def _watch_trades(self) -> None:
        while True:
            trades = await self.exchange.watch_trades(self.symbol)
            for trade in sorted(trades, key=lambda t: t.get("timestamp") or 0):
                self._on_trade(trade)

    async def _watch_ticker(self) -> None:
        while True:
            self._on_ticker(await self.exchange.watch_ticker(self.symbol))

    async def _poll(self) -> None:
        while True:
            self._on_ticker(await self.exchange.fetch_ticker(self.symbol))
            await self.clock.sleep(self.poll_interval)

    def _on_trade(self, trade: Mapping[str, Any]) -> None:
        price, ts, trade_id = trade.get("price"), trade.get("timestamp"), trade.get("id")
        if price is None or ts is None or not price > 0:
            logger.warning("feed {}: skipped a trade without price or time: {}", self.name, trade)
            return
        self._data_flowing()
        ts = int(ts)
        number = None if self._opaque_ids else _numeric_id(trade_id)
        if number is not None:
            seq = number
        else:
            self._opaque_ids = True
            last = self._last_ts
            repeated = ts == last and (trade_id is None or str(trade_id) in self._ids_at_last_ts)
            if last is not None and (ts < last or repeated):
                self.dropped += 1
                return
            seq = (self.last_seq or 0) + 1
        if self._deliver(PricePoint(ts, float(price), seq)):
            if ts != self._last_ts:
                self._ids_at_last_ts.clear()
            self._last_ts = ts
            self._ids_at_last_ts.add(str(trade_id))

    def _on_ticker(self, ticker: Mapping[str, Any]) -> None:
        price = ticker.get("last") or ticker.get("close")
        if price is None and ticker.get("bid") and ticker.get("ask"):
            price = (ticker["bid"] + ticker["ask"]) / 2
        if price is None or not price > 0:
            logger.warning("feed {}: skipped a ticker without a price", self.name)
            return
        self._data_flowing()
        stamp = ticker.get("timestamp")
        ts = int(stamp) if stamp is not None else self.clock.now_ms()
        if self._last_ts is not None and ts <= self._last_ts:
            self.dropped += 1
            return
        self._last_ts = ts
        self._deliver(PricePoint(ts, float(price), (self.last_seq or 0) + 1))

    async def _disconnect(self) -> None:
        if self._disconnected or not self._owns_exchange:
            return
        self._disconnected = True
        try:
            await self.exchange.close()
        except ccxt.BaseError as exc:  # already closed or never opened: nothing left to free
            logger.debug("feed {}: closing the exchange: {}", self.name, redact(str(exc)))
