"""The REAL adapter: one wallet trading one instrument on a ccxt venue, behind the exchange port.

Venue-agnostic: what differs between exchanges comes from a ``VenueProfile``
(``venues.ccxt_profile``). The ccxt client is synchronous; ``sleep`` and ``clock`` are injected
so that backoff never makes a test wait.

Errors are mapped at this boundary (SPEC §4a, §7):

* temporary (``NetworkError``: timeouts, 429/418, 5xx, a dropped connection) → retried with a
  bounded exponential backoff; when the retries run out, ``VenueUnavailable``;
* insufficient margin → ``OrderRejected`` whose reason starts "insufficient margin" and whose
  ``price`` is the last price, the path the strategies take for a margin refusal;
* invalid order → re-rounded (to the venue's current filters) and sent once more, else
  ``OrderRejected``;
* anything else (keys, permissions, account set-up) → ``VenueFatal``: stop safely.

Orders are **idempotent**: the client id is deterministic, and when the answer to an order is
lost (timeout, 5xx, dropped connection) the order is looked up by its client id before
anything is sent again, so a lost answer never makes a second order.

Fills come from ``poll``: the account's trades since a cursor (``fetch_my_trades``) and those
the user stream pushed (``venues.ccxt_stream``, when one is attached), deduplicated by trade id
and applied in the exchange's order (time, then trade id); each one is reported as
``OrderFilled`` (``leaves_qty`` > 0 for a partial fill) and recorded in ``fills`` and
``order_log`` like the simulator does. The cursor and the trade ids seen are plain data
(``state()``/``restore()``) for the journal.

No key or signature ever reaches a log line or an error message: every text taken from ccxt
is redacted (the client's own credentials, environment secrets, URL query strings).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ccxt
from loguru import logger

from hedgekit.core.errors import HedgekitError
from hedgekit.core.events import OrderCancelled, OrderFilled, OrderRejected, VenueEvent
from hedgekit.core.instrument import Instrument
from hedgekit.core.orders import (
    Order,
    OrderDiff,
    OrderSpec,
    OrderStatus,
    OrderTrigger,
    OrderType,
    Side,
    diff_orders,
)
from hedgekit.core.position import Position
from hedgekit.core.records import FillRecord, OrderLogRecord
from hedgekit.feeds.daily import fetch_daily_candles
from hedgekit.logs import MASK, redact
from hedgekit.venues.base import AccountState, ExchangePort
from hedgekit.venues.ccxt_profile import VenueProfile
from hedgekit.venues.ccxt_rows import (
    _INVALID,
    _TEMPORARY,
    ForeignOrder,
    RetryPolicy,
    VenueFatal,
    VenueUnavailable,
    _duplicate,
    _float,
    _foreign,
    _opaque_orphan,
    _orphan,
)
from hedgekit.venues.ccxt_stream import UserStream

STATE_VERSION = 1
# A fresh adapter (no restored cursor) reads trades from this long before its start, so a
# trade stamped by a venue clock behind ours is not missed (older ones of unknown orders are
# merely listed in ``foreign_trades``).
START_MARGIN_MS = 5 * 60_000
# While the user stream is up, REST is asked for trades this often only (the safety net).
REST_EVERY_MS = 30_000


class CcxtVenue:
    """One account (wallet) on a ccxt venue, trading ``instrument`` as ``symbol``."""

    def __init__(
        self,
        profile: VenueProfile,
        exchange: Any,
        instrument: Instrument,
        *,
        symbol: str,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], int] = lambda: int(time.time() * 1000),
        retry: RetryPolicy | None = None,
        trades_page: int = 500,
        wallet: str | None = None,
        stream: UserStream | None = None,
        rest_every_ms: int = REST_EVERY_MS,
    ) -> None:
        self.profile = profile
        self.wallet = wallet  # orders of other wallets on the same account are foreign
        self.exchange = exchange
        self.instrument = instrument
        self.symbol = symbol
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._page = trades_page
        self.stream = stream
        self.rest_every_ms = rest_every_ms
        self._rest_at = 0  # clock() of the next safety-net REST poll while the stream is up
        self._rest_generation = 0  # the stream's connection the last REST poll came after
        self.fills: list[FillRecord] = []
        self.order_log: list[OrderLogRecord] = []
        self.last_price: float | None = None
        self._quoted: float | None = None  # the feed's price: a market order's reference
        self.position = Position(qty_decimals=instrument.qty_decimals)  # from our own fills
        self.realized_pnl = 0.0
        self.foreign_trades: list[dict[str, Any]] = []  # trades on orders that are not ours
        self._orders: dict[str, Order] = {}  # every order this adapter knows, by client id
        self._by_venue_id: dict[str, str] = {}  # venue order id -> client id
        self._since: int = clock() - START_MARGIN_MS  # fill cursor: trades at/after this time (ms)
        self._seen: dict[str, int] = {}  # trade id -> its time, for trades at/after the cursor
        # orders closed at the venue, reported once their fills are: id -> (how, why, venue's filled qty)
        self._closing: dict[str, tuple[OrderTrigger, str, float]] = {}
        # orphans whose venue client id cannot be turned back into ours (a Hyperliquid cloid is
        # a digest): listed under that venue id, which ``cancel`` then sends as is
        self._opaque: set[str] = set()
        self._secrets = [
            s for s in (getattr(exchange, a, None) for a in ("apiKey", "secret", "privateKey", "password"))
            if isinstance(s, str) and len(s) >= 4
        ]

    # -- set-up --------------------------------------------------------------------------------
    def prepare(self, *, leverage: float) -> None:
        """Load the markets and check/set the account (``VenueProfile.prepare_account``)."""
        self._call("load markets", self.exchange.load_markets)
        self._call("prepare the account", self.profile.prepare_account, self.exchange, self.symbol,
                   leverage=leverage)  # fmt: skip

    # -- what a grid hedge reads at its start (SPEC §5) ---------------------------------------
    def spot_balance(self) -> tuple[str, float]:
        """(base asset, coins of it on the account's spot wallet, held in orders included)."""
        if not getattr(self.exchange, "markets", None):
            self._call("load markets", self.exchange.load_markets)
        base = str(self.exchange.market(self.symbol)["base"])
        return base, float(self._call("read the spot balance", self.profile.spot_balance, self.exchange, base))

    def daily_candles(self, count: int, until_ms: int) -> list[list[float]]:
        """The last ``count`` daily candles ``[open ms, o, h, l, c, v]`` up to ``until_ms`` (the
        day's open candle included, its close the last price), oldest first."""
        return list(self._call("fetch daily candles", fetch_daily_candles, self.exchange, self.symbol, count, until_ms))

    def note_price(self, price: float) -> None:
        """The feed's latest price: quoted in margin refusals, and market orders' reference (a
        fill's price, also in ``last_price``, can be far off after a gap: no IOC trades there)."""
        self.last_price = self._quoted = price

    # -- journal state -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The fill cursor and the trade ids seen at it, as plain JSON-able data."""
        return {"version": STATE_VERSION, "since": self._since, "seen": dict(sorted(self._seen.items()))}

    def restore(self, state: dict[str, Any]) -> None:
        version = state.get("version")
        if version != STATE_VERSION:
            raise HedgekitError(
                f"venue state version {version!r} cannot be restored by this hedgekit (it writes "
                f"version {STATE_VERSION})"
            )
        self._since = int(state["since"])
        self._seen = {str(k): int(v) for k, v in state.get("seen", {}).items()}

    def adopt(self, order: Order) -> None:
        """Know an order placed before a restart (from the journal), so its fills are ours."""
        self._orders[order.client_id] = order
        if order.venue_id is not None:
            self._by_venue_id[order.venue_id] = order.client_id

    def get_order(self, client_id: str) -> Order | None:
        return self._orders.get(client_id)

    def forget_closed(self) -> None:
        """Drop closed orders (a live run calls this once they are journaled, so its state
        stays small), as ``SimExchange.forget_closed``. A late trade on a forgotten order is
        listed in ``foreign_trades`` and warned about, never applied twice."""
        keep = {cid: o for cid, o in self._orders.items() if not o.status.is_closed or cid in self._closing}
        self._orders = keep
        self._by_venue_id = {vid: cid for vid, cid in self._by_venue_id.items() if cid in keep}

    # -- the port: commands --------------------------------------------------------------------
    def submit(self, spec: OrderSpec, ts: int) -> list[VenueEvent]:
        """Send an order (rounded to the lot and tick first). Returns a rejection, or the fills
        of an order that executed at once; a working order reports later through ``poll``."""
        previous = self._orders.get(spec.client_id)
        if previous is not None and previous.status is not OrderStatus.REJECTED:
            reason = (
                f"duplicate client id {spec.client_id!r}: already used by an order that is "
                f"{previous.status}; client ids must be unique per wallet"
            )
            return [OrderRejected(ts, spec.client_id, reason)]
        rounded = self._round(spec, self.instrument)
        order = Order(spec if rounded is None else rounded)
        self._orders[spec.client_id] = order
        if rounded is None:
            return self._reject(order, ts, f"qty {spec.qty:g} is below the lot size {self.instrument.lot_size:g}")
        return self._place(order, ts, reround=True)

    def resume(self, spec: OrderSpec, ts: int) -> list[VenueEvent]:
        """An order whose intent was journaled but whose answer never was (a crash between the
        two): adopted if the venue has it (looked up by client id), else placed now."""
        order = Order(spec)
        self._orders[spec.client_id] = order
        found = self._lookup(order)
        if found is not None:
            logger.info("order {} was already at the venue: adopted, not sent again", spec.client_id)
            return self._accepted(order, found, ts)
        del self._orders[spec.client_id]
        return self.submit(spec, ts)

    def cancel(self, client_id: str, ts: int) -> list[VenueEvent]:
        """Cancel a working order. An unknown or closed order is not an error: ``[]``. Fills
        the order got before the cancel are returned first (and the cancel waits for them)."""
        order = self._orders.get(client_id)
        if order is not None and order.status.is_closed:
            return []
        vcid = self._vcid(client_id)
        stop = None if order is None else order.spec.type is OrderType.STOP
        venue_filled: float | None = None
        for params in self.profile.lookup_params(vcid, stop=stop):
            try:
                answer = self._call(f"cancel {client_id}", self.exchange.cancel_order, None, self.symbol,
                                    dict(params))  # fmt: skip
            except ccxt.OrderNotFound:
                continue  # not working there (filled, or never placed): its trades tell
            filled = (answer or {}).get("filled")
            if filled is None and order is not None:
                # Hyperliquid answers a cancel with a bare "success": what had filled is read
                # back, so that fills still to be reported are waited for.
                found = self._lookup(order)
                filled = (found or {}).get("filled")
            venue_filled = float(filled or 0.0)
            break
        if order is None:
            if venue_filled is not None:
                logger.info("cancelled {} at the venue (an order this run did not place)", client_id)
            return self.poll(ts)
        if venue_filled is not None:
            self._closing[client_id] = (OrderTrigger.CANCEL, "cancelled by the client", venue_filled)
        return self.poll(ts)

    # -- the port: queries ---------------------------------------------------------------------
    def open_orders(self) -> list[Order]:
        """Working orders carrying our client-id prefix (plain and trigger), oldest first."""
        ours, _ = self._venue_orders()
        return ours

    def venue_spec(self, spec: OrderSpec) -> OrderSpec:
        """``spec`` as this venue holds it once placed (lot, tick and the venue's own price
        rule), what ``submit`` sends and ``open_orders`` lists."""
        return self._round(spec, self.instrument) or spec

    def diff(self, desired: list[OrderSpec]) -> OrderDiff:
        """Recovery's comparison (SPEC §7): the strategy's desired orders, rounded as the
        venue holds them (``venue_spec``), against the working orders at the venue. An order
        at the venue with the client id of a desired one is recognised even when this run
        did not place it (a restart), and is adopted so that its fills are applied."""
        wanted = [self.venue_spec(s) for s in desired]
        ours, _ = self._venue_orders({self._vcid(s.client_id): s for s in wanted})
        return diff_orders(wanted, ours, self.instrument.lot_size)

    def foreign_orders(self) -> list[ForeignOrder]:
        """Working orders at the venue that hedgekit did not place (left alone, reported)."""
        _, foreign = self._venue_orders()
        return foreign

    def account(self) -> AccountState:
        balance = self._call("fetch the balance", self.exchange.fetch_balance)
        positions = self._call("fetch the position", self.exchange.fetch_positions, [self.symbol])
        qty = avg = upnl = 0.0
        for p in positions or []:
            if p.get("symbol") != self.symbol:
                continue
            size = float(p.get("contracts") or 0.0) * float(p.get("contractSize") or 1.0)
            qty += -size if p.get("side") == "short" else size
            avg = float(p.get("entryPrice") or 0.0)
            upnl += float(p.get("unrealizedPnl") or 0.0)
            mark = p.get("markPrice")
            if mark:
                self.last_price = float(mark)
        settle = self.exchange.market(self.symbol).get("settle") or "USDT"
        equity = float((balance.get(settle) or {}).get("total") or 0.0)
        qty = self.instrument.round_qty(qty)
        return AccountState(qty, avg if qty else 0.0, equity - upnl, equity, self.last_price, self.open_orders())

    # -- fills -----------------------------------------------------------------------------------
    def rest_due(self) -> bool:
        """Whether an input's poll asks REST for trades: always without a stream or while it
        is down, once after each of its (re)connects (what was booked while none was up is
        never pushed), else every ``rest_every_ms`` (the safety net)."""
        s = self.stream
        if s is None or not s.up or s.generation != self._rest_generation:
            return True
        return self._clock() >= self._rest_at

    def poll(self, ts: int, *, rest: bool = True) -> list[VenueEvent]:
        """New fills (each trade once, in the exchange's order): the stream's, and with
        ``rest`` those REST lists since the cursor; then the orders that closed at the venue
        without filling completely (cancelled, expired, rejected), each once the fills the
        venue had booked on it are reported."""
        if self._working():
            self._find_closed()
        trades = self._streamed()
        if rest:
            if self.stream is not None:
                self._rest_generation = self.stream.generation  # read before: a reconnect after it is seen
                self._rest_at = self._clock() + self.rest_every_ms
            trades += self._new_trades()
        trades.sort(key=_trade_order)
        events: list[VenueEvent] = []
        for trade in trades:
            ev = self._apply_trade(trade, ts)
            if ev is not None:
                events.append(ev)
        lot = self.instrument.lot_size
        for cid, (trigger, reason, venue_filled) in list(self._closing.items()):
            order = self._orders[cid]
            if order.status.is_closed:
                del self._closing[cid]
            elif order.filled_qty >= venue_filled - lot / 2:  # else: its trades are still to come
                del self._closing[cid]
                price = self.last_price if trigger is OrderTrigger.REJECT else None
                events.append(self._close(order, trigger, ts, reason, price))
        return events

    # -- internals: placing ----------------------------------------------------------------------
    def _place(self, order: Order, ts: int, *, reround: bool) -> list[VenueEvent]:
        spec = order.spec
        cid = spec.client_id
        req = self.profile.order_request(spec, self.symbol, ref_price=self._quoted or self.last_price)
        for attempt in range(self.retry.attempts):
            try:
                answer = self.exchange.create_order(req.symbol, req.type, req.side, req.amount, req.price,
                                                    dict(req.params))  # fmt: skip
                return self._accepted(order, answer, ts)
            except _TEMPORARY as err:
                self._warn(f"order {cid}: no answer ({type(err).__name__}: {self._clean(err)})")
                # The order may have been placed: look it up by client id before resending.
                found = self._lookup(order)
                if found is not None:
                    logger.info("order {} was placed (found by its client id after a lost answer)", cid)
                    return self._accepted(order, found, ts)
                self._sleep(self.retry.delay(attempt))
            except ccxt.InsufficientFunds as err:
                price = self.last_price
                at = f" at {price:g}" if price is not None else ""
                return self._reject(order, ts, f"insufficient margin{at}: {self._clean(err)}", price)
            except ccxt.BaseError as err:
                # A duplicate: an earlier attempt did arrive (Hyperliquid: an IOC that found nothing)
                found = self._lookup(order) if _duplicate(err) else None
                if found is not None:
                    return self._accepted(order, found, ts)
                if not isinstance(err, _INVALID):
                    raise self._fatal(f"order {cid}", err) from None
                if reround:
                    again = self._reround(spec)
                    if again is not None:
                        self._warn(f"order {cid} refused ({self._clean(err)}); re-rounded and sent once more")
                        order.spec = again
                        return self._place(order, ts, reround=False)
                return self._reject(order, ts, f"invalid order: {self._clean(err)}")
        raise VenueUnavailable(
            f"order {cid}: the venue did not answer after {self.retry.attempts} attempts; it was not "
            "found by its client id, and it will be looked up again by reconciliation"
        )

    def _lookup(self, order: Order) -> dict[str, Any] | None:
        """The venue's order with our client id, or None if the venue does not have it."""
        vcid = self._vcid(order.client_id)
        for params in self.profile.lookup_params(vcid, stop=order.spec.type is OrderType.STOP):
            try:
                found = self._call(f"look up {order.client_id}", self.exchange.fetch_order, None, self.symbol,
                                   dict(params))  # fmt: skip
            except ccxt.OrderNotFound:
                continue
            if found and (found.get("id") is not None or found.get("clientOrderId")):
                return dict(found)  # (some venues answer an unknown id with an empty order)
        return None

    def _accepted(self, order: Order, answer: dict[str, Any], ts: int) -> list[VenueEvent]:
        venue_id = answer.get("id")
        if venue_id is None:
            # Acknowledged without an id (Hyperliquid: a trigger order as "waitingForTrigger"):
            # its id, which its trades will carry, is read back by client id.
            found = self._lookup(order)
            if found is not None:
                answer = {**found, **{k: v for k, v in answer.items() if v is not None}}
                venue_id = found.get("id")
        if venue_id is not None:
            order.venue_id = str(venue_id)
            self._by_venue_id[order.venue_id] = order.client_id
        order.apply(OrderTrigger.ACCEPT)
        self._log(ts, order, "placed", order.spec.qty)
        status = answer.get("status")
        if float(answer.get("filled") or 0.0) > 0 or status in ("closed", "canceled", "expired", "rejected"):
            return self.poll(ts)  # it executed (or ended) at once: report it now
        return []

    def _reject(self, order: Order, ts: int, reason: str, price: float | None = None) -> list[VenueEvent]:
        order.apply(OrderTrigger.REJECT)
        self._log(ts, order, "rejected", order.spec.qty, reason=reason)
        logger.warning("order {} rejected: {}", order.client_id, reason)
        return [OrderRejected(ts, order.client_id, reason, price)]

    def _reround(self, spec: OrderSpec) -> OrderSpec | None:
        """``spec`` rounded to the venue's current filters (markets reloaded)."""
        try:
            self._call("reload markets", self.exchange.load_markets, True)
            market = self.exchange.market(self.symbol)
            precision = market.get("precision") or {}
            limits = (market.get("limits") or {}).get("cost") or {}
            inst = Instrument(
                self.symbol,
                tick_size=float(precision.get("price") or self.instrument.tick_size),
                lot_size=float(precision.get("amount") or self.instrument.lot_size),
                min_notional=float(limits.get("min") or self.instrument.min_notional),
            )
        except (HedgekitError, ValueError, TypeError):
            return None
        again = self._round(spec, inst)
        return again if again is not None and again.qty > 0 else None

    def _round(self, spec: OrderSpec, inst: Instrument) -> OrderSpec | None:
        """``spec`` at the instrument's lot and tick, then as the venue holds it (None: the
        qty is below a lot)."""
        qty = inst.floor_qty(spec.qty)
        if qty <= 0:
            return None
        price = spec.price
        if price is not None:
            if spec.type is OrderType.STOP:
                price = inst.round_trigger(price, spec.side is Side.SELL)
            elif spec.type is OrderType.LIMIT:
                price = inst.round_price(price)
        if qty != spec.qty or price != spec.price:
            spec = OrderSpec(spec.client_id, spec.wallet, spec.kind, spec.side, spec.type, qty, price,
                             spec.reduce_only, spec.unit)  # fmt: skip
        return self.profile.venue_spec(spec, self.symbol)

    # -- internals: listing ---------------------------------------------------------------------
    def _vcid(self, client_id: str) -> str:
        """The venue's client id of ``client_id`` (an opaque orphan's id is already one)."""
        return client_id if client_id in self._opaque else self.profile.venue_client_id(client_id)

    def _fetch_open(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for q in self.profile.open_order_queries():
            rows.extend(self._call("fetch open orders", self.exchange.fetch_open_orders, self.symbol, None, None,
                                   dict(q)) or [])  # fmt: skip
        rows.sort(key=lambda r: (r.get("timestamp") or 0, str(r.get("id"))))
        return rows

    def _venue_orders(self, desired: dict[str, OrderSpec] | None = None) -> tuple[list[Order], list[ForeignOrder]]:
        """The working orders at the venue: ours (known to this run, else desired - by venue
        client id -, else orphans with our prefix) and foreign ones."""
        ours: list[Order] = []
        foreign: list[ForeignOrder] = []
        known = {self._vcid(cid): cid for cid in self._orders}
        for row in self._fetch_open():
            vcid = row.get("clientOrderId")
            cid = known.get(vcid) if vcid else None
            if cid is None and vcid and desired and vcid in desired:
                cid = self._adopt_row(desired[vcid], row)
            if cid is not None:
                order = self._orders[cid]
                if row.get("id") is not None and order.venue_id is None:
                    order.venue_id = str(row["id"])
                    self._by_venue_id[order.venue_id] = cid
                ours.append(order)
            elif vcid and self.profile.is_ours(vcid, self.wallet):
                orphan = _orphan(row, vcid) if self.profile.venue_client_id(vcid) == vcid else None
                if orphan is None:  # its id cannot be read back: listed (and cancelled) under the venue's
                    orphan = _opaque_orphan(row, vcid, self.wallet or "?")
                    self._opaque.add(vcid)
                ours.append(orphan)
            else:
                foreign.append(_foreign(row))
        return ours, foreign

    def _adopt_row(self, spec: OrderSpec, row: dict[str, Any]) -> str:
        """Know a working order of an earlier run by the desired ``spec`` with its client id,
        as the venue holds it (side, qty, price), so ``diff`` sees any difference."""
        price = _float(row.get("triggerPrice")) if spec.type is OrderType.STOP else _float(row.get("price"))
        reduce_only = spec.reduce_only if row.get("reduceOnly") is None else bool(row["reduceOnly"])
        try:
            side = Side(str(row.get("side")))
            held = OrderSpec(spec.client_id, spec.wallet, spec.kind, side, spec.type,
                             float(row.get("amount") or spec.qty), None if spec.type is OrderType.MARKET else price,
                             reduce_only, spec.unit)  # fmt: skip
        except (HedgekitError, ValueError):
            held = spec
        order = Order(held, venue_id=None if row.get("id") is None else str(row["id"]))
        order.apply(OrderTrigger.ACCEPT)
        filled = float(row.get("filled") or 0.0)
        if filled > 0:
            order.apply(OrderTrigger.FILL_PARTIAL)
            order.filled_qty = filled
        self.adopt(order)
        return spec.client_id

    def _working(self) -> list[Order]:
        return [o for o in self._orders.values() if not o.status.is_closed and o.status is not OrderStatus.NEW]

    def _find_closed(self) -> None:
        """Note our working orders the venue no longer lists that ended without filling
        completely (cancelled, expired, rejected); filled ones report through their trades."""
        open_ids = {row.get("clientOrderId") for row in self._fetch_open()}
        for order in self._working():
            if order.client_id in self._closing or self._vcid(order.client_id) in open_ids:
                continue
            found = self._lookup(order)
            status = "canceled" if found is None else str(found.get("status") or "open")
            filled = 0.0 if found is None else float(found.get("filled") or 0.0)
            if status == "rejected":
                self._closing[order.client_id] = (
                    OrderTrigger.REJECT, "the venue rejected the order when it triggered", filled)
            elif status not in ("open", "closed"):  # also a word ccxt leaves raw (HL "scheduledCancel")
                self._closing[order.client_id] = (OrderTrigger.CANCEL, f"{status} at the venue", filled)
            elif found is not None and order.spec.type is OrderType.STOP:
                self._map_triggered(order, found)

    def _map_triggered(self, order: Order, found: dict[str, Any]) -> None:
        # An order acknowledged without an id (Hyperliquid's "waitingForTrigger") has one now.
        if order.venue_id is None and found.get("id") is not None:
            order.venue_id = str(found["id"])
            self._by_venue_id[order.venue_id] = order.client_id
        # Binance: a triggered algo order executes as a new order (``actualOrderId``), whose
        # trades carry that id, not the algo order's.
        info = found.get("info") or {}
        actual = info.get("actualOrderId") if isinstance(info, dict) else None
        if actual:
            self._by_venue_id[str(actual)] = order.client_id

    # -- internals: trades -------------------------------------------------------------------------
    def _new_trades(self) -> list[dict[str, Any]]:
        """REST: the trades since the cursor not applied yet. The cursor moves to the newest
        trade REST listed (not one only the stream pushed: REST may not list it yet, and an
        older trade the stream missed must still be found)."""
        out: list[dict[str, Any]] = []
        since = self._since
        listed = since
        while True:
            page = self._call("fetch trades", self.exchange.fetch_my_trades, self.symbol, since, self._page) or []
            for t in page:
                tid = str(t.get("id"))
                t_ts = int(t.get("timestamp") or since)
                listed = max(listed, t_ts)
                if tid in self._seen:
                    continue  # already applied (or the venue sent it twice)
                self._seen[tid] = t_ts
                out.append(t)
            if len(page) < self._page or listed <= since:
                break  # the last page (or a full page within one ms: cannot page on by time)
            since = listed
        # Ids older than the cursor cannot come back from REST (the stream's are dropped).
        self._since = listed
        self._seen = {k: v for k, v in self._seen.items() if v >= listed}
        return out

    def _streamed(self) -> list[dict[str, Any]]:
        """The stream's trades on our symbol not applied yet. One older than the cursor was
        listed by REST before (applied then, its id since forgotten): a replay, skipped."""
        if self.stream is None:
            return []
        out: list[dict[str, Any]] = []
        for t in self.stream.take():
            tid = str(t.get("id"))
            t_ts = int(t.get("timestamp") or 0)
            if t.get("symbol") != self.symbol or tid in self._seen or t_ts < self._since:
                continue
            self._seen[tid] = t_ts
            out.append(t)
        return out

    def _client_id_of(self, trade: dict[str, Any]) -> str | None:
        oid = trade.get("order")
        if oid is None:
            return None
        oid = str(oid)
        cid = self._by_venue_id.get(oid)
        if cid is not None:
            return cid
        # Unknown order id: a stop that triggered into a new order, or not ours.
        for order in self._working():
            if order.spec.type is OrderType.STOP:
                found = self._lookup(order)
                if found is not None:
                    self._map_triggered(order, found)
        cid = self._by_venue_id.get(oid)
        if cid is None:
            try:
                row = self._call("look up an order", self.exchange.fetch_order, oid, self.symbol)
            except ccxt.OrderNotFound:
                row = None
            vcid = (row or {}).get("clientOrderId")
            known = {self._vcid(c): c for c in self._orders}
            cid = known.get(vcid) if vcid else None
            if cid is not None:
                self._by_venue_id[oid] = cid
        return cid

    def _apply_trade(self, trade: dict[str, Any], ts: int) -> OrderFilled | None:
        cid = self._client_id_of(trade)
        order = self._orders.get(cid) if cid is not None else None
        if order is None or order.status.is_closed:
            self.foreign_trades.append({k: trade.get(k) for k in ("id", "order", "side", "amount", "price", "timestamp")})
            logger.warning("trade {} on order {} is not one of this wallet's working orders: not applied",
                           trade.get("id"), trade.get("order"))  # fmt: skip
            return None
        spec = order.spec
        inst = self.instrument
        qty = inst.round_qty(float(trade["amount"]))
        price = float(trade["price"])
        fee = float((trade.get("fee") or {}).get("cost") or 0.0)
        fill_ts = ts  # events carry the engine's time (core.events); the venue's is in the trade
        fill_id = str(trade["id"])
        if order.status is OrderStatus.OPEN and spec.type is OrderType.STOP:
            order.apply(OrderTrigger.TRIGGER)
            self._log(fill_ts, order, "triggered", order.leaves_qty, price=price)
        order.record_fill(fill_id, qty, price, inst.lot_size)
        realized = self.position.apply_fill(spec.side, qty, price)
        self.realized_pnl += realized
        self.last_price = price
        leaves = 0.0 if order.status is OrderStatus.FILLED else inst.round_qty(order.leaves_qty)
        liquidity = trade.get("takerOrMaker") or "taker"
        self.fills.append(FillRecord(
            fill_ts, spec.client_id, str(spec.kind), spec.side, qty, price, fee, spec.unit,
            self.position.qty, self.realized_pnl, fill_id, liquidity,
        ))  # fmt: skip
        self._log(fill_ts, order, "filled", qty, price=price)
        return OrderFilled(fill_ts, spec.client_id, fill_id, qty, price, fee, leaves)

    # -- internals: bookkeeping --------------------------------------------------------------------
    def _close(self, order: Order, trigger: OrderTrigger, ts: int, reason: str,
               price: float | None = None) -> VenueEvent:  # fmt: skip
        left = self.instrument.round_qty(order.leaves_qty)
        order.apply(trigger)
        if trigger is OrderTrigger.CANCEL:
            self._log(ts, order, "cancelled", left, reason=reason)
            return OrderCancelled(ts, order.client_id)
        self._log(ts, order, "rejected", left, reason=reason)
        return OrderRejected(ts, order.client_id, reason, price)

    def _log(self, ts: int, order: Order, event: str, qty: float, *, price: float | None = None,
             reason: str = "") -> None:  # fmt: skip
        spec = order.spec
        self.order_log.append(OrderLogRecord(
            ts, spec.client_id, event, str(spec.kind), spec.side, qty, spec.price, spec.unit, price, reason,
        ))  # fmt: skip

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args)`` with temporary errors retried (bounded backoff). Order-level errors
        (not found, invalid, insufficient funds) are the caller's; others are fatal."""
        for attempt in range(self.retry.attempts):
            try:
                return fn(*args, **kwargs)
            except _TEMPORARY as err:
                self._warn(f"{what}: {type(err).__name__}: {self._clean(err)} (attempt {attempt + 1})")
                if attempt + 1 < self.retry.attempts:
                    self._sleep(self.retry.delay(attempt))
            except (ccxt.OrderNotFound, ccxt.InsufficientFunds, *_INVALID):
                raise
            except ccxt.BaseError as err:
                raise self._fatal(what, err) from None
        raise VenueUnavailable(f"{what}: the venue did not answer after {self.retry.attempts} attempts")

    def _fatal(self, what: str, err: Exception) -> VenueFatal:
        return VenueFatal(f"{self.profile.name}: cannot {what}: {type(err).__name__}: {self._clean(err)}")

    def _clean(self, err: Exception) -> str:
        text = str(err)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return redact(text)[:400]

    def _warn(self, message: str) -> None:
        logger.warning("{}: {}", self.profile.name, message)


def _trade_order(trade: dict[str, Any]) -> tuple[int, int]:
    """The exchange's order of trades: time, then the trade id when it is a number (Binance's
    and Hyperliquid's grow); a sort is stable, so others keep the order they came in."""
    tid = str(trade.get("id"))
    return int(trade.get("timestamp") or 0), int(tid) if tid.isdigit() else 0


if TYPE_CHECKING:
    _PORT: type[ExchangePort] = CcxtVenue  # mypy checks that the REAL adapter implements the port
