"""Read-only view of a real exchange account through ccxt (RECOMMENDATION mode).

Credentials come from the environment, one set per wallet:
``HEDGEKIT_<WALLET>_API_KEY``, ``HEDGEKIT_<WALLET>_API_SECRET`` and optionally
``HEDGEKIT_<WALLET>_API_PASSWORD`` (wallet name upper-cased). They are handed to ccxt and
nowhere else: never logged (the log patcher masks them too), never in error messages.

The reader only calls ccxt's fetch methods; ``ReadOnlyExchange`` refuses every method that
could change the account, so a recommendation run cannot place, cancel or transfer anything.
Testnet is the default (``set_sandbox_mode``); mainnet must be asked for explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from hedgekit.core.errors import HedgekitError
from hedgekit.logs import redact

_WRITE_PREFIXES = ("create", "edit", "cancel", "transfer", "withdraw", "set", "add", "reduce", "close")


class AccountError(HedgekitError):
    pass


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    password: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # never show a key, even in a traceback or a debugger
        return "Credentials(***)"


def load_credentials(wallet: str, environ: dict[str, str] | None = None) -> Credentials | None:
    env = os.environ if environ is None else environ
    prefix = f"HEDGEKIT_{wallet.upper()}_API_"
    key, secret = env.get(prefix + "KEY"), env.get(prefix + "SECRET")
    if not key and not secret:
        return None
    if not (key and secret):
        raise AccountError(f"wallet {wallet}: set both {prefix}KEY and {prefix}SECRET (one is missing)")
    return Credentials(key, secret, env.get(prefix + "PASSWORD") or None)


class ReadOnlyExchange:
    """Wraps a ccxt exchange; any method that could change the account raises."""

    def __init__(self, exchange: Any) -> None:
        self._exchange = exchange

    def __getattr__(self, name: str) -> Any:
        if name.lower().startswith(_WRITE_PREFIXES) and name not in ("set_sandbox_mode",):
            raise AccountError(f"read-only account: {name}() is not allowed in RECOMMENDATION mode")
        return getattr(self._exchange, name)


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    wallet: str
    symbol: str
    position: float  # signed contracts/coins (+ long, - short)
    entry_price: float | None
    open_orders: int
    network: str  # "testnet" or "MAINNET"

    def describe(self) -> str:
        entry = "" if self.entry_price is None else f" @ {self.entry_price:,.2f}"
        return (
            f"ACCOUNT {self.wallet} ({self.network}): {self.symbol} position {self.position:+g}{entry}, "
            f"{self.open_orders} open order(s)"
        )


class AccountReader:
    def __init__(
        self,
        wallet: str,
        exchange_id: str,
        symbol: str,
        credentials: Credentials,
        *,
        mainnet: bool = False,
        exchange: Any | None = None,
    ) -> None:
        self.wallet, self.symbol, self.mainnet = wallet, symbol, mainnet
        if exchange is None:
            import ccxt.async_support as ccxt_async

            cls = getattr(ccxt_async, exchange_id, None)
            if cls is None:
                raise AccountError(f"unknown exchange {exchange_id!r} for ccxt")
            params = {"apiKey": credentials.api_key, "secret": credentials.secret, "enableRateLimit": True}
            if credentials.password:
                params["password"] = credentials.password
            exchange = cls(params)
            if not mainnet:
                exchange.set_sandbox_mode(True)
        self.exchange = ReadOnlyExchange(exchange)

    async def read(self) -> AccountSnapshot:
        try:
            positions = await self.exchange.fetch_positions([self.symbol])
            orders = await self.exchange.fetch_open_orders(self.symbol)
        except Exception as err:  # noqa: BLE001 - any ccxt failure becomes one clear, redacted error
            raise AccountError(f"wallet {self.wallet}: cannot read the account: {redact(str(err))[:300]}") from None
        qty, entry = 0.0, None
        for p in positions or []:
            if p.get("symbol") != self.symbol:
                continue
            contracts = float(p.get("contracts") or 0.0)
            size = contracts * float(p.get("contractSize") or 1.0)
            qty += -size if p.get("side") == "short" else size
            entry = p.get("entryPrice") or entry
        return AccountSnapshot(self.wallet, self.symbol, qty, entry, len(orders or []),
                               "MAINNET" if self.mainnet else "testnet")

    async def close(self) -> None:
        close = getattr(self.exchange._exchange, "close", None)
        if close is not None:
            await close()
