"""Daily candles through ccxt: the σ history of a grid hedge without ``grid.volatility`` when it
runs on the market's clock (SPEC §5): REAL, and PAPER / RECOMMENDATION on a live feed.

One fetch (``fetch_daily_candles``) for both: REAL asks its wallet's venue client (keyed,
through the adapter's retries); PAPER and RECOMMENDATION ask the live feed's exchange without
a key (``PublicDailyCandles``: the same exchange and network the feed reads prices from).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import ccxt

from hedgekit.feeds.base import FeedError, redact

__all__ = ["DailyCandles", "PublicDailyCandles", "fetch_daily_candles"]

# Waits before the 2nd and 3rd attempt of a public fetch that failed for a temporary reason.
RETRY_DELAYS_S = (1.0, 3.0)


def fetch_daily_candles(exchange: Any, symbol: str, count: int, until_ms: int) -> list[list[float]]:
    """The last ``count`` daily candles ``[open ms, o, h, l, c, v]`` of ``symbol`` up to
    ``until_ms`` (the day's open candle included, its close the last price), oldest first.
    ccxt errors are the caller's (each side retries its own way)."""
    rows = exchange.fetch_ohlcv(symbol, "1d", None, count, {"until": until_ms})
    return [[float(x) for x in r[:6]] for r in rows if r[0] <= until_ms][-count:]


class DailyCandles(Protocol):
    """Where a grid hedge's σ history comes from: a REAL venue, or ``PublicDailyCandles``."""

    symbol: str

    def daily_candles(self, count: int, until_ms: int) -> list[list[float]]: ...


class PublicDailyCandles:
    """The public daily candles of ``symbol`` on ccxt's ``exchange_id`` (no key), on its
    testnet when ``sandbox`` (as ``CcxtFeed`` reads its prices). ``urls`` replaces entries of
    the client's API URL table (a local stub in the tests). Temporary errors (ccxt
    ``NetworkError``: timeouts, 429, 5xx) are tried three times; what still fails is a
    ``FeedError`` naming the exchange, the symbol and the cause."""

    def __init__(self, exchange_id: str, symbol: str, *, sandbox: bool = True, urls: dict[str, Any] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
        from hedgekit.feeds.live import make_exchange

        self.exchange = make_exchange(exchange_id, sandbox, {"enableRateLimit": not urls}, sync=True)
        if urls:  # after the sandbox switch, which swaps the URL table
            self.exchange.urls["api"] = {**self.exchange.urls["api"], **urls}
        self.name = exchange_id
        self.symbol = symbol
        self._sleep = sleep

    def daily_candles(self, count: int, until_ms: int) -> list[list[float]]:
        what = f"{self.name}: fetching the daily candles of {self.symbol} failed"
        for attempt in range(len(RETRY_DELAYS_S) + 1):
            try:
                return fetch_daily_candles(self.exchange, self.symbol, count, until_ms)
            except ccxt.NetworkError as err:
                if attempt == len(RETRY_DELAYS_S):
                    raise FeedError(f"{what} {attempt + 1} times: {type(err).__name__}: {redact(str(err))[:300]}") from None
                self._sleep(RETRY_DELAYS_S[attempt])
            except ccxt.BaseError as err:
                raise FeedError(f"{what}: {type(err).__name__}: {redact(str(err))[:300]}") from None
        raise AssertionError("unreachable")  # pragma: no cover
