"""REAL mode's set-up: each wallet's ccxt venue, its credentials and network, the mainnet switches.

* Credentials come from the environment, one set per wallet (wallet name upper-cased):
  Binance USD-M ``HEDGEKIT_<WALLET>_API_KEY`` + ``HEDGEKIT_<WALLET>_API_SECRET``; Hyperliquid
  ``HEDGEKIT_<WALLET>_AGENT_KEY`` (the API wallet's private key) +
  ``HEDGEKIT_<WALLET>_WALLET_ADDRESS`` (the main wallet), optionally
  ``HEDGEKIT_<WALLET>_SUB_ACCOUNT`` (the dual-wallet set-up: a sub-account of that wallet).
* Testnet unless the config says ``venue.network: mainnet`` *and* the command line says
  ``--mainnet`` *and* the user types MAINNET at a terminal (``--yes-mainnet`` when stdin is
  not a terminal): ``check_network``.
* ``RealVenue`` is the ccxt adapter plus the account book the live engine journals (fees,
  equity) and its plain-data state for the snapshot; the ccxt client itself is never stored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from hedgekit.config import BacktestConfig
from hedgekit.core.errors import HedgekitError
from hedgekit.core.events import OrderFilled, VenueEvent
from hedgekit.core.instrument import Instrument
from hedgekit.core.orders import Order, OrderSpec, OrderStatus, OrderTrigger, OrderType
from hedgekit.core.position import Position
from hedgekit.core.records import FillRecord
from hedgekit.feeds.daily import PublicDailyCandles
from hedgekit.venues.ccxt_funding import VenueFunding
from hedgekit.venues.ccxt_profile import Network, VenueCredentials, VenueProfile
from hedgekit.venues.ccxt_stream import UserStream
from hedgekit.venues.ccxt_venue import CcxtVenue

# Test-only (not in the docs): JSON ``{"<wallet>" or "*": {<ccxt urls["api"] key>: url}}``
# pointing the clients at the local stub exchanges; rate limiting is then off. The user stream
# is used only when the table has a "ws" entry as well (never the real venue's websocket).
VENUE_URLS_ENV = "HEDGEKIT_VENUE_URLS"
REAL_VENUES = ("binanceusdm", "hyperliquid")
CONFIRM_WORD = "MAINNET"
ENGINE_STATE_VERSION = 1


class MainnetRefused(HedgekitError):
    """A mainnet run without every one of its switches."""


def check_network(
    cfg: BacktestConfig, config_name: str, *, mainnet_flag: bool, yes_mainnet: bool, stdin_tty: bool,
    ask: Callable[[str], str],
) -> Network:
    """The network a REAL run may trade on; MainnetRefused unless every switch is set."""
    net = cfg.venue.network
    if net == "testnet":
        if mainnet_flag:
            raise MainnetRefused(
                f"--mainnet was given but {config_name} has venue.network: testnet (the default); "
                "to trade on mainnet set venue.network: mainnet in the config as well"
            )
        return "testnet"
    if not mainnet_flag:
        raise MainnetRefused(
            f"{config_name} has venue.network: mainnet, which trades real money: pass --mainnet "
            "on the command line as well (or set venue.network: testnet)"
        )
    if stdin_tty:
        typed = ask(f"This run trades REAL MONEY on {cfg.venue.name} MAINNET. Type {CONFIRM_WORD} to go on")
        if typed.strip() != CONFIRM_WORD:
            raise MainnetRefused(f"mainnet not confirmed (typed {typed.strip()[:20]!r}, not {CONFIRM_WORD}): nothing was sent")
    elif not yes_mainnet:
        raise MainnetRefused(
            "mainnet needs a typed confirmation and stdin is not a terminal: pass --yes-mainnet "
            "to confirm without one (scripts, services)"
        )
    return "mainnet"


def ccxt_symbol(symbol: str) -> str:
    """BTCUSDT -> BTC/USDT:USDT (a linear perpetual in ccxt's unified notation)."""
    if "/" in symbol:
        return symbol
    for quote in ("USDT", "USDC", "USD"):
        if symbol.endswith(quote):
            return f"{symbol[: -len(quote)]}/{quote}:{quote}"
    return symbol


def _env_name(wallet: str, what: str) -> str:
    return f"HEDGEKIT_{wallet.upper()}_{what}"


def credentials(wallet: str, venue: str, environ: Mapping[str, str] | None = None) -> VenueCredentials:
    """The wallet's keys for ``venue``; HedgekitError naming the missing variables."""
    env = os.environ if environ is None else environ
    names = ("API_KEY", "API_SECRET") if venue == "binanceusdm" else ("AGENT_KEY", "WALLET_ADDRESS")
    values = [env.get(_env_name(wallet, n), "").strip() for n in names]
    missing = [_env_name(wallet, n) for n, v in zip(names, values, strict=True) if not v]
    if missing:
        raise HedgekitError(
            f"wallet {wallet} trades on {venue} in REAL mode: set {' and '.join(missing)} in the environment"
        )
    if venue == "binanceusdm":
        return VenueCredentials(api_key=values[0], secret=values[1])
    return VenueCredentials(secret=values[0], wallet_address=values[1])


def venue_urls(wallet: str, environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    env = os.environ if environ is None else environ
    raw = env.get(VENUE_URLS_ENV, "").strip()
    if not raw:
        return None
    try:
        table = json.loads(raw)
        urls = table.get(wallet, table.get("*"))
    except (ValueError, AttributeError):
        raise HedgekitError(f"{VENUE_URLS_ENV}: not a JSON object of wallet -> URL table") from None
    return dict(urls) if urls else None


def profile_for(cfg: BacktestConfig) -> VenueProfile:
    name = cfg.venue.name
    if name == "binanceusdm":
        from hedgekit.venues.ccxt_binance import BinanceUsdmProfile

        return BinanceUsdmProfile(margin_mode=cfg.venue.margin_mode)
    if name == "hyperliquid":
        from hedgekit.venues.ccxt_hyperliquid import HyperliquidProfile

        return HyperliquidProfile(slippage=cfg.venue.slippage or 0.05)
    raise HedgekitError(f"venue.name={name!r}: REAL mode trades on {' or '.join(REAL_VENUES)}")


def make_venue(
    cfg: BacktestConfig, wallet: str, *, network: Network, environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> RealVenue:
    """The wallet's REAL venue (not yet prepared: ``LiveEngine`` calls ``prepare``)."""
    env = os.environ if environ is None else environ
    profile = profile_for(cfg)
    creds = credentials(wallet, profile.name, env)
    urls = venue_urls(wallet, env)
    extra: dict[str, Any] = {}
    if profile.name == "hyperliquid":
        extra["sub_account"] = env.get(_env_name(wallet, "SUB_ACCOUNT"), "").strip() or None

    def client(pro: bool) -> Any:
        exchange = profile.make_exchange(creds, network=network, urls=urls, pro=pro, **extra)
        if urls:
            exchange.enableRateLimit = False  # a local stub: no venue weights to respect
        return exchange

    symbol = ccxt_symbol(cfg.instrument.symbol)
    kwargs: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
    if cfg.venue.user_stream and (not urls or "ws" in urls):
        kwargs["stream"] = UserStream(lambda: client(True), symbol, name=wallet)
    return RealVenue(profile, client(False), cfg.instrument_model(), symbol=symbol, **kwargs)


def public_candles(cfg: BacktestConfig, wallet: str, *, network: str,
                   environ: Mapping[str, str] | None = None) -> PublicDailyCandles:  # fmt: skip
    """The daily candles of the live feed's exchange without a key (PAPER and RECOMMENDATION
    on a live feed): the venue's testnet unless mainnet, as the feed reads prices; the
    wallet's ``HEDGEKIT_VENUE_URLS`` entry points it elsewhere (the tests' stubs)."""
    urls = venue_urls(wallet, environ)
    return PublicDailyCandles(cfg.venue.name, ccxt_symbol(cfg.instrument.symbol), sandbox=network != "mainnet",
                              urls=urls)  # fmt: skip


class RealVenue(VenueFunding, CcxtVenue):
    """The ccxt adapter with the book the live engine reads and journals, as the simulator
    keeps it: fees paid, funding (settled by the venue, read back by ``poll_funding``), cash
    and equity (the account's cash at the start, then our realized PnL, fees and funding)."""

    def __init__(self, profile: VenueProfile, exchange: Any, instrument: Instrument, **kwargs: Any) -> None:
        super().__init__(profile, exchange, instrument, **kwargs)
        self.init_funding()
        self.fees_paid = 0.0
        self.start_cash = 0.0
        # client id -> spec: journaled before a crash and found at the venue (``recover``)
        self.recovered: dict[str, OrderSpec] = {}
        # client id -> its intent's ts, and the venue's events for it held until it is claimed
        self.recovered_ts: dict[str, int] = {}
        self.held: dict[str, list[VenueEvent]] = {}

    @property
    def cash(self) -> float:
        return self.start_cash + self.realized_pnl - self.fees_paid + self.funding_paid

    def equity(self, price: float) -> float:
        return self.cash + self.position.unrealized(price)

    def _apply_trade(self, trade: dict[str, Any], ts: int) -> OrderFilled | None:
        n = len(self.fills)
        ev = super()._apply_trade(trade, ts)
        fills: list[FillRecord] = self.fills[n:]
        self.fees_paid += sum(f.fee for f in fills)
        return ev

    # -- the snapshot's part -----------------------------------------------------------------
    def engine_state(self) -> dict[str, Any]:
        """Plain data (hedgekit records, no client): the fill cursor, the orders this adapter
        knows (with their venue ids, so their fills are ours after a restart) and the book."""
        return {
            "version": ENGINE_STATE_VERSION, "cursor": self.state(),
            "orders": dict(self._orders), "by_venue_id": dict(self._by_venue_id),
            "closing": dict(self._closing), "position": self.position, "realized": self.realized_pnl,
            "fees": self.fees_paid, "start_cash": self.start_cash, "last_price": self.last_price,
            "recovered": dict(self.recovered), "funding": self.funding_state(),
            "recovered_ts": dict(self.recovered_ts), "held": {k: list(v) for k, v in self.held.items()},
        }

    def restore_engine_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != ENGINE_STATE_VERSION:
            raise HedgekitError(
                f"REAL venue state version {state.get('version')!r} cannot be read by this hedgekit "
                f"(it writes version {ENGINE_STATE_VERSION})"
            )
        self.restore(state["cursor"])
        self._orders = dict(state["orders"])
        self._by_venue_id = dict(state["by_venue_id"])
        self._closing = dict(state["closing"])
        position = state["position"]
        self.position = position if isinstance(position, Position) else self.position
        self.realized_pnl = float(state["realized"])
        self.fees_paid = float(state["fees"])
        self.start_cash = float(state["start_cash"])
        self.last_price = state["last_price"]
        self.recovered = dict(state.get("recovered", {}))
        self.recovered_ts = dict(state.get("recovered_ts", {}))
        self.held = {k: list(v) for k, v in state.get("held", {}).items()}
        self.restore_funding(state.get("funding"))

    # -- the port, REAL specifics ----------------------------------------------------------------
    def open_orders(self) -> list[Order]:
        """Our working orders as this adapter knows them (no request: the engine asks this
        at every checkpoint); ``venue_open_orders`` asks the venue."""
        return [o for o in self._orders.values() if not o.status.is_closed]

    def venue_open_orders(self) -> list[Order]:
        """The venue's working orders carrying our client-id prefix (plain and trigger)."""
        return super().open_orders()

    def poll(self, ts: int, *, rest: bool = True) -> list[VenueEvent]:
        """As ``CcxtVenue.poll``; the events of a recovered order nobody claimed yet are held
        (the strategy does not know its client id: a fill would be for an unknown order)."""
        events = super().poll(ts, rest=rest)
        if not self.recovered:
            return events
        out: list[VenueEvent] = []
        for ev in events:
            cid = getattr(ev, "client_id", None)
            if cid in self.recovered:
                self.held.setdefault(cid, []).append(ev)
            else:
                out.append(ev)
        return out

    def claim(self, client_id: str) -> list[VenueEvent]:
        """The recovered order is the strategy's from now on: its held events, in order."""
        self.recovered.pop(client_id, None)
        self.recovered_ts.pop(client_id, None)
        return self.held.pop(client_id, [])

    def held_fill(self, client_id: str) -> float:
        """What of a recovered, unclaimed order filled at the venue (held, not delivered)."""
        return sum(ev.qty for ev in self.held.get(client_id, []) if isinstance(ev, OrderFilled))

    def submit(self, spec: OrderSpec, ts: int) -> list[VenueEvent]:
        """As ``CcxtVenue.submit``, but an order whose intent was journaled before a crash and
        that ``recover`` found at the venue is not sent again: its events held so far are
        its answer (later ones come through ``poll``)."""
        if spec.client_id in self.recovered:
            return self.claim(spec.client_id)
        previous = self._orders.get(spec.client_id)
        if previous is not None and previous.status is OrderStatus.NEW:
            # Sent before, never answered (the venue was unavailable): look it up first.
            del self._orders[spec.client_id]
            return self.resume(spec, ts)
        return super().submit(spec, ts)

    def recover(self, pending: list[OrderSpec], ts: int, issued: Mapping[str, int] | None = None) -> list[str]:
        """Intents journaled but never answered (a crash between the two): each one the venue
        has is known from now on (so its fills are ours) and is never sent again; the others
        were never placed. ``issued``: each intent's ts (else ``ts``). Returns the client ids found."""
        found: list[str] = []
        for spec in pending:
            if spec.client_id in self._orders:
                continue
            order = Order(spec)
            answer = self._lookup(order)
            if answer is None:
                continue
            venue_id = answer.get("id")
            if venue_id is not None:
                order.venue_id = str(venue_id)
                self._by_venue_id[order.venue_id] = spec.client_id
            order.apply(OrderTrigger.ACCEPT)
            self._orders[spec.client_id] = order
            self._log(ts, order, "placed", spec.qty)
            self.recovered[spec.client_id] = spec
            self.recovered_ts[spec.client_id] = (issued or {}).get(spec.client_id, ts)
            if spec.type is OrderType.STOP:
                self._map_triggered(order, answer)
            found.append(spec.client_id)
        return found
