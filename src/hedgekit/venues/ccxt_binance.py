"""Binance USD-M futures (``ccxt.binanceusdm``) as a REAL-mode venue: its ``VenueProfile``.

What is Binance's own (SPEC §7):

* **testnet** is Binance's *demo trading* (``demo-fapi.binance.com``): ccxt 4.5 refuses to sign
  for the old futures sandbox (``testnet.binancefuture.com``), so ``set_sandbox_mode`` cannot be
  used for USD-M; ``enable_demo_trading`` is. Mainnet only when asked for.
* stop orders are ``STOP_MARKET`` with ``triggerPrice``; ccxt sends them to the algo-order
  service (``POST /fapi/v1/algoOrder``, our id as ``clientAlgoId``), so listing, looking up and
  cancelling them needs ``{"trigger": True}``;
* our client id is the venue's client id as is (``newClientOrderId``; Binance allows
  ``[.A-Z:/a-z0-9_-]{1,36}``);
* the account must be in one-way position mode (a hedge-mode account is refused), and the
  leverage and margin type (isolated by default) are set before trading.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from hedgekit.core.errors import HedgekitError, ParameterError
from hedgekit.core.orders import CLIENT_ID_PREFIX, OrderSpec, OrderType
from hedgekit.venues.ccxt_profile import (
    Network,
    OrderRequest,
    VenueCredentials,
    VenueProfile,
    wallet_of,
)

_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
MarginMode = Literal["isolated", "cross"]


class BinanceUsdmProfile:
    """The ``VenueProfile`` of Binance USD-M perpetuals."""

    name = "binanceusdm"

    def __init__(self, *, margin_mode: MarginMode = "isolated") -> None:
        if margin_mode not in ("isolated", "cross"):
            raise ParameterError("margin_mode", margin_mode, "must be isolated or cross")
        self.margin_mode = margin_mode

    def make_exchange(
        self, creds: VenueCredentials, *, network: Network, urls: dict[str, Any] | None = None,
        pro: bool = False,
    ) -> Any:
        import ccxt
        import ccxt.pro

        if creds.sub_account:
            raise HedgekitError(
                "Binance needs no sub-account address: a sub-account trades with its own API key "
                "(create the key inside the sub-account and give that key and secret to the wallet)"
            )
        exchange = (ccxt.pro.binanceusdm if pro else ccxt.binanceusdm)({
            "apiKey": creds.api_key,
            "secret": creds.secret,
            "enableRateLimit": True,
            # fetchCurrencies would call the spot wallet API (sapi), which a futures-only key
            # may not reach and which says nothing about a USD-M account.
            "options": {"fetchCurrencies": False, "defaultType": "swap",
                        # sign with the server's clock (GET /fapi/v1/time at load_markets), so a
                        # drifting local clock does not get every call refused (-1021)
                        "adjustForTimeDifference": True},
        })
        if network == "testnet":
            exchange.enable_demo_trading(True)
        elif network != "mainnet":
            raise ParameterError("network", network, "must be testnet or mainnet")
        if urls:
            exchange.urls["api"] = {**exchange.urls["api"], **urls}
        # ccxt picks its USD-M error table by the URL's host; this client only ever trades
        # USD-M, so use that table whatever the URL is (a margin rejection, -2019, is then
        # InsufficientFunds on every URL, as it is on fapi.binance.com).
        linear = exchange.exceptions.get("linear", {})
        exchange.exceptions["exact"] = {**exchange.exceptions["exact"], **linear.get("exact", {})}
        exchange.exceptions["broad"] = {**exchange.exceptions.get("broad", {}), **linear.get("broad", {})}
        return exchange

    def venue_client_id(self, client_id: str) -> str:
        if not _CLIENT_ID.match(client_id):
            raise HedgekitError(
                f"client id {client_id!r} cannot be sent to Binance: it must be 1-36 characters of "
                "letters, digits and . : / _ -"
            )
        return client_id

    def is_ours(self, venue_client_id: str | None, wallet: str | None = None) -> bool:
        if not venue_client_id or not venue_client_id.startswith(f"{CLIENT_ID_PREFIX}-"):
            return False
        return wallet is None or wallet_of(venue_client_id) == wallet

    def venue_spec(self, spec: OrderSpec, symbol: str) -> OrderSpec:
        return spec  # the instrument's tick and lot are Binance's own filters

    def order_request(self, spec: OrderSpec, symbol: str, *, ref_price: float | None) -> OrderRequest:
        params: dict[str, Any] = {"newClientOrderId": self.venue_client_id(spec.client_id)}
        if spec.reduce_only:
            params["reduceOnly"] = True
        side = str(spec.side)
        if spec.type is OrderType.MARKET:
            return OrderRequest(symbol, "market", side, spec.qty, None, params)
        if spec.type is OrderType.LIMIT:
            params["timeInForce"] = "GTC"
            return OrderRequest(symbol, "limit", side, spec.qty, spec.price, params)
        # A stop-market order: triggered on the last traded price, as the simulator does.
        params["triggerPrice"] = spec.price
        params["workingType"] = "CONTRACT_PRICE"
        return OrderRequest(symbol, "STOP_MARKET", side, spec.qty, None, params)

    def open_order_queries(self) -> list[dict[str, Any]]:
        return [{}, {"trigger": True}]

    def lookup_params(self, venue_client_id: str, *, stop: bool | None) -> list[dict[str, Any]]:
        plain = {"clientOrderId": venue_client_id}
        algo = {"clientOrderId": venue_client_id, "trigger": True}  # stops live on the algo service
        if stop is None:
            return [plain, algo]
        return [algo] if stop else [plain]

    def prepare_account(self, exchange: Any, symbol: str, *, leverage: float) -> None:
        import ccxt

        if leverage != int(leverage) or not 1 <= leverage <= 125:
            raise ParameterError("leverage", leverage, "Binance USD-M takes a whole number from 1 to 125")
        mode = exchange.fetch_position_mode(symbol)
        if mode.get("hedged"):
            raise HedgekitError(
                "the Binance USD-M account is in hedge mode (dual-side positions): hedgekit nets one "
                "position per wallet and refuses to trade it. Switch the account to one-way mode "
                "(Futures > Preferences > Position Mode > One-way; it needs no open position or "
                "order) and start again"
            )
        try:
            exchange.set_margin_mode(self.margin_mode, symbol)
        except ccxt.MarginModeAlreadySet:
            pass  # already as wanted
        except ccxt.ExchangeError as err:
            if "-4048" in str(err) or "-4047" in str(err):
                raise HedgekitError(
                    f"cannot set {symbol} to {self.margin_mode} margin: the account has a position "
                    "or open orders on it in the other margin type; close them or change "
                    "the margin type by hand, then start again"
                ) from None
            raise
        exchange.set_leverage(int(leverage), symbol)

    def spot_balance(self, exchange: Any, base: str) -> float:
        """Binance keeps spot in another wallet, behind the spot API (``GET /api/v3/account``,
        signed with the same key; it needs the key's "reading" permission): a ``ccxt.binance``
        client on the futures client's hosts (demo trading, mainnet, or a test's stub)."""
        import ccxt

        spot = ccxt.binance({
            "apiKey": exchange.apiKey, "secret": exchange.secret, "enableRateLimit": exchange.enableRateLimit,
            "options": {"fetchCurrencies": False, "timeDifference": exchange.options.get("timeDifference", 0)},
        })  # fmt: skip
        spot.urls["api"] = {**spot.urls["api"], **exchange.urls["api"]}
        answer = spot.private_get_account({"omitZeroBalances": "true"})
        for row in answer.get("balances", []):
            if row.get("asset") == base:
                return float(row.get("free") or 0) + float(row.get("locked") or 0)
        return 0.0


if TYPE_CHECKING:
    _PROFILE: type[VenueProfile] = BinanceUsdmProfile  # mypy checks that it implements the protocol
