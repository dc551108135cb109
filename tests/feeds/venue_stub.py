"""A local stand-in for the market-data REST APIs of Binance (USD-M and spot), Bybit v5 and
Hyperliquid, answering from REAL files of ``../shared/data`` (typhonun/DcaTpStrategy, MIT).

Each venue is paged as its documentation says (what ccxt sends is read from ccxt's source):

* Binance ``GET /fapi/v1/klines``, ``/fapi/v1/markPriceKlines``, ``/api/v3/klines``:
  ``startTime``/``endTime`` inclusive, ``limit`` (default 500, at most 1500 on USD-M, 1000 on
  spot); with only ``endTime`` the last ``limit`` bars; oldest first, rows as arrays of strings.
  ``GET /fapi/v1/fundingRate``: the same bounds, ``limit`` at most 1000 (default 100).
* Bybit ``GET /v5/market/kline`` and ``/v5/market/mark-price-kline``: ``start``/``end``
  inclusive, ``limit`` at most 1000 (default 200), the newest ``limit`` bars of the range,
  **newest first**; ``/v5/market/funding/history``: ``startTime``/``endTime``, ``limit`` at
  most 200, newest first.
* Hyperliquid ``POST /info``: ``candleSnapshot`` (``req.startTime``/``req.endTime``, at most 5000
  candles) and ``fundingHistory`` (at most 500), oldest first.

The market lists that ccxt's ``load_markets`` asks for (Binance ``exchangeInfo``, Bybit
``instruments-info``, Hyperliquid ``metaAndAssetCtxs``, ``spotMeta``) are answered
with one BTC market each, holding only the fields ccxt reads.

The Binance file is served for every venue (standing in for that venue's own history): the
point is the paging and the venue's response layout, and that the bytes can be compared.

Faults, by the number of the data request (1-based, market lists not counted): ``faults[n]``
is ``"429"`` (in the venue's own words; Binance's with a Retry-After), ``"500"`` (a gateway's 502 page), ``"short"`` (half the page, cut where the venue's order ends),
``"overlap"`` (ten rows before the requested start added), ``"shuffle"`` (the page's rows
in a seeded random order) or ``"drop"`` (the connection is
closed without an answer). ``die_after=N`` drops every data request after the N-th (a venue
that went away); ``on_request(n)`` is called before answering data request ``n``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "typhonun_DcaTpStrategy"
CANDLES_1M = DATA / "BTC_USDT_USDT-1m-futures.feather"
FUNDING_8H = DATA / "BTC_USDT_USDT-8h-funding_rate.feather"
MARK_8H = DATA / "BTC_USDT_USDT-8h-mark.feather"

MINUTE = 60_000
RETRY_AFTER_S = 7  # what the Binance stub's 429 asks to wait


def read_rows(path: Path) -> np.ndarray:
    """(n, 6) float64: epoch ms, open, high, low, close, volume of a freqtrade feather file."""
    frame = pd.read_feather(path)
    ts = frame["date"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ms]")
    cols = [frame[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume")]
    return np.column_stack([ts.view(np.int64).astype(np.float64), *cols])


def point_at(exchange: Any, base: str) -> Any:
    """Point a ccxt exchange's REST URLs at ``base`` (keeping each URL's path), and set its
    throttle to a millisecond: rate limiting is ccxt's own and not what these tests measure."""
    api = exchange.urls["api"]
    for key, value in list(api.items()):
        if isinstance(value, str):
            api[key] = base + urlsplit(value.replace("{hostname}", "x")).path
    exchange.rateLimit = 1
    return exchange


def _s(x: float) -> str:
    return repr(float(x))  # round-trips exactly through float()


@dataclass
class Series:
    rows: np.ndarray
    step_ms: int

    def between(self, lo: int | None, hi: int | None) -> np.ndarray:
        ts = self.rows[:, 0]
        mask = np.ones(len(ts), dtype=bool)
        if lo is not None:
            mask &= ts >= lo
        if hi is not None:
            mask &= ts <= hi
        return self.rows[mask]


class _Drop(Exception):
    """Close the connection without an answer."""


class _HttpError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


class VenueStub:
    """One HTTP server on 127.0.0.1 serving all four venues' market-data endpoints."""

    def __init__(self, candles: Path = CANDLES_1M, funding: Path = FUNDING_8H,
                 mark: Path = MARK_8H) -> None:  # fmt: skip
        self.candles = Series(read_rows(candles), MINUTE)
        self.mark = Series(read_rows(mark), 8 * 3_600_000)
        self.funding = Series(read_rows(funding), 8 * 3_600_000)
        self.faults: dict[int, str] = {}
        self.die_after: int | None = None
        self.retry_after = RETRY_AFTER_S
        self.on_request: Callable[[int], None] | None = None
        self.data_requests = 0
        self.log: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                stub._answer(self, parts.path, query)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                stub._answer(self, urlsplit(self.path).path, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
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

    def point(self, exchange: Any) -> Any:
        return point_at(exchange, self.url)

    # -- dispatch -----------------------------------------------------------------------------

    def _answer(self, handler: BaseHTTPRequestHandler, path: str, params: dict[str, Any]) -> None:
        # The client may go away mid-answer (killed on purpose by a test).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._respond(handler, path, params)

    def _respond(self, handler: BaseHTTPRequestHandler, path: str, params: dict[str, Any]) -> None:
        route = _ROUTES.get(path)
        if path == "/info":
            route = _ROUTES.get(f"/info:{params.get('type')}")
        try:
            if route is None:
                raise _HttpError(404, {"msg": f"no such endpoint {path}"})
            name, is_data = route
            fault = None
            if is_data:
                with self._lock:
                    self.data_requests += 1
                    n = self.data_requests
                    self.log.append((name, dict(params)))
                if self.on_request is not None:
                    self.on_request(n)
                fault = self.faults.get(n)
                if self.die_after is not None and n > self.die_after:
                    fault = "drop"
                if fault == "drop":
                    raise _Drop
                if fault == "429":
                    limited = _RATE_LIMITED[name.partition("_")[0]]
                    if limited.headers:
                        limited.headers = {"Retry-After": str(self.retry_after)}
                    raise limited
                if fault == "500":
                    raise _HttpError(502, "<html><body>502 Bad Gateway</body></html>")
            body = getattr(self, f"_{name}")(params, fault)
            data = json.dumps(body).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except _Drop:
            handler.close_connection = True
            handler.connection.close()
        except _HttpError as err:
            text = isinstance(err.body, str)
            data = err.body.encode() if text else json.dumps(err.body).encode()
            handler.send_response(err.status)
            handler.send_header("Content-Type", "text/html" if text else "application/json")
            for key, value in err.headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)

    # -- paging helpers -----------------------------------------------------------------------

    def _series(self, interval_ms: int, mark: bool = False) -> Series:
        series = self.mark if mark else self.candles
        if interval_ms != series.step_ms:
            raise _HttpError(400, {"code": -1120, "msg": "Invalid interval (stub holds one)."})
        return series

    @staticmethod
    def _page(series: Series, lo: int | None, hi: int | None, limit: int,
              newest: bool, fault: str | None) -> np.ndarray:  # fmt: skip
        """``limit`` rows of [lo, hi]: the oldest (``newest=False``) or newest ones."""
        rows = series.between(lo, hi)
        rows = rows[-limit:] if newest or (lo is None and hi is not None) else rows[:limit]
        if fault == "short" and len(rows) > 1:
            rows = rows[-(len(rows) // 2):] if newest else rows[: len(rows) // 2]
        if fault == "shuffle":
            rows = rows[np.random.default_rng(len(rows)).permutation(len(rows))]
        if fault == "overlap" and lo is not None:
            before = series.between(None, lo - 1)[-10:]
            rows = np.concatenate([before, rows])
        return rows

    @staticmethod
    def _limit(params: dict[str, Any], key: str, default: int, most: int) -> int:
        limit = int(params.get(key) or default)
        if not 1 <= limit <= most:
            raise _HttpError(400, {"code": -1130, "msg": f"limit {limit} out of range"})
        return limit

    @staticmethod
    def _int(params: dict[str, Any], key: str) -> int | None:
        value = params.get(key)
        return None if value in (None, "") else int(value)

    # -- Binance ------------------------------------------------------------------------------

    def _binance_info(self, params: dict[str, Any], fault: str | None, spot: bool = False) -> Any:
        market = {
            "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
            "baseAssetPrecision": 8, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.10", "maxPrice": "4529764",
                 "tickSize": "0.10"},
                {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000",
                 "stepSize": "0.001"},
            ],
            "permissions": ["SPOT"], "isSpotTradingAllowed": True, "orderTypes": ["LIMIT"],
        }  # fmt: skip
        if not spot:
            market.update({
                "pair": "BTCUSDT", "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
                "onboardDate": 1569398400000, "marginAsset": "USDT", "pricePrecision": 2,
                "quantityPrecision": 3, "underlyingType": "COIN",
            })  # fmt: skip
        return {"timezone": "UTC", "serverTime": 0, "symbols": [market]}

    def _binance_spot_info(self, params: dict[str, Any], fault: str | None) -> Any:
        return self._binance_info(params, fault, spot=True)

    def _binance_klines(self, params: dict[str, Any], fault: str | None, *, most: int = 1500,
                        mark: bool = False) -> Any:  # fmt: skip
        interval = _BINANCE_INTERVALS.get(params.get("interval", ""))
        if interval is None:
            raise _HttpError(400, {"code": -1120, "msg": "Invalid interval."})
        series = self._series(interval, mark)
        limit = self._limit(params, "limit", 500, most)
        rows = self._page(series, self._int(params, "startTime"), self._int(params, "endTime"),
                          limit, newest=False, fault=fault)  # fmt: skip
        step = series.step_ms
        return [
            [int(r[0]), _s(r[1]), _s(r[2]), _s(r[3]), _s(r[4]), _s(r[5]), int(r[0]) + step - 1,
             "0", 0, "0", "0", "0"]
            for r in rows
        ]  # fmt: skip

    def _binance_spot_klines(self, params: dict[str, Any], fault: str | None) -> Any:
        return self._binance_klines(params, fault, most=1000)

    def _binance_mark_klines(self, params: dict[str, Any], fault: str | None) -> Any:
        return self._binance_klines(params, fault, mark=True)

    def _binance_funding(self, params: dict[str, Any], fault: str | None) -> Any:
        limit = self._limit(params, "limit", 100, 1000)
        rows = self._page(self.funding, self._int(params, "startTime"),
                          self._int(params, "endTime"), limit, newest=False, fault=fault)  # fmt: skip
        return [{"symbol": "BTCUSDT", "fundingTime": int(r[0]), "fundingRate": _s(r[1]),
                 "markPrice": ""} for r in rows]  # fmt: skip

    # -- Bybit --------------------------------------------------------------------------------

    @staticmethod
    def _bybit(result: dict[str, Any]) -> Any:
        return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": 0}

    def _bybit_instruments(self, params: dict[str, Any], fault: str | None) -> Any:
        category = params.get("category", "linear")
        item: dict[str, Any] = {
            "symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "status": "Trading",
            "lotSizeFilter": {"basePrecision": "0.000001", "qtyStep": "0.001",
                              "minOrderQty": "0.001", "maxOrderQty": "100"},
            "priceFilter": {"tickSize": "0.10", "minPrice": "0.10", "maxPrice": "1999999"},
        }  # fmt: skip
        if category == "linear":
            item.update({
                "contractType": "LinearPerpetual", "settleCoin": "USDT", "launchTime": "1585526400000",
                "deliveryTime": "0", "fundingInterval": 480, "priceScale": "2",
                "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00",
                                   "leverageStep": "0.01"},
            })  # fmt: skip
        listed = [item] if category in ("linear", "spot") else []
        return self._bybit({"category": category, "list": listed, "nextPageCursor": ""})

    def _bybit_klines(self, params: dict[str, Any], fault: str | None, mark: bool = False) -> Any:
        interval = _BYBIT_INTERVALS.get(params.get("interval", ""))
        if interval is None:
            raise _HttpError(400, {"retCode": 10001, "retMsg": "Invalid period!"})
        series = self._series(interval, mark)
        limit = self._limit(params, "limit", 200, 1000)
        rows = self._page(series, self._int(params, "start"), self._int(params, "end"), limit,
                          newest=True, fault=fault)  # fmt: skip
        rows = rows[::-1]  # newest first
        fields = 5 if mark else 7
        out = [[str(int(r[0])), _s(r[1]), _s(r[2]), _s(r[3]), _s(r[4]), _s(r[5]), "0"][:fields]
               for r in rows]  # fmt: skip
        return self._bybit({"symbol": "BTCUSDT", "category": params.get("category"), "list": out})

    def _bybit_mark_klines(self, params: dict[str, Any], fault: str | None) -> Any:
        return self._bybit_klines(params, fault, mark=True)

    def _bybit_funding(self, params: dict[str, Any], fault: str | None) -> Any:
        limit = self._limit(params, "limit", 200, 200)
        rows = self._page(self.funding, self._int(params, "startTime"),
                          self._int(params, "endTime"), limit, newest=True, fault=fault)  # fmt: skip
        out = [{"symbol": "BTCUSDT", "fundingRate": _s(r[1]),
                "fundingRateTimestamp": str(int(r[0]))} for r in rows[::-1]]  # fmt: skip
        return self._bybit({"category": params.get("category"), "list": out})

    # -- Hyperliquid --------------------------------------------------------------------------

    def _hl_meta(self, params: dict[str, Any], fault: str | None) -> Any:
        universe = [{"name": "BTC", "szDecimals": 5, "maxLeverage": 40}]
        ctx = [{"funding": "0.0000125", "openInterest": "1", "prevDayPx": "100000",
                "dayNtlVlm": "1", "premium": "0", "oraclePx": "100000", "markPx": "100000",
                "midPx": "100000", "impactPxs": ["100000", "100000"], "dayBaseVlm": "1"}]  # fmt: skip
        return [{"universe": universe}, ctx]

    def _hl_spot_meta(self, params: dict[str, Any], fault: str | None) -> Any:
        return [{"universe": [], "tokens": []}, []]

    def _hl_spot_tokens(self, params: dict[str, Any], fault: str | None) -> Any:
        return {"universe": [], "tokens": []}

    def _hl_candles(self, params: dict[str, Any], fault: str | None) -> Any:
        req = params.get("req") or {}
        interval = _BINANCE_INTERVALS.get(req.get("interval", ""))
        if interval is None or req.get("coin") != "BTC":
            raise _HttpError(422, {"error": "Failed to deserialize the JSON body"})
        series = self._series(interval)
        rows = self._page(series, self._int(req, "startTime"), self._int(req, "endTime"), 5000,
                          newest=False, fault=fault)  # fmt: skip
        return [{"t": int(r[0]), "T": int(r[0]) + series.step_ms - 1, "s": "BTC",
                 "i": req["interval"], "o": _s(r[1]), "c": _s(r[4]), "h": _s(r[2]),
                 "l": _s(r[3]), "v": _s(r[5]), "n": 1} for r in rows]  # fmt: skip

    def _hl_funding(self, params: dict[str, Any], fault: str | None) -> Any:
        rows = self._page(self.funding, self._int(params, "startTime"),
                          self._int(params, "endTime"), 500, newest=False, fault=fault)  # fmt: skip
        return [{"coin": "BTC", "fundingRate": _s(r[1]), "premium": "0", "time": int(r[0])}
                for r in rows]  # fmt: skip


# How each venue says "too many requests" (Bybit answers HTTP 200 with its own code).
_RATE_LIMITED = {
    "binance": _HttpError(429, {"code": -1003, "msg": "Too many requests; current limit is 2400 "
                                                      "requests per minute."},
                          headers={"Retry-After": str(RETRY_AFTER_S)}),
    "bybit": _HttpError(200, {"retCode": 10006, "retMsg": "Too many visits!", "result": {},
                              "retExtInfo": {}, "time": 0}),
    "hl": _HttpError(429, "null"),
}  # fmt: skip

_BINANCE_INTERVALS = {"1m": MINUTE, "5m": 5 * MINUTE, "1h": 60 * MINUTE, "4h": 240 * MINUTE,
                      "8h": 480 * MINUTE}  # fmt: skip
_BYBIT_INTERVALS = {"1": MINUTE, "5": 5 * MINUTE, "60": 60 * MINUTE, "240": 240 * MINUTE}

# path -> (handler name, counts as a data request)
_ROUTES: dict[str, tuple[str, bool]] = {
    "/fapi/v1/exchangeInfo": ("binance_info", False),
    "/api/v3/exchangeInfo": ("binance_spot_info", False),
    "/fapi/v1/klines": ("binance_klines", True),
    "/fapi/v1/markPriceKlines": ("binance_mark_klines", True),
    "/fapi/v1/fundingRate": ("binance_funding", True),
    "/api/v3/klines": ("binance_spot_klines", True),
    "/v5/market/instruments-info": ("bybit_instruments", False),
    "/v5/market/kline": ("bybit_klines", True),
    "/v5/market/mark-price-kline": ("bybit_mark_klines", True),
    "/v5/market/funding/history": ("bybit_funding", True),
    "/info:metaAndAssetCtxs": ("hl_meta", False),
    "/info:spotMetaAndAssetCtxs": ("hl_spot_meta", False),
    "/info:spotMeta": ("hl_spot_tokens", False),
    "/info:candleSnapshot": ("hl_candles", True),
    "/info:fundingHistory": ("hl_funding", True),
}
