"""What differs between the ccxt venues REAL mode trades on (freqtrade-style capability table).

``CcxtVenue`` (the REAL adapter, venue-agnostic) asks a ``VenueProfile`` for everything that
is one exchange's own: how to build the ccxt client (testnet, URLs, options that must stay
off), how our client ids look on the venue, the ``create_order`` arguments of an order, where
its trigger orders are listed, and what to check or set on the account before trading.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from hedgekit.core.orders import CLIENT_ID_PREFIX, OrderSpec

Network = Literal["testnet", "mainnet"]


def wallet_of(client_id: str) -> str:
    """The wallet part of ``hk-<wallet>-<cycle>-<unit>-<kind>-<seq>`` (wallet names may hold
    dashes); the whole id when it is not one of ours."""
    head, _, rest = client_id.partition("-")
    parts = rest.rsplit("-", 4)
    if head != CLIENT_ID_PREFIX or len(parts) != 5 or not parts[0]:
        return client_id
    return parts[0]


@dataclass(frozen=True, slots=True)
class VenueCredentials:
    """Keys handed to ccxt and nowhere else (never logged, never in an error message)."""

    api_key: str = field(default="", repr=False)
    secret: str = field(default="", repr=False)  # Binance: API secret; Hyperliquid: agent private key
    wallet_address: str = field(default="", repr=False)  # Hyperliquid: the main wallet's address
    # Hyperliquid: the sub-account (an address) this wallet trades, signed for by the main
    # wallet's agent (the dual-wallet set-up: long and hedge wallets on separate sub-accounts).
    # Binance gives each sub-account its own API key, so it needs none.
    sub_account: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return "VenueCredentials(***)"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """The arguments of one ``exchange.create_order`` call."""

    symbol: str
    type: str  # ccxt order type: "market", "limit", or the venue's stop type
    side: str  # "buy" | "sell"
    amount: float
    price: float | None
    params: dict[str, Any]


class VenueProfile(Protocol):
    name: str  # ccxt id: "binanceusdm" | "hyperliquid"

    def make_exchange(
        self, creds: VenueCredentials, *, network: Network, urls: dict[str, Any] | None = None,
        pro: bool = False,
    ) -> Any:
        """A sync ccxt client (``pro``: the async ``ccxt.pro`` one, with the same credentials
        and options, for the user stream); ``urls`` overrides its API URLs (the test stubs on
        127.0.0.1; ``urls["ws"]`` its websocket URLs)."""
        ...

    def venue_client_id(self, client_id: str) -> str:
        """Our deterministic client id as the venue stores it (Binance: as is; Hyperliquid: a
        16-byte hex cloid derived from it). The same id always maps to the same venue id."""
        ...

    def order_request(self, spec: OrderSpec, symbol: str, *, ref_price: float | None) -> OrderRequest:
        """The create_order call for ``spec`` (stops as the venue's trigger orders, reduce-only
        flags, the client id; a market order on Hyperliquid needs ``ref_price``)."""
        ...

    def is_ours(self, venue_client_id: str | None, wallet: str | None = None) -> bool:
        """Whether a client id on the venue was made by ``venue_client_id`` (for ``wallet``;
        any wallet when None): such an order unknown to the journal is an orphan of ours."""
        ...

    def venue_spec(self, spec: OrderSpec, symbol: str) -> OrderSpec:
        """``spec`` with its qty and price as the venue will hold them (Hyperliquid rounds a
        price to 5 significant figures), so that what the venue lists compares equal to what
        was asked for (``CcxtVenue.diff``)."""
        ...

    def open_order_queries(self) -> list[dict[str, Any]]:
        """Params for each ``fetch_open_orders`` call needed to list every working order
        (Binance: plain and ``{"trigger": True}``)."""
        ...

    def lookup_params(self, venue_client_id: str, *, stop: bool | None) -> list[dict[str, Any]]:
        """Params of the ``fetch_order(None, symbol, params)`` / ``cancel_order(None, symbol,
        params)`` calls that find an order by its client id, tried in turn until one finds it
        (``stop``: whether it is a stop order; None when not known)."""
        ...

    def prepare_account(self, exchange: Any, symbol: str, *, leverage: float) -> None:
        """Check and set the account before trading (refuse hedge/dual-side mode, set
        leverage and margin type). Raises ``HedgekitError`` naming what is wrong."""
        ...

    def spot_balance(self, exchange: Any, base: str) -> float:
        """Coins of ``base`` on the account's spot wallet (total: held in orders included), for
        a grid hedge's ``spot_quantity: account``."""
        ...
