"""The user-data stream of one REAL wallet: the account's own trades pushed by the venue's
websocket (``ccxt.pro`` ``watch_my_trades``), with REST polling as the safety net.

The stream runs on its own thread and event loop, so the synchronous adapter (``CcxtVenue``)
and the engine's loop never wait on it: it only collects trades. ``CcxtVenue.poll`` takes
them (``take``) and applies them through the one path every trade goes through (deduplicated
by trade id, in the exchange's order); the engine is woken (``notify``) so that a fill is
delivered without waiting for the next price.

What a stream can and cannot promise, and how the adapter uses it:

* a trade booked while no connection was up is never pushed (Binance does not replay; a
  Hyperliquid subscription starts with a snapshot of recent fills): after each (re)connect
  (``generation`` grows) the adapter polls REST once, and after every *re*connect the engine
  reconciles the wallet (SPEC §7);
* while the connection is down (``up`` is False) the adapter polls REST at every input, as
  without a stream; while it is up, REST is polled every ``CcxtVenue.rest_every_ms`` only;
* messages may come twice or out of order: the adapter deduplicates and sorts.

Trades are taken from ccxt's own trade cache as each message is parsed (not from what
``watch_my_trades`` returns: a message that arrives while no watch is pending is only in the
cache until the next one). Reconnects wait a bounded exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from loguru import logger

from hedgekit.logs import redact
from hedgekit.venues.ccxt_rows import RetryPolicy

CLOSE_TIMEOUT_S = 10.0


class UserStream:
    """The account's trades on ``symbol`` from ``make_exchange()`` (a ``ccxt.pro`` client,
    built on the stream's own thread)."""

    def __init__(
        self, make_exchange: Callable[[], Any], symbol: str, *, name: str = "venue",
        backoff: RetryPolicy | None = None,
    ) -> None:
        self._make = make_exchange
        self.symbol = symbol
        self.name = name
        self.backoff = backoff or RetryPolicy(attempts=0, base_s=0.5, max_s=30.0)
        self.notify: Callable[[], None] | None = None  # called on the stream's thread
        self.up = False
        self.generation = 0  # connections made so far
        self.drops = 0  # connections lost so far
        self.received: list[str] = []  # trade ids in arrival order (duplicates included)
        self._seen_generation = 1  # the engine reconciles after every connection past the first
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._closing = False

    # -- life cycle -------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"user-stream-{self.name}", daemon=True)
        self._thread.start()
        self._ready.wait(CLOSE_TIMEOUT_S)

    def close(self) -> None:
        """Stop watching and close the ccxt client (its websocket and HTTP session)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._closing = True
        if loop.is_running():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._cancel)
        thread.join(CLOSE_TIMEOUT_S)
        self._thread = None
        self.up = False

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self._main())
            self._ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._task)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        exchange = self._make()
        self._tap(exchange)
        failures = 0
        try:
            while True:
                try:
                    await exchange.watch_my_trades(self.symbol)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # any failure of the connection: REST covers, then retry
                    self._lost(err)
                    await asyncio.sleep(self.backoff.delay(min(failures, 16)))
                    failures += 1
        finally:
            with contextlib.suppress(Exception):
                await exchange.close()

    # -- what ccxt reports ----------------------------------------------------------------
    def _tap(self, exchange: Any) -> None:
        from ccxt.async_support.base.ws.cache import ArrayCacheBySymbolById

        stream = self

        class Tapped(ArrayCacheBySymbolById):
            def append(self, item: dict) -> None:
                super().append(item)
                stream._trade(dict(item))

        exchange.myTrades = Tapped(int(exchange.safe_integer(exchange.options, "tradesLimit", 1000)))
        on_connected, on_close, on_error = exchange.on_connected, exchange.on_close, exchange.on_error

        def connected(client: Any, message: Any = None) -> None:
            on_connected(client, message)
            with self._lock:
                self.up = True
                self.generation += 1
            logger.info("{}: user stream connected (connection {})", self.name, self.generation)
            self._wake()

        def closed(client: Any, error: Any) -> None:
            on_close(client, error)
            self._lost(error)

        def failed(client: Any, error: Any) -> None:
            on_error(client, error)
            self._lost(error)

        exchange.on_connected, exchange.on_close, exchange.on_error = connected, closed, failed

    def _trade(self, trade: dict[str, Any]) -> None:
        trade.pop("info", None)
        with self._lock:
            self._buffer.append(trade)
            self.received.append(str(trade.get("id")))
        self._wake()

    def _lost(self, err: Any) -> None:
        if self._closing:
            return
        with self._lock:
            was_up, self.up = self.up, False
            if was_up:
                self.drops += 1
        if was_up:
            logger.warning("{}: user stream lost ({}); REST polling until it is back",
                           self.name, redact(str(err))[:200])  # fmt: skip
            self._wake()

    def _wake(self) -> None:
        notify = self.notify
        if notify is not None:
            with contextlib.suppress(RuntimeError):  # the engine's loop is gone
                notify()

    # -- what the adapter and the engine read ---------------------------------------------------
    def take(self) -> list[dict[str, Any]]:
        """The trades received since the last call, in arrival order."""
        with self._lock:
            out, self._buffer = self._buffer, []
        return out

    @property
    def pending(self) -> bool:
        return bool(self._buffer)

    def take_reconnect(self) -> bool:
        """True once after each connection past the first (the engine then reconciles)."""
        with self._lock:
            if self.generation > self._seen_generation:
                self._seen_generation = self.generation
                return True
            return False
