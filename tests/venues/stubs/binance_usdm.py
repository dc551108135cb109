"""A local stand-in for Binance USD-M futures REST (the private trading API), for REAL-mode tests.

It speaks what ``ccxt.binanceusdm`` 4.5 sends (read from ccxt's source) and answers in Binance's
own layout and error codes:

* every private call is **signed**: the ``X-MBX-APIKEY`` header must be the stub's key
  (else HTTP 401, code -2015) and the ``signature`` must be the HMAC-SHA256 of everything
  before ``&signature=`` (query string for GET/DELETE, body for POST) under the stub's secret
  (else HTTP 400, code -1022, "Signature for this request is not valid."); ``timestamp`` must be
  within ``recvWindow`` (-1021);
* plain orders (``/fapi/v1/order``, ``openOrders``) and conditional ones on the algo service
  (``/fapi/v1/algoOrder``, ``openAlgoOrders``: ccxt sends STOP_MARKET there with
  ``clientAlgoId`` and ``triggerPrice``); a triggered algo order becomes a MARKET order in the
  matching engine with its own ``orderId`` (``actualOrderId`` on the algo order);
* the spot wallet (``GET /api/v3/account``, signed the same way; ``spot`` sets it) and daily
  ``/fapi/v1/klines`` (``klines``, set by the test from real data; the last one follows the price);
* the account: one-way netting of BTCUSDT, wallet balance, fees, realized PnL, leverage and
  margin type, position mode (``dual`` switches it to hedge mode), ``userTrades`` with ids.

The market moves only when the test says so: ``move_to(price, gap=False)`` walks the price and
fires the crossed stop orders and resting limits in order along the way (a stop at its trigger,
or at ``price`` when ``gap``; a limit at its own price, as a maker). Market orders and marketable
limits fill at the current price.

Fault switches (each consumed when used, so a test states exactly what goes wrong):

* ``drop_placed``: the next N order placements are carried out but their answer is lost
  (``drop_mode`` "close": connection closed; "502": a gateway error page);
* ``fail_next(n, status, path=None)``: the next n private calls (to ``path``, if given) fail
  before doing anything with HTTP 429 (code -1003) or 5xx;
* ``reject_margin``: the next N placements/triggers are refused with -2019 "Margin is
  insufficient." (besides the real margin check on ``balance`` and ``leverage``);
* ``partial_next``: the next fill takes this fraction (floored to the lot); the rest fills on
  the next ``move_to`` (a plain order stays PARTIALLY_FILLED until then);
* ``duplicate_trades``: ``userTrades`` returns each trade twice;
* ``chaos(seed, p)``: any private call may fail (429, 503, or its answer lost after it was
  carried out), at random with a seed;
* ``hide_from_lookup``: the next N look-ups of an order by client id answer "Order does not
  exist." although it is there (an order still in flight inside the venue); a second placement
  with the same client id is then refused with -4116 "ClientOrderId is duplicated.";
* ``hold_trades()`` / ``release_trades()``: trades booked in between are not listed by
  ``userTrades`` until released (a trade report that lags behind the order's status);
* ``add_order(...)``: pre-load an order (an orphan from an earlier run, or a foreign one);
* ``settle_funding(rate)``: a funding time: the position pays (or receives) ``position x price x
  rate``, booked to the balance and listed by ``/fapi/v1/income`` as ``FUNDING_FEE``;
* ``set_position(qty, avg)``: a position changed by hand.

The user-data stream: ``POST``/``PUT``/``DELETE /fapi/v1/listenKey`` (API key only, no
signature, as Binance) and a websocket (``ws``, see ``stubs/ws.py``) at
``/private/ws?listenKey=...`` (where ccxt 4.5 goes for USD-M) pushing an ``ORDER_TRADE_UPDATE``
in Binance's layout for each trade, once the request or ``move_to`` that booked it is done.
Its faults are the ``ws`` server's: ``duplicate``, ``reverse`` (out of order), ``drop_next``
(the connection drops right after a fill was booked, before it is pushed), ``silent``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from tests.venues.stubs.ws import WsServer

API_KEY = "stubKEYk3y0123456789abcdefABCDEFghij"
SECRET = "stubSECRETs3cr3t0123456789abcdefABCDEF"
SYMBOL = "BTCUSDT"
TICK, LOT, MIN_NOTIONAL = 0.1, 0.001, 5.0
MAKER_FEE, TAKER_FEE = 0.0002, 0.0005

_PUBLIC = {"/fapi/v1/exchangeInfo", "/fapi/v1/time", "/fapi/v1/ping", "/fapi/v1/ticker/24hr", "/fapi/v1/fundingRate",
           "/fapi/v1/klines"}
_PLACE = {("POST", "/fapi/v1/order"), ("POST", "/fapi/v1/algoOrder")}
_KEY_ONLY = {"/fapi/v1/listenKey"}  # the user-data stream's key: API key header, no signature


class BinanceError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


class _Drop(Exception):
    """Close the connection without an answer."""


@dataclass
class StubOrder:
    order_id: int
    client_id: str
    side: str  # BUY | SELL
    type: str  # MARKET | LIMIT | STOP_MARKET
    qty: float
    price: float = 0.0  # limit price
    trigger: float = 0.0  # stop price
    reduce_only: bool = False
    status: str = "NEW"  # plain: NEW PARTIALLY_FILLED FILLED CANCELED EXPIRED; algo: NEW TRIGGERED FINISHED CANCELED REJECTED EXPIRED
    executed: float = 0.0
    cum_quote: float = 0.0
    algo: bool = False
    actual_order_id: int | None = None  # algo: the MARKET order it became
    time: int = 0
    update_time: int = 0
    rest: float = 0.0  # a partial fill's rest, filled at the next move_to
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    @property
    def level(self) -> float:
        """Where it fires: a stop's trigger, a limit's price."""
        return self.trigger if self.algo else self.price

    @property
    def fires_up(self) -> bool:
        """A buy stop and a sell limit fire on a rise; a sell stop and a buy limit on a fall."""
        return (self.side == "BUY") == self.algo

    def plain_json(self) -> dict[str, Any]:
        avg = self.cum_quote / self.executed if self.executed else 0.0
        return {
            "orderId": self.order_id, "symbol": SYMBOL, "status": self.status,
            "clientOrderId": self.client_id, "price": _s(self.price), "avgPrice": _s(avg),
            "origQty": _s(self.qty), "executedQty": _s(self.executed), "cumQty": _s(self.executed),
            "cumQuote": _s(self.cum_quote), "timeInForce": self.extra.get("tif") or "GTC",
            "type": self.type, "reduceOnly": self.reduce_only, "closePosition": False,
            "side": self.side, "positionSide": "BOTH", "stopPrice": _s(self.trigger),
            "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": self.type,
            "priceMatch": "NONE", "selfTradePreventionMode": "NONE", "goodTillDate": 0,
            "time": self.time, "updateTime": self.update_time,
        }  # fmt: skip

    def algo_json(self) -> dict[str, Any]:
        return {
            "algoId": self.order_id, "clientAlgoId": self.client_id, "algoType": "CONDITIONAL",
            "orderType": self.type, "symbol": SYMBOL, "side": self.side, "positionSide": "BOTH",
            "timeInForce": "GTC", "quantity": _s(self.qty), "algoStatus": self.status,
            "actualOrderId": "" if self.actual_order_id is None else str(self.actual_order_id),
            "actualPrice": "0", "triggerPrice": _s(self.trigger), "price": "0.00",
            "icebergQuantity": None, "tpTriggerPrice": "0.00", "tpPrice": "0.00",
            "slTriggerPrice": "0.00", "slPrice": "0.00", "tpOrderType": "",
            "selfTradePreventionMode": "EXPIRE_MAKER", "workingType": "CONTRACT_PRICE",
            "priceMatch": "NONE", "closePosition": False, "priceProtect": False,
            "reduceOnly": self.reduce_only, "createTime": self.time, "updateTime": self.update_time,
            "triggerTime": 0, "goodTillDate": 0,
        }  # fmt: skip


def _s(x: float) -> str:
    return repr(round(float(x), 10))


def sign(query: str, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


class BinanceUsdmStub:
    """One HTTP server on 127.0.0.1 (a free port) holding one Binance USD-M account."""

    def __init__(self, *, api_key: str = API_KEY, secret: str = SECRET, price: float = 60_000.0,
                 balance: float = 10_000.0) -> None:  # fmt: skip
        self.api_key, self.secret = api_key, secret
        self.price = price
        self.balance = balance  # wallet balance: deposits + realized PnL - fees
        self.position = 0.0
        self.entry = 0.0
        self.leverage = 20
        self.margin_type = "CROSSED"
        self.dual = False
        self.orders: dict[int, StubOrder] = {}  # plain orders by orderId
        self.algos: dict[int, StubOrder] = {}  # algo orders by algoId
        self.trades: list[dict[str, Any]] = []
        self.incomes: list[dict[str, Any]] = []  # FUNDING_FEE rows, as /fapi/v1/income lists them
        self.funding_rates: list[dict[str, Any]] = []  # public /fapi/v1/fundingRate rows
        # daily candles [open ms, o, h, l, c, volume] answered by /fapi/v1/klines (real data from the
        # test); the last one is the open candle and follows the price (``move_to``)
        self.klines: list[list[float]] = []
        self.spot: dict[str, float] = {}  # the spot wallet (GET /api/v3/account): asset -> free coins
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, params) seen
        self.rejected_signatures = 0
        # faults
        self.drop_placed = 0
        self.drop_mode = "close"
        self.reject_margin = 0
        self.partial_next: float | None = None
        self.duplicate_trades = False
        self.hide_from_lookup = 0
        self._chaos: tuple[random.Random, float] | None = None
        self._visible_trades: int | None = None  # hold_trades(): how many trades are listed
        self._fail: list[tuple[int, str | None, str | None]] = []
        self.on_request: Callable[[str, str], None] | None = None
        self._next_id = 1000
        self._next_trade = 5000
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self.listen_keys: list[str] = []
        self.ws = WsServer(self._ws_accept)

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> Self:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body go out as two writes: without this, Nagle's algorithm and
                # the client's delayed ACK add ~40 ms to every keep-alive request
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _go(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    stub._answer(self, method, parts.path, parts.query, body)

            def do_GET(self) -> None:  # noqa: N802
                self._go("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._go("POST")

            def do_DELETE(self) -> None:  # noqa: N802
                self._go("DELETE")

            def do_PUT(self) -> None:  # noqa: N802
                self._go("PUT")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.ws.start()
        return self

    def stop(self) -> None:
        self.ws.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def urls(self, *, ws: bool = False) -> dict[str, Any]:
        """ccxt ``urls['api']`` entries pointing at this stub (the paths ccxt appends); with
        ``ws`` its user-data websocket too (ccxt makes ``.../private/ws`` of ``.../ws``)."""
        base = self.url
        extra: dict[str, Any] = {"ws": {"linear": f"{self.ws.url}/ws"}} if ws else {}
        return extra | {
            "fapiPublic": f"{base}/fapi/v1", "fapiPublicV2": f"{base}/fapi/v2",
            "fapiPublicV3": f"{base}/fapi/v3", "fapiPrivate": f"{base}/fapi/v1",
            "fapiPrivateV2": f"{base}/fapi/v2", "fapiPrivateV3": f"{base}/fapi/v3",
            "fapiData": f"{base}/futures/data", "public": f"{base}/api/v3",
            "private": f"{base}/api/v3", "sapi": f"{base}/sapi/v1",
        }  # fmt: skip

    # -- test controls ------------------------------------------------------------------------
    def fail_next(self, n: int, status: int, path: str | None = None, method: str | None = None) -> None:
        """The next ``n`` private calls (to ``path`` with ``method``, when given) fail at once."""
        with self._lock:
            self._fail.extend([(status, path, method)] * n)

    def add_order(self, client_id: str, side: str, qty: float, trigger: float | None = None,
                  price: float | None = None, reduce_only: bool = False) -> StubOrder:  # fmt: skip
        """Pre-load a working order (a stop on the algo service when ``trigger`` is given)."""
        with self._lock:
            if trigger is not None:
                o = self._new(client_id, side, "STOP_MARKET", qty, trigger=trigger, reduce_only=reduce_only, algo=True)
                self.algos[o.order_id] = o
            else:
                o = self._new(client_id, side, "LIMIT", qty, price=price or 0.0, reduce_only=reduce_only)
                self.orders[o.order_id] = o
            return o

    def trade_by_hand(self, side: str, qty: float) -> StubOrder:
        """A market order placed outside hedgekit (the web UI): it moves the position and
        makes a trade on an order that is not ours."""
        with self._lock:
            o = self._new(f"web_{self._next_id + 1}", side, "MARKET", qty)
            self.orders[o.order_id] = o
            self._fill(o, self.price, maker=False)
            self.ws.flush()
            return o

    def hold_trades(self) -> None:
        with self._lock:
            self._visible_trades = len(self.trades)

    def release_trades(self) -> None:
        with self._lock:
            self._visible_trades = None

    def settle_funding(self, rate: float) -> float:
        """A funding time at the current price; returns the cash change (0 when flat: no row)."""
        with self._lock:
            now = _now()
            self.funding_rates.append({"symbol": SYMBOL, "fundingRate": _s(rate), "fundingTime": now,
                                       "markPrice": _s(self.price)})
            if self.position == 0:
                return 0.0
            amount = round(-self.position * self.price * rate, 8)
            self.balance += amount
            self._next_trade += 1
            self.incomes.append({
                "symbol": SYMBOL, "incomeType": "FUNDING_FEE", "income": _s(amount), "asset": "USDT",
                "info": "FUNDING_FEE", "time": now + 3, "tranId": self._next_trade, "tradeId": "",
            })  # fmt: skip
            return amount

    def set_position(self, qty: float, entry: float) -> None:
        with self._lock:
            self.position, self.entry = qty, entry

    def open_client_ids(self) -> list[str]:
        with self._lock:
            return [o.client_id for o in [*self.orders.values(), *self.algos.values()] if o.open]

    def orders_with(self, client_id: str) -> list[StubOrder]:
        with self._lock:
            return [o for o in [*self.orders.values(), *self.algos.values()] if o.client_id == client_id]

    def move_to(self, price: float, *, gap: bool = False) -> None:
        """Walk the market to ``price``: the stops and resting limits it crosses fire in price
        order along the way (ties: the older order first). A stop fills at its trigger (at
        ``price`` when ``gap``); a resting limit fills in full at its own price as a maker, on
        a gap too (the book held it: the market cannot pass it without trading it)."""
        with self._lock:
            self._move_to(price, gap)
            self.ws.flush()

    def _move_to(self, price: float, gap: bool) -> None:
        self._resume_partials()
        start = self.price
        up = price > start
        while True:
            crossed = [
                o for o in [*self.algos.values(), *self.orders.values()]
                if o.status == "NEW" and o.type in ("STOP_MARKET", "LIMIT") and (
                    (start <= o.level <= price and o.fires_up) if up
                    else (price <= o.level <= start and not o.fires_up)
                )
            ]  # fmt: skip
            if not crossed:
                break
            o = min(crossed, key=lambda x: (x.level if up else -x.level, x.order_id))
            if o.algo:
                self.price = price if gap else o.trigger
                self._trigger(o)
            else:
                self.price = o.price
                self._fill(o, o.price, maker=True)
        self.price = price
        self._track_kline()

    # -- HTTP ---------------------------------------------------------------------------------
    def _answer(self, h: BaseHTTPRequestHandler, method: str, path: str, query: str, body: str) -> None:
        try:
            status, payload = 200, self._dispatch(h, method, path, query, body)
        except _Drop:
            self.ws.flush()
            h.close_connection = True
            h.connection.close()
            return
        except _GatewayError as err:  # a proxy's page, not Binance's JSON
            title = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Time-out"}.get(err.status, "Error")
            status, payload = err.status, f"<html><body><h1>{err.status} {title}</h1></body></html>"
        except BinanceError as err:
            status, payload = err.status, {"code": err.code, "msg": err.msg}
        self.ws.flush()  # what this request booked is pushed (as the venue does, about now)
        if isinstance(payload, str):
            data, ctype = payload.encode(), "text/html"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json"
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _dispatch(self, h: BaseHTTPRequestHandler, method: str, path: str, query: str, body: str) -> Any:
        raw = body if method == "POST" else query
        params = dict(parse_qsl(raw, keep_blank_values=True))
        with self._lock:
            self.requests.append((method, path, params))
        if self.on_request is not None:
            self.on_request(method, path)
        if path in _KEY_ONLY:
            if h.headers.get("X-MBX-APIKEY") != self.api_key:
                raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        elif path not in _PUBLIC:
            self._verify(h, raw, params)
        with self._lock:
            for i, (status, only, verb) in enumerate(self._fail):
                if (only is None or only == path) and (verb is None or verb == method):
                    del self._fail[i]
                    if status == 429:
                        raise BinanceError(429, -1003, "Too many requests; current limit of IP(127.0.0.1) is 2400 requests per minute.")
                    return self._gateway(status)
            handler = _ROUTES.get((method, path))
            if handler is None:
                raise BinanceError(404, -5000, f"Path {path}, Method {method} is invalid")
            fault = self._chaos_fault(path)
            if fault == 429:
                raise BinanceError(429, -1003, "Too many requests; current limit of IP(127.0.0.1) is 2400 requests per minute.")
            if fault == 503:
                self._gateway(503)
            result = handler(self, params)
            if fault == "lost" and method != "GET":
                raise _Drop  # done, but the answer is lost
            if (method, path) in _PLACE and self.drop_placed > 0:
                self.drop_placed -= 1  # the order IS placed: only its answer is lost
                if self.drop_mode == "close":
                    raise _Drop
                return self._gateway(502)
            return result

    def chaos(self, seed: int, p: float) -> None:
        """From now on each private call fails with probability ``p`` (seeded): HTTP 429 or
        503 before it is carried out, or, for a call that changes something, its answer is
        lost after it was carried out."""
        with self._lock:
            self._chaos = (random.Random(seed), p)

    def _chaos_fault(self, path: str) -> int | str | None:
        if self._chaos is None or path in _PUBLIC:
            return None
        rng, p = self._chaos
        if rng.random() >= p:
            return None
        return rng.choice([429, 503, "lost"])

    @staticmethod
    def _gateway(status: int) -> Any:
        raise _GatewayError(status)

    def _verify(self, h: BaseHTTPRequestHandler, raw: str, params: dict[str, str]) -> None:
        if h.headers.get("X-MBX-APIKEY") != self.api_key:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        signed, sep, sig = raw.rpartition("&signature=")
        expected = sign(signed, self.secret)
        if not sep or not hmac.compare_digest(sig, expected):
            with self._lock:
                self.rejected_signatures += 1
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        ts = int(params.get("timestamp", "0"))
        window = int(params.get("recvWindow", "5000"))
        now = int(time.time() * 1000)
        if not now - window <= ts <= now + 1000:
            raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    # -- endpoints ----------------------------------------------------------------------------
    def _exchange_info(self, p: dict[str, str]) -> Any:
        return {
            "timezone": "UTC", "serverTime": _now(), "futuresType": "U_MARGINED",
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [{
                "symbol": SYMBOL, "pair": SYMBOL, "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": "TRADING",
                "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
                "baseAsset": "BTC", "quoteAsset": "USDT", "marginAsset": "USDT",
                "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8,
                "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": ["PoW"],
                "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
                "maxMoveOrderLimit": 10000,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "261.10", "maxPrice": "809484",
                     "tickSize": "0.10"},
                    {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
                    {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120",
                     "stepSize": "0.001"},
                    {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                    {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                    {"filterType": "MIN_NOTIONAL", "notional": "5"},
                    {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500",
                     "multiplierDown": "0.9500", "multiplierDecimal": "4"},
                ],
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                               "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            }],
        }  # fmt: skip

    def _track_kline(self) -> None:
        """The last kline is the open one: its close is the last price, as on the venue."""
        if self.klines:
            k = self.klines[-1]
            k[2], k[3], k[4] = max(k[2], self.price), min(k[3], self.price), self.price

    def _klines(self, p: dict[str, str]) -> Any:
        if p.get("symbol") != SYMBOL:
            raise BinanceError(400, -1121, "Invalid symbol.")
        if p.get("interval") != "1d":
            raise BinanceError(400, -1120, "Invalid interval.")  # the stub serves daily candles only
        rows = [k for k in self.klines if k[0] <= int(p.get("endTime", str(2**62)))]
        rows = [k for k in rows if k[0] >= int(p.get("startTime", "0"))]
        rows = rows[-int(p.get("limit", "500")):]
        return [[t, _s(o), _s(h), _s(lo), _s(c), _s(v), t + 86_399_999, _s(v * c), 1000, _s(v / 2), _s(v * c / 2), "0"]
                for t, o, h, lo, c, v in rows]  # fmt: skip

    def _spot_account(self, p: dict[str, str]) -> Any:
        rows = [{"asset": a, "free": _s(q), "locked": "0.00000000"} for a, q in self.spot.items()]
        if p.get("omitZeroBalances") == "true":
            rows = [r for r in rows if float(r["free"]) or float(r["locked"])]
        return {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                                "seller": "0.00000000"},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": _now(),
            "accountType": "SPOT", "balances": rows, "permissions": ["SPOT"], "uid": 354937868,
        }  # fmt: skip

    def _listen_key(self, p: dict[str, str]) -> Any:
        if not self.listen_keys:  # one key per account, valid until deleted (as Binance's)
            self.listen_keys.append(f"stubListenKey{len(self.listen_keys)}{self._next_id}")
        return {"listenKey": self.listen_keys[-1]}

    def _keep_alive(self, p: dict[str, str]) -> Any:
        if not self.listen_keys:
            raise BinanceError(400, -1125, "This listenKey does not exist.")
        return {"listenKey": self.listen_keys[-1]}

    def _close_listen_key(self, p: dict[str, str]) -> Any:
        self.listen_keys.clear()
        return {}

    def _ws_accept(self, path: str) -> str | None:
        parts = urlsplit(path)
        key = dict(parse_qsl(parts.query)).get("listenKey")
        return key if parts.path == "/private/ws" and key in self.listen_keys else None

    def _push_trade(self, o: StubOrder, trade: dict[str, Any]) -> None:
        """The ``ORDER_TRADE_UPDATE`` of ``trade`` (Binance's user-data layout)."""
        avg = o.cum_quote / o.executed if o.executed else 0.0
        event = {
            "e": "ORDER_TRADE_UPDATE", "E": _now(), "T": trade["time"],
            "o": {
                "s": SYMBOL, "c": o.client_id, "S": o.side, "o": o.type, "f": "GTC", "q": _s(o.qty),
                "p": _s(o.price), "ap": _s(avg), "sp": _s(o.trigger), "x": "TRADE", "X": o.status,
                "i": o.order_id, "l": trade["qty"], "z": _s(o.executed), "L": trade["price"],
                "n": trade["commission"], "N": "USDT", "T": trade["time"], "t": trade["id"],
                "b": "0", "a": "0", "m": trade["maker"], "R": o.reduce_only, "wt": "CONTRACT_PRICE",
                "ot": o.type, "ps": "BOTH", "cp": False, "rp": trade["realizedPnl"], "pP": False,
                "si": 0, "ss": 0, "V": "NONE", "pm": "NONE", "gtd": 0,
            },
        }  # fmt: skip
        self.ws.push(lambda _c: True, event, tag=trade["id"])

    def _time(self, p: dict[str, str]) -> Any:
        return {"serverTime": _now()}

    def _unrealized(self) -> float:
        return self.position * (self.price - self.entry) if self.position else 0.0

    def _initial_margin(self) -> float:
        return abs(self.position) * self.price / self.leverage

    def _account(self, p: dict[str, str]) -> Any:
        upnl = self._unrealized()
        margin = self.balance + upnl
        im = self._initial_margin()
        asset = {
            "asset": "USDT", "walletBalance": _s(self.balance), "unrealizedProfit": _s(upnl),
            "marginBalance": _s(margin), "maintMargin": _s(abs(self.position) * self.price * 0.004),
            "initialMargin": _s(im), "positionInitialMargin": _s(im), "openOrderInitialMargin": "0",
            "crossWalletBalance": _s(self.balance), "crossUnPnl": _s(upnl),
            "availableBalance": _s(margin - im), "maxWithdrawAmount": _s(margin - im),
            "updateTime": _now(),
        }  # fmt: skip
        return {
            "totalInitialMargin": _s(im), "totalMaintMargin": "0", "totalWalletBalance": _s(self.balance),
            "totalUnrealizedProfit": _s(upnl), "totalMarginBalance": _s(margin),
            "totalPositionInitialMargin": _s(im), "totalOpenOrderInitialMargin": "0",
            "totalCrossWalletBalance": _s(self.balance), "totalCrossUnPnl": _s(upnl),
            "availableBalance": _s(margin - im), "maxWithdrawAmount": _s(margin - im),
            "assets": [asset], "positions": [self._position_json()],
        }  # fmt: skip

    def _position_json(self) -> dict[str, Any]:
        notional = self.position * self.price
        iso = self.margin_type == "ISOLATED"
        return {
            "symbol": SYMBOL, "positionSide": "BOTH", "positionAmt": _s(self.position),
            "entryPrice": _s(self.entry), "breakEvenPrice": _s(self.entry), "markPrice": _s(self.price),
            "unRealizedProfit": _s(self._unrealized()), "liquidationPrice": "0",
            "isolatedMargin": _s(abs(notional) / self.leverage if iso else 0.0), "notional": _s(notional),
            "marginAsset": "USDT", "isolatedWallet": "0", "initialMargin": _s(self._initial_margin()),
            "maintMargin": "0", "positionInitialMargin": _s(self._initial_margin()),
            "openOrderInitialMargin": "0", "adl": 0, "bidNotional": "0", "askNotional": "0",
            "updateTime": _now(),
        }  # fmt: skip

    def _position_risk(self, p: dict[str, str]) -> Any:
        return [self._position_json()]

    def _brackets(self, p: dict[str, str]) -> Any:
        return [{"symbol": SYMBOL, "brackets": [
            {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0,
             "maintMarginRatio": 0.004, "cum": 0.0}]}]  # fmt: skip

    def _dual(self, p: dict[str, str]) -> Any:
        return {"dualSidePosition": self.dual}

    def _set_leverage(self, p: dict[str, str]) -> Any:
        lev = int(p["leverage"])
        if not 1 <= lev <= 125:
            raise BinanceError(400, -4028, f"Leverage {lev} is not valid")
        self.leverage = lev
        return {"leverage": lev, "maxNotionalValue": "1000000", "symbol": p["symbol"]}

    def _set_margin_type(self, p: dict[str, str]) -> Any:
        mt = p["marginType"]
        if mt == self.margin_type:
            raise BinanceError(400, -4046, "No need to change margin type.")
        if self.position or any(o.open for o in [*self.orders.values(), *self.algos.values()]):
            raise BinanceError(400, -4048, "Margin type cannot be changed if there exists position.")
        self.margin_type = mt
        return {"code": 200, "msg": "success"}

    def _new(self, cid: str, side: str, type_: str, qty: float, *, price: float = 0.0,
             trigger: float = 0.0, reduce_only: bool = False, algo: bool = False) -> StubOrder:  # fmt: skip
        self._next_id += 1
        now = _now()
        return StubOrder(self._next_id, cid, side, type_, qty, price, trigger, reduce_only,
                         algo=algo, time=now, update_time=now)  # fmt: skip

    def _check_new(self, p: dict[str, str], cid_key: str) -> tuple[str, str, float, bool]:
        if p.get("symbol") != SYMBOL:
            raise BinanceError(400, -1121, "Invalid symbol.")
        if self.dual and p.get("positionSide", "BOTH") == "BOTH":
            raise BinanceError(400, -4061, "Order's position side does not match user's setting.")
        cid = p.get(cid_key) or f"stub-{self._next_id + 1}"
        if any(o.client_id == cid for o in [*self.orders.values(), *self.algos.values()]):
            raise BinanceError(400, -4116, "ClientOrderId is duplicated.")
        qty = float(p.get("quantity", "0"))
        if qty <= 0 or not _on_grid(qty, LOT):
            raise BinanceError(400, -1111, "Precision is over the maximum defined for this asset.")
        side = p.get("side", "")
        if side not in ("BUY", "SELL"):
            raise BinanceError(400, -1117, "Invalid side.")
        reduce_only = p.get("reduceOnly", "false").lower() == "true"
        return cid, side, qty, reduce_only

    def _place_order(self, p: dict[str, str]) -> Any:
        cid, side, qty, reduce_only = self._check_new(p, "newClientOrderId")
        type_ = p.get("type")
        if type_ not in ("MARKET", "LIMIT"):
            raise BinanceError(400, -1116, "Invalid orderType.")  # stops go to the algo service
        price = float(p.get("price", "0"))
        if type_ == "LIMIT" and (price <= 0 or not _on_grid(price, TICK)):
            raise BinanceError(400, -4014, "Price not increased by tick size.")
        tif = p.get("timeInForce")
        marketable = (side == "BUY" and price >= self.price) or (side == "SELL" and price <= self.price)
        if type_ == "LIMIT" and tif not in ("GTC", "GTX"):  # the stub keeps no IOC/FOK/GTD
            raise BinanceError(400, -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.")
        if type_ == "LIMIT" and tif == "GTX" and marketable:
            raise BinanceError(400, -5022, "Due to the order could not be executed as maker, the Post Only order will be rejected. The order will not be recorded in the order history")
        ref = price if type_ == "LIMIT" else self.price
        if not reduce_only and qty * ref < MIN_NOTIONAL:
            raise BinanceError(400, -4164, "Order's notional must be no smaller than 5 (unless you choose reduce only).")
        o = self._new(cid, side, type_, qty, price=price, reduce_only=reduce_only)
        if not reduce_only:
            self._margin_check(o, self.price if type_ == "MARKET" else price)
        self.orders[o.order_id] = o
        o.extra["tif"] = tif or ""
        if type_ == "MARKET" or marketable:
            self._fill(o, self.price, maker=False)  # a marketable limit takes at the market (never beyond it)
        return o.plain_json()

    def _place_algo(self, p: dict[str, str]) -> Any:
        if p.get("algoType") != "CONDITIONAL":
            raise BinanceError(400, -1102, "Mandatory parameter 'algoType' was not sent, was empty/null, or malformed.")
        cid, side, qty, reduce_only = self._check_new(p, "clientAlgoId")
        if p.get("type") != "STOP_MARKET":
            raise BinanceError(400, -1116, "Invalid orderType.")
        trigger = float(p.get("triggerPrice", "0"))
        if trigger <= 0 or not _on_grid(trigger, TICK):
            raise BinanceError(400, -4014, "Price not increased by tick size.")
        if (side == "BUY" and trigger <= self.price) or (side == "SELL" and trigger >= self.price):
            raise BinanceError(400, -2021, "Order would immediately trigger.")
        if not reduce_only and qty * trigger < MIN_NOTIONAL:
            raise BinanceError(400, -4164, "Order's notional must be no smaller than 5 (unless you choose reduce only).")
        o = self._new(cid, side, "STOP_MARKET", qty, trigger=trigger, reduce_only=reduce_only, algo=True)
        if self.reject_margin > 0:  # the algo service checks margin on placement too
            self.reject_margin -= 1
            raise BinanceError(400, -2019, "Margin is insufficient.")
        self.algos[o.order_id] = o
        return o.algo_json()

    def _margin_check(self, o: StubOrder, price: float) -> None:
        if self.reject_margin > 0:
            self.reject_margin -= 1
            raise BinanceError(400, -2019, "Margin is insufficient.")
        sign_ = 1 if o.side == "BUY" else -1
        after = self.position + sign_ * o.qty
        if abs(after) > abs(self.position):
            need = abs(after) * price / self.leverage
            if need > self.balance + self._unrealized() + 1e-9:
                raise BinanceError(400, -2019, "Margin is insufficient.")

    def _find(self, book: dict[int, StubOrder], p: dict[str, str], id_key: str, cid_key: str) -> StubOrder:
        if self.hide_from_lookup > 0 and not p.get(id_key):
            self.hide_from_lookup -= 1
            raise BinanceError(400, -2013, "Order does not exist.")
        if p.get(id_key):
            o = book.get(int(p[id_key]))
        else:
            o = next((x for x in book.values() if x.client_id == p.get(cid_key)), None)
        if o is None:
            raise BinanceError(400, -2013, "Order does not exist.")
        return o

    def _get_order(self, p: dict[str, str]) -> Any:
        return self._find(self.orders, p, "orderId", "origClientOrderId").plain_json()

    def _get_algo(self, p: dict[str, str]) -> Any:
        return self._find(self.algos, p, "algoId", "clientAlgoId").algo_json()

    def _cancel_order(self, p: dict[str, str]) -> Any:
        try:
            o = self._find(self.orders, p, "orderId", "origClientOrderId")
        except BinanceError:
            raise BinanceError(400, -2011, "Unknown order sent.") from None
        if not o.open:
            raise BinanceError(400, -2011, "Unknown order sent.")
        o.status, o.rest, o.update_time = "CANCELED", 0.0, _now()
        return o.plain_json()

    def _cancel_algo(self, p: dict[str, str]) -> Any:
        try:
            o = self._find(self.algos, p, "algoId", "clientAlgoId")
        except BinanceError:
            raise BinanceError(400, -2011, "Unknown order sent.") from None
        if o.status != "NEW":
            raise BinanceError(400, -2011, "Unknown order sent.")
        o.status, o.update_time = "CANCELED", _now()
        return {"algoId": o.order_id, "clientAlgoId": o.client_id, "code": "200", "msg": "success"}

    def _open_orders(self, p: dict[str, str]) -> Any:
        return [o.plain_json() for o in self.orders.values() if o.open]

    def _open_algos(self, p: dict[str, str]) -> Any:
        return [o.algo_json() for o in self.algos.values() if o.status == "NEW"]

    def _user_trades(self, p: dict[str, str]) -> Any:
        limit = int(p.get("limit", "500"))
        rows = self.trades if self._visible_trades is None else self.trades[: self._visible_trades]
        if "fromId" in p:
            rows = [t for t in rows if t["id"] >= int(p["fromId"])]
        if "startTime" in p:
            rows = [t for t in rows if t["time"] >= int(p["startTime"])]
        rows = rows[:limit]
        if self.duplicate_trades:
            rows = [t for t in rows for _ in (0, 1)]
        return rows

    def _income(self, p: dict[str, str]) -> Any:
        rows = [r for r in self.incomes if p.get("incomeType") in (None, r["incomeType"])
                and p.get("symbol") in (None, r["symbol"])
                and r["time"] >= int(p.get("startTime", 0))]  # fmt: skip
        return rows[: int(p.get("limit", "100"))]

    def _funding_rate(self, p: dict[str, str]) -> Any:
        rows = [r for r in self.funding_rates if r["fundingTime"] >= int(p.get("startTime", 0))
                and r["fundingTime"] <= int(p.get("endTime", 2**62))]  # fmt: skip
        return rows[: int(p.get("limit", "100"))]

    # -- matching -----------------------------------------------------------------------------
    def _trigger(self, algo: StubOrder) -> None:
        if self.reject_margin > 0 and not algo.reduce_only:
            self.reject_margin -= 1
            algo.status, algo.update_time = "REJECTED", _now()
            return
        order = self._new(f"autoalgo_{algo.order_id}", algo.side, "MARKET", algo.qty, reduce_only=algo.reduce_only)
        order.extra["algo"] = algo.order_id
        algo.status, algo.actual_order_id, algo.update_time = "TRIGGERED", order.order_id, _now()
        self.orders[order.order_id] = order
        if not order.reduce_only:
            try:
                self._margin_check(order, self.price)
            except BinanceError:
                order.status, algo.status = "EXPIRED", "REJECTED"
                return
        self._fill(order, self.price, maker=False)
        algo.executed, algo.cum_quote = order.executed, order.cum_quote
        if not order.open:
            algo.status = "FINISHED"

    def _resume_partials(self) -> None:
        for o in list(self.orders.values()):
            if o.open and o.rest > 0:
                qty, o.rest = o.rest, 0.0
                self._book(o, qty, o.price if o.type == "LIMIT" else self.price, maker=o.type == "LIMIT")
                algo = self.algos.get(o.extra.get("algo", -1))
                if algo is not None:
                    algo.executed, algo.cum_quote = o.executed, o.cum_quote
                    if not o.open:
                        algo.status = "FINISHED"

    def _fill(self, o: StubOrder, price: float, *, maker: bool) -> None:
        qty = o.qty - o.executed
        if o.reduce_only:
            reducible = abs(self.position) if (self.position > 0) == (o.side == "SELL") and self.position else 0.0
            if reducible <= 0:
                o.status = "EXPIRED"
                return
            qty = min(qty, reducible)
        if self.partial_next is not None:
            part = math.floor(qty * self.partial_next / LOT + 1e-9) * LOT
            self.partial_next = None
            if 0 < part < qty:
                o.rest = round(qty - part, 3)
                qty = part
        self._book(o, qty, price, maker=maker)
        if o.reduce_only and o.rest == 0 and o.executed < o.qty - LOT / 2:
            o.status = "EXPIRED"  # clamped to the position: the rest expires

    def _book(self, o: StubOrder, qty: float, price: float, *, maker: bool) -> None:
        qty = round(qty, 3)
        sgn = 1 if o.side == "BUY" else -1
        pos = self.position
        realized = 0.0
        if pos * sgn < 0:  # reduces (maybe flips)
            closed = min(abs(pos), qty)
            realized = closed * (price - self.entry) * (1 if pos > 0 else -1)
            new = round(pos + sgn * qty, 3)
            self.entry = 0.0 if new == 0 else (self.entry if abs(new) < abs(pos) or new * pos > 0 else price)
        else:
            new = round(pos + sgn * qty, 3)
            self.entry = (abs(pos) * self.entry + qty * price) / abs(new)
        self.position = new
        fee = qty * price * (MAKER_FEE if maker else TAKER_FEE)
        self.balance += realized - fee
        o.executed = round(o.executed + qty, 3)
        o.cum_quote += qty * price
        o.status = "FILLED" if o.executed >= o.qty - LOT / 2 else "PARTIALLY_FILLED"
        o.update_time = _now()
        self._next_trade += 1
        trade = {
            "buyer": o.side == "BUY", "commission": _s(fee), "commissionAsset": "USDT",
            "id": self._next_trade, "maker": maker, "orderId": o.order_id, "price": _s(price),
            "qty": _s(qty), "quoteQty": _s(qty * price), "realizedPnl": _s(realized),
            "side": o.side, "positionSide": "BOTH", "symbol": SYMBOL, "time": _now(),
        }  # fmt: skip
        self.trades.append(trade)
        self._push_trade(o, trade)


class _GatewayError(BinanceError):
    def __init__(self, status: int) -> None:
        super().__init__(status, 0, "")


def _now() -> int:
    return int(time.time() * 1000)


def _on_grid(value: float, step: float) -> bool:
    n = value / step
    return abs(n - round(n)) < 1e-6


_ROUTES: dict[tuple[str, str], Callable[[BinanceUsdmStub, dict[str, str]], Any]] = {
    ("GET", "/fapi/v1/exchangeInfo"): BinanceUsdmStub._exchange_info,
    ("GET", "/fapi/v1/time"): BinanceUsdmStub._time,
    ("GET", "/fapi/v1/klines"): BinanceUsdmStub._klines,
    ("GET", "/api/v3/account"): BinanceUsdmStub._spot_account,
    ("GET", "/fapi/v3/account"): BinanceUsdmStub._account,
    ("GET", "/fapi/v2/account"): BinanceUsdmStub._account,
    ("GET", "/fapi/v3/positionRisk"): BinanceUsdmStub._position_risk,
    ("GET", "/fapi/v2/positionRisk"): BinanceUsdmStub._position_risk,
    ("GET", "/fapi/v1/leverageBracket"): BinanceUsdmStub._brackets,
    ("GET", "/fapi/v1/positionSide/dual"): BinanceUsdmStub._dual,
    ("POST", "/fapi/v1/leverage"): BinanceUsdmStub._set_leverage,
    ("POST", "/fapi/v1/marginType"): BinanceUsdmStub._set_margin_type,
    ("POST", "/fapi/v1/order"): BinanceUsdmStub._place_order,
    ("GET", "/fapi/v1/order"): BinanceUsdmStub._get_order,
    ("DELETE", "/fapi/v1/order"): BinanceUsdmStub._cancel_order,
    ("GET", "/fapi/v1/openOrders"): BinanceUsdmStub._open_orders,
    ("POST", "/fapi/v1/algoOrder"): BinanceUsdmStub._place_algo,
    ("GET", "/fapi/v1/algoOrder"): BinanceUsdmStub._get_algo,
    ("DELETE", "/fapi/v1/algoOrder"): BinanceUsdmStub._cancel_algo,
    ("GET", "/fapi/v1/openAlgoOrders"): BinanceUsdmStub._open_algos,
    ("GET", "/fapi/v1/userTrades"): BinanceUsdmStub._user_trades,
    ("GET", "/fapi/v1/income"): BinanceUsdmStub._income,
    ("GET", "/fapi/v1/fundingRate"): BinanceUsdmStub._funding_rate,
    ("POST", "/fapi/v1/listenKey"): BinanceUsdmStub._listen_key,
    ("PUT", "/fapi/v1/listenKey"): BinanceUsdmStub._keep_alive,
    ("DELETE", "/fapi/v1/listenKey"): BinanceUsdmStub._close_listen_key,
}
