"""The websocket half of a stub exchange: an asyncio ``websockets`` server on 127.0.0.1 (a free
port) in a thread of its own, started and stopped with the stub.

The stub decides what each connection is (``accept(path) -> key or None``: None refuses it)
and what it asks (``on_message(conn, text)``); it pushes with ``send(keys, message)`` from any
thread. Each connection has one ordered outbox, so messages go out in the order they were
pushed. Faults a test switches on (each stated by the test):

* ``duplicate``: every pushed message is sent twice;
* ``reverse``: the messages of one ``flush`` go out in reverse order (out of order);
* ``drop_next``: the next N flushes that carry a fill drop every connection instead of
  sending anything (the event is booked at the venue, never pushed: a disconnect mid-cycle);
* ``silent``: nothing is pushed (connections stay up): only REST shows what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve


@dataclass(eq=False)
class WsConn:
    ws: ServerConnection
    key: Any  # what the stub calls this connection (a listenKey, "" until a subscription)
    outbox: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    subscriptions: set[Any] = field(default_factory=set)


class WsServer:
    def __init__(self, accept: Callable[[str], Any], on_message: Callable[[WsConn, str], None] | None = None) -> None:
        self._accept = accept
        self._on_message = on_message
        self.conns: list[WsConn] = []
        self.connections = 0  # accepted so far
        self.pushed = 0  # messages sent so far
        self.sent_tags: list[Any] = []  # the tags (trade ids) of the messages sent, in order
        self.sent_copies: Counter[Any] = Counter()  # tag -> copies sent (duplicates, connections)
        self.duplicate = False
        self.reverse = False
        self.drop_next = 0
        self.dropped = 0  # connections dropped by ``drop_next``
        self.silent = False
        self._pending: list[tuple[Callable[[WsConn], bool], str, Any]] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="stub-ws", daemon=True)

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> WsServer:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    async def _serve(self) -> Server:
        return await serve(self._handler, "127.0.0.1", 0, ping_interval=None)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = next(iter(self._server.sockets)).getsockname()[:2]
        return f"ws://{host}:{port}"

    # -- pushing (any thread) ------------------------------------------------------------------
    def push(self, to: Callable[[WsConn], bool], message: Any, tag: Any = None) -> None:
        """Queue ``message`` for the connections ``to`` accepts; sent at the next ``flush``."""
        with self._lock:
            self._pending.append((to, message if isinstance(message, str) else json.dumps(message), tag))

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            if not batch or self.silent:
                return
            if self.drop_next > 0 and any(tag is not None for _, _, tag in batch):
                self.drop_next -= 1
                self._loop.call_soon_threadsafe(self._drop_all)
                return
            if self.reverse:
                batch.reverse()
            for to, text, tag in batch:
                sent = False
                for conn in list(self.conns):
                    if to(conn):
                        for _ in range(2 if self.duplicate else 1):
                            self._loop.call_soon_threadsafe(conn.outbox.put_nowait, text)
                            self.pushed += 1
                            if tag is not None:
                                self.sent_copies[tag] += 1
                        sent = True
                if sent and tag is not None:
                    self.sent_tags.append(tag)

    def send_now(self, conn: WsConn, message: Any) -> None:
        """An answer to what ``conn`` asked (on the server's thread: in ``on_message``)."""
        conn.outbox.put_nowait(message if isinstance(message, str) else json.dumps(message))

    def _drop_all(self) -> None:
        for conn in list(self.conns):
            self.dropped += 1
            conn.outbox.put_nowait(None)

    # -- the server's side -----------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        key = self._accept(ws.request.path if ws.request is not None else "")
        if key is None:
            await ws.close(1008, "invalid listen key")
            return
        conn = WsConn(ws, key)
        with self._lock:
            self.conns.append(conn)
            self.connections += 1
        sender = asyncio.create_task(self._send(conn))
        try:
            async for text in ws:
                if self._on_message is not None:
                    self._on_message(conn, str(text))
        except Exception:  # noqa: S110 - a client gone mid-read is what the fault tests do
            pass
        finally:
            with self._lock:
                if conn in self.conns:
                    self.conns.remove(conn)
            sender.cancel()

    async def _send(self, conn: WsConn) -> None:
        while True:
            text = await conn.outbox.get()
            if text is None:  # dropped: the connection ends without a closing handshake
                with self._lock:
                    if conn in self.conns:
                        self.conns.remove(conn)
                conn.ws.transport.abort()
                return
            try:
                await conn.ws.send(text)
            except Exception:
                return
