"""A local stand-in for Binance's USD-M websocket, replaying a REAL recorded feed.

The messages come from hftbacktest's raw Binance capture (``<receive ns> <combined-stream
JSON>`` per line, see ``../shared/data/README.md``), sent byte for byte. The server listens on
127.0.0.1 with a port chosen by the OS (kept across ``stop()``/``start()``, so a client can
reconnect to the same URL), and can misbehave on request:

* ``drop_after=N``: abort each connection (no close frame) after N messages on it;
* ``refuse(n, status)``: answer the next ``n`` handshakes with an HTTP error instead;
* ``resend=K``: on every connection after the first, start K messages before where the last
  one stopped (a server replaying recent trades, to exercise the client's dedupe);
* ``hold_at=P`` / ``release(P)``: stop sending once P messages of the file were sent, keeping
  the connection open and silent (a stalled stream); at the end of the file it also goes silent;
* ``stop()``: kill the server (abort every connection, close the listener); ``start()`` again
  brings it back on the same port.

The replay position is shared by all connections: a reconnecting client continues the file.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from http import HTTPStatus
from pathlib import Path
from typing import Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
BTC_FEED = DATA_DIR / "hftbacktest" / "usdm_btcusdt_20240808.gz"


def load_messages(
    path: Path = BTC_FEED, *, trades_only: bool = True, limit: int | None = None
) -> list[tuple[int, str]]:
    """``(receive ns, message text)`` for the file's lines, in file order (only ``@trade``
    messages when ``trades_only``), at most ``limit`` of them."""
    out: list[tuple[int, str]] = []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            if trades_only and '@trade"' not in line:
                continue
            stamp, _, text = line.rstrip("\n").partition(" ")
            out.append((int(stamp), text))
            if limit is not None and len(out) >= limit:
                break
    return out


def market_trades(messages: list[tuple[int, str]]) -> list[tuple[int, int, float]]:
    """``(trade id, trade time ms, price)`` of the MARKET trades among ``messages``, computed
    independently of the client's parser."""
    out = []
    for _, text in messages:
        data = json.loads(text).get("data") or {}  # one line is a REST depth snapshot
        if data.get("e") == "trade" and data.get("X", "MARKET") == "MARKET":
            out.append((int(data["t"]), int(data["T"]), float(data["p"])))
    return out


class BinanceWsServer:
    def __init__(
        self,
        messages: list[tuple[int, str]],
        *,
        speed: float | None = None,
        drop_after: int | None = None,
        resend: int = 0,
        hold_at: int | None = None,
    ) -> None:
        self.messages = messages
        self.speed = speed  # None: as fast as possible; else recorded time / speed
        self.drop_after = drop_after
        self.resend = resend
        self.hold_at = hold_at
        self.position = 0  # index of the next message of the file to send
        self.sent_total = 0  # messages sent, repeats included
        self.connections = 0  # accepted handshakes
        self.refused = 0
        self.port = 0
        self._refuse: list[HTTPStatus] = []
        self._server: Server | None = None
        self._live: set[ServerConnection] = set()
        self._moved = asyncio.Event()  # set whenever position or hold_at changes

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream?streams=btcusdt@trade"

    async def start(self) -> None:
        if self._server is not None:
            return
        self._server = await serve(
            self._handle, "127.0.0.1", self.port, process_request=self._gate, compression=None
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Kill: abort every connection (no close frame), then close the listener."""
        if self._server is None:
            return
        for conn in list(self._live):
            conn.transport.abort()
        self._server.close(close_connections=False)
        await self._server.wait_closed()
        self._server = None

    def refuse(self, n: int, status: HTTPStatus = HTTPStatus.SERVICE_UNAVAILABLE) -> None:
        self._refuse.extend([status] * n)

    def release(self, hold_at: int | None) -> None:
        self.hold_at = hold_at
        self._moved.set()

    async def wait_position(self, n: int) -> None:
        while self.position < n:
            self._moved.clear()
            await self._moved.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _gate(self, conn: ServerConnection, request: Request) -> Response | None:
        if self._refuse:
            self.refused += 1
            status = self._refuse.pop(0)
            return conn.respond(status, f"{status.phrase}\n")
        return None

    async def _idle(self, conn: ServerConnection) -> bool:
        """Wait until the position or the hold changes (True) or the connection ends (False)."""
        moved = asyncio.ensure_future(self._moved.wait())
        closed = asyncio.ensure_future(conn.wait_closed())
        done, pending = await asyncio.wait({moved, closed}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return closed not in done

    async def _handle(self, conn: ServerConnection) -> None:
        self.connections += 1
        if self.connections > 1 and self.resend:
            self.position = max(0, self.position - self.resend)
        self._live.add(conn)
        sent_here = 0
        try:
            while True:
                if self.position >= len(self.messages) or (
                    self.hold_at is not None and self.position >= self.hold_at
                ):
                    self._moved.clear()
                    if not await self._idle(conn):  # silent until released, or gone
                        return
                    continue
                if self.speed is not None and self.position > 0:
                    step_ns = self.messages[self.position][0] - self.messages[self.position - 1][0]
                    await asyncio.sleep(max(0, step_ns) / 1e9 / self.speed)
                await conn.send(self.messages[self.position][1])
                self.position += 1
                self.sent_total += 1
                sent_here += 1
                self._moved.set()
                if self.drop_after is not None and sent_here >= self.drop_after:
                    # let what was sent leave the process, so the drop loses nothing already
                    # counted as sent (a real outage may; the client cannot recover that)
                    while conn.transport.get_write_buffer_size():
                        await asyncio.sleep(0.001)
                    conn.transport.abort()
                    return
        except ConnectionClosed:
            return
        finally:
            self._live.discard(conn)
