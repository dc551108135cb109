"""Hyperliquid's entry in the REAL venue table (``VenueProfile`` for ``ccxt.hyperliquid``).

- Credentials: the API (agent) wallet's private key signs; the main wallet's address is the
  account traded. The key goes to ccxt and nowhere else.
- Testnet unless ``network="mainnet"`` (``set_sandbox_mode``: testnet URLs, and the "b"
  source in the signed phantom agent, so a testnet signature is worthless on mainnet).
- ccxt 4.5 approves a builder fee (``approveBuilderFee``), attaches a ``builder`` to every
  order and sends ``setReferrer`` on the first private call, even with ``builderFee`` off
  (then at 0 %). Nothing may be approved or paid that the user did not ask for (SPEC §7): the
  client made here overrides those steps and refuses to sign any action that carries a builder
  or a referrer, whatever its options say.
- Client ids: a cloid is 16 bytes. Ours are ``0x686b`` ("hk") + 4 bytes naming the wallet +
  10 bytes of a blake2b digest of our client id: deterministic across restarts, and an order
  of ours is recognisable on the venue (``is_ours``) even when the journal does not know it.
- Stops are trigger orders (``triggerPrice`` → ``tpsl: "sl"``: a sell fires when the price
  falls to the trigger, a buy when it rises to it), market once triggered, bounded by the
  slippage. Market orders need a reference price: ccxt sends an IOC limit at
  ``ref × (1 ± slippage)``.
- Sizes are rounded to the market's ``szDecimals``, prices to the venue's rule (at most 5
  significant figures and ``6 - szDecimals`` decimals; whole numbers always pass).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from hedgekit.core.errors import HedgekitError, ParameterError
from hedgekit.core.orders import OrderSpec, OrderType
from hedgekit.venues.ccxt_profile import (
    Network,
    OrderRequest,
    VenueCredentials,
    VenueProfile,
    wallet_of,
)

CLOID_MAGIC = "686b"  # "hk"
_HEX_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_CLOID = re.compile(r"0x[0-9a-f]{32}")
_MAX_DECIMALS = 6  # perps: a price has at most 6 - szDecimals decimals
_SIG_FIGS = 5
# Actions that would approve or pay someone the user did not choose.
_FORBIDDEN_ACTIONS = frozenset({"approveBuilderFee", "setReferrer"})


class HyperliquidError(HedgekitError):
    pass


def _blake(data: str, size: int) -> str:
    return hashlib.blake2b(data.encode(), digest_size=size).hexdigest()


def cloid_prefix(wallet: str) -> str:
    """The first 6 bytes of every cloid of ``wallet``'s orders."""
    return "0x" + CLOID_MAGIC + _blake(wallet, 4)


def round_size(qty: float, sz_decimals: int) -> Decimal:
    return Decimal(repr(qty)).quantize(Decimal(1).scaleb(-sz_decimals), ROUND_HALF_EVEN)


def round_price(price: float, sz_decimals: int) -> Decimal:
    """The nearest price Hyperliquid accepts for a perp with ``sz_decimals``."""
    px = Decimal(repr(price))
    if px <= 0:
        raise HyperliquidError(f"price must be positive, got {price!r}")
    exponent = px.adjusted() - (_SIG_FIGS - 1)  # 5 significant figures
    exponent = max(exponent, -(_MAX_DECIMALS - sz_decimals))
    # min(.., 0): whole numbers always pass, however many figures they have
    return px.quantize(Decimal(1).scaleb(min(exponent, 0)), ROUND_HALF_EVEN)


@cache
def client_class() -> type[Any]:
    """``ccxt.hyperliquid`` without its builder-fee approval, builder field and referrer."""
    import ccxt

    class HyperliquidNoBuilder(ccxt.hyperliquid):
        def handle_builder_fee_approval(self) -> bool:
            return True  # approve nothing

        def set_ref(self) -> bool:
            return True  # join no referral programme

        def approve_builder_fee(self, builder: str, maxFeeRate: str) -> Any:
            raise HyperliquidError("hedgekit never approves a builder fee")

        def sign_l1_action(self, action: Any, nonce: Any, vaultAdress: Any = None,
                           expiresAfter: Any = None) -> Any:
            # The one place every trading action is signed: nothing with a builder or a
            # referrer leaves this client, whatever its options became.
            if not isinstance(action, dict) or "builder" in action or action.get("type") in _FORBIDDEN_ACTIONS:
                kind = action.get("type") if isinstance(action, dict) else type(action).__name__
                raise HyperliquidError(f"refusing to sign a Hyperliquid {kind} action carrying a builder or referrer")
            return super().sign_l1_action(action, nonce, vaultAdress, expiresAfter)

        def sign_user_signed_action(self, messageTypes: Any, message: Any) -> Any:
            if any("ApproveBuilderFee" in str(k) for k in messageTypes):
                raise HyperliquidError("hedgekit never approves a builder fee")
            return super().sign_user_signed_action(messageTypes, message)

    return HyperliquidNoBuilder


@cache
def stream_client_class() -> type[Any]:
    """``ccxt.pro.hyperliquid`` for the user stream only: it watches, and signs nothing."""
    import ccxt.pro

    class HyperliquidStream(ccxt.pro.hyperliquid):
        def sign_l1_action(self, action: Any, nonce: Any, vaultAdress: Any = None,
                           expiresAfter: Any = None) -> Any:
            raise HyperliquidError("the user-stream client sends no action")

        def sign_user_signed_action(self, messageTypes: Any, message: Any) -> Any:
            raise HyperliquidError("the user-stream client sends no action")

    return HyperliquidStream


@dataclass
class HyperliquidProfile:
    """``VenueProfile`` for Hyperliquid perpetuals (isolated margin, one-way positions)."""

    slippage: float = 0.05  # bound of market orders and triggered stops around their price
    timeout_ms: int = 10_000
    rate_limit: bool = True  # ccxt's request pacing (the venue's weight limits); off against a local stub
    name: str = "hyperliquid"
    _sz_decimals: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.slippage <= 0.5:
            raise ParameterError("venue.slippage", self.slippage, "must be > 0 and at most 0.5 (50 %)")

    def make_exchange(
        self, creds: VenueCredentials, *, network: Network, urls: dict[str, Any] | None = None,
        sub_account: str | None = None, pro: bool = False,
    ) -> Any:
        """``sub_account`` (else ``creds.sub_account``): trade this sub-account of the main
        wallet (the dual-wallet set-up): the main wallet's agent signs with it as the vault
        address, and every query reads it."""
        sub_account = sub_account or creds.sub_account or None
        if network not in ("testnet", "mainnet"):
            raise HyperliquidError(f"network must be 'testnet' or 'mainnet', got {network!r}")
        # Neither value is echoed: the key is a secret, and a mistyped key may hold one.
        if not _HEX_KEY.fullmatch(creds.secret):
            raise HyperliquidError(
                "Hyperliquid needs the API (agent) wallet's private key as its secret: 64 hex "
                f"characters, optionally prefixed 0x (got {len(creds.secret)} characters)"
            )
        if not _ADDRESS.fullmatch(creds.wallet_address):
            raise HyperliquidError(
                "Hyperliquid needs the MAIN wallet's address (0x and 40 hex characters) next to the "
                "agent key: the agent signs, the main wallet holds the account"
            )
        if sub_account is not None and not _ADDRESS.fullmatch(sub_account):
            raise HyperliquidError("a Hyperliquid sub-account is an address: 0x and 40 hex characters")
        options: dict[str, Any] = {"subAccountAddress": sub_account} if sub_account else {}
        exchange = (stream_client_class() if pro else client_class())({
            "walletAddress": creds.wallet_address,
            "privateKey": creds.secret,
            "enableRateLimit": self.rate_limit,
            "timeout": self.timeout_ms,
            "options": {
                "builderFee": False,
                "approvedBuilderFee": False,  # True would attach a builder to every order
                "refSet": True,  # ccxt's marker that setReferrer was already sent
                "defaultSlippage": self.slippage,
                "fetchMarkets": {"types": ["swap"]},  # perps only: no spot or HIP-3 listing
                **options,  # ccxt reads subAccountAddress as the vault of every signed action
            },
        })
        exchange.set_sandbox_mode(network == "testnet")
        if urls:  # after set_sandbox_mode, which swaps the URL table
            exchange.urls["api"] = {**exchange.urls["api"], **urls}
        return exchange

    def venue_client_id(self, client_id: str) -> str:
        return cloid_prefix(wallet_of(client_id)) + _blake(client_id, 10)

    def is_ours(self, venue_client_id: str | None, wallet: str | None = None) -> bool:
        """Whether a cloid on the venue was made by ``venue_client_id`` (for ``wallet``)."""
        if not venue_client_id or not _CLOID.fullmatch(venue_client_id.lower()):
            return False
        prefix = "0x" + CLOID_MAGIC if wallet is None else cloid_prefix(wallet)
        return venue_client_id.lower().startswith(prefix)

    def _decimals(self, symbol: str) -> int:
        sz_decimals = self._sz_decimals.get(symbol)
        if sz_decimals is None:
            raise HyperliquidError(
                f"{symbol} is not prepared: prepare_account() reads its size decimals before any order"
            )
        return sz_decimals

    def venue_spec(self, spec: OrderSpec, symbol: str) -> OrderSpec:
        """The spec as ``order_request`` sends it: size at ``szDecimals``, price at 5
        significant figures (a stop's trigger too; a market order keeps no price)."""
        sz_decimals = self._decimals(symbol)
        qty = float(round_size(spec.qty, sz_decimals))
        price = spec.price
        if price is not None and spec.type is not OrderType.MARKET:
            price = float(round_price(price, sz_decimals))
        if (qty == spec.qty and price == spec.price) or qty <= 0:
            return spec  # (a qty that rounds to 0 is refused by order_request, with its reason)
        return OrderSpec(spec.client_id, spec.wallet, spec.kind, spec.side, spec.type, qty, price,
                         spec.reduce_only, spec.unit)  # fmt: skip

    def order_request(self, spec: OrderSpec, symbol: str, *, ref_price: float | None) -> OrderRequest:
        sz_decimals = self._decimals(symbol)
        qty = round_size(spec.qty, sz_decimals)
        if qty <= 0:
            raise HyperliquidError(
                f"order {spec.client_id}: qty {spec.qty!r} rounds to 0 at {sz_decimals} decimals on {symbol}"
            )
        params: dict[str, Any] = {
            "clientOrderId": self.venue_client_id(spec.client_id),
            "reduceOnly": spec.reduce_only,
        }
        side = spec.side.value
        if spec.type is OrderType.MARKET:
            if ref_price is None or not ref_price > 0:
                raise HyperliquidError(
                    f"order {spec.client_id}: a Hyperliquid market order needs a reference price "
                    "(it is sent as an IOC limit at the price plus the slippage)"
                )
            params["slippage"] = str(self.slippage)
            return OrderRequest(symbol, "market", side, float(qty), ref_price, params)
        assert spec.price is not None  # OrderSpec guarantees a price for limit and stop orders
        price = float(round_price(spec.price, sz_decimals))
        if spec.type is OrderType.STOP:
            # ccxt turns triggerPrice into {"trigger": {"triggerPx", "isMarket": True, "tpsl": "sl"}}
            params["triggerPrice"] = price
            params["slippage"] = str(self.slippage)
            return OrderRequest(symbol, "market", side, float(qty), price, params)
        params["timeInForce"] = "Gtc"
        return OrderRequest(symbol, "limit", side, float(qty), price, params)

    def open_order_queries(self) -> list[dict[str, Any]]:
        # frontendOpenOrders lists resting limits and untriggered trigger orders (with their
        # trigger price and reduce-only flag) in one call.
        return [{"method": "frontendOpenOrders"}]

    def lookup_params(self, venue_client_id: str, *, stop: bool | None) -> list[dict[str, Any]]:
        # orderStatus by cloid finds plain and trigger orders alike; nothing else may ride
        # along (ccxt copies unknown params into the request body).
        return [{"clientOrderId": venue_client_id}]

    def prepare_account(self, exchange: Any, symbol: str, *, leverage: float) -> None:
        exchange.load_markets()
        market = exchange.markets.get(symbol)
        if market is None or not market.get("swap"):
            perps = sorted(s for s, m in exchange.markets.items() if m.get("swap"))
            raise HyperliquidError(
                f"Hyperliquid has no perpetual {symbol!r} (perpetuals look like 'BTC/USDC:USDC'; "
                f"listed: {', '.join(perps[:12]) or 'none'})"
            )
        if market.get("active") is False:
            raise HyperliquidError(f"Hyperliquid lists {symbol} as delisted: it cannot be traded")
        max_lev = (market.get("limits", {}).get("leverage") or {}).get("max")
        if leverage != int(leverage) or leverage < 1:
            raise HyperliquidError(
                f"Hyperliquid leverage is a whole number of at least 1 (got {leverage!r} for {symbol})"
            )
        if max_lev is not None and leverage > max_lev:
            raise HyperliquidError(f"{symbol} allows at most {max_lev}x leverage on Hyperliquid, got {leverage:g}x")
        self._sz_decimals[symbol] = int(market["info"]["szDecimals"])

        balance = exchange.fetch_balance()
        total = (balance.get("USDC") or {}).get("total") or 0.0
        if not total > 0:
            raise HyperliquidError(
                "the main wallet's Hyperliquid perp account holds no USDC: deposit (testnet: the "
                "faucet on app.hyperliquid-testnet.xyz) or transfer USDC from spot to perps first"
            )
        for pos in exchange.fetch_positions([symbol]):
            if (pos.get("contracts") or 0) and pos.get("marginMode") == "cross":
                raise HyperliquidError(
                    f"{symbol} has an open cross-margin position of {pos['contracts']:g} on Hyperliquid; "
                    "hedgekit trades isolated margin and the venue cannot switch an open position: "
                    "close it first (or switch it to isolated on the web page)"
                )
        import ccxt

        try:
            exchange.set_leverage(int(leverage), symbol, {"marginMode": "isolated"})
        except ccxt.NetworkError:
            raise  # temporary: the adapter's boundary retries it
        except ccxt.BaseError as e:  # the venue said no: one clear refusal
            raise HyperliquidError(_leverage_refusal(str(e), symbol, int(leverage))) from None

    def spot_balance(self, exchange: Any, base: str) -> float:
        """The spot wallet's ``spotClearinghouseState`` (ccxt ``fetch_balance({'type': 'spot'})``);
        ccxt names Hyperliquid's bridged tokens by their coin (UBTC is BTC)."""
        balance = exchange.fetch_balance({"type": "spot"})
        return float((balance.get(base) or {}).get("total") or 0.0)


def _leverage_refusal(text: str, symbol: str, leverage: int) -> str:
    if "User or API Wallet" in text and "does not exist" in text:
        return (
            "Hyperliquid does not know the agent key as an API wallet of the main wallet (approve it "
            "under API on the venue's web page, on the same network) - or the main wallet address "
            "is wrong"
        )
    return f"Hyperliquid refused {leverage}x isolated margin on {symbol}: {text}"


if TYPE_CHECKING:  # mypy proves the profile fits the protocol the adapter asks
    _profile: VenueProfile = HyperliquidProfile()
