"""A local stand-in for Hyperliquid's HTTP API (``/info`` and ``/exchange``) for the REAL tests.

It checks what the real exchange checks before acting on a request: every ``/exchange``
action's signature is recovered with ``eth-account`` from the exact bytes the venue hashes
(msgpack of the action, the 8-byte nonce, the vault flag/address, then the "phantom agent"
EIP-712 struct under the ``Exchange`` domain; user-signed actions such as
``approveBuilderFee`` under the ``HyperliquidSignTransaction`` domain). A signer that is not
an agent registered for the account is answered ``{"status": "err", ...}`` like the venue does.

One perpetual (``BTC``, asset 0) is traded. The stub keeps resting limit orders and trigger
orders (``tpsl`` "sl"/"tp", ``isMarket``) and fires them from a scripted price path:
``move_to(price)`` walks the price there; a triggered stop fills where the walk crossed its
trigger: at the trigger, or at ``price`` when ``gap=True`` (PAPER's gap rule) - a market stop
only within its limit (slippage) price, see below; a resting limit fills at its limit.
Positions, entry prices,
realized PnL and fees are tracked per account; every fill gets a trade id (``tid``).

A grid hedge's start reads ``spotClearinghouseState`` (an account's ``spot`` balances, set by
the test) and ``candleSnapshot`` (daily ``candles`` set by the test from real data; the last one
is the open candle and follows the price).

Every request is recorded (``actions`` for ``/exchange``, ``info_requests`` for ``/info``), so
a test can assert what was - and what was never - sent.

Faults (each applies to the next matching request(s)): ``drop_answer`` (the action is carried
out, the answer is lost), ``http_error`` (429 / 5xx, the request is not carried out),
``reject_margin``, ``partial_next_market`` (an IOC order fills in part), ``split_next_fill``
(one execution reported as several trades), ``fill_partially`` (a resting order fills in part
now), plus ``preload_order`` (an orphan left from an earlier run) and ``manual_trade`` (the
position changed by hand on the venue's web page). ``chaos(seed, p)`` makes any private request
fail at random (429/502 before acting; 502 after acting or a lost answer for an action), and
``duplicate_fills`` lists every fill twice. ``settle_funding(rate)`` is a funding time: every
position pays or receives ``szi x price x rate``, listed by ``userFunding`` (and the rate by the
public ``fundingHistory``).

Stub simplifications (deliberate, documented): unlimited liquidity at the current price, and
none beyond it: a triggered market stop executes as the venue's market order, an IOC bounded by
the order's limit price (ccxt sends the trigger ± the slippage), so it fills in full at its
trigger or a gap price within that bound, and not at all past it (a gap beyond the slippage:
the order ends "canceled"; the venue's exact status word for it is not known here); trigger
orders are margin-checked when placed and when they fire (then
"marginCanceled") but reserve none while they wait; funding is not charged. The exact text the venue
sends for a reused cloid is not known here; the stub answers "Duplicate cloid. asset=0".

The websocket (``ws``, see ``stubs/ws.py``, at ``/ws``): ``subscribe`` to ``userFills`` (a first
message with ``isSnapshot: true`` and the user's fills, then one message per fill, once the
request or ``move_to`` that booked it is done) and ``orderUpdates`` (acknowledged, then each
order's status changes), ``ping`` -> ``pong``. Its faults are the ``ws`` server's:
``duplicate``, ``reverse`` (out of order), ``drop_next`` (the connection drops right after a
fill was booked, before it is pushed), ``silent``.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgpack
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from tests.venues.stubs.ws import WsConn, WsServer

# Fake keys of the tests: they sign on 127.0.0.1 only and must never show up in any log.
AGENT_KEY = "0x" + "a5" * 32  # the API (agent) wallet registered for MAIN
MAIN_KEY = "0x" + "5a" * 32  # the main wallet (only user-signed actions use it)
OTHER_KEY = "0x" + "3c" * 32  # a key nobody registered
AGENT_ADDRESS = Account.from_key(AGENT_KEY).address
MAIN_ADDRESS = Account.from_key(MAIN_KEY).address

COIN = "BTC"
ASSET = 0
SZ_DECIMALS = 5
MAX_LEVERAGE = 50
TAKER_FEE = Decimal("0.00045")
MAKER_FEE = Decimal("0.00015")
MIN_NOTIONAL = Decimal("10")
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
FIRST_TID = 900_000_000_000_001
FIRST_OID = 30_000_000_001

_EIP712_DOMAIN = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
# User-signed actions (signed by the main wallet itself, never by an agent): field order as the
# venue's EIP-712 types.
_USER_SIGNED_TYPES: dict[str, tuple[str, list[dict[str, str]]]] = {
    "approveBuilderFee": ("HyperliquidTransaction:ApproveBuilderFee", [
        {"name": "hyperliquidChain", "type": "string"},
        {"name": "maxFeeRate", "type": "string"},
        {"name": "builder", "type": "address"},
        {"name": "nonce", "type": "uint64"},
    ]),
    "approveAgent": ("HyperliquidTransaction:ApproveAgent", [
        {"name": "hyperliquidChain", "type": "string"},
        {"name": "agentAddress", "type": "address"},
        {"name": "agentName", "type": "string"},
        {"name": "nonce", "type": "uint64"},
    ]),
}


def d(x: Any) -> Decimal:
    return Decimal(str(x))


def fmt(x: Decimal) -> str:
    """Numbers as the venue writes them: plain decimal strings without trailing zeros."""
    s = format(x.normalize(), "f")
    return s if s not in ("-0",) else "0"


class Malformed(ValueError):
    """A body the venue cannot deserialize (it answers HTTP 422)."""


def canonical_action(action: dict[str, Any]) -> dict[str, Any]:
    """The action as the venue re-serializes it before hashing: parsed into its typed structs
    (unknown fields and wrong types refused) and packed in the structs' field order - not in
    the order the JSON happened to list the keys. A client that signs another order or type
    signs a different hash, and its signature recovers to a stranger."""
    t = action.get("type")
    if t == "order":
        _keys(action, {"type", "orders", "grouping"}, {"builder"})
        out: dict[str, Any] = {"type": "order", "orders": [_order_wire(o) for o in _list(action["orders"])],
                               "grouping": _choice(action["grouping"], ("na", "normalTpsl", "positionTpsl"))}
        if "builder" in action:
            b = action["builder"]
            _keys(b, {"b", "f"})
            out["builder"] = {"b": _str(b["b"]).lower(), "f": _int(b["f"])}
        return out
    if t == "cancel":
        _keys(action, {"type", "cancels"})
        return {"type": t, "cancels": [_pick(c, (("a", _int), ("o", _int))) for c in _list(action["cancels"])]}
    if t == "cancelByCloid":
        _keys(action, {"type", "cancels"})
        return {"type": t, "cancels": [_pick(c, (("asset", _int), ("cloid", _cloid))) for c in _list(action["cancels"])]}
    if t == "updateLeverage":
        return _pick(action, (("type", _str), ("asset", _int), ("isCross", _bool), ("leverage", _int)))
    if t == "setReferrer":
        return _pick(action, (("type", _str), ("code", _str)))
    return action


def _order_wire(o: Any) -> dict[str, Any]:
    _keys(o, {"a", "b", "p", "s", "r", "t"}, {"c"})
    t = o["t"]
    if not isinstance(t, dict) or len(t) != 1:
        raise Malformed("order type")
    if "limit" in t:
        kind = {"limit": _pick(t["limit"], (("tif", lambda v: _choice(v, ("Alo", "Ioc", "Gtc"))),))}
    elif "trigger" in t:
        kind = {"trigger": _pick(t["trigger"], (("isMarket", _bool), ("triggerPx", _str),
                                                ("tpsl", lambda v: _choice(v, ("tp", "sl")))))}
    else:
        raise Malformed("order type")
    out = {"a": _int(o["a"]), "b": _bool(o["b"]), "p": _str(o["p"]), "s": _str(o["s"]), "r": _bool(o["r"]), "t": kind}
    if "c" in o:
        out["c"] = _cloid(o["c"])
    return out


def _keys(obj: Any, required: set[str], optional: frozenset[str] | set[str] = frozenset()) -> None:
    if not isinstance(obj, dict) or not required <= obj.keys() or not obj.keys() <= required | optional:
        raise Malformed(f"fields {sorted(obj) if isinstance(obj, dict) else type(obj).__name__}")


def _pick(obj: Any, fields: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    _keys(obj, {name for name, _ in fields})
    return {name: check(obj[name]) for name, check in fields}


def _list(v: Any) -> list[Any]:
    if not isinstance(v, list):
        raise Malformed("list")
    return v


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise Malformed("int")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise Malformed("bool")
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise Malformed("string")
    return v


def _choice(v: Any, allowed: tuple[str, ...]) -> str:
    if v not in allowed:
        raise Malformed(f"one of {allowed}")
    return str(v)


def _cloid(v: Any) -> str:
    if not isinstance(v, str) or len(v) != 34 or not v.startswith("0x") or any(c not in "0123456789abcdef" for c in v[2:]):
        raise Malformed("cloid: 0x and 32 lower-case hex digits")
    return v


def l1_action_hash(action: dict[str, Any], nonce: int, vault: str | None, expires_after: int | None) -> bytes:
    """The venue's action hash: keccak(msgpack(action) || nonce || vault flag [|| expiry])."""
    data = msgpack.packb(canonical_action(action)) + nonce.to_bytes(8, "big")
    if vault is None:
        data += b"\x00"
    else:
        data += b"\x01" + bytes.fromhex(vault.removeprefix("0x"))
    if expires_after is not None:
        data += b"\x00" + expires_after.to_bytes(8, "big")
    return keccak(data)


def recover_l1_signer(action: dict[str, Any], nonce: int, vault: str | None, expires_after: int | None,
                      signature: dict[str, Any], *, testnet: bool) -> str:
    connection_id = l1_action_hash(action, nonce, vault, expires_after)
    message = encode_typed_data(full_message={
        "domain": {"chainId": 1337, "name": "Exchange", "verifyingContract": ZERO_ADDRESS, "version": "1"},
        "types": {
            "EIP712Domain": _EIP712_DOMAIN,
            "Agent": [{"name": "source", "type": "string"}, {"name": "connectionId", "type": "bytes32"}],
        },
        "primaryType": "Agent",
        "message": {"source": "b" if testnet else "a", "connectionId": connection_id},
    })
    return _recover(message, signature)


def recover_user_signer(action: dict[str, Any], signature: dict[str, Any]) -> str:
    primary, fields = _USER_SIGNED_TYPES[action["type"]]
    message = encode_typed_data(full_message={
        "domain": {
            "chainId": int(action["signatureChainId"], 16), "name": "HyperliquidSignTransaction",
            "verifyingContract": ZERO_ADDRESS, "version": "1",
        },
        "types": {"EIP712Domain": _EIP712_DOMAIN, primary: fields},
        "primaryType": primary,
        "message": {f["name"]: action[f["name"]] for f in fields},
    })
    return _recover(message, signature)


def _recover(message: Any, signature: dict[str, Any]) -> str:
    vrs = (int(signature["v"]), int(signature["r"], 16), int(signature["s"], 16))
    return str(Account.recover_message(message, vrs=vrs))


@dataclass
class StubOrder:
    oid: int
    user: str
    cloid: str | None
    is_buy: bool
    limit_px: Decimal
    orig_sz: Decimal
    sz: Decimal  # what is left
    reduce_only: bool
    tif: str | None  # "Gtc" | "Ioc" | "Alo"; None for trigger orders
    trigger_px: Decimal | None = None
    is_market: bool = False  # trigger orders: market once triggered
    tpsl: str | None = None  # "sl" | "tp"
    timestamp: int = 0
    status: str = "open"  # open | triggered | filled | canceled | rejected | marginCanceled | reduceOnlyCanceled
    status_ts: int = 0
    triggered: bool = False

    @property
    def is_trigger(self) -> bool:
        return self.trigger_px is not None

    @property
    def side(self) -> str:
        return "B" if self.is_buy else "A"

    def order_type(self) -> str:
        if not self.is_trigger:
            return "Limit"
        kind = "Stop" if self.tpsl == "sl" else "Take Profit"
        return f"{kind} {'Market' if self.is_market else 'Limit'}"

    def trigger_condition(self) -> str:
        if not self.is_trigger:
            return "N/A"
        return f"Price {'above' if self.fires_above() else 'below'} {fmt(self.trigger_px or Decimal(0))}"

    def fires_above(self) -> bool:
        # A stop-loss buy (and a take-profit sell) triggers when the price rises to the trigger.
        return self.is_buy == (self.tpsl == "sl")

    def frontend(self) -> dict[str, Any]:
        return {
            "children": [], "cloid": self.cloid, "coin": COIN, "isPositionTpsl": False,
            "isTrigger": self.is_trigger and not self.triggered, "limitPx": fmt(self.limit_px),
            "oid": self.oid, "orderType": self.order_type(), "origSz": fmt(self.orig_sz),
            "reduceOnly": self.reduce_only, "side": self.side, "sz": fmt(self.sz),
            "tif": self.tif, "timestamp": self.timestamp,
            "triggerCondition": self.trigger_condition(),
            "triggerPx": fmt(self.trigger_px) if self.trigger_px is not None else "0.0",
        }

    def basic(self) -> dict[str, Any]:
        return {
            "coin": COIN, "limitPx": fmt(self.limit_px), "oid": self.oid, "side": self.side,
            "sz": fmt(self.sz), "timestamp": self.timestamp, "origSz": fmt(self.orig_sz),
            "cloid": self.cloid,
        }


@dataclass
class StubAccount:
    address: str  # lower case
    usdc: Decimal  # deposited collateral plus realized PnL minus fees
    master: str | None = None  # a sub-account's master (whose agents may trade it)
    szi: Decimal = Decimal(0)  # signed position
    entry_px: Decimal = Decimal(0)
    leverage: int = 20
    is_cross: bool = True
    fills: list[dict[str, Any]] = field(default_factory=list)
    funding: list[dict[str, Any]] = field(default_factory=list)  # userFunding rows, oldest first
    spot: dict[str, Decimal] = field(default_factory=dict)  # spot wallet: token (e.g. UBTC) -> total


@dataclass
class RecordedAction:
    action: dict[str, Any]
    nonce: int
    vault: str | None
    signer: str | None
    accepted: bool
    answer: dict[str, Any] | None  # None when the answer was dropped or an HTTP error sent


class ServedError(Exception):
    """An HTTP status (429, 5xx) the stub answers instead of carrying out the request."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(status)
        self.status, self.body = status, body


class DropAnswer(Exception):
    """The request was carried out; the connection is closed without an answer."""


class HyperliquidStub:
    def __init__(self, price: float = 43_000.0, *, testnet: bool = True) -> None:
        self.testnet = testnet
        self.price = d(price)
        self.accounts: dict[str, StubAccount] = {}
        self.agents: dict[str, str] = {}  # agent address (lower) -> the account it trades for
        self.orders: dict[int, StubOrder] = {}
        self.actions: list[RecordedAction] = []
        self.info_requests: list[dict[str, Any]] = []
        self.funding_history: list[dict[str, Any]] = []  # public fundingHistory rows (settlements)
        self._nonces: set[tuple[str, int]] = set()
        self._next_oid = FIRST_OID
        self._next_tid = FIRST_TID
        self._last_ms = 0
        self._lock = threading.RLock()
        # faults: counters of the next requests they apply to
        self._drop: list[str] = []  # action types whose next answer is dropped
        # (status, path, /info type filter, carried out before the error is answered)
        self._http_errors: list[tuple[int, str, str | None, bool]] = []
        self._reject_margin = 0
        self._partial_market: list[Decimal] = []
        # daily candles [open ms, o, h, l, c, v] for candleSnapshot (real data from the test);
        # the last one is the open candle: it follows the price (move_to)
        self.candles: list[list[Any]] = []
        self._split_fill: list[int] = []
        # How a placed trigger order is acknowledged: {"resting": {"oid"}} or the bare string
        # "waitingForTrigger" (ccxt knows both; the adapter must look such an order up by cloid).
        self.trigger_ack = "resting"
        self.duplicate_fills = False  # userFills/userFillsByTime list every fill twice
        self._chaos: tuple[random.Random, float] | None = None
        self.chaos_served: dict[str, int] = {}  # chaos fault kind -> how many were served
        self.server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.ws = WsServer(lambda path: "" if path.split("?")[0] == "/ws" else None, self._ws_message)

    # --- set-up --------------------------------------------------------------------------
    def add_account(self, address: str, *, usdc: float = 10_000.0, agent: str | None = None,
                    master: str | None = None) -> StubAccount:
        with self._lock:
            acct = StubAccount(address.lower(), d(usdc), master=master.lower() if master else None)
            self.accounts[acct.address] = acct
            if agent is not None:
                self.agents[agent.lower()] = acct.address
            return acct

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> HyperliquidStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    status, body = stub.handle(self.path, raw)
                except DropAnswer:
                    self.close_connection = True
                    return
                except ServedError as e:
                    status, body = e.status, e.body
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="hyperliquid-stub", daemon=True)
        self._thread.start()
        self.ws.start()
        return self

    @property
    def ws_url(self) -> str:
        return f"{self.ws.url}/ws"

    def stop(self) -> None:
        self.ws.stop()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self._thread is not None:
            self._thread.join()

    # --- faults --------------------------------------------------------------------------
    def drop_answer(self, action_type: str = "order") -> None:
        """The next ``action_type`` action is carried out but its answer never arrives."""
        with self._lock:
            self._drop.append(action_type)

    def http_error(self, status: int = 429, *, path: str = "/exchange", info_type: str | None = None,
                   times: int = 1, executed: bool = False) -> None:
        """The next ``times`` requests to ``path`` (of ``info_type`` on /info) get ``status``;
        they are not carried out unless ``executed`` (a gateway error after the venue acted)."""
        with self._lock:
            self._http_errors.extend([(status, path, info_type, executed)] * times)

    def chaos(self, seed: int, p: float) -> None:
        """From now on each private request fails with probability ``p`` (seeded): HTTP 429 or
        502 before it is carried out, and, for an ``/exchange`` action, a 502 after it was
        carried out or its answer lost (the connection closed)."""
        with self._lock:
            self._chaos = (random.Random(seed), p)

    def _chaos_fault(self, path: str, info_type: str | None) -> str | None:
        if self._chaos is None or (path == "/info" and info_type not in _PRIVATE_INFO):
            return None
        rng, p = self._chaos
        if rng.random() >= p:
            return None
        fault = rng.choice(["429", "502", "502-after", "lost"] if path == "/exchange" else ["429", "502"])
        self.chaos_served[fault] = self.chaos_served.get(fault, 0) + 1
        return fault

    def reject_margin(self, times: int = 1) -> None:
        with self._lock:
            self._reject_margin += times

    def partial_next_market(self, fraction: float) -> None:
        """The next order that executes on arrival fills only ``fraction`` of its size (IOC:
        the rest is cancelled; GTC: the rest rests)."""
        with self._lock:
            self._partial_market.append(d(fraction))

    def split_next_fill(self, parts: int = 2) -> None:
        """The next execution is reported as ``parts`` trades (distinct tids) at one price."""
        with self._lock:
            self._split_fill.append(parts)

    def preload_order(self, user: str, *, is_buy: bool, sz: float, cloid: str | None = None,
                      limit_px: float | None = None, trigger_px: float | None = None,
                      reduce_only: bool = False) -> int:
        """An order already on the book (left by an earlier run, or placed by hand)."""
        with self._lock:
            trig = d(trigger_px) if trigger_px is not None else None
            px = d(limit_px) if limit_px is not None else (trig if trig is not None else self.price)
            order = self._new_order(user.lower(), cloid, is_buy, px, d(sz), reduce_only,
                                    None if trig is not None else "Gtc", trig, trig is not None, "sl")
            return order.oid

    def manual_trade(self, user: str, *, is_buy: bool, sz: float, px: float | None = None) -> dict[str, Any]:
        """A trade made outside hedgekit (the venue's web page): a fill without a cloid."""
        with self._lock:
            acct = self.accounts[user.lower()]
            order = self._new_order(acct.address, None, is_buy, d(px) if px else self.price, d(sz),
                                    False, "Ioc", None, False, None)
            fill = self._execute(order, order.sz, d(px) if px else self.price, crossed=True)[0]
            self.ws.flush()
            return fill

    def scheduled_cancel(self, user: str) -> None:
        """The account's dead man's switch (``scheduleCancel``) fires: every open order ends with
        the status ``scheduledCancel``, a word ccxt leaves as it is (it maps only ``…Canceled``)."""
        with self._lock:
            for order in self.orders.values():
                if order.user == user.lower() and order.status == "open":
                    self._set_status(order, "scheduledCancel")
            self.ws.flush()

    def fill_partially(self, oid_or_cloid: int | str, sz: float) -> dict[str, Any]:
        """Fill ``sz`` of a resting order now at its limit price (a partial fill)."""
        with self._lock:
            order = self._find(self._user_of(oid_or_cloid), oid_or_cloid)
            assert order is not None and order.status == "open"
            px = order.trigger_px if order.is_trigger and order.trigger_px is not None else order.limit_px
            fill = self._execute(order, d(sz), px, crossed=False)[0]
            self.ws.flush()
            return fill

    # --- the price path ------------------------------------------------------------------
    def move_to(self, price: float, *, gap: bool = False) -> list[dict[str, Any]]:
        """Walk the price to ``price``; trigger and limit orders crossed on the way fire in
        price order. Returns the fills. ``gap``: the price jumped, stops fill at ``price``."""
        with self._lock:
            target = d(price)
            fills: list[dict[str, Any]] = []
            up = target >= self.price
            while True:
                nxt = self._next_crossed(target, up)
                if nxt is None:
                    break
                order, level = nxt
                exec_px = target if gap and order.is_trigger else level
                self.price = target if gap else level
                fills += self._fire(order, exec_px)
            self.price = target
            if self.candles:
                k = self.candles[-1]
                k[2], k[3], k[4] = max(k[2], float(target)), min(k[3], float(target)), float(target)
            self.ws.flush()
            return fills

    def settle_funding(self, rate: float) -> dict[str, Decimal]:
        """A funding time at the current price: each account with a position pays (or receives)
        ``szi x price x rate``, booked to its USDC and listed by ``userFunding`` (the venue's
        layout: a zero hash, the signed USDC change). Returns the change per account."""
        with self._lock:
            out: dict[str, Decimal] = {}
            now = self._now()
            self.funding_history.append({"coin": COIN, "fundingRate": fmt(d(rate)), "premium": "0", "time": now})
            for acct in self.accounts.values():
                if acct.szi == 0:
                    continue
                usdc = (-acct.szi * self.price * d(rate)).quantize(Decimal("0.000001"))
                acct.usdc += usdc
                acct.funding.append({"time": now, "hash": "0x" + "0" * 64, "delta": {
                    "type": "funding", "coin": COIN, "usdc": fmt(usdc), "szi": fmt(acct.szi),
                    "fundingRate": fmt(d(rate)), "nSamples": None}})
                out[acct.address] = usdc
            return out

    def replay_bars(self, bars: Iterable[tuple[float, float, float, float]]) -> list[tuple[int, dict[str, Any]]]:
        """Drive the price through OHLC bars: a jump to each open (a gap), then open → low →
        high → close for a rising bar and open → high → low → close for a falling one.
        Returns ``(bar index, fill)`` for every fill."""
        out: list[tuple[int, dict[str, Any]]] = []
        for i, (o, h, lo, c) in enumerate(bars):
            path = (lo, h, c) if c >= o else (h, lo, c)
            out += [(i, f) for f in self.move_to(o, gap=True)]
            for px in path:
                out += [(i, f) for f in self.move_to(px)]
        return out

    def _next_crossed(self, target: Decimal, up: bool) -> tuple[StubOrder, Decimal] | None:
        best: tuple[StubOrder, Decimal] | None = None
        for o in self.orders.values():
            if o.status != "open":
                continue
            if o.is_trigger and not o.triggered:
                level = o.trigger_px
                assert level is not None
                hit = (o.fires_above() and up and target >= level) or (not o.fires_above() and not up and target <= level)
            else:
                level = o.limit_px
                hit = (not o.is_buy and up and target >= level) or (o.is_buy and not up and target <= level)
            if hit and (best is None or (level < best[1] if up else level > best[1])
                        or (level == best[1] and o.oid < best[0].oid)):
                best = (o, level)
        return best

    def _fire(self, order: StubOrder, px: Decimal) -> list[dict[str, Any]]:
        if order.is_trigger and not order.triggered:
            order.triggered = True
            order.status_ts = self._now()
            acct = self.accounts[order.user]
            if not order.reduce_only and self._increase(acct, order) * px / acct.leverage > self._free_margin(acct):
                self._set_status(order, "marginCanceled")  # margin gone since it was placed
                return []
            if not order.is_market:  # a stop-limit rests at its limit once triggered
                order.tif = "Gtc"
                if self._marketable(order):
                    return self._execute(order, order.sz, self.price, crossed=True)
                return []
            if (px > order.limit_px) if order.is_buy else (px < order.limit_px):
                # A market trigger is an IOC at its limit (slippage) price: past it, nothing trades.
                self._set_status(order, "canceled")
                return []
        return self._execute(order, order.sz, px, crossed=order.is_trigger)

    # --- HTTP dispatch -------------------------------------------------------------------
    def handle(self, path: str, raw: bytes) -> tuple[int, str]:
        with self._lock:
            try:
                return self._handle(path, raw)
            finally:
                self.ws.flush()  # what this request booked is pushed (as the venue does, about now)

    def _handle(self, path: str, raw: bytes) -> tuple[int, str]:
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            return 422, "Failed to deserialize the JSON body into the target type"
        info_type = payload.get("type") if path == "/info" else None
        for i, (status, fpath, ftype, executed) in enumerate(self._http_errors):
            if fpath == path and (ftype is None or ftype == info_type):
                del self._http_errors[i]
                if executed:
                    self._serve(path, payload)
                elif path == "/exchange":
                    self.actions.append(RecordedAction(payload.get("action", {}), payload.get("nonce", 0),
                                                       payload.get("vaultAddress"), None, False, None))
                raise ServedError(status, "Too many requests" if status == 429 else "Bad gateway")
        fault = self._chaos_fault(path, info_type)
        if fault in ("429", "502"):
            raise ServedError(int(fault), "Too many requests" if fault == "429" else "Bad gateway")
        answer = self._serve(path, payload)
        if fault == "502-after":
            raise ServedError(502, "Bad gateway")
        if fault == "lost":
            raise DropAnswer
        return answer

    def _serve(self, path: str, payload: dict[str, Any]) -> tuple[int, str]:
        if path == "/info":
            self.info_requests.append(payload)
            return self._info(payload)
        if path == "/exchange":
            return self._exchange(payload)
        return 404, "not found"

    def _info(self, req: dict[str, Any]) -> tuple[int, str]:
        t = req.get("type")
        user = str(req.get("user", "")).lower()
        if t in ("meta", "metaAndAssetCtxs"):
            meta = {"universe": [{"name": COIN, "szDecimals": SZ_DECIMALS, "maxLeverage": MAX_LEVERAGE,
                                  "onlyIsolated": False}]}
            if t == "meta":
                return 200, json.dumps(meta)
            ctx = {"dayNtlVlm": "0", "funding": "0.0000125", "impactPxs": [fmt(self.price), fmt(self.price)],
                   "markPx": fmt(self.price), "midPx": fmt(self.price), "openInterest": "0",
                   "oraclePx": fmt(self.price), "premium": "0", "prevDayPx": fmt(self.price)}
            return 200, json.dumps([meta, [ctx]])
        if t in ("spotMeta", "spotMetaAndAssetCtxs"):
            spot = {"tokens": [], "universe": []}
            return 200, json.dumps(spot if t == "spotMeta" else [spot, []])
        if t == "perpDexs":
            return 200, json.dumps([None])
        if t == "allMids":
            return 200, json.dumps({COIN: fmt(self.price)})
        if t == "userAbstraction":
            return 200, json.dumps("default")
        if t == "clearinghouseState":
            return 200, json.dumps(self._clearinghouse(user))
        if t == "spotClearinghouseState":
            acct = self.accounts.get(user)
            held = acct.spot if acct else {}
            return 200, json.dumps({"balances": [
                {"coin": c, "token": i + 1, "hold": "0.0", "total": fmt(q), "entryNtl": "0.0"}
                for i, (c, q) in enumerate(held.items())]})  # fmt: skip
        if t == "candleSnapshot":
            r = req.get("req") or {}
            if r.get("coin") != COIN or r.get("interval") != "1d":
                return 500, "null"  # the stub serves BTC daily candles only
            start, end = int(r.get("startTime", 0)), int(r.get("endTime", 2**62))
            return 200, json.dumps([
                {"t": t0, "T": t0 + 86_399_999, "s": COIN, "i": "1d", "o": fmt(d(o)), "c": fmt(d(c)),
                 "h": fmt(d(h)), "l": fmt(d(lo)), "v": fmt(d(v)), "n": 1000}
                for t0, o, h, lo, c, v in self.candles if start <= t0 <= end])  # fmt: skip
        if t in ("openOrders", "frontendOpenOrders"):
            mine = [o for o in self.orders.values() if o.user == user and o.status == "open"]
            mine.sort(key=lambda o: -o.oid)  # newest first, as the venue lists them
            return 200, json.dumps([o.frontend() if t == "frontendOpenOrders" else o.basic() for o in mine])
        if t == "orderStatus":
            order = self._find(user, req.get("oid"))
            if order is None:
                return 200, json.dumps({"status": "unknownOid"})
            return 200, json.dumps({"status": "order", "order": {
                "order": order.frontend(), "status": order.status, "statusTimestamp": order.status_ts}})
        if t == "fundingHistory":
            start, end = int(req.get("startTime", 0)), req.get("endTime")
            rows = [r for r in self.funding_history if r["coin"] == req.get("coin")
                    and r["time"] >= start and (end is None or r["time"] <= int(end))]  # fmt: skip
            return 200, json.dumps(rows[:500])
        if t == "userFunding":
            acct = self.accounts.get(user)
            start, end = int(req.get("startTime", 0)), req.get("endTime")
            rows = [r for r in (acct.funding if acct else [])
                    if r["time"] >= start and (end is None or r["time"] <= int(end))]  # fmt: skip
            return 200, json.dumps(rows[:500])
        if t in ("userFills", "userFillsByTime"):
            acct = self.accounts.get(user)
            fills = list(acct.fills) if acct else []
            if t == "userFillsByTime":
                start, end = int(req.get("startTime", 0)), req.get("endTime")
                fills = [f for f in fills if f["time"] >= start and (end is None or f["time"] <= int(end))]
            fills.sort(key=lambda f: (-f["time"], -f["tid"]))  # newest first, as the venue answers
            fills = fills[:2000]
            if self.duplicate_fills:
                fills = [f for f in fills for _ in (0, 1)]
            return 200, json.dumps(fills)
        return 422, "Failed to deserialize the JSON body into the target type"

    def _clearinghouse(self, user: str) -> dict[str, Any]:
        acct = self.accounts.get(user)
        if acct is None:
            summary = {"accountValue": "0", "totalNtlPos": "0", "totalRawUsd": "0", "totalMarginUsed": "0"}
            return {"marginSummary": summary, "crossMarginSummary": summary, "crossMaintenanceMarginUsed": "0",
                    "withdrawable": "0", "assetPositions": [], "time": self._now()}
        upnl = acct.szi * (self.price - acct.entry_px)
        ntl = abs(acct.szi) * self.price
        margin = ntl / acct.leverage
        value = acct.usdc + upnl
        summary = {"accountValue": fmt(value), "totalNtlPos": fmt(ntl),
                   "totalRawUsd": fmt(acct.usdc - acct.szi * acct.entry_px), "totalMarginUsed": fmt(margin)}
        positions = []
        if acct.szi != 0:
            positions.append({"type": "oneWay", "position": {
                "coin": COIN, "szi": fmt(acct.szi), "entryPx": fmt(acct.entry_px),
                "leverage": {"type": "cross" if acct.is_cross else "isolated", "value": acct.leverage},
                "positionValue": fmt(ntl), "unrealizedPnl": fmt(upnl),
                "returnOnEquity": fmt(upnl / (abs(acct.szi) * acct.entry_px / acct.leverage)),
                "liquidationPx": None, "marginUsed": fmt(margin), "maxLeverage": MAX_LEVERAGE,
                "cumFunding": {"allTime": "0", "sinceOpen": "0", "sinceChange": "0"},
            }})
        return {"marginSummary": summary, "crossMarginSummary": summary, "crossMaintenanceMarginUsed": "0",
                "withdrawable": fmt(max(value - margin - self._reserved(acct), Decimal(0))),
                "assetPositions": positions, "time": self._now()}

    def _exchange(self, req: dict[str, Any]) -> tuple[int, str]:
        action = req.get("action") or {}
        nonce = int(req.get("nonce", 0))
        vault = req.get("vaultAddress")
        rec = RecordedAction(action, nonce, vault, None, False, None)
        self.actions.append(rec)
        atype = action.get("type")
        try:
            canonical_action(action)
        except (Malformed, KeyError):
            raise ServedError(422, "Failed to deserialize the JSON body into the target type") from None
        try:
            if atype in _USER_SIGNED_TYPES:
                signer = recover_user_signer(action, req["signature"]).lower()
                user = signer if signer in self.accounts else None
            else:
                signer = recover_l1_signer(action, nonce, vault, req.get("expiresAfter"), req["signature"],
                                           testnet=self.testnet).lower()
                user = self._user_for_signer(signer, vault)
        except (KeyError, ValueError, TypeError):
            return self._answer(rec, {"status": "err", "response": "Invalid signature."})
        rec.signer = signer
        if user is None:
            # What the venue says when the recovered address is no agent of the account.
            return self._answer(rec, {"status": "err", "response": f"User or API Wallet {signer} does not exist."})
        if (signer, nonce) in self._nonces:
            return self._answer(rec, {"status": "err", "response": f"Invalid nonce: duplicate nonce {nonce}"})
        self._nonces.add((signer, nonce))
        rec.accepted = True
        if atype == "order":
            answer = self._place(user, action)
        elif atype in ("cancel", "cancelByCloid"):
            answer = self._cancel(user, action)
        elif atype == "updateLeverage":
            answer = self._update_leverage(user, action)
        elif atype in ("approveBuilderFee", "setReferrer", "approveAgent"):
            answer = {"status": "ok", "response": {"type": "default"}}
        else:
            rec.accepted = False
            answer = {"status": "err", "response": f"Unsupported action: {atype}"}
        if atype in self._drop:
            self._drop.remove(atype)
            raise DropAnswer
        return self._answer(rec, answer)

    @staticmethod
    def _answer(rec: RecordedAction, answer: dict[str, Any]) -> tuple[int, str]:
        rec.answer = answer
        return 200, json.dumps(answer)

    def _user_for_signer(self, signer: str, vault: str | None) -> str | None:
        owner = self.agents.get(signer, signer if signer in self.accounts else None)
        if owner is None:
            return None
        if vault is None:
            return owner
        sub = "0x" + vault.lower().removeprefix("0x")
        acct = self.accounts.get(sub)
        return sub if acct is not None and owner in (sub, acct.master) else None

    # --- order handling ------------------------------------------------------------------
    def _place(self, user: str, action: dict[str, Any]) -> dict[str, Any]:
        if "builder" in action:
            b = action["builder"]
            return {"status": "err", "response": f"Builder fee has not been approved. builder={b.get('b')}"}
        statuses = [self._place_one(user, o) for o in action.get("orders", [])]
        return {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}

    def _place_one(self, user: str, w: dict[str, Any]) -> dict[str, Any] | str:
        if w.get("a") != ASSET:
            return {"error": f"Invalid asset: {w.get('a')}"}
        px, sz = d(w["p"]), d(w["s"])
        if not _valid_price(px):
            return {"error": f"Price must be divisible by tick size. asset={ASSET}"}
        if sz <= 0 or sz != sz.quantize(Decimal(1).scaleb(-SZ_DECIMALS)):
            return {"error": f"Order has invalid size. asset={ASSET}"}
        cloid = w.get("c")
        if cloid is not None and self._find(user, cloid) is not None:
            # The venue's exact words for a reused cloid are not known here (module docstring).
            return {"error": f"Duplicate cloid. asset={ASSET}"}
        acct = self.accounts[user]
        is_buy, reduce_only = bool(w["b"]), bool(w.get("r", False))
        t = w.get("t", {})
        trig = t.get("trigger")
        trigger_px = d(trig["triggerPx"]) if trig else None
        if trigger_px is not None and not _valid_price(trigger_px):
            return {"error": f"Price must be divisible by tick size. asset={ASSET}"}
        ref = trigger_px if trigger_px is not None else px
        if not reduce_only and sz * ref < MIN_NOTIONAL:
            return {"error": f"Order must have minimum value of $10. asset={ASSET}"}
        if reduce_only and trigger_px is None and not _reduces(acct.szi, is_buy):
            return {"error": f"Reduce only order would increase position. asset={ASSET}"}
        if not reduce_only:
            increase = sz if acct.szi == 0 or (acct.szi > 0) == is_buy else max(sz - abs(acct.szi), Decimal(0))
            # Trigger orders too are checked here (the stub's choice: SPEC §4a's refused
            # entry stops can be provoked), and again when they fire.
            if self._reject_margin > 0 or (
                increase > 0 and increase * ref / acct.leverage > self._free_margin(acct)
            ):
                self._reject_margin = max(self._reject_margin - 1, 0)
                return {"error": f"Insufficient margin to place order. asset={ASSET}"}
        tif = None if trig else t.get("limit", {}).get("tif", "Gtc")
        order = self._new_order(user, cloid, is_buy, px, sz, reduce_only, tif, trigger_px,
                                bool(trig and trig.get("isMarket")), trig.get("tpsl") if trig else None)
        if order.is_trigger:
            if (order.fires_above() and self.price >= trigger_px) or (not order.fires_above() and self.price <= trigger_px):
                self._fire(order, self.price)  # the condition already holds: triggers at once
            return _resting(order) if self.trigger_ack == "resting" else "waitingForTrigger"
        if tif == "Alo" and self._marketable(order):
            order.status = "rejected"
            return {"error": f"Post only order would have immediately matched, bbo was {fmt(self.price)}. asset={ASSET}"}
        if self._marketable(order):
            part = self._partial_market.pop(0) if self._partial_market else Decimal(1)
            qty = (order.sz * part).quantize(Decimal(1).scaleb(-SZ_DECIMALS))
            fills = self._execute(order, qty, self.price, crossed=True) if qty > 0 else []
            if order.status == "open" and tif == "Ioc":
                self._set_status(order, "canceled")
            if not fills:
                return {"error": f"Order could not immediately match against any resting orders. asset={ASSET}"}
            total = sum((d(f["sz"]) for f in fills), Decimal(0))
            if order.status == "open":  # a GTC order filled in part rests with the rest
                return _resting(order)
            filled: dict[str, Any] = {"totalSz": fmt(total), "avgPx": fmt(self.price), "oid": order.oid}
            if cloid is not None:
                filled["cloid"] = cloid
            return {"filled": filled}
        if tif == "Ioc":
            self._set_status(order, "canceled")
            return {"error": f"Order could not immediately match against any resting orders. asset={ASSET}"}
        return _resting(order)

    def _cancel(self, user: str, action: dict[str, Any]) -> dict[str, Any]:
        statuses: list[Any] = []
        for c in action.get("cancels", []):
            key = c.get("cloid") if action["type"] == "cancelByCloid" else c.get("o")
            order = self._find(user, key)
            if order is None or order.status != "open":
                statuses.append({"error": f"Order was never placed, already canceled, or filled. asset={ASSET}"})
                continue
            self._set_status(order, "canceled")
            statuses.append("success")
        return {"status": "ok", "response": {"type": "cancel", "data": {"statuses": statuses}}}

    def _update_leverage(self, user: str, action: dict[str, Any]) -> dict[str, Any]:
        acct = self.accounts[user]
        lev, is_cross = action.get("leverage"), bool(action.get("isCross"))
        if not isinstance(lev, int) or not 1 <= lev <= MAX_LEVERAGE:
            return {"status": "err", "response": f"Invalid leverage value. Max leverage is {MAX_LEVERAGE}"}
        if acct.szi != 0 and is_cross != acct.is_cross:
            return {"status": "err", "response": "Cannot switch leverage type with open position."}
        acct.leverage, acct.is_cross = lev, is_cross
        return {"status": "ok", "response": {"type": "default"}}

    def _new_order(self, user: str, cloid: str | None, is_buy: bool, px: Decimal, sz: Decimal,
                   reduce_only: bool, tif: str | None, trigger_px: Decimal | None, is_market: bool,
                   tpsl: str | None) -> StubOrder:
        now = self._now()
        order = StubOrder(self._next_oid, user, cloid, is_buy, px, sz, sz, reduce_only, tif,
                          trigger_px, is_market, tpsl, now, "open", now)
        self._next_oid += 1
        self.orders[order.oid] = order
        return order

    def _execute(self, order: StubOrder, sz: Decimal, px: Decimal, *, crossed: bool) -> list[dict[str, Any]]:
        acct = self.accounts[order.user]
        if order.reduce_only:
            if not _reduces(acct.szi, order.is_buy):
                self._set_status(order, "reduceOnlyCanceled")
                return []
            sz = min(sz, abs(acct.szi))  # a reduce-only order never flips the position
        parts = self._split_fill.pop(0) if self._split_fill else 1
        pieces = _split(sz, parts)
        fills = [self._trade(acct, order, piece, px, crossed) for piece in pieces]
        order.sz -= sz
        if order.sz <= 0 or order.reduce_only and acct.szi == 0:
            order.sz = max(order.sz, Decimal(0))
            self._set_status(order, "filled")
        return fills

    def _trade(self, acct: StubAccount, order: StubOrder, sz: Decimal, px: Decimal, crossed: bool) -> dict[str, Any]:
        sign = Decimal(1) if order.is_buy else Decimal(-1)
        start = acct.szi
        closed = min(sz, abs(start)) if start != 0 and (start > 0) != order.is_buy else Decimal(0)
        pnl = closed * (px - acct.entry_px) * (1 if start > 0 else -1) if closed else Decimal(0)
        new = start + sign * sz
        if new == 0:
            acct.entry_px = Decimal(0)
        elif start == 0 or (start > 0) != (new > 0):
            acct.entry_px = px  # opened or flipped
        elif abs(new) > abs(start):
            acct.entry_px = (acct.entry_px * abs(start) + px * sz) / abs(new)
        acct.szi = new
        fee = (px * sz * (TAKER_FEE if crossed else MAKER_FEE)).quantize(Decimal("0.000001"))
        acct.usdc += pnl - fee
        fill = {
            "closedPnl": fmt(pnl), "coin": COIN, "crossed": crossed, "dir": _direction(start, new),
            "fee": fmt(fee), "feeToken": "USDC", "hash": "0x" + keccak(str(self._next_tid).encode()).hex(),
            "liquidationMarkPx": None, "oid": order.oid, "px": fmt(px), "side": order.side,
            "startPosition": fmt(start), "sz": fmt(sz), "tid": self._next_tid, "time": self._now(),
            "cloid": order.cloid,
        }
        self._next_tid += 1
        acct.fills.append(fill)
        user = acct.address
        self.ws.push(lambda c: ("userFills", user) in c.subscriptions,
                     {"channel": "userFills", "data": {"user": user, "fills": [fill]}}, tag=fill["tid"])
        return fill

    # --- helpers -------------------------------------------------------------------------
    def _now(self) -> int:
        import time

        self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
        return self._last_ms

    def _set_status(self, order: StubOrder, status: str) -> None:
        order.status, order.status_ts = status, self._now()
        user = order.user
        self.ws.push(lambda c: ("orderUpdates", user) in c.subscriptions, {"channel": "orderUpdates", "data": [
            {"order": order.basic(), "status": status, "statusTimestamp": order.status_ts}]})

    def _ws_message(self, conn: WsConn, text: str) -> None:
        """A client's request on the websocket (on the ws server's thread)."""
        msg = json.loads(text)
        if msg.get("method") == "ping":
            self.ws.send_now(conn, {"channel": "pong"})
            return
        sub = msg.get("subscription") or {}
        kind, user = sub.get("type"), str(sub.get("user", "")).lower()
        if msg.get("method") != "subscribe" or kind not in ("userFills", "orderUpdates"):
            self.ws.send_now(conn, {"channel": "error", "data": f"Invalid subscription {text}"})
            return
        with self._lock:
            conn.subscriptions.add((kind, user))
            self.ws.send_now(conn, {"channel": "subscriptionResponse", "data": msg})
            if kind == "userFills":
                acct = self.accounts.get(user)
                fills = sorted(acct.fills if acct else [], key=lambda f: f["time"])[-2000:]
                self.ws.send_now(conn, {"channel": "userFills",
                                        "data": {"isSnapshot": True, "user": user, "fills": fills}})

    def _marketable(self, order: StubOrder) -> bool:
        return order.limit_px >= self.price if order.is_buy else order.limit_px <= self.price

    def _find(self, user: str, key: Any) -> StubOrder | None:
        for o in self.orders.values():
            if o.user != user:
                continue
            if isinstance(key, str) and key.startswith("0x") and (o.cloid or "").lower() == key.lower():
                return o
            if not (isinstance(key, str) and key.startswith("0x")) and str(o.oid) == str(key):
                return o
        return None

    def _user_of(self, key: int | str) -> str:
        for o in self.orders.values():
            if o.oid == key or (o.cloid or "").lower() == str(key).lower():
                return o.user
        raise KeyError(key)

    @staticmethod
    def _increase(acct: StubAccount, order: StubOrder) -> Decimal:
        if acct.szi == 0 or (acct.szi > 0) == order.is_buy:
            return order.sz
        return max(order.sz - abs(acct.szi), Decimal(0))

    def _reserved(self, acct: StubAccount) -> Decimal:
        return sum((o.sz * o.limit_px / acct.leverage for o in self.orders.values()
                    if o.user == acct.address and o.status == "open" and not o.is_trigger
                    and not o.reduce_only), Decimal(0))

    def _free_margin(self, acct: StubAccount) -> Decimal:
        value = acct.usdc + acct.szi * (self.price - acct.entry_px)
        return value - abs(acct.szi) * self.price / acct.leverage - self._reserved(acct)

    # test helpers
    def account(self, address: str) -> StubAccount:
        return self.accounts[address.lower()]

    def action_types(self) -> list[str]:
        return [str(r.action.get("type")) for r in self.actions]

    def accepted(self, action_type: str) -> Iterator[RecordedAction]:
        return (r for r in self.actions if r.accepted and r.action.get("type") == action_type)


# /info requests that read one user's account (chaos hits them; market data is left alone).
_PRIVATE_INFO = frozenset({"clearinghouseState", "openOrders", "frontendOpenOrders", "orderStatus", "userFills",
                           "userFillsByTime", "userFunding"})


def _valid_price(px: Decimal) -> bool:
    """The venue's price rule for perps: at most 5 significant figures (integers always pass)
    and at most 6 - szDecimals decimals."""
    if px <= 0:
        return False
    if px == px.to_integral_value():
        return True
    decimals = -px.normalize().as_tuple().exponent
    assert isinstance(decimals, int)
    sig = len(px.normalize().as_tuple().digits)
    return decimals <= 6 - SZ_DECIMALS and sig <= 5


def _reduces(szi: Decimal, is_buy: bool) -> bool:
    return szi != 0 and (szi > 0) != is_buy


def _resting(order: StubOrder) -> dict[str, Any]:
    resting: dict[str, Any] = {"oid": order.oid}
    if order.cloid is not None:
        resting["cloid"] = order.cloid
    return {"resting": resting}


def _split(sz: Decimal, parts: int) -> list[Decimal]:
    step = Decimal(1).scaleb(-SZ_DECIMALS)
    first = (sz / parts).quantize(step)
    pieces = [first] * (parts - 1)
    pieces.append(sz - first * (parts - 1))
    return [p for p in pieces if p > 0]


def _direction(start: Decimal, new: Decimal) -> str:
    if start >= 0 and new >= 0:
        return "Open Long" if new > start else "Close Long"
    if start <= 0 and new <= 0:
        return "Open Short" if new < start else "Close Short"
    return "Long > Short" if start > 0 else "Short > Long"


def start_stub(price: float = 43_000.0, *, testnet: bool = True, usdc: float = 10_000.0) -> HyperliquidStub:
    """A running stub with MAIN's account funded and AGENT registered as its API wallet."""
    stub = HyperliquidStub(price, testnet=testnet)
    stub.add_account(MAIN_ADDRESS, usdc=usdc, agent=AGENT_ADDRESS)
    return stub.start()


@pytest.fixture(name="hyperliquid_stub")
def hyperliquid_stub_fixture() -> Iterator[HyperliquidStub]:
    """A stub on 127.0.0.1 (free port), started and stopped around one test."""
    stub = start_stub()
    try:
        yield stub
    finally:
        stub.stop()
